"""``AlgorithmConfig``: every knob of an algorithm, each owned by exactly one field.

:class:`~mapograph.TrainConfig` extends it with the run's own fields (steps,
seed, copies, device, bookkeeping), so users keep one flat keyword API
(``mg.TrainConfig(algo="b2mapo", lr=1e-3, k=2)``) while the optimizer, the
schedules and the derived policy read the same object.

Fields left ``None`` under "batch-sequential update" take the preset's value
(``algo``); setting them overrides it. :meth:`AlgorithmConfig.preset` returns the
preset with the overrides applied — the only place where config and preset meet.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from mapograph._validation import (
    MAX_SIZE,
    boolean,
    check,
    half_open_unit_interval,
    int_list,
    int_lists,
    non_negative_float,
    non_negative_int,
    optional,
    positive_float,
    positive_int,
    registered,
    unit_interval,
    validate_fields,
)
from mapograph.algos._corrections import CORRECTIONS
from mapograph.algos._estimators import ESTIMATORS
from mapograph.algos._presets import ALGORITHMS, AlgorithmPreset
from mapograph.algos._schedules import ORDERS, SCHEDULES
from mapograph.partition import PARTITIONERS
from mapograph.policies._dag_actor import PARENT_OBS_FORMS
from mapograph.policies._parent_encoding import PARENT_ENCODINGS
from mapograph.policies._stacked import ACTIVATIONS, activation_class


def log_std_value(value: object) -> str | None:
    """A finite number in ``[-5, 2]`` (the range the Gaussian's log-std is clamped to)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -5 <= value <= 2:
        return "must be a number in [-5, 2]"
    return None


def _activation(value: object) -> str | None:
    """A hidden-layer activation by name (see :data:`mapograph.policies.ACTIVATIONS`)."""
    try:
        activation_class(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"must be one of {', '.join(ACTIVATIONS)}"
    return None


#: How B2MAPO's execution policy ``pi_ind`` is held (see :class:`AlgorithmConfig`).
PI_IND_MODES = ("separate", "tied", "readout")

#: ``kl_coef`` when it is left ``None``, per ``pi_ind`` mode (see ``distill_weight``).
DEFAULT_KL_COEF = {"separate": 1.0, "tied": 0.3, "readout": 1.0}


def _pi_ind_mode(value: object) -> str | None:
    """``separate``, ``tied`` or ``readout`` (see ``AlgorithmConfig.pi_ind``)."""
    if value not in PI_IND_MODES:
        return f"must be one of {', '.join(PI_IND_MODES)}"
    return None


def _parent_encoding(value: object) -> str | None:
    """How ``pi_seq`` encodes its parents' actions (see :mod:`mapograph.policies`)."""
    if value not in PARENT_ENCODINGS:
        return f"must be one of {', '.join(PARENT_ENCODINGS)}"
    return None


def _parent_obs_form(value: object) -> str | None:
    """How ``parent_obs`` lets the observation into ``pi_seq``'s parent head."""
    if value not in PARENT_OBS_FORMS:
        return f"must be one of {', '.join(PARENT_OBS_FORMS)}"
    return None


@dataclass
class AlgorithmConfig:
    """What an algorithm needs: networks, PPO, the update schedule, B2MAPO's layers.

    ``partition`` accepts a DAG partitioner (``generations``, ``bounded``,
    ``k_batches``: how a DAG schedule turns its DAG into batches) or, as a
    shorthand, the name of a schedule that needs no DAG (``simultaneous``,
    ``agent_by_agent``, ``fixed``), which then sets the schedule.

    Continuous (Box) action spaces get a diagonal Gaussian policy whose log-std is a
    per-agent parameter starting at ``log_std_init`` (``state_dependent_std=True``:
    an output of the network). ``recurrent=True`` gives the actors and the critic a
    GRU torso trained on chunks of ``chunk_length`` steps.
    """

    algo: str = field(default="mappo", metadata=check(registered(ALGORITHMS)))

    # networks
    hidden: int = field(default=64, metadata=check(positive_int(MAX_SIZE)))
    layers: int = field(default=2, metadata=check(positive_int(64)))
    share_params: bool = field(default=False, metadata=check(boolean))
    #: layer-normalize every network's input (observations, the critic's state) before
    #: its first layer: MAPPO's and HARL's ``use_feature_normalization``
    input_norm: bool = field(default=False, metadata=check(boolean))
    #: hidden-layer activation of the actors and the critic: ``"tanh"`` or ``"relu"``
    activation: str = field(default="tanh", metadata=check(_activation))
    # continuous actions (Gaussian policies) and recurrent policies/critic
    state_dependent_std: bool = field(default=False, metadata=check(boolean))
    log_std_init: float = field(default=-0.5, metadata=check(log_std_value))
    recurrent: bool = field(default=False, metadata=check(boolean))
    chunk_length: int = field(default=16, metadata=check(positive_int(1 << 20)))

    # PPO
    lr: float = field(default=5e-4, metadata=check(positive_float))
    critic_lr: float = field(default=5e-4, metadata=check(positive_float))
    #: decay ``lr`` and ``critic_lr`` linearly towards 0 over ``total_steps`` (MAPPO's
    #: ``use_linear_lr_decay``, JaxMARL's ``ANNEAL_LR``); the generator's rate is kept
    lr_anneal: bool = field(default=False, metadata=check(boolean))
    gamma: float = field(default=0.99, metadata=check(unit_interval))
    gae_lambda: float = field(default=0.95, metadata=check(unit_interval))
    clip: float = field(default=0.2, metadata=check(positive_float))
    epochs: int = field(default=5, metadata=check(positive_int(10_000)))
    minibatches: int = field(default=1, metadata=check(positive_int(1 << 20)))
    entropy_coef: float = field(default=0.01, metadata=check(non_negative_float))
    max_grad_norm: float | None = field(default=10.0, metadata=check(optional(positive_float)))
    value_norm: bool = field(default=True, metadata=check(boolean))
    value_clip: float | None = field(default=0.2, metadata=check(optional(positive_float)))
    #: share of the behaviour policy's actions drawn uniformly from the available ones
    #: while collecting (discrete actions; the stored log-probs are the mixture's; B2MAPO's
    #: later batches read the perturbed actions). Releases conventions that are
    #: equilibria, for every preset (docs: design-choices, "Exploration releases the
    #: convention, for every method")
    behaviour_epsilon: float = field(default=0.0, metadata=check(half_open_unit_interval))

    # batch-sequential update (None: from the preset)
    schedule: str | None = field(default=None, metadata=check(optional(registered(SCHEDULES))))
    partition: str | None = field(
        default=None, metadata=check(optional(registered(PARTITIONERS, SCHEDULES)))
    )
    order: str | None = field(default=None, metadata=check(optional(registered(ORDERS))))
    correction: str | None = field(default=None, metadata=check(optional(registered(CORRECTIONS))))
    correction_clip: float | None = field(default=None, metadata=check(optional(positive_float)))
    fixed_partition: list[list[int]] | None = field(
        default=None, metadata=check(optional(int_lists()))
    )
    fixed_order: list[int] | None = field(default=None, metadata=check(optional(int_list)))
    fixed_dag: list[list[int]] | None = field(default=None, metadata=check(optional(int_lists(2))))

    # DAG schedules: DAG -> batches
    max_batch_size: int = field(default=3, metadata=check(positive_int()))
    k: int = field(default=3, metadata=check(positive_int()))
    edge_threshold: float = field(default=0.3, metadata=check(half_open_unit_interval))
    condition_on_parents: bool = field(default=True, metadata=check(boolean))
    parent_warmup: int = field(default=0, metadata=check(non_negative_int))
    parent_obs: bool = field(default=False, metadata=check(boolean))  # head reads obs too
    #: with ``parent_obs``: ``"add"`` (to the head's pre-activation, minus its output at a
    #: zero message) or ``"gate"`` (the only form until session 15; docs/design-choices.md,
    #: "The children's answers need a faster timescale", session 15)
    parent_obs_form: str = field(default="add", metadata=check(_parent_obs_form))
    parent_encoding: str = field(default="auto", metadata=check(_parent_encoding))
    #: the parent head's hidden activation (a name of ``mapograph.policies.ACTIVATIONS``):
    #: ``"relu"`` since session 13 (before: tanh; docs/design-choices.md, "The parent head's
    #: activation")
    parent_activation: str = field(default="relu", metadata=check(_activation))
    #: factor on the parent head's output: the children's answers to their parents'
    #: actions learn on a faster timescale (docs/design-choices.md, "The children's answers
    #: need a faster timescale"); 1.0 until session 14
    parent_gain: float = field(default=50.0, metadata=check(positive_float))

    # B2MAPO upper layer: the learned DAG
    dag_temperature: float = field(default=1.0, metadata=check(positive_float))
    generator_lr: float = field(default=1e-3, metadata=check(positive_float))
    generator_entropy_coef: float = field(default=0.01, metadata=check(non_negative_float))
    generator_epochs: int = field(default=12, metadata=check(positive_int(10_000)))
    #: extra steps per fit on the interdependence prior alone (no PPO term): lets the
    #: generator catch up with the estimator on many pairs (docs: design-choices)
    generator_prior_epochs: int = field(default=24, metadata=check(non_negative_int))
    #: with generator_prior_epochs: take those steps only while the generator ranks the
    #: prior's strong pairs first with an AUC below this (None: always take them)
    generator_prior_fit: float | None = field(default=0.98, metadata=check(optional(unit_interval)))
    generator_hidden: int = field(default=64, metadata=check(positive_int(MAX_SIZE)))
    generator_heads: int = field(default=4, metadata=check(positive_int(64)))
    interaction_coef: float = field(default=1.0, metadata=check(non_negative_float))
    #: also add the interdependence prior to the generator's edge logits (``2 z``; docs:
    #: design-choices, "Interdependence at 100 agents"), not only fit it as a loss
    prior_offset: bool = field(default=True, metadata=check(boolean))
    interaction_estimator: str = field(default="auto", metadata=check(registered(ESTIMATORS)))
    estimator_rank: int = field(default=4, metadata=check(positive_int(MAX_SIZE)))
    estimator_hidden: int = field(default=64, metadata=check(positive_int(MAX_SIZE)))
    estimator_max_pairs: int = field(default=1024, metadata=check(positive_int()))
    estimator_steps: int = field(default=32, metadata=check(positive_int(100_000)))
    generator_candidates: int | None = field(default=None, metadata=check(optional(positive_int())))
    upper_max_period: int = field(default=8, metadata=check(positive_int(1 << 20)))

    # B2MAPO derived independent policy
    distill_every: int = field(default=1, metadata=check(positive_int()))
    #: weight of ``KL(pi_seq || pi_ind)``; ``None``: the ``pi_ind`` mode's default
    #: (:data:`DEFAULT_KL_COEF`: 1.0 separate and readout, 0.3 tied), see :meth:`distill_weight`
    kl_coef: float | None = field(default=None, metadata=check(optional(non_negative_float)))
    #: How B2MAPO's execution policy ``pi_ind`` is held. ``readout`` (default): ``pi_seq``'s
    #: observation part (``pi_seq`` without its parent head) plus a per-agent linear head on
    #: its detached last hidden layer, distilled with ``KL(pi_seq || pi_ind)`` in the same
    #: batch passes; only the head moves, so ``pi_seq`` trains exactly as without it (no
    #: second network, no drift), and the head folds into a plain actor for deployment.
    #: ``separate``: its own network, trained after the batch loop with MAPPO on
    #: ``pi_seq``'s data plus ``kl_coef * KL(pi_seq || pi_ind)`` (the paper's design).
    #: ``tied``: ``pi_seq``'s observation part itself, pulled by ``kl_coef * KL`` in each
    #: batch (which also moves ``pi_seq``). Docs: design-choices, "The derived independent
    #: policy"
    pi_ind: str = field(default="readout", metadata=check(_pi_ind_mode))

    def __post_init__(self) -> None:
        self.validate()

    def distill_weight(self) -> float:
        """The distillation weight in use: ``kl_coef``, or the ``pi_ind`` mode's default.

        A tied ``pi_ind`` is part of ``pi_seq``, so pulling it toward ``pi_seq`` also moves
        ``pi_seq`` and the pull chases itself: measured on ``contextual:tree-7`` (100k
        steps, 3 seeds) the tied policy ends at 0.782 / 0.787 / 0.770 of the optimum
        with ``kl_coef`` 0 / 0.3 / 1, and 0.579 with 3 (one seed), hence its lower default.
        A readout head's only loss is the distillation, so with Adam its size does not
        matter (0 switches the distillation off; any positive value gives the same steps
        up to Adam's epsilon).
        """
        if self.kl_coef is not None:
            return self.kl_coef
        return DEFAULT_KL_COEF[self.pi_ind]

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field."""
        validate_fields(self)
        self.preset()  # the combination must make sense too

    def preset(self) -> AlgorithmPreset:
        """The algorithm preset with this config's overrides applied.

        Raises:
            ValueError: the overrides contradict each other (a DAG partitioner for
                a schedule without a DAG, ``order='fixed'`` without ``fixed_order``...).
        """
        base = ALGORITHMS.get(self.algo)
        partition_is_schedule = self.partition is not None and self.partition in SCHEDULES
        if self.schedule is not None:
            schedule = self.schedule
        elif partition_is_schedule:
            schedule = self.partition
        elif self.fixed_dag is not None:
            schedule = "given_dag"
        elif self.fixed_partition is not None:
            schedule = "fixed"
        else:
            schedule = base.schedule
        schedule = SCHEDULES.canonical(schedule)
        order = self.order or ("fixed" if self.fixed_order is not None else base.order)
        schedule_cls = SCHEDULES.get(schedule)
        partition = (
            self.partition
            if not partition_is_schedule and self.partition
            else schedule_cls.default_partition or base.partition
        )
        preset = dataclasses.replace(
            base,
            schedule=schedule,
            partition=PARTITIONERS.canonical(partition),
            order=ORDERS.canonical(order),
            correction=CORRECTIONS.canonical(self.correction or base.correction),
            correction_clip=self.correction_clip
            if self.correction_clip is not None
            else base.correction_clip,
        )
        if self.partition is not None and not partition_is_schedule and not schedule_cls.uses_dag:
            raise ValueError(
                f"partition={self.partition!r} partitions a DAG, but schedule {schedule!r} of "
                f"algo={self.algo!r} has none: use algo='b2mapo' (learned DAG) or fixed_dag=[[i, j], ...]"
            )
        for name, reader in (("fixed_dag", "given_dag"), ("fixed_partition", "fixed")):
            if getattr(self, name) is not None and schedule != reader:
                raise ValueError(
                    f"{name} is set but schedule {schedule!r} does not read it (schedule "
                    f"{reader!r} does): drop {name}, or choose schedule {reader!r}"
                )
        if self.fixed_order is not None and not (
            schedule_cls.uses_order and preset.order == "fixed"
        ):
            reason = (
                f"schedule {schedule!r} has no agent order"
                if not schedule_cls.uses_order
                else f"order={preset.order!r} draws its own"
            )
            raise ValueError(
                f"fixed_order is set but {reason}: drop fixed_order or use order='fixed'"
            )
        needs = [(f"schedule {schedule!r}", name) for name in schedule_cls.requires]
        if schedule_cls.uses_order:
            needs += [(f"order {preset.order!r}", n) for n in ORDERS.get(preset.order).requires]
        for who, name in needs:
            if getattr(self, name) is None:
                raise ValueError(f"{who} needs {name}=[...]")
        return preset
