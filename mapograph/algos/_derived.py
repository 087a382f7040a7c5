"""Execution policies: the optimized policy itself, or B2MAPO's derived ``pi_ind``.

Every algorithm has an *execution policy*, the one that acts in ``evaluate`` and
deployment. For MAPPO, HAPPO and A2PO it is the optimized actor
(:class:`SamePolicy`: nothing to record or train). For B2MAPO it is the
:class:`DerivedPolicy` ``pi_ind``, an ordinary per-agent
:class:`~mapograph.policies.Actor`. Each iteration ``pi_ind`` is trained with
MAPPO on the data the batch-sequential policy ``pi_seq`` collected; because that
data is off-policy for ``pi_ind``, each agent's advantage is weighted by the
truncated importance weight ``min(1, pi_ind_old(a_i) / pi_seq(a_i))`` (a design
choice, see docs). Every ``distill_every`` iterations it is pulled toward
``pi_seq`` by minimizing ``KL(pi_seq || pi_ind)`` on the rollout's observations,
with ``pi_seq`` conditioned on the parents' actions in the data; that term is
added to the MAPPO loss of the same pass (one forward/backward per minibatch
does both).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributions import kl_divergence

from mapograph.algos._advantages import normalize
from mapograph.algos._chunks import layout_for
from mapograph.algos._rollout import Rollout
from mapograph.algos._surrogate import clipped_surrogate
from mapograph.policies import select


def minibatch_indices(n: int, minibatches: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Shuffled minibatch index tensors (one per minibatch) on the generator's device."""
    if minibatches <= 1:
        return [torch.arange(n, device=generator.device)]
    perm = torch.randperm(n, generator=generator, device=generator.device)
    return list(perm.chunk(minibatches))


