"""The presets at the shipped reference configurations: greedy win rate / return per seed.

    python benchmarks/reference_configs.py --envs smax:3m --algos mappo b2mapo happo a2po \
        --seeds 0 1 2 --steps 1000000 [--eval-episodes 64] [--out benchmarks/results/references] \
        [--config input_norm=true lr=1e-3]

Each (env, algo, seed) trains with ``mg.TrainConfig.for_env(env, algo, ...)`` (the
reference in ``mapograph/train/references/``), then evaluates the execution
policy greedily. One JSON line per finished run goes to ``OUT/runs.jsonl`` as soon
as it finishes (a rerun skips the runs already there), with its learning curve;
the table at the end gives mean and 95 % CI over seeds. ``--config KEY=VALUE`` changes
fields of the reference for a screening run (values read as YAML); such runs are
recorded with their ``overrides`` and kept apart from the reference's own runs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _bench import command_line, machine, mean_ci95, parse_pairs, print_table
from interdependence import direction_accuracy
from returns import skeleton_auc

import mapograph as mg


def graph_scores(trainer: mg.Trainer, env) -> dict:
    """Skeleton AUC and direction accuracy of a B2MAPO trainer's learned graph against
    the env's known interdependence (empty for other presets or envs without one)."""
    if trainer.cfg.algo != "b2mapo" or not hasattr(env, "interdependence"):
        return {}
    true_dag = env.interdependence()
    if true_dag.number_of_edges() == 0:
        return {}
    learned = trainer.interdependence()
    return {
        "skeleton_auc": skeleton_auc(learned, true_dag),
        "direction": direction_accuracy(learned, true_dag),
    }


def run_one(
    env_id: str, algo: str, seed: int, steps: int, episodes: int, **overrides: object
) -> dict:
    """Train one (env, algo, seed) at the reference config (plus ``overrides``) and evaluate it."""
    cfg = mg.TrainConfig.for_env(
        env_id,
        algo=algo,
        total_steps=steps,
        seed=seed,
        progress=False,
        tensorboard=False,
        **overrides,
    )
    env = mg.envs.make(env_id, num_envs=cfg.env_copies(), seed=seed)
    try:
        start = time.perf_counter()
        trainer = mg.Trainer(env, cfg)
        result = trainer.train()
        wall = time.perf_counter() - start
        evaluation = trainer.evaluate(episodes)
        graph = graph_scores(trainer, env) if "fixed_dag" not in overrides else {}
    finally:
        env.close()
    reference = mg.train.reference_for(env_id, algo)
    return {
        "env": env_id,
        "algo": algo,
        "seed": seed,
        "budget": steps,
        "steps": trainer.env_steps,
        "wall_s": wall,
        "reference": None if reference is None else reference.name,
        "machine": machine(),
        "overrides": overrides,
        "eval_return": evaluation["return_mean"],
        "eval_win_rate": evaluation.get("win_rate"),
        **graph,
        "curve": [
            {"step": h["step"], "return_mean": h["return_mean"], "win_rate": h.get("win_rate")}
            for h in result.history
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["smax:3m"])
    parser.add_argument("--algos", nargs="+", default=["mappo", "b2mapo", "happo", "a2po"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--eval-episodes", type=int, default=64)
    parser.add_argument("--out", default="benchmarks/results/references")
    parser.add_argument(
        "--config", nargs="*", default=[], metavar="KEY=VALUE", help="fields to change"
    )
    args = parser.parse_args()
    overrides = parse_pairs(args.config)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "runs.jsonl"
    done = []
    if log.exists():
        done = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    done = [r for r in done if r.get("overrides", {}) == overrides]
    have = {(r["env"], r["algo"], r["seed"], r.get("budget", r["steps"])) for r in done}
    for env_id in args.envs:
        for seed in args.seeds:
            for algo in args.algos:
                if (env_id, algo, seed, args.steps) in have:
                    continue
                row = run_one(env_id, algo, seed, args.steps, args.eval_episodes, **overrides)
                with log.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                done.append(row)
                print(
                    f"{env_id} {algo} seed {seed}: return {row['eval_return']:.3f} "
                    f"win rate {row['eval_win_rate']} ({row['wall_s']:.0f} s)",
                    flush=True,
                )
    rows = []
    for env_id in args.envs:
        for algo in args.algos:
            runs = [
                r
                for r in done
                if r["env"] == env_id
                and r["algo"] == algo
                and r.get("budget", r["steps"]) == args.steps
            ]
            if not runs:
                continue
            ret = mean_ci95([r["eval_return"] for r in runs])
            wins = [r["eval_win_rate"] for r in runs if r["eval_win_rate"] is not None]
            win = mean_ci95(wins) if wins else (float("nan"), float("nan"))
            rows.append(
                [
                    env_id,
                    algo,
                    len(runs),
                    args.steps,
                    f"{ret[0]:.3f} ± {ret[1]:.3f}",
                    f"{win[0]:.3f} ± {win[1]:.3f}",
                    runs[0]["reference"],
                ]
            )
    print_table(
        ["env", "algo", "seeds", "steps", "greedy return", "greedy win rate", "reference"], rows
    )
    print(f"\ncommand: {command_line()}")


if __name__ == "__main__":
    main()
