"""Agents as nodes of a learned interdependence graph (PyTorch Geometric inside).

:class:`DAGGenerator` maps per-agent features to a :class:`DAGDistribution`
(acyclic by construction); :class:`DAGCritic` values the situation for the
generator's PPO; :func:`agent_graph`, :func:`to_networkx` and
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
from mapograph.graph._distribution import DAGDistribution, DAGSample
from mapograph.graph._encoder import AgentAttentionEncoder
from mapograph.graph._generator import DAGGenerator

__all__ = [
    "AgentAttentionEncoder",
    "DAGCritic",
    "DAGDistribution",
    "DAGGenerator",
    "DAGSample",
    "agent_graph",
    "complete_edge_index",
    "from_networkx",
    "single_graph",
    "to_networkx",
    "top_k_candidates",
]
