"""The batch-sequential PPO optimizer shared by MAPPO, HAPPO, A2PO and B2MAPO.

One iteration (:meth:`BatchSequentialPPO.update`), given a :class:`~mapograph.algos.Plan`
with ordered batches ``[[agents of batch 1], [batch 2], ...]``:

1. fit the centralized critic to the GAE returns (as in MAPPO);
2. for batch k = 1..K:
   a. correct for batches 1..k-1 (:mod:`~mapograph.algos._corrections`) with
      ``rho = clip(prod_{i in earlier batches} pi_i^new / pi_i^old)`` (no gradient);
   b. one clipped PPO surrogate (:func:`~mapograph.algos.clipped_surrogate`) for all
      agents of batch k together, in one vectorized forward (stacked per-agent
      parameters, indexed by the batch; on a CPU a large batch runs in agent groups
      whose gradients add up, see :data:`GROUP_ELEMENTS`); the optimizer steps only
      those agents' rows;
   c. fold batch k's new/old ratios into ``rho``.

Agents outside batch k keep their parameters and optimizer state bit-identical.

An actor with a shared part (the "torso": a network for all agents) and per-agent
heads (``share_params=True`` with a schedule of several batches) keeps its torso
frozen during the batch loop (only the heads, parent heads and log-stds of batch
k move), then:

3. one joint pass (:meth:`BatchSequentialPPO.update_torso`) trains the torso alone on
   all agents at once with MAPPO's clipped surrogate (ratios against the behaviour
   policy, so the heads' moves of step 2 count in the trust region).

With ``distill_coef > 0`` (B2MAPO with a *tied* ``pi_ind``: the independent policy is
``pi_seq``'s own observation part, see :meth:`~mapograph.policies.DAGActor.distributions`)
every pass also adds ``distill_coef * KL(pi_seq || pi_ind)`` with ``pi_seq`` held fixed:
the same forward gives both, so distillation costs no extra pass, and each agent is
distilled in its own batch (agents outside the batch stay untouched).

Recurrent actors and critics train on chunks of ``chunk_length`` steps that start
from the hidden states stored at collection (:mod:`~mapograph.algos._chunks`);
the loop is the same, only the layout of the samples differs.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch.distributions import kl_divergence

from mapograph.algos._advantages import gae, normalize
from mapograph.algos._chunks import FlatLayout, layout_for
from mapograph.algos._corrections import Correction
from mapograph.algos._derived import minibatch_indices
from mapograph.algos._masked_adam import AgentMaskedAdam
from mapograph.algos._readout_distill import TeacherParts, distill_readout, readout_teacher
from mapograph.algos._rollout import Rollout
from mapograph.algos._schedules import Plan
from mapograph.algos._surrogate import clipped_surrogate
from mapograph.policies import CentralCritic, ValueNormalizer, detached
from mapograph.policies._dag_actor import receivers_of

#: Activations per layer (agents x samples x hidden) above which an actor pass runs
#: its agents in groups (:meth:`BatchSequentialPPO._agent_groups`): 2^19 floats, 2 MB.
GROUP_ELEMENTS = 1 << 19


class _StepStats:
    """Loss, entropy and clip fraction of one optimizer step summed over agent groups."""

    def __init__(self) -> None:
        self._loss = self._entropy = self._clipped = 0.0
        self._count = 0

    def add(
        self, loss: torch.Tensor, ratio: torch.Tensor, entropy: torch.Tensor, clip: float
    ) -> None:
        """One group's loss and its ``[B, n]`` ratios and entropies."""
        self._loss = self._loss + loss.detach()
        self._entropy = self._entropy + entropy.detach().sum()
        self._clipped = self._clipped + ((ratio.detach() - 1).abs() > clip).sum()
        self._count += entropy.numel()

    @property
    def loss(self) -> torch.Tensor:
        """The step's loss (the sum over groups: a sum over agents)."""
        return self._loss

    @property
    def entropy(self) -> torch.Tensor:
        """The mean entropy over all agents and samples of the step."""
        return self._entropy / self._count

    @property
    def clip_fraction(self) -> torch.Tensor:
        """The share of clipped ratios over all agents and samples of the step."""
        return self._clipped / self._count


