"""Command line: ``mapograph train | eval | resume | graph | tune | bench``.

A user error (bad value, missing file, full disk, refused checkpoint...) prints
one line (``mapograph: error: ...``) and exits with code 2; a bug in mapograph
prints its traceback and a line saying it is a bug, and exits with code 1.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import shutil
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

RUN_FILE = "run.yaml"

#: What a run folder holds (``train --overwrite`` removes exactly these).
RUN_FILES = (
    "run.yaml",
    "config.yaml",
    "checkpoint.pt",
    "progress.csv",
    "summary.json",
    "graph.png",
)
RUN_DIRS = ("tb",)


def _parse_env_kwargs(items: Sequence[str] | None) -> dict[str, Any]:
    """``["n_actions=3", "trap=0.5"]`` -> ``{"n_actions": 3, "trap": 0.5}`` (YAML scalars, no eval)."""
    kwargs: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--env-kwarg expects KEY=VALUE, got {item!r}")
        kwargs[key] = yaml.safe_load(value)
    return kwargs


def _write_run_file(
    out: Path, env_id: str, env_kwargs: dict, num_envs: int, reference: dict | None = None
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    run = {"env": env_id, "env_kwargs": env_kwargs, "num_envs": num_envs, "reference": reference}
    (out / RUN_FILE).write_text(yaml.safe_dump(run, sort_keys=False))


def _train_config(args: argparse.Namespace):
    """The run's config: the env's reference, then ``--config``, then the flags."""
    from mapograph.train import config_with_reference

    flags = {"algo": args.algo, "total_steps": args.steps, "seed": args.seed}
    flags["num_envs"] = args.num_envs
    return config_with_reference(args.env, args.config, flags, not args.no_reference)


def _read_run_file(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a mapograph run folder (no {RUN_FILE})")
    try:
        run = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(run, dict):
        raise ValueError(f"{path} must be a mapping with env, env_kwargs and num_envs")
    if not isinstance(run.get("env"), str):
        raise ValueError(f"{path} lacks 'env' (the env id the run was trained on)")
    copies = run.get("num_envs")
    if not isinstance(copies, int) or isinstance(copies, bool) or copies < 1:
        raise ValueError(f"{path}: num_envs must be a positive int, got {copies!r}")
    if not isinstance(run.get("env_kwargs") or {}, dict):
        raise ValueError(f"{path}: env_kwargs must be a mapping")
    return run


def _existing_run_files(out: Path) -> list[str]:
    """The run files ``out`` already holds (``[]``: a new or empty folder)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    names = [*RUN_FILES, *RUN_DIRS]
    return [name for name in names if (out / name).exists()]


