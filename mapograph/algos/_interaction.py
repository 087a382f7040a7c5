"""Pairwise action interaction in the advantage: which agents' choices matter *together*.

For agents ``i`` and ``j`` the advantage is averaged over the cells of their
joint action ``(a_i, a_j)``; what the two marginal effects do not explain,

``r_ij(a, b) = E[A | a_i=a, a_j=b] - E[A | a_i=a] - E[A | a_j=b] + E[A]``,

is the interaction (a two-way ANOVA). Its sample-weighted mean square
``I_ij = sum_ab P(a_i=a, a_j=b) r_ij(a, b)^2`` is large when the best action of
one agent depends on the action of the other: the agents are interdependent.
All pairs are computed at once with einsums (no loop over agents).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAX_CELLS = 4_000_000  # N^2 A^2: beyond this the statistic is skipped (too costly per iteration)


def action_interaction(
    actions: torch.Tensor, advantages: torch.Tensor, n_actions: int
) -> torch.Tensor | None:
    """Interaction strength ``[N, N]`` (symmetric, zero diagonal), or None when too large.

    Args:
        actions: ``[S, N]`` joint actions.
        advantages: ``[S]`` advantages of those samples.
        n_actions: number of actions per agent.
    """
    s, n = actions.shape
    if n * n * n_actions * n_actions > MAX_CELLS:
        return None
    x = F.one_hot(actions, n_actions).to(advantages.dtype)  # [S, N, A]
    adv = advantages - advantages.mean()
    count = torch.einsum("sia,sjb->iajb", x, x)  # [N, A, N, A]
    total = torch.einsum("s,sia,sjb->iajb", adv, x, x)
    cell = total / count.clamp_min(1.0)
    marginal = torch.einsum("s,sia->ia", adv, x) / x.sum(0).clamp_min(1.0)  # [N, A]
    residual = cell - marginal[:, :, None, None] - marginal[None, None, :, :]
    residual = residual * (count > 0)
    strength = (count * residual.pow(2)).sum(dim=(1, 3)) / s
    strength.fill_diagonal_(0.0)
    return strength


def standardize_offdiagonal(matrix: torch.Tensor) -> torch.Tensor:
    """Z-scores of the off-diagonal entries (diagonal set to 0)."""
    n = matrix.shape[0]
    mask = ~torch.eye(n, dtype=torch.bool, device=matrix.device)
    if n < 2:  # no off-diagonal entry
        return torch.zeros_like(matrix)
    values = matrix[mask]
    z = (matrix - values.mean()) / (values.std(unbiased=False) + 1e-8)
    return z.masked_fill(~mask, 0.0)
