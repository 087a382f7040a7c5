"""Ordering rules for the one-agent-per-batch presets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mapograph.partition._input import check_positive_int

GeneratorLike = torch.Generator | np.random.Generator | int | None


def _torch_generator(generator: GeneratorLike) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, np.random.Generator):
        return torch.Generator().manual_seed(int(generator.integers(0, 2**62)))
    if generator is None:
        return torch.Generator().manual_seed(int(torch.randint(0, 2**62, ()).item()))
    if isinstance(generator, int):
        return torch.Generator().manual_seed(generator)
    raise ValueError(
        f"generator must be a torch.Generator, numpy Generator, int seed or None, got {generator!r}"
    )


def random_order(n: int, generator: GeneratorLike = None) -> list[int]:
    """A uniformly random permutation of ``0..n-1`` (HAPPO's order).

    Args:
        n: number of agents.
        generator: ``torch.Generator`` (advanced in place), numpy ``Generator``, int seed or None.
    """
    n = check_positive_int("n", n)
    gen = _torch_generator(generator)
    return torch.randperm(n, generator=gen, device=gen.device).tolist()


def semi_greedy_order(
    scores: Sequence[float] | torch.Tensor, generator: GeneratorLike = None
) -> list[int]:
    """A2PO's semi-greedy order: alternately the highest remaining score and a random remaining agent.

    Positions 1, 3, 5, ... take the agent with the highest remaining score (ties:
    lowest id); positions 2, 4, ... take a uniformly random remaining agent.

    Args:
        scores: one score per agent (e.g. ``|A / V|``).
        generator: randomness of the random picks.
    """
    values = torch.as_tensor(scores, dtype=torch.float64).flatten()
    if values.numel() == 0:
        raise ValueError("scores must hold one value per agent, got none")
    if not torch.isfinite(values).all():
        raise ValueError("scores must be finite")
    gen = _torch_generator(generator)
    remaining = list(range(values.numel()))
    order: list[int] = []
    greedy = True
    while remaining:
        if greedy:
            pick = max(remaining, key=lambda a: (float(values[a]), -a))
        else:
            pick = remaining[
                int(torch.randint(len(remaining), (), generator=gen, device=gen.device))
            ]
        order.append(pick)
        remaining.remove(pick)
        greedy = not greedy
    return order
