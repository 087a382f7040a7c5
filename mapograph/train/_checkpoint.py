"""Checkpoints: atomic writes, verified safe loads (no code execution), clear errors.

A checkpoint is the zip archive ``torch.save`` writes; every entry carries a
CRC-32 that :func:`load_checkpoint` verifies before unpickling (``torch.load``
does not), so flipped bytes are refused instead of loaded.
"""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
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

    A crash while writing leaves the previous checkpoint intact. A folder (a run folder)
    gets its ``checkpoint.pt``, as :func:`load_checkpoint` reads it.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path)
    state = {"format": FORMAT, "version": VERSION, **state}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fchmod(handle.fileno(), _default_mode())  # as the run's other files (umask)
            os.fsync(handle.fileno())
        refuse_unsafe(state, tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        # torch.save reports a failed write (full disk) as a RuntimeError raised while
        # handling the OSError: surface the OSError, which says what happened
        os_error = exc.__context__ if isinstance(exc, RuntimeError) else None
        if isinstance(os_error, OSError):
            raise OSError(os_error.errno, os_error.strerror, str(path)) from exc
        raise
    return path


def refuse_unsafe(state: dict[str, Any], written: str | Path) -> None:
    """Raise when the checkpoint ``written`` holds objects the safe load would refuse.

    ``torch.load(weights_only=True)`` takes tensors and plain Python values only: a
    numpy value (a custom env's ``state_dict()``, a numpy ``num_envs``) would make the
    checkpoint unloadable, so it is refused at save time, naming where it sits.

    Raises:
        CheckpointError: the pickled state names globals outside the safe set.
    """
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(written))
    if unsafe:
        where = _find_unsafe(state)
        raise CheckpointError(
            f"cannot save a checkpoint that a safe load would refuse: {where or 'it'} holds "
            f"{unsafe[0]} (use tensors and plain Python values, e.g. in env.state_dict())"
        )


def _find_unsafe(value: Any, where: str = "state") -> str | None:
    """The first key path in ``value`` holding a numpy object (best effort, for the error)."""
    if type(value).__module__.split(".")[0] == "numpy":
        return where
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _find_unsafe(item, f"{where}[{key!r}]")
        if found is not None:
            return found
    return None


def remove_stale_tmp(path: str | Path) -> list[Path]:
    """Delete ``<path>.*.tmp`` files left by a process killed while writing ``path``."""
    path = Path(path)
    stale = list(path.parent.glob(f"{path.name}.*.tmp"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def _default_mode() -> int:
    """The mode ``open()`` gives a new file (0o666 less the umask); mkstemp's is 0o600."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def verify_checksums(path: Path) -> None:
    """Check the CRC-32 of every entry of the checkpoint archive.

    Raises:
        CheckpointError: an entry is corrupt or the file is not a readable archive.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: {exc}") from exc
    if bad is not None:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: the checksum of its entry {bad!r} does not match"
        )


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
    verify_checksums(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError...
        raise CheckpointError(f"{path} is not a mapograph checkpoint: {_reason(exc)}") from exc
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
    return _with_previous_defaults(state)


def _reason(exc: Exception) -> str:
    """One line saying why ``torch.load`` refused a file (not torch's multi-line advice)."""
    text = str(exc)
    match = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if match:
        return f"it holds pickled objects ({match.group(1)}) that a safe load refuses"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


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


#: Fields whose default changed, with the value they had before: a checkpoint whose
#: config lacks one was written when that value was the default (a saved config holds
#: every field of its time), so it keeps it.
PREVIOUS_DEFAULTS: dict[str, Any] = {
    "pi_ind": "separate",  # the default until session 8 (now "readout")
    "prior_offset": False,  # before session 9 the prior was only a loss term
    "interaction_estimator": "pairwise",  # the default until session 9 (now "auto")
    "parent_activation": "tanh",  # the parent head's activation until session 13 (now relu)
    "parent_gain": 1.0,  # no gain on the parent head until session 14
    "parent_obs_form": "gate",  # parent_obs's only form until session 15 (now "add")
}


def _with_previous_defaults(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with :data:`PREVIOUS_DEFAULTS` filled into a config that predates them."""
    config = state["config"]
    if isinstance(config, dict):
        state = {**state, "config": {**PREVIOUS_DEFAULTS, **config}}
    return state


#: ``version -> function`` that upgrades a checkpoint's state by one version.
MIGRATIONS = {1: _v1_to_v2}
