"""The batch-sequential PPO optimizer shared by MAPPO, HAPPO, A2PO and B2MAPO.

One iteration (:meth:`BatchSequentialPPO.update`), given ordered batches
``[[agents of batch 1], [batch 2], ...]``:

1. fit the centralized critic to the GAE returns (as in MAPPO);
2. for batch k = 1..K:
   a. correct for batches 1..k-1: ``rho = prod_{i in earlier batches} pi_i^new / pi_i^old``
      (no gradient, clipped); ``factor`` multiplies the advantage by ``rho`` in the
      surrogate (HAPPO's ``M``), ``trace`` recomputes GAE with ``rho`` as an
      off-policy trace (A2PO);
   b. one clipped PPO surrogate for all agents of batch k together, in one
      vectorized forward (stacked per-agent parameters, indexed by the batch);
      the optimizer steps only those agents' rows;
   c. fold batch k's new/old ratios into ``rho``.

Agents outside batch k keep their parameters and optimizer state bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mapograph.algos._advantages import gae, normalize
from mapograph.algos._masked_adam import AgentMaskedAdam
from mapograph.algos._rollout import Rollout
from mapograph.policies import CentralCritic, ValueNormalizer


@dataclass
class PPOHyperparameters:
    """Hyperparameters of the clipped surrogate, the critic fit and the corrections."""

    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    epochs: int = 5
    minibatches: int = 1
    entropy_coef: float = 0.01
    max_grad_norm: float | None = 10.0
    correction: str = "none"
    correction_clip: float | None = None
    value_clip: float | None = 0.2


class BatchSequentialPPO:
    """Batch-by-batch PPO for a per-agent actor with stacked parameters.

    Args:
        actor: an :class:`~mapograph.policies.Actor` or
            :class:`~mapograph.policies.DAGActor` (``logits(obs, avail, agents, ...)``).
        critic: centralized critic ``V(state)`` predicting normalized values.
        value_norm: running normalizer of the critic's targets (or ``None``).
        n_agents: number of agents.
        lr: actor learning rate.
        critic_lr: critic learning rate.
        hp: :class:`PPOHyperparameters`.
        generator: torch generator for minibatch shuffling (reproducibility).
    """

    def __init__(
        self,
        actor: torch.nn.Module,
        critic: CentralCritic,
        value_norm: ValueNormalizer | None,
        n_agents: int,
        lr: float,
        critic_lr: float,
        hp: PPOHyperparameters,
        generator: torch.Generator,
    ) -> None:
        self.actor = actor
        self.critic = critic
        self.value_norm = value_norm
        self.n_agents = n_agents
        self.hp = hp
        self.generator = generator
        self.shared_actor = bool(getattr(actor, "share_params", False))
        if self.shared_actor:
            self.actor_optim: AgentMaskedAdam | torch.optim.Optimizer = torch.optim.Adam(
                actor.parameters(), lr=lr, eps=1e-5
            )
        else:
            self.actor_optim = AgentMaskedAdam(
                actor.parameters(), n_agents, lr=lr, max_grad_norm=hp.max_grad_norm
            )
        self.critic_optim = torch.optim.Adam(critic.parameters(), lr=critic_lr, eps=1e-5)
        self.last_advantages: torch.Tensor | None = (
            None  # GAE of the last update (pi_ind reuses it)
        )

    # ----------------------------------------------------------------- values
    @torch.no_grad()
    def values(self, state: torch.Tensor) -> torch.Tensor:
        """Raw-scale values ``V(state)`` (denormalized)."""
        v = self.critic(state)
        return self.value_norm.denormalize(v) if self.value_norm is not None else v

    def advantages(self, rollout: Rollout, values: torch.Tensor, trace: torch.Tensor | None = None):
        """GAE advantages ``[T, E]`` (trace-corrected when ``trace`` is given)."""
        return gae(rollout.rewards, values, rollout.dones, self.hp.gamma, self.hp.gae_lambda, trace)

    # ----------------------------------------------------------------- update
    def update(
        self,
        rollout: Rollout,
        batches: list[list[int]],
        edge_index: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
    ) -> dict[str, float]:
        """One batch-sequential PPO iteration over ``batches`` (see module docstring).

        Args:
            rollout: the collected data.
            batches: ordered partition of the agents.
            edge_index: DAG edges the actor conditions on (``DAGActor`` only).
            values: precomputed raw values ``[T + 1, E]`` (computed when ``None``).

        Returns:
            Statistics: losses, entropy, ``joint_ratio_gain`` (the importance-weighted
            estimate ``E[(prod_i r_i - 1) * A]`` of the joint improvement), clip fraction.
        """
        if self.shared_actor and len(batches) > 1:
            raise ValueError(
                "share_params=True gives all agents one network, so a partition with more than one "
                "batch cannot update agents separately; use share_params=False or algo='mappo'"
            )
        if values is None:
            values = self.values(rollout.state)
        base_adv = self.advantages(rollout, values)
        stats = self.update_critic(rollout, values[:-1] + base_adv)

        flat_obs = rollout.flat(rollout.obs)
        flat_avail = rollout.flat(rollout.avail)
        flat_actions = rollout.flat(rollout.actions)
        flat_old = rollout.flat(rollout.log_probs)
        # Parents' messages depend only on the data: computed once, not per minibatch.
        context = self.actor.context(flat_actions, edge_index)
        rho: torch.Tensor | None = None  # [T, E] product of earlier batches' ratios
        policy_losses, entropies, clip_fracs = [], [], []
        for batch in batches:
            agents = torch.as_tensor(batch, dtype=torch.long)
            # (a) correct for the batches already updated this iteration
            adv = base_adv
            target_scale = None
            if rho is not None and self.hp.correction != "none":
                rho_c = self.clip_ratio(rho)
                if self.hp.correction in ("trace", "both"):
                    adv = self.advantages(rollout, values, trace=rho_c)
                if self.hp.correction in ("factor", "both"):
                    target_scale = rho_c
            target = normalize(adv)
            if target_scale is not None:
                target = target * target_scale
            flat_target = target.reshape(-1)
            # (b) one clipped surrogate for all agents of the batch together
            for _ in range(self.hp.epochs):
                for idx in self.minibatch_indices(flat_target.shape[0]):
                    logits = self.actor.logits(
                        flat_obs[idx],
                        flat_avail[idx],
                        agents=agents,
                        **{k: v[idx] for k, v in context.items()},
                    )
                    log_p_all = torch.log_softmax(logits, dim=-1)
                    acts = flat_actions[idx][:, agents]
                    log_p = log_p_all.gather(-1, acts.unsqueeze(-1)).squeeze(-1)  # [B, nb]
                    ratio = torch.exp(log_p - flat_old[idx][:, agents])
                    tgt = flat_target[idx].unsqueeze(-1)
                    surrogate = torch.min(
                        ratio * tgt, ratio.clamp(1 - self.hp.clip, 1 + self.hp.clip) * tgt
                    )
                    entropy = -(log_p_all.exp() * log_p_all).sum(-1)
                    # Sum over the batch's agents of per-agent means: each agent's gradient
                    # does not depend on how many agents share its batch.
                    loss = -surrogate.mean(0).sum() - self.hp.entropy_coef * entropy.mean(0).sum()
                    self.actor_optim.zero_grad()
                    loss.backward()
                    if self.shared_actor:
                        if self.hp.max_grad_norm is not None:
                            torch.nn.utils.clip_grad_norm_(
                                self.actor.parameters(), self.hp.max_grad_norm
                            )
                        self.actor_optim.step()
                    else:
                        self.actor_optim.step(agents)
                    policy_losses.append(float(loss.detach()))
                    entropies.append(float(entropy.detach().mean()))
                    clip_fracs.append(float(((ratio - 1).abs() > self.hp.clip).float().mean()))
            # (c) fold this batch's new/old ratios into the correction
            batch_ratio = self.batch_ratio(
                flat_obs, flat_avail, flat_actions, flat_old, agents, context
            )
            batch_ratio = batch_ratio.reshape(rollout.horizon, rollout.num_envs)
            rho = batch_ratio if rho is None else rho * batch_ratio
        joint_gain = float(((rho - 1.0) * normalize(base_adv)).mean()) if rho is not None else 0.0
        stats.update(
            policy_loss=sum(policy_losses) / max(len(policy_losses), 1),
            entropy=sum(entropies) / max(len(entropies), 1),
            clip_fraction=sum(clip_fracs) / max(len(clip_fracs), 1),
            joint_ratio_gain=joint_gain,
            n_batches=float(len(batches)),
        )
        self.last_advantages = base_adv
        return stats

    def clip_ratio(self, rho: torch.Tensor) -> torch.Tensor:
        """Clip the ratio product to ``[1 - c, 1 + c]`` (no clip when ``correction_clip`` is None)."""
        c = self.hp.correction_clip
        return rho if c is None else rho.clamp(1.0 - c, 1.0 + c)

    @torch.no_grad()
    def batch_ratio(
        self, obs, avail, actions, old_log_probs, agents, context: dict
    ) -> torch.Tensor:
        """``prod_{i in agents} pi_i^new(a_i) / pi_i^old(a_i)`` per sample, ``[T * E]``."""
        logits = self.actor.logits(obs, avail, agents=agents, **context)
        log_p = (
            torch.log_softmax(logits, -1).gather(-1, actions[:, agents].unsqueeze(-1)).squeeze(-1)
        )
        return torch.exp((log_p - old_log_probs[:, agents]).sum(-1))

    def minibatch_indices(self, n: int) -> list[torch.Tensor]:
        """Shuffled minibatch index tensors (one per minibatch)."""
        if self.hp.minibatches <= 1:
            return [torch.arange(n)]
        perm = torch.randperm(n, generator=self.generator)
        return list(perm.chunk(self.hp.minibatches))

    def update_critic(self, rollout: Rollout, returns: torch.Tensor) -> dict[str, float]:
        """Fit ``V(state)`` to the GAE returns ``[T, E]`` (normalized, clipped value loss)."""
        states = rollout.flat(rollout.state[:-1])
        targets = returns.reshape(-1)
        if self.value_norm is not None:
            self.value_norm.update(targets)
            targets = self.value_norm.normalize(targets)
        with torch.no_grad():
            old = self.critic(states)
        losses = []
        for _ in range(self.hp.epochs):
            for idx in self.minibatch_indices(targets.shape[0]):
                v = self.critic(states[idx])
                loss = F.huber_loss(v, targets[idx], delta=10.0, reduction="none")
                if self.hp.value_clip is not None:
                    v_clip = old[idx] + (v - old[idx]).clamp(
                        -self.hp.value_clip, self.hp.value_clip
                    )
                    loss = torch.max(
                        loss, F.huber_loss(v_clip, targets[idx], delta=10.0, reduction="none")
                    )
                loss = loss.mean()
                self.critic_optim.zero_grad()
                loss.backward()
                if self.hp.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(self.critic.parameters(), self.hp.max_grad_norm)
                self.critic_optim.step()
                losses.append(float(loss.detach()))
        return {"value_loss": sum(losses) / max(len(losses), 1)}

    # ------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict:
        """Optimizer states (the modules are saved by their owner)."""
        return {
            "actor_optim": self.actor_optim.state_dict(),
            "critic_optim": self.critic_optim.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.actor_optim.load_state_dict(state["actor_optim"])
        self.critic_optim.load_state_dict(state["critic_optim"])
