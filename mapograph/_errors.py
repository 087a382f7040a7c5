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
