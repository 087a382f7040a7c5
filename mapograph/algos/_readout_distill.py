"""Distilling the updated ``pi_seq`` into a readout ``pi_ind``'s head (``pi_ind="readout"``).

After the batch loop (and the shared torso's pass), one forward of ``pi_seq`` without
gradient gives the teacher (its distributions given the parents' actions in the data)
and the torso's features; then ``epochs x minibatches`` Adam steps fit the per-agent
linear head ``R`` (:class:`~mapograph.policies.DAGActor`'s ``readout``) on
``KL(pi_seq || pi_ind)``, where ``pi_ind = f + R h`` with ``f`` (the inner actor's
output) and ``h`` (its last hidden layer) held fixed. A linear model on fixed
features: everything is laid out agent-major once (discrete: ``[N, actions,
samples]``, so the few actions are not the innermost axis), so each step is one
batched matmul per direction.

Minibatches are contiguous slices of the layout's units (no draw from the optimizer's
generator), so the rest of training is the same with or without the head.

Where ``pi_seq`` has no shared torso, an agent's parameters are final once its batch
is updated, so the optimizer's own no-grad forward of each batch (the one that gives
the batch's new/old ratios) is the teacher already: :class:`TeacherParts` gathers
those forwards, and the teacher pass is skipped.
"""

from __future__ import annotations

import torch
from torch.distributions import kl_divergence

from mapograph.algos._chunks import FlatLayout
from mapograph.policies import DAGActor, MaskedDiagGaussian, masked_logits


class TeacherParts:
    """``pi_seq``'s no-grad forward of every agent, gathered batch by batch.

    :meth:`add` takes one batch's ``(out, hidden, term, avail)`` (agents on
    ``agent_axis``, as :meth:`~mapograph.policies.DAGActor.readout_inputs` returns
    them; a ``None`` parent term is zero); :attr:`parts` is the same four for all
    ``n_agents`` once every agent was added (``None`` before).

    Args:
        n_agents: agents ``N``.
        agent_axis: the agents' axis of the layout (1 flat, 2 chunks).
    """

    def __init__(self, n_agents: int, agent_axis: int) -> None:
        self.n_agents = n_agents
        self.axis = agent_axis
        self._full: list[torch.Tensor | None] = [None] * 4
        self._covered = 0

    def add(self, agents: torch.Tensor, parts: tuple) -> None:
        """Store the forward ``parts`` of ``agents`` (each agent once)."""
        for slot, x in enumerate(parts):
            if x is None:
                continue  # no parent term for these agents (zero), or no avail mask
            if self._full[slot] is None:
                shape = list(x.shape)
                shape[self.axis] = self.n_agents
                self._full[slot] = x.new_zeros(shape)
            self._full[slot].index_copy_(self.axis, agents, x)
        self._covered += int(agents.numel())

    @property
    def parts(self) -> tuple | None:
        """``(out, hidden, term, avail)`` of all agents, or ``None`` while some are missing."""
        if self._full[0] is None or self._covered != self.n_agents:
            return None
        return tuple(self._full)


def agent_major(x: torch.Tensor | None, layout: FlatLayout) -> torch.Tensor | None:
    """``[U, N, F]`` (flat) or ``[L, U, N, F]`` (chunks) -> contiguous ``[N, U, L, F]``."""
    if x is None:
        return None
    if x.dim() == 3:  # flat layout: one step per unit
        return x.permute(1, 0, 2).unsqueeze(2).contiguous()
    return x.permute(2, 1, 0, 3).contiguous()


def feature_major(x: torch.Tensor | None, layout: FlatLayout) -> torch.Tensor | None:
    """``[U, N, F]`` (flat) or ``[L, U, N, F]`` (chunks) -> contiguous ``[N, F, U, L]``."""
    if x is None:
        return None
    if x.dim() == 3:
        return x.permute(1, 2, 0).unsqueeze(3).contiguous()
    return x.permute(2, 3, 1, 0).contiguous()


def units_of_features(x: torch.Tensor | None, part: slice, n: int) -> torch.Tensor | None:
    """The units ``part`` of a feature-major ``[N, F, U, L]`` tensor as ``[N, F, S]``."""
    return None if x is None else x[:, :, part].reshape(n, x.shape[1], -1)


def units_of(x: torch.Tensor | None, part: slice, n: int) -> torch.Tensor | None:
    """The units ``part`` of an agent-major ``[N, U, L, F]`` tensor as ``[N, S, F]`` (a view)."""
    return None if x is None else x[:, part].reshape(n, -1, x.shape[-1])


