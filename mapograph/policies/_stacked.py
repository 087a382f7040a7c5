"""Per-agent networks with stacked parameters: one batched matmul for all agents.

A :class:`StackedLinear` holds ``weight [N, in, out]`` and ``bias [N, out]``; its
forward is ``y[..., n, :] = x[..., n, :] @ weight[n] + bias[n]`` for every agent ``n``
at once (``torch.baddbmm`` over the agent axis). Passing ``agents=`` (a LongTensor
of agent ids) evaluates only those agents' networks on inputs ``[..., len(agents), in]``;
gradients then reach only those rows of the parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def stacked_matmul(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``[..., n, in] @ weight [n, in, out] -> [..., n, out]``: row ``i`` of every sample
    through its own matrix ``weight[i]`` (one batched matmul)."""
    lead, n = x.shape[:-2], x.shape[-2]
    flat = x.reshape(-1, n, weight.shape[1]).transpose(0, 1)  # [n, B, in]
    return torch.bmm(flat, weight).transpose(0, 1).reshape(*lead, n, weight.shape[2])


class StackedLinear(nn.Module):
    """``N`` independent linear layers evaluated in one batched matmul.

    Args:
        n_agents: number of stacked layers ``N``.
        in_features: input size of each layer.
        out_features: output size of each layer.
        bias: add a per-agent bias.
        init_scale: orthogonal gain; ``None`` uses PyTorch's ``nn.Linear`` default init.
    """

    def __init__(
        self,
        n_agents: int,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.n_agents = n_agents
        self.in_features = in_features
        self.out_features = out_features
        self.init_scale = init_scale
        self.weight = nn.Parameter(torch.empty(n_agents, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n_agents, out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialize every agent's layer independently."""
        with torch.no_grad():
            for n in range(self.n_agents):  # init only, not a hot path
                w = self.weight[n]
                if self.init_scale is None:
                    bound = 1.0 / math.sqrt(self.in_features)
                    w.uniform_(-bound, bound)
                else:
                    nn.init.orthogonal_(w, gain=self.init_scale)
            if self.bias is not None:
                if self.init_scale is None:
                    bound = 1.0 / math.sqrt(self.in_features)
                    self.bias.uniform_(-bound, bound)
                else:
                    self.bias.zero_()

    def forward(self, x: torch.Tensor, agents: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the layers.

        Args:
            x: ``[..., N, in]`` (or ``[..., len(agents), in]`` when ``agents`` is given).
            agents: optional LongTensor of agent ids whose layers to use.

        Returns:
            ``[..., N or len(agents), out]``.
        """
        if self.bias is None:
            return stacked_matmul(x, self.weight if agents is None else self.weight[agents])
        lead = x.shape[:-2]
        n = x.shape[-2]
        flat = x.reshape(-1, n, self.in_features).transpose(0, 1)  # [n, B, in]
        out = self.forward_agent_major(flat, agents)
        return out.transpose(0, 1).reshape(*lead, n, self.out_features)

    def forward_agent_major(
        self, x: torch.Tensor, agents: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The same layers on agent-major inputs ``[n, B, in] -> [n, B, out]``.

        Stacks of layers keep this layout between layers (one transpose at each end).
        """
        weight = self.weight if agents is None else self.weight[agents]
        if self.bias is None:
            return torch.bmm(x, weight)
        bias = self.bias if agents is None else self.bias[agents]
        return torch.baddbmm(bias.unsqueeze(1), x, weight)

    def extra_repr(self) -> str:
        return (
            f"n_agents={self.n_agents}, in_features={self.in_features}, "
            f"out_features={self.out_features}, bias={self.bias is not None}"
        )


class StackedMLP(nn.Module):
    """A per-agent MLP: ``N`` networks with identical shapes, evaluated together.

    Args:
        n_agents: number of agents ``N``.
        in_dim: input size.
        hidden: hidden layer sizes.
        out_dim: output size.
        out_scale: orthogonal gain of the last layer (small for policy heads).
        activation: activation module class.
        normalize_input: layer-normalize the input first (see :func:`input_norm`).
    """

    def __init__(
        self,
        n_agents: int,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        out_scale: float = 1.0,
        activation: type[nn.Module] = nn.Tanh,
        normalize_input: bool = False,
    ) -> None:
        super().__init__()
        self.input_norm = input_norm(in_dim, normalize_input)
        sizes = [in_dim, *hidden]
        self.hidden_layers = nn.ModuleList(
            StackedLinear(n_agents, a, b, init_scale=math.sqrt(2))
            for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.out_layer = StackedLinear(n_agents, sizes[-1], out_dim, init_scale=out_scale)
        self.activation = activation()

    def forward(self, x: torch.Tensor, agents: torch.Tensor | None = None) -> torch.Tensor:
        """``[..., N, in] -> [..., N, out]`` (or only ``agents``' networks)."""
        return self.forward_with_hidden(x, agents)[0]

    def forward_with_hidden(
        self, x: torch.Tensor, agents: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(out [..., n, out], last hidden layer [..., n, H])`` from one forward."""
        lead = x.shape[:-2]
        n = x.shape[-2]
        h = self.input_norm(x).reshape(-1, n, x.shape[-1]).transpose(0, 1)  # [n, B, in]
        for layer in self.hidden_layers:
            h = self.activation(layer.forward_agent_major(h, agents))
        out = self.out_layer.forward_agent_major(h, agents)
        return (
            out.transpose(0, 1).reshape(*lead, n, out.shape[-1]),
            h.transpose(0, 1).reshape(*lead, n, h.shape[-1]),
        )


#: Hidden-layer activations by name (``TrainConfig.activation``): tanh is the default
#: here and in BenchMARL; MAPPO's and HARL's code default to ReLU, JaxMARL's SMAX
#: baselines use ReLU.
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def activation_class(name: str) -> type[nn.Module]:
    """The activation module class called ``name`` (a key of :data:`ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def input_norm(in_dim: int, enabled: bool) -> nn.Module:
    """Layer normalization of a network's raw input features, or the identity.

    MAPPO's and HARL's ``use_feature_normalization``: each input vector is shifted
    and scaled to zero mean and unit variance over its features before the first
    layer, so features of very different scales (unit counts, distances, health)
    start on an equal footing. No affine parameters: the first linear layer already
    represents any per-feature scale and shift, and the parameter count (and every
    per-agent optimizer row) stays as without it.
    """
    return nn.LayerNorm(in_dim, elementwise_affine=False) if enabled else nn.Identity()


def orthogonal_linear(in_dim: int, out_dim: int, gain: float) -> nn.Linear:
    """An ``nn.Linear`` with orthogonal weights (``gain``) and zero bias."""
    linear = nn.Linear(in_dim, out_dim)
    nn.init.orthogonal_(linear.weight, gain=gain)
    nn.init.zeros_(linear.bias)
    return linear


def hidden_stack(sizes: Sequence[int], activation: type[nn.Module]) -> list[nn.Module]:
    """Hidden layers ``sizes[0] -> ... -> sizes[-1]``: orthogonal linears (gain sqrt 2),
    each followed by ``activation``."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [orthogonal_linear(a, b, math.sqrt(2)), activation()]
    return layers


class SharedMLP(nn.Module):
    """One MLP shared by all agents, with the agent id appended as a one-hot.

    Same call signature as :class:`StackedMLP` so actors can use either.
    """

    def __init__(
        self,
        n_agents: int,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        out_scale: float = 1.0,
        activation: type[nn.Module] = nn.Tanh,
        normalize_input: bool = False,
    ) -> None:
        super().__init__()
        self.n_agents = n_agents
        self.input_norm = input_norm(in_dim, normalize_input)
        sizes = [in_dim + n_agents, *hidden]
        layers = hidden_stack(sizes, activation)  # built first: same initial weights as before
        self.net = nn.Sequential(*layers, orthogonal_linear(sizes[-1], out_dim, out_scale))
        self.register_buffer("agent_ids", torch.eye(n_agents), persistent=False)

    def forward(self, x: torch.Tensor, agents: torch.Tensor | None = None) -> torch.Tensor:
        """``[..., N, in] -> [..., N, out]`` with agent one-hots appended."""
        ids = self.agent_ids if agents is None else self.agent_ids[agents]
        ids = ids.expand(*x.shape[:-1], self.n_agents)
        return self.net(torch.cat([self.input_norm(x), ids], dim=-1))

    def forward_with_hidden(
        self, x: torch.Tensor, agents: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(out, last hidden layer)`` from one forward (see :meth:`StackedMLP.forward_with_hidden`)."""
        ids = self.agent_ids if agents is None else self.agent_ids[agents]
        ids = ids.expand(*x.shape[:-1], self.n_agents)
        h = self.net[:-1](torch.cat([self.input_norm(x), ids], dim=-1))
        return self.net[-1](h), h


class SharedTorsoMLP(nn.Module):
    """A network shared by all agents (agent one-hot appended) plus a per-agent output layer.

    The shared part is a :class:`SharedMLP` (hidden layers and output layer); each
    agent adds its own linear head on the last hidden layer (a :class:`StackedLinear`,
    zero at initialization, so all agents start as the shared network).
    Batch-by-batch updates step the heads of a batch's agents only and the shared
    part jointly for all agents (see :meth:`torso_parameters`). Same call signature
    as :class:`StackedMLP`.
    """

    def __init__(
        self,
        n_agents: int,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        out_scale: float = 1.0,
        activation: type[nn.Module] = nn.Tanh,
        normalize_input: bool = False,
    ) -> None:
        super().__init__()
        self.n_agents = n_agents
        self.input_norm = input_norm(in_dim, normalize_input)
        sizes = [in_dim + n_agents, *hidden]
        self.torso = nn.Sequential(*hidden_stack(sizes, activation))
        self.shared_out = orthogonal_linear(sizes[-1], out_dim, out_scale)
        self.out_layer = StackedLinear(n_agents, sizes[-1], out_dim, init_scale=0.0)
        self.register_buffer("agent_ids", torch.eye(n_agents), persistent=False)

    def torso_parameters(self) -> list[nn.Parameter]:
        """The parameters every agent shares (hidden layers and shared output layer)."""
        return [*self.torso.parameters(), *self.shared_out.parameters()]

    def forward(self, x: torch.Tensor, agents: torch.Tensor | None = None) -> torch.Tensor:
        """``[..., N, in] -> [..., N, out]`` (or only ``agents``' heads) with agent one-hots."""
        return self.forward_with_hidden(x, agents)[0]

    def forward_with_hidden(
        self, x: torch.Tensor, agents: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(out, last hidden layer)`` from one forward (see :meth:`StackedMLP.forward_with_hidden`)."""
        ids = self.agent_ids if agents is None else self.agent_ids[agents]
        ids = ids.expand(*x.shape[:-1], self.n_agents)
        h = self.torso(torch.cat([self.input_norm(x), ids], dim=-1))
        return self.shared_out(h) + self.out_layer(h, agents), h
