"""Adapter for any PettingZoo ``ParallelEnv`` with discrete or Box actions (MPE via ``mpe2``).

``make("mpe:simple_spread_v3", num_envs=E)`` builds ``E`` copies of the parallel
env (PettingZoo envs are not vectorized, so the copies are stepped one after
the other inside :meth:`PettingZooVectorEnv.step`; for slow envs wrap them in
worker processes). Conventions:

- agents: ``env.possible_agents`` in that order; observations are zero-padded to
  the largest observation size;
- state: ``env.state()`` when the env implements it, else the concatenation of the
  padded observations;
- available actions: the ``action_mask`` of the observation dict or the info
  dict when the env provides one, else all True; Box actions (e.g.
  ``mpe:simple_spread_v3`` with ``continuous_actions=True``) are padded to the
  largest agent's size and ``avail_actions`` masks the padded dimensions;
- **team reward**: the mean over agents of the per-agent rewards (for MPE
  ``simple_spread`` the shared landmark-coverage term plus each agent's
  collision penalty averaged over agents);
- an episode ends when every agent is terminated or truncated (``truncated`` when
  none was terminated); that copy resets itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces as gym_spaces

from mapograph._imports import require
from mapograph.envs._base import MultiAgentEnv
from mapograph.envs._padding import pad_stack
from mapograph.envs._types import EnvSpec, TimeStep


def _split_obs(obs: Any) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(obs, dict) and "observation" in obs:
        return np.asarray(obs["observation"], dtype=np.float32).ravel(), obs.get("action_mask")
    return np.asarray(obs, dtype=np.float32).ravel(), None


class PettingZooVectorEnv(MultiAgentEnv):
    """``E`` copies of a PettingZoo ``ParallelEnv`` behind the MultiAgentEnv interface.

    Args:
        env_fn: callable returning a new ParallelEnv (discrete action spaces).
        num_envs: number of copies.
        seed: copy ``e`` is first reset with ``seed + e``; its ``k``-th episode with
            ``seed + e + k * num_envs``. The episode count goes on across :meth:`reset`
            calls, so every evaluation starts from fresh start states (reproducibly).
        name: shown in error messages.
    """

    def __init__(
        self, env_fn: Callable[[], Any], num_envs: int = 1, seed: int = 0, name: str = "pettingzoo"
    ):
        self.name = name
        self.envs = [env_fn() for _ in range(num_envs)]
        self.num_envs = num_envs
        self.seed = seed
        first = self.envs[0]
        self.agents = list(first.possible_agents)
        spaces = [first.action_space(a) for a in self.agents]
        self.continuous = all(isinstance(s, gym_spaces.Box) and len(s.shape) == 1 for s in spaces)
        if not self.continuous and not all(isinstance(s, gym_spaces.Discrete) for s in spaces):
            raise ValueError(
                f"{name}: action spaces must be all Discrete or all one-dimensional Box, got {spaces}"
            )
        self._n_actions = [int(s.shape[0]) if self.continuous else int(s.n) for s in spaces]
        self._action_spaces = tuple(spaces)
        obs_sizes = []
        for agent in self.agents:
            space = first.observation_space(agent)
            if hasattr(space, "spaces") and "observation" in getattr(space, "spaces", {}):
                space = space["observation"]
            obs_sizes.append(int(np.prod(space.shape)))
        self._obs_dim = max(obs_sizes)
        self._has_state = hasattr(first, "state")
        self._last_obs: list[dict] = [{} for _ in range(num_envs)]
        self._episode = [0] * num_envs
        probe = self._reset_copy(0)
        self._episode[0] = 0  # the probe does not count: the first reset() uses seed + e
        state_dim = int(probe[1].numel())
        limit = int(
            getattr(first.unwrapped, "max_cycles", 0) or getattr(first, "max_cycles", 0) or 1000
        )
        self.spec = EnvSpec(
            n_agents=len(self.agents),
            obs_dim=self._obs_dim,
            state_dim=state_dim,
            n_actions=max(self._n_actions),
            episode_limit=limit,
            action_spaces=self._action_spaces,
        )

    def _copy_tensors(
        self, e: int, obs: dict, infos: dict | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        vectors, masks = [], []
        for i, agent in enumerate(self.agents):
            vec, mask = (
                _split_obs(obs[agent])
                if agent in obs
                else (np.zeros(self._obs_dim, np.float32), None)
            )
            if mask is None and infos and isinstance(infos.get(agent), dict):
                mask = infos[agent].get("action_mask")
            full = np.zeros(max(self._n_actions), dtype=bool)
            if self.continuous:  # the dimension mask
                mask = None
            full[: self._n_actions[i]] = True if mask is None else np.asarray(mask, dtype=bool)
            if not full.any():
                full[0] = True  # a finished agent: any action is ignored
            vectors.append(vec)
            masks.append(full)
        obs_t = pad_stack(vectors, self._obs_dim)
        if self._has_state:
            try:
                state = torch.as_tensor(np.asarray(self.envs[e].state(), dtype=np.float32)).ravel()
            except (NotImplementedError, TypeError, AttributeError, ValueError):
                # no global state: unimplemented, or `state` an attribute (rps's dict)
                self._has_state = False
                state = obs_t.reshape(-1)
        else:
            state = obs_t.reshape(-1)
        return obs_t, state, torch.as_tensor(np.stack(masks))

    def _reset_copy(self, e: int):
        seed = self.seed + e + self.num_envs * self._episode[e]
        self._episode[e] += 1
        obs, infos = self.envs[e].reset(seed=seed)
        self._last_obs[e] = obs
        return self._copy_tensors(e, obs, infos)

    def reset(self) -> TimeStep:
        """Reset every copy (each to the next start state of its seed sequence)."""
        parts = [self._reset_copy(e) for e in range(self.num_envs)]
        zeros = torch.zeros(self.num_envs)
        no = torch.zeros(self.num_envs, dtype=torch.bool)
        return self._stack(parts, zeros, no, no)

    def _stack(self, parts, reward, done, truncated) -> TimeStep:
        obs, state, avail = (torch.stack(x) for x in zip(*parts))
        return TimeStep(
            obs=obs, state=state, avail_actions=avail, reward=reward, done=done, truncated=truncated
        )

    def step(self, actions: torch.Tensor) -> TimeStep:
        """Step every copy (resetting finished ones)."""
        actions = self.check_actions(actions).cpu().numpy()
        parts, rewards, dones, truncs = [], [], [], []
        for e, env in enumerate(self.envs):  # PettingZoo envs are not vectorized
            live = env.agents
            act = {a: self._action(actions[e], i) for i, a in enumerate(self.agents) if a in live}
            obs, rew, term, trunc, infos = env.step(act)
            rewards.append(float(np.mean([rew.get(a, 0.0) for a in self.agents])))
            terminated = all(term.get(a, True) for a in self.agents)
            truncated = all(term.get(a, True) or trunc.get(a, True) for a in self.agents)
            finished = terminated or truncated or not env.agents
            dones.append(finished)
            truncs.append(finished and not any(term.get(a, False) for a in self.agents))
            parts.append(self._reset_copy(e) if finished else self._copy_tensors(e, obs, infos))
        return self._stack(
            parts,
            torch.tensor(rewards, dtype=torch.float32),
            torch.tensor(dones, dtype=torch.bool),
            torch.tensor(truncs, dtype=torch.bool),
        )

    def _action(self, joint: np.ndarray, i: int) -> int | np.ndarray:
        """Agent ``i``'s action from one copy's joint action (its own Box dimensions)."""
        if self.continuous:
            return joint[i, : self._n_actions[i]].astype(np.float32)
        return int(joint[i])

    def close(self) -> None:
        """Close every copy."""
        for env in self.envs:
            env.close()


def make_pettingzoo(
    task: str | None = None, num_envs: int = 1, seed: int = 0, env_fn=None, **kwargs
) -> PettingZooVectorEnv:
    """``pettingzoo:<module path>`` (e.g. ``pettingzoo:pettingzoo.butterfly.knights_archers_zombies_v10``)
    or ``make("pettingzoo", env_fn=...)``: copies of any ParallelEnv with discrete actions.

    ``kwargs`` go to the module's ``parallel_env(...)``.
    """
    if env_fn is None:
        if not task:
            raise ValueError("pettingzoo needs a module path ('pettingzoo:<module>') or env_fn=")
        try:
            module = importlib.import_module(task)
        except ImportError as exc:
            raise ValueError(f"cannot import PettingZoo env module {task!r}: {exc}") from exc
        env_fn = lambda: module.parallel_env(**kwargs)  # noqa: E731
    return PettingZooVectorEnv(env_fn, num_envs=num_envs, seed=seed, name=f"pettingzoo:{task}")


def make_mpe(
    task: str | None = "simple_spread_v3", num_envs: int = 1, seed: int = 0, **kwargs
) -> PettingZooVectorEnv:
    """``mpe:<scenario>`` from ``mpe2`` (e.g. ``mpe:simple_spread_v3``); discrete actions
    unless ``continuous_actions=True`` (MPE's Box forces in ``[0, 1]``).

    ``kwargs`` go to the scenario's ``parallel_env`` (e.g. ``N=5``, ``max_cycles=25``).
    """
    require("mpe2", "mpe")
    task = task or "simple_spread_v3"
    try:
        module = importlib.import_module(f"mpe2.{task}")
    except ImportError as exc:
        raise ValueError(
            f"unknown MPE scenario {task!r} (mpe2 has no module {task}): {exc}"
        ) from exc
    kwargs.setdefault("continuous_actions", False)
    if not isinstance(kwargs["continuous_actions"], bool):
        raise ValueError(
            f"mpe continuous_actions must be true or false, got {kwargs['continuous_actions']!r}"
        )
    return PettingZooVectorEnv(
        lambda: module.parallel_env(**kwargs), num_envs=num_envs, seed=seed, name=f"mpe:{task}"
    )
