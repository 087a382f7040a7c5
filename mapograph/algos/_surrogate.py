"""PPO's clipped surrogate, the one objective every policy in mapograph is trained with.

``L(theta) = E[min(r A, clip(r, 1 - eps, 1 + eps) A)]`` with ``r = exp(log pi_theta - log pi_old)``
(Schulman et al. 2017, eq. 7). The batch-sequential update, the derived policy
``pi_ind`` and the DAG generator all call :func:`clipped_surrogate`.
"""

from __future__ import annotations

import torch


def clipped_surrogate(
    log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantage: torch.Tensor, clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample clipped surrogate (to maximize) and the probability ratio.

    Args:
        log_prob: log-probabilities under the policy being optimized.
        old_log_prob: log-probabilities under the policy that collected the data.
        advantage: advantages, broadcastable to ``log_prob``.
        clip: the clip range ``eps``.

    Returns:
        ``(min(r A, clip(r) A), r)``, both shaped like the broadcast inputs.
    """
    ratio = torch.exp(log_prob - old_log_prob)
    surrogate = torch.min(ratio * advantage, ratio.clamp(1 - clip, 1 + clip) * advantage)
    return surrogate, ratio
