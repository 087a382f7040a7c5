"""Data types shared by every environment: :class:`EnvSpec` and :class:`TimeStep`."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
from gymnasium import spaces


@dataclass(frozen=True)
class EnvSpec:
    """Static description of a vectorized multi-agent environment.

    Attributes:
        n_agents: number of controlled agents ``N``.
        obs_dim: size of one agent's (padded) observation vector.
        state_dim: size of the global state vector given to the centralized critic.
        n_actions: discrete envs: number of actions per agent (unavailable ones are
            masked); continuous envs: the padded action size ``d`` (the largest agent's).
        episode_limit: maximum number of steps of one episode.
        action_spaces: each agent's own action space, a ``gymnasium.spaces.Discrete``
            or a one-dimensional ``gymnasium.spaces.Box`` (all of one kind). ``None``
            (the default) means ``Discrete(n_actions)`` for every agent.

    Padding: every agent's action lives in the padded space :attr:`action_space`
    (``Discrete(n_actions)`` or ``Box`` of shape ``[n_actions]``). For a Box env,
    ``TimeStep.avail_actions[..., i, k]`` is True exactly where dimension ``k``
    exists for agent ``i`` (:meth:`action_mask`); padded dimensions are ignored by
    the env and carry no probability mass in the policy.
    """

    n_agents: int
    obs_dim: int
    state_dim: int
    n_actions: int
    episode_limit: int
    action_spaces: tuple[spaces.Space, ...] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        for name in ("n_agents", "obs_dim", "state_dim", "n_actions", "episode_limit"):
            value = getattr(self, name)
            # numpy integers (gymnasium's Discrete.n, array shapes) count; bools do not
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"EnvSpec.{name} must be a positive int, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.action_spaces is None:
            return
        if isinstance(self.action_spaces, spaces.Space) or not isinstance(
            self.action_spaces, Sequence
        ):
            raise ValueError(
                "EnvSpec.action_spaces must be a sequence of one space per agent, got "
                f"{self.action_spaces!r}"
            )
        given = tuple(self.action_spaces)
        object.__setattr__(self, "action_spaces", given)
        if len(given) != self.n_agents:
            raise ValueError(
                f"EnvSpec.action_spaces must hold one space per agent ({self.n_agents}), "
                f"got {len(given)}"
            )
        if all(isinstance(s, spaces.Discrete) for s in given):
            shifted = [i for i, s in enumerate(given) if int(s.start) != 0]
            if shifted:  # the policy's action k is the env's action k
                raise ValueError(
                    f"EnvSpec.action_spaces: agent {shifted[0]}'s Discrete space starts at "
                    f"{int(given[shifted[0]].start)}; actions are indices 0..n-1 (start=0)"
                )
            largest = max(int(s.n) for s in given)
        elif all(isinstance(s, spaces.Box) and len(s.shape) == 1 for s in given):
            largest = max(int(s.shape[0]) for s in given)
        else:
            raise ValueError(
                "EnvSpec.action_spaces must be all gymnasium.spaces.Discrete or all "
                f"one-dimensional gymnasium.spaces.Box, got {given}"
            )
        if largest != self.n_actions:
            raise ValueError(
                f"EnvSpec.n_actions={self.n_actions} must equal the largest agent's action "
                f"size {largest} (the padded size)"
            )

    @property
    def continuous(self) -> bool:
        """True for Box (continuous) actions."""
        return self.action_spaces is not None and isinstance(self.action_spaces[0], spaces.Box)

    @property
    def action_dim(self) -> int:
        """Padded action size: ``d`` of a Box env (``n_actions``), 1 for a discrete env."""
        return self.n_actions if self.continuous else 1

    @property
    def action_space(self) -> spaces.Space:
        """The padded per-agent action space every agent's action lives in.

        ``Discrete(n_actions)``, or a ``Box`` of shape ``[n_actions]`` whose bounds are
        the elementwise union of the agents' bounds (padded dimensions ``[-1, 1]``).
        """
        if not self.continuous:
            return spaces.Discrete(self.n_actions)
        low, high = self.action_bounds()
        return spaces.Box(low.min(0).values.numpy(), high.max(0).values.numpy(), dtype=np.float32)

    def action_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-agent padded bounds ``(low, high)``, each ``[N, n_actions]`` float32 (CPU).

        Padded dimensions get ``[-1, 1]``. Only meaningful for Box envs.
        """
        return self._bounds

    @cached_property
    def _bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        low = -torch.ones(self.n_agents, self.n_actions)
        high = torch.ones(self.n_agents, self.n_actions)
        if self.continuous:
            for i, space in enumerate(self.action_spaces):  # spec construction, not a hot path
                d = int(space.shape[0])
                low[i, :d] = torch.as_tensor(space.low, dtype=torch.float32)
                high[i, :d] = torch.as_tensor(space.high, dtype=torch.float32)
        return low, high

    def action_mask(self) -> torch.Tensor:
        """``[N, n_actions]`` bool: which padded action slots exist for each agent.

        Discrete envs: the first ``n_i`` actions of agent ``i``; Box envs: its first
        ``d_i`` dimensions.
        """
        return self._mask

    @cached_property
    def _mask(self) -> torch.Tensor:
        sizes = [self.n_actions] * self.n_agents
        if self.action_spaces is not None:
            sizes = [
                int(s.shape[0]) if isinstance(s, spaces.Box) else int(s.n)
                for s in self.action_spaces
            ]
        return torch.arange(self.n_actions)[None, :] < torch.tensor(sizes)[:, None]


@dataclass
class TimeStep:
    """What a vectorized environment returns from ``reset()`` and ``step()``.

    Shapes use ``E`` for env copies, ``N`` for agents.

    Attributes:
        obs: ``[E, N, obs_dim]`` float32 per-agent observations.
        state: ``[E, state_dim]`` float32 global state.
        avail_actions: ``[E, N, n_actions]`` bool, True where an action may be taken
            (Box envs: where an action dimension exists, see :meth:`EnvSpec.action_mask`).
        reward: ``[E]`` float32 team reward of the step that led here (zeros after reset).
        done: ``[E]`` bool, True where the episode ended at this step. That copy has
            already been reset: ``obs``/``state``/``avail_actions`` are the first ones of
            the next episode.
        truncated: ``[E]`` bool, True where the episode ended by the time limit only.
        info: free-form extras (win flags, per-agent rewards...), may be empty.
        final_state: ``[E, state_dim]`` the state reached at this step *before* a
            finished copy reset (equal to ``state`` elsewhere), or ``None`` when the
            env does not report it. The learner bootstraps truncated episodes from it.
    """

    obs: torch.Tensor
    state: torch.Tensor
    avail_actions: torch.Tensor
    reward: torch.Tensor
    done: torch.Tensor
    truncated: torch.Tensor | None = None
    info: dict = field(default_factory=dict)
    final_state: torch.Tensor | None = None

    @property
    def num_envs(self) -> int:
        """Number of env copies ``E``."""
        return int(self.obs.shape[0])

    def to(self, device: torch.device | str, copy: bool = False) -> TimeStep:
        """Return a copy with every tensor moved to ``device`` (tensors already there are
        shared, unless ``copy``: then every tensor is a new one)."""
        move = lambda t: None if t is None else t.to(device, copy=copy)  # noqa: E731
        return TimeStep(
            obs=move(self.obs),
            state=move(self.state),
            avail_actions=move(self.avail_actions),
            reward=move(self.reward),
            done=move(self.done),
            truncated=move(self.truncated),
            info=dict(self.info),
            final_state=move(self.final_state),
        )