def distill_readout(
    actor: DAGActor,
    optim: torch.optim.Optimizer,
    coef: float,
    obs: torch.Tensor,
    avail: torch.Tensor,
    context: dict,
    layout: FlatLayout,
    epochs: int,
    minibatches: int,
    teacher: TeacherParts | None = None,
) -> torch.Tensor:
    """Fit ``actor``'s readout head to the current ``pi_seq``; returns the mean KL.

    ``obs``, ``avail`` and ``context`` (the parents' messages) are arranged by
    ``layout`` as in :meth:`~mapograph.algos.BatchSequentialPPO.update`; ``optim``
    steps the head's parameters for all agents. ``teacher``: the current ``pi_seq``'s
    forward gathered during the batch loop (its complete :attr:`TeacherParts.parts`
    replace the teacher pass).
    """
    with torch.no_grad():  # the teacher and the features are fixed
        parts = None if teacher is None else teacher.parts
        if parts is None:
            parts = actor.readout_inputs(obs, avail, **context, **layout.memory())
        out, hidden, term, avail = parts
        teacher = actor.sequential_distribution(out, term, avail)
    if actor.continuous:
        return _distill_gaussian(
            actor, optim, coef, out, hidden, teacher, layout, epochs, minibatches
        )
    return _distill_categorical(
        actor, optim, coef, out, hidden, teacher, avail, layout, epochs, minibatches
    )


def _distill_categorical(
    actor, optim, coef, out, hidden, teacher, avail, layout, epochs, minibatches
) -> torch.Tensor:
    """The discrete readout's steps, laid out ``[N, actions, samples]``: with a handful of
    actions on the last axis, the head's matmul and the softmax are 3x slower (measured
    at 100 agents: 21 against 6.5 ms per forward and backward)."""
    with torch.no_grad():
        log_p, mask, base, features = (
            feature_major(x, layout) for x in (teacher.logits, avail, out, hidden)
        )
    n = features.shape[0]
    weight, bias = actor.readout.weight, actor.readout.bias  # [N, H, d], [N, d]

    def kl_of(part: slice) -> torch.Tensor:
        h, target, start, valid = (
            units_of_features(x, part, n) for x in (features, log_p, base, mask)
        )
        shift = torch.baddbmm(bias.unsqueeze(-1), weight.transpose(1, 2), h)  # [N, d, S]
        log_q = torch.log_softmax(masked_logits(start + shift, valid), 1)
        return (target.exp() * (target - log_q)).sum(1)  # KL(pi_seq || pi_ind), [N, S]

    return _fit_head(optim, coef, kl_of, layout.units, epochs, minibatches)


def _distill_gaussian(
    actor, optim, coef, out, hidden, teacher, layout, epochs, minibatches
) -> torch.Tensor:
    """The continuous readout's steps (the head shifts the Gaussian mean), agent-major."""
    d = actor.readout.out_features
    with torch.no_grad():
        fixed = [agent_major(t, layout) for t in (teacher.loc, teacher.scale, teacher.mask)]
        base = agent_major(out[..., :d], layout)  # the inner actor's mean
        hidden = agent_major(hidden, layout)
    n = hidden.shape[0]
    weight, bias = actor.readout.weight, actor.readout.bias  # [N, H, d], [N, d]

    def kl_of(part: slice) -> torch.Tensor:
        features, start, loc, scale, mask = (units_of(x, part, n) for x in (hidden, base, *fixed))
        shift = torch.baddbmm(bias.unsqueeze(1), features, weight)  # [N, S, d]
        student = MaskedDiagGaussian(start + shift, scale, mask)
        return kl_divergence(MaskedDiagGaussian(loc, scale, mask), student)  # [N, S]

    return _fit_head(optim, coef, kl_of, layout.units, epochs, minibatches)


def _fit_head(optim, coef: float, kl_of, units: int, epochs: int, minibatches: int) -> torch.Tensor:
    """``epochs x minibatches`` steps on ``coef x`` the per-agent mean of ``kl_of(part)``
    (``[N, S]`` over the contiguous units ``part``), summed over agents; the mean KL."""
    kls = []
    for _ in range(epochs):
        for rows in torch.arange(units).chunk(minibatches):
            kl = kl_of(slice(int(rows[0]), int(rows[-1]) + 1))
            loss = coef * kl.mean(1).sum()  # per-agent means, summed over agents
            optim.zero_grad()
            loss.backward()
            optim.step()
            kls.append(kl.detach().mean())
    return torch.stack(kls).mean()
