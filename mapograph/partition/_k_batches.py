"""``k_batches``: at most ``k`` batches, no backward edge, least weight inside batches.

Assign each agent a level ``L(v) in {0..k-1}`` with ``L(u) <= L(v)`` for every
edge ``u -> v`` and minimize ``sum_{u->v} w(u, v) [L(u) = L(v)]``. On the
feasible set the cost of an edge is a convex function of ``d = L(v) - L(u)``
(``w`` at 0, ``0`` from 1 on), so the problem is solved *exactly* by one minimum
s-t cut (Ishikawa 2003): binary variables ``x[v, i] = [L(v) >= i]`` for
``i = 1..k-1`` and

``w [d = 0] = w x[u, i]-terms - w x[v, i]-terms + w * #{i : x[v, i+1] = 1, x[u, i] = 0} + const``

with infinite edges for ``x[v, i+1] <= x[v, i]`` (monotone levels) and
``x[u, i] <= x[v, i]`` (no backward edge). The cut is computed with SciPy's
Dinic maximum flow on integer capacities (``scipy.sparse.csgraph``), built as
arrays in one pass: integer weights are used as they are, so the result is a
global optimum for any DAG and any ``k``; real weights are first scaled to
integers of about 30 bits in total, so the optimum holds up to that rounding.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, maximum_flow

from mapograph.partition._generations import generations
from mapograph.partition._input import as_dag, check_positive_int
from mapograph.partition._validate import validate_partition

_CAPACITY_BUDGET = 2**30  # finite capacities add up to at most this (int32 flows)


def _edge_weights(graph: nx.DiGraph, weight: str | None) -> np.ndarray:
    if weight is None:
        return np.ones(graph.number_of_edges())
    values = np.empty(graph.number_of_edges(), dtype=np.float64)
    for e, (u, v, d) in enumerate(graph.edges(data=True)):
        try:
            values[e] = float(d.get(weight, 1.0))
        except (TypeError, ValueError):
            raise ValueError(
                f"edge {u} -> {v}: weight {weight!r} must be a number, got {d[weight]!r}"
            ) from None
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        raise ValueError(f"edge weights must be finite and >= 0, got {values[bad][0]}")
    return values


def _integer_capacities(weights: np.ndarray, copies: int) -> np.ndarray:
    """Weights as int64 capacities whose total over ``copies`` terms fits the budget."""
    total = float(weights.sum()) * copies
    if np.all(weights == np.round(weights)) and total < _CAPACITY_BUDGET:
        return weights.astype(np.int64)
    # divide by the largest weight first: a sum of weights near 1e308 overflows to inf
    # (a zero scale, every capacity 0 and an arbitrary cut)
    largest = float(weights.max(initial=0.0))
    if largest == 0.0:
        return np.zeros(weights.shape, dtype=np.int64)
    relative = weights / largest
    scale = _CAPACITY_BUDGET / (float(relative.sum()) * copies)
    return np.round(relative * scale).astype(np.int64)


def k_batches(
    dag: Any, k: int, weight: str | None = "weight", num_nodes: int | None = None
) -> list[list[int]]:
    """Partition the agents into at most ``k`` ordered batches.

    An edge may fall inside a batch (its two agents are then updated together)
    but never points backward. Among all such partitions this returns one that
    minimizes the total weight of edges inside batches (with unit weights: their
    number) — an exact optimum for integer weights (minimum cut, see the module
    docstring). When the DAG has at most ``k`` generations the answer has no edge
    inside a batch. Empty levels are dropped, so fewer than ``k`` batches may come back.

    Args:
        dag: ``networkx.DiGraph`` on ``0..n-1`` or an edge_index ``[2, E]``.
        k: maximum number of batches (>= 1).
        weight: edge attribute holding the weight (missing: 1); ``None``: unit weights.
        num_nodes: number of agents when ``dag`` is an edge_index.
    """
    k = check_positive_int("k", k)
    graph = as_dag(dag, num_nodes)
    n = graph.number_of_nodes()
    weights = _edge_weights(graph, weight)
    gens = generations(graph)
    if len(gens) <= k:
        return gens  # zero weight inside batches: optimal
    if k == 1:
        return [list(range(n))]
    levels = _min_cut_levels(graph, n, k, weights)
    batches = [[] for _ in range(k)]
    for v in range(n):
        batches[levels[v]].append(v)
    return [b for b in batches if b]


def _min_cut_levels(graph: nx.DiGraph, n: int, k: int, weights: np.ndarray) -> np.ndarray:
    """Levels ``0..k-1`` of the agents from one minimum cut of Ishikawa's graph."""
    m = k - 1  # binary variables per agent: node id of x[v, i] is v * m + (i - 1)
    source, sink = n * m, n * m + 1
    edges = np.array(list(graph.edges), dtype=np.int64).reshape(-1, 2)
    u, v = edges[:, 0], edges[:, 1]
    cap = _integer_capacities(weights, 2 * m + max(m - 1, 0))
    infinite = int(cap.sum()) * (2 * m + max(m - 1, 0)) + 1
    tails, heads, caps = [], [], []

    def add(a: np.ndarray, b: np.ndarray, c: np.ndarray | int) -> None:
        tails.append(a)
        heads.append(b)
        caps.append(np.broadcast_to(np.asarray(c, dtype=np.int64), a.shape))

    agents = np.arange(n, dtype=np.int64)
    for i in range(1, k):
        node_u, node_v = u * m + (i - 1), v * m + (i - 1)
        add(node_u, node_v, infinite)  # no backward edge: x[u, i] <= x[v, i]
        add(node_u, np.full_like(node_u, sink), cap)  # + w x[u, i]
        add(np.full_like(node_v, source), node_v, cap)  # + w (1 - x[v, i])
        if i < k - 1:
            add(agents * m + i, agents * m + (i - 1), infinite)  # x[v, i+1] <= x[v, i]
            add(v * m + i, u * m + (i - 1), cap)  # + w [x[v, i+1] = 1, x[u, i] = 0]
    tail, head, capacity = np.concatenate(tails), np.concatenate(heads), np.concatenate(caps)
    keep = capacity > 0
    size = n * m + 2
    # duplicate (tail, head) pairs are summed by the COO -> CSR conversion; an infinite
    # edge plus finite ones is clamped back to ``infinite`` (int32 for SciPy)
    matrix = csr_matrix(
        (capacity[keep], (tail[keep], head[keep])), shape=(size, size), dtype=np.int64
    )
    matrix.data = np.minimum(matrix.data, infinite)
    matrix = matrix.astype(np.int32)
    flow = maximum_flow(matrix, source, sink, method="dinic").flow
    residual = matrix - flow
    residual.data = (residual.data > 0).astype(np.int8)
    residual.eliminate_zeros()
    reachable = breadth_first_order(residual, source, directed=True, return_predecessors=False)
    on_source_side = np.zeros(size, dtype=bool)
    on_source_side[reachable] = True
    return on_source_side[: n * m].reshape(n, m).sum(axis=1)


def inside_weight(
    dag: Any, batches: list[list[int]], weight: str | None = "weight", num_nodes: int | None = None
) -> float:
    """Total weight of the DAG's edges whose two agents share a batch."""
    graph = as_dag(dag, num_nodes)
    validate_partition(batches, graph.number_of_nodes())  # every agent once (not a KeyError)
    batch_of = {a: i for i, b in enumerate(batches) for a in b}
    inside = [batch_of[u] == batch_of[v] for u, v in graph.edges]
    return float(_edge_weights(graph, weight)[np.array(inside, dtype=bool)].sum())
