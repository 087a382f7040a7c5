"""Recurrent torsos: a per-agent GRU with stacked parameters, and a recurrent critic.

:class:`StackedGRU` holds ``N`` GRU cells as stacked ``[N, in, 3H]`` / ``[N, H, 3H]``
weights and steps them in batched matmuls (the same mechanism as
:class:`~mapograph.policies.StackedLinear`); with ``agents=`` only those agents'
rows run, so gradients reach only them. The cell is PyTorch's ``nn.GRUCell``:

``r = sigma(W_ir x + b_ir + W_hr h + b_hr)``, ``z = sigma(W_iz x + b_iz + W_hz h + b_hz)``,
``n = tanh(W_in x + b_in + r (W_hn h + b_hn))``, ``h' = (1 - z) n + z h``.

:class:`RecurrentNet` is ``input layer -> GRU -> output layer`` per agent.
Sequences: ``sequence(x [L, B, n, in], h0 [B, n, H], starts [L, B])`` zeroes the
hidden state of a sample where ``starts`` marks the first step of an episode
(MAPPO's data-chunk scheme: chunks start from stored hidden states and reset
inside where an episode begins). The loop runs over time only.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mapograph.policies._stacked import StackedLinear, activation_class, input_norm


def reset_where(h: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """Zero ``h [B, ...]`` where ``starts [B]`` (bool) marks an episode's first step."""
    keep = (~starts.bool()).to(h.dtype)
    return h * keep.reshape(keep.shape + (1,) * (h.dim() - keep.dim()))


