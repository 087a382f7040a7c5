"""Pairwise action interaction in the advantage for continuous (Box) actions.

The discrete statistic (:func:`~mapograph.algos._interaction.action_interaction`)
averages the advantage over cells of a joint action; continuous actions have no
cells. Their counterpart is the mixed second derivative of the advantage: with
standardized actions ``z_i = (a_i - mean_i) / std_i`` (per dimension, over the
samples), Stein's lemma for Gaussian actions gives

``E[A z_ik z_jl] = std_ik std_jl E[d^2 A / (d a_ik d a_jl)]``,

so ``M_ij = E[(A - E[A]) z_i z_j^T]`` (``[d, d]`` per pair) is zero when the
advantage is additive in ``a_i`` and ``a_j`` (the agents' best actions do not
depend on each other) and large when it is not. The interaction strength is
``I_ij = ||M_ij||_F^2``; all pairs at once with one einsum (no loop over agents).
The standardization pools the samples (the policy's mean moves with the
observation), which makes this an approximation for state-dependent policies.
"""

from __future__ import annotations

import torch

MAX_ENTRIES = 4_000_000  # (N d)^2: beyond this the statistic is skipped


def continuous_interaction(
    actions: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor | None:
    """Interaction strength ``[N, N]`` (symmetric, zero diagonal), or None when too large.

    Args:
        actions: ``[S, N, d]`` joint continuous actions.
        advantages: ``[S]`` advantages of those samples.
        mask: ``[S, N, d]`` (or ``[N, d]``) bool, True on the dimensions that exist.
    """
    s, n, d = actions.shape
    if (n * d) ** 2 > MAX_ENTRIES:
        return None
    x = actions.to(advantages.dtype)
    z = (x - x.mean(0)) / (x.std(0, unbiased=False) + 1e-8)
    if mask is not None:
        z = z * mask.to(z.dtype)
    adv = advantages - advantages.mean()
    moments = torch.einsum("s,sia,sjb->iajb", adv, z, z) / s  # [N, d, N, d]
    strength = moments.pow(2).sum(dim=(1, 3))
    strength.fill_diagonal_(0.0)
    return strength
