"""Attention encoder over the agent graph (GATv2 layers from torch_geometric)."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import GATv2Conv
from torch_geometric.utils import add_self_loops, remove_self_loops

from mapograph.graph._agent_graph import agent_graph


class AgentAttentionEncoder(nn.Module):
    """Per-agent embeddings by multi-head GATv2 attention over the agent graph
    (complete by default, or a sparse candidate graph).

    ``h0 = tanh(W x)``; then ``layers`` times ``h <- h + ELU(GATv2(h))`` (heads concatenated;
    every agent also attends to itself). Permuting the agents (rows of ``x``) permutes the
    embeddings the same way.

    The batched graph (edges offset per copy, self-loops added) depends only on the
    number of copies, of agents and on ``edge_index``, so it is built once and reused
    while those stay the same (the upper layer's PPO steps call the encoder a dozen
    times on one graph; building it cost a quarter of a forward and backward at 10 agents).

    Args:
        feature_dim: per-agent input size.
        hidden: embedding size (divisible by ``heads``).
        heads: attention heads.
        layers: attention layers.
    """

    def __init__(self, feature_dim: int, hidden: int = 64, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        if hidden % heads != 0:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
        self.inp = nn.Linear(feature_dim, hidden)
        self.convs = nn.ModuleList(
            # self-loops are part of the cached graph (:meth:`graph_edges`), added once
            GATv2Conv(hidden, hidden // heads, heads=heads, add_self_loops=False)
            for _ in range(layers)
        )
        self.act = nn.ELU()
        self._edges: tuple | None = None  # (key, edge_index given, batched edges with loops)

    def graph_edges(
        self, copies: int, n: int, device: torch.device, edge_index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The edges ``[2, E']`` the attention runs over: ``edge_index`` (default: the
        complete graph) for ``copies`` graphs of ``n`` agents, each node with a self-loop
        (the ones GATv2Conv's ``add_self_loops`` would add, in the same order). Cached for
        the last ``(copies, n, device, edge_index)`` (the same tensor object, unmodified)."""
        if edge_index is not None and not isinstance(edge_index, torch.Tensor):
            edge_index = torch.as_tensor(edge_index, dtype=torch.long, device=device)
        key = (copies, n, str(device), None if edge_index is None else edge_index._version)
        cached = self._edges
        if cached is not None and cached[0] == key and cached[1] is edge_index:
            return cached[2]
        edges = agent_graph(torch.empty(copies, n, 0, device=device), edge_index).edge_index
        edges, _ = add_self_loops(remove_self_loops(edges)[0], num_nodes=copies * n)
        self._edges = (key, edge_index, edges)
        return edges

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, N, F] -> [B, N, hidden]`` (one batched PyG graph for all copies).

        ``edge_index`` ``[2, E]`` restricts attention to those pairs (default: the
        complete agent graph).
        """
        if x.dim() != 3:
            raise ValueError(f"agent features must be [B, N, F], got shape {list(x.shape)}")
        b, n, _ = x.shape
        edges = self.graph_edges(b, n, x.device, edge_index)
        h = torch.tanh(self.inp(x.reshape(b * n, -1)))
        for conv in self.convs:
            h = h + self.act(conv(h, edges))
        return h.reshape(b, n, -1)
