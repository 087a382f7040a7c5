"""Running normalization of value targets (as in MAPPO's ValueNorm)."""

from __future__ import annotations

import torch
from torch import nn


class ValueNormalizer(nn.Module):
    """Debiased exponential running mean and variance of value targets.

    The critic predicts normalized values; :meth:`denormalize` maps them back.

    Args:
        beta: decay of the running statistics.
        epsilon: floor of the variance.
    """

    def __init__(self, beta: float = 0.99999, epsilon: float = 1e-5) -> None:
        super().__init__()
        self.beta = beta
        self.epsilon = epsilon
        self.register_buffer("running_mean", torch.zeros(()))
        self.register_buffer("running_mean_sq", torch.zeros(()))
        self.register_buffer("debias", torch.zeros(()))

    def _stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        debias = self.debias.clamp_min(self.epsilon)
        mean = self.running_mean / debias
        var = (self.running_mean_sq / debias - mean**2).clamp_min(1e-2)
        return mean, var

    @torch.no_grad()
    def update(self, targets: torch.Tensor) -> None:
        """Fold a batch of (unnormalized) targets into the running statistics."""
        w = self.beta
        self.running_mean.mul_(w).add_(targets.mean() * (1 - w))
        self.running_mean_sq.mul_(w).add_((targets**2).mean() * (1 - w))
        self.debias.mul_(w).add_(1 - w)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Map raw values to the critic's normalized scale."""
        mean, var = self._stats()
        return (x - mean) / var.sqrt()

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Map the critic's normalized outputs to raw values."""
        mean, var = self._stats()
        return x * var.sqrt() + mean
