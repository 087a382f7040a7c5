"""Policies: per-agent actors with stacked parameters, the DAG-conditioned actor, the critic."""

from mapograph.policies._actor import Actor, sample_categorical
from mapograph.policies._critic import CentralCritic
from mapograph.policies._dag_actor import DAGActor
from mapograph.policies._distributions import (
    MASKED_LOGIT,
    MaskedCategorical,
    detached,
    masked_logits,
    select,
)
from mapograph.policies._gaussian import MaskedDiagGaussian, sample_gaussian, to_box
from mapograph.policies._readout import ReadoutPolicy
from mapograph.policies._recurrent import RecurrentCritic, RecurrentNet, StackedGRU
from mapograph.policies._stacked import (
    ACTIVATIONS,
    SharedMLP,
    SharedTorsoMLP,
    StackedLinear,
    StackedMLP,
    input_norm,
)
from mapograph.policies._value_norm import ValueNormalizer

__all__ = [
    "ACTIVATIONS",
    "Actor",
    "CentralCritic",
    "DAGActor",
    "MASKED_LOGIT",
    "MaskedCategorical",
    "MaskedDiagGaussian",
    "ReadoutPolicy",
    "RecurrentCritic",
    "RecurrentNet",
    "StackedGRU",
    "SharedMLP",
    "SharedTorsoMLP",
    "StackedLinear",
    "StackedMLP",
    "ValueNormalizer",
    "input_norm",
    "masked_logits",
    "sample_categorical",
    "sample_gaussian",
    "select",
    "detached",
    "to_box",
]
