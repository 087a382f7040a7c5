"""Divergence guard: find non-finite values in nested states, rollouts and stats.

Training stops at the first non-finite loss, parameter, return or env output
with a :class:`~mapograph.DivergenceError` naming the iteration and the
quantity, before any checkpoint of the diverged state can be written.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from mapograph._errors import DivergenceError


def _float_tensors(tree: Any, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(tree, torch.Tensor):
        if tree.is_floating_point() or tree.is_complex():
            yield prefix, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from _float_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            yield from _float_tensors(value, f"{prefix}[{i}]")


def nonfinite_tensors(tree: Any, prefix: str = "") -> list[str]:
    """Names (dotted paths) of the floating tensors in ``tree`` holding NaN or infinity.

    One device synchronization when everything is finite (the common case).
    """
    named = list(_float_tensors(tree, prefix))
    if not named:
        return []
    flags = torch.stack([(~torch.isfinite(t)).any().cpu() for _, t in named])
    if not bool(flags.any()):
        return []
    return [name for (name, _), bad in zip(named, flags.tolist(), strict=True) if bad]


def nonfinite_scalars(row: dict[str, Any], keys: tuple[str, ...] | None = None) -> list[str]:
    """Keys of the float entries of ``row`` (all, or those in ``keys``) that are not finite."""
    return [
        k
        for k, v in row.items()
        if isinstance(v, float) and not math.isfinite(v) and (keys is None or k in keys)
    ]


def _names(names: list[str], limit: int = 3) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def divergence(
    iteration: int, quantity: str, names: list[str], checkpoint: Path | None = None
) -> DivergenceError:
    """The error of a run that diverged at ``iteration`` in ``quantity`` (``names``: where);
    ``checkpoint``: the run's last checkpoint, written before (``None``: there is none)."""
    if checkpoint is not None:
        what = (
            f"the last checkpoint, {checkpoint}, was written before and is kept (resume it "
            "with a lower lr: `mapograph resume RUN --lr ...`; check the env's outputs)"
        )
    else:
        what = (
            "no checkpoint of this run was written before (train again with a lower lr; "
            "check the env's outputs)"
        )
    return DivergenceError(
        f"training diverged at iteration {iteration}: non-finite {quantity} ({_names(names)}); "
        + what
    )
