"""SMACv2 (``smacv2:<race>_<n>_vs_<m>``): StarCraft II micromanagement in worker processes.

Adapter for the ``smacv2`` package's ``StarCraftCapabilityEnvWrapper`` (one
StarCraft II game per copy, each copy in a worker of a
:class:`~mapograph.envs.WorkerVectorEnv`). Scenarios follow the SMACv2 paper:
``protoss_5_vs_5``, ``terran_10_vs_10``, ``zerg_10_vs_11``, ... with the unit-type
weights and ``surrounded_and_reflect`` start positions of smacv2's example configs.

.. warning::
   smacv2 is not on PyPI and needs the StarCraft II binary, which cannot be
   installed on the machines this project is built on. The translation logic here
   is tested against a stand-in that follows smacv2's documented interface
   (``get_env_info``, ``reset``, ``get_obs``, ``get_state``,
   ``get_avail_agent_actions``, ``step(actions) -> (reward, terminated, info)``);
   it has **not** been run against StarCraft II.

* **obs / state / avail_actions**: ``get_obs()``, ``get_state()`` and
  ``get_avail_agent_actions(i)`` of each agent, as smacv2 builds them.
* **reward**: smacv2's shared (scaled) team reward.
* **episodes** end on a win, a defeat or the map's time limit (``episode_limit`` of
  ``get_env_info``, reported as ``truncated``). ``TimeStep.info["won"]`` (from
  ``battle_won``), ``info["dead_allies"]`` and ``info["dead_enemies"]`` are set on
  copies whose episode ended, NaN elsewhere.
* **seeds**: copy ``e`` gets ``seed=seed + e`` (the StarCraft II game seed).
  smacv2 draws unit types and start positions from its own unseeded generators,
  so SMACv2 episodes are not reproducible from the seed.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from mapograph._errors import OptionalDependencyError
from mapograph.envs._subprocess import WorkerVectorEnv
from mapograph.envs._types import EnvSpec

__all__ = ["SMACV2_RACES", "Smacv2Copy", "make_smacv2", "smacv2_kwargs"]

#: Unit types, their sampling weights and the types that may not make up a whole
#: team, per race (smacv2's ``sc2_gen_<race>.yaml`` example configs).
SMACV2_RACES: dict[str, dict[str, Any]] = {
    "protoss": {
        "map_name": "10gen_protoss",
        "unit_types": ["stalker", "zealot", "colossus"],
        "weights": [0.45, 0.45, 0.1],
        "exception_unit_types": [],
    },
    "terran": {
        "map_name": "10gen_terran",
        "unit_types": ["marine", "marauder", "medivac"],
        "weights": [0.45, 0.45, 0.1],
        "exception_unit_types": ["medivac"],
    },
    "zerg": {
        "map_name": "10gen_zerg",
        "unit_types": ["zergling", "baneling", "hydralisk"],
        "weights": [0.45, 0.1, 0.45],
        "exception_unit_types": ["baneling"],
    },
}
_SCENARIO = re.compile(r"^(protoss|terran|zerg)_(\d+)_vs_(\d+)$")

INSTALL_HINT = (
    "smacv2 is not on PyPI: pip install git+https://github.com/oxwhirl/smacv2.git . "
    "It also needs the StarCraft II binary (Linux: SC2.4.10 from "
    "https://github.com/Blizzard/s2client-proto#downloads, unzipped into ~/StarCraftII "
    "or the folder named by SC2PATH) and smacv2's maps copied into "
    "$SC2PATH/Maps/SMAC_Maps. See docs/environments.md"
)


def smacv2_kwargs(scenario: str, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments of ``StarCraftCapabilityEnvWrapper`` for ``<race>_<n>_vs_<m>``.

    The values are those of smacv2's example configs (``sc2_gen_<race>.yaml``);
    ``overrides`` replace or add any of them (e.g. ``conic_fov=True``).

    Raises:
        ValueError: the scenario does not read ``<race>_<n>_vs_<m>``.
    """
    match = _SCENARIO.match(scenario or "")
    if match is None:
        raise ValueError(
            f"unknown smacv2 scenario {scenario!r}: expected '<race>_<n>_vs_<m>' with race in "
            f"{sorted(SMACV2_RACES)}, e.g. 'protoss_5_vs_5', 'terran_10_vs_10', 'zerg_10_vs_11'"
        )
    race, n_units, n_enemies = match.group(1), int(match.group(2)), int(match.group(3))
    if n_units < 1 or n_enemies < 1:
        raise ValueError(f"smacv2 scenario {scenario!r} needs at least one unit per side")
    cfg = SMACV2_RACES[race]
    team_gen: dict[str, Any] = {
        "dist_type": "weighted_teams",
        "unit_types": list(cfg["unit_types"]),
        "weights": list(cfg["weights"]),
        "observe": True,
    }
    if cfg["exception_unit_types"]:
        team_gen["exception_unit_types"] = list(cfg["exception_unit_types"])
    kwargs: dict[str, Any] = {
        "map_name": cfg["map_name"],
        "capability_config": {
            "n_units": n_units,
            "n_enemies": n_enemies,
            "team_gen": team_gen,
            "start_positions": {
                "dist_type": "surrounded_and_reflect",
                "p": 0.5,
                "map_x": 32,
                "map_y": 32,
            },
        },
        "conic_fov": False,
        "obs_own_pos": True,
        "use_unit_ranges": True,
        "min_attack_range": 2,
    }
    kwargs.update(overrides)
    return kwargs


