"""A distribution over DAGs that is acyclic by construction.

A DAG is drawn in two steps:

1. a **priority order** ``pi`` from a Plackett–Luce distribution with per-agent
   scores ``s``: ``P(pi) = prod_k exp(s_{pi_k}) / sum_{m >= k} exp(s_{pi_m})``,
   sampled exactly by sorting ``s + Gumbel noise`` (Gumbel-max trick);
2. for every ordered pair ``(i, j)`` with ``i`` before ``j`` in ``pi``, an edge
   ``i -> j`` with probability ``sigmoid(l_ij)``, independently.

Every edge goes forward in a total order, so the graph has no cycle: no sampled
graph is ever repaired. Facts used below:

- ``P(i before j) = sigmoid(s_i - s_j)`` (exact for Plackett–Luce, any ``N``), so the
  marginal edge probability is ``p_ij = sigmoid(s_i - s_j) * sigmoid(l_ij)``;
- :meth:`DAGDistribution.log_prob` is the joint log-probability of the order *and*
  the edges (the generator's action in its PPO); :meth:`DAGDistribution.log_prob_marginal`
  sums over all orders consistent with a DAG (exact, by enumeration, for ``N <= 8``);
- :meth:`DAGDistribution.entropy` is ``H_proxy(order) + E[H(edges | order)]``: the
  edge part is exact (each unordered pair is forward in exactly one direction,
  with probability ``sigmoid(s_i - s_j)``); Plackett–Luce has no closed-form
  entropy, so the order part is the sum of the categorical entropies of the
  successive choices along the most probable order (exact for ``N <= 2``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import networkx as nx
import torch
import torch.nn.functional as F

MAX_MARGINAL_AGENTS = 8


@dataclass
class DAGSample:
    """DAGs drawn for ``B`` copies.

    Attributes:
        order: ``[B, N]`` priority order (a permutation of ``0..N-1`` per copy).
        adjacency: ``[B, N, N]`` bool, ``adjacency[b, i, j]``: edge ``i -> j``.
    """

    order: torch.Tensor
    adjacency: torch.Tensor

    def edge_index(self, b: int = 0) -> torch.Tensor:
        """Edges of copy ``b`` as ``[2, E]``."""
        return self.adjacency[b].nonzero().t().contiguous()

    def to_networkx(self, b: int = 0) -> nx.DiGraph:
        """Copy ``b`` as a ``networkx.DiGraph`` on ``0..N-1``."""
        graph = nx.DiGraph()
        graph.add_nodes_from(range(self.adjacency.shape[-1]))
        graph.add_edges_from(self.adjacency[b].nonzero().tolist())
        return graph


def _ranks(order: torch.Tensor) -> torch.Tensor:
    """``rank[b, v]`` = position of agent ``v`` in ``order[b]``."""
    b, n = order.shape
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(n, device=order.device).expand(b, n))
    return ranks


def _forward_mask(order: torch.Tensor) -> torch.Tensor:
    """``[B, N, N]`` True where ``i`` comes before ``j`` in the order."""
    ranks = _ranks(order)
    return ranks[:, :, None] < ranks[:, None, :]


def _plackett_luce_log_prob(scores: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    ordered = scores.gather(1, order)
    tail_logsumexp = torch.logcumsumexp(ordered.flip(1), dim=1).flip(1)
    return (ordered - tail_logsumexp).sum(1)


class DAGDistribution:
    """Plackett–Luce order plus forward Bernoulli edges, batched over ``B`` copies.

    Args:
        scores: ``[B, N]`` priority scores.
        edge_logits: ``[B, N, N]`` logits of the edge probabilities (diagonal ignored).
    """

    def __init__(self, scores: torch.Tensor, edge_logits: torch.Tensor) -> None:
        self.scores = scores
        self.edge_logits = edge_logits
        n = scores.shape[-1]
        self._eye = torch.eye(n, dtype=torch.bool, device=scores.device)

    @property
    def n_agents(self) -> int:
        """Number of agents ``N``."""
        return int(self.scores.shape[-1])

    def sample(self, generator: torch.Generator | None = None) -> DAGSample:
        """Draw one DAG per copy (exact sampling; no gradient)."""
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"generator must be a torch.Generator or None, got {type(generator).__name__}"
            )
        with torch.no_grad():
            u = torch.rand(self.scores.shape, generator=generator, device=self.scores.device)
            gumbel = -torch.log((-torch.log(u.clamp_min(1e-20))).clamp_min(1e-20))
            order = torch.argsort(self.scores + gumbel, dim=-1, descending=True)
            v = torch.rand(self.edge_logits.shape, generator=generator, device=self.scores.device)
            edges = (v < torch.sigmoid(self.edge_logits)) & _forward_mask(order)
        return DAGSample(order=order, adjacency=edges)

    def mode(self, threshold: float = 0.5) -> DAGSample:
        """The most probable order (scores sorted) with the edges of probability > ``threshold``."""
        if (
            not isinstance(threshold, (int, float))
            or isinstance(threshold, bool)
            or not 0.0 <= threshold <= 1.0
        ):  # NaN or 2 kept no edge, silently
            raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
        with torch.no_grad():
            order = torch.argsort(self.scores, dim=-1, descending=True)
            edges = (torch.sigmoid(self.edge_logits) > threshold) & _forward_mask(order)
        return DAGSample(order=order, adjacency=edges)

    def log_prob(self, dag: DAGSample | torch.Tensor | nx.DiGraph) -> torch.Tensor:
        """Log-probability ``[B]`` of a DAG.

        Args:
            dag: a :class:`DAGSample` (order and edges: the *joint* log-probability
                of both, what the generator's PPO uses), or a DAG without an order:
                an adjacency ``[N, N]`` / ``[B, N, N]`` bool tensor or a
                ``networkx.DiGraph`` on ``0..N-1``. Those are scored by
                :meth:`log_prob_marginal` (summed over all consistent orders, ``N <= 8``).
        """
        if not isinstance(dag, DAGSample):
            return self.log_prob_marginal(self._as_adjacency(dag))
        sample = dag
        b, n = self.scores.shape
        if tuple(sample.order.shape) != (b, n) or tuple(sample.adjacency.shape) != (b, n, n):
            raise ValueError(
                f"a DAGSample of this distribution has order [{b}, {n}] and adjacency "
                f"[{b}, {n}, {n}], got {list(sample.order.shape)} and "
                f"{list(sample.adjacency.shape)}"
            )
        forward = _forward_mask(sample.order)
        edge_lp = torch.where(
            sample.adjacency, F.logsigmoid(self.edge_logits), F.logsigmoid(-self.edge_logits)
        )
        return _plackett_luce_log_prob(self.scores, sample.order) + (edge_lp * forward).sum((1, 2))

    def log_prob_marginal(self, adjacency: torch.Tensor) -> torch.Tensor:
        """Log-probability ``[B]`` of a DAG summed over every order consistent with it.

        Exact by enumeration of the ``N!`` orders, so limited to ``N <= 8``.
        """
        n = self.n_agents
        if n > MAX_MARGINAL_AGENTS:
            raise ValueError(
                f"log_prob_marginal enumerates orders: N <= {MAX_MARGINAL_AGENTS}, got {n}"
            )
        adjacency = adjacency.bool()
        perms = torch.tensor(list(itertools.permutations(range(n))), device=self.scores.device)
        b = self.scores.shape[0]
        totals = []
        for perm in perms:  # small N only (documented)
            order = perm.expand(b, n)
            forward = _forward_mask(order)
            consistent = ~(adjacency & ~forward).any(-1).any(-1)
            lp = self.log_prob(DAGSample(order=order, adjacency=adjacency))
            totals.append(torch.where(consistent, lp, torch.full_like(lp, -torch.inf)))
        return torch.logsumexp(torch.stack(totals), dim=0)

    def _as_adjacency(self, dag: torch.Tensor | nx.DiGraph) -> torch.Tensor:
        """``[B, N, N]`` bool adjacency of a tensor or networkx DAG (ValueError otherwise)."""
        n, b = self.n_agents, self.scores.shape[0]
        if isinstance(dag, nx.DiGraph):
            if set(dag.nodes) != set(range(n)):
                raise ValueError(
                    f"the DAG's nodes must be exactly 0..{n - 1}, got {sorted(dag.nodes)}"
                )
            adjacency = torch.zeros(n, n, dtype=torch.bool, device=self.scores.device)
            for i, j in dag.edges:
                adjacency[i, j] = True
        elif isinstance(dag, torch.Tensor):
            adjacency = dag.to(self.scores.device).bool()
        else:
            raise ValueError(
                f"a DAG must be a DAGSample, an adjacency tensor or a networkx.DiGraph, got {type(dag).__name__}"
            )
        if adjacency.shape == (n, n):
            adjacency = adjacency.expand(b, n, n)
        if adjacency.shape != (b, n, n):
            raise ValueError(
                f"adjacency must have shape [{n}, {n}] or [{b}, {n}, {n}], got {list(adjacency.shape)}"
            )
        return adjacency

    def edge_probabilities(self) -> torch.Tensor:
        """Marginal ``P(edge i -> j)`` ``[B, N, N]`` (zero diagonal)."""
        before = torch.sigmoid(self.scores[:, :, None] - self.scores[:, None, :])
        return (before * torch.sigmoid(self.edge_logits)).masked_fill(self._eye, 0.0)

    def entropy(self) -> torch.Tensor:
        """``H_proxy(order) + E[H(edges | order)]`` per copy, ``[B]`` (see module docstring)."""
        p = torch.sigmoid(self.edge_logits)
        bernoulli = F.binary_cross_entropy_with_logits(self.edge_logits, p, reduction="none")
        before = torch.sigmoid(self.scores[:, :, None] - self.scores[:, None, :])
        edge_part = (before * bernoulli).masked_fill(self._eye, 0.0).sum((1, 2))
        order = torch.argsort(self.scores.detach(), dim=-1, descending=True)
        ordered = self.scores.gather(1, order)
        n = self.n_agents
        # successive choices: at step k choose among the remaining agents order[k:]
        remaining = (
            torch.arange(n, device=self.scores.device)[None, :]
            >= torch.arange(n, device=self.scores.device)[:, None]
        )
        logits = ordered[:, None, :].masked_fill(~remaining[None], -torch.inf)  # [B, k, N]
        log_p = torch.log_softmax(logits, dim=-1)
        order_part = -(log_p.exp() * log_p.nan_to_num(neginf=0.0)).sum((1, 2))
        return order_part + edge_part
