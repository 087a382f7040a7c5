"""The two extreme partitions: one agent per batch, and all agents in one batch."""

from __future__ import annotations

import operator
from collections.abc import Sequence

from mapograph.partition._input import check_positive_int


def agent_by_agent(order: Sequence[int]) -> list[list[int]]:
    """One agent per batch in the given order: ``[[a], [b], ...]`` (HAPPO, A2PO).

    Raises:
        ValueError: ``order`` is not a permutation of ``0..n-1``.
    """
    try:
        if isinstance(order, (str, bytes)):
            raise TypeError
        order = [operator.index(a) for a in order]  # ints (numpy or 0-d torch too), no floats
    except TypeError:
        raise ValueError(f"order must be a sequence of int agent ids, got {order!r}") from None
    if sorted(order) != list(range(len(order))):
        raise ValueError(f"order must be a permutation of 0..{len(order) - 1}, got {order}")
    return [[a] for a in order]


def simultaneous(n_agents: int) -> list[list[int]]:
    """All agents in one batch: ``[[0, ..., n-1]]`` (MAPPO)."""
    n_agents = check_positive_int("n_agents", n_agents)
    return [list(range(n_agents))]