class StackedGRU(nn.Module):
    """``N`` GRU cells stepped together (agent-major inputs ``[n, B, in]``).

    Args:
        n_agents: number of stacked cells.
        in_dim: input size.
        hidden: hidden size ``H``.
    """

    def __init__(self, n_agents: int, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.ih = StackedLinear(n_agents, in_dim, 3 * hidden, init_scale=1.0)
        self.hh = StackedLinear(n_agents, hidden, 3 * hidden, init_scale=1.0)

    def forward(
        self, x: torch.Tensor, h: torch.Tensor, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One step: ``x [n, B, in]``, ``h [n, B, H]`` -> ``h' [n, B, H]`` (cells ``rows``)."""
        i_r, i_z, i_n = self.ih.forward_agent_major(x, rows).chunk(3, -1)
        h_r, h_z, h_n = self.hh.forward_agent_major(h, rows).chunk(3, -1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h


class RecurrentNet(nn.Module):
    """Per-agent ``Linear -> tanh -> GRU -> Linear``, stacked (or shared with agent ids).

    Args:
        n_agents: number of agents ``N``.
        in_dim: input size.
        hidden: width of the input layer and the GRU state ``H``.
        out_dim: output size.
        out_scale: orthogonal gain of the output layer.
        share_params: one network for all agents, the agent's one-hot appended to its input.
        per_agent_out: with ``share_params``, add one output layer per agent (zero at
            initialization) to the shared network's (see :meth:`torso_parameters`).
        normalize_input: layer-normalize the input first (see
            :func:`~mapograph.policies.input_norm`).
        activation: activation of the input layer (a key of ``ACTIVATIONS``).
    """

    def __init__(
        self,
        n_agents: int,
        in_dim: int,
        hidden: int,
        out_dim: int,
        out_scale: float = 1.0,
        share_params: bool = False,
        per_agent_out: bool = False,
        normalize_input: bool = False,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        self.activation = activation_class(activation)()
        self.n_agents = n_agents
        self.input_norm = input_norm(in_dim, normalize_input)
        self.hidden = hidden
        self.share_params = share_params
        self.per_agent_out = share_params and per_agent_out
        rows = 1 if share_params else n_agents
        self.inp = StackedLinear(
            rows, in_dim + (n_agents if share_params else 0), hidden, init_scale=math.sqrt(2)
        )
        self.gru = StackedGRU(rows, hidden, hidden)
        if self.per_agent_out:  # a shared output layer plus per-agent heads, zero at init
            self.shared_out = StackedLinear(1, hidden, out_dim, init_scale=out_scale)
            self.out_layer = StackedLinear(n_agents, hidden, out_dim, init_scale=0.0)
        else:
            self.out_layer = StackedLinear(rows, hidden, out_dim, init_scale=out_scale)
        self.register_buffer("agent_ids", torch.eye(n_agents), persistent=False)

    def torso_parameters(self) -> list[nn.Parameter]:
        """The parameters all agents share under per-agent heads (all but the heads).

        Empty unless ``share_params`` and ``per_agent_out``.
        """
        if not self.per_agent_out:
            return []
        return [*self.inp.parameters(), *self.gru.parameters(), *self.shared_out.parameters()]

    def _rows(self, agents: torch.Tensor | None, n: int, device: torch.device):
        if not self.share_params:
            return agents
        return torch.zeros(n, dtype=torch.long, device=device)  # every agent uses row 0

    def step(
        self, x: torch.Tensor, h: torch.Tensor, agents: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: ``x [..., n, in]``, ``h [..., n, H]`` -> ``(out [..., n, out], h')``."""
        lead, n = x.shape[:-2], x.shape[-2]
        x = self.input_norm(x)
        if self.share_params:
            ids = self.agent_ids if agents is None else self.agent_ids[agents]
            x = torch.cat([x, ids.expand(*lead, n, self.n_agents)], -1)
        rows = self._rows(agents, n, x.device)
        xa = x.reshape(-1, n, x.shape[-1]).transpose(0, 1)  # agent-major [n, B, in]
        ha = h.reshape(-1, n, self.hidden).transpose(0, 1)
        feat = self.activation(self.inp.forward_agent_major(xa, rows))
        ha = self.gru(feat, ha, rows)
        out = self.out_layer.forward_agent_major(ha, agents if self.per_agent_out else rows)
        if self.per_agent_out:
            out = out + self.shared_out.forward_agent_major(ha, rows)
        return (
            out.transpose(0, 1).reshape(*lead, n, out.shape[-1]),
            ha.transpose(0, 1).reshape(*lead, n, self.hidden),
        )

    def sequence(
        self,
        x: torch.Tensor,
        h0: torch.Tensor,
        starts: torch.Tensor,
        agents: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run ``x [L, B, n, in]`` from ``h0 [B, n, H]``, resetting where ``starts [L, B]``.

        Returns:
            ``(out [L, B, n, out], hiddens [L, B, n, H], after [L, B, n, H])``:
            ``hiddens[l]`` is the (reset) state step ``l`` started from, ``after[l]``
            the state it produced.
        """
        h = h0
        outs, hiddens, after = [], [], []
        for t in range(x.shape[0]):  # the recursion over time
            h = reset_where(h, starts[t])
            hiddens.append(h)
            out, h = self.step(x[t], h, agents)
            outs.append(out)
            after.append(h)
        return torch.stack(outs), torch.stack(hiddens), torch.stack(after)


class RecurrentCritic(nn.Module):
    """Centralized recurrent value function ``V(state, h)``: ``Linear -> tanh -> GRU -> Linear``.

    Args:
        state_dim: size of the global state.
        hidden: width and GRU state size.
        normalize_input: layer-normalize the state first.
        activation: activation of the input layer.
    """

    recurrent = True

    def __init__(
        self,
        state_dim: int,
        hidden: int = 64,
        normalize_input: bool = False,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.net = RecurrentNet(
            1,
            state_dim,
            hidden,
            1,
            out_scale=1.0,
            normalize_input=normalize_input,
            activation=activation,
        )

    def step(self, state: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``state [B, S]``, ``h [B, H]`` -> ``(values [B], h' [B, H])``."""
        out, h = self.net.step(state.unsqueeze(-2), h.unsqueeze(-2))
        return out[..., 0, 0], h[..., 0, :]

    def sequence(
        self, state: torch.Tensor, h0: torch.Tensor, starts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``state [L, B, S]`` from ``h0 [B, H]`` with resets ``starts [L, B]``.

        Returns:
            ``(values [L, B], hiddens [L, B, H], after [L, B, H])``: the state each
            step started from and the state it produced.
        """
        out, hiddens, after = self.net.sequence(state.unsqueeze(-2), h0.unsqueeze(-2), starts)
        return out[..., 0, 0], hiddens[..., 0, :], after[..., 0, :]
