"""The :class:`MultiAgentEnv` protocol and a base class with shared checks."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

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
    """

    spec: EnvSpec
    num_envs: int
    device: torch.device = torch.device("cpu")

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
            ValueError: wrong shape or dtype, an action index out of range, or a
                continuous action outside its agent's box.
        """
        return check_actions(actions, self.spec, self.num_envs, self.device)

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
