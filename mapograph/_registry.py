"""One registry per kind of name (algorithms, schedules, orders, partitioners, corrections...).

In the style of PyTorch Geometric's resolvers (``torch_geometric.nn.resolver``):
lookups ignore case, ``-``, ``_`` and spaces (``"K-Batches"`` finds ``k_batches``);
an unknown name raises a ``ValueError`` that lists the valid choices; and
:meth:`Registry.resolve` passes constructor keyword arguments through. The CLI's
choices, the config validation, the Optuna search spaces and the docs tables
all read the registries, so a name is listed in exactly one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def normalize_name(name: str) -> str:
    """The lookup key of ``name``: lower case without ``-``, ``_`` and spaces."""
    return name.lower().replace("-", "").replace("_", "").replace(" ", "")


class Registry(Generic[T]):
    """Names -> objects of one kind.

    Args:
        kind: what the registry holds, in the singular (used in error messages),
            e.g. ``"algorithm"`` or ``"partitioner"``.
        check: what an entry must be: ``check(obj)`` returns ``None`` for a valid entry,
            else what is wrong with it (registering it then raises ValueError at once,
            not when the name is first used in training).

    Example::

        SCHEDULES = Registry("schedule")

        @SCHEDULES.register("reverse")
        class Reverse(Schedule): ...

        SCHEDULES.resolve("Reverse", n_agents=4)  # -> Reverse(n_agents=4)
    """

    def __init__(self, kind: str, check: Callable[[Any], str | None] | None = None) -> None:
        self.kind = kind
        self.check = check
        self._entries: dict[str, tuple[str, T]] = {}

    def register(
        self, name: str, obj: T | None = None, *, overwrite: bool = False
    ) -> T | Callable[[T], T]:
        """Add ``obj`` under ``name``; without ``obj``, return a decorator that does.

        Raises:
            ValueError: ``name`` is empty or already taken (unless ``overwrite``).
        """
        if not isinstance(name, str) or not normalize_name(name):
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")

        def add(item: T) -> T:
            problem = self.check(item) if self.check is not None else None
            if problem:
                raise ValueError(f"{self.kind} {name!r} cannot be registered: {problem}")
            key = normalize_name(name)
            if key in self._entries and not overwrite:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered (pass overwrite=True to replace it)"
                )
            self._entries[key] = (name, item)
            return item

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (KeyError-free: unknown names raise the usual ValueError)."""
        self.get(name)
        del self._entries[normalize_name(name)]

    def get(self, name: str) -> T:
        """The object registered under ``name`` (case- and separator-insensitive).

        Raises:
            ValueError: unknown name; the message lists the valid choices.
        """
        if isinstance(name, str):
            entry = self._entries.get(normalize_name(name))
            if entry is not None:
                return entry[1]
        raise ValueError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}")

    def canonical(self, name: str) -> str:
        """The registered spelling of ``name`` (``"K-Batches"`` -> ``"k_batches"``)."""
        self.get(name)
        return self._entries[normalize_name(name)][0]

    def resolve(self, query: str | Any, *args: Any, **kwargs: Any) -> Any:
        """``query`` itself unless it is a name; for a name, call its entry with the arguments.

        A class entry gives an instance, a factory function its result.
        """
        if not isinstance(query, str):
            return query
        return self.get(query)(*args, **kwargs)  # type: ignore[operator]

    def names(self) -> list[str]:
        """The registered names, in registration order (stable across runs and workers)."""
        return [name for name, _ in self._entries.values()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and normalize_name(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"


def instance_of(cls: type) -> Callable[[Any], str | None]:
    """A ``check`` for :class:`Registry`: entries must be instances of ``cls``."""
    return lambda obj: (
        None if isinstance(obj, cls) else f"expected an instance of {cls.__name__}, got {obj!r}"
    )


def subclass_of(cls: type) -> Callable[[Any], str | None]:
    """A ``check`` for :class:`Registry`: entries must be subclasses of ``cls``."""
    return lambda obj: (
        None
        if isinstance(obj, type) and issubclass(obj, cls)
        else f"expected a subclass of {cls.__name__}, got {obj!r}"
    )


def is_callable(obj: Any) -> str | None:
    """A ``check`` for :class:`Registry`: entries must be callable."""
    return None if callable(obj) else f"expected a callable, got {obj!r}"
