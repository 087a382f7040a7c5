"""Helpers shared by adapters: stacking per-agent arrays of unequal sizes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def pad_stack(arrays: Sequence[np.ndarray | torch.Tensor], width: int) -> torch.Tensor:
    """Stack 1-D (or ``[E, d_i]``) per-agent arrays on a new agent axis, zero-padding to ``width``.

    Returns ``[N, width]`` (or ``[E, N, width]`` for batched inputs) float32.
    """
    tensors = [
        torch.as_tensor(
            np.asarray(a) if not isinstance(a, torch.Tensor) else a, dtype=torch.float32
        )
        for a in arrays
    ]
    lead = tensors[0].shape[:-1]
    out = torch.zeros(*lead, len(tensors), width)
    for i, t in enumerate(
        tensors
    ):  # loop over agents of a non-vectorized backend, at conversion only
        out[..., i, : t.shape[-1]] = t
    return out
