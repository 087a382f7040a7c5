"""Data types shared by every environment: :class:`EnvSpec` and :class:`TimeStep`."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class EnvSpec:
    """Static description of a vectorized multi-agent environment.

    Attributes:
        n_agents: number of controlled agents ``N``.
        obs_dim: size of one agent's (padded) observation vector.
        state_dim: size of the global state vector given to the centralized critic.
        n_actions: number of discrete actions per agent (unavailable ones are masked).
        episode_limit: maximum number of steps of one episode.
    """

    n_agents: int
    obs_dim: int
    state_dim: int
    n_actions: int
    episode_limit: int

    def __post_init__(self) -> None:
        for name in ("n_agents", "obs_dim", "state_dim", "n_actions", "episode_limit"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"EnvSpec.{name} must be a positive int, got {value!r}")


@dataclass
class TimeStep:
    """What a vectorized environment returns from ``reset()`` and ``step()``.

    Shapes use ``E`` for env copies, ``N`` for agents.

    Attributes:
        obs: ``[E, N, obs_dim]`` float32 per-agent observations.
        state: ``[E, state_dim]`` float32 global state.
        avail_actions: ``[E, N, n_actions]`` bool, True where an action may be taken.
        reward: ``[E]`` float32 team reward of the step that led here (zeros after reset).
        done: ``[E]`` bool, True where the episode ended at this step. That copy has
            already been reset: ``obs``/``state``/``avail_actions`` are the first ones of
            the next episode.
        truncated: ``[E]`` bool, True where the episode ended by the time limit only.
        info: free-form extras (win flags, per-agent rewards...), may be empty.
    """

    obs: torch.Tensor
    state: torch.Tensor
    avail_actions: torch.Tensor
    reward: torch.Tensor
    done: torch.Tensor
    truncated: torch.Tensor | None = None
    info: dict = field(default_factory=dict)

    @property
    def num_envs(self) -> int:
        """Number of env copies ``E``."""
        return int(self.obs.shape[0])

    def to(self, device: torch.device | str) -> TimeStep:
        """Return a copy with every tensor moved to ``device``."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return TimeStep(
            obs=move(self.obs),
            state=move(self.state),
            avail_actions=move(self.avail_actions),
            reward=move(self.reward),
            done=move(self.done),
            truncated=move(self.truncated),
            info=dict(self.info),
        )
