"""Resolve partitioner names (as used in configs and the CLI) to functions."""

from __future__ import annotations

from collections.abc import Callable

from mapograph.partition._bounded import bounded
from mapograph.partition._generations import generations
from mapograph.partition._k_batches import k_batches

_DAG_PARTITIONERS: dict[str, Callable[..., list[list[int]]]] = {
    "generations": generations,
    "bounded": bounded,
    "k_batches": k_batches,
}


def partitioners() -> list[str]:
    """Names of the partitioners that take a DAG."""
    return sorted(_DAG_PARTITIONERS)


def get_partitioner(name: str) -> Callable[..., list[list[int]]]:
    """The DAG partitioner called ``name`` (``generations``, ``bounded``, ``k_batches``).

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    if callable(name):
        return name
    try:
        return _DAG_PARTITIONERS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown partitioner {name!r}; known partitioners: {', '.join(partitioners())}"
        ) from None