class BatchSequentialPPO:
    """Batch-by-batch PPO for a per-agent actor with stacked parameters.

    Args:
        actor: an :class:`~mapograph.policies.Actor` or
            :class:`~mapograph.policies.DAGActor` (``distribution(obs, avail, agents, ...)``).
        critic: centralized critic ``V(state)`` predicting normalized values.
        value_norm: running normalizer of the critic's targets (or ``None``).
        n_agents: number of agents.
        config: the PPO fields of :class:`~mapograph.algos.AlgorithmConfig`
            (``lr``, ``critic_lr``, ``gamma``, ``gae_lambda``, ``clip``, ``epochs``,
            ``minibatches``, ``entropy_coef``, ``max_grad_norm``, ``value_clip``).
        correction: how each batch accounts for the batches already updated.
        correction_clip: clip of the ratio product (``None``: no clip).
        generator: torch generator for minibatch shuffling (reproducibility).
        distill_coef: weight of the tied distillation term (0: none; needs an actor with
            ``distributions``, i.e. a :class:`~mapograph.policies.DAGActor`).
    """

    def __init__(
        self,
        actor: torch.nn.Module,
        critic: CentralCritic,
        value_norm: ValueNormalizer | None,
        n_agents: int,
        config: Any,
        correction: Correction,
        correction_clip: float | None,
        generator: torch.Generator,
        distill_coef: float = 0.0,
    ) -> None:
        if distill_coef > 0 and not hasattr(actor, "distributions"):
            raise ValueError("a tied pi_ind needs a DAG-conditioned actor (algo='b2mapo')")
        self.distill_coef = float(distill_coef)
        self.actor = actor
        self.critic = critic
        self.value_norm = value_norm
        self.n_agents = n_agents
        self.config = config
        self.correction = correction
        self.correction_clip = correction_clip
        self.generator = generator
        self.shared_actor = bool(getattr(actor, "share_params", False))
        # a shared torso under per-agent heads: the torso steps once per iteration, jointly
        self.torso: list[torch.nn.Parameter] = list(getattr(actor, "torso_parameters", list)())
        self.torso_optim: torch.optim.Optimizer | None = None
        torso = {id(p) for p in self.torso}
        # a readout pi_ind's head (pi_ind="readout") has an optimizer of its own and is
        # distilled after the batches (_readout_distill): it never reaches pi_seq's steps
        readout = getattr(actor, "readout", None)
        self.readout: list[torch.nn.Parameter] = (
            [] if readout is None else list(readout.parameters())
        )
        own = torso | {id(p) for p in self.readout}
        self.heads = [p for p in actor.parameters() if id(p) not in own]
        self.readout_optim: AgentMaskedAdam | None = None
        if self.readout:
            self.readout_optim = AgentMaskedAdam(
                self.readout, n_agents, lr=config.lr, max_grad_norm=config.max_grad_norm
            )
        if self.shared_actor:
            self.actor_optim: torch.optim.Optimizer = torch.optim.Adam(
                self.heads, lr=config.lr, eps=1e-5, foreach=True
            )
        else:
            self.actor_optim = AgentMaskedAdam(
                self.heads, n_agents, lr=config.lr, max_grad_norm=config.max_grad_norm
            )
            if self.torso:
                self.torso_optim = torch.optim.Adam(
                    self.torso, lr=config.lr, eps=1e-5, foreach=True
                )
        self.critic_optim = torch.optim.Adam(
            critic.parameters(), lr=config.critic_lr, eps=1e-5, foreach=True
        )
        self.recurrent_critic = bool(getattr(critic, "recurrent", False))
        self.critic_hidden: torch.Tensor | None = None  # carried across rollouts

    # ----------------------------------------------------------------- values
    @torch.no_grad()
    def values(self, state: torch.Tensor) -> torch.Tensor:
        """Raw-scale values ``V(state)`` (denormalized)."""
        v = self.critic(state)
        return self.value_norm.denormalize(v) if self.value_norm is not None else v

    @torch.no_grad()
    def rollout_values(self, rollout: Rollout) -> torch.Tensor:
        """Raw-scale values ``[T + 1, E]`` of the rollout's states.

        A recurrent critic runs over the rollout from the hidden state carried from
        the previous rollout (reset where episodes start); its hidden states are
        stored in ``rollout.critic_hidden`` for chunked training, and the values of
        truncated episodes' final states are computed from the state before the reset.
        """
        if not self.recurrent_critic:
            return self.values(rollout.state)
        if rollout.starts is None:
            raise ValueError("a recurrent critic needs rollout.starts (episode starts)")
        e = rollout.num_envs
        h0 = self.critic_hidden
        if h0 is None or h0.shape[0] != e:
            h0 = torch.zeros(e, self.critic.hidden, device=rollout.state.device)
        starts = torch.cat([rollout.starts, rollout.dones[-1:]])  # row T starts where T-1 ended
        v, hiddens, after = self.critic.sequence(rollout.state, h0, starts)
        rollout.critic_hidden = hiddens[:-1]
        self.critic_hidden = hiddens[-1]
        if rollout.final_state is not None:
            final, _ = self.critic.step(rollout.final_state, after[:-1])
            rollout.final_values = self._denormalize(final)
        return self._denormalize(v)

    def _denormalize(self, v: torch.Tensor) -> torch.Tensor:
        return self.value_norm.denormalize(v) if self.value_norm is not None else v

    def advantages(self, rollout: Rollout, values: torch.Tensor, trace: torch.Tensor | None = None):
        """GAE advantages ``[T, E]`` (trace-corrected when ``trace`` is given).

        Where the rollout holds final states, an episode cut by the time limit is
        bootstrapped from the value of the state it reached (not treated as terminal).
        """
        cfg = self.config
        if rollout.truncated is None or rollout.final_state is None:
            return gae(rollout.rewards, values, rollout.dones, cfg.gamma, cfg.gae_lambda, trace)
        if rollout.final_values is None:  # first use: the critic of ``values``
            rollout.final_values = self.values(rollout.final_state)
        truncated = rollout.truncated & rollout.dones
        next_values = torch.where(truncated, rollout.final_values, values[1:])
        return gae(
            rollout.rewards,
            values,
            rollout.dones,
            cfg.gamma,
            cfg.gae_lambda,
            trace,
            next_values=next_values,
            terminals=rollout.dones & ~truncated,
        )

    # ----------------------------------------------------------------- update
    def update(
        self,
        rollout: Rollout,
        plan: Plan | list[list[int]],
        values: torch.Tensor | None = None,
        advantages: torch.Tensor | None = None,
        joint_gain: bool = True,
    ) -> dict[str, float]:
        """One batch-sequential PPO iteration over the plan's batches (see module docstring).

        Args:
            rollout: the collected data.
            plan: the ordered batches (and the DAG edges a conditioned actor reads);
                a plain list of batches means no conditioning.
            values: raw values ``[T + 1, E]`` (computed when ``None``).
            advantages: plain GAE advantages ``[T, E]`` of ``values`` (computed when ``None``).
            joint_gain: report ``joint_ratio_gain`` (it needs the last batch's ratios,
                one no-grad forward that nothing else needs: skipped when False).

        Returns:
            Statistics: losses, entropy, ``joint_ratio_gain`` (with ``joint_gain``: the
            importance-weighted estimate ``E[(prod_i r_i - 1) * A]`` of the joint
            improvement), clip fraction.
        """
        cfg = self.config
        if not isinstance(plan, Plan):
            plan = Plan([list(batch) for batch in plan])
        if self.shared_actor and len(plan.batches) > 1:
            raise ValueError(
                "share_params=True gives all agents one network, so a partition with more than one "
                "batch cannot update agents separately; use share_params=False or algo='mappo'"
            )
        if values is None:
            values = self.rollout_values(rollout)
        base_adv = self.advantages(rollout, values) if advantages is None else advantages
        stats = self.update_critic(rollout, values[:-1] + base_adv)

        # flat steps (feed-forward) or chunks from stored hidden states (recurrent)
        layout = layout_for(rollout, cfg.chunk_length, rollout.hidden)
        flat_obs = layout.arrange(rollout.obs)
        flat_avail = layout.arrange(rollout.avail)
        flat_actions = layout.arrange(rollout.actions)
        flat_old = layout.arrange(rollout.log_probs)
        # Parents' messages depend only on the data: computed once, not per minibatch.
        context = self.actor.context(rollout.flat(rollout.actions), plan.edge_index)
        context = {k: layout.from_flat(v) for k, v in context.items()}
        # agents without parents skip the parent head (their term is exactly zero)
        receivers = receivers_of(plan.edge_index) if context else None
        fixed = {} if receivers is None else {"receivers": receivers}
        rho: torch.Tensor | None = None  # [T, E] product of earlier batches' ratios
        policy_losses, entropies, clip_fracs, kls = [], [], [], []
        _requires_grad(self.torso, False)  # a shared torso does not move during the batches
        # a readout pi_ind's teacher: each batch's ratio forward (final without a torso)
        teacher = None
        if self.readout_optim is not None and self.distill_coef > 0 and not self.torso:
            teacher = readout_teacher(self.actor)
        batches = plan.indices(flat_obs.device)
        for k, agents in enumerate(batches):
            # (a) correct for the batches already updated this iteration
            rho_c = None if rho is None else self.clip_ratio(rho)
            target = self.correction.target(
                base_adv, rho_c, lambda trace: self.advantages(rollout, values, trace)
            )
            flat_target = layout.arrange(target)
            # the batch's agents in groups whose activations stay in cache (one group
            # unless the batch is large), with their actions and old log-probs
            groups = [
                (
                    group,
                    flat_actions.index_select(layout.agent_axis, group),
                    flat_old.index_select(layout.agent_axis, group),
                )
                for group in self._agent_groups(agents, flat_old, layout.agent_axis)
            ]
            # (b) one clipped surrogate for all agents of the batch together
            for _ in range(cfg.epochs):
                for idx in self._actor_minibatches(layout.units):
                    obs, avail = layout.take(flat_obs, idx), layout.take(flat_avail, idx)
                    ctx = {**{k: layout.take(v, idx) for k, v in context.items()}, **fixed}
                    memory = layout.memory(idx)
                    self.actor_optim.zero_grad()
                    step = _StepStats()
                    for group, acts, old in groups:  # gradients add up over the groups
                        dist, independent = self._distributions(obs, avail, group, ctx, memory)
                        loss, ratio, entropy = self._policy_loss(
                            dist, layout, idx, acts, old, flat_target
                        )  # ratio, entropy [B, nb]
                        loss = loss + self._distill_loss(dist, independent, layout, kls)
                        loss.backward()
                        step.add(loss, ratio, entropy, cfg.clip)
                    self._step_actor(agents)
                    policy_losses.append(step.loss)
                    entropies.append(step.entropy)
                    clip_fracs.append(step.clip_fraction)
            # (c) fold this batch's new/old ratios into the correction (the last batch's
            # only for the joint gain or a readout's teacher)
            if k < len(batches) - 1 or joint_gain or teacher is not None:
                batch_ratio = self.batch_ratio(
                    flat_obs,
                    flat_avail,
                    flat_actions,
                    flat_old,
                    agents,
                    {**context, **fixed},
                    layout,
                    teacher,
                )
                rho = batch_ratio if rho is None else rho * batch_ratio
        _requires_grad(self.torso, True)
        if self.torso_optim is not None:
            stats["torso_loss"] = self.update_torso(
                flat_obs,
                flat_avail,
                flat_actions,
                flat_old,
                layout.arrange(base_adv),
                context,
                layout,
                kls,
            )
        if self.readout_optim is not None and self.distill_coef > 0:  # pi_ind="readout"
            kls.append(
                distill_readout(
                    self.actor,
                    self.readout_optim,
                    self.distill_coef,
                    flat_obs,
                    flat_avail,
                    {**context, **fixed},
                    layout,
                    cfg.epochs,
                    cfg.minibatches,
                    teacher,
                )
            )
        if kls:
            stats["distill_kl"] = _mean(kls)
        if joint_gain:
            gain = float(((rho - 1.0) * normalize(base_adv)).mean()) if rho is not None else 0.0
            stats["joint_ratio_gain"] = gain
        stats.update(
            policy_loss=_mean(policy_losses),
            entropy=_mean(entropies),
            clip_fraction=_mean(clip_fracs),
            n_batches=float(len(plan.batches)),
        )
        return stats

    def update_torso(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor,
        actions: torch.Tensor,
        old_log_probs: torch.Tensor,
        advantages: torch.Tensor,
        context: dict,
        layout: FlatLayout,
        kls: list[torch.Tensor] | None = None,
    ) -> float:
        """Train the shared torso alone on all agents at once (MAPPO's surrogate).

        The heads are frozen; every agent's clipped ratio (against the behaviour
        policy) weighs the normalized plain advantage (plus the tied distillation term,
        whose values are appended to ``kls``). Inputs are arranged by ``layout`` as in
        :meth:`update`.

        Returns:
            The mean loss of the pass.
        """
        cfg = self.config
        adv = normalize(advantages)
        losses = []
        _requires_grad(self.heads + self.readout, False)
        try:
            for _ in range(cfg.epochs):
                for idx in self._actor_minibatches(layout.units):
                    dist, independent = self._distributions(
                        layout.take(obs, idx),
                        layout.take(avail, idx),
                        None,
                        {k: layout.take(v, idx) for k, v in context.items()},
                        layout.memory(idx),
                    )
                    loss, _, _ = self._policy_loss(dist, layout, idx, actions, old_log_probs, adv)
                    loss = loss + self._distill_loss(dist, independent, layout, kls)
                    self.torso_optim.zero_grad()
                    loss.backward()
                    if cfg.max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(self.torso, cfg.max_grad_norm)
                    self.torso_optim.step()
                    losses.append(loss.detach())
        finally:
            _requires_grad(self.heads + self.readout, True)
        return _mean(losses)

    def _agent_groups(
        self,
        agents: torch.Tensor,
        old_log_probs: torch.Tensor,
        agent_axis: int,
        minibatches: int | None = None,
    ) -> list[torch.Tensor]:
        """A batch's agents split into groups of at most :data:`GROUP_ELEMENTS` hidden
        activations per layer (``agents x samples per pass x hidden``; a pass sees
        ``1 / minibatches`` of the samples, default the config's), on a CPU only.

        With per-agent parameters each agent's gradient depends on its own rows only, so
        one forward and backward per group, summed before the optimizer's step, gives
        the batch's gradient (to rounding). At 100 agents x 1,024 samples a pass over
        all agents keeps ~26 MB per layer in flight and runs memory-bound on this
        machine's CPU: in groups of 8 MAPPO's update is about 25 % faster (design
        choices, "Passes in agent groups"). On a GPU one launch per layer is better.
        """
        count = agents.numel()
        parts = self.config.minibatches if minibatches is None else minibatches
        samples = old_log_probs.numel() // old_log_probs.shape[agent_axis]
        per_agent = max(1, samples // max(1, parts)) * self.config.hidden
        size = max(1, GROUP_ELEMENTS // per_agent)
        if self.shared_actor or count <= size or agents.device.type != "cpu":
            return [agents]
        return list(agents.split(math.ceil(count / math.ceil(count / size))))

    def _actor_minibatches(self, units: int) -> list[torch.Tensor | None]:
        """The actor passes' minibatches: ``[None]`` (all samples in place, no copy) for
        one minibatch, else shuffled index tensors (:func:`minibatch_indices`)."""
        if self.config.minibatches <= 1:
            return [None]
        return minibatch_indices(units, self.config.minibatches, self.generator)

    def _distributions(
        self, obs, avail, agents, context: dict, memory: dict
    ) -> tuple[Any, Any | None]:
        """The optimized policy's distribution of ``agents`` and, with a tied ``pi_ind``,
        that of its independent part from the same forward (else ``None``; a readout
        ``pi_ind`` is distilled after the batches, :func:`distill_readout`)."""
        if self.distill_coef > 0 and self.readout_optim is None:
            return self.actor.distributions(obs, avail, agents=agents, **context, **memory)
        return self.actor.distribution(obs, avail, agents=agents, **context, **memory), None

    def _distill_loss(
        self, dist: Any, independent: Any | None, layout: FlatLayout, kls: list | None
    ) -> torch.Tensor | float:
        """``distill_coef * KL(pi_seq || pi_ind)`` with ``pi_seq`` held fixed (0 untied).

        A sum over agents of per-agent means, like the policy loss; the mean KL is
        appended to ``kls``.
        """
        if independent is None:
            return 0.0
        kl = layout.samples(kl_divergence(detached(dist), independent))
        if kls is not None:
            kls.append(kl.detach().mean())
        return self.distill_coef * kl.mean(0).sum()

    def _policy_loss(
        self,
        dist: Any,
        layout: FlatLayout,
        idx: torch.Tensor,
        actions: torch.Tensor,
        old_log_probs: torch.Tensor,
        advantages: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """PPO's clipped policy loss on minibatch ``idx`` (arranged by ``layout``).

        The sum over the agents in ``dist`` of per-agent means: each agent's gradient
        does not depend on how many agents share its batch. Returns the loss and the
        ``[B, n]`` ratios and entropies.
        """
        surrogate, ratio = clipped_surrogate(
            layout.samples(dist.log_prob(layout.take(actions, idx))),
            layout.samples(layout.take(old_log_probs, idx)),
            layout.samples(layout.take(advantages, idx)).unsqueeze(-1),
            self.config.clip,
        )
        entropy = layout.samples(dist.entropy())
        loss = -surrogate.mean(0).sum() - self.config.entropy_coef * entropy.mean(0).sum()
        return loss, ratio, entropy

    def _step_actor(self, agents: torch.Tensor) -> None:
        if self.shared_actor:
            if self.config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(self.actor.parameters(), self.config.max_grad_norm)
            self.actor_optim.step()
        else:
            self.actor_optim.step(agents)

    def clip_ratio(self, rho: torch.Tensor) -> torch.Tensor:
        """Clip the ratio product to ``[1 - c, 1 + c]`` (no clip when ``correction_clip`` is None)."""
        c = self.correction_clip
        return rho if c is None else rho.clamp(1.0 - c, 1.0 + c)

    @torch.no_grad()
    def batch_ratio(
        self,
        obs,
        avail,
        actions,
        old_log_probs,
        agents,
        context: dict,
        layout: FlatLayout | None = None,
        teacher: TeacherParts | None = None,
    ) -> torch.Tensor:
        """``prod_{i in agents} pi_i^new(a_i) / pi_i^old(a_i)`` per step, ``[T, E]``.

        ``obs``... are arranged by ``layout`` (flat ``[T * E, ...]`` when ``None``;
        then the result stays flat ``[T * E]``). ``teacher``: also keep the forward
        for a readout ``pi_ind``'s distillation (:class:`TeacherParts`).
        """
        axis = 1 if layout is None else layout.agent_axis
        memory = {} if layout is None else layout.memory()
        log_ratio = 0.0  # summed over the agents, group by group (see _agent_groups)
        for group in self._agent_groups(agents, old_log_probs, axis, minibatches=1):
            if teacher is None:
                dist = self.actor.distribution(obs, avail, agents=group, **context, **memory)
            else:
                parts = self.actor.readout_inputs(obs, avail, agents=group, **context, **memory)
                out, hidden, term, avail_rows = parts
                dist = self.actor.sequential_distribution(out, term, avail_rows, group)
                teacher.add(group, out, hidden, avail_rows, dist)
            log_p = dist.log_prob(actions.index_select(axis, group))
            log_ratio = log_ratio + (log_p - old_log_probs.index_select(axis, group)).sum(-1)
        ratio = torch.exp(log_ratio)
        return ratio if layout is None else layout.restore(ratio)

    def update_critic(self, rollout: Rollout, returns: torch.Tensor) -> dict[str, float]:
        """Fit ``V(state)`` to the GAE returns ``[T, E]`` (normalized, clipped value loss)."""
        cfg = self.config
        if self.recurrent_critic:
            layout = layout_for(rollout, cfg.chunk_length, rollout.critic_hidden)
            states = layout.arrange(rollout.state[:-1])
            targets = layout.arrange(returns)
        else:  # flat, exactly as before recurrent critics existed
            layout = FlatLayout(rollout)
            states = rollout.flat(rollout.state[:-1])
            targets = returns.reshape(-1)
        if self.value_norm is not None:
            self.value_norm.update(targets.reshape(-1))
            targets = self.value_norm.normalize(targets)
        with torch.no_grad():
            old = self._critic_values(states, layout, None)
        losses = []
        for _ in range(cfg.epochs):
            for idx in minibatch_indices(layout.units, cfg.minibatches, self.generator):
                v = self._critic_values(layout.take(states, idx), layout, idx)
                old_idx = layout.samples(layout.take(old, idx))
                target_idx = layout.samples(layout.take(targets, idx))
                loss = F.huber_loss(v, target_idx, delta=10.0, reduction="none")
                if cfg.value_clip is not None:
                    v_clip = old_idx + (v - old_idx).clamp(-cfg.value_clip, cfg.value_clip)
                    loss = torch.max(
                        loss, F.huber_loss(v_clip, target_idx, delta=10.0, reduction="none")
                    )
                loss = loss.mean()
                self.critic_optim.zero_grad()
                loss.backward()
                if cfg.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
                self.critic_optim.step()
                losses.append(loss.detach())
        return {"value_loss": _mean(losses)}

    def _critic_values(self, states, layout: FlatLayout, idx) -> torch.Tensor:
        """Normalized predictions for arranged ``states`` (per-sample rows; chunks flattened).

        With ``idx=None`` over all samples the arranged shape is kept.
        """
        if not self.recurrent_critic:
            return self.critic(states)
        memory = layout.memory(idx)
        v = self.critic.sequence(states, memory["h0"], memory["starts"])[0]
        return v if idx is None else layout.samples(v)

    # ------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict:
        """Optimizer states (the modules are saved by their owner)."""
        state = {
            "actor_optim": self.actor_optim.state_dict(),
            "critic_optim": self.critic_optim.state_dict(),
        }
        if self.torso_optim is not None:
            state["torso_optim"] = self.torso_optim.state_dict()
        if self.readout_optim is not None:
            state["readout_optim"] = self.readout_optim.state_dict()
        if self.critic_hidden is not None:
            state["critic_hidden"] = self.critic_hidden
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.actor_optim.load_state_dict(state["actor_optim"])
        self.critic_optim.load_state_dict(state["critic_optim"])
        if self.torso_optim is not None:
            if "torso_optim" not in state:
                raise ValueError("the checkpoint has no optimizer state of the shared torso")
            self.torso_optim.load_state_dict(state["torso_optim"])
        if self.readout_optim is not None:
            if "readout_optim" not in state:
                raise ValueError("the checkpoint has no optimizer state of the readout pi_ind")
            self.readout_optim.load_state_dict(state["readout_optim"])
        hidden = state.get("critic_hidden")
        if hidden is not None:
            device = next(self.critic.parameters()).device
            self.critic_hidden = hidden.to(device)


def _requires_grad(params: list[torch.nn.Parameter], flag: bool) -> None:
    """Switch gradients of ``params`` on or off (frozen parameters get no ``.grad``)."""
    for p in params:
        p.requires_grad_(flag)


def _mean(values: list[torch.Tensor]) -> float:
    """Mean of scalar tensors with one device sync (0.0 for none)."""
    return float(torch.stack(values).mean()) if values else 0.0
