"""MAPPO on SMAX with feed-forward (MLP) and recurrent (GRU) policies, same frames: greedy win rates.

    python benchmarks/recurrent_smax.py --envs smax:3m smax:2s3z --seeds 0 1 \
        --steps 500000 [--eval-episodes 64] [--out benchmarks/results/recurrent_smax] [--report]

Each (env, torso, seed) trains MAPPO at the shipped reference configuration
(``mg.TrainConfig.for_env``; ``recurrent=True`` for the GRU torso, chunks of
``chunk_length`` steps) through :func:`reference_configs.run_one`, then
evaluates the policy greedily. One JSON line per finished run goes to
``OUT/runs.jsonl`` (a rerun skips the runs already there). The script prints
the greedy win rate (mean +- 95% CI over seeds) and draws ``OUT/recurrent_smax.png``
(training win rate per iteration, mean over seeds, one panel per env);
``--report`` only does the last two, over the runs already in the file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _bench import command_line, mean_ci95, print_table, single_thread
from reference_configs import run_one

TORSOS = {"mlp": False, "gru": True}


def plot(records: list[dict], envs: list[str], path: Path) -> None:
    """Training win rate per iteration (mean over seeds), one panel per env."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 3.6), squeeze=False)
    for ax, env_id in zip(axes[0], envs):
        for torso in TORSOS:
            runs = [r for r in records if r["env"] == env_id and r["torso"] == torso]
            if not runs:
                continue
            length = min(len(r["curve"]) for r in runs)
            steps = np.array([p["step"] for p in runs[0]["curve"][:length]])
            wins = np.array(
                [
                    [
                        np.nan if p["win_rate"] is None else p["win_rate"]
                        for p in r["curve"][:length]
                    ]
                    for r in runs
                ],
                dtype=float,
            )
            ax.plot(steps, np.nanmean(wins, 0), label=f"MAPPO {torso} ({len(runs)} seeds)")
        ax.set_title(env_id)
        ax.set_xlabel("env steps")
        ax.set_ylabel("training win rate")
        ax.set_ylim(0, 1)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["smax:3m", "smax:2s3z"])
    parser.add_argument("--torsos", nargs="+", choices=sorted(TORSOS), default=list(TORSOS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--eval-episodes", type=int, default=64)
    parser.add_argument("--out", default="benchmarks/results/recurrent_smax")
    parser.add_argument(
        "--report", action="store_true", help="only print the table and draw the figure"
    )
    args = parser.parse_args()
    single_thread()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "runs.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    have = {(r["env"], r["torso"], r["seed"], r["budget"]) for r in records}
    for env_id in args.envs:
        for seed in args.seeds:  # seed-major: both torsos get seed 0 first
            for torso in args.torsos:
                if args.report or (env_id, torso, seed, args.steps) in have:
                    continue
                record = run_one(
                    env_id,
                    "mappo",
                    seed,
                    args.steps,
                    args.eval_episodes,
                    recurrent=TORSOS[torso],
                )
                record["torso"] = torso
                records.append(record)
                with log.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                print(
                    f"{env_id} {torso} seed {seed}: greedy win rate {record['eval_win_rate']} "
                    f"({record['wall_s']:.0f} s)",
                    flush=True,
                )
    records = [
        r
        for r in records
        if r["env"] in args.envs
        and r["torso"] in args.torsos
        and r["seed"] in args.seeds
        and r["budget"] == args.steps
    ]
    rows = []
    for env_id in args.envs:
        for torso in args.torsos:
            runs = [r for r in records if r["env"] == env_id and r["torso"] == torso]
            if not runs:
                continue
            win, win_ci = mean_ci95([r["eval_win_rate"] for r in runs])
            ret, ret_ci = mean_ci95([r["eval_return"] for r in runs])
            speed = sum(r["steps"] / r["wall_s"] for r in runs) / len(runs)
            rows.append(
                [
                    env_id,
                    torso,
                    len(runs),
                    args.steps,
                    f"{win:.3f} +- {win_ci:.3f}",
                    f"{ret:.3f} +- {ret_ci:.3f}",
                    ", ".join(f"{r['eval_win_rate']:.2f}" for r in runs),
                    round(speed),
                ]
            )
    print_table(
        [
            "env",
            "torso",
            "seeds",
            "steps",
            "greedy win rate",
            "greedy return",
            "per seed",
            "steps/s",
        ],
        rows,
    )
    plot(records, args.envs, out / "recurrent_smax.png")
    print(f"\n{command_line()}; {time.strftime('%Y-%m-%d')}; figure {out / 'recurrent_smax.png'}")


if __name__ == "__main__":
    main()
