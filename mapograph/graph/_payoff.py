"""A centralized critic with pairwise payoffs over the agent graph (PyTorch Geometric layers).

``Q(s, a) = V(s) + sum_i u_i(s, a_i) + sum_{(i, j) in C} g_ij(s, a_i, a_j)``

over a set ``C`` of candidate pairs (all pairs for small ``N``). The pairwise
payoffs are low rank, as in deep coordination graphs (Böhmer et al., 2020):

``g_ij(s, a_i, a_j) = sum_k w_ij,k(s) phi_i,k(s, a_i) phi_j,k(s, a_j)``, ``k = 1..rank``,

with ``phi_i(s, a_i) = M(h_i) e(a_i)`` what agent ``i``'s action *means* given what it
observes (``h_i``, an embedding of its observation and id; ``M(h) = MLP(h)``, a
``[rank, D]`` matrix, as DCG's utility heads output a value per action) and
``w_ij(s) = MLP([h_i, h_j])`` the pair's weights. The unary payoff is
``u_i = v . phi_i``. ``e(a)`` is the action's vector: one-hot for a discrete action,
the action itself (``[D]``) for a continuous one (:func:`action_vectors`), so a
``Box`` action space is an embedding swap.

The pairwise term is a :class:`torch_geometric.nn.MessagePassing` layer over the
candidate edges of a batched agent graph (one graph per sample): each edge's
message is its payoff, summed onto its target node. Edge strength is the size of
the *non-additive* part of ``g_ij`` given the state (the idea behind CASEC, Wang
et al. 2022): the payoff table over an action grid, double-centred (row and
column means removed), mean-squared, averaged over states
(:meth:`PairwisePayoffCritic.pair_strength`). Cost is ``O(|C| * (hidden + rank))``
per sample, not ``O(N^2 A^2)``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import MLP, MessagePassing, global_add_pool, global_mean_pool

from mapograph.graph._agent_graph import agent_graph


def action_vectors(actions: torch.Tensor, n_actions: int | None = None) -> torch.Tensor:
    """Actions as vectors ``[..., D]``: one-hot for integer actions ``[...]``, float ones as given.

    Args:
        actions: LongTensor ``[...]`` (discrete) or float ``[..., D]`` (continuous).
        n_actions: number of discrete actions (required for integer actions).
    """
    if actions.dtype.is_floating_point:
        return actions
    if n_actions is None:
        raise ValueError("n_actions is needed to embed integer (discrete) actions")
    return torch.nn.functional.one_hot(actions.long(), n_actions).float()


class PairPayoff(MessagePassing):
    """Low-rank pairwise payoffs on the edges of a batched agent graph (summed onto targets).

    Node inputs: observation embeddings ``h`` ``[V, hidden]`` and action meanings
    ``phi`` ``[V, rank]``; an edge's payoff is ``sum_k w_k(h_src, h_dst) phi_src,k phi_dst,k``
    with ``w = MLP([h_src, h_dst])`` (one hidden tanh layer).

    The MLP's first layer is linear in the concatenation, ``W [h_src, h_dst] + b =
    W_src h_src + (W_dst h_dst + b)``, so it is applied once per *node* (two
    projections) and the edges only gather and add them: ``O(V * hidden^2)``
    instead of ``O(E * hidden^2)`` for that layer (same function, same parameters).

    Args:
        hidden: size of the agents' embeddings.
        rank: rank of each pairwise payoff.
    """

    def __init__(self, hidden: int, rank: int) -> None:
        super().__init__(aggr="add")
        self.hidden = hidden
        self.weights = MLP([2 * hidden, hidden, rank], act="tanh", norm=None)

    def projections(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-node halves of the first layer: ``(W_src h, W_dst h + b)``, each ``[..., hidden]``."""
        first = self.weights.lins[0]
        w_src, w_dst = first.weight.split(self.hidden, dim=1)
        return h @ w_src.t(), torch.nn.functional.linear(h, w_dst, first.bias)

    def edge_weights(self, p_src: torch.Tensor, p_dst: torch.Tensor) -> torch.Tensor:
        """``[..., rank]`` pair weights from the endpoints' :meth:`projections`."""
        return self.weights.lins[1](torch.tanh(p_src + p_dst))

    def pair_weights(self, h_src: torch.Tensor, h_dst: torch.Tensor) -> torch.Tensor:
        """``[..., rank]`` weights of the pairs ``(src, dst)``."""
        return self.edge_weights(self.projections(h_src)[0], self.projections(h_dst)[1])

    def forward(self, h: torch.Tensor, phi: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Per-node sums ``[V]`` of the payoffs of the edges that end there."""
        p_src, p_dst = self.projections(h)
        return self.propagate(edge_index, p_src=p_src, p_dst=p_dst, phi=phi).squeeze(-1)

    def message(
        self, p_src_j: torch.Tensor, p_dst_i: torch.Tensor, phi_j: torch.Tensor, phi_i: torch.Tensor
    ) -> torch.Tensor:
        # PyG: ``_j`` is the edge's source, ``_i`` its target.
        return (self.edge_weights(p_src_j, p_dst_i) * phi_j * phi_i).sum(-1, keepdim=True)


class PairwisePayoffCritic(nn.Module):
    """``Q(s, a)`` with per-agent and low-rank pairwise payoff terms (see the module docstring).

    Args:
        obs_dim: size of one agent's observation.
        action_dim: size ``D`` of an action vector (``n_actions`` for discrete actions).
        n_agents: number of agents.
        hidden: embedding size.
        rank: rank of the pairwise payoffs.
    """

    def __init__(
        self, obs_dim: int, action_dim: int, n_agents: int, hidden: int = 64, rank: int = 4
    ) -> None:
        super().__init__()
        self.n_agents, self.action_dim = n_agents, action_dim
        self.embed = MLP([obs_dim + n_agents, hidden, hidden], act="tanh", norm=None)
        self.rank = rank
        self.meaning = MLP([hidden, hidden, rank * action_dim], act="tanh", norm=None)
        self.value = MLP([hidden, hidden, 1], act="tanh", norm=None)
        self.unary = nn.Linear(rank, 1, bias=False)
        self.pair = PairPayoff(hidden, rank)

    def embeddings(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, N, obs_dim] -> [B, N, hidden]`` (the agent's id one-hot is appended)."""
        b, n, _ = obs.shape
        ids = torch.eye(n, device=obs.device).expand(b, n, n)
        return torch.tanh(self.embed(torch.cat([obs, ids], -1)))

    def meanings(self, h: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """``phi`` ``[..., rank]`` of action vectors ``act`` ``[..., D]`` for embeddings ``h``."""
        matrix = self.meaning(h).unflatten(-1, (self.rank, self.action_dim))
        return (matrix * act.unsqueeze(-2)).sum(-1)

    def forward(self, obs: torch.Tensor, act: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """``Q`` ``[B]`` for observations ``[B, N, obs_dim]``, action vectors ``[B, N, D]``
        and candidate pairs ``[2, P]`` (each pair once)."""
        b, n = obs.shape[0], self.n_agents
        if obs.dim() != 3 or obs.shape[1] != n:
            raise ValueError(f"obs must be [B, {n}, obs_dim], got shape {list(obs.shape)}")
        if tuple(act.shape) != (b, n, self.action_dim):
            # integer actions [B, N] would broadcast against the D meanings: nonsense, silently
            raise ValueError(
                f"act must be action vectors [{b}, {n}, {self.action_dim}] (see action_vectors), "
                f"got shape {list(act.shape)}"
            )
        h = self.embeddings(obs)
        graph = agent_graph(h, pairs)
        phi = self.meanings(graph.x, act.reshape(graph.x.shape[0], -1))
        per_node = self.unary(phi).squeeze(-1) + self.pair(graph.x, phi, graph.edge_index)
        return self.value(global_mean_pool(graph.x, graph.batch)).squeeze(-1) + global_add_pool(
            per_node.unsqueeze(-1), graph.batch
        ).squeeze(-1)

    @torch.no_grad()
    def pair_strength(
        self, obs: torch.Tensor, pairs: torch.Tensor, grid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Non-additive size of each pair's payoff, and each agent's own (additive) effect.

        Args:
            obs: ``[B, N, obs_dim]`` observations of ``B`` states.
            pairs: ``[2, P]`` candidate pairs.
            grid: ``[M, D]`` action vectors to evaluate the payoffs on (all one-hots
                for discrete actions; samples of the actions taken for continuous ones).

        Returns:
            ``([P], [N])``: ``E_s mean_{a, b} g~_ij(s, a, b)^2`` with ``g~`` the payoff
            table double-centred over the grid, and ``E_s Var_a`` of agent ``i``'s
            additive term (its unary payoff plus the row means of its pairs' tables).
        """
        h = self.embeddings(obs)  # [B, N, H]
        matrix = self.meaning(h).unflatten(-1, (self.rank, self.action_dim))  # [B, N, K, D]
        phi = torch.einsum("bnkd,md->bnmk", matrix, grid)  # [B, N, M, K], as meanings()
        src, dst = pairs
        p_src, p_dst = self.pair.projections(h)
        w = self.pair.edge_weights(p_src[:, src], p_dst[:, dst])  # [B, P, K]
        table = torch.einsum("bpk,bpmk,bplk->bpml", w, phi[:, src], phi[:, dst])
        row, col = table.mean(-1), table.mean(-2)  # [B, P, M]
        centred = table - row[..., None] - col[..., None, :] + table.mean((-1, -2))[..., None, None]
        strength = centred.pow(2).mean((-1, -2)).mean(0)  # [P]
        own = self.unary(phi).squeeze(-1)  # [B, N, M]
        own = own.index_add(1, src, row).index_add(1, dst, col)
        return strength, own.var(-1, unbiased=False).mean(0)
