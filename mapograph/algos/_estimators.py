"""Interdependence estimators: which pairs of agents depend on each other, from the rollout.

An estimator reads each iteration's data and returns an :class:`Interdependence`:
symmetric pair strengths ``[N, N]`` (the skeleton prior of B2MAPO's generator,
see :mod:`mapograph.algos._upper`) and, when it can tell, a priority order of
the agents (the direction prior, :func:`mapograph.graph.priority_order`).

Built in (``TrainConfig.interaction_estimator``):

- ``pairwise`` (default): a centralized critic with low-rank pairwise payoffs
  over the agents' observations (:class:`~mapograph.graph.PairwisePayoffCritic`),
  regressed on the returns; a pair's strength is the size of its non-additive
  payoff given the state. Sees interdependence that shows only given what the
  agents observe.
- ``pairwise_td``: the same, regressed on the one-step advantage instead of
  the reward (for rewards that come late).
- ``anova``: the pooled two-way ANOVA of the advantage on ``(a_i, a_j)``
  (:func:`~mapograph.algos._interaction.action_interaction`), accumulated over
  iterations. Sees only interdependence that shows without conditioning on
  observations; gives no direction.
- ``anova_reward``: the same ANOVA of the one-step team reward, averaged over
  iterations with weights that fall as the agents stop exploring. Where a step's
  reward depends on that step's joint action, GAE's sum over the later steps only
  adds their (independent) variation as noise; the reward keeps the signal. Costs
  ``O(S N^2 A^2)`` with no training, so it is the large-team estimator.
- ``auto`` (default): ``pairwise`` while every pair fits into one of its fits
  (``N (N - 1) / 2 <= estimator_max_pairs``, 45 agents by default), ``anova_reward``
  beyond, where the pairwise critic must sample its candidate pairs and learns slowly
  or not at all. Measured (seed 0): on ``coordination:random-100`` the pairwise
  critic's strengths stay at chance (skeleton AUC 0.50-0.53 over 12 iterations, ~1.7
  s per fit) while the reward ANOVA ranks the true edges at AUC 0.93 after one
  iteration and 1.00 after four (~0.05 s); at 50 agents the ANOVA's AUC is at least
  the critic's on the coordination and mixed games, at a tenth of the cost
  (docs/design-choices.md, "Interdependence at 100 agents").

Register your own with ``ESTIMATORS.register(name, cls)`` (a class or a factory
function); it is built as ``cls(context)`` (a :class:`~mapograph.algos.ScheduleContext`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from mapograph._registry import Registry, is_callable
from mapograph.algos._interaction import action_interaction, standardize_offdiagonal
from mapograph.algos._interaction_continuous import continuous_interaction
from mapograph.graph import PairwisePayoffCritic, action_vectors, priority_order

if TYPE_CHECKING:
    from mapograph.algos._schedules import ScheduleContext, ScheduleData


@dataclass
class Interdependence:
    """What an estimator tells the upper layer after one iteration.

    Attributes:
        strength: ``[N, N]`` symmetric pair strengths (zero diagonal).
        cumulative: the upper layer should average ``strength`` over iterations
            (False: ``strength`` is already the estimator's current best estimate).
        order: agents from first to last (direction prior), or None.
    """

    strength: torch.Tensor
    cumulative: bool = False
    order: list[int] | None = None


class InteractionEstimator:
    """Base class: reads a rollout, returns an :class:`Interdependence` (or None)."""

    def __init__(self, context: ScheduleContext) -> None:
        self.context = context

    def update(self, data: ScheduleData) -> Interdependence | None:
        """Learn from this iteration's data and return the current estimate."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold to continue exactly."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


#: Most pair payoffs one step of the pairwise estimator evaluates (samples x pairs).
EDGE_BUDGET = 65_536

#: Below this exploration (see :meth:`PairwisePayoffEstimator.exploration`) an
#: iteration is skipped by the pairwise estimator.
MIN_EXPLORATION = 0.05


@torch.no_grad()
def behaviour_exploration(
    rollout, reference: torch.Tensor | None = None
) -> tuple[float, torch.Tensor | None]:
    """How much the behaviour policy varies its actions, in ``[0, 1]``, and the reference.

    Discrete actions: the entropy estimate ``-mean log pi(a)`` over the rollout divided
    by ``log`` of the available actions (1 for a uniform policy, 0 for a deterministic
    one); ``reference`` is passed through. Box actions: the geometric-mean standard
    deviation relative to the reference rollout's, ``exp((H - H_ref) / d)`` per agent
    with ``d`` the agent's action dimensions, clipped to 1; the first call (``reference``
    None) makes this rollout's per-agent entropy the reference and returns it.
    """
    entropy = -rollout.log_probs.float().mean((0, 1))  # [N]
    if rollout.continuous:
        dims = rollout.avail[0, 0].float().sum(-1).clamp(min=1)  # [N]
        if reference is None:
            reference = entropy.clone()
        ratio = torch.exp((entropy - reference) / dims).clamp(max=1.0)
        return float(ratio.mean()), reference
    most = torch.log(rollout.avail.float().sum(-1).clamp(min=1)).mean((0, 1))  # [N]
    return float((entropy.sum() / most.sum().clamp(min=1e-8)).clamp(0.0, 1.0)), reference


#: Interdependence estimators by name; each is built as ``cls(context)``.
ESTIMATORS: Registry[Callable[[ScheduleContext], InteractionEstimator]] = Registry(
    "interaction estimator", is_callable
)


@ESTIMATORS.register("anova")
class PooledAnova(InteractionEstimator):
    """The pooled two-way ANOVA of the advantage on each pair's actions (no direction);
    for Box actions its continuous counterpart
    (:func:`~mapograph.algos._interaction_continuous.continuous_interaction`)."""

    def target(self, data: ScheduleData) -> torch.Tensor:
        """What the pairs' actions are tested against, ``[S]``: the GAE advantages."""
        return data.advantages.reshape(-1)

    def strengths(self, data: ScheduleData) -> torch.Tensor | None:
        """This rollout's pair strengths ``[N, N]`` (None when too large to compute)."""
        rollout = data.rollout
        target = self.target(data).float()
        actions = rollout.flat(rollout.actions)
        if rollout.continuous:
            return continuous_interaction(actions, target, rollout.flat(rollout.avail))
        return action_interaction(actions, target, self.context.n_actions)

    def update(self, data: ScheduleData) -> Interdependence | None:
        strength = self.strengths(data)
        return None if strength is None else Interdependence(strength, cumulative=True)


@ESTIMATORS.register("anova_reward")
class PooledRewardAnova(PooledAnova):
    """:class:`PooledAnova` of the one-step team reward instead of the advantage, averaged
    over iterations with weights that follow how much the agents still explore.

    In a game whose reward at a step depends on that step's joint action, the
    interaction of a pair is in the reward; GAE adds the rewards of the next
    ``~1 / (1 - gamma lambda)`` steps, whose actions are independent of this step's,
    and the critic's error, both noise to this test. Rewards that come late (a win
    bonus) are seen only through the immediate rewards that lead to them.

    Each iteration's strengths are standardized (z-scores over the pairs) and enter a
    weighted mean with weight ``exploration ** 2`` (:func:`behaviour_exploration`):
    once the policies are nearly deterministic functions of shared observations the
    agents' actions are correlated and a pooled interaction is spurious, and larger
    than the early, informative ones, while the reward, unlike the advantage, does not
    shrink to make those iterations weigh little. Below :data:`MIN_EXPLORATION` an
    iteration is skipped. No direction (see docs/design-choices.md, "Interdependence
    at 100 agents").
    """

    def __init__(self, context: ScheduleContext) -> None:
        super().__init__(context)
        self.total: torch.Tensor | None = None  # sum of weighted strengths
        self.weight = 0.0
        self.entropy_reference: torch.Tensor | None = None

    def target(self, data: ScheduleData) -> torch.Tensor:
        """The team reward of each sample ``[S]`` (same layout as ``rollout.flat``)."""
        return data.rollout.rewards.reshape(-1)

    def update(self, data: ScheduleData) -> Interdependence | None:
        explore, self.entropy_reference = behaviour_exploration(
            data.rollout, self.entropy_reference
        )
        if self.total is None or explore >= MIN_EXPLORATION:
            strength = self.strengths(data)
            if strength is None:
                return None
            weight = max(explore, MIN_EXPLORATION) ** 2
            strength = weight * standardize_offdiagonal(strength)  # one scale per iteration
            self.total = strength if self.total is None else self.total + strength
            self.weight += weight
        return Interdependence(self.total / self.weight, cumulative=False)

    def state_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "weight": self.weight,
            "entropy_reference": self.entropy_reference,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = self.context.device
        for name in ("total", "entropy_reference"):
            value = state[name]
            setattr(self, name, None if value is None else value.to(device))
        self.weight = float(state["weight"])


@ESTIMATORS.register("pairwise")
class PairwisePayoffEstimator(InteractionEstimator):
    """Pairwise-payoff critic (DCG-style, low rank) with CASEC-style edge strengths.

    Each iteration: ``estimator_steps`` Adam steps (``TrainConfig``), each on a
    minibatch of ``batch_size`` samples (fewer with many candidate pairs, so that a
    step evaluates at most :data:`EDGE_BUDGET` pair payoffs) drawn without
    replacement from the rollout (a fresh permutation whenever one is used up),
    regressing ``Q(o, a)`` on the team reward of the step (Box actions as the env
    received them: clipped to ``[-1, 1]``, not the stored unclipped samples;
    ``pairwise_td``: on the
    one-step advantage ``r + gamma V(s') - V(s)`` with the trainer's critic, for
    rewards that come late; its critic's errors are noise to the regression, see
    docs/design-choices.md), scaled by running statistics (rate ``smoothing``) so
    that the strengths of different iterations share one scale. A fixed number of
    steps, not epochs over the rollout: the critic persists across iterations (an
    online regression), so its work per iteration is bounded whatever the rollout
    size. Then the strengths of the candidate pairs on ``strength_samples`` states,
    smoothed over iterations with rate ``smoothing * exploration``.

    ``exploration`` (:meth:`exploration`, in ``[0, 1]``) is how much the behaviour
    policy still varies its actions: pairwise payoffs are only identified where the
    joint actions vary, and once the policies are nearly deterministic the critic
    extrapolates over the action grid, so those iterations barely move the
    estimate; below :data:`MIN_EXPLORATION` the iteration is skipped altogether (no
    training, the estimate kept). With more than ``estimator_max_pairs`` pairs the
    candidates are the strongest half of the budget by the running estimate plus
    random others (every pair is visited over time).
    """

    batch_size = 128
    lr = 3e-3
    smoothing = 0.3
    strength_samples = 256
    bootstrap = False

    def __init__(self, context: ScheduleContext) -> None:
        super().__init__(context)
        cfg = context.config
        n, device = context.n_agents, context.device
        self.n_agents, self.device = n, device
        self.n_actions = context.n_actions
        self.critic = PairwisePayoffCritic(
            context.obs_dim,
            context.n_actions,
            n,
            hidden=cfg.estimator_hidden,
            rank=cfg.estimator_rank,
        ).to(device)
        self.optim = torch.optim.Adam(self.critic.parameters(), lr=self.lr, foreach=True)
        self.max_pairs = cfg.estimator_max_pairs
        self.all_pairs = torch.triu_indices(n, n, 1, device=device)
        self.strength = torch.zeros(n, n, device=device)
        self.own = torch.zeros(n, device=device)
        self.seen = torch.zeros(n, n, dtype=torch.bool, device=device)
        self.generator = context.generators["dag"]
        # running mean and variance of the regression target; reference entropy (Box)
        self.target_stats: torch.Tensor | None = None
        self.entropy_reference: torch.Tensor | None = None

    def exploration(self, rollout) -> float:
        """How much the behaviour policy varies its actions, in ``[0, 1]``
        (:func:`behaviour_exploration`; Box actions: relative to the first rollout seen)."""
        value, self.entropy_reference = behaviour_exploration(rollout, self.entropy_reference)
        return value

    def scaled_target(self, target: torch.Tensor) -> torch.Tensor:
        """``target`` centred and scaled by running statistics (first call: its own)."""
        batch = torch.stack([target.mean(), target.var(unbiased=False)])
        if self.target_stats is None:
            self.target_stats = batch
        else:
            self.target_stats = (1 - self.smoothing) * self.target_stats + self.smoothing * batch
        mean, var = self.target_stats
        return (target - mean) / (var.sqrt() + 1e-8)

    def candidates(self) -> torch.Tensor:
        """Pairs ``[2, P]`` to fit this iteration (all of them when within the budget)."""
        if self.all_pairs.shape[1] <= self.max_pairs:
            return self.all_pairs
        scores = self.strength[self.all_pairs[0], self.all_pairs[1]]
        keep = self.max_pairs // 2
        top = scores.topk(keep).indices
        rest = torch.ones_like(scores, dtype=torch.bool)
        rest[top] = False
        others = rest.nonzero().squeeze(-1)
        pick = torch.randperm(others.numel(), generator=self.generator, device=self.device)
        chosen = torch.cat([top, others[pick[: self.max_pairs - keep]]])
        return self.all_pairs[:, chosen]

    def update(self, data: ScheduleData) -> Interdependence:
        rollout = data.rollout
        explore = self.exploration(rollout)
        if explore < MIN_EXPLORATION and bool(self.seen.any()):
            # nearly deterministic policies: nothing to learn about pairs; keep the estimate
            return Interdependence(
                self.strength.clone(),
                cumulative=False,
                order=priority_order(self.strength, self.own),
            )
        obs = rollout.flat(rollout.obs).float()  # [S, N, obs_dim]
        act = action_vectors(rollout.flat(rollout.actions), self.n_actions)  # [S, N, D]
        if rollout.continuous:  # what the env received: the box maps the clipped action
            act = act.clamp(-1.0, 1.0)
        target = rollout.rewards
        if self.bootstrap:  # one-step advantage r + gamma V(s') - V(s) (trainer's critic)
            after = data.values[1:] * (~rollout.dones).float()
            target = target + self.context.config.gamma * after - data.values[:-1]
        target = target.reshape(-1)
        target = self.scaled_target(target)
        pairs = self.candidates()
        s = obs.shape[0]
        for idx in self.minibatches(s, pairs.shape[1]):
            loss = (self.critic(obs[idx], act[idx], pairs) - target[idx]).pow(2).mean()
            self.optim.zero_grad()
            loss.backward()
            self.optim.step()
        grid = self.action_grid(act, discrete=not rollout.continuous)
        sample = torch.randperm(s, generator=self.generator, device=self.device)
        sample = sample[: self.strength_samples]
        strength, own = self.critic.pair_strength(obs[sample], pairs, grid)
        src, dst = pairs
        old = self.strength[src, dst]
        fresh = ~self.seen[src, dst]
        smoothing = self.smoothing * explore
        rate = torch.where(fresh, torch.ones_like(old), torch.full_like(old, smoothing))
        new = (1 - rate) * old + rate * strength
        self.strength[src, dst] = new
        self.strength[dst, src] = new
        self.seen[src, dst] = self.seen[dst, src] = True
        rate = 1.0 if not bool(self.own.any()) else smoothing
        self.own = (1 - rate) * self.own + rate * own
        order = priority_order(self.strength, self.own)
        return Interdependence(self.strength.clone(), cumulative=False, order=order)

    def minibatches(self, samples: int, pairs: int = 1) -> list[torch.Tensor]:
        """``estimator_steps`` index tensors of up to ``batch_size`` samples each, drawn
        without replacement (a fresh permutation whenever the rollout is used up).

        With many candidate ``pairs`` a minibatch holds fewer samples, so that one step
        evaluates at most :data:`EDGE_BUDGET` pair payoffs (at least 16 samples).
        """
        size = min(self.batch_size, samples, max(16, EDGE_BUDGET // max(pairs, 1)))
        needed = self.context.config.estimator_steps * size
        perms = [
            torch.randperm(samples, generator=self.generator, device=self.device)
            for _ in range(-(-needed // samples))
        ]
        return list(torch.cat(perms)[:needed].split(size))

    def action_grid(self, act: torch.Tensor, discrete: bool) -> torch.Tensor:
        """Action vectors ``[M, D]`` the payoff tables are evaluated on: every one-hot for
        discrete actions; for continuous ones, up to 16 actions taken in the rollout."""
        if discrete:
            return torch.eye(act.shape[-1], device=self.device)
        flat = act.reshape(-1, act.shape[-1])
        pick = torch.randperm(flat.shape[0], generator=self.generator, device=self.device)[:16]
        return flat[pick]

    def state_dict(self) -> dict[str, Any]:
        return {
            "critic": self.critic.state_dict(),
            "optim": self.optim.state_dict(),
            "strength": self.strength.clone(),
            "own": self.own.clone(),
            "seen": self.seen.clone(),
            "target_stats": self.target_stats,
            "entropy_reference": self.entropy_reference,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.critic.load_state_dict(state["critic"])
        self.optim.load_state_dict(state["optim"])
        self.strength = state["strength"].to(self.device)
        self.own = state["own"].to(self.device)
        self.seen = state["seen"].to(self.device)
        for name in ("target_stats", "entropy_reference"):  # absent in older checkpoints
            value = state.get(name)
            setattr(self, name, None if value is None else value.to(self.device))


@ESTIMATORS.register("pairwise_td")
class PairwisePayoffTD(PairwisePayoffEstimator):
    """:class:`PairwisePayoffEstimator` regressed on the one-step advantage (delayed rewards)."""

    bootstrap = True


@ESTIMATORS.register("auto")
def auto_estimator(context: ScheduleContext) -> InteractionEstimator:
    """The default estimator for the team size: :class:`PairwisePayoffEstimator` while
    all pairs fit into one fit (``N (N - 1) / 2 <= estimator_max_pairs``: up to 45
    agents by default), :class:`PooledRewardAnova` beyond (see the module docstring for
    the measurements behind the switch)."""
    n = context.n_agents
    if n * (n - 1) // 2 <= context.config.estimator_max_pairs:
        return PairwisePayoffEstimator(context)
    return PooledRewardAnova(context)
