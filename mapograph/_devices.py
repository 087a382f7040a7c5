"""Devices: a name (or ``torch.device``) checked against what this machine has."""

from __future__ import annotations

import torch


def resolve_device(name: str | torch.device) -> torch.device:
    """``torch.device(name)``, refused with a clear error when this machine lacks it.

    Raises:
        ValueError: ``name`` is no device torch knows, or this machine cannot use it.
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"device {name!r} is unknown: use a device name such as 'cpu', 'cuda' or 'cuda:1'"
        ) from None
    if device.type not in ("cpu", "cuda"):  # mps, xpu...: checked through torch's accelerator
        module = getattr(torch, device.type, None)
        available = getattr(module, "is_available", None)
        if available is None or not available():
            raise ValueError(
                f"device {name!r} is not available: mapograph runs on 'cpu' or 'cuda' "
                f"(torch has no usable {device.type!r} backend here)"
            )
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} is not available: torch sees no CUDA GPU here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {name!r} does not exist: torch sees {torch.cuda.device_count()} CUDA GPU(s)"
            )
    return device
