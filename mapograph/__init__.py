"""mapograph: cooperative multi-agent RL on a learned interdependence graph.

Agents are the nodes of a learned DAG; a partitioner turns it into ordered
batches; one optimizer updates the policies batch by batch (B2MAPO), with MAPPO,
HAPPO and A2PO as presets of the same code path.

>>> import mapograph as mg
>>> env = mg.envs.make("coordination:chain-6", num_envs=16, seed=0)
>>> trainer = mg.Trainer(env, mg.TrainConfig(algo="b2mapo", total_steps=20_000))
"""

from __future__ import annotations

import importlib
from typing import Any

from mapograph._errors import (
    CheckpointError,
    DivergenceError,
    MapographError,
    OptionalDependencyError,
)

__version__ = "0.1.0"

_SUBMODULES = {"envs", "graph", "partition", "policies", "algos", "train", "tune", "viz"}
_TRAIN_NAMES = {"TrainConfig", "Trainer", "TrainResult"}

__all__ = [
    "CheckpointError",
    "DivergenceError",
    "MapographError",
    "OptionalDependencyError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    *sorted(_SUBMODULES),
]


def __getattr__(name: str) -> Any:
    # Subpackages load on first use so `import mapograph` stays fast and optional
    # backends (optuna plots, matplotlib) are not imported by code that does not need them.
    if name in _SUBMODULES:
        return importlib.import_module(f"mapograph.{name}")
    if name in _TRAIN_NAMES:
        return getattr(importlib.import_module("mapograph.train"), name)
    raise AttributeError(f"module 'mapograph' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
