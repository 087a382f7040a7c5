"""Search spaces: Optuna trial -> overrides of :class:`~mapograph.TrainConfig` fields."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import optuna

from mapograph import partition as P
from mapograph._registry import Registry, is_callable
from mapograph.algos import SCHEDULES
from mapograph.algos._config import PI_IND_MODES
from mapograph.algos._schedules import partition_kwargs
from mapograph.train import TrainConfig

SpaceFn = Callable[[optuna.Trial], dict[str, Any]]

#: Integer ranges searched for partitioner keyword arguments (others: 1..8).
PARTITION_KNOB_RANGES: dict[str, tuple[int, int]] = {"max_batch_size": (1, 8), "k": (1, 6)}


def partition_space(trial: optuna.Trial) -> dict[str, Any]:
    """B2MAPO's partition hyperparameters.

    ``partition`` (generations | bounded | k_batches), ``max_batch_size`` (bounded),
    ``k`` (k_batches), ``edge_threshold``, ``dag_temperature``, ``generator_lr``,
    ``generator_entropy_coef``, ``distill_every``, ``kl_coef``, ``pi_ind``
    (separate | tied | readout: the execution policy as its own network, as ``pi_seq``'s
    observation part, or as that part plus a distilled readout head; the last two are
    cheaper per update), and ``condition_on_parents`` (whether ``pi_seq`` reads its DAG parents' actions:
    on tasks with a constant-action collapse, conditioning can lock it in; see
    the benchmarks page).
    """
    params: dict[str, Any] = {"algo": "b2mapo"}
    params["partition"] = trial.suggest_categorical("partition", P.partitioners())
    # the partitioner's own knobs (k for k_batches, max_batch_size for bounded...)
    for name in partition_kwargs(P.get_partitioner(params["partition"]), TrainConfig):
        low, high = PARTITION_KNOB_RANGES.get(name, (1, 8))
        params[name] = trial.suggest_int(name, low, high)
    params["edge_threshold"] = trial.suggest_float("edge_threshold", 0.0, 0.5)
    params["dag_temperature"] = trial.suggest_float("dag_temperature", 0.25, 4.0, log=True)
    params["generator_lr"] = trial.suggest_float("generator_lr", 1e-4, 1e-2, log=True)
    params["generator_entropy_coef"] = trial.suggest_float(
        "generator_entropy_coef", 1e-4, 1e-1, log=True
    )
    params["distill_every"] = trial.suggest_int("distill_every", 1, 10)
    params["kl_coef"] = trial.suggest_float("kl_coef", 0.05, 5.0, log=True)
    params["pi_ind"] = trial.suggest_categorical("pi_ind", list(PI_IND_MODES))
    params["condition_on_parents"] = trial.suggest_categorical(
        "condition_on_parents", [True, False]
    )
    return params


def full_space(trial: optuna.Trial) -> dict[str, Any]:
    """:func:`partition_space` plus the common PPO knobs."""
    params = partition_space(trial)
    params["lr"] = trial.suggest_float("lr", 1e-4, 3e-3, log=True)
    params["critic_lr"] = trial.suggest_float("critic_lr", 1e-4, 3e-3, log=True)
    params["entropy_coef"] = trial.suggest_float("entropy_coef", 1e-4, 5e-2, log=True)
    params["clip"] = trial.suggest_float("clip", 0.05, 0.3)
    params["epochs"] = trial.suggest_int("epochs", 1, 10)
    params["gae_lambda"] = trial.suggest_float("gae_lambda", 0.8, 1.0)
    params["hidden"] = trial.suggest_categorical("hidden", [32, 64, 128])
    return params


def ppo_space(trial: optuna.Trial) -> dict[str, Any]:
    """The PPO knobs of any algorithm (the base config's ``algo`` is kept).

    For finding reference configurations (``mapograph tune --space ppo``): learning
    rates and their linear decay, clip, epochs, minibatches, entropy (0 included),
    GAE lambda, gradient-norm clip (from 0.1), hidden size, activation, input
    layer normalization and the rollout length (the env copies stay the base config's).
    """
    return {
        "lr": trial.suggest_float("lr", 1e-4, 3e-3, log=True),
        "critic_lr": trial.suggest_float("critic_lr", 1e-4, 3e-3, log=True),
        "clip": trial.suggest_float("clip", 0.05, 0.3),
        "epochs": trial.suggest_int("epochs", 1, 15),
        "minibatches": trial.suggest_categorical("minibatches", [1, 2, 4, 8]),
        # 0 included: JaxMARL's SMAX and BenchMARL's settings use no entropy bonus
        "entropy_coef": trial.suggest_categorical("entropy_coef", [0.0, 1e-3, 3e-3, 1e-2, 3e-2]),
        "gae_lambda": trial.suggest_float("gae_lambda", 0.8, 1.0),
        "max_grad_norm": trial.suggest_float("max_grad_norm", 0.1, 10.0, log=True),
        "lr_anneal": trial.suggest_categorical("lr_anneal", [False, True]),
        "hidden": trial.suggest_categorical("hidden", [64, 128, 256]),
        "activation": trial.suggest_categorical("activation", ["tanh", "relu"]),
        "input_norm": trial.suggest_categorical("input_norm", [False, True]),
        "rollout_length": trial.suggest_categorical("rollout_length", [32, 64, 128, 256]),
    }


#: Search spaces by name (``mapograph tune --space NAME``).
SPACES: Registry[SpaceFn] = Registry("search space", is_callable)
"""Search spaces by name (``partition``, ``full``, ``ppo``): functions ``trial -> dict`` of config fields."""
SPACES.register("partition", partition_space)
SPACES.register("full", full_space)
SPACES.register("ppo", ppo_space)


def search_space(trial: optuna.Trial, space: str | SpaceFn = "partition") -> dict[str, Any]:
    """Suggest TrainConfig overrides for ``trial``.

    Args:
        trial: the Optuna trial.
        space: ``"partition"``, ``"full"``, ``"ppo"`` or your own ``fn(trial) -> dict`` of
            TrainConfig fields.

    Raises:
        ValueError: unknown space name, or a suggested partitioner that does not exist.
    """
    params = space(trial) if callable(space) else SPACES.get(space)(trial)
    if not isinstance(params, dict):
        raise ValueError(
            f"a search space must return a dict of TrainConfig fields, got {type(params).__name__}"
        )
    unknown = sorted(set(params) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ValueError(
            f"the search space suggests unknown TrainConfig field(s): {', '.join(unknown)}"
        )
    partition = params.get("partition")
    if partition is not None and partition not in P.PARTITIONERS and partition not in SCHEDULES:
        raise ValueError(
            f"unknown partitioner {partition!r}; known partitioners: {', '.join(P.partitioners())}"
        )
    return params
