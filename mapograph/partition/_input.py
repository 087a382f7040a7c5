"""Turn the accepted DAG inputs into one validated ``networkx.DiGraph``."""

from __future__ import annotations

import operator
from typing import Any

import networkx as nx
import torch


def as_dag(dag: Any, num_nodes: int | None = None) -> nx.DiGraph:
    """Validate ``dag`` and return it as a DiGraph on nodes ``0..n-1``.

    Args:
        dag: a ``networkx.DiGraph`` on nodes ``0..n-1``, or an ``edge_index``
            (``torch.Tensor`` / array / nested list of shape ``[2, E]``) together with
            ``num_nodes``.
        num_nodes: number of agents when ``dag`` is an edge_index.

    Raises:
        ValueError: nodes that are not exactly ``0..n-1``, a malformed edge_index,
            self-loops, or a cycle (one cycle is named in the message).
    """
    if isinstance(dag, nx.Graph):
        if not dag.is_directed():
            raise ValueError("the DAG must be a networkx.DiGraph, got an undirected graph")
        n = dag.number_of_nodes()
        if set(dag.nodes) != set(range(n)):
            extra = sorted(set(dag.nodes) - set(range(n)), key=str)[:5]
            raise ValueError(f"DAG nodes must be exactly 0..{n - 1}; unexpected nodes {extra}")
        if num_nodes is not None and num_nodes != n:
            raise ValueError(f"num_nodes={num_nodes} but the DiGraph has {n} nodes")
        # a MultiDiGraph's parallel edges are one dependency (a partitioner counting
        # in-degrees would wait for the same parent twice)
        graph = nx.DiGraph(dag) if dag.is_multigraph() else dag
        if any(type(v) is not int for v in graph.nodes):
            # numpy ints (or 0.0 == 0) pass the check above but would leak into the
            # batches (not JSON-serializable, not ints): relabel to Python ints
            labels = {}
            for v in graph.nodes:
                try:
                    labels[v] = operator.index(v)
                except TypeError:
                    raise ValueError(
                        f"DAG nodes must be int agent ids, got {v!r} ({type(v).__name__})"
                    ) from None
            graph = nx.relabel_nodes(graph, labels, copy=True)
    else:
        if num_nodes is None:
            raise ValueError("an edge_index needs num_nodes= (the number of agents)")
        num_nodes = check_positive_int("num_nodes", num_nodes)
        edge_index = torch.as_tensor(dag)
        if edge_index.numel() == 0:
            edge_index = edge_index.reshape(2, 0)
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"edge_index must have shape [2, E], got {list(edge_index.shape)}")
        if (
            edge_index.dtype.is_floating_point
            or edge_index.dtype.is_complex
            or (edge_index.dtype == torch.bool)
        ):
            raise ValueError(f"edge_index must hold integer node ids, got {edge_index.dtype}")
        if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
            raise ValueError(f"edge_index refers to nodes outside 0..{num_nodes - 1}")
        graph = nx.DiGraph()
        graph.add_nodes_from(range(num_nodes))
        graph.add_edges_from(edge_index.t().tolist())
    loops = list(nx.selfloop_edges(graph))
    if loops:
        raise ValueError(f"the DAG has a self-loop on node {loops[0][0]}")
    if not nx.is_directed_acyclic_graph(graph):
        cycle = [u for u, _ in nx.find_cycle(graph)]
        raise ValueError(f"the graph has a cycle: {' -> '.join(map(str, cycle + cycle[:1]))}")
    return graph


def check_positive_int(name: str, value: Any) -> int:
    """``value`` as a Python int; ValueError unless it is an int >= 1 (numpy and 0-d
    torch integers count, ``bool`` and floats do not)."""
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return number
