"""A multi-objective Optuna study of B2MAPO's partition hyperparameters, then best vs default.

    python benchmarks/tune_study.py [--env coordination:random-10] [--trials 30] [--steps 30000]
        [--seeds 3] [--out benchmarks/results/tune]

The study maximizes the evaluation return and minimizes the update seconds per
iteration (Pareto front in ``OUT/pareto_front.png``). Then the Pareto trial with
the highest return (``OUT/best.yaml``) and the default B2MAPO configuration are
trained again on the same seeds (not the tuning seed) and compared.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from _bench import command_line, mean_ci95, print_table, write_result

import mapograph as mg


def final_return(env_id: str, cfg: mg.TrainConfig, seed: int) -> tuple[float, float]:
    env = mg.envs.make(env_id, num_envs=cfg.env_copies(), seed=seed)
    trainer = mg.Trainer(env, cfg.replace(seed=seed, progress=False, tensorboard=False))
    history = trainer.train().history
    value = trainer.evaluate(64)["return_mean"] / env.spec.episode_limit
    return value, statistics.fmean(h["update_s"] for h in history)


def best_trial_params(front: list) -> dict:
    """Parameters of the Pareto trial with the highest return (the one ``best.yaml`` holds)."""
    return dict(front[0].params) if front else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="coordination:random-10")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/tune")
    args = parser.parse_args()
    out = Path(args.out)
    base = mg.TrainConfig(algo="b2mapo", total_steps=args.steps, seed=100)
    study = mg.tune.optimize(
        args.env,
        args.trials,
        steps=args.steps,
        base_config=base,
        out_dir=out,
        multi_objective=True,
        study_name="tune-study",
        report_every=10,
        eval_episodes=32,
    )
    front = sorted(study.best_trials, key=lambda t: -t.values[0])
    print("Pareto front (return, update s/iter):")
    for t in front:
        print(
            f"  trial {t.number}: return {t.values[0]:.3f}, update {t.values[1]:.3f}s, {t.params}"
        )
    best = mg.TrainConfig.from_yaml(out / "best.yaml")
    rows, per_seed = [], []
    for label, cfg in (("default b2mapo", base), ("tuned (best.yaml)", best)):
        results = [
            final_return(args.env, cfg.replace(total_steps=args.steps), seed)
            for seed in range(args.seeds)
        ]
        mean, half = mean_ci95([r[0] for r in results])
        rows.append([label, f"{mean:.3f} ± {half:.3f}", statistics.fmean(r[1] for r in results)])
        per_seed.append(
            {
                "configuration": label,
                "returns": [r[0] for r in results],
                "update_s": [r[1] for r in results],
            }
        )
    print()
    header = [
        "configuration",
        f"final return / optimum ({args.seeds} seeds, 95% CI)",
        "update s/iter",
    ]
    print_table(header, rows)
    complete = [t for t in study.trials if t.values is not None]
    write_result(
        out / "summary.json",
        {
            "env": args.env,
            "trials": args.trials,
            "steps": args.steps,
            "seeds": args.seeds,
            "header": header,
            "rows": rows,
            "per_seed": per_seed,
            "best_params": best_trial_params(front),
            "all_trials": [{"number": t.number, "values": t.values} for t in complete],
            "pareto_front": [
                {"number": t.number, "values": t.values, "params": t.params} for t in front
            ],
        },
    )
    print(f"\ncommand: {command_line()}")


if __name__ == "__main__":
    main()
