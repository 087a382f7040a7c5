"""B2MAPO's derived independent policy ``pi_ind`` (the one that acts at execution).

``pi_ind`` is an ordinary per-agent :class:`~mapograph.policies.Actor`. Each
iteration it is trained with MAPPO on the data the batch-sequential policy
``pi_seq`` collected; because that data is off-policy for ``pi_ind``, each
agent's advantage is weighted by the truncated importance weight
``min(1, pi_ind_old(a_i) / pi_seq(a_i))`` (a design choice, see docs). Every
``distill_every`` iterations it is pulled toward ``pi_seq`` by minimizing
``KL(pi_seq || pi_ind)`` on the rollout's observations, with ``pi_seq``
conditioned on the parents' actions in the data.
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

    def mappo_update(self, rollout: Rollout, advantages: torch.Tensor) -> dict[str, float]:
        """One MAPPO update of ``pi_ind`` on ``pi_seq``'s data (all agents together)."""
        if rollout.ind_log_probs is None:
            raise ValueError(
                "rollout.ind_log_probs is missing: collect with the derived policy's log-probs"
            )
        obs, avail = rollout.flat(rollout.obs), rollout.flat(rollout.avail)
        actions = rollout.flat(rollout.actions)
        old = rollout.flat(rollout.ind_log_probs)
        behaviour = rollout.flat(rollout.log_probs)
        weight = torch.exp(old - behaviour).clamp(max=1.0)  # truncated importance weight per agent
        adv = normalize(advantages).reshape(-1, 1) * weight
        losses = []
        for _ in range(self.hp.epochs):
            for idx in self._minibatches(adv.shape[0]):
                log_p_all = torch.log_softmax(self.actor.logits(obs[idx], avail[idx]), -1)
                log_p = log_p_all.gather(-1, actions[idx].unsqueeze(-1)).squeeze(-1)
                ratio = torch.exp(log_p - old[idx])
                surrogate = torch.min(
                    ratio * adv[idx], ratio.clamp(1 - self.hp.clip, 1 + self.hp.clip) * adv[idx]
                )
                entropy = -(log_p_all.exp() * log_p_all).sum(-1)
                loss = -surrogate.mean(0).sum() - self.hp.entropy_coef * entropy.mean(0).sum()
                self._step(loss)
                losses.append(float(loss.detach()))
        return {"ind_policy_loss": sum(losses) / max(len(losses), 1)}

    def distill(
        self,
        rollout: Rollout,
        teacher: torch.nn.Module,
        edge_index: torch.Tensor | None,
        kl_coef: float,
        epochs: int = 1,
    ) -> dict[str, float]:
        """Minimize ``kl_coef * KL(pi_seq || pi_ind)`` averaged over samples, summed over agents."""
        obs, avail = rollout.flat(rollout.obs), rollout.flat(rollout.avail)
        actions = rollout.flat(rollout.actions)
        with torch.no_grad():
            teacher_log_p = torch.log_softmax(
                teacher.logits(obs, avail, parent_actions=actions, edge_index=edge_index), -1
            )
        kls = []
        for _ in range(epochs):
            for idx in self._minibatches(obs.shape[0]):
                student_log_p = torch.log_softmax(self.actor.logits(obs[idx], avail[idx]), -1)
                t = teacher_log_p[idx]
                kl = (t.exp() * (t - student_log_p)).sum(-1)  # [B, N]
                self._step(kl_coef * kl.mean(0).sum())
                kls.append(float(kl.detach().mean()))
        return {"distill_kl": sum(kls) / max(len(kls), 1)}

    def state_dict(self) -> dict:
        """The optimizer state (the actor is saved by its owner)."""
        return self.optim.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.optim.load_state_dict(state)
