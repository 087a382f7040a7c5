"""Field checks for config dataclasses: each field names its rule in ``metadata["check"]``.

A rule is a function ``rule(value) -> str | None`` that returns what is wrong
(``None``: the value is fine). :func:`validate_fields` raises one ``ValueError``
naming the class, the field and the offending value, so the CLI prints one line.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

Rule = Callable[[Any], "str | None"]

#: Sizes above this are refused before anything is allocated (a typo, not a model).
MAX_SIZE = 1 << 16

#: The most env copies a config or ``make`` accepts (more is a typo, refused before allocating).
MAX_NUM_ENVS = 1 << 20

#: The largest seed: torch's generators are seeded with ``seed * 1000 + i`` (they take
#: at most ``2**64 - 1``), and ``2**53 - 1`` is the largest int a JSON float holds exactly.
MAX_SEED = 2**53 - 1

#: Every tensor of a run is float32: a number outside this range overflows (or is 0) there.
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 1.1754943508222875e-38  # the smallest positive normal float32

#: Longest ``repr`` of a refused value an error message shows.
MAX_REPR = 120


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive_int(limit: int | None = None) -> Rule:
    """A positive int (``bool`` is not an int here), at most ``limit`` when given."""

    def rule(value: Any) -> str | None:
        if not _is_int(value) or value < 1:
            return "must be a positive int"
        if limit is not None and value > limit:
            return f"must be at most {limit}"
        return None

    return rule


def non_negative_int(value: Any) -> str | None:
    """An int >= 0."""
    return None if _is_int(value) and value >= 0 else "must be an int >= 0"


def seed_value(value: Any) -> str | None:
    """An int in ``[0, MAX_SEED]``."""
    if not _is_int(value) or value < 0:
        return "must be a non-negative int"
    if value > MAX_SEED:
        return f"must be at most {MAX_SEED} (2**53 - 1)"
    return None


def any_int(value: Any) -> str | None:
    """Any int (not a bool, not a float)."""
    return None if _is_int(value) else "must be an int"


def float32_range(value: float, zero: bool = False) -> str | None:
    """A finite number that float32 holds: at most ``FLOAT32_MAX`` in size and, unless it
    is ``0`` (where ``zero`` allows it), at least ``FLOAT32_TINY``."""
    if abs(value) > FLOAT32_MAX:
        return "must be at most 3.4e38 in size (the largest float32)"
    if 0 < abs(value) < FLOAT32_TINY:
        least = "0 or at least" if zero else "at least"
        return f"must be {least} 1.2e-38 in size (the smallest normal float32)"
    return None


def positive_float(value: Any) -> str | None:
    """A finite number > 0 (within :func:`float32_range`)."""
    if not (_is_real(value) and math.isfinite(value) and value > 0):
        return "must be a finite number > 0"
    return float32_range(value)


def non_negative_float(value: Any) -> str | None:
    """A finite number >= 0 (within :func:`float32_range`)."""
    if not (_is_real(value) and math.isfinite(value) and value >= 0):
        return "must be a finite number >= 0"
    return float32_range(value, zero=True)


def unit_interval(value: Any) -> str | None:
    """A number in [0, 1]."""
    return None if _is_real(value) and 0.0 <= value <= 1.0 else "must lie in [0, 1]"


def half_open_unit_interval(value: Any) -> str | None:
    """A number in [0, 1)."""
    return None if _is_real(value) and 0.0 <= value < 1.0 else "must lie in [0, 1)"


def boolean(value: Any) -> str | None:
    """``True`` or ``False`` (not a string, not a number)."""
    return None if isinstance(value, bool) else "must be true or false"


def optional(rule: Rule) -> Rule:
    """``None`` or what ``rule`` accepts."""

    def check(value: Any) -> str | None:
        if value is None:
            return None
        problem = rule(value)
        return None if problem is None else f"{problem} (or null)"

    return check


def registered(*registries: Any) -> Rule:
    """A name known to one of ``registries`` (read at check time: later registrations count)."""

    def rule(value: Any) -> str | None:
        if isinstance(value, str) and any(value in registry for registry in registries):
            return None
        choices = [name for registry in registries for name in registry.names()]
        return f"must be one of {', '.join(choices)}"

    return rule


def int_list(value: Any) -> str | None:
    """A list of ints."""
    if isinstance(value, (list, tuple)) and all(_is_int(v) for v in value):
        return None
    return "must be a list of ints"


def int_lists(length: int | None = None) -> Rule:
    """A list of lists of ints (each of ``length`` items when given)."""

    def rule(value: Any) -> str | None:
        if isinstance(value, (list, tuple)) and all(
            int_list(item) is None and (length is None or len(item) == length) for item in value
        ):
            return None
        what = f"[{', '.join(['int'] * length)}] pairs" if length else "lists of ints"
        return f"must be a list of {what}"

    return rule


def check(rule: Rule) -> dict[str, Rule]:
    """``field(metadata=check(rule))`` attaches ``rule`` to a dataclass field."""
    return {"check": rule}


def validate_fields(obj: Any) -> None:
    """Run every field's rule; raise ValueError naming the first invalid field."""
    for f in dataclasses.fields(obj):
        rule = f.metadata.get("check")
        if rule is None:
            continue
        value = getattr(obj, f.name)
        if _holds_numpy(value):
            value = plain_value(value)
            object.__setattr__(obj, f.name, value)
        require(f"{type(obj).__name__}.{f.name}", value, rule)


def require(name: str, value: Any, rule: Rule) -> None:
    """Raise ``ValueError("<name> <problem>, got <value>")`` when ``rule`` refuses ``value``
    (arguments outside a dataclass: env constructors, ``make``)."""
    problem = rule(value)
    if problem is not None:
        raise ValueError(f"{name} {problem}, got {short_repr(value)}")


def _holds_numpy(value: Any) -> bool:
    if type(value).__module__.split(".")[0] == "numpy":
        return True
    return isinstance(value, (list, tuple)) and any(_holds_numpy(item) for item in value)


def plain_value(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into plain Python values (``.item()``,
    ``.tolist()``, inside lists and tuples too): configs go to YAML and to checkpoints,
    which a safe load reads only with plain values, and ``np.float64`` is a float that
    would pass every rule and fail there, after the training."""
    if isinstance(value, (list, tuple)):
        return type(value)(plain_value(item) for item in value)
    if type(value).__module__.split(".")[0] == "numpy" and hasattr(value, "tolist"):
        return value.tolist()  # np.generic and np.ndarray alike
    return value


def short_repr(value: Any) -> str:
    """``repr(value)`` on one line, cut to :data:`MAX_REPR` characters (a numpy array's
    repr spans lines; a long list would flood the one-line error)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."
