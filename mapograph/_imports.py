"""Lazy imports of optional backends (the habit of ``optuna/_imports.py``).

Optional packages are imported at use time, never at ``import mapograph``, and a
missing one fails with a message that names the extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from mapograph._errors import OptionalDependencyError


def require(module: str, extra: str, hint: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`OptionalDependencyError` naming ``extra``.

    Args:
        module: dotted module name, e.g. ``"vmas"``.
        extra: the mapograph extra that installs it, e.g. ``"vmas"``.
        hint: more instructions (system packages, binaries) appended to the message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the machine
        message = (
            f"'{module}' is needed here but could not be imported ({exc}). "
            f'Install it with: pip install "mapograph[{extra}]"'
        )
        if hint:
            message += f". {hint}"
        raise OptionalDependencyError(message) from exc
