"""One batch-sequential PPO optimizer and the presets that configure it.

MAPPO (one batch), HAPPO (random order, one agent per batch, factor correction),
A2PO (semi-greedy order, one agent per batch, trace correction) and B2MAPO
(learned DAG -> partitioner -> batches) share :class:`BatchSequentialPPO`.
"""

from mapograph.algos._advantages import gae, normalize
from mapograph.algos._derived import DerivedPolicy
from mapograph.algos._masked_adam import AgentMaskedAdam
from mapograph.algos._ppo import BatchSequentialPPO, PPOHyperparameters
from mapograph.algos._presets import (
    CORRECTIONS,
    ORDERS,
    PARTITIONS,
    AlgorithmPreset,
    algorithms,
    get_algorithm,
    register_algorithm,
)
from mapograph.algos._rollout import Rollout

__all__ = [
    "CORRECTIONS",
    "ORDERS",
    "PARTITIONS",
    "AgentMaskedAdam",
    "AlgorithmPreset",
    "BatchSequentialPPO",
    "DerivedPolicy",
    "PPOHyperparameters",
    "Rollout",
    "algorithms",
    "gae",
    "get_algorithm",
    "normalize",
    "register_algorithm",
]
