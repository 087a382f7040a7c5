"""DAG -> ordered batches of agents.

Every partitioner takes a ``networkx.DiGraph`` on nodes ``0..n-1`` or an
``edge_index`` ``[2, E]`` with ``num_nodes=``, and returns a list of batches (lists
of agent ids) in update order: every agent exactly once, no empty batch, and
no edge pointing from a later batch to an earlier one. Bad input (a cycle,
nodes that are not ``0..n-1``, ``max_batch_size < 1``, ``k < 1``) raises ValueError.
"""

from mapograph.partition._bounded import bounded
from mapograph.partition._generations import generations
from mapograph.partition._input import as_dag
from mapograph.partition._k_batches import inside_weight, k_batches
from mapograph.partition._orders import random_order, semi_greedy_order
from mapograph.partition._resolver import (
    PARTITIONERS,
    get_partitioner,
    partitioners,
    register_partitioner,
)
from mapograph.partition._simple import agent_by_agent, simultaneous
from mapograph.partition._validate import validate_partition

__all__ = [
    "PARTITIONERS",
    "agent_by_agent",
    "as_dag",
    "bounded",
    "generations",
    "get_partitioner",
    "inside_weight",
    "k_batches",
    "partitioners",
    "random_order",
    "register_partitioner",
    "semi_greedy_order",
    "simultaneous",
    "validate_partition",
]
