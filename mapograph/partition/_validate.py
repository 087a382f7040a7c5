"""Check that a list of batches is a valid ordered partition (for a DAG)."""

from __future__ import annotations

import operator
from typing import Any

from mapograph.partition._input import as_dag, check_positive_int


def _agent_ids(batch: Any) -> list[int]:
    """The ids of ``batch`` as ints (numpy and 0-d torch ints too); TypeError for
    anything else (a float such as 0.5 is not truncated to agent 0, a bool is no id)."""
    ids = []
    for a in batch:
        if isinstance(a, bool):
            raise TypeError(a)
        ids.append(operator.index(a))
    return ids


def validate_partition(
    batches: list[list[int]],
    n_agents: int,
    dag: Any = None,
    strict: bool = True,
    num_nodes: int | None = None,
) -> None:
    """Raise ValueError unless ``batches`` is an ordered partition of ``0..n_agents-1``.

    Args:
        batches: the partition.
        n_agents: number of agents.
        dag: optional DAG whose edges must not point backward.
        strict: also forbid DAG edges inside a batch.
        num_nodes: when ``dag`` is an edge_index (defaults to ``n_agents``).
    """
    n_agents = check_positive_int("n_agents", n_agents)
    if not isinstance(batches, (list, tuple)) or not batches:
        raise ValueError("a partition must be a non-empty list of batches")
    seen: list[int] = []
    for i, batch in enumerate(batches):
        if isinstance(batch, (str, bytes)) or not hasattr(batch, "__iter__"):
            raise ValueError(
                f"batch {i} must be a list of agent ids, got {batch!r} "
                "(a partition is a list of batches: [[0, 1], [2]])"
            )
        try:
            ids = _agent_ids(batch)
        except TypeError:
            raise ValueError(f"batch {i} must hold int agent ids, got {batch!r}") from None
        if not ids:
            raise ValueError(f"batch {i} is empty")
        seen.extend(ids)
    if sorted(seen) != list(range(n_agents)):
        missing = sorted(set(range(n_agents)) - set(seen))
        duplicated = sorted({a for a in seen if seen.count(a) > 1})
        unknown = sorted(set(seen) - set(range(n_agents)))
        raise ValueError(
            f"a partition must hold every agent 0..{n_agents - 1} exactly once "
            f"(missing {missing}, duplicated {duplicated}, unknown {unknown})"
        )
    if dag is None:
        return
    graph = as_dag(
        dag, num_nodes if num_nodes is not None else (None if hasattr(dag, "nodes") else n_agents)
    )
    if graph.number_of_nodes() != n_agents:  # more: KeyError below; fewer: edges unchecked
        raise ValueError(
            f"the DAG has {graph.number_of_nodes()} nodes, the partition is of n_agents={n_agents}"
        )
    batch_of = {a: i for i, b in enumerate(batches) for a in b}
    for u, v in graph.edges:
        if batch_of[u] > batch_of[v]:
            raise ValueError(
                f"edge {u} -> {v} points backward (batch {batch_of[u]} -> {batch_of[v]})"
            )
        if strict and batch_of[u] == batch_of[v]:
            raise ValueError(f"edge {u} -> {v} lies inside batch {batch_of[u]}")
