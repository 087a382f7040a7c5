"""MAPPO learning curves against a uniformly random policy and (coordination games) the optimum.

    python benchmarks/mappo_curves.py [--envs coordination:chain-6 coordination:random-10
        mpe:simple_spread_v3] [--steps 150000] [--seed 0] [--out benchmarks/results/mappo_curves]

For each env: the mean episode return of a uniformly random policy over the
available actions (``--random-episodes`` episodes), MAPPO's training curve
(mean return of the episodes that ended in each iteration) and its final greedy
evaluation; for coordination games also the optimum (``optimal_return()`` per
step times the episode limit). Writes ``OUT/<env>.png`` with the reference lines.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from _bench import command_line, print_table, random_actions, single_thread, train_quietly

import mapograph as mg


def random_policy_return(env_id: str, episodes: int, num_envs: int, seed: int) -> float:
    """Mean return of uniformly random available actions over ``episodes`` episodes."""
    env = mg.envs.make(env_id, num_envs=num_envs, seed=seed)
    try:
        gen = torch.Generator().manual_seed(seed)
        ts = env.reset()
        running = torch.zeros(num_envs)
        returns: list[float] = []
        while len(returns) < episodes:
            actions = random_actions(ts, gen)
            ts = env.step(actions)
            running += ts.reward.float()
            done = ts.done.bool()
            returns.extend(running[done].tolist())
            running[done] = 0.0
        return sum(returns[:episodes]) / episodes
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--envs",
        nargs="+",
        default=["coordination:chain-6", "coordination:random-10", "mpe:simple_spread_v3"],
    )
    parser.add_argument("--steps", type=int, default=150_000)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--random-episodes", type=int, default=64)
    parser.add_argument("--out", default="benchmarks/results/mappo_curves")
    args = parser.parse_args()
    single_thread()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, records = [], []
    from mapograph.viz import plot_learning_curves

    for env_id in args.envs:
        random_return = random_policy_return(env_id, args.random_episodes, args.num_envs, args.seed)
        env = mg.envs.make(env_id, num_envs=args.num_envs, seed=args.seed)
        optimum = None
        if hasattr(env, "optimal_return"):
            optimum = float(env.optimal_return()) * env.spec.episode_limit
        trainer, result, wall = train_quietly(
            env, algo="mappo", total_steps=args.steps, seed=args.seed, num_envs=args.num_envs
        )
        final = trainer.evaluate(64)["return_mean"]
        env.close()
        reference = {"random policy": random_return}
        if optimum is not None:
            reference["optimum"] = optimum
        plot_learning_curves(
            {"mappo": result.history},
            path=out / f"{env_id.replace(':', '_')}.png",
            title=f"MAPPO on {env_id}",
            reference=reference,
        )
        first = result.history[0]["return_mean"]
        rows.append(
            [
                env_id,
                random_return,
                first,
                final,
                optimum if optimum is not None else "-",
                round(wall),
            ]
        )
        records.append(
            {
                "env": env_id,
                "random": random_return,
                "optimum": optimum,
                "final_eval": final,
                "curve": [(h["step"], h["return_mean"]) for h in result.history],
            }
        )
        print(f"  {env_id}: random {random_return:.3f}, MAPPO final {final:.3f}", flush=True)
    (out / "results.json").write_text(json.dumps(records, indent=1))
    print()
    print_table(
        [
            "env",
            "random policy return",
            "MAPPO first iteration",
            "MAPPO final (greedy eval)",
            "optimum",
            "train wall s",
        ],
        rows,
    )
    print(f"\n{args.steps} env steps, seed {args.seed}, 1 thread; command: {command_line()}")


if __name__ == "__main__":
    main()
