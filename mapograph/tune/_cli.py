"""``mapograph tune``: the command-line face of :func:`mapograph.tune.optimize`."""

from __future__ import annotations

import argparse
import json
import sys

#: Exit code of ``mapograph tune`` when a trial was lost (its worker died and no retry finished).
EXIT_TRIALS_LOST = 3


def cmd_tune(args: argparse.Namespace) -> int:
    """Run a study and print the best trial."""
    from mapograph.train import config_with_reference
    from mapograph.tune._export import best_trial
    from mapograph.tune._optimize import optimize
    from mapograph.tune._workers import trial_accounting

    if args.trials < 1:
        raise ValueError(f"--trials must be >= 1, got {args.trials}")
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.eval_episodes < 1:
        raise ValueError(f"--eval-episodes must be >= 1, got {args.eval_episodes}")
    if args.seeds_per_trial < 1:
        raise ValueError(f"--seeds-per-trial must be >= 1, got {args.seeds_per_trial}")
    base, reference = config_with_reference(
        args.env,
        args.config,
        {"num_envs": args.num_envs, "algo": args.algo, "seed": args.seed},
        not args.no_reference,
        default_algo="b2mapo",
    )
    if reference is not None:
        print(
            f"base config: reference {reference.name} ({'; '.join(reference.sources)})",
            file=sys.stderr,
        )
    study = optimize(
        args.env,
        args.trials,
        storage=args.storage,
        study_name=args.study,
        multi_objective=args.multi_objective,
        steps=args.steps,
        base_config=base,
        space=args.space,
        out_dir=args.out,
        workers=args.workers,
        metric=args.metric,
        eval_episodes=args.eval_episodes,
        seeds_per_trial=args.seeds_per_trial,
        sampler_seed=args.sampler_seed,
    )
    accounting = trial_accounting(study)
    summary = {"study": study.study_name, "trials": accounting}
    try:
        best = best_trial(study)
        summary.update(
            best_values=best.values, best_params=best.params, config=f"{args.out}/best.yaml"
        )
    except ValueError:
        pass
    print(json.dumps(summary, indent=2, default=str))
    if accounting["failed"]:
        print(
            f"mapograph: {accounting['failed']} trial(s) failed, {accounting['worker_died']} of "
            f"them because their worker died; {accounting['retried']} retried",
            file=sys.stderr,
        )
    if accounting["lost"]:
        print(
            f"mapograph: error: {accounting['lost']} trial(s) lost: their worker died and no "
            "retry finished (rerun `mapograph tune` with the same --storage and --study)",
            file=sys.stderr,
        )
        return EXIT_TRIALS_LOST
    return 0


def register_cli(sub: argparse._SubParsersAction, name: str) -> None:
    """Add the ``tune`` subcommand."""
    from mapograph.tune._search_space import SPACES

    p = sub.add_parser(name, help="tune B2MAPO's partition hyperparameters with Optuna")
    p.add_argument("--env", required=True)
    p.add_argument("--trials", type=int, required=True)
    p.add_argument("--steps", type=int, default=20_000, help="env steps per trial")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    p.add_argument(
        "--storage", help="sqlite:///PATH (default: OUT/study.db), postgresql://..., journal:PATH"
    )
    p.add_argument(
        "--study", help="study name (workers elsewhere join with the same --storage and --study)"
    )
    p.add_argument(
        "--multi-objective", action="store_true", help="return vs update time (no pruning)"
    )
    p.add_argument("--space", default="partition", choices=SPACES.names())
    p.add_argument("--config", help="base TrainConfig YAML (overrides the env's reference config)")
    p.add_argument(
        "--no-reference",
        action="store_true",
        help="start from mapograph's defaults instead of the env family's reference config",
    )
    p.add_argument(
        "--algo",
        help="algorithm to tune (its reference applies; default: the --config's, else b2mapo)",
    )
    p.add_argument(
        "--metric",
        default="return",
        choices=["return", "win_rate"],
        help="what trials maximize: greedy evaluation return, or win rate (SMAX, SMACv2, football)",
    )
    p.add_argument(
        "--eval-episodes", type=int, default=16, help="greedy episodes per evaluation (default 16)"
    )
    p.add_argument("--seed", type=int, help="training seed of every trial (default: the config's)")
    p.add_argument(
        "--seeds-per-trial",
        type=int,
        default=1,
        help="training runs per trial, seeds SEED, SEED+1, ... (the trial scores their mean)",
    )
    p.add_argument(
        "--sampler-seed",
        type=int,
        help="seed of the sampler, so that the study repeats its suggestions (default: unseeded)",
    )
    p.add_argument("--num-envs", type=int)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_tune)
