"""Adapter for VMAS (vectorized multi-agent simulator), continuous or discrete actions.

``make("vmas:balance", num_envs=E)`` uses VMAS's own batching: one simulator
steps all ``E`` copies as tensors. Actions are continuous by default (VMAS's
native ``Box`` forces, as BenchMARL uses them; unequal sizes padded and masked
in ``avail_actions``); ``continuous_actions=False`` gives VMAS's discrete actions. Observations are zero-padded to the largest
agent observation; the state is the concatenation of the agents' observations;
the team reward is the mean of the agents' rewards; every action is available.
Finished copies are reset with ``reset_at`` (all at once with ``reset`` when every
copy ends together, as with a fixed ``max_steps``).

VMAS runs every env of a process on one shared set of random streams (the states of
torch's, numpy's and Python's generators in ``Environment.vmas_random_state``), which
making an env reseeds. Each :class:`VmasEnv` keeps streams of its own instead and
swaps them in around its calls, so making or using a second env (an evaluation env)
does not change the first one's future.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from gymnasium import spaces

from mapograph._imports import require
from mapograph.envs._base import MultiAgentEnv
from mapograph.envs._types import EnvSpec, TimeStep


class VmasEnv(MultiAgentEnv):
    """A VMAS scenario behind the MultiAgentEnv interface.

    Args:
        scenario: VMAS scenario name (``balance``, ``transport``, ``navigation``...).
        num_envs: number of vectorized copies.
        seed: VMAS seed.
        episode_limit: ``max_steps`` of an episode.
        device: torch device.
        continuous_actions: Box actions (default) or VMAS's discrete ones.
        **kwargs: scenario arguments (e.g. ``n_agents=5``).
    """

    fresh_outputs = True  # new tensors every call; actions only read

    def __init__(
        self,
        scenario: str,
        num_envs: int = 1,
        seed: int = 0,
        episode_limit: int = 100,
        device: str = "cpu",
        continuous_actions: bool = True,
        **kwargs,
    ) -> None:
        if not isinstance(continuous_actions, bool):
            raise ValueError(
                f"vmas continuous_actions must be true or false, got {continuous_actions!r}"
            )
        vmas = require("vmas", "vmas")
        self.device = torch.device(device)
        shared = _shared_streams()
        before = list(shared)  # making an env reseeds the streams every VMAS env shares
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self.env = vmas.make_env(
                    scenario,
                    num_envs=num_envs,
                    device=device,
                    continuous_actions=bool(continuous_actions),
                    seed=seed,
                    max_steps=episode_limit,
                    **kwargs,
                )
            _unused_arguments_refused(caught)
        except (
            AssertionError,
            ValueError,
            ImportError,
            AttributeError,
            FileNotFoundError,
            ModuleNotFoundError,
        ) as exc:
            raise ValueError(f"cannot make VMAS scenario {scenario!r}: {exc}") from exc
        finally:
            self._streams = list(shared)  # this env's, as VMAS seeded them
            shared[:] = before
        self.num_envs = num_envs
        n = self.env.n_agents
        with self._own_random_streams():
            obs = self.env.reset()
        self._obs_dim = max(o.shape[-1] for o in obs)
        self.continuous = bool(continuous_actions)
        if self.continuous:  # VMAS's gym Box -> gymnasium Box (the spec's convention)
            action_spaces = tuple(
                spaces.Box(np.asarray(s.low, np.float32), np.asarray(s.high, np.float32))
                for s in self.env.action_space
            )
            self._n_actions = [int(s.shape[0]) for s in action_spaces]
        else:
            self._n_actions = [int(s.n) for s in self.env.action_space]
            action_spaces = tuple(spaces.Discrete(k) for k in self._n_actions)
        self.spec = EnvSpec(
            n_agents=n,
            obs_dim=self._obs_dim,
            state_dim=sum(o.shape[-1] for o in obs),
            n_actions=max(self._n_actions),
            episode_limit=episode_limit,
            action_spaces=action_spaces,
        )
        self._avail = self.spec.action_mask().to(self.device).expand(num_envs, -1, -1).contiguous()

    def _timestep(self, obs, reward, done, truncated) -> TimeStep:
        stacked = torch.zeros(self.num_envs, self.spec.n_agents, self._obs_dim, device=self.device)
        for i, o in enumerate(obs):  # agents of the list VMAS returns (tensors batched over copies)
            stacked[:, i, : o.shape[-1]] = o
        state = torch.cat(list(obs), dim=-1).float()
        return TimeStep(
            obs=stacked,
            state=state,
            avail_actions=self._avail.clone(),
            reward=reward,
            done=done,
            truncated=truncated,
        )

    @contextmanager
    def _own_random_streams(self) -> Iterator[None]:
        """Run VMAS on this env's random streams; the caller's are restored after."""
        shared = _shared_streams()
        others = list(shared)
        shared[:] = self._streams
        try:
            yield
        finally:
            self._streams = list(shared)
            shared[:] = others

    def reset(self) -> TimeStep:
        """Reset every copy."""
        with self._own_random_streams():
            obs = self.env.reset()
        zeros = torch.zeros(self.num_envs, device=self.device)
        no = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        return self._timestep(obs, zeros, no, no)

    def step(self, actions: torch.Tensor) -> TimeStep:
        """Step all copies in one VMAS call, reset the finished ones."""
        actions = self.check_actions(actions)
        if self.continuous:  # each agent's own dimensions
            per_agent = [actions[:, i, :k] for i, k in enumerate(self._n_actions)]
        else:
            per_agent = list(actions.unbind(1))
        with self._own_random_streams():
            return self._step(per_agent)

    def _step(self, per_agent: list[torch.Tensor]) -> TimeStep:
        obs, rewards, dones, _ = self.env.step(per_agent)
        # some scenarios (e.g. wheel) give each agent's reward as [E, 1]
        reward = torch.stack([r.reshape(self.num_envs) for r in rewards], 1).float().mean(1)
        done = dones.reshape(self.num_envs).bool()
        truncated = done & (self.env.steps >= self.spec.episode_limit)
        if bool(done.all()):
            obs = self.env.reset()
        elif bool(done.any()):
            for index in done.nonzero().flatten().tolist():  # only the copies that just ended
                obs = self.env.reset_at(index)
        return self._timestep(obs, reward, done, truncated)


def _unused_arguments_refused(caught: list) -> None:
    """Raise for VMAS's warning that a scenario ignored some arguments (a misspelt
    keyword would otherwise train a scenario other than the one asked for); pass the
    other warnings on."""
    for record in caught:
        message = str(record.message)
        if "passed but not used by the scenario" in message:
            unused = message.split(" passed but not used")[0].removeprefix("Scenario kwargs: ")
            raise ValueError(f"it takes no argument(s) {unused}")
        warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)


def _shared_streams() -> list:
    """VMAS's process-wide random streams: the list every VMAS env runs on (mutable)."""
    from vmas.simulator.environment import Environment

    return Environment.vmas_random_state


def make_vmas(task: str | None = None, num_envs: int = 1, seed: int = 0, **kwargs) -> VmasEnv:
    """``vmas:<scenario>``, e.g. ``vmas:balance``, ``vmas:transport``, ``vmas:navigation``."""
    if not task:
        raise ValueError("vmas needs a scenario, e.g. 'vmas:balance'")
    return VmasEnv(task, num_envs=num_envs, seed=seed, **kwargs)
