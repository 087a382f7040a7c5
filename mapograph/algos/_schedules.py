"""Update schedules: how an iteration's agents are split into ordered batches.

A :class:`Schedule` answers three questions at fixed points of an iteration:

1. :meth:`~Schedule.propose` (before collection): the plan the behaviour policy
   acts with — for DAG schedules the DAG whose parents ``pi_seq`` reads;
2. :meth:`~Schedule.plan` (after collection, with values and advantages): the
   ordered batches of the update (HAPPO's random order, A2PO's semi-greedy one);
3. :meth:`~Schedule.learn` (after the update): what the schedule itself learns
   (B2MAPO's upper layer learns from the improvement its DAG produced).

Built in: ``simultaneous`` (MAPPO: one batch), ``agent_by_agent`` (one agent per
batch in an :data:`ORDERS` rule), ``fixed`` (a given partition), ``given_dag``
(a given DAG, partitioned), ``learned_dag`` (B2MAPO). Register your own with
``SCHEDULES.register(name, cls)``; a schedule is built as ``cls(context)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import networkx as nx
import torch

from mapograph import partition as P
from mapograph._errors import MapographError
from mapograph._registry import Registry, instance_of, subclass_of
from mapograph.algos._rollout import Rollout

if TYPE_CHECKING:
    from mapograph.algos._config import AlgorithmConfig
    from mapograph.algos._presets import AlgorithmPreset
    from mapograph.envs import TimeStep


@dataclass
class Plan:
    """The ordered batches of one iteration and the DAG the conditioned actor reads.

    Attributes:
        batches: ordered partition of the agents ``[[batch 1], [batch 2], ...]``.
        edge_index: ``[2, e]`` DAG edges ``i -> j`` from an earlier to a later batch
            (what ``pi_seq`` conditions on); ``None``: no conditioning.
        record: what the schedule needs to learn from this plan (e.g. the DAG sample).
    """

    batches: list[list[int]]
    edge_index: torch.Tensor | None = None
    record: Any = None
    _indices: dict[str, list[torch.Tensor]] = field(default_factory=dict, repr=False)
    _checked_for: int | None = field(default=None, repr=False)

    def check(self, n_agents: int, source: str) -> Plan:
        """This plan, after checking that its batches hold every agent ``0..n_agents-1``
        once and that every edge goes from an earlier batch to a later one (ValueError
        naming ``source``, e.g. a registered schedule, otherwise). Checked once: a plan
        handed back again (a schedule whose update plan is its acting plan) is not."""
        if self._checked_for == n_agents:
            return self
        try:
            P.validate_partition(self.batches, n_agents)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{source} returned an invalid plan: {exc}") from None
        if self.edge_index is not None and self.edge_index.numel():
            batches = self.indices("cpu")
            batch_of = torch.empty(n_agents, dtype=torch.long)
            batch_of[torch.cat(batches)] = torch.repeat_interleave(
                torch.arange(len(batches)), torch.tensor([len(b) for b in batches])
            )
            src, dst = self.edge_index.detach().cpu().long()
            if int(src.min()) < 0 or int(torch.maximum(src, dst).max()) >= n_agents:
                raise ValueError(f"{source} returned plan edges outside 0..{n_agents - 1}")
            backward = (batch_of[src] >= batch_of[dst]).nonzero()
            if backward.numel():
                i = int(backward[0, 0])
                raise ValueError(
                    f"{source} returned a plan edge {int(src[i])} -> {int(dst[i])} that does "
                    "not go from an earlier batch to a later one"
                )
        self._checked_for = n_agents
        return self

    def indices(self, device: torch.device | str) -> list[torch.Tensor]:
        """One LongTensor of agent ids per batch, on ``device`` (built once per device)."""
        key = str(device)
        if key not in self._indices:
            self._indices[key] = [
                torch.as_tensor(batch, dtype=torch.long, device=device) for batch in self.batches
            ]
        return self._indices[key]


@dataclass
class ScheduleData:
    """What a schedule may read after collection.

    Attributes:
        rollout: the collected data.
        values: raw-scale values ``[T + 1, E]`` of the states.
        advantages: plain GAE advantages ``[T, E]``.
    """

    rollout: Rollout
    values: torch.Tensor
    advantages: torch.Tensor


@dataclass
class ScheduleContext:
    """Everything a schedule is built from.

    Attributes:
        n_agents, obs_dim, n_actions: the env's sizes.
        config: the algorithm configuration (any field a schedule needs).
        preset: the resolved preset (schedule, order, partition names).
        device: where the schedule's tensors live.
        generators: ``"order"`` and ``"dag"`` random generators (on ``device``).
    """

    n_agents: int
    obs_dim: int
    n_actions: int
    config: AlgorithmConfig
    preset: AlgorithmPreset
    device: torch.device
    generators: dict[str, torch.Generator]


class Schedule:
    """Base class: one batch of all agents, nothing learned. Override what differs.

    Class attributes:
        uses_dag: the schedule partitions a DAG (``partition`` applies).
        uses_order: the schedule orders agents with an :data:`ORDERS` rule.
        single_batch: every plan is one batch (then ``share_params`` gives one network for
            all agents; otherwise a shared torso under per-agent heads).
        requires: config fields that must be set (e.g. ``("fixed_partition",)``).
        default_partition: the partitioner used when the config names none (None: the
            algorithm preset's).
        uses_joint_gain: :meth:`learn` reads the update's ``joint_ratio_gain`` (the
            optimizer computes it only then).
    """

    uses_dag: ClassVar[bool] = False
    uses_joint_gain: ClassVar[bool] = False
    uses_order: ClassVar[bool] = False
    single_batch: ClassVar[bool] = False
    requires: ClassVar[tuple[str, ...]] = ()
    default_partition: ClassVar[str | None] = None

    def __init__(self, context: ScheduleContext) -> None:
        self.context = context
        self.n_agents = context.n_agents

    def propose(self, ts: TimeStep) -> Plan:
        """The plan the behaviour policy acts with this iteration (``ts``: the current step)."""
        return Plan(P.simultaneous(self.n_agents))

    def plan(self, acting: Plan, data: ScheduleData) -> Plan:
        """The plan of this iteration's update (default: the acting plan)."""
        return acting

    def learn(self, plan: Plan, data: ScheduleData, stats: dict[str, float]) -> dict[str, float]:
        """Learn from the update's statistics; returns statistics to log."""
        return {}

    def interdependence(self, ts: TimeStep) -> nx.DiGraph:
        """The interdependence graph this schedule works with (weight = P(edge))."""
        raise MapographError(
            f"schedule {self.context.preset.schedule!r} of algo={self.context.preset.name!r} "
            "has no interdependence graph (use algo='b2mapo' or fixed_dag=...)"
        )

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold to continue exactly."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


