"""``optimize``: run a study (in one or several worker processes) and write its outputs."""

from __future__ import annotations

import itertools
import multiprocessing
from pathlib import Path
from typing import Any

import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from mapograph.train import TrainConfig
from mapograph.tune._export import export_best
from mapograph.tune._objective import (
    METRICS,
    DivergedError,
    Objective,
    as_train_config,
    check_positive_ints,
)
from mapograph.tune._plots import save_plots
from mapograph.tune._search_space import SPACES, SpaceFn
from mapograph.tune._storage import create_or_load_study, resolve_storage
from mapograph.tune._workers import FINISHED, supervise


def default_pruner(steps: int | None = None) -> optuna.pruners.BasePruner:
    """Median pruning after 3 finished trials, never in the first quarter of a trial's budget.

    Early evaluations of an RL run are mostly noise (a trial that will win is often
    behind after a few thousand steps), so no trial is pruned before ``steps // 4``
    env steps; the objective reports on a grid of budget tenths, so trials with
    different rollout lengths are compared at the same budget fraction.
    """
    warmup = max(1, steps // 4) if steps else 1
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=warmup)


def seeded_sampler(multi_objective: bool, seed: int) -> optuna.samplers.BaseSampler:
    """Optuna's default sampler of a study (TPE; NSGA-II for multi-objective), seeded."""
    if multi_objective:
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def create_study(
    storage: Any,
    study_name: str,
    multi_objective: bool,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Create or load the study (joiners racing to create it retry instead of failing).

    Raises:
        ValueError: a study of that name exists with other directions (created by hand
            with ``direction="minimize"``, or single- vs multi-objective): Optuna loads it
            as it is, so its trials would minimize the return, or every trial would
            train and then fail on the number of values.
    """
    directions = ["maximize", "minimize"] if multi_objective else ["maximize"]
    if multi_objective:
        study = create_or_load_study(
            storage, study_name=study_name, directions=directions, sampler=sampler
        )
    else:
        study = create_or_load_study(
            storage,
            study_name=study_name,
            direction="maximize",
            sampler=sampler,
            pruner=pruner or default_pruner(),
        )
    found = [d.name.lower() for d in study.directions]
    if found != directions:
        raise ValueError(
            f"study {study_name!r} in the storage has directions {found}, this run needs "
            f"{directions} (multi_objective={multi_objective}): use another study name"
        )
    return study


def run_worker(
    env_id: str,
    n_trials: int,
    storage: Any,
    study_name: str,
    base_config: TrainConfig,
    space: str | SpaceFn,
    multi_objective: bool,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    report_every: int = 5,
    eval_episodes: int = 16,
    env_kwargs: dict | None = None,
    timeout: float | None = None,
    metric: str = "return",
    seeds_per_trial: int = 1,
) -> None:
    """One worker: take trials from the shared study until ``n_trials`` have finished."""
    study = create_study(storage, study_name, multi_objective, sampler, pruner)
    finished = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    if finished >= n_trials and not waiting:
        return  # a replacement worker that arrives after the work is done
    objective = Objective(
        env_id,
        base_config,
        space,
        report_every,
        eval_episodes,
        env_kwargs,
        multi_objective,
        metric,
        seeds_per_trial,
    )
    study.optimize(
        objective,
        callbacks=[MaxTrialsCallback(n_trials, states=FINISHED)],
        catch=(DivergedError,),
        timeout=timeout,
        n_trials=n_trials * 4,  # upper bound; MaxTrialsCallback stops at n_trials finished
    )


def _worker_entry(kwargs: dict) -> None:
    kwargs["storage"] = resolve_storage(kwargs["storage"], kwargs.pop("out_dir"))
    run_worker(**kwargs)


def check_inputs(
    env_id: str,
    steps: int,
    base_config: TrainConfig | dict | None,
    space: str | SpaceFn,
    report_every: int,
    eval_episodes: int,
    env_kwargs: dict | None,
    seeds_per_trial: int = 1,
) -> TrainConfig:
    """Refuse bad arguments of :func:`optimize` before a study or a trial exists (else the
    first trial fails deep inside and stays in the storage); returns the trials' base
    config (``base_config``, a dict of its fields, or B2MAPO's defaults, for ``steps``)."""
    check_positive_ints(
        steps=steps,
        report_every=report_every,
        eval_episodes=eval_episodes,
        seeds_per_trial=seeds_per_trial,
    )
    base_config = (
        TrainConfig(algo="b2mapo") if base_config is None else as_train_config(base_config)
    )
    if not callable(space):
        SPACES.get(space)  # an unknown name: ValueError listing the spaces
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise ValueError(f"env_kwargs must be a dict, got {type(env_kwargs).__name__}")
    from mapograph.envs import make

    try:  # one copy, built and closed: the id, the task and its arguments must work
        make(env_id, num_envs=1, seed=0, **(env_kwargs or {})).close()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"env {env_id!r}: {exc}") from None
    return base_config.replace(total_steps=steps)


def optimize(
    env_id: str,
    n_trials: int,
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    multi_objective: bool = False,
    *,
    steps: int = 20_000,
    base_config: TrainConfig | None = None,
    space: str | SpaceFn = "partition",
    out_dir: str | Path = "runs/tune",
    workers: int = 1,
    report_every: int = 5,
    eval_episodes: int = 16,
    env_kwargs: dict | None = None,
    timeout: float | None = None,
    plots: bool = True,
    max_retry: int = 3,
    metric: str = "return",
    seeds_per_trial: int = 1,
    sampler_seed: int | None = None,
) -> optuna.Study:
    """Tune B2MAPO's partition hyperparameters (or any space) on ``env_id``.

    Args:
        env_id: environment id, e.g. ``"coordination:chain-4"``.
        n_trials: trials to finish (complete or pruned) in the study, over all workers.
        storage: ``None`` (SQLite ``study.db`` in ``out_dir``), an ``sqlite:///``,
            ``postgresql://`` or ``journal:`` URL, or an Optuna storage.
        study_name: default ``mapograph-<env_id>``; an existing study is continued.
        sampler: Optuna sampler (default TPE; NSGA-II for multi-objective).
        pruner: Optuna pruner (default ``MedianPruner``). Multi-objective studies
            are never pruned (Optuna cannot prune them).
        multi_objective: maximize ``metric`` and minimize update seconds per iteration.
        steps: env steps per trial (overrides ``base_config.total_steps``).
        base_config: configuration the trial's parameters override.
        space: ``"partition"``, ``"full"`` or a function ``trial -> dict``.
        out_dir: where ``study.db``, ``best.yaml`` and the plots go.
        workers: worker processes on this machine (>1 spawns processes on the same study).
        report_every: iterations between evaluations reported to the pruner.
        eval_episodes: episodes per evaluation.
        env_kwargs: passed to the env factory.
        timeout: seconds per worker.
        plots: write the plots.
        max_retry: how often the trial of a worker that died is retried (``workers > 1``:
            the parent fails it the moment the worker's process exits abnormally).
        metric: what a trial maximizes: ``"return"`` (the greedy evaluation's mean
            return) or ``"win_rate"`` (its win rate; SMAX, SMACv2, football).
        seeds_per_trial: training runs per trial (seeds ``seed, seed + 1, ...``, run in
            lockstep); the trial's reports and value are their mean.
        sampler_seed: seed of the default sampler (TPE; NSGA-II for multi-objective), so
            that a study repeats its suggestions (training is reproducible by the
            config's seed); with ``workers > 1`` the k-th worker started gets
            ``sampler_seed + k`` (workers with one seed would suggest the same first
            trials), and which trial runs where then depends on timing. Not with
            ``sampler``.

    Returns:
        The study (loaded from the storage after the workers finished). Its trials'
        fate (failed, retried, lost) is summarized by :func:`trial_accounting`.
    """
    if not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be a positive int, got {n_trials!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if sampler_seed is not None:
        if sampler is not None:
            raise ValueError("give a sampler or a sampler_seed, not both")
        if isinstance(sampler_seed, bool) or not isinstance(sampler_seed, int) or sampler_seed < 0:
            raise ValueError(f"sampler_seed must be an int >= 0, got {sampler_seed!r}")
        sampler = seeded_sampler(multi_objective, sampler_seed)
    base = check_inputs(
        env_id, steps, base_config, space, report_every, eval_episodes, env_kwargs, seeds_per_trial
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pruner = pruner if pruner is not None else default_pruner(steps)
    name = study_name or f"mapograph-{env_id}"
    resolved = resolve_storage(storage, out)
    common = dict(
        env_id=env_id,
        n_trials=n_trials,
        study_name=name,
        base_config=base,
        space=space,
        multi_objective=multi_objective,
        sampler=sampler,
        pruner=pruner,
        report_every=report_every,
        eval_episodes=eval_episodes,
        env_kwargs=env_kwargs,
        timeout=timeout,
        metric=metric,
        seeds_per_trial=seeds_per_trial,
    )
    # created once here, before any worker starts (and a bad storage fails fast)
    study = create_study(resolved, name, multi_objective, sampler, pruner)
    if workers == 1:
        run_worker(storage=resolved, **common)
    else:
        if storage is not None and not isinstance(storage, str):
            raise ValueError(
                "workers > 1 need the storage as a URL string (each process opens its own)"
            )
        if callable(space) and getattr(space, "__module__", "") == "__main__":
            raise ValueError(
                "with workers > 1 a custom space must be importable (not defined in __main__)"
            )
        ctx = multiprocessing.get_context("spawn")

        started = itertools.count(1)

        def start() -> multiprocessing.process.BaseProcess:
            own = {"storage": storage, "out_dir": str(out)}
            if sampler_seed is not None:  # one stream per worker, none repeating another's
                own["sampler"] = seeded_sampler(multi_objective, sampler_seed + next(started))
            proc = ctx.Process(target=_worker_entry, args=({**common, **own},))
            proc.start()
            return proc

        supervise(start, workers, study, n_trials, max_retry)
    study = optuna.load_study(study_name=name, storage=resolved)
    if any(t.state == TrialState.COMPLETE for t in study.trials):
        export_best(study, out / "best.yaml", base)
        if plots:
            save_plots(study, out)
    return study
