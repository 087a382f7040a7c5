"""Training: configs, rollout collection, the Trainer, checkpoints and logging."""

from mapograph.train._checkpoint import load_checkpoint, save_checkpoint
from mapograph.train._collector import Collector
from mapograph.train._config import TrainConfig
from mapograph.train._logging import RunLogger
from mapograph.train._references import (
    Reference,
    config_with_reference,
    reference_families,
    reference_for,
)
from mapograph.train._trainer import CHECKPOINT_NAME, Trainer, TrainResult

__all__ = [
    "CHECKPOINT_NAME",
    "Collector",
    "Reference",
    "RunLogger",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "config_with_reference",
    "load_checkpoint",
    "reference_families",
    "reference_for",
    "save_checkpoint",
]