# ------------------------------------------------------------------ orders
def a2po_scores(rollout: Rollout, advantages: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Per-agent priority ``[N]`` for A2PO's semi-greedy order.

    ``score_i = E[|A| * (1 - pi_i(a_i | o_i))] / (E[|V|] + 1e-8)``: the size of the
    advantage relative to the value (A2PO's ``|A / V|``), weighted by how much
    room agent ``i``'s policy has left to move on the actions taken (with a team
    reward the advantage alone is the same for every agent).

    Continuous actions have densities, not probabilities: ``pi_i(a_i)`` is replaced
    by the density relative to the largest one agent ``i`` reached in the rollout,
    ``exp(log pi_i(a_i) - max log pi_i)`` (a design choice, see docs).
    """
    log_probs = rollout.log_probs
    if rollout.continuous:
        log_probs = log_probs - log_probs.amax(dim=(0, 1), keepdim=True)
    room = 1.0 - log_probs.exp()  # [T, E, N]
    weighted = (advantages.abs().unsqueeze(-1) * room).mean(dim=(0, 1))
    return weighted / (values.abs().mean() + 1e-8)


def check_fixed_order(order: list[int], n_agents: int) -> list[int]:
    """``order`` as ints; ValueError unless it is a permutation of the ``n_agents`` agents."""
    order = [int(a) for a in order]
    if sorted(order) != list(range(n_agents)):
        raise ValueError(
            f"fixed_order must be a permutation of the {n_agents} agents 0..{n_agents - 1}, "
            f"got {order}"
        )
    return order


@dataclass(frozen=True)
class OrderRule:
    """An ordering rule: ``rule(context, data) -> order`` (a permutation of the agents).

    Attributes:
        name: registry name.
        fn: the rule.
        requires: config fields it needs.
    """

    name: str
    fn: Callable[[ScheduleContext, ScheduleData], list[int]]
    requires: tuple[str, ...] = ()

    def __call__(self, context: ScheduleContext, data: ScheduleData) -> list[int]:
        return self.fn(context, data)


#: Ordering rules of the one-agent-per-batch schedule.
ORDERS: Registry[OrderRule] = Registry("order", instance_of(OrderRule))
"""Ordering rules for one-agent-per-batch schedules by name (``identity``, ``random``, ``semi_greedy``, ``fixed``)."""
_identity = OrderRule("identity", lambda ctx, data: list(range(ctx.n_agents)))
ORDERS.register("identity", _identity)
ORDERS.register("none", _identity)  # the name configs used before 0.2
ORDERS.register(
    "random",
    OrderRule("random", lambda ctx, data: P.random_order(ctx.n_agents, ctx.generators["order"])),
)
ORDERS.register(
    "semi_greedy",
    OrderRule(
        "semi_greedy",
        lambda ctx, data: P.semi_greedy_order(
            a2po_scores(data.rollout, data.advantages, data.values), ctx.generators["order"]
        ),
    ),
)
ORDERS.register(
    "fixed",
    OrderRule(
        "fixed",
        lambda ctx, data: check_fixed_order(ctx.config.fixed_order, ctx.n_agents),
        requires=("fixed_order",),
    ),
)


# --------------------------------------------------------------- schedules
#: Update schedules by name; each entry is built as ``cls(context)``.
SCHEDULES: Registry[type[Schedule]] = Registry("schedule", subclass_of(Schedule))
"""Update schedules by name (``simultaneous``, ``agent_by_agent``, ``fixed``, ``given_dag``, ``learned_dag``)."""


@SCHEDULES.register("simultaneous")
class Simultaneous(Schedule):
    """All agents in one batch (MAPPO)."""

    single_batch = True


@SCHEDULES.register("agent_by_agent")
class AgentByAgent(Schedule):
    """One agent per batch, in the order of the preset's :data:`ORDERS` rule (HAPPO, A2PO)."""

    uses_order = True

    def __init__(self, context: ScheduleContext) -> None:
        super().__init__(context)
        self.order_rule = ORDERS.get(context.preset.order)
        if context.config.fixed_order is not None and "fixed_order" in self.order_rule.requires:
            check_fixed_order(context.config.fixed_order, self.n_agents)

    def plan(self, acting: Plan, data: ScheduleData) -> Plan:
        return Plan(P.agent_by_agent(self.order_rule(self.context, data)))


@SCHEDULES.register("fixed")
class FixedPartition(Schedule):
    """The same ordered batches every iteration (``fixed_partition``)."""

    requires = ("fixed_partition",)

    def __init__(self, context: ScheduleContext) -> None:
        super().__init__(context)
        batches = [[int(a) for a in batch] for batch in context.config.fixed_partition]
        try:
            P.validate_partition(batches, self.n_agents)
        except ValueError as exc:
            raise ValueError(f"fixed_partition does not fit this env: {exc}") from None
        self.fixed = Plan(batches)

    def propose(self, ts: TimeStep) -> Plan:
        return self.fixed


def crossing_edges(
    dag: nx.DiGraph, batches: list[list[int]], device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Edges ``i -> j`` of ``dag`` with ``batch(i) < batch(j)`` as an ``[2, e]`` LongTensor."""
    batch_of = {a: k for k, batch in enumerate(batches) for a in batch}
    edges = [(i, j) for i, j in dag.edges if batch_of[i] < batch_of[j]]
    if not edges:
        return torch.zeros(2, 0, dtype=torch.long, device=device)
    return torch.tensor(edges, dtype=torch.long, device=device).t().contiguous()


def partition_kwargs(partitioner: Callable[..., Any], config: Any) -> dict[str, Any]:
    """The config fields named like the partitioner's keyword parameters (``k``, ``max_batch_size``)."""
    params = list(inspect.signature(partitioner).parameters)[1:]  # after the DAG
    return {name: getattr(config, name) for name in params if hasattr(config, name)}


class DAGSchedule(Schedule):
    """Base of schedules that partition a DAG with the preset's partitioner."""

    uses_dag = True

    def __init__(self, context: ScheduleContext) -> None:
        super().__init__(context)
        self.partition_fn = P.get_partitioner(context.preset.partition)
        self.partition_kwargs = partition_kwargs(self.partition_fn, context.config)

    def warmed_up(self, plan: Plan) -> Plan:
        """``plan`` without parent conditioning for the first ``parent_warmup`` proposals."""
        self.proposals = getattr(self, "proposals", 0) + 1
        if self.proposals > self.context.config.parent_warmup or plan.edge_index is None:
            return plan
        return Plan(plan.batches, None, plan.record)

    def plan_for(self, dag: nx.DiGraph, record: Any = None) -> Plan:
        """Partition ``dag``; the crossing edges condition ``pi_seq`` unless disabled."""
        batches = self.partition_fn(dag, **self.partition_kwargs)
        try:  # a registered partitioner's output: every agent once, no edge backward
            P.validate_partition(batches, self.n_agents, dag, strict=False)
        except (ValueError, TypeError) as exc:
            name = getattr(self.partition_fn, "__name__", repr(self.partition_fn))
            raise ValueError(f"partitioner {name!r} returned an invalid partition: {exc}") from None
        edges = (
            crossing_edges(dag, batches, self.context.device)
            if self.context.config.condition_on_parents
            else None
        )
        return Plan(batches, edges, record)


@SCHEDULES.register("given_dag")
class GivenDAG(DAGSchedule):
    """A DAG given by the user (``fixed_dag``, edges ``[i, j]``), partitioned every iteration alike.

    Partitioned by ``generations`` unless the config names a partitioner: the fewest
    batches in which every given edge crosses from an earlier batch to a later one, so
    every child conditions on all of its given parents (an edge inside a batch is not
    conditioned on; docs/design-choices.md, "A given DAG keeps every edge").
    """

    requires = ("fixed_dag",)
    default_partition = "generations"

    def __init__(self, context: ScheduleContext) -> None:
        super().__init__(context)
        edges = context.config.fixed_dag
        unknown = sorted({a for edge in edges for a in edge if not 0 <= a < self.n_agents})
        if unknown:
            raise ValueError(
                f"fixed_dag names agents {unknown} that do not exist: the env has "
                f"{self.n_agents} agents 0..{self.n_agents - 1}"
            )
        try:
            self.dag = P.as_dag(
                torch.tensor(edges, dtype=torch.long).reshape(-1, 2).t(), num_nodes=self.n_agents
            )
        except ValueError as exc:
            raise ValueError(f"fixed_dag is not a DAG: {exc}") from None
        self.fixed = self.plan_for(self.dag)

    def propose(self, ts: TimeStep) -> Plan:
        return self.warmed_up(self.fixed)

    def state_dict(self) -> dict[str, Any]:
        return {"proposals": getattr(self, "proposals", 0)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.proposals = int(state.get("proposals", 0))

    def interdependence(self, ts: TimeStep) -> nx.DiGraph:
        """The given DAG itself (each edge with ``weight`` 1.0): acyclic, so it can be
        partitioned or drawn as it is."""
        graph = nx.DiGraph()
        graph.add_nodes_from(range(self.n_agents))
        graph.add_weighted_edges_from((i, j, 1.0) for i, j in self.dag.edges)
        return graph


def checked_estimate(estimate: Any, n_agents: int) -> Any:
    """An estimator's output, refused (ValueError) unless it is ``None`` or an
    ``Interdependence`` with a finite ``[N, N]`` strength and, where given, an order that
    is a permutation of the agents: a registered estimator's mistake is named here, not
    as a shape error inside the upper layer."""
    from mapograph.algos._estimators import Interdependence

    if estimate is None:
        return None
    if not isinstance(estimate, Interdependence):
        raise ValueError(
            f"an interaction estimator must return an Interdependence or None, got "
            f"{type(estimate).__name__}"
        )
    strength = estimate.strength
    if not isinstance(strength, torch.Tensor) or tuple(strength.shape) != (n_agents, n_agents):
        shape = list(strength.shape) if isinstance(strength, torch.Tensor) else type(strength)
        raise ValueError(f"the estimator's strength must be [{n_agents}, {n_agents}], got {shape}")
    if not bool(torch.isfinite(strength).all()):
        raise ValueError("the estimator's strength holds NaN or infinity")
    if estimate.order is not None and sorted(int(a) for a in estimate.order) != list(
        range(n_agents)
    ):
        raise ValueError(
            f"the estimator's order must be a permutation of 0..{n_agents - 1}, "
            f"got {list(estimate.order)}"
        )
    return estimate


def estimate_mode(estimate: Any) -> frozenset:
    """What an interdependence estimate says, for :class:`RefitSchedule`: its skeleton (pairs
    whose strength z-score exceeds 1, :func:`~mapograph.graph.skeleton_mask`) and its order."""
    from mapograph.graph import skeleton_mask

    pairs = skeleton_mask(estimate.strength).triu(1).nonzero().tolist()
    order = () if estimate.order is None else tuple(int(a) for a in estimate.order)
    return frozenset([*map(tuple, pairs), ("order", order)])


def agent_features(obs: torch.Tensor, n_agents: int) -> torch.Tensor:
    """Generator input ``[1, N, obs_dim + N]``: mean observation per agent and its one-hot id."""
    mean_obs = obs.reshape(-1, n_agents, obs.shape[-1]).float().mean(0)
    ids = torch.eye(n_agents, device=obs.device)
    return torch.cat([mean_obs, ids], -1).unsqueeze(0)


@SCHEDULES.register("learned_dag")
class LearnedDAG(DAGSchedule):
    """B2MAPO's upper layer: a DAG generator proposes the DAG and learns from its payoff."""

    uses_joint_gain = True

    def __init__(self, context: ScheduleContext) -> None:
        super().__init__(context)
        from mapograph.algos._upper import DAGUpperLayer

        cfg = context.config
        self.upper = DAGUpperLayer(
            feature_dim=context.obs_dim + context.n_agents,
            n_agents=context.n_agents,
            hidden=cfg.generator_hidden,
            heads=cfg.generator_heads,
            lr=cfg.generator_lr,
            entropy_coef=cfg.generator_entropy_coef,
            epochs=cfg.generator_epochs,
            clip=cfg.clip,
            temperature=cfg.dag_temperature,
            edge_threshold=cfg.edge_threshold,
            generator=context.generators["dag"],
            interaction_coef=cfg.interaction_coef,
            candidates=cfg.generator_candidates,
            device=context.device,
            prior_epochs=cfg.generator_prior_epochs,
            prior_fit=cfg.generator_prior_fit,
            prior_offset=cfg.prior_offset,
        )
        from mapograph.algos._estimators import ESTIMATORS
        from mapograph.algos._upper import RefitSchedule

        self.estimator = ESTIMATORS.get(cfg.interaction_estimator)(context)
        self.refit = RefitSchedule(cfg.upper_max_period)  # the generator's fits
        self.estimator_refit = RefitSchedule(cfg.upper_max_period)  # the estimator's
        self.estimate: Any = None  # the estimator's last Interdependence (reused while it rests)
        self.features: torch.Tensor | None = None  # the generator's input for the next proposal

    def _features(self, ts: TimeStep) -> torch.Tensor:
        if self.features is None:
            self.features = agent_features(ts.obs.to(self.context.device), self.n_agents)
        return self.features

    def propose(self, ts: TimeStep) -> Plan:
        proposal = self.upper.propose(self._features(ts))
        return self.warmed_up(self.plan_for(proposal.dag, proposal))

    def learn(self, plan: Plan, data: ScheduleData, stats: dict[str, float]) -> dict[str, float]:
        estimated = self._estimate(data)
        fitted = self.refit.due()  # False while the DAG has held: no generator training now
        out = (
            self.upper.learn(plan.record, stats["joint_ratio_gain"], self.estimate)
            if fitted
            else {}
        )
        if (
            not fitted
            and estimated
            and self.estimate is not None  # an estimator may return None (too many cells)
            and self.estimate.cumulative
            and self.upper.interaction_coef > 0
        ):
            self.upper.observe(self.estimate)  # a cumulative mean must see every iteration
        self.features = agent_features(data.rollout.obs, self.n_agents)
        if fitted and self.refit.adaptive:
            self.refit.fitted(self.upper.mode_edges(self.features), self._prior())
        return {
            **out,
            "upper_fitted": float(fitted),
            "upper_period": float(self.refit.period),
            "estimator_fitted": float(estimated),
        }

    def _prior(self) -> Any:
        """What the generator's skeleton follows, where it follows it (``prior_offset``):
        the running estimate's edge probabilities, strong pairs and the estimator's
        order (a :class:`~mapograph.algos._upper.Prior`; else ``None``)."""
        from mapograph.algos._interaction import standardize_offdiagonal
        from mapograph.algos._upper import Prior

        if not self.upper.prior_offset or self.estimate is None:
            return None
        from mapograph.graph import skeleton_mask

        upper = torch.triu_indices(self.n_agents, self.n_agents, 1, device=self.context.device)
        z = standardize_offdiagonal(self.upper.interaction)
        strong = skeleton_mask(self.upper.interaction).triu(1).nonzero().tolist()
        order = self.estimate.order
        return Prior(
            torch.sigmoid(2 * z)[upper[0], upper[1]],
            frozenset(map(tuple, strong)),
            None if order is None else tuple(int(a) for a in order),
        )

    def _estimate(self, data: ScheduleData) -> bool:
        """Train the estimator when due (it rests while its skeleton and order hold);
        ``self.estimate`` is the estimate the generator fits. Returns whether it trained."""
        if self.upper.interaction_coef <= 0:
            self.estimate = None
            return False
        rests = self.estimator_refit.adaptive and self.estimate is not None
        # a cumulative estimate (pooled ANOVA) must see every iteration once: it never rests
        if rests and not self.estimate.cumulative and not self.estimator_refit.due():
            return False
        self.estimate = checked_estimate(self.estimator.update(data), self.n_agents)
        if self.estimator_refit.adaptive and self.estimate is not None:
            self.estimator_refit.fitted(estimate_mode(self.estimate))
        return True

    def interdependence(self, ts: TimeStep) -> nx.DiGraph:
        probs = self.upper.edge_probabilities(self._features(ts)).cpu()
        graph = nx.DiGraph()
        graph.add_nodes_from(range(self.n_agents))
        graph.add_weighted_edges_from(
            (i, j, float(probs[i, j]))
            for i in range(self.n_agents)
            for j in range(self.n_agents)
            if i != j
        )
        return graph

    def state_dict(self) -> dict[str, Any]:
        return {
            "upper": self.upper.state_dict(),
            "features": self.features,
            "estimator": self.estimator.state_dict(),
            "proposals": getattr(self, "proposals", 0),
            "refit": self.refit.state_dict(),
            "estimator_refit": self.estimator_refit.state_dict(),
            "estimate": None
            if self.estimate is None
            else {
                "strength": self.estimate.strength,
                "cumulative": self.estimate.cumulative,
                "order": self.estimate.order,
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.upper.load_state_dict(state["upper"])
        if "estimator" in state:  # checkpoints written before the estimators had none
            self.estimator.load_state_dict(state["estimator"])
        self.proposals = int(state.get("proposals", 0))
        if "refit" in state:  # checkpoints written before the upper layer backed off
            self.refit.load_state_dict(state["refit"])
        if "estimator_refit" in state:
            from mapograph.algos._estimators import Interdependence

            self.estimator_refit.load_state_dict(state["estimator_refit"])
            estimate = state["estimate"]
            self.estimate = (
                None
                if estimate is None
                else Interdependence(
                    estimate["strength"].to(self.context.device),
                    cumulative=bool(estimate["cumulative"]),
                    order=estimate["order"],
                )
            )
        features = state["features"]
        self.features = None if features is None else features.to(self.context.device)
