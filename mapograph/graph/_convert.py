"""Conversions between edge_index tensors and networkx graphs."""

from __future__ import annotations

import operator

import networkx as nx
import torch


def to_networkx(
    edge_index: torch.Tensor, num_nodes: int, edge_weight: torch.Tensor | None = None
) -> nx.DiGraph:
    """A ``networkx.DiGraph`` on nodes ``0..num_nodes-1`` from an ``edge_index`` ``[2, E]``.

    ``edge_weight`` (``[E]``), when given, becomes the edge attribute ``weight``.
    """
    try:  # numpy ints count; a bool, a float or a string is no node count
        count = None if isinstance(num_nodes, bool) else operator.index(num_nodes)
    except TypeError:
        count = None
    if count is None or count < 0:
        raise ValueError(f"num_nodes must be an int >= 0, got {num_nodes!r}")
    num_nodes = count
    edge_index = torch.as_tensor(edge_index)
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
    pairs = edge_index.t().tolist()
    if edge_weight is None:
        graph.add_edges_from(pairs)
    else:
        weights = torch.as_tensor(edge_weight).flatten().tolist()
        if len(weights) != len(pairs):
            raise ValueError(f"edge_weight has {len(weights)} entries for {len(pairs)} edges")
        graph.add_weighted_edges_from((u, v, w) for (u, v), w in zip(pairs, weights))
    return graph


def from_networkx(graph: nx.DiGraph) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(edge_index [2, E], edge_weight [E] or None)`` of a DiGraph on nodes ``0..n-1``.

    ``edge_weight`` is returned when every edge has a ``weight`` attribute.
    """
    if not isinstance(graph, nx.Graph) or not graph.is_directed():
        raise ValueError("from_networkx needs a directed graph (networkx.DiGraph)")
    n = graph.number_of_nodes()
    if set(graph.nodes) != set(range(n)):
        raise ValueError(f"graph nodes must be exactly 0..{n - 1}")
    edges = list(graph.edges(data=True))
    if not edges:
        return torch.zeros(2, 0, dtype=torch.long), None
    edge_index = torch.tensor([[u, v] for u, v, _ in edges], dtype=torch.long).t().contiguous()
    if all("weight" in d for _, _, d in edges):
        return edge_index, torch.tensor([float(d["weight"]) for _, _, d in edges])
    return edge_index, None
