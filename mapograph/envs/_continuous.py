"""A built-in continuous-action game: ``continuous:follow-<N>`` (``2 <= N <= 64``).

A chain of ``N`` agents with Box actions of unequal sizes and bounds (agent ``i``
has ``1 + i % 2`` dimensions; even agents act in ``[-1, 1]``, odd agents in
``[0, 2]``), so it exercises padding masks and box mapping. Per step and copy:

- every agent ``i`` sees a signal ``c_i`` in ``[-1, 1]`` (drawn every step), its id
  one-hot and the episode's time fraction;
- agent 0's target is ``c_0``; agent ``i > 0`` must match its predecessor's first
  action coordinate shifted by its own signal, ``a_i[0] = a_{i-1}[0] + c_i / 2``
  (measured in the box's centred coordinates, see below);
- extra dimensions should stay at the centre of their range;
- the team reward is ``-mean`` over agents of the squared errors, so the best
  joint action scores 0 and the chain makes an agent's best response depend on
  its parent's actual action (the interdependence the batch-sequential update
  exploits).

Centred coordinates: an action ``x`` of an agent with box ``[lo, hi]`` counts as
``2 (x - lo) / (hi - lo) - 1``. Episodes last ``episode_limit`` steps (default 8).
"""

from __future__ import annotations

import re

import networkx as nx
import numpy as np
import torch
from gymnasium import spaces

from mapograph._devices import resolve_device
from mapograph.envs._base import MultiAgentEnv
from mapograph.envs._tensor_state import TensorState
from mapograph.envs._types import EnvSpec, TimeStep

_TASK = re.compile(r"follow-([0-9]+)")  # read with fullmatch


class FollowEnv(TensorState, MultiAgentEnv):
    """The ``continuous:follow-<N>`` game (see the module docstring).

    Its whole state (signals, step counters and the signal generator) is saved with
    a checkpoint, so a resumed run continues exactly as an uninterrupted one.

    Args:
        n_agents: number of agents (2..64).
        num_envs: vectorized copies.
        seed: seed of the signals.
        episode_limit: steps per episode.
        device: torch device of the simulation.
    """

    fresh_outputs = True  # new tensors every call; actions only read

    state_tensors = ("signal", "steps")  # with self.generator: the whole state (TensorState)

    def __init__(
        self,
        n_agents: int = 3,
        num_envs: int = 1,
        seed: int = 0,
        episode_limit: int = 8,
        device: str = "cpu",
    ) -> None:
        if not isinstance(n_agents, int) or not 2 <= n_agents <= 64:
            raise ValueError(f"follow needs 2..64 agents, got {n_agents!r}")
        if not isinstance(episode_limit, int) or episode_limit < 1:
            raise ValueError(f"episode_limit must be a positive int, got {episode_limit!r}")
        self.device = resolve_device(device)
        self.num_envs = num_envs
        boxes = []
        for i in range(n_agents):  # construction only
            d = 1 + i % 2
            lo, hi = (-1.0, 1.0) if i % 2 == 0 else (0.0, 2.0)
            boxes.append(spaces.Box(lo, hi, shape=(d,), dtype=np.float32))
        self.spec = EnvSpec(
            n_agents=n_agents,
            obs_dim=1 + n_agents + 1,
            state_dim=n_agents + 1,
            n_actions=max(b.shape[0] for b in boxes),
            episode_limit=episode_limit,
            action_spaces=tuple(boxes),
        )
        low, high = self.spec.action_bounds()
        self.low, self.high = low.to(self.device), high.to(self.device)
        self.mask = self.spec.action_mask().to(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.ids = torch.eye(n_agents, device=self.device)
        self.signal = torch.zeros(num_envs, n_agents, device=self.device)
        self.steps = torch.zeros(num_envs, dtype=torch.long, device=self.device)

    def _draw(self) -> None:
        self.signal = (
            torch.rand(self.signal.shape, generator=self.generator, device=self.device) * 2 - 1
        )

    def _timestep(self, reward: torch.Tensor, done: torch.Tensor) -> TimeStep:
        e, n = self.num_envs, self.spec.n_agents
        time = (self.steps.float() / self.spec.episode_limit)[:, None, None].expand(e, n, 1)
        obs = torch.cat([self.signal[..., None], self.ids.expand(e, n, n), time], -1)
        state = torch.cat([self.signal, time[:, 0]], -1)
        return TimeStep(
            obs=obs,
            state=state,
            avail_actions=self.mask.expand(e, n, -1).clone(),
            reward=reward,
            done=done,
            truncated=done.clone(),
        )

    def interdependence(self) -> nx.DiGraph:
        """The true interdependence DAG: the chain ``0 -> 1 -> ... -> N-1`` (agent ``i``'s
        best action is its predecessor's plus its own signal)."""
        n = self.spec.n_agents
        graph = nx.DiGraph()
        graph.add_nodes_from(range(n))
        graph.add_edges_from((i, i + 1) for i in range(n - 1))
        return graph

    def reset(self) -> TimeStep:
        """Reset every copy."""
        self.steps.zero_()
        self._draw()
        no = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        return self._timestep(torch.zeros(self.num_envs, device=self.device), no)

    def team_reward(self, actions: torch.Tensor) -> torch.Tensor:
        """Team reward ``[E]`` of box actions ``[E, N, d]`` for the current signals."""
        x = 2 * (actions - self.low) / (self.high - self.low) - 1  # centred coordinates
        first = x[..., 0]
        target = torch.cat([self.signal[:, :1], first[:, :-1] + self.signal[:, 1:] / 2], 1)
        error = (first - target).pow(2) + (x[..., 1:].pow(2) * self.mask[:, 1:]).sum(-1)
        return -error.mean(-1)

    def step(self, actions: torch.Tensor) -> TimeStep:
        """Score the joint actions, advance time and reset finished copies."""
        reward = self.team_reward(self.check_actions(actions))
        self.steps += 1
        done = self.steps >= self.spec.episode_limit
        self.steps = torch.where(done, torch.zeros_like(self.steps), self.steps)
        self._draw()
        return self._timestep(reward, done)


def make_follow(task: str | None = None, num_envs: int = 1, seed: int = 0, **kwargs) -> FollowEnv:
    """``continuous:follow-<N>``, e.g. ``continuous:follow-3``."""
    match = _TASK.fullmatch(task or "")
    if match is None:
        raise ValueError(f"unknown continuous task {task!r}: expected 'follow-<N>', e.g. follow-3")
    return FollowEnv(int(match.group(1)), num_envs=num_envs, seed=seed, **kwargs)
