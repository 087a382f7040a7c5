"""One batch-sequential PPO optimizer, update schedules, corrections and the presets.

MAPPO (one batch), HAPPO (random order, one agent per batch, factor correction),
A2PO (semi-greedy order, one agent per batch, trace correction) and B2MAPO
(learned DAG -> partitioner -> batches, derived independent policy) are
:class:`AlgorithmPreset` entries of :data:`ALGORITHMS` that name a schedule
(:data:`SCHEDULES`), an ordering rule (:data:`ORDERS`), a partitioner and a
correction (:data:`CORRECTIONS`); all run :class:`BatchSequentialPPO`.
"""

from mapograph.algos._advantages import gae, normalize
from mapograph.algos._algorithm import Algorithm
from mapograph.algos._config import AlgorithmConfig
from mapograph.algos._corrections import CORRECTIONS, Correction
from mapograph.algos._derived import DerivedPolicy, SamePolicy
from mapograph.algos._estimators import (
    ESTIMATORS,
    InteractionEstimator,
    Interdependence,
    PairwisePayoffEstimator,
    PooledAnova,
    PooledRewardAnova,
)
from mapograph.algos._masked_adam import AgentMaskedAdam
from mapograph.algos._ppo import BatchSequentialPPO
from mapograph.algos._presets import (
    ALGORITHMS,
    AlgorithmPreset,
    algorithms,
    get_algorithm,
    register_algorithm,
)
from mapograph.algos._rollout import Rollout
from mapograph.algos._schedules import (
    ORDERS,
    SCHEDULES,
    AgentByAgent,
    DAGSchedule,
    FixedPartition,
    GivenDAG,
    LearnedDAG,
    OrderRule,
    Plan,
    Schedule,
    ScheduleContext,
    ScheduleData,
    Simultaneous,
    a2po_scores,
    check_fixed_order,
)
from mapograph.algos._surrogate import clipped_surrogate

__all__ = [
    "ALGORITHMS",
    "CORRECTIONS",
    "ESTIMATORS",
    "ORDERS",
    "SCHEDULES",
    "AgentByAgent",
    "AgentMaskedAdam",
    "Algorithm",
    "AlgorithmConfig",
    "AlgorithmPreset",
    "BatchSequentialPPO",
    "Correction",
    "DAGSchedule",
    "DerivedPolicy",
    "FixedPartition",
    "GivenDAG",
    "InteractionEstimator",
    "Interdependence",
    "LearnedDAG",
    "OrderRule",
    "PairwisePayoffEstimator",
    "Plan",
    "PooledAnova",
    "PooledRewardAnova",
    "Rollout",
    "SamePolicy",
    "Schedule",
    "ScheduleContext",
    "ScheduleData",
    "Simultaneous",
    "a2po_scores",
    "algorithms",
    "check_fixed_order",
    "clipped_surrogate",
    "gae",
    "get_algorithm",
    "normalize",
    "register_algorithm",
]
