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
from mapograph.tune._search_space import SpaceFn, search_space


class DivergedError(MapographError):
    """Training produced a non-finite value; the trial is marked failed, not scored."""


#: Objective metrics (``mapograph tune --metric``) and the evaluation key each one reads.
METRICS = {"return": "return_mean", "win_rate": "win_rate"}


def budget_tenth(steps: int, total: int) -> int:
    """The last boundary ``total * k // 10`` (k = 0..10) that ``steps`` has reached."""
    k = min(10, steps * 10 // total)
    return total * k // 10


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

    Args:
        env_id: environment id.
        base_config: the configuration the trial's parameters override.
        space: search space name or function.
        report_every: iterations between evaluations.
        eval_episodes: episodes per evaluation.
        env_kwargs: passed to ``make``.
        multi_objective: return (metric, update seconds) and never prune.
        metric: ``"return"`` or ``"win_rate"`` (of the greedy evaluation).
    """

    def __init__(
        self,
        env_id: str,
        base_config: TrainConfig,
        space: str | SpaceFn = "partition",
        report_every: int = 5,
        eval_episodes: int = 16,
        env_kwargs: dict[str, Any] | None = None,
        multi_objective: bool = False,
        metric: str = "return",
    ) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
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
        env = make(self.env_id, num_envs=cfg.env_copies(), seed=cfg.seed, **self.env_kwargs)
        eval_env = make(
            self.env_id, num_envs=cfg.env_copies(), seed=cfg.seed + 10_000, **self.env_kwargs
        )
        try:
            trainer = Trainer(env, cfg)
            update_s: list[float] = []
            value = float("nan")
            reported: set[int] = set()
            while trainer.env_steps < cfg.total_steps:
                try:
                    row = trainer.train_iteration()
                except DivergenceError as exc:  # the trainer's own guard
                    raise DivergedError(f"trial {trial.number}: {exc}") from exc
                update_s.append(row["update_s"])
                losses = [v for k, v in row.items() if k.endswith("loss") and isinstance(v, float)]
                params_finite = all(
                    bool(torch.isfinite(p).all()) for p in trainer.actor.parameters()
                )
                if not params_finite or not all(math.isfinite(v) for v in losses):
                    raise DivergedError(
                        f"trial {trial.number} diverged at step {row['step']} (non-finite loss)"
                    )
                last = trainer.env_steps >= cfg.total_steps
                if trainer.iteration % self.report_every == 0 or last:
                    evaluation = trainer.evaluate(self.eval_episodes, env=eval_env)
                    if METRICS[self.metric] not in evaluation:
                        raise ValueError(
                            f"metric {self.metric!r}: {self.env_id} reports no wins "
                            "(use metric 'return')"
                        )
                    value = evaluation[METRICS[self.metric]]
                    if not math.isfinite(value):
                        raise DivergedError(
                            f"trial {trial.number} diverged at step {row['step']} "
                            f"({self.metric} {value})"
                        )
                    key = budget_tenth(trainer.env_steps, cfg.total_steps)
                    if not self.multi_objective and key > 0 and key not in reported:
                        reported.add(key)
                        trial.report(value, key)
                        if trial.should_prune():
                            raise optuna.TrialPruned(
                                f"pruned at step {row['step']} with {self.metric} {value:.4f}"
                            )
            trial.set_user_attr("update_s_per_iteration", statistics.fmean(update_s))
            if self.multi_objective:
                return value, statistics.fmean(update_s)
            return value
        finally:
            env.close()
            eval_env.close()
