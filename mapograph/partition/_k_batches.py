"""``k_batches``: at most ``k`` batches, no backward edge, least weight inside batches.

Assign each agent a level ``L(v) in {0..k-1}`` with ``L(u) <= L(v)`` for every
edge ``u -> v`` and minimize ``sum_{u->v} w(u, v) [L(u) = L(v)]``. On the
feasible set the cost of an edge is a convex function of ``d = L(v) - L(u)``
(``w`` at 0, ``0`` from 1 on), so the problem is solved *exactly* by one minimum
s-t cut (Ishikawa 2003): binary variables ``x[v, i] = [L(v) >= i]`` for
``i = 1..k-1`` and

``w [d = 0] = w x[u, i]-terms - w x[v, i]-terms + w * #{i : x[v, i+1] = 1, x[u, i] = 0} + const``

with infinite edges for ``x[v, i+1] <= x[v, i]`` (monotone levels) and
``x[u, i] <= x[v, i]`` (no backward edge). The result is a global optimum for
any DAG, any ``k`` and any non-negative weights.
"""

from __future__ import annotations

import math
from typing import Any

import networkx as nx

from mapograph.partition._generations import generations
from mapograph.partition._input import as_dag, check_positive_int

_SOURCE, _SINK = "s", "t"


def _edge_weight(data: dict, weight: str | None) -> float:
    if weight is None:
        return 1.0
    value = float(data.get(weight, 1.0))
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"edge weights must be finite and >= 0, got {value}")
    return value


def k_batches(
    dag: Any, k: int, weight: str | None = "weight", num_nodes: int | None = None
) -> list[list[int]]:
    """Partition the agents into at most ``k`` ordered batches.

    An edge may fall inside a batch (its two agents are then updated together)
    but never points backward. Among all such partitions this returns one that
    minimizes the total weight of edges inside batches (with unit weights: their
    number) — an exact optimum (minimum cut, see the module docstring). When the
    DAG has at most ``k`` generations the answer has no edge inside a batch.
    Empty levels are dropped, so fewer than ``k`` batches may come back.

    Args:
        dag: ``networkx.DiGraph`` on ``0..n-1`` or an edge_index ``[2, E]``.
        k: maximum number of batches (>= 1).
        weight: edge attribute holding the weight (missing: 1); ``None``: unit weights.
        num_nodes: number of agents when ``dag`` is an edge_index.
    """
    check_positive_int("k", k)
    graph = as_dag(dag, num_nodes)
    n = graph.number_of_nodes()
    weights = {(u, v): _edge_weight(d, weight) for u, v, d in graph.edges(data=True)}
    gens = generations(graph)
    if len(gens) <= k:
        return gens  # zero weight inside batches: optimal
    if k == 1:
        return [list(range(n))]
    flow = nx.DiGraph()
    flow.add_node(_SOURCE)
    flow.add_node(_SINK)
    for v in range(n):
        for i in range(1, k - 1):
            flow.add_edge((v, i + 1), (v, i))  # x[v, i+1] <= x[v, i]  (infinite capacity)

    def add(a, b, capacity: float) -> None:
        if capacity <= 0:
            return
        if flow.has_edge(a, b):
            if "capacity" in flow[a][b]:
                flow[a][b]["capacity"] += capacity
        else:
            flow.add_edge(a, b, capacity=capacity)

    for (u, v), w in weights.items():
        for i in range(1, k):
            flow.add_edge((u, i), (v, i))  # no backward edge: x[u, i] <= x[v, i] (infinite)
            add((u, i), _SINK, w)  # + w x[u, i]          (cut when (u, i) on the source side)
            add(_SOURCE, (v, i), w)  # + w (1 - x[v, i])  (cut when (v, i) on the sink side)
        for i in range(1, k - 1):
            add((v, i + 1), (u, i), w)  # + w [x[v, i+1] = 1, x[u, i] = 0]
    for v in range(n):
        for i in range(1, k):
            flow.add_node((v, i))
    _, (source_side, _) = nx.minimum_cut(flow, _SOURCE, _SINK)
    level = {v: sum((v, i) in source_side for i in range(1, k)) for v in range(n)}
    batches = [[v for v in range(n) if level[v] == lvl] for lvl in range(k)]
    return [b for b in batches if b]


def inside_weight(
    dag: Any, batches: list[list[int]], weight: str | None = "weight", num_nodes: int | None = None
) -> float:
    """Total weight of the DAG's edges whose two agents share a batch."""
    graph = as_dag(dag, num_nodes)
    batch_of = {a: i for i, b in enumerate(batches) for a in b}
    return sum(
        _edge_weight(d, weight) for u, v, d in graph.edges(data=True) if batch_of[u] == batch_of[v]
    )