class SamePolicy:
    """The execution policy of algorithms without a derived one: the optimized actor itself."""

    #: whether :meth:`update` trains anything (the Trainer skips its inputs otherwise)
    trains = False

    def __init__(self, actor: nn.Module) -> None:
        self.actor = actor

    def record(self, rollout: Rollout) -> None:
        """Nothing to record."""

    def update(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        """Nothing to train: the optimized actor is already updated (same arguments as
        :meth:`DerivedPolicy.update`)."""
        return {}

    def modules(self) -> dict[str, nn.Module]:
        """No modules of its own."""
        return {}

    def state_dict(self) -> dict[str, Any] | None:
        """No state of its own."""
        return None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Nothing to restore."""


class DerivedPolicy:
    """Trains ``pi_ind`` with MAPPO and distills ``pi_seq`` into it.

    Args:
        actor: the independent actor ``pi_ind``.
        config: the algorithm config (``lr``, ``clip``, ``epochs``, ``minibatches``,
            ``entropy_coef``, ``max_grad_norm``, ``distill_every``, ``kl_coef``).
        generator: torch generator for minibatch shuffling.
    """

    #: :meth:`update` trains ``pi_ind`` (see :attr:`SamePolicy.trains`)
    trains = True

    def __init__(self, actor: nn.Module, config: Any, generator: torch.Generator):
        self.actor = actor
        self.config = config
        self.generator = generator
        self.optim = torch.optim.Adam(actor.parameters(), lr=config.lr, eps=1e-5, foreach=True)
        self.hidden: torch.Tensor | None = None  # a recurrent pi_ind's state across rollouts

    def modules(self) -> dict[str, nn.Module]:
        """``{"pi_ind": actor}``."""
        return {"pi_ind": self.actor}

    @torch.no_grad()
    def record(self, rollout: Rollout) -> None:
        """Store ``pi_ind``'s log-probabilities of the collected actions in the rollout.

        ``pi_ind`` does not change during collection, so one batched forward over the
        whole rollout gives exactly what a per-step forward would. A recurrent
        ``pi_ind`` runs over the rollout from the hidden state it reached at the end
        of the previous one (reset at episode starts) and stores its hidden states
        in ``rollout.ind_hidden`` for chunked training.
        """
        if not getattr(self.actor, "recurrent", False):
            dist = self.actor.distribution(rollout.obs, rollout.avail)
            rollout.ind_log_probs = dist.log_prob(rollout.actions)
            return
        if rollout.starts is None:
            raise ValueError("a recurrent pi_ind needs rollout.starts (episode starts)")
        h0 = self.hidden
        if h0 is None or h0.shape[0] != rollout.num_envs:
            h0 = self.actor.initial_hidden(rollout.num_envs, rollout.obs.device)
        out, hiddens, after = self.actor.net.sequence(rollout.obs, h0, rollout.starts)
        rollout.ind_hidden = hiddens
        self.hidden = after[-1]
        dist = self.actor.distribution(rollout.obs, rollout.avail, h0=h0, starts=rollout.starts)
        rollout.ind_log_probs = dist.log_prob(rollout.actions)

    def _step(self, loss: torch.Tensor) -> None:
        self.optim.zero_grad()
        loss.backward()
        if self.config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.actor.parameters(), self.config.max_grad_norm)
        self.optim.step()

    def update(
        self,
        rollout: Rollout,
        advantages: torch.Tensor,
        teacher: nn.Module,
        teacher_context: dict,
        iteration: int,
    ) -> dict[str, float]:
        """One MAPPO update of ``pi_ind`` on ``pi_seq``'s data, distilling ``teacher`` when due.

        The loss of each minibatch is the clipped surrogate (advantages weighted by the
        truncated importance weight) minus the entropy bonus, plus
        ``kl_coef * KL(pi_seq || pi_ind)`` every ``distill_every`` iterations: one
        forward and one backward per minibatch do both jobs.

        Args:
            rollout: the data (with ``ind_log_probs`` from :meth:`record`).
            advantages: ``[T, E]`` advantages.
            teacher: ``pi_seq`` (``distribution(obs, avail, **teacher_context)``).
            teacher_context: keyword arguments of the teacher (its parents' messages).
            iteration: index of this iteration (0-based), for ``distill_every``.
        """
        cfg = self.config
        if rollout.ind_log_probs is None:
            raise ValueError("rollout.ind_log_probs is missing: call record(rollout) first")
        # flat steps, or chunks from the stored hidden states of pi_ind (and of pi_seq)
        layout = layout_for(rollout, cfg.chunk_length, rollout.ind_hidden)
        obs, avail = layout.arrange(rollout.obs), layout.arrange(rollout.avail)
        actions = layout.arrange(rollout.actions)
        old = layout.arrange(rollout.ind_log_probs)
        behaviour = layout.arrange(rollout.log_probs)
        weight = torch.exp(old - behaviour).clamp(max=1.0)  # truncated importance weight per agent
        adv = layout.arrange(normalize(advantages)).unsqueeze(-1) * weight
        teacher_dist = None
        if (iteration + 1) % cfg.distill_every == 0 and cfg.distill_weight() > 0:
            teacher_layout = layout_for(rollout, cfg.chunk_length, rollout.hidden)
            context = {k: teacher_layout.from_flat(v) for k, v in teacher_context.items()}
            with torch.no_grad():
                teacher_dist = teacher.distribution(
                    obs, avail, **context, **teacher_layout.memory()
                )
        losses, kls = [], []
        for _ in range(cfg.epochs):
            for idx in minibatch_indices(layout.units, cfg.minibatches, self.generator):
                dist = self.actor.distribution(
                    layout.take(obs, idx), layout.take(avail, idx), **layout.memory(idx)
                )
                surrogate, _ = clipped_surrogate(
                    layout.samples(dist.log_prob(layout.take(actions, idx))),
                    layout.samples(layout.take(old, idx)),
                    layout.samples(layout.take(adv, idx)),
                    cfg.clip,
                )
                entropy = layout.samples(dist.entropy())
                loss = -surrogate.mean(0).sum() - cfg.entropy_coef * entropy.mean(0).sum()
                if teacher_dist is not None:
                    kl = layout.samples(
                        kl_divergence(_take(teacher_dist, idx, layout), dist)
                    )  # KL(pi_seq || pi_ind), [B, N]
                    loss = loss + cfg.distill_weight() * kl.mean(0).sum()
                    kls.append(float(kl.detach().mean()))
                self._step(loss)
                losses.append(float(loss.detach()))
        stats = {"ind_policy_loss": sum(losses) / max(len(losses), 1)}
        if kls:
            stats["distill_kl"] = sum(kls) / len(kls)
        return stats

    def state_dict(self) -> dict:
        """The optimizer state (the actor is saved by its owner), and a recurrent state."""
        state = self.optim.state_dict()
        if self.hidden is not None:
            state = {**state, "pi_ind_hidden": self.hidden}
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        state = dict(state)
        hidden = state.pop("pi_ind_hidden", None)
        self.optim.load_state_dict(state)
        if hidden is not None:
            self.hidden = hidden.to(next(self.actor.parameters()).device)


def _take(dist, idx: torch.Tensor, layout) -> Any:
    """The samples ``idx`` of a distribution over all arranged samples."""
    if layout.agent_axis == 1:  # flat: samples on the first batch axis
        return select(dist, idx)
    return _select_axis1(dist, idx)


def _select_axis1(dist, idx: torch.Tensor) -> Any:
    """Chunks ``idx`` on the second batch axis ``[L, C * E, ...]`` of a policy's distribution."""
    from mapograph.policies import MaskedCategorical, MaskedDiagGaussian

    if isinstance(dist, MaskedCategorical):
        return MaskedCategorical(dist.logits[:, idx], normalized=True)
    if isinstance(dist, MaskedDiagGaussian):
        mask = None if dist.mask is None else dist.mask[:, idx]
        return MaskedDiagGaussian(dist.loc[:, idx], dist.scale[:, idx], mask)
    raise TypeError(f"cannot select chunks of a {type(dist).__name__}")
