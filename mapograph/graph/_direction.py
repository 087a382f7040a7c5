"""Direction of dependent pairs: which agent of an interdependent pair goes in the earlier batch.

Rule (documented in docs/design-choices.md, "Direction of a dependent pair"):

1. the **skeleton** is the set of pairs whose strength has a z-score above
   ``z_threshold`` among all pairs;
2. **anchors** are the agents whose own (additive) effect on the team value is at
   least ``anchor_ratio`` times the largest one: their best action is pinned by
   their own term, not by a partner's action (the roots of a DAG game);
3. every agent's priority is its hop distance to the nearest anchor along the
   skeleton (agents in a component without an anchor: distance to that
   component's agent of largest own effect); ties go to the larger own effect.

A pair is directed from the agent of smaller distance to the other: information
flows outward from the agents that can decide alone, each agent following the
neighbours that are closer to such an agent. On a DAG game whose roots carry the
larger own terms this gives the true direction of every tree edge; edges
between agents at the same distance (possible in a DAG with several parents)
are decided by the own effect.
"""

from __future__ import annotations

import networkx as nx
import torch


def _check_strength(strength: torch.Tensor) -> int:
    """``N``; ValueError unless ``strength`` is a finite ``[N, N]`` tensor."""
    if strength.dim() != 2 or strength.shape[0] != strength.shape[1]:
        raise ValueError(f"strength must be [N, N], got shape {list(strength.shape)}")
    if not bool(torch.isfinite(strength).all()):
        raise ValueError("strength holds NaN or infinity")
    return strength.shape[0]


def skeleton_mask(strength: torch.Tensor, z_threshold: float = 1.0) -> torch.Tensor:
    """``[N, N]`` bool: pairs whose strength z-score (over off-diagonal entries) exceeds ``z_threshold``."""
    n = strength.shape[0]
    off = ~torch.eye(n, dtype=torch.bool, device=strength.device)
    if n < 2:  # no pair (a z-score over no values would warn and be NaN)
        return off
    sym = (strength + strength.t()) / 2
    values = sym[off]
    z = (sym - values.mean()) / (values.std(unbiased=False) + 1e-12)
    return (z > z_threshold) & off


def priority_order(
    strength: torch.Tensor,
    own_effect: torch.Tensor,
    z_threshold: float = 1.0,
    anchor_ratio: float = 0.5,
) -> list[int]:
    """Agents from first to last by the rule of the module docstring.

    Args:
        strength: ``[N, N]`` pairwise interdependence strengths (symmetrized here).
        own_effect: ``[N]`` each agent's own (additive) effect on the team value.
        z_threshold: skeleton threshold on the strengths' z-scores.
        anchor_ratio: an agent is an anchor when its own effect is at least this
            fraction of the largest.
    """
    n = _check_strength(strength)
    if own_effect.shape != (n,):
        raise ValueError(f"own_effect must have shape [{n}], got {list(own_effect.shape)}")
    if not bool(torch.isfinite(own_effect).all()):
        raise ValueError("own_effect holds NaN or infinity")
    if not 0 < anchor_ratio <= 1:
        raise ValueError(f"anchor_ratio must lie in (0, 1], got {anchor_ratio}")
    mask = skeleton_mask(strength, z_threshold).cpu()
    own = own_effect.detach().cpu().tolist()
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(mask.nonzero().tolist())
    top = max(own) if own else 0.0
    distance: dict[int, int] = {}
    for component in nx.connected_components(graph):
        anchors = [v for v in component if own[v] >= anchor_ratio * top]
        if not anchors:
            anchors = [max(component, key=lambda v: own[v])]
        lengths = nx.multi_source_dijkstra_path_length(graph, anchors, weight=None)
        distance.update(lengths)
    return sorted(range(n), key=lambda v: (distance[v], -own[v], v))


def orient(strength: torch.Tensor, order: list[int], z_threshold: float = 1.0) -> nx.DiGraph:
    """The skeleton of ``strength`` directed forward in ``order`` (a DAG on ``0..N-1``)."""
    n = _check_strength(strength)
    if sorted(order) != list(range(n)):
        raise ValueError(f"order must be a permutation of 0..{n - 1}, got {list(order)}")
    rank = {v: k for k, v in enumerate(order)}
    dag = nx.DiGraph()
    dag.add_nodes_from(range(n))
    for i, j in skeleton_mask(strength, z_threshold).nonzero().tolist():
        if rank[i] < rank[j]:
            dag.add_edge(i, j)
    return dag
