"""How each preset chooses the ordered batches of an iteration (without a learned DAG)."""

from __future__ import annotations

import torch

from mapograph import partition as P
from mapograph.algos._presets import AlgorithmPreset
from mapograph.algos._rollout import Rollout


def a2po_scores(rollout: Rollout, advantages: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Per-agent priority ``[N]`` for A2PO's semi-greedy order.

    ``score_i = E[|A| * (1 - pi_i(a_i | o_i))] / (E[|V|] + 1e-8)``: the size of the
    advantage relative to the value (A2PO's ``|A / V|``), weighted by how much
    room agent ``i``'s policy has left to move on the actions taken (with a team
    reward the advantage alone is the same for every agent).
    """
    room = 1.0 - rollout.log_probs.exp()  # [T, E, N]
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


def preset_batches(
    preset: AlgorithmPreset,
    n_agents: int,
    generator: torch.Generator,
    fixed_partition: list[list[int]] | None = None,
    fixed_order: list[int] | None = None,
    scores: torch.Tensor | None = None,
) -> list[list[int]]:
    """Ordered batches for presets whose partition does not come from a learned DAG."""
    if preset.partition == "fixed":
        if fixed_partition is None:
            raise ValueError("partition='fixed' needs fixed_partition")
        batches = [list(map(int, b)) for b in fixed_partition]
        P.validate_partition(batches, n_agents)
        return batches
    if preset.partition == "simultaneous":
        return P.simultaneous(n_agents)
    if preset.partition == "agent_by_agent":
        if preset.order == "random":
            order = P.random_order(n_agents, generator)
        elif preset.order == "semi_greedy":
            if scores is None:
                raise ValueError("order='semi_greedy' needs per-agent scores")
            order = P.semi_greedy_order(scores, generator)
        elif preset.order == "fixed":
            if fixed_order is None:
                raise ValueError("order='fixed' needs fixed_order")
            order = check_fixed_order(fixed_order, n_agents)
        else:
            order = list(range(n_agents))
        return P.agent_by_agent(order)
    raise ValueError(
        f"partition {preset.partition!r} needs a DAG: use algo='b2mapo' (learned DAG) "
        "or partition='fixed' with fixed_partition"
    )
