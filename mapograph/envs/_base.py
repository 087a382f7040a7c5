"""The :class:`MultiAgentEnv` protocol and a base class with shared checks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch

from mapograph.envs._types import EnvSpec, TimeStep


@runtime_checkable
class MultiAgentEnvProtocol(Protocol):
    """Anything with this interface works with :class:`mapograph.Trainer`.

    Subclassing :class:`MultiAgentEnv` is a convenience, not a requirement.
    """

    spec: EnvSpec
    num_envs: int

    def reset(self) -> TimeStep: ...

    def step(self, actions: torch.Tensor) -> TimeStep: ...

    def close(self) -> None: ...


class MultiAgentEnv:
    """Base class of vectorized cooperative multi-agent environments.

    A subclass sets ``self.spec`` and ``self.num_envs`` and implements
    :meth:`reset` and :meth:`step`. Every copy that finishes an episode resets
    itself inside :meth:`step` (``TimeStep.done`` marks it).

    The base class remembers the ``avail_actions`` of the last time step its
    ``reset``/``step`` returned, and :meth:`check_actions` (which ``step`` calls
    first) refuses an integer action the mask does not allow. Set
    ``env.check_avail = False`` to skip that check (one gather per step).
    """

    spec: EnvSpec
    num_envs: int
    device: torch.device = torch.device("cpu")
    #: refuse unavailable actions in :meth:`check_actions` (opt out with ``False``)
    check_avail: bool = True
    #: ``True`` when ``reset``/``step`` return new tensors on every call (never a buffer
    #: they write again later) and never modify the actions they are given: the
    #: collector then stores them without its defensive copies (built-in envs set it)
    fresh_outputs: bool = False
    _last_avail: torch.Tensor | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("reset", "step"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_records_avail", False):
                setattr(cls, name, _recording_avail(method))

    def reset(self) -> TimeStep:
        """Reset every copy and return the first :class:`TimeStep` (reward 0, done False)."""
        raise NotImplementedError

    def step(self, actions: torch.Tensor) -> TimeStep:
        """Apply ``actions`` (LongTensor ``[E, N]``, or float ``[E, N, d]`` for Box actions)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (worker processes, simulators). Safe to call twice."""

    def check_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Validate ``actions`` and return them on this env's device.

        Discrete envs: a LongTensor ``[E, N]``; Box envs: float32 ``[E, N, d]``.

        Raises:
            ValueError: wrong shape or dtype, an action index out of range, a
                continuous action outside its agent's box, or (unless ``check_avail`` is
                ``False``) a discrete action the last ``avail_actions`` did not allow.
        """
        actions = check_actions(actions, self.spec, self.num_envs, self.device)
        if self.check_avail and self._last_avail is not None:
            check_available(actions, self._last_avail)
        return actions

    def __enter__(self) -> MultiAgentEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_actions(
    actions: torch.Tensor, spec: EnvSpec, num_envs: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Validate a joint action tensor for an env with ``spec`` and ``num_envs`` copies."""
    if not isinstance(actions, torch.Tensor):
        actions = torch.as_tensor(actions)
    if spec.continuous:
        return _check_box_actions(actions, spec, num_envs, device)
    expected = (num_envs, spec.n_agents)
    if tuple(actions.shape) != expected:
        raise ValueError(
            f"actions must have shape [num_envs, n_agents] = {list(expected)}, "
            f"got {list(actions.shape)}"
        )
    if actions.dtype.is_floating_point or actions.dtype == torch.bool:
        raise ValueError(f"actions must be an integer tensor, got dtype {actions.dtype}")
    actions = actions.to(device=device, dtype=torch.long)
    if actions.numel() and (int(actions.min()) < 0 or int(actions.max()) >= spec.n_actions):
        raise ValueError(
            f"actions must lie in [0, {spec.n_actions - 1}], got values in "
            f"[{int(actions.min())}, {int(actions.max())}]"
        )
    return actions


def _check_box_actions(
    actions: torch.Tensor, spec: EnvSpec, num_envs: int, device: torch.device | str
) -> torch.Tensor:
    expected = (num_envs, spec.n_agents, spec.n_actions)
    if tuple(actions.shape) != expected:
        raise ValueError(
            f"continuous actions must have shape [num_envs, n_agents, action_dim] = "
            f"{list(expected)}, got {list(actions.shape)}"
        )
    if not actions.dtype.is_floating_point:
        raise ValueError(f"continuous actions must be a float tensor, got dtype {actions.dtype}")
    actions = actions.to(device=device, dtype=torch.float32)
    low, high = (b.to(device) for b in spec.action_bounds())
    mask = spec.action_mask().to(device)
    outside = ((actions < low) | (actions > high) | torch.isnan(actions)) & mask
    if bool(outside.any()):
        e, i, k = (int(v) for v in outside.nonzero()[0])
        raise ValueError(
            f"continuous action of env copy {e}, agent {i}, dimension {k} is "
            f"{float(actions[e, i, k])}, outside its box [{float(low[i, k])}, {float(high[i, k])}]"
        )
    return actions


def check_available(actions: torch.Tensor, avail: torch.Tensor) -> None:
    """Raise ValueError naming the first (copy, agent, action) that ``avail`` does not allow.

    ``actions``: LongTensor ``[E, N]``; ``avail``: bool ``[E, N, n_actions]``.
    """
    if actions.is_floating_point():
        return  # continuous actions have no availability mask
    avail = avail.to(actions.device)
    if avail.shape[:2] != actions.shape or avail.dim() != 3:
        return  # a mask of another layout (e.g. continuous actions): nothing to compare
    allowed = avail.bool().gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    if bool(allowed.all()):
        return
    e, n = (int(i) for i in (~allowed).nonzero()[0])
    raise ValueError(
        f"action {int(actions[e, n])} of agent {n} in env copy {e} is not available "
        "(avail_actions is False there); choose among the available actions, or set "
        "env.check_avail = False to skip this check"
    )


def _recording_avail(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``reset``/``step`` so the env remembers the mask it returned."""

    @functools.wraps(method)
    def wrapper(self: MultiAgentEnv, *args: Any, **kwargs: Any) -> Any:
        ts = method(self, *args, **kwargs)
        avail = getattr(ts, "avail_actions", None)
        self._last_avail = avail if isinstance(avail, torch.Tensor) else None
        return ts

    wrapper._records_avail = True  # type: ignore[attr-defined]
    return wrapper
