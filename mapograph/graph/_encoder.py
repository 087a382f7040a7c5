"""Attention encoder over the agent graph (GATv2 layers from torch_geometric)."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import GATv2Conv

from mapograph.graph._agent_graph import agent_graph


class AgentAttentionEncoder(nn.Module):
    """Per-agent embeddings by multi-head GATv2 attention over the agent graph
    (complete by default, or a sparse candidate graph).

    ``h0 = tanh(W x)``; then ``layers`` times ``h <- h + ELU(GATv2(h))`` (heads concatenated).
    Permuting the agents (rows of ``x``) permutes the embeddings the same way.

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
            GATv2Conv(hidden, hidden // heads, heads=heads, add_self_loops=True)
            for _ in range(layers)
        )
        self.act = nn.ELU()

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, N, F] -> [B, N, hidden]`` (one batched PyG graph for all copies).

        ``edge_index`` ``[2, E]`` restricts attention to those pairs (default: the
        complete agent graph).
        """
        b, n, _ = x.shape
        graph = agent_graph(x, edge_index)
        h = torch.tanh(self.inp(graph.x))
        for conv in self.convs:
            h = h + self.act(conv(h, graph.edge_index))
        return h.reshape(b, n, -1)
