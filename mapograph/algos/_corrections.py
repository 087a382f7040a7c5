"""How batch k's objective accounts for the batches already updated this iteration.

Let ``rho = clip(prod_{i in batches 1..k-1} pi_i^new(a_i) / pi_i^old(a_i))`` per sample.

- ``none``: the plain normalized advantage (MAPPO, and an ablation of the others);
- ``factor``: the normalized advantage times ``rho`` (HAPPO's ``M`` in Kuba et al. 2022);
- ``trace``: GAE recomputed with ``rho`` as an off-policy trace,
  ``A_t = rho_t (delta_t + gamma lambda A_{t+1})`` (A2PO, Wang et al. 2023);
- ``both``: the trace-corrected advantage, normalized, times ``rho``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from mapograph._registry import Registry, instance_of
from mapograph.algos._advantages import normalize


@dataclass(frozen=True)
class Correction:
    """A correction rule (see the module docstring).

    Attributes:
        name: registry name.
        trace: recompute the advantage with ``rho`` as an off-policy trace.
        factor: multiply the normalized advantage by ``rho``.
    """

    name: str
    trace: bool = False
    factor: bool = False

    def target(
        self,
        advantages: torch.Tensor,
        rho: torch.Tensor | None,
        recompute: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """The surrogate's advantage ``[T, E]`` for the next batch.

        Args:
            advantages: plain GAE advantages ``[T, E]``.
            rho: the clipped ratio product of the earlier batches (``None`` for the first batch).
            recompute: ``recompute(trace) -> advantages`` (GAE with a trace).
        """
        if rho is None or not (self.trace or self.factor):
            return normalize(advantages)
        target = normalize(recompute(rho) if self.trace else advantages)
        return target * rho if self.factor else target


#: Correction rules by name.
CORRECTIONS: Registry[Correction] = Registry("correction", instance_of(Correction))
"""Corrections for earlier batches by name (``none``, ``factor``, ``trace``, ``both``)."""
for _correction in (
    Correction("none"),
    Correction("factor", factor=True),
    Correction("trace", trace=True),
    Correction("both", trace=True, factor=True),
):
    CORRECTIONS.register(_correction.name, _correction)
