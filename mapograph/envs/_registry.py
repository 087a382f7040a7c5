"""Environment registry: ``make("family:task", ...)`` and ``register(family, factory)``.

A factory is any callable ``factory(**kwargs) -> MultiAgentEnv``. ``make`` passes
``task=`` (the part after the colon, when there is one), ``num_envs=``, ``seed=``
and the user's keyword arguments. Built-in families are registered by dotted
path so optional backends are imported only when used.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from mapograph._errors import MapographError
from mapograph._registry import Registry
from mapograph._validation import (
    MAX_NUM_ENVS,
    plain_value,
    positive_int,
    require,
    seed_value,
)

EnvFactory = Callable[..., Any]

#: Env families by name: a factory, or ``"module:function"`` imported on first use.
ENV_FAMILIES: Registry[EnvFactory | str] = Registry("env family")
"""Env families by name (the part of an env id before the colon); ``register`` adds one."""
for _name, _path in {
    "coordination": "mapograph.envs._coordination:make_coordination",
    "continuous": "mapograph.envs._continuous:make_follow",
    "contextual": "mapograph.envs._contextual:make_contextual",
    "climbing": "mapograph.envs._contextual:make_climbing",
    "mpe": "mapograph.envs._pettingzoo:make_mpe",
    "pettingzoo": "mapograph.envs._pettingzoo:make_pettingzoo",
    "vmas": "mapograph.envs._vmas:make_vmas",
    "mamujoco": "mapograph.envs._mamujoco:make_mamujoco",
    "football": "mapograph.envs._football:make_football",
    "smax": "mapograph.envs._smax:make_smax",
    "smacv2": "mapograph.envs._smacv2:make_smacv2",
}.items():
    ENV_FAMILIES.register(_name, _path)


class UnknownEnvError(MapographError, ValueError):
    """The env id names no registered family."""


def register(name: str, factory: EnvFactory, *, overwrite: bool = False) -> None:
    """Register an environment family.

    Args:
        name: the family, the part of an env id before the colon (no colon inside).
        factory: ``factory(**kwargs) -> MultiAgentEnv``; it receives ``num_envs``,
            ``seed``, ``task`` (when the id has one) and whatever the user passed.
        overwrite: replace an existing family of that name instead of raising.
    """
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"env family name must be a non-empty string without ':', got {name!r}")
    if not callable(factory):
        raise ValueError(f"factory for env family {name!r} must be callable, got {factory!r}")
    ENV_FAMILIES.register(name, factory, overwrite=overwrite)


def families() -> list[str]:
    """Names of the registered environment families."""
    return ENV_FAMILIES.names()


def _resolve(name: str) -> EnvFactory:
    factory = ENV_FAMILIES.get(name)
    if isinstance(factory, str):
        module_name, attr = factory.split(":")
        factory = getattr(importlib.import_module(module_name), attr)
        ENV_FAMILIES.register(ENV_FAMILIES.canonical(name), factory, overwrite=True)
    return factory


def split_env_id(env_id: str) -> tuple[str, str | None]:
    """Split ``"family:task"`` into ``("family", "task")`` (task None when absent)."""
    if not isinstance(env_id, str) or not env_id:
        raise UnknownEnvError(
            f"env id must be a non-empty string like 'coordination:chain-6', got {env_id!r}"
        )
    family, sep, task = env_id.partition(":")
    return family, (task if sep else None)


def _check_copies_and_seed(num_envs: Any, seed: Any) -> tuple[int, int]:
    """``(num_envs, seed)`` as plain ints (numpy integers read as ints, as configs read them).

    Raises:
        ValueError: either is not an int (a bool is not), or is out of range.
    """
    num_envs, seed = plain_value(num_envs), plain_value(seed)
    require("num_envs", num_envs, positive_int(MAX_NUM_ENVS))
    require("seed", seed, seed_value)
    return num_envs, seed


def make(env_id: str, num_envs: int = 1, seed: int = 0, **kwargs: Any) -> Any:
    """Create a vectorized environment from its id.

    Args:
        env_id: ``"family:task"``, e.g. ``"coordination:chain-6"``, ``"mpe:simple_spread_v3"``,
            ``"vmas:balance"``; or a bare family name registered by the user.
        num_envs: number of env copies ``E`` stepped together (1 to 2**20).
        seed: seed of the copies (copy ``e`` is seeded deterministically from it).
        **kwargs: passed to the family's factory.

    Raises:
        UnknownEnvError: the family is not registered (the message lists known ones).
        ValueError: ``num_envs`` or ``seed`` is not an int in range, or the factory
            does not take one of ``kwargs``.
    """
    family, task = split_env_id(env_id)
    if family not in ENV_FAMILIES:
        raise UnknownEnvError(
            f"unknown env id {env_id!r}: no family {family!r}. "
            f"Known families: {', '.join(families())}"
        )
    num_envs, seed = _check_copies_and_seed(num_envs, seed)
    factory = _resolve(family)
    if task is not None:
        if "task" in kwargs:
            raise ValueError(
                f"env id {env_id!r} names its task ({task!r}); do not also pass "
                f"task={kwargs['task']!r}"
            )
        kwargs["task"] = task
    try:
        return factory(num_envs=num_envs, seed=seed, **kwargs)
    except TypeError as exc:
        error = _argument_error(env_id, kwargs, exc)
        if error is None:
            raise
        raise error from None


def _argument_error(env_id: str, kwargs: dict[str, Any], exc: TypeError) -> ValueError | None:
    """The one-line error for a factory's ``TypeError`` about the user's keyword arguments
    (one it does not take, or one the env id sets already); ``None`` for any other."""
    given = ", ".join(sorted(k for k in kwargs if k != "task")) or "none"
    if "unexpected keyword argument" in str(exc):
        return ValueError(f"env {env_id!r} got an argument it does not take ({given}): {exc}")
    twice = re.search(r"multiple values for (?:keyword )?argument '(\w+)'", str(exc))
    if twice is not None and twice.group(1) in kwargs:
        return ValueError(
            f"env {env_id!r} sets {twice.group(1)} itself (from its family and task): "
            f"do not pass it ({given})"
        )
    return None
