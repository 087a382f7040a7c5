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

    def __init__(self, actor: nn.Module, config: Any, generator: torch.Generator):
        self.actor = actor
        self.config = config
        self.generator = generator
        self.optim = torch.optim.Adam(actor.parameters(), lr=config.lr, eps=1e-5)

    def modules(self) -> dict[str, nn.Module]:
        """``{"pi_ind": actor}``."""
        return {"pi_ind": self.actor}

    @torch.no_grad()
    def record(self, rollout: Rollout) -> None:
        """Store ``pi_ind``'s log-probabilities of the collected actions in the rollout.

        ``pi_ind`` does not change during collection, so one batched forward over the
        whole rollout gives exactly what a per-step forward would.
        """
        dist = self.actor.distribution(rollout.obs, rollout.avail)
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
        obs, avail = rollout.flat(rollout.obs), rollout.flat(rollout.avail)
        actions = rollout.flat(rollout.actions)
        old = rollout.flat(rollout.ind_log_probs)
        behaviour = rollout.flat(rollout.log_probs)
        weight = torch.exp(old - behaviour).clamp(max=1.0)  # truncated importance weight per agent
        adv = normalize(advantages).reshape(-1, 1) * weight
        teacher_dist = None
        if (iteration + 1) % cfg.distill_every == 0 and cfg.kl_coef > 0:
            with torch.no_grad():
                teacher_dist = teacher.distribution(obs, avail, **teacher_context)
        losses, kls = [], []
        for _ in range(cfg.epochs):
            for idx in minibatch_indices(adv.shape[0], cfg.minibatches, self.generator):
                dist = self.actor.distribution(obs[idx], avail[idx])
                surrogate, _ = clipped_surrogate(
                    dist.log_prob(actions[idx]), old[idx], adv[idx], cfg.clip
                )
                loss = -surrogate.mean(0).sum() - cfg.entropy_coef * dist.entropy().mean(0).sum()
                if teacher_dist is not None:
                    kl = kl_divergence(
                        select(teacher_dist, idx), dist
                    )  # KL(pi_seq || pi_ind), [B, N]
                    loss = loss + cfg.kl_coef * kl.mean(0).sum()
                    kls.append(float(kl.detach().mean()))
                self._step(loss)
                losses.append(float(loss.detach()))
        stats = {"ind_policy_loss": sum(losses) / max(len(losses), 1)}
        if kls:
            stats["distill_kl"] = sum(kls) / len(kls)
        return stats

    def state_dict(self) -> dict:
        """The optimizer state (the actor is saved by its owner)."""
        return self.optim.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.optim.load_state_dict(state)
