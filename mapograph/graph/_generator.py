"""``DAGGenerator``: agent features -> a distribution over interdependence DAGs."""

from __future__ import annotations

import math
import operator

import networkx as nx
import torch
from torch import nn

from mapograph.graph._distribution import DAGDistribution, DAGSample
from mapograph.graph._encoder import AgentAttentionEncoder

#: Edge logit of a pair outside the candidate graph (finite, so entropies stay finite).
NO_EDGE_LOGIT = -30.0


class DAGGenerator(nn.Module):
    """Attention over agents, then priority scores and edge logits for every ordered pair.

    The encoder is :class:`AgentAttentionEncoder` (GATv2 layers of torch_geometric
    over the complete agent graph, batched over copies). The decoder gives

    - a priority score ``s_i = w^T h_i`` per agent (Plackett–Luce order),
    - edge logits ``l_ij = (Q h_i)^T (K h_j) / sqrt(d) + c (+ o_ij)`` for every ordered
      pair, ``o`` an optional fixed offset (``edge_offset``: B2MAPO's upper layer passes
      its interdependence prior there, see :class:`~mapograph.algos._upper.DAGUpperLayer`),

    and :meth:`forward` returns a :class:`DAGDistribution`, acyclic by construction.
    With ``candidates`` (an ``edge_index`` ``[2, E]``, e.g. from
    :func:`~mapograph.graph.top_k_candidates`), attention runs over those pairs only
    and every other pair gets the logit ``NO_EDGE_LOGIT`` (probability about 1e-13):
    the cost of attention grows with ``E`` instead of ``N^2``.
    The module never adds agent ids itself: pass them in the features if agents
    should be told apart, so that permuting the agents permutes the output.

    Args:
        feature_dim: per-agent feature size.
        n_agents: number of agents (checked against the features).
        hidden: embedding size.
        heads: attention heads.
        layers: attention layers.
    """

    def __init__(
        self, feature_dim: int, n_agents: int, hidden: int = 64, heads: int = 4, layers: int = 2
    ):
        super().__init__()
        sizes = (("feature_dim", feature_dim), ("n_agents", n_agents), ("hidden", hidden))
        checked = {}
        for name, value in (*sizes, ("heads", heads), ("layers", layers)):
            try:  # numpy ints count, bools and floats do not
                checked[name] = None if isinstance(value, bool) else operator.index(value)
            except TypeError:
                checked[name] = None
            if checked[name] is None or checked[name] < 1:
                raise ValueError(f"DAGGenerator: {name} must be a positive int, got {value!r}")
        feature_dim, n_agents, hidden = (checked[name] for name, _ in sizes)
        heads, layers = checked["heads"], checked["layers"]
        self.n_agents = n_agents
        self.feature_dim = feature_dim
        self.encoder = AgentAttentionEncoder(feature_dim, hidden, heads, layers)
        self.score = nn.Linear(hidden, 1)
        self.query = nn.Linear(hidden, hidden, bias=False)
        self.key = nn.Linear(hidden, hidden, bias=False)
        self.edge_bias = nn.Parameter(torch.zeros(()))
        self.scale = 1.0 / math.sqrt(hidden)

    def forward(
        self,
        features: torch.Tensor,
        temperature: float = 1.0,
        candidates: torch.Tensor | None = None,
        edge_offset: torch.Tensor | None = None,
    ) -> DAGDistribution:
        """The DAG distribution for features ``[B, N, F]`` (``[N, F]`` is treated as ``B = 1``).

        ``temperature`` divides scores and edge logits (higher: closer to uniform).
        ``candidates``: ``[2, E]`` pairs that may carry an edge (default: all pairs).
        ``edge_offset``: ``[N, N]`` (or ``[B, N, N]``) added to the edge logits before the
        temperature; not a parameter (no gradient flows into it from here).
        """
        if not isinstance(features, torch.Tensor):
            raise TypeError(f"features must be a torch.Tensor, got {type(features).__name__}")
        if features.dim() == 2:
            features = features.unsqueeze(0)
        if features.dim() != 3 or features.shape[1:] != (self.n_agents, self.feature_dim):
            raise ValueError(
                f"expected features [B, {self.n_agents} agents, {self.feature_dim}], "
                f"got shape {list(features.shape)}"
            )
        if features.shape[0] == 0:
            raise ValueError("expected features for at least one copy (B >= 1), got B = 0")
        dtype = self.edge_bias.dtype
        if features.dtype != dtype:
            raise ValueError(f"features must be {dtype} (the generator's), got {features.dtype}")
        if (
            not isinstance(temperature, (int, float))
            or isinstance(temperature, bool)
            or not math.isfinite(temperature)
            or temperature <= 0
        ):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        b, n = features.shape[0], self.n_agents
        if edge_offset is not None and tuple(edge_offset.shape) not in ((n, n), (b, n, n)):
            raise ValueError(
                f"edge_offset must have shape [{n}, {n}] or [{b}, {n}, {n}], "
                f"got {list(edge_offset.shape)}"
            )
        if candidates is not None:
            candidates = torch.as_tensor(candidates, device=features.device)
            if candidates.dtype.is_floating_point or candidates.dtype == torch.bool:
                raise ValueError(f"candidates must hold integer agent ids, got {candidates.dtype}")
        h = self.encoder(features, candidates)
        scores = self.score(h).squeeze(-1)
        logits = (
            torch.einsum("bid,bjd->bij", self.query(h), self.key(h)) * self.scale + self.edge_bias
        )
        if edge_offset is not None:
            logits = logits + edge_offset
        logits = logits / temperature
        if candidates is not None:
            allowed = torch.zeros(
                self.n_agents, self.n_agents, dtype=torch.bool, device=logits.device
            )
            allowed[candidates[0], candidates[1]] = True
            logits = logits.masked_fill(~allowed, NO_EDGE_LOGIT)
        return DAGDistribution(scores / temperature, logits)

    def edge_probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """Marginal ``P(edge i -> j)`` ``[B, N, N]``."""
        return self(features).edge_probabilities()

    # Shortcuts that build the distribution and ask it one thing, so that
    # ``generator.sample(features)`` reads like a torch.distributions call.
    def sample(
        self,
        features: torch.Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> DAGSample:
        """Draw one DAG per copy (see :meth:`DAGDistribution.sample`)."""
        return self(features, temperature).sample(generator)

    def mode(self, features: torch.Tensor, threshold: float = 0.5) -> DAGSample:
        """The most probable order with the edges above ``threshold`` (:meth:`DAGDistribution.mode`)."""
        return self(features).mode(threshold)

    def log_prob(
        self, features: torch.Tensor, dag: DAGSample | torch.Tensor | nx.DiGraph
    ) -> torch.Tensor:
        """Log-probability ``[B]`` of ``dag`` (:meth:`DAGDistribution.log_prob`)."""
        return self(features).log_prob(dag)

    def entropy(self, features: torch.Tensor) -> torch.Tensor:
        """Entropy ``[B]`` of the DAG distribution (:meth:`DAGDistribution.entropy`)."""
        return self(features).entropy()
