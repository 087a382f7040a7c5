"""Advantage estimators: GAE and its trace-corrected form for batch-sequential updates.

Shapes: ``rewards, dones [T, E]``, ``values [T + 1, E]`` (the last row bootstraps).
The recursion over time is a parallel prefix scan (:func:`backward_linear_scan`); nothing
loops over agents or env copies.
"""

from __future__ import annotations

import torch


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    lam: float,
    trace: torch.Tensor | None = None,
    next_values: torch.Tensor | None = None,
    terminals: torch.Tensor | None = None,
) -> torch.Tensor:
    """Generalized advantage estimation, optionally with an off-policy trace.

    ``delta_t = r_t + gamma * (1 - d_t) * V_{t+1} - V_t`` and

    ``A_t = c_t * (delta_t + gamma * lam * (1 - d_t) * A_{t+1})``

    with ``c_t = 1`` (plain GAE, Schulman et al. 2016) or ``c_t = trace[t]``: the
    clipped product of new/old ratios of the agents already updated this iteration
    (A2PO's off-policy correction of the advantage, a Retrace-style truncated trace).
    ``d_t`` marks the end of an episode *at* step ``t`` (no bootstrap across it).

    Args:
        rewards: ``[T, E]`` team rewards.
        values: ``[T + 1, E]`` state values (raw scale).
        dones: ``[T, E]`` episode ends.
        gamma: discount.
        lam: GAE lambda.
        trace: optional ``[T, E]`` trace coefficients.
        next_values: optional ``[T, E]`` value of the state each step reached (the
            value of a truncated episode's final state where it differs from
            ``values[1:]``, which then holds the next episode's first state).
        terminals: optional ``[T, E]`` true terminations (no bootstrap); with
            ``next_values``, ``delta_t = r_t + gamma (1 - terminal_t) next_t - V_t``
            while the recursion still stops at every episode end (``dones``).

    Returns:
        ``[T, E]`` advantages.
    """
    if values.shape[0] != rewards.shape[0] + 1:
        raise ValueError(
            f"values must have one more row than rewards (bootstrap), got {values.shape[0]} "
            f"and {rewards.shape[0]}"
        )
    not_done = 1.0 - dones.to(rewards.dtype)
    if next_values is None:
        deltas = rewards + gamma * not_done * values[1:] - values[:-1]
    else:
        not_terminal = 1.0 - (dones if terminals is None else terminals).to(rewards.dtype)
        deltas = rewards + gamma * not_terminal * next_values - values[:-1]
    decay = gamma * lam * not_done
    if trace is not None:
        deltas, decay = trace * deltas, trace * decay
    return backward_linear_scan(deltas, decay)


def backward_linear_scan(b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``x_t = b_t + a_t x_{t+1}`` (``x_T = 0``) along dim 0, by a parallel prefix scan.

    The recursion of GAE without a Python loop over time: ``ceil(log2 T)`` doubling
    steps (Hillis & Steele), each a few vectorized ops over all ``T`` rows, instead of
    ``T`` steps of a few ops over one row each. Sums are associated differently from
    the sequential loop, so results agree with it to rounding.
    """
    x, factor = b.clone(), a.clone()
    length, shift = b.shape[0], 1
    while shift < length:
        # fold in the partial sums `shift` steps later: x_t += factor_t * x_{t+shift}
        x[:-shift] = x[:-shift] + factor[:-shift] * x[shift:]
        if 2 * shift < length:  # the last fold needs no products beyond it
            factor[:-shift] = factor[:-shift] * factor[shift:]
        shift *= 2
    return x


def normalize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero-mean unit-variance normalization over all entries."""
    return (x - x.mean()) / (x.std(unbiased=False) + eps)
