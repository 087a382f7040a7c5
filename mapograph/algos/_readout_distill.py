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
from mapograph.policies import DAGActor, MaskedCategorical, MaskedDiagGaussian, masked_logits


class TeacherParts:
    """``pi_seq``'s no-grad forward of every agent, gathered batch by batch in the
    layout the readout's steps read.

    :meth:`add` takes one batch's forward (its agents on the layout's agent axis) and
    stores it agent-first at once: discrete ``(log-probs, avail, out, hidden)``
    feature-major ``[N, F, U, L]``, continuous ``(loc, scale, mask, mean, hidden)``
    agent-major ``[N, U, L, F]``; each batch's part is copied once, straight from its
    permuted view (no ``[U, N, F]`` buffer, no teacher softmax over all agents).
    :attr:`parts` is complete once every agent was added (``None`` before).

    Args:
        n_agents: agents ``N``.
        continuous: Gaussian ``pi_seq`` (else categorical).
        mean_size: a continuous readout's output size (the inner actor's mean is
            ``out[..., :mean_size]``).
    """

    def __init__(self, n_agents: int, continuous: bool = False, mean_size: int = 0) -> None:
        self.n_agents = n_agents
        self.continuous = continuous
        self.mean_size = mean_size
        self._full: list[torch.Tensor | None] | None = None
        self._covered = 0

    def add(
        self,
        agents: torch.Tensor,
        out: torch.Tensor,
        hidden: torch.Tensor,
        avail: torch.Tensor | None,
        dist: MaskedCategorical | MaskedDiagGaussian,
    ) -> None:
        """Store ``agents``' forward (each agent once): the inner actor's ``out``, its last
        ``hidden`` layer, their ``avail`` rows and ``pi_seq``'s distribution ``dist``."""
        if self.continuous:
            views = [_agent_major_view(x) for x in (dist.loc, dist.scale, dist.mask)]
            views += [_agent_major_view(out[..., : self.mean_size]), _agent_major_view(hidden)]
        else:
            views = [_feature_major_view(x) for x in (dist.logits, avail, out, hidden)]
        if self._full is None:
            self._full = [
                None if x is None else x.new_empty((self.n_agents, *x.shape[1:])) for x in views
            ]
        for full, x in zip(self._full, views):
            if x is not None:
                full.index_copy_(0, agents, x)
        self._covered += int(agents.numel())

    @property
    def parts(self) -> tuple | None:
        """The gathered tensors of all agents, or ``None`` while some are missing."""
        if self._full is None or self._covered != self.n_agents:
            return None
        return tuple(self._full)


def _agent_major_view(x: torch.Tensor | None) -> torch.Tensor | None:
    """``[U, N, F]`` (flat) or ``[L, U, N, F]`` (chunks) viewed as ``[N, U, L, F]``."""
    if x is None:
        return None
    if x.dim() == 3:  # flat layout: one step per unit
        return x.permute(1, 0, 2).unsqueeze(2)
    return x.permute(2, 1, 0, 3)


def _feature_major_view(x: torch.Tensor | None) -> torch.Tensor | None:
    """``[U, N, F]`` (flat) or ``[L, U, N, F]`` (chunks) viewed as ``[N, F, U, L]``."""
    if x is None:
        return None
    if x.dim() == 3:
        return x.permute(1, 2, 0).unsqueeze(3)
    return x.permute(2, 3, 1, 0)


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
    parts = None if teacher is None else teacher.parts
    if parts is None:  # the teacher pass: one no-grad forward of every agent
        teacher = readout_teacher(actor)
        with torch.no_grad():
            out, hidden, term, rows = actor.readout_inputs(obs, avail, **context, **layout.memory())
            everyone = torch.arange(actor.n_agents, device=out.device)
            teacher.add(everyone, out, hidden, rows, actor.sequential_distribution(out, term, rows))
        parts = teacher.parts
    if actor.continuous:
        return _distill_gaussian(actor, optim, coef, parts, layout, epochs, minibatches)
    return _distill_categorical(actor, optim, coef, parts, layout, epochs, minibatches)


def readout_teacher(actor: DAGActor) -> TeacherParts:
    """An empty :class:`TeacherParts` for ``actor``'s readout head."""
    mean_size = actor.readout.out_features if actor.continuous else 0
    return TeacherParts(actor.n_agents, actor.continuous, mean_size)


def _distill_categorical(actor, optim, coef, parts, layout, epochs, minibatches) -> torch.Tensor:
    """The discrete readout's steps, laid out ``[N, actions, samples]``: with a handful of
    actions on the last axis, the head's matmul and the softmax are 3x slower (measured
    at 100 agents: 21 against 6.5 ms per forward and backward)."""
    log_p, mask, base, features = parts  # feature-major [N, F, U, L]
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


def _distill_gaussian(actor, optim, coef, parts, layout, epochs, minibatches) -> torch.Tensor:
    """The continuous readout's steps (the head shifts the Gaussian mean), agent-major."""
    loc, scale, mask, base, hidden = parts  # agent-major [N, U, L, F]
    n = hidden.shape[0]
    weight, bias = actor.readout.weight, actor.readout.bias  # [N, H, d], [N, d]

    def kl_of(part: slice) -> torch.Tensor:
        features, start, loc_u, scale_u, mask_u = (
            units_of(x, part, n) for x in (hidden, base, loc, scale, mask)
        )
        shift = torch.baddbmm(bias.unsqueeze(1), features, weight)  # [N, S, d]
        student = MaskedDiagGaussian(start + shift, scale_u, mask_u)
        return kl_divergence(MaskedDiagGaussian(loc_u, scale_u, mask_u), student)  # [N, S]

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
