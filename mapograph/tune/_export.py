"""Export the best trial as a TrainConfig YAML that ``mapograph train --config`` accepts."""

from __future__ import annotations

from pathlib import Path

import optuna

from mapograph.train import TrainConfig


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The best trial; for a multi-objective study the Pareto trial with the highest return."""
    if len(study.directions) == 1:
        return study.best_trial
    front = study.best_trials
    if not front:
        raise ValueError("the study has no completed trial yet")
    return max(front, key=lambda t: t.values[0])


def config_of(trial: optuna.trial.FrozenTrial, base: TrainConfig) -> TrainConfig:
    """Rebuild the TrainConfig a trial trained with (its stored config, else its params)."""
    stored = trial.user_attrs.get("config")
    if isinstance(stored, dict):
        return TrainConfig.from_dict(stored)
    fields = {k: v for k, v in trial.params.items() if k in TrainConfig.__dataclass_fields__}
    return base.replace(algo="b2mapo", **fields)


def export_best(study: optuna.Study, path: str | Path, base: TrainConfig) -> TrainConfig:
    """Write the best trial's config to ``path`` (YAML) and return it."""
    cfg = config_of(best_trial(study), base)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cfg.to_yaml(path)
    return cfg
