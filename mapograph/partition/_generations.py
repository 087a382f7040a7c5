"""``generations``: longest-path layering, the fewest batches any valid partition can have."""

from __future__ import annotations

from typing import Any

import networkx as nx

from mapograph.partition._input import as_dag


def levels(graph: nx.DiGraph) -> dict[int, int]:
    """Level of each node: the number of nodes on the longest path ending at it, minus one."""
    level: dict[int, int] = {}
    for node in nx.topological_sort(graph):
        level[node] = max((level[p] + 1 for p in graph.predecessors(node)), default=0)
    return level


def generations(dag: Any, num_nodes: int | None = None) -> list[list[int]]:
    """Split the agents into generations of the DAG.

    Batch ``g`` holds the agents whose longest chain of ancestors has ``g`` agents.
    Every edge goes from an earlier batch to a later one, and the number of
    batches equals the number of nodes on the longest path, which no partition
    with strictly forward edges can beat.

    Args:
        dag: ``networkx.DiGraph`` on ``0..n-1`` or an edge_index ``[2, E]``.
        num_nodes: number of agents when ``dag`` is an edge_index.

    Returns:
        Batches of agent ids (sorted within a batch), in update order.
    """
    graph = as_dag(dag, num_nodes)
    level = levels(graph)
    batches: list[list[int]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for node in sorted(level):
        batches[level[node]].append(node)
    return batches
