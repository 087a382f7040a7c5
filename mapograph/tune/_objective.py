"""The objective: train a configuration, report evaluations, honour pruning."""

from __future__ import annotations

import math
import os
import statistics
from typing import Any

import optuna
import torch

from mapograph._errors import DivergenceError, MapographError
from mapograph.envs import make
from mapograph.train import TrainConfig, Trainer
from mapograph.tune._search_space import SPACES, SpaceFn, search_space


class DivergedError(MapographError):
    """Training produced a non-finite value; the trial is marked failed, not scored."""


#: Objective metrics (``mapograph tune --metric``) and the evaluation key each one reads.
METRICS = {"return": "return_mean", "win_rate": "win_rate"}


def budget_tenth(steps: int, total: int) -> int:
    """The last boundary ``total * k // 10`` (k = 0..10) that ``steps`` has reached."""
    k = min(10, steps * 10 // total)
    return total * k // 10


def check_positive_ints(**values: Any) -> None:
    """Refuse any of ``values`` that is not an int >= 1 (bools included), by its name."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def as_train_config(base_config: Any) -> TrainConfig:
    """``base_config`` as a :class:`TrainConfig` (a dict is read as its fields)."""
    if isinstance(base_config, dict):
        try:
            return TrainConfig(**base_config)
        except TypeError as exc:
            raise ValueError(f"base_config: {exc}") from None
    if not isinstance(base_config, TrainConfig):
        raise ValueError(
            f"base_config must be a TrainConfig or a dict of its fields, "
            f"got {type(base_config).__name__}"
        )
    return base_config


class Objective:
    """Callable for ``study.optimize``: one trial = one training run.

    The trial's parameters override ``base_config``; the run trains for
    ``base_config.total_steps`` env steps, evaluates the execution policy every
    ``report_every`` iterations on a separate env copy set and reports the first
    evaluation in each tenth of the budget with ``trial.report(return, step)``, the
    step being that tenth's boundary (``total_steps * k / 10``): trials whose
    iterations have different sizes (other rollout lengths or copies) are then
    compared at the same points, which the pruner's same-step comparison needs.
    A trial the pruner stops raises
    ``optuna.TrialPruned``. A non-finite loss or return raises :class:`DivergedError`
    (the trial fails). The value is the final evaluation's ``metric`` (the return, or
    the win rate on envs that report wins: SMAX, SMACv2, football); with
    ``multi_objective`` the pair ``(metric, mean update seconds per iteration)``.

    With ``seeds > 1`` a trial trains that many runs (seeds ``seed, seed + 1, ...``)
    in lockstep, one iteration of each in turn, and every evaluation, report and the
    value are the mean over them: one run's final return varies with its seed by
    about as much as good configurations differ, so a single-seed study ranks noise
    (the per-seed values are in the trial's ``seed_values`` attribute).

    Args:
        env_id: environment id.
        base_config: the configuration the trial's parameters override (or a dict of its fields).
        space: search space name or function.
        report_every: iterations between evaluations.
        eval_episodes: episodes per evaluation.
        env_kwargs: passed to ``make``.
        multi_objective: return (metric, update seconds) and never prune.
        metric: ``"return"`` or ``"win_rate"`` (of the greedy evaluation).
        seeds: training runs per trial (their mean is the trial's value).
    """

    def __init__(
        self,
        env_id: str,
        base_config: TrainConfig | dict[str, Any],
        space: str | SpaceFn = "partition",
        report_every: int = 5,
        eval_episodes: int = 16,
        env_kwargs: dict[str, Any] | None = None,
        multi_objective: bool = False,
        metric: str = "return",
        seeds: int = 1,
    ) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        # report_every=0 was a ZeroDivisionError after the first iteration of a trial
        check_positive_ints(seeds=seeds, report_every=report_every, eval_episodes=eval_episodes)
        base_config = as_train_config(base_config)
        if not callable(space):
            SPACES.get(space)  # an unknown name: ValueError listing the spaces
        self.seeds = seeds
        self.metric = metric
        self.env_id = env_id
        self.base_config = base_config
        self.space = space
        self.report_every = report_every
        self.eval_episodes = eval_episodes
        self.env_kwargs = dict(env_kwargs or {})
        self.multi_objective = multi_objective

    def config_for(self, trial: optuna.Trial) -> TrainConfig:
        """The TrainConfig of ``trial`` (ValueError for an invalid combination)."""
        return self.base_config.replace(**search_space(trial, self.space))

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        cfg = self.config_for(trial).replace(progress=False, tensorboard=False)
        trial.set_user_attr("worker_pid", os.getpid())
        trial.set_user_attr("config", cfg.to_dict())
        envs: list[Any] = []
        try:
            runs = []
            for offset in range(self.seeds):  # (trainer, its evaluation env) per seed
                run_cfg = cfg.replace(seed=cfg.seed + offset)
                env = make(
                    self.env_id, num_envs=cfg.env_copies(), seed=run_cfg.seed, **self.env_kwargs
                )
                envs.append(env)
                eval_env = make(
                    self.env_id,
                    num_envs=cfg.env_copies(),
                    seed=run_cfg.seed + 10_000,
                    **self.env_kwargs,
                )
                envs.append(eval_env)
                runs.append((Trainer(env, run_cfg), eval_env))
            return self._train(trial, cfg, runs)
        finally:
            for env in envs:
                env.close()

    def _train(self, trial: optuna.Trial, cfg: TrainConfig, runs: list) -> float | tuple:
        """Train ``runs`` (trainer, evaluation env) in lockstep; report and return means."""
        update_s: list[float] = []
        value = float("nan")
        reported: set[int] = set()
        lead = runs[0][0]
        while lead.env_steps < cfg.total_steps:
            rows = [self._iteration(trial, trainer) for trainer, _ in runs]
            update_s += [row["update_s"] for row in rows]
            last = lead.env_steps >= cfg.total_steps
            if lead.iteration % self.report_every == 0 or last:
                values = [self._evaluate(trial, trainer, env, rows[0]) for trainer, env in runs]
                value = statistics.fmean(values)
                trial.set_user_attr("seed_values", values)
                key = budget_tenth(lead.env_steps, cfg.total_steps)
                if not self.multi_objective and key > 0 and key not in reported:
                    reported.add(key)
                    trial.report(value, key)
                    if trial.should_prune():
                        raise optuna.TrialPruned(
                            f"pruned at step {rows[0]['step']} with {self.metric} {value:.4f}"
                        )
        trial.set_user_attr("update_s_per_iteration", statistics.fmean(update_s))
        if self.multi_objective:
            return value, statistics.fmean(update_s)
        return value

    @staticmethod
    def _iteration(trial: optuna.Trial, trainer: Trainer) -> dict[str, Any]:
        """One training iteration; DivergedError where anything became non-finite."""
        try:
            row = trainer.train_iteration()
        except DivergenceError as exc:  # the trainer's own guard
            raise DivergedError(f"trial {trial.number}: {exc}") from exc
        losses = [v for k, v in row.items() if k.endswith("loss") and isinstance(v, float)]
        params_finite = all(bool(torch.isfinite(p).all()) for p in trainer.actor.parameters())
        if not params_finite or not all(math.isfinite(v) for v in losses):
            raise DivergedError(
                f"trial {trial.number} diverged at step {row['step']} (non-finite loss)"
            )
        return row

    def _evaluate(self, trial: optuna.Trial, trainer: Trainer, env: Any, row: dict) -> float:
        """The metric of a greedy evaluation of ``trainer`` on ``env``."""
        evaluation = trainer.evaluate(self.eval_episodes, env=env)
        if METRICS[self.metric] not in evaluation:
            raise ValueError(
                f"metric {self.metric!r}: {self.env_id} reports no wins (use metric 'return')"
            )
        value = evaluation[METRICS[self.metric]]
        if not math.isfinite(value):
            raise DivergedError(
                f"trial {trial.number} diverged at step {row['step']} ({self.metric} {value})"
            )
        return value
