"""Per-agent actors: categorical with action masking, or diagonal Gaussian.

:class:`Actor` is the independent policy ``pi_i(a_i | o_i)`` of every agent (MAPPO,
HAPPO, A2PO and B2MAPO's derived policy ``pi_ind``). :class:`DAGActor` adds the
parents' actions on the interdependence DAG (B2MAPO's ``pi_seq``).

Discrete actions: the network gives logits, unavailable actions are masked
(:class:`~mapograph.policies.MaskedCategorical`). Continuous actions: the network
gives the mean of a :class:`~mapograph.policies.MaskedDiagGaussian` whose log-std
is a learned per-agent parameter ``[N, d]`` (state-independent, the default) or a
second output of the network (``state_dependent_std=True``, clamped to
``[-5, 2]``); ``avail`` then masks the padded action dimensions.

Recurrent actors (``recurrent=True``) replace the MLP by a
:class:`~mapograph.policies.RecurrentNet` (input layer, GRU, output layer, stacked
per agent). Their ``distribution`` reads sequences ``[L, B, N, ...]`` with the
keywords ``h0 [B, N, H]`` and ``starts [L, B]``; their ``act`` takes the current
``hidden [E, N, H]`` and returns the next one as a third element.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mapograph.policies._distributions import (
    MASKED_LOGIT,
    MaskedCategorical,
    log_softmax,
    masked_logits,
)
from mapograph.policies._gaussian import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    MaskedDiagGaussian,
    sample_gaussian,
)
from mapograph.policies._recurrent import RecurrentNet
from mapograph.policies._stacked import SharedMLP, SharedTorsoMLP, StackedMLP, activation_class


class Actor(nn.Module):
    """Independent per-agent policy (categorical or diagonal Gaussian).

    Args:
        n_agents: number of agents ``N``.
        obs_dim: observation size.
        n_actions: number of discrete actions, or the (padded) action size ``d``
            when ``continuous``.
        hidden: hidden width.
        layers: number of hidden layers.
        share_params: one network for all agents (plus agent one-hot) instead of
            ``N`` stacked networks.
        per_agent_heads: with ``share_params``, add to the shared network one output
            layer per agent (zero at initialization), so that a batch-by-batch update
            can move some agents' heads and not others' while the shared part
            (:meth:`torso_parameters`) is trained jointly (docs: "Homogeneous teams").
        continuous: Gaussian policy over ``d``-dimensional actions.
        state_dependent_std: the log-std is an output of the network (continuous only).
        log_std_init: initial log-std of the state-independent Gaussian.
        recurrent: a GRU torso (hidden size ``hidden``) instead of the MLP.
        normalize_input: layer-normalize the observation before the first layer
            (:func:`~mapograph.policies.input_norm`).
        activation: hidden-layer activation, ``"tanh"`` or ``"relu"``
            (:data:`~mapograph.policies.ACTIVATIONS`).
    """

    def __init__(
        self,
        n_agents: int,
        obs_dim: int,
        n_actions: int,
        hidden: int = 64,
        layers: int = 2,
        share_params: bool = False,
        continuous: bool = False,
        state_dependent_std: bool = False,
        log_std_init: float = -0.5,
        recurrent: bool = False,
        per_agent_heads: bool = False,
        normalize_input: bool = False,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        self.n_agents = n_agents
        self.n_actions = n_actions
        self.shared_torso = share_params and per_agent_heads
        # a shared torso under per-agent heads is not "one network for all agents"
        self.share_params = share_params and not self.shared_torso
        self.continuous = continuous
        self.state_dependent_std = continuous and state_dependent_std
        self.recurrent = recurrent
        self.hidden_size = hidden if recurrent else None
        out_dim = 2 * n_actions if self.state_dependent_std else n_actions
        if recurrent:
            self.net: nn.Module = RecurrentNet(
                n_agents,
                obs_dim,
                hidden,
                out_dim,
                out_scale=0.01,
                share_params=share_params,
                per_agent_out=self.shared_torso,
                normalize_input=normalize_input,
                activation=activation,
            )
        else:
            net_cls = SharedTorsoMLP if self.shared_torso else StackedMLP
            net_cls = SharedMLP if self.share_params else net_cls
            self.net = net_cls(
                n_agents,
                obs_dim,
                [hidden] * layers,
                out_dim,
                out_scale=0.01,
                activation=activation_class(activation),
                normalize_input=normalize_input,
            )
        if continuous and not self.state_dependent_std:
            self.log_std = nn.Parameter(torch.full((n_agents, n_actions), float(log_std_init)))
        if self.state_dependent_std:
            with torch.no_grad():  # start at log_std_init like the state-independent variant
                out = self.net.net[-1] if isinstance(self.net, SharedMLP) else self.net.out_layer
                bias = out.bias
                bias[..., n_actions:] = float(log_std_init)

    def torso_parameters(self) -> list[nn.Parameter]:
        """The shared part under per-agent heads (empty unless ``per_agent_heads``).

        All other parameters are stacked per agent (leading dimension ``N``) or, with
        ``share_params`` and no per-agent heads, shared by the whole network.
        """
        return self.net.torso_parameters() if self.shared_torso else []

    def features(
        self,
        obs: torch.Tensor,
        agents: torch.Tensor | None = None,
        h0: torch.Tensor | None = None,
        starts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The network's output for ``obs`` already restricted to ``agents``.

        Recurrent actors read sequences ``obs [L, B, n, obs_dim]`` from ``h0 [B, N, H]``
        (all agents; ``agents``' rows are used) with resets ``starts [L, B]``.
        """
        return self.features_with_hidden(obs, agents, h0, starts)[0]

    def features_with_hidden(
        self,
        obs: torch.Tensor,
        agents: torch.Tensor | None = None,
        h0: torch.Tensor | None = None,
        starts: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(output, hidden)``: :meth:`features` and the last hidden layer under it
        (a recurrent actor's GRU state after each step), from one forward."""
        if not self.recurrent:
            return self.net.forward_with_hidden(obs, agents)
        if h0 is None or starts is None:
            raise ValueError("a recurrent actor needs h0= and starts= (or act(hidden=...))")
        if agents is not None:
            h0 = h0.index_select(-2, agents)
        out, _, after = self.net.sequence(obs, h0, starts, agents)
        return out, after

    def gaussian(
        self,
        out: torch.Tensor,
        avail: torch.Tensor | None,
        agents: torch.Tensor | None,
        mean_shift: torch.Tensor | None = None,
    ) -> MaskedDiagGaussian:
        """The Gaussian of the network output ``out`` (``agents``' rows; ``avail`` selected).

        ``mean_shift`` (a DAG actor's parent term) is added to the mean.
        """
        d = self.n_actions
        loc = out[..., :d]
        if mean_shift is not None:
            loc = loc + mean_shift
        if self.state_dependent_std:
            log_std = out[..., d:].clamp(LOG_STD_MIN, LOG_STD_MAX)
        else:
            log_std = self.log_std if agents is None else self.log_std.index_select(0, agents)
        return MaskedDiagGaussian(loc, log_std.exp(), avail)

    def logits(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor | None = None,
        agents: torch.Tensor | None = None,
        h0: torch.Tensor | None = None,
        starts: torch.Tensor | None = None,
        **_: object,
    ) -> torch.Tensor:
        """Masked logits ``[..., N, n_actions]``.

        ``obs`` and ``avail`` always hold all ``N`` agents; with ``agents`` (a LongTensor
        of ids) only those agents' networks run and ``[..., len(agents), n_actions]``
        comes back. Extra keywords (a DAG actor's ``parent_actions``...) are ignored.
        ``h0``/``starts``: a recurrent actor's memory (see :meth:`features`).
        """
        memory = {"h0": h0, "starts": starts}
        if self.continuous:
            raise TypeError("a continuous actor has no logits: use distribution()")
        if agents is not None:
            obs = obs.index_select(-2, agents)
            avail = None if avail is None else avail.index_select(-2, agents)
        return masked_logits(self.features(obs, agents, **memory), avail)

    def context(self, actions: torch.Tensor, edge_index: torch.Tensor | None) -> dict:
        """Extra keyword arguments of :meth:`logits` for fixed data (none: no parents)."""
        return {}

    def distribution(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor | None = None,
        agents: torch.Tensor | None = None,
        h0: torch.Tensor | None = None,
        starts: torch.Tensor | None = None,
        **_: object,
    ) -> MaskedCategorical | MaskedDiagGaussian:
        """The distribution of every agent's action (same arguments as :meth:`logits`).

        Categorical over masked logits, or the masked diagonal Gaussian.
        """
        if not self.continuous:
            return MaskedCategorical(self.logits(obs, avail, agents, h0, starts))
        if agents is not None:
            obs = obs.index_select(-2, agents)
            avail = None if avail is None else avail.index_select(-2, agents)
        return self.gaussian(self.features(obs, agents, h0, starts), avail, agents)

    def initial_hidden(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Zero hidden state ``[batch, N, H]`` of a recurrent actor."""
        return torch.zeros(batch, self.n_agents, self.hidden_size or 0, device=device)

    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor | None = None,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        hidden: torch.Tensor | None = None,
        epsilon: float = 0.0,
        **_: object,
    ) -> tuple[torch.Tensor, ...]:
        """Sample (or take the mode of) every agent's action in one forward.

        Extra keywords (a DAG actor's ``batches``/``edge_index``) are ignored.
        ``epsilon``: share of uniformly random actions when sampling (discrete only;
        see :func:`sample_categorical`).

        Returns:
            ``(actions [..., N] long, log_probs [..., N])``; continuous:
            ``(actions [..., N, d] float, log_probs [..., N])`` (unclipped, normalized
            coordinates; see :func:`~mapograph.policies.to_box`). A recurrent actor
            takes ``hidden [..., N, H]`` (already reset where episodes start) and
            returns ``(actions, log_probs, next_hidden)``.
        """
        if self.recurrent:
            if hidden is None:
                raise ValueError("a recurrent actor's act() needs hidden= (see initial_hidden)")
            out, next_hidden = self.net.step(obs, hidden)
            if self.continuous:
                actions, log_probs = sample_gaussian(
                    self.gaussian(out, avail, None), deterministic, generator
                )
            else:
                actions, log_probs = sample_categorical(
                    masked_logits(out, avail), deterministic, generator, epsilon
                )
            return actions, log_probs, next_hidden
        if self.continuous:
            return sample_gaussian(self.distribution(obs, avail), deterministic, generator)
        logits = self.logits(obs, avail)
        return sample_categorical(logits, deterministic, generator, epsilon)


def sample_categorical(
    logits: torch.Tensor,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
    epsilon: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample from ``Categorical(logits)`` with an explicit generator (reproducible).

    ``epsilon > 0`` (sampling only) draws from the mixture ``(1 - epsilon) pi +
    epsilon U``, ``U`` uniform over the available actions, and returns the mixture's
    log-probabilities (the behaviour policy PPO's ratios are taken against).

    Returns ``(actions, log_probs)``; masked actions (logit ``-1e9``) are never drawn.
    """
    # contiguous: log_softmax over few categories returns a permuted view (see
    # policies._distributions), on which argmax and the noise are 2-4x slower
    log_p = log_softmax(logits).contiguous()
    actions = log_p.argmax(dim=-1) if deterministic else _gumbel_max(log_p, generator)
    mix = not deterministic and epsilon > 0.0
    if mix:
        available = logits > MASKED_LOGIT / 2
        uniform = _gumbel_max(torch.where(available, 0.0, MASKED_LOGIT), generator)
        explore = torch.rand(actions.shape, generator=generator, device=actions.device) < epsilon
        actions = torch.where(explore, uniform, actions)
    chosen = log_p.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    if not mix:
        return actions, chosen
    log_uniform = -available.sum(-1).to(log_p.dtype).log()
    mixture = torch.logaddexp(chosen + math.log1p(-epsilon), log_uniform + math.log(epsilon))
    return actions, mixture


def _gumbel_max(log_p: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Exact categorical sampling with an explicit generator (Gumbel-max).

    ``E = -log(U)``, ``U ~ Uniform[0, 1)``, is Exponential(1) and ``-log(E)`` a standard
    Gumbel variable. Drawn from ``torch.rand``: torch's CPU ``exponential_`` is about 5x
    slower than ``rand`` plus a log (measured: ``[16, 100, 5]`` 128 against 23 us), and
    sampling runs at every environment step. The clamp keeps ``U = 0`` (probability
    ~2^-24) finite: ``E`` is then ~69, never 0, so a masked action never wins.
    """
    uniform = torch.rand(log_p.shape, generator=generator, dtype=log_p.dtype, device=log_p.device)
    exponential = uniform.clamp_min_(1e-30).log_().neg_()
    return (log_p - exponential.log_()).argmax(dim=-1)