def _capability_env(**kwargs: Any) -> Any:
    """The real thing: ``smacv2.env.StarCraftCapabilityEnvWrapper(**kwargs)``."""
    wrapper = importlib.import_module("smacv2.env.starcraft2.wrapper")
    return wrapper.StarCraftCapabilityEnvWrapper(**kwargs)


class Smacv2Copy:
    """One SMACv2 game (a :class:`~mapograph.envs.SingleCopyEnv`), built inside a worker.

    Args:
        env_kwargs: keyword arguments of the smacv2 env (see :func:`smacv2_kwargs`).
        env_factory: ``env_factory(**env_kwargs, seed=...)`` builds an object with
            smacv2's interface (default: ``StarCraftCapabilityEnvWrapper``).
    """

    def __init__(
        self, env_kwargs: dict[str, Any], env_factory: Callable[..., Any] = _capability_env
    ) -> None:
        self._kwargs = dict(env_kwargs)
        self._factory = env_factory
        self._env = env_factory(**self._kwargs)  # the game starts on the first reset
        self._started = False
        info = self._env.get_env_info()
        self.spec = EnvSpec(
            n_agents=int(info["n_agents"]),
            obs_dim=int(np.prod(info["obs_shape"])),
            state_dim=int(np.prod(info["state_shape"])),
            n_actions=int(info["n_actions"]),
            episode_limit=int(info["episode_limit"]),
        )
        self._t = 0

    def _observe(self) -> dict[str, np.ndarray]:
        env, n = self._env, self.spec.n_agents
        return {
            "obs": np.asarray(env.get_obs(), dtype=np.float32).reshape(n, -1),
            "state": np.asarray(env.get_state(), dtype=np.float32).reshape(-1),
            "avail": np.asarray([env.get_avail_agent_actions(i) for i in range(n)]).astype(bool),
        }

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Start a battle; a seed before the first game rebuilds the env with ``seed=``."""
        if seed is not None and not self._started:
            self._env.close()  # nothing launched yet: rebuild with the game seed
            self._env = self._factory(**self._kwargs, seed=seed)
        self._env.reset()
        self._started = True
        self._t = 0
        return self._observe()

    def step(self, actions: np.ndarray) -> tuple:
        """One step with an action per agent: smacv2's ``step`` plus the new observations."""
        reward, terminated, info = self._env.step([int(a) for a in actions])
        self._t += 1
        terminated = bool(terminated)
        won = bool(info.get("battle_won", False))
        dead_allies = int(info.get("dead_allies", 0))
        # smacv2 flags a time limit only with continuing_episode=True: infer it otherwise
        truncated = terminated and (
            bool(info.get("episode_limit", False))
            or (self._t >= self.spec.episode_limit and not won and dead_allies < self.spec.n_agents)
        )
        out_info: dict[str, Any] = {}
        if terminated:
            out_info = {
                "won": float(won),
                "dead_allies": float(dead_allies),
                "dead_enemies": float(info.get("dead_enemies", 0)),
            }
        first = self._observe()
        return (
            first["obs"],
            first["state"],
            first["avail"],
            float(reward),
            terminated and not truncated,
            truncated,
            out_info,
        )

    def close(self) -> None:
        """Close the StarCraft II game."""
        self._env.close()


def _require_smacv2() -> None:
    if importlib.util.find_spec("smacv2") is None:
        raise OptionalDependencyError(
            f"'smacv2' is needed for smacv2:* envs but is not installed. {INSTALL_HINT}"
        )
    sc2path = os.environ.get("SC2PATH", os.path.expanduser("~/StarCraftII"))
    if not os.path.isdir(sc2path):
        raise OptionalDependencyError(
            f"smacv2 is installed but StarCraft II was not found at {sc2path!r} "
            f"(set SC2PATH). {INSTALL_HINT}"
        )


def make_smacv2(
    num_envs: int = 1,
    seed: int = 0,
    task: str | None = None,
    num_workers: int | None = None,
    env_factory: Callable[..., Any] | None = None,
    timeout: float = 300.0,
    context: str = "spawn",
    **env_kwargs: Any,
) -> WorkerVectorEnv:
    """Build ``smacv2:<race>_<n>_vs_<m>``: ``num_envs`` StarCraft II games in worker processes.

    Args:
        num_envs: copies ``E`` (each runs its own StarCraft II process).
        seed: copy ``e`` is built with ``seed=seed + e``.
        task: scenario, e.g. ``"protoss_5_vs_5"``, ``"terran_10_vs_10"``, ``"zerg_10_vs_11"``.
        num_workers: worker processes (default ``min(num_envs, cpu_count)``).
        env_factory: picklable ``env_factory(**kwargs)`` returning an object with smacv2's
            interface; default ``StarCraftCapabilityEnvWrapper`` (tests pass a stand-in).
        timeout: seconds a worker may take to answer one command (StarCraft II restarts
            are slow).
        context: ``"spawn"`` or ``"forkserver"``.
        **env_kwargs: override smacv2 arguments (see :func:`smacv2_kwargs`).

    Raises:
        ValueError: the scenario name does not read ``<race>_<n>_vs_<m>``.
        OptionalDependencyError: smacv2 or StarCraft II is missing (the message says how
            to install both).
    """
    kwargs = smacv2_kwargs(task, **env_kwargs)
    if env_factory is None:
        _require_smacv2()
        env_factory = _capability_env
    factory = functools.partial(Smacv2Copy, env_kwargs=kwargs, env_factory=env_factory)
    return WorkerVectorEnv(
        factory,
        num_envs=num_envs,
        seed=seed,
        num_workers=num_workers,
        env_id=f"smacv2:{task}",
        timeout=timeout,
        context=context,
    )
