"""Checkpoints: atomic writes, safe loads (no code execution), clear errors."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from mapograph._errors import CheckpointError

FORMAT = "mapograph-checkpoint"
VERSION = 2
REQUIRED_KEYS = (
    "format",
    "version",
    "config",
    "modules",
    "optimizers",
    "rng",
    "iteration",
    "env_steps",
)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder, then rename).

    A crash while writing leaves the previous checkpoint intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, "version": VERSION, **state}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)`` (no pickled code runs).

    Raises:
        CheckpointError: the file is missing, truncated, corrupt or not a mapograph checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError...
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a mapograph checkpoint")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
    while state["version"] in MIGRATIONS:
        state = MIGRATIONS[state["version"]](state)
    if state["version"] != VERSION:
        raise CheckpointError(
            f"checkpoint {path} has version {state['version']}, which this mapograph cannot read "
            f"(it reads versions {', '.join(map(str, [*MIGRATIONS, VERSION]))})"
        )
    return state


def _v1_to_v2(state: dict[str, Any]) -> dict[str, Any]:
    """Version 1 (mapograph 0.1): the upper layer and its next features were top-level keys.

    Version 2 keeps whatever the update schedule holds under ``schedule``; the
    optimizer of stacked parameters converts its own old format when loading.
    """
    state = dict(state)
    upper = state.pop("upper", None)
    features = state.pop("features", None)
    state["schedule"] = {} if upper is None else {"upper": upper, "features": features}
    state["version"] = 2
    return state


#: ``version -> function`` that upgrades a checkpoint's state by one version.
MIGRATIONS = {1: _v1_to_v2}
