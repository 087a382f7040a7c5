"""The registry of DAG partitioners (names used in configs, the CLI and search spaces)."""

from __future__ import annotations

from collections.abc import Callable

from mapograph._registry import Registry, is_callable
from mapograph.partition._bounded import bounded
from mapograph.partition._generations import generations
from mapograph.partition._k_batches import k_batches

Partitioner = Callable[..., list[list[int]]]

#: DAG -> ordered batches. Each entry is called as ``fn(dag, **kwargs)``.
PARTITIONERS: Registry[Partitioner] = Registry("partitioner", is_callable)
"""DAG partitioners by name (``generations``, ``bounded``, ``k_batches``); ``register_partitioner`` adds one."""
PARTITIONERS.register("generations", generations)
PARTITIONERS.register("bounded", bounded)
PARTITIONERS.register("k_batches", k_batches)


def partitioners() -> list[str]:
    """Names of the partitioners that take a DAG."""
    return PARTITIONERS.names()


def get_partitioner(name: str | Partitioner) -> Partitioner:
    """The DAG partitioner called ``name`` (a callable is returned as it is).

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    if callable(name):
        return name
    return PARTITIONERS.get(name)


def register_partitioner(name: str, fn: Partitioner, *, overwrite: bool = False) -> Partitioner:
    """Add a partitioner ``fn(dag, **kwargs) -> list[list[int]]`` under ``name``."""
    return PARTITIONERS.register(name, fn, overwrite=overwrite)
