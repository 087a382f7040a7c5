"""Exceptions raised by mapograph."""

from __future__ import annotations


class MapographError(Exception):
    """Base class for errors that mapograph raises on purpose.

    The message always names what was wrong (the env id, the checkpoint path,
    the offending edge...) so that the CLI can print it as one line.
    """


class CheckpointError(MapographError, ValueError):
    """A checkpoint is missing, truncated, corrupt or does not match the model."""


class OptionalDependencyError(MapographError, ImportError):
    """An optional backend is used but its extra is not installed."""


class DivergenceError(MapographError):
    """Training produced a non-finite value (loss, parameter, return, env output).

    The message names the iteration and the quantity; the run's last checkpoint
    (written while everything was finite) is left as it was.
    """
