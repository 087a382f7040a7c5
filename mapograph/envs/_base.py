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
        """Apply ``actions`` (LongTensor ``[E, N]``) to every copy."""
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (worker processes, simulators). Safe to call twice."""

    def check_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Validate ``actions`` and return them as a LongTensor on this env's device.

        Raises:
            ValueError: wrong shape, non-integer dtype or an action index out of range.
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
