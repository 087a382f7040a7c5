"""``bounded``: batches of at most ``max_batch_size`` agents with every edge strictly forward."""

from __future__ import annotations

import math
from typing import Any

import networkx as nx

from mapograph.partition._generations import generations
from mapograph.partition._input import as_dag, check_positive_int


def _heights(graph: nx.DiGraph) -> dict[int, int]:
    """Number of nodes on the longest path starting at each node (critical-path priority)."""
    height: dict[int, int] = {}
    for node in reversed(list(nx.topological_sort(graph))):
        height[node] = 1 + max((height[c] for c in graph.successors(node)), default=0)
    return height


def _list_schedule(graph: nx.DiGraph, width: int) -> list[list[int]]:
    """Critical-path list scheduling: fill each batch with the ready agents of greatest height."""
    height = _heights(graph)
    remaining_parents = {v: graph.in_degree(v) for v in graph.nodes}
    ready = sorted(
        (v for v, d in remaining_parents.items() if d == 0), key=lambda v: (-height[v], v)
    )
    batches: list[list[int]] = []
    while ready:
        batch, ready = ready[:width], ready[width:]
        batches.append(sorted(batch))
        for node in batch:
            for child in graph.successors(node):
                remaining_parents[child] -= 1
                if remaining_parents[child] == 0:
                    ready.append(child)
        ready.sort(key=lambda v: (-height[v], v))
    return batches


def bounded(dag: Any, max_batch_size: int, num_nodes: int | None = None) -> list[list[int]]:
    """Width-bounded layering of the DAG.

    Guarantees: every batch has at most ``max_batch_size`` agents, every edge goes
    from an earlier batch to a later one, and the number of batches is at most
    ``sum_g ceil(|generation g| / max_batch_size)`` (splitting each generation into
    pieces) and at least the number of generations. It runs a critical-path list
    scheduler (Hu's rule: ready agents with the longest remaining chain first,
    optimal for in-/out-forests) and keeps the split generations when those
    happen to be shorter.

    Args:
        dag: ``networkx.DiGraph`` on ``0..n-1`` or an edge_index ``[2, E]``.
        max_batch_size: the largest batch allowed (>= 1).
        num_nodes: number of agents when ``dag`` is an edge_index.
    """
    max_batch_size = check_positive_int("max_batch_size", max_batch_size)
    graph = as_dag(dag, num_nodes)
    scheduled = _list_schedule(graph, max_batch_size)
    split = [
        gen[i : i + max_batch_size]
        for gen in generations(graph)
        for i in range(0, len(gen), max_batch_size)
    ]
    assert len(split) == sum(math.ceil(len(g) / max_batch_size) for g in generations(graph))
    return scheduled if len(scheduled) <= len(split) else split
