"""``DAGCritic``: pooled attention embedding of the agents -> value (the generator's baseline)."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import global_mean_pool

from mapograph.graph._encoder import AgentAttentionEncoder


class DAGCritic(nn.Module):
    """Value of the agents' situation for the DAG generator's PPO.

    GATv2 attention encoder, mean pooling over the agents of each copy
    (``torch_geometric.nn.global_mean_pool``), then an MLP to a scalar.

    Args:
        feature_dim: per-agent feature size.
        n_agents: number of agents.
        hidden: embedding size.
        heads: attention heads.
    """

    def __init__(
        self, feature_dim: int, n_agents: int, hidden: int = 64, heads: int = 4, layers: int = 2
    ):
        super().__init__()
        self.n_agents = n_agents
        self.encoder = AgentAttentionEncoder(feature_dim, hidden, heads, layers)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(
        self, features: torch.Tensor, candidates: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, N, F] -> [B]`` values (``candidates``: sparse attention graph, as for the generator)."""
        if features.dim() == 2:
            features = features.unsqueeze(0)
        feature_dim = self.encoder.inp.in_features
        if features.dim() != 3 or features.shape[1:] != (self.n_agents, feature_dim):
            raise ValueError(
                f"expected features [B, {self.n_agents} agents, {feature_dim}], "
                f"got shape {list(features.shape)}"
            )
        b, n, _ = features.shape
        h = self.encoder(features, candidates).reshape(b * n, -1)
        batch = torch.arange(b, device=features.device).repeat_interleave(n)
        return self.head(global_mean_pool(h, batch)).squeeze(-1)
