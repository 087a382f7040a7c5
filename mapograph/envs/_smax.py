"""SMAX (``smax:<map>``): jaxmarl's JAX re-implementation of SMAC, vectorized with ``jax.vmap``.

The allies are the agents; the enemies are driven by jaxmarl's heuristic policy
(``HeuristicEnemySMAX``, the SMAC-like setting of jaxmarl's own baselines). All
``E`` copies are reset and stepped by one jit-compiled, vmapped function; its
outputs are handed to torch with ``torch.from_dlpack`` (no copy on CPU).

* **obs** ``[N, obs_dim]``: jaxmarl's ``unit_list`` observation of each ally.
* **state** ``[state_dim]``: jaxmarl's ``world_state`` (features of every unit,
  teams and unit types).
* **avail_actions** ``[N, 5 + n_enemies]``: ``env.get_avail_actions`` (moves, stop,
  attack enemy j if in range; dead units may only stop).
* **reward**: the allies' shared reward (damage dealt, normalized, plus
  ``won_battle_bonus`` = 1 on a win).
* **episodes** end when one side is wiped out or at the time limit, reported as
  ``truncated``: ``max_steps + 1`` steps (``spec.episode_limit``; jaxmarl's default
  ``max_steps`` is 100).
  ``TimeStep.info["won"]`` is 1.0 / 0.0 on copies whose episode ended, NaN
  elsewhere.

Randomness comes from one JAX key seeded with ``seed`` and split every call, so a
run is reproducible from its seed.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from mapograph._imports import require
from mapograph.envs._base import MultiAgentEnv
from mapograph.envs._types import EnvSpec, TimeStep

__all__ = ["SmaxEnv", "make_smax"]

_HINT = (
    'jaxmarl 0.2 installs from PyPI with CPU jax (about a minute): pip install "mapograph[smax]". '
    "It pins gymnasium<1.4 through gymnax"
)


def _to_torch(x: Any) -> torch.Tensor:
    """A JAX array as a torch tensor sharing its memory (dlpack)."""
    return torch.from_dlpack(x)


def observe(env: Any, state: Any, obs: dict) -> tuple:
    """``(obs [N, obs_dim], world state [state_dim], avail [N, A])`` of one jaxmarl SMAX
    copy as JAX arrays (traceable: used inside the jitted reset and step)."""
    import jax.numpy as jnp

    agents = list(env.agents)
    avail = env.get_avail_actions(state)
    return (
        jnp.stack([obs[a] for a in agents]).astype(jnp.float32),
        obs["world_state"].astype(jnp.float32),
        jnp.stack([avail[a] for a in agents]).astype(bool),
    )


def allies_won(env: Any, state: Any) -> Any:
    """Whether the allies wiped out the enemies and kept a unit (JAX bool)."""
    import jax.numpy as jnp

    alive = state.state.unit_alive
    return ~jnp.any(alive[env.num_allies :]) & jnp.any(alive[: env.num_allies])


def _compile(env: Any, num_envs: int) -> tuple:
    """Build the jitted ``reset(key)`` and ``step(key, state, actions)`` over all copies."""
    import functools as ft

    import jax

    jnp = jax.numpy
    agents = list(env.agents)
    n_allies = env.num_allies
    observe_copy = ft.partial(observe, env)

    def reset_one(key: Any) -> tuple:
        obs, state = env.reset(key)
        return state, observe_copy(state, obs)

    def step_one(key: Any, state: Any, actions: Any) -> tuple:
        key_step, key_reset = jax.random.split(key)
        act = {a: actions[i] for i, a in enumerate(agents)}
        obs, next_state, rewards, dones, _ = env.step_env(key_step, state, act)
        alive = next_state.state.unit_alive
        allies_dead = ~jnp.any(alive[:n_allies])
        enemies_dead = ~jnp.any(alive[n_allies:])
        done = dones["__all__"]
        won = allies_won(env, next_state)
        truncated = done & ~allies_dead & ~enemies_dead
        reset_obs, reset_state = env.reset(key_reset)
        next_state = jax.tree.map(lambda r, s: jax.lax.select(done, r, s), reset_state, next_state)
        obs = jax.tree.map(lambda r, s: jax.lax.select(done, r, s), reset_obs, obs)
        return (
            next_state,
            observe_copy(next_state, obs),
            (
                rewards[agents[0]].astype(jnp.float32),
                done,
                truncated,
                jnp.where(done, won.astype(jnp.float32), jnp.nan),
            ),
        )

    @jax.jit
    def reset_all(key: Any) -> tuple:
        key, sub = jax.random.split(key)
        state, out = jax.vmap(reset_one)(jax.random.split(sub, num_envs))
        return key, out, state

    @functools.partial(jax.jit, donate_argnums=(1,))
    def step_all(key: Any, state: Any, actions: Any) -> tuple:
        key, sub = jax.random.split(key)
        keys = jax.random.split(sub, num_envs)
        state, out, extra = jax.vmap(step_one)(keys, state, actions)
        return key, out, extra, state

    return reset_all, step_all


_CACHE: dict[tuple, tuple] = {}
_CACHE_SIZE = 8


def _build(map_name: str, num_envs: int, env_kwargs: dict) -> tuple:
    """``(env, reset_fn, step_fn)``, cached: jit compilation takes seconds per map.

    Envs with the same map, number of copies and (hashable) keyword arguments share
    the compiled functions; the seed is an argument, not part of the compilation.
    """
    from jaxmarl.environments.smax import HeuristicEnemySMAX
    from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO

    try:
        cache_key = (map_name, num_envs, tuple(sorted(env_kwargs.items())))
        hash(cache_key)
    except TypeError:  # unhashable keyword values (arrays): no caching
        cache_key = None
    if cache_key is not None and cache_key in _CACHE:
        return _CACHE[cache_key]
    env = HeuristicEnemySMAX(scenario=MAP_NAME_TO_SCENARIO[map_name], **env_kwargs)
    built = (env, *_compile(env, num_envs))
    if cache_key is not None:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[cache_key] = built
    return built


class SmaxEnv(MultiAgentEnv):
    """``num_envs`` copies of a jaxmarl SMAX map stepped by one jitted ``vmap``.

    Args:
        map_name: a key of jaxmarl's ``MAP_NAME_TO_SCENARIO`` (``"3m"``, ``"2s3z"``,
            ``"5m_vs_6m"``, ``"smacv2_5_units"``...).
        num_envs: copies ``E``.
        seed: seed of the JAX key.
        max_steps: jaxmarl's ``max_steps`` (its default, 100, when None). jaxmarl ends
            an episode on the step after its counter reached ``max_steps``, so the
            longest episode, ``spec.episode_limit``, is ``max_steps + 1`` steps.
        **env_kwargs: passed to ``HeuristicEnemySMAX`` (e.g. ``attack_mode``,
            ``enemy_shoots``, ``see_enemy_actions``, ``walls_cause_death``).
    """

    fresh_outputs = True  # new tensors every call; actions only read

    def __init__(
        self,
        map_name: str,
        num_envs: int = 1,
        seed: int = 0,
        max_steps: int | None = None,
        **env_kwargs: Any,
    ) -> None:
        jax = require("jax", "smax", _HINT)
        require("jaxmarl", "smax", _HINT)
        from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO

        if map_name not in MAP_NAME_TO_SCENARIO:
            raise ValueError(
                f"unknown SMAX map {map_name!r}; known: {', '.join(sorted(MAP_NAME_TO_SCENARIO))}"
            )
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if max_steps is not None:
            if not isinstance(max_steps, int) or max_steps < 1:
                raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
            env_kwargs["max_steps"] = max_steps
        self.map_name = map_name
        self.num_envs = num_envs
        self._jax = jax
        self._env, self._reset_fn, self._step_fn = _build(map_name, num_envs, env_kwargs)
        self._key = jax.random.PRNGKey(seed)
        self._state = None
        shapes = jax.eval_shape(self._reset_fn, self._key)[1]
        self.spec = EnvSpec(
            n_agents=int(self._env.num_allies),
            obs_dim=int(shapes[0].shape[-1]),
            state_dim=int(shapes[1].shape[-1]),
            n_actions=int(shapes[2].shape[-1]),
            # jaxmarl checks its step counter before incrementing it: max_steps + 1 steps
            episode_limit=int(self._env.max_steps) + 1,
        )
        self.device = torch.device("cpu")

    def _timestep(self, out: tuple, extra: tuple | None) -> TimeStep:
        obs, state, avail = (_to_torch(x) for x in out)
        if extra is None:
            reward = torch.zeros(self.num_envs)
            done = torch.zeros(self.num_envs, dtype=torch.bool)
            truncated = torch.zeros(self.num_envs, dtype=torch.bool)
            info: dict = {}
        else:
            reward, done, truncated, won = (_to_torch(x) for x in extra)
            info = {"won": won}
        return TimeStep(
            obs=obs,
            state=state,
            avail_actions=avail,
            reward=reward,
            done=done,
            truncated=truncated,
            info=info,
        )

    def reset(self) -> TimeStep:
        """Reset every copy (fresh keys split from the env's key)."""
        self._key, out, self._state = self._reset_fn(self._key)
        return self._timestep(out, None)

    def step(self, actions: torch.Tensor) -> TimeStep:
        """Step every copy with ``actions`` (LongTensor ``[E, N]``); done copies auto-reset."""
        if self._state is None:
            raise RuntimeError(f"smax:{self.map_name}: call reset() before step()")
        actions = self.check_actions(actions).to(torch.int32).contiguous()
        jactions = self._jax.dlpack.from_dlpack(actions)
        self._key, out, extra, self._state = self._step_fn(self._key, self._state, jactions)
        return self._timestep(out, extra)

    def close(self) -> None:
        """Drop the JAX state (nothing else to release)."""
        self._state = None

    def __repr__(self) -> str:
        return f"SmaxEnv({self.map_name!r}, num_envs={self.num_envs})"


def make_smax(
    num_envs: int = 1,
    seed: int = 0,
    task: str | None = None,
    max_steps: int | None = None,
    **env_kwargs: Any,
) -> SmaxEnv:
    """Build ``smax:<map>`` (see :class:`SmaxEnv`)."""
    if task is None:
        raise ValueError("smax needs a map, e.g. 'smax:3m' or 'smax:2s3z'")
    return SmaxEnv(task, num_envs=num_envs, seed=seed, max_steps=max_steps, **env_kwargs)