def _clear_run(out: Path) -> None:
    """Remove a run's files from ``out`` (``--overwrite``); nothing else in the folder."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for name in RUN_DIRS:
        shutil.rmtree(out / name, ignore_errors=True)
    for tmp in out.glob("checkpoint.pt.*.tmp"):
        tmp.unlink(missing_ok=True)


def _check_config_path(source: str | None) -> None:
    """``--config`` must name an existing file."""
    if source is None:
        return
    path = Path(source)
    if not path.exists():
        raise ValueError(f"--config {source}: no such file")
    if not path.is_file():
        raise ValueError(f"--config {source} is not a file")


def _make_env(env_id: str, num_envs: int, seed: int, env_kwargs: dict):
    from mapograph.envs import make

    return make(env_id, num_envs=num_envs, seed=seed, **env_kwargs)


def _progress_lines(total_steps: int, every: float = 0.1) -> Callable[[dict], None] | None:
    """Plain progress lines at every 10% of the steps when stdout is not a terminal.

    On a terminal the progress bar shows progress; in a log or a pipe a bar would be
    noise, so a few plain lines say how far the run is instead.
    """
    if sys.stdout.isatty():
        return None
    state = {"next": 0.0}

    def report(row: dict) -> None:
        fraction = row["step"] / total_steps
        if fraction + 1e-9 >= state["next"]:
            state["next"] = fraction + every
            print(
                f"step {row['step']:>9}/{total_steps}  return {row['return_mean']:.3f}  "
                f"env-steps/s {row['env_steps_per_s']:.0f}  batches {len(row['batches'])}",
                flush=True,
            )

    return report


def _check_resume_flags(args: argparse.Namespace, run_dir: Path) -> None:
    """``train --resume`` continues a run with its own settings: refuse flags that differ.

    Only ``--steps`` changes a resumed run; ``--env``, ``--num-envs``, ``--seed``,
    ``--algo``, ``--env-kwarg``, ``--config`` and ``--no-reference`` must match the run
    (or be left out where optional),
    so that a typo does not silently continue another setup.
    """
    from mapograph.algos import ALGORITHMS
    from mapograph.train import load_checkpoint

    run = _read_run_file(run_dir)
    _require_checkpoint(run_dir)
    saved = load_checkpoint(run_dir)["config"]
    conflicts = []
    if args.env != run["env"]:
        conflicts.append(f"--env {args.env} (the run's: {run['env']})")
    if args.num_envs is not None and args.num_envs != run["num_envs"]:
        conflicts.append(f"--num-envs {args.num_envs} (the run's: {run['num_envs']})")
    if args.seed is not None and args.seed != saved.get("seed"):
        conflicts.append(f"--seed {args.seed} (the run's: {saved.get('seed')})")
    if args.algo is not None and ALGORITHMS.canonical(args.algo) != ALGORITHMS.canonical(
        saved.get("algo", "")
    ):
        conflicts.append(f"--algo {args.algo} (the run's: {saved.get('algo')})")
    if args.env_kwarg and _parse_env_kwargs(args.env_kwarg) != (run.get("env_kwargs") or {}):
        conflicts.append(
            f"--env-kwarg {' '.join(args.env_kwarg)} (the run's: {run.get('env_kwargs')})"
        )
    if args.config is not None or args.no_reference:
        _check_config_path(args.config)
        # flags left out take the run's values (as the resumed run does)
        as_run = argparse.Namespace(**vars(args))
        as_run.algo = args.algo if args.algo is not None else saved.get("algo")
        as_run.seed = args.seed if args.seed is not None else saved.get("seed")
        wanted = _train_config(as_run)[0].replace(num_envs=run["num_envs"]).to_dict()
        differ = sorted(
            key
            for key, value in wanted.items()
            if key not in ("total_steps", "lr", "critic_lr") and value != saved.get(key, value)
        )
        if differ:
            flag = "--config" if args.config is not None else "--no-reference"
            conflicts.append(f"{flag} (differs from the run's config in {', '.join(differ)})")
    if conflicts:
        raise ValueError(
            f"--resume continues {run_dir} with its own settings, but "
            f"{'; '.join(conflicts)}: drop these flags (only --steps changes a resumed run) "
            "or train into another --out"
        )


def cmd_train(args: argparse.Namespace) -> int:
    """``mapograph train``: train and write progress.csv, checkpoint.pt and summary.json."""
    from mapograph.train import Trainer

    out = Path(args.out)
    existing = _existing_run_files(out)
    if existing and args.resume:
        _check_resume_flags(args, out)
        args.run = args.out
        return cmd_resume(args)
    if existing and not args.overwrite:
        raise ValueError(
            f"--out {out} already holds a run ({', '.join(existing)}): pass --resume to "
            "continue it, --overwrite to replace it, or choose another folder"
        )
    if args.resume:
        raise ValueError(f"--resume: {out} holds no run to continue")
    _check_config_path(args.config)
    cfg, reference = _train_config(args)
    cfg = cfg.replace(num_envs=cfg.env_copies())  # the env is built with it: record it
    env_kwargs = _parse_env_kwargs(args.env_kwarg)
    env = _make_env(args.env, cfg.num_envs, cfg.seed, env_kwargs)
    try:
        trainer = Trainer(env, cfg, out_dir=out)  # validates everything before a file is written
        if existing:
            _clear_run(out)
        _write_run_file(
            out,
            args.env,
            env_kwargs,
            cfg.num_envs,
            None if reference is None else reference.to_dict(),
        )
        cfg.to_yaml(out / "config.yaml")
        using = f" (reference {reference.name})" if reference is not None else ""
        print(
            f"training {cfg.algo} on {args.env}{using} for {cfg.total_steps} steps -> {out}",
            flush=True,
        )
        result = trainer.train(_progress_lines(cfg.total_steps))
        summary = _summarize(trainer, result.history, args.eval_episodes)
    finally:
        env.close()
    _write_summary(out, summary)
    return 0


def _write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """Write ``summary.json`` (strict JSON) into the run folder and print it."""
    text = json.dumps(summary, indent=2, allow_nan=False)
    (run_dir / "summary.json").write_text(text)
    print(text)


def _finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def _summarize(trainer, history: list[dict], eval_episodes: int) -> dict[str, Any]:
    """``summary.json``: strict JSON; the final return is the last iteration's that ended episodes."""
    last = history[-1] if history else {}
    returns = [h["return_mean"] for h in history if math.isfinite(h.get("return_mean", math.nan))]
    summary: dict[str, Any] = {
        "algo": trainer.cfg.algo,
        "steps": trainer.env_steps,
        "iterations": trainer.iteration,
        "final_return_mean": returns[-1] if returns else None,
        "collect_s_mean": sum(h["collect_s"] for h in history) / max(len(history), 1),
        "update_s_mean": sum(h["update_s"] for h in history) / max(len(history), 1),
        "last_batches": last.get("batches"),
    }
    if eval_episodes > 0:
        summary["eval"] = trainer.evaluate(eval_episodes)
    return _finite_or_none(summary)


