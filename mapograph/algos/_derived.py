"""B2MAPO's derived independent policy ``pi_ind`` (the one that acts at execution).

``pi_ind`` is an ordinary per-agent :class:`~mapograph.policies.Actor`. Each
iteration it is trained with MAPPO on the data the batch-sequential policy
``pi_seq`` collected; because that data is off-policy for ``pi_ind``, each
agent's advantage is weighted by the truncated importance weight
``min(1, pi_ind_old(a_i) / pi_seq(a_i))`` (a design choice, see docs). Every
``distill_every`` iterations it is pulled toward ``pi_seq`` by minimizing
``KL(pi_seq || pi_ind)`` on the rollout's observations, with ``pi_seq``
conditioned on the parents' actions in the data; that term is added to the
MAPPO loss of the same pass (one forward/backward per minibatch does both).
"""

from __future__ import annotations

import torch

from mapograph.algos._advantages import normalize
from mapograph.algos._ppo import PPOHyperparameters
from mapograph.algos._rollout import Rollout
from mapograph.policies import Actor


class DerivedPolicy:
    """Trains ``pi_ind`` with MAPPO and distills ``pi_seq`` into it.

    Args:
        actor: the independent actor ``pi_ind``.
        lr: its learning rate.
        hp: PPO hyperparameters (clip, epochs, minibatches, entropy, grad norm).
        generator: torch generator for minibatch shuffling.
    """

    def __init__(self, actor: Actor, lr: float, hp: PPOHyperparameters, generator: torch.Generator):
        self.actor = actor
        self.hp = hp
        self.generator = generator
        self.optim = torch.optim.Adam(actor.parameters(), lr=lr, eps=1e-5)

    def _minibatches(self, n: int) -> list[torch.Tensor]:
        if self.hp.minibatches <= 1:
            return [torch.arange(n)]
        return list(torch.randperm(n, generator=self.generator).chunk(self.hp.minibatches))

    def _step(self, loss: torch.Tensor) -> None:
        self.optim.zero_grad()
        loss.backward()
        if self.hp.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.actor.parameters(), self.hp.max_grad_norm)
        self.optim.step()

    def update(
        self,
        rollout: Rollout,
        advantages: torch.Tensor,
        teacher: torch.nn.Module | None = None,
        teacher_context: dict | None = None,
        kl_coef: float = 0.0,
    ) -> dict[str, float]:
        """One MAPPO update of ``pi_ind`` on ``pi_seq``'s data, distilling ``teacher`` if given.

        The loss of each minibatch is the clipped surrogate (advantages weighted by the
        truncated importance weight) minus the entropy bonus, plus
        ``kl_coef * KL(pi_seq || pi_ind)`` when a teacher is given: one forward and one
        backward per minibatch do both jobs.

        Args:
            rollout: the data (with ``ind_log_probs``).
            advantages: ``[T, E]`` advantages.
            teacher: ``pi_seq`` (anything with ``logits(obs, avail, **teacher_context)``).
            teacher_context: keyword arguments of the teacher (its parents' messages).
            kl_coef: weight of the distillation term.
        """
        if rollout.ind_log_probs is None:
            raise ValueError("rollout.ind_log_probs is missing: collect with pi_ind's log-probs")
        obs, avail = rollout.flat(rollout.obs), rollout.flat(rollout.avail)
        actions = rollout.flat(rollout.actions)
        old = rollout.flat(rollout.ind_log_probs)
        behaviour = rollout.flat(rollout.log_probs)
        weight = torch.exp(old - behaviour).clamp(max=1.0)  # truncated importance weight per agent
        adv = normalize(advantages).reshape(-1, 1) * weight
        teacher_log_p = None
        if teacher is not None and kl_coef > 0:
            with torch.no_grad():
                teacher_log_p = torch.log_softmax(
                    teacher.logits(obs, avail, **(teacher_context or {})), -1
                )
        losses, kls = [], []
        for _ in range(self.hp.epochs):
            for idx in self._minibatches(adv.shape[0]):
                log_p_all = torch.log_softmax(self.actor.logits(obs[idx], avail[idx]), -1)
                log_p = log_p_all.gather(-1, actions[idx].unsqueeze(-1)).squeeze(-1)
                ratio = torch.exp(log_p - old[idx])
                clipped = ratio.clamp(1 - self.hp.clip, 1 + self.hp.clip)
                surrogate = torch.min(ratio * adv[idx], clipped * adv[idx])
                entropy = -(log_p_all.exp() * log_p_all).sum(-1)
                loss = -surrogate.mean(0).sum() - self.hp.entropy_coef * entropy.mean(0).sum()
                if teacher_log_p is not None:
                    t = teacher_log_p[idx]
                    kl = (t.exp() * (t - log_p_all)).sum(-1)  # KL(pi_seq || pi_ind), [B, N]
                    loss = loss + kl_coef * kl.mean(0).sum()
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
