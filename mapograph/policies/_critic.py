"""Centralized critic ``V(state)`` shared by the team."""

from __future__ import annotations

import math

import torch
from torch import nn

from mapograph.policies._stacked import activation_class, input_norm


class CentralCritic(nn.Module):
    """MLP value function of the global state.

    Args:
        state_dim: size of the global state.
        hidden: hidden width.
        layers: number of hidden layers.
        normalize_input: layer-normalize the state first (see
            :func:`~mapograph.policies.input_norm`).
        activation: hidden-layer activation (a key of ``ACTIVATIONS``).
    """

    def __init__(
        self,
        state_dim: int,
        hidden: int = 64,
        layers: int = 2,
        normalize_input: bool = False,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        act = activation_class(activation)
        self.input_norm = input_norm(state_dim, normalize_input)
        sizes = [state_dim] + [hidden] * layers
        modules: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            linear = nn.Linear(a, b)
            nn.init.orthogonal_(linear.weight, gain=math.sqrt(2))
            nn.init.zeros_(linear.bias)
            modules += [linear, act()]
        out = nn.Linear(sizes[-1], 1)
        nn.init.orthogonal_(out.weight, gain=1.0)
        nn.init.zeros_(out.bias)
        self.net = nn.Sequential(*modules, out)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """``[..., state_dim] -> [...]`` values."""
        return self.net(self.input_norm(state)).squeeze(-1)