def cmd_eval(args: argparse.Namespace) -> int:
    """``mapograph eval RUN``: evaluate the checkpoint of a run folder."""
    from mapograph.train import Trainer

    run_dir = Path(args.run)
    run = _read_run_file(run_dir)
    env = _make_env(run["env"], run["num_envs"], args.seed, run.get("env_kwargs") or {})
    try:
        trainer = Trainer.load(run_dir, env)
        algorithm = trainer.algorithm
        if args.policy == "seq" and algorithm.policy("seq") is algorithm.policy("ind"):
            print(
                f"mapograph: note: {trainer.cfg.algo} acts with one policy; "
                "--policy seq evaluates that one",
                file=sys.stderr,
            )
        result = trainer.evaluate(
            args.episodes, deterministic=not args.stochastic, policy=args.policy
        )
    finally:
        env.close()
    print(json.dumps(result, indent=2))
    return 0


def _count(least: int):
    """An argparse type: an int of at least ``least`` (argparse's one-line error otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an int") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be >= {least}, got {value}")
        return value

    return parse


def cmd_resume(args: argparse.Namespace) -> int:
    """``mapograph resume RUN``: continue a run from its last checkpoint."""
    from mapograph.train import Trainer

    run_dir = Path(args.run)
    run = _read_run_file(run_dir)
    overrides = {"total_steps": args.steps} if args.steps is not None else {}
    for flag in ("lr", "critic_lr"):  # e.g. after a divergence: continue more slowly
        if getattr(args, flag, None) is not None:  # `train --resume` has no such flags
            overrides[flag] = getattr(args, flag)
    from mapograph.train import load_checkpoint

    _require_checkpoint(run_dir)
    seed = int(load_checkpoint(run_dir)["config"]["seed"])
    env = _make_env(run["env"], run["num_envs"], seed, run.get("env_kwargs") or {})
    try:
        trainer = Trainer.load(run_dir, env, **overrides)
        if trainer.env_steps >= trainer.cfg.total_steps:
            print(
                f"the run is at step {trainer.env_steps}, already past {trainer.cfg.total_steps}: "
                "nothing to train (give a larger --steps)",
                flush=True,
            )
        else:
            print(f"resuming at step {trainer.env_steps} of {trainer.cfg.total_steps}", flush=True)
        result = trainer.train(_progress_lines(trainer.cfg.total_steps))
        summary = _summarize(trainer, result.history, args.eval_episodes)
    finally:
        env.close()
    _write_summary(run_dir, summary)
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    """``mapograph graph RUN``: draw the learned interdependence graph and its batches to PNG."""
    from mapograph.train import Trainer
    from mapograph.viz import plot_interdependence

    run_dir = Path(args.run)
    run = _read_run_file(run_dir)
    env = _make_env(run["env"], run["num_envs"], 0, run.get("env_kwargs") or {})
    try:
        trainer = Trainer.load(run_dir, env)
        graph = trainer.interdependence()
        true_dag = env.interdependence() if hasattr(env, "interdependence") else None
        out = Path(args.out) if args.out else run_dir / "graph.png"
        plot_interdependence(graph, batches=trainer.batches, path=out, true_dag=true_dag)
    finally:
        env.close()
    print(f"wrote {out}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """``mapograph bench``: collect and update throughput of one algorithm on one env."""
    from mapograph.train import TrainConfig, Trainer

    if args.iterations < 1:
        raise ValueError(f"--iterations must be >= 1, got {args.iterations}")
    cfg = TrainConfig(algo=args.algo, num_envs=args.num_envs, total_steps=10**12, progress=False)
    env = _make_env(args.env, args.num_envs, 0, _parse_env_kwargs(args.env_kwarg))
    try:
        trainer = Trainer(env, cfg)
        trainer.train_iteration()  # warm-up
        rows = [trainer.train_iteration() for _ in range(args.iterations)]
    finally:
        env.close()
    steps = trainer.steps_per_iteration * len(rows)
    result = {
        "env": args.env,
        "algo": args.algo,
        "n_agents": trainer.n_agents,
        "collect_env_steps_per_s": steps / sum(r["collect_s"] for r in rows),
        "update_env_steps_per_s": steps / sum(r["update_s"] for r in rows),
        "update_s_per_iteration": sum(r["update_s"] for r in rows) / len(rows),
        "batches": rows[-1]["batches"],
    }
    print(json.dumps(result, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``mapograph`` command."""
    from mapograph.algos import algorithms
    from mapograph.envs import families

    parser = argparse.ArgumentParser(prog="mapograph", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a team and write a run folder")
    p.add_argument(
        "--env",
        required=True,
        help=f"env id FAMILY:TASK, e.g. coordination:chain-6 (families: {', '.join(families())})",
    )
    p.add_argument("--algo", help=f"one of {', '.join(algorithms())} (default: the config's)")
    p.add_argument("--steps", type=int, help="total env steps (summed over copies)")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument(
        "--config",
        help="TrainConfig YAML (overrides the env's reference config; flags override both)",
    )
    p.add_argument(
        "--no-reference",
        action="store_true",
        help="start from mapograph's defaults instead of the env family's reference config",
    )
    p.add_argument("--num-envs", type=int)
    p.add_argument(
        "--env-kwarg", action="append", metavar="KEY=VALUE", help="passed to the env factory"
    )
    p.add_argument("--eval-episodes", type=_count(0), default=32)
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--resume", action="store_true", help="continue the run already in --out (its config)"
    )
    what.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a run's checkpoint")
    p.add_argument("run")
    p.add_argument("--episodes", type=_count(1), default=32)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--policy", choices=["ind", "seq"], default="ind")
    p.add_argument("--stochastic", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("resume", help="continue a run from its checkpoint")
    p.add_argument("run")
    p.add_argument("--steps", type=int, help="new total steps")
    p.add_argument("--lr", type=float, help="new policy learning rate (e.g. after a divergence)")
    p.add_argument("--critic-lr", type=float, help="new critic learning rate")
    p.add_argument("--eval-episodes", type=_count(0), default=32)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("graph", help="plot the learned interdependence graph of a run")
    p.add_argument("run")
    p.add_argument("--out", help="PNG path (default RUN/graph.png)")
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("bench", help="measure collect/update throughput of an algorithm on an env")
    p.add_argument("--env", required=True)
    p.add_argument("--algo", default="mappo", help=f"one of {', '.join(algorithms())}")
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--env-kwarg", action="append", metavar="KEY=VALUE")
    p.set_defaults(func=cmd_bench)

    for name, module in _EXTRA_COMMANDS.items():
        register: Callable = __import__(module, fromlist=["register_cli"]).register_cli
        register(sub, name)
    return parser


# Subcommands that live beside their feature (module must define register_cli(sub, name)).
_EXTRA_COMMANDS: dict[str, str] = {"tune": "mapograph.tune._cli"}


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler ending a job, ``kill``), raised where the process is so that it
    stops as Ctrl-C does: a checkpoint being written is finished or removed, and the
    message says what is left to resume."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mapograph`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as stop:
        print(f"mapograph: interrupted{_interrupted_hint(args)}", file=sys.stderr)
        return 143 if isinstance(stop, Terminated) else 130
    except Exception as exc:
        if not is_user_error(exc):
            traceback.print_exc()
            print(
                f"mapograph: internal error: {type(exc).__name__} is a bug in mapograph, not in "
                "your input; please report it with the traceback above",
                file=sys.stderr,
            )
            return 1
        print(f"mapograph: error: {one_line(exc)}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted_hint(args: argparse.Namespace) -> str:
    """What an interrupted ``train`` or ``resume`` left: a checkpoint to resume, or none yet."""
    if args.command not in ("train", "resume"):
        return ""
    from mapograph.train import CHECKPOINT_NAME

    run_dir = Path(args.out if args.command == "train" else args.run)
    if (run_dir / CHECKPOINT_NAME).is_file():
        return f" (the last checkpoint is intact; `mapograph resume {run_dir}` continues it)"
    return (
        f" before the first checkpoint of {run_dir}: nothing to resume; "
        "train again with --overwrite"
    )


def _require_checkpoint(run_dir: Path) -> None:
    """A run folder stopped before its first checkpoint cannot be resumed: say so and why."""
    from mapograph.train import CHECKPOINT_NAME

    path = run_dir / CHECKPOINT_NAME
    if not path.exists():
        raise ValueError(
            f"checkpoint not found: {path} (the run stopped before its first checkpoint, "
            "written every checkpoint_every iterations): nothing to resume; start it again "
            f"with `mapograph train ... --out {run_dir} --overwrite`"
        )


def is_user_error(exc: BaseException) -> bool:
    """Errors that come from the input, the files or the machine, not from a bug."""
    import torch

    from mapograph._errors import MapographError

    return isinstance(
        exc,
        (MapographError, ValueError, OSError, MemoryError, torch.OutOfMemoryError, yaml.YAMLError),
    )


def one_line(exc: BaseException) -> str:
    """``exc``'s message on one line (a full disk and an out-of-memory say so plainly)."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = f" writing {exc.filename}" if exc.filename else ""
        return f"no space left on the device{where}"
    if isinstance(exc, OSError) and exc.errno == errno.EROFS:
        where = f": {exc.filename}" if exc.filename else ""
        return f"read-only file system{where}"
    if isinstance(exc, (MemoryError,)) or type(exc).__name__ == "OutOfMemoryError":
        return f"out of memory ({' '.join(str(exc).split())[:200]}): use a smaller model or fewer copies"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 600 else text[:597] + "..."


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
