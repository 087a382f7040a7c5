"""B2MAPO's readout ``pi_ind`` as an actor of its own (``pi_ind="readout"``).

The readout execution policy lives inside :class:`~mapograph.policies.DAGActor`
(its inner actor plus the readout head, see :meth:`DAGActor.independent`); this
view gives it the interface every execution policy has (``act``, ``distribution``,
``initial_hidden``), so evaluation, deployment and checkpoints treat it like any
other actor. It owns no parameters: the head is saved with ``pi_seq``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from mapograph.policies._actor import Actor, sample_categorical
from mapograph.policies._dag_actor import DAGActor
from mapograph.policies._distributions import MaskedCategorical
from mapograph.policies._gaussian import MaskedDiagGaussian, sample_gaussian


class ReadoutPolicy(nn.Module):
    """The readout ``pi_ind`` of a :class:`DAGActor` built with ``readout=True``.

    Args:
        actor: the batch-sequential actor ``pi_seq`` that holds the readout head.
    """

    def __init__(self, actor: DAGActor) -> None:
        super().__init__()
        if actor.readout is None:
            raise ValueError("ReadoutPolicy needs a DAGActor built with readout=True")
        self.actor = actor
        self.n_agents = actor.n_agents
        self.n_actions = actor.n_actions
        self.continuous = actor.continuous
        self.recurrent = actor.recurrent
        self.hidden_size = actor.hidden_size

    @torch.no_grad()
    def as_actor(self) -> Actor:
        """A standalone :class:`Actor` equal to this policy, for deployment.

        The head is linear in the torso's last hidden layer, like the torso's own output
        layer, so it folds into that layer: the copy is an ordinary per-agent network
        (``logits = (W_out + W_R) h + b_out + b_R``) with no parent head and no second
        head. Later training does not reach the copy.
        """
        actor = copy.deepcopy(self.actor.base)
        head = self.actor.readout
        out = actor.net.out_layer  # per-agent rows (the shared torso's heads included)
        d = head.out_features
        out.weight[..., :d] += head.weight
        out.bias[..., :d] += head.bias
        return actor

    def initial_hidden(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Zero hidden state ``[batch, N, H]`` of a recurrent actor."""
        return self.actor.initial_hidden(batch, device)

    def features(
        self,
        obs: torch.Tensor,
        agents: torch.Tensor | None = None,
        h0: torch.Tensor | None = None,
        starts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The network's output for ``obs`` already restricted to ``agents``, as
        :meth:`Actor.features`: the inner actor's output with the head's shift added
        (to the logits, or to the Gaussian's mean)."""
        out, hidden = self.actor.base.features_with_hidden(obs, agents, h0, starts)
        shift = self.actor.readout(hidden, agents)
        d = shift.shape[-1]
        return torch.cat([out[..., :d] + shift, out[..., d:]], dim=-1)

    def distribution(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor | None = None,
        agents: torch.Tensor | None = None,
        h0: torch.Tensor | None = None,
        starts: torch.Tensor | None = None,
        **_: object,
    ) -> MaskedCategorical | MaskedDiagGaussian:
        """Every agent's action distribution from its own observation (see
        :meth:`DAGActor.independent`); extra keywords (parents' actions) are ignored."""
        return self.actor.independent(obs, avail, agents, h0, starts)

    def logits(
        self, obs: torch.Tensor, avail: torch.Tensor | None = None, **kwargs
    ) -> torch.Tensor:
        """Masked logits ``[..., N, n_actions]`` (discrete only)."""
        if self.continuous:
            raise TypeError("a continuous actor has no logits: use distribution()")
        return self.distribution(obs, avail, **kwargs).logits

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
        """Sample (or take the mode of) every agent's action in one forward, as
        :meth:`Actor.act` (``batches``/``edge_index`` are ignored: no parents)."""
        net = self.actor.base.net
        if self.recurrent:
            if hidden is None:
                raise ValueError("a recurrent actor's act() needs hidden= (see initial_hidden)")
            out, features = net.step(obs, hidden)  # the GRU state is the head's input
        else:
            out, features = net.forward_with_hidden(obs)
        dist = self.actor.readout_distribution(out, features, avail, None)
        if self.continuous:
            result = sample_gaussian(dist, deterministic, generator)
        else:
            result = sample_categorical(dist.logits, deterministic, generator, epsilon)
        return (*result, features) if self.recurrent else result
