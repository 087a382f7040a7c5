"""MAPPO, HAPPO, A2PO and B2MAPO on continuous tasks (Multi-Agent MuJoCo, VMAS balance).

    python benchmarks/continuous.py --env mamujoco:HalfCheetah-6x1 --steps 200000 \
        --seeds 0 1 2 [--algos mappo happo a2po b2mapo] [--reference] \
        [--config '{"share_params": true}' --label " shared"] \
        [--out benchmarks/results/continuous]

Each (algo, seed) run trains for ``--steps`` env steps (summed over copies) and
appends one JSON line to ``OUT/<env>.jsonl`` (runs already there are skipped,
so the script resumes): the learning curve (mean return of the episodes that
ended in each iteration), the final greedy evaluation of the execution policy
and the wall time. It then prints final returns (mean +- 95% CI over seeds) and
draws ``OUT/<env>.png`` (mean curve per algorithm, the band spans the seeds).
``--reference`` starts from the env family's shipped reference configuration;
``--config`` overrides fields of it (JSON), and ``--label`` names such runs
(``mappo shared``) so that they sit beside the plain ones in the same file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _bench import command_line, mean_ci95, print_table, single_thread

import mapograph as mg


def run(env_id: str, algo: str, seed: int, args: argparse.Namespace) -> dict:
    """Train one (algo, seed) and return its record."""
    env_kwargs = json.loads(args.env_kwargs) if args.env_kwargs else {}
    env = mg.envs.make(env_id, num_envs=args.num_envs, seed=seed, **env_kwargs)
    fields = {
        "algo": algo,
        "seed": seed,
        "total_steps": args.steps,
        "num_envs": args.num_envs,
        "rollout_length": args.rollout_length,
        "progress": False,
        "tensorboard": False,
        **(json.loads(args.config) if args.config else {}),
    }
    try:
        if args.reference:
            cfg = mg.TrainConfig.for_env(env_id, **fields)
        else:
            cfg = mg.TrainConfig(**fields)
        trainer = mg.Trainer(env, cfg)
        start = time.perf_counter()
        result = trainer.train()
        wall = time.perf_counter() - start
        evaluation = trainer.evaluate(args.eval_episodes)
    finally:
        env.close()
    return {
        "env": env_id,
        "algo": algo + args.label,
        "config": args.config,
        "seed": seed,
        "steps": [h["step"] for h in result.history],
        "returns": [h["return_mean"] for h in result.history],
        "eval_return": evaluation["return_mean"],
        "wall_s": wall,
        "steps_per_s": args.steps / wall,
    }


def plot(records: list[dict], path: Path, title: str) -> None:
    """Mean curve per algorithm with a band from the lowest to the highest seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 4))
    for algo in sorted({r["algo"] for r in records}):
        runs = [r for r in records if r["algo"] == algo]
        length = min(len(r["returns"]) for r in runs)
        steps = np.array(runs[0]["steps"][:length])
        curves = np.array([r["returns"][:length] for r in runs], dtype=float)
        # iterations where some seed finished no episode (long episodes) are skipped
        keep = np.isfinite(curves).all(0)
        steps, curves = steps[keep], curves[:, keep]
        ax.plot(steps, curves.mean(0), marker=".", label=f"{algo} ({len(runs)} seeds)")
        if len(runs) > 1:
            ax.fill_between(steps, curves.min(0), curves.max(0), alpha=0.15)
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return (training)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="mamujoco:HalfCheetah-6x1")
    parser.add_argument("--env-kwargs", default="", help="JSON, e.g. '{\"agent_obsk\": 1}'")
    parser.add_argument("--algos", nargs="+", default=["mappo", "happo", "a2po", "b2mapo"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--rollout-length", type=int, default=200)
    parser.add_argument("--eval-episodes", type=int, default=8)
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--config", default="", help="JSON config overrides")
    parser.add_argument("--label", default="", help="appended to the algo's name in records")
    parser.add_argument("--out", default="benchmarks/results/continuous")
    args = parser.parse_args()
    single_thread()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.env.replace(":", "_").replace("-", "_")
    log = out / f"{stem}.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {
        (r["algo"], r["seed"]) for r in records if len(r["steps"]) and r["steps"][-1] >= args.steps
    }
    names = [algo + args.label for algo in args.algos]
    for seed in args.seeds:  # seed-major: every algorithm gets seed 0 first
        for algo in args.algos:
            if (algo + args.label, seed) in done:
                continue
            record = run(args.env, algo, seed, args)
            records.append(record)
            with log.open("a") as f:
                f.write(json.dumps(record) + "\n")
            print(
                f"  {record['algo']} seed {seed}: final eval {record['eval_return']:.1f} "
                f"({record['steps_per_s']:.0f} steps/s)",
                flush=True,
            )
    if args.label:  # the labeled runs beside the plain ones already in the file
        names = [*dict.fromkeys([*args.algos, *(r["algo"] for r in records), *names])]
    records = [r for r in records if r["algo"] in names and r["seed"] in args.seeds]
    rows = []
    for algo in names:
        runs = [r for r in records if r["algo"] == algo]
        if not runs:
            continue
        final = [next((v for v in reversed(r["returns"]) if v == v), float("nan")) for r in runs]
        train_mean, train_ci = mean_ci95(final)
        eval_mean, eval_ci = mean_ci95([r["eval_return"] for r in runs])
        speed = sum(r["steps_per_s"] for r in runs) / len(runs)
        rows.append(
            [
                algo,
                len(runs),
                f"{train_mean:.1f} +- {train_ci:.1f}",
                f"{eval_mean:.1f} +- {eval_ci:.1f}",
                round(speed),
            ]
        )
    print_table(["algo", "seeds", "final train return", "greedy eval return", "steps/s"], rows)
    plot(records, out / f"{stem}.png", f"{args.env}, {args.steps} steps")
    print(f"\n{command_line()}; {time.strftime('%Y-%m-%d')}; figure {out / (stem + '.png')}")


if __name__ == "__main__":
    main()
