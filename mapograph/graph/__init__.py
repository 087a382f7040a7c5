"""Agents as nodes of a learned interdependence graph (PyTorch Geometric inside).

:class:`DAGGenerator` maps per-agent features to a :class:`DAGDistribution`
(acyclic by construction); :class:`DAGCritic` values the situation for the
generator's PPO; :class:`PairwisePayoffCritic` estimates which pairs interact
given what they observe and :func:`priority_order` which of a pair goes first;
:func:`agent_graph`, :func:`to_networkx` and
:func:`from_networkx` convert between tensors, PyG batches and networkx.
"""

from mapograph.graph._agent_graph import (
    agent_graph,
    complete_edge_index,
    single_graph,
    top_k_candidates,
)
from mapograph.graph._convert import from_networkx, to_networkx
from mapograph.graph._critic import DAGCritic
from mapograph.graph._direction import orient, priority_order, skeleton_mask
from mapograph.graph._distribution import DAGDistribution, DAGSample
from mapograph.graph._encoder import AgentAttentionEncoder
from mapograph.graph._generator import DAGGenerator
from mapograph.graph._payoff import PairPayoff, PairwisePayoffCritic, action_vectors

__all__ = [
    "AgentAttentionEncoder",
    "DAGCritic",
    "DAGDistribution",
    "DAGGenerator",
    "DAGSample",
    "PairPayoff",
    "PairwisePayoffCritic",
    "action_vectors",
    "agent_graph",
    "complete_edge_index",
    "from_networkx",
    "orient",
    "priority_order",
    "single_graph",
    "skeleton_mask",
    "to_networkx",
    "top_k_candidates",
]
