"""MAPPO and B2MAPO on the benchmark environments that run here: env-steps/s, curves, wins.

    python benchmarks/real_envs.py [--envs football:academy_3_vs_1_with_keeper smax:3m smax:2s3z]
        [--algos mappo b2mapo] [--steps 60000] [--num-envs 8] [--seed 0]
        [--out benchmarks/results/real_envs]

For each env:

1. **adapter speed**: env steps per second of ``env.step`` alone with uniformly
   random available actions (``--speed-steps`` steps of ``--num-envs`` copies);
2. **training**: each algorithm for ``--steps`` env steps on the same seed, then a
   greedy evaluation (``--eval-episodes`` episodes) of the execution policy
   (``pi_ind`` for B2MAPO). Prints final return and win rate, writes
   ``OUT/<env>_return.png`` and ``OUT/<env>_win_rate.png`` (learning curves) and
   ``OUT/results.json``.

Football copies run in worker processes (one gfootball engine each); SMAX copies
are one jitted ``jax.vmap``. The budgets that fit a 2-core machine are far below
the paper's (millions of steps): these runs check that learning starts and
measure cost, they do not reproduce final SMAC/GRF scores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _bench import command_line, print_table, random_actions, train_quietly

import mapograph as mg

DEFAULT_ENVS = ("football:academy_3_vs_1_with_keeper", "smax:3m", "smax:2s3z")


def adapter_speed(env_id: str, num_envs: int, steps: int, seed: int) -> float:
    """Env steps per second of ``env.step`` alone (random available actions)."""
    env = mg.envs.make(env_id, num_envs=num_envs, seed=seed)
    try:
        gen = torch.Generator().manual_seed(seed)
        ts = env.reset()
        for _ in range(3):  # warm-up: SMAX compiles its jitted step on the first calls
            ts = env.step(random_actions(ts, gen))
        start = time.perf_counter()
        for _ in range(steps):
            actions = random_actions(ts, gen)
            ts = env.step(actions)
        return steps * num_envs / (time.perf_counter() - start)
    finally:
        env.close()


def train(env_id: str, algo: str, args: argparse.Namespace) -> dict:
    env = mg.envs.make(env_id, num_envs=args.num_envs, seed=args.seed)
    try:
        trainer, result, wall = train_quietly(
            env,
            algo=algo,
            total_steps=args.steps,
            seed=args.seed,
            num_envs=args.num_envs,
            rollout_length=args.rollout_length,
        )
        evaluation = trainer.evaluate(args.eval_episodes)
    finally:
        env.close()
    keys = ("step", "return_mean", "win_rate", "collect_s", "update_s")
    return {
        "env": env_id,
        "algo": algo,
        "seed": args.seed,
        "steps": result.history[-1]["step"],
        "wall_s": wall,
        "eval": evaluation,
        "history": [{k: h.get(k) for k in keys} for h in result.history],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS))
    parser.add_argument("--algos", nargs="+", default=["mappo", "b2mapo"])
    parser.add_argument("--steps", type=int, default=60_000)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--rollout-length", type=int, default=100)
    parser.add_argument("--speed-steps", type=int, default=200)
    parser.add_argument("--eval-episodes", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/real_envs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    speed_rows, result_rows, records = [], [], []
    for env_id in args.envs:
        sps = adapter_speed(env_id, args.num_envs, args.speed_steps, args.seed)
        speed_rows.append([env_id, args.num_envs, round(sps)])
        print(f"  {env_id}: {sps:.0f} env-steps/s (env alone)", flush=True)
        runs = {}
        for algo in args.algos:
            rec = train(env_id, algo, args)
            records.append(rec)
            runs[algo] = rec["history"]
            ev = rec["eval"]
            win = ev.get("win_rate", float("nan"))
            result_rows.append(
                [env_id, algo, rec["steps"], ev["return_mean"], win, round(rec["wall_s"])]
            )
            print(
                f"  {env_id} {algo}: return {ev['return_mean']:.3f}, win rate {win:.3f} "
                f"({rec['wall_s']:.0f}s)",
                flush=True,
            )
        try:
            from mapograph.viz import plot_learning_curves

            name = env_id.replace(":", "_")
            plot_learning_curves(runs, path=out / f"{name}_return.png", title=env_id)
            plot_learning_curves(
                runs, key="win_rate", path=out / f"{name}_win_rate.png", title=env_id
            )
        except ImportError:
            pass
    (out / "results.json").write_text(json.dumps(records, indent=1))
    print()
    print_table(["env", "copies", "env alone env-steps/s"], speed_rows)
    print()
    print_table(
        ["env", "algo", "env steps", "eval return", "eval win rate", "train wall s"], result_rows
    )
    print(f"\n1 torch thread; command: {command_line()}; {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
