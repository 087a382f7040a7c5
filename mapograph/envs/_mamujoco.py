"""Adapter for Multi-Agent MuJoCo (``gymnasium_robotics.mamujoco_v1``), continuous actions.

``make("mamujoco:HalfCheetah-6x1", num_envs=E, agent_obsk=1)`` splits a MuJoCo
robot's joints among agents (``<Scenario>-<agent_conf>``: ``HalfCheetah-6x1``,
``Walker2d-2x3``, ``Ant-4x2``, ``Hopper-3x1``, ...). The ``E`` copies run in worker
processes (:class:`~mapograph.envs.WorkerVectorEnv`), each stepping its copies in
turn. Conventions:

- agents: ``env.possible_agents`` in order; each has a ``Box`` action space of its
  own joints (unequal sizes are padded, ``TimeStep.avail_actions`` masks the
  padded dimensions); observations (``agent_obsk``: how many hops of neighbouring
  joints an agent sees) are zero-padded to the largest;
- state: ``env.state()``, the single-agent MuJoCo observation;
- **team reward**: MaMuJoCo gives every agent the robot's reward; we take it once
  (the mean over agents, which equals it);
- time limit: episodes stop after ``episode_limit`` steps (default the scenario's
  own limit, 1000): ``TimeStep.truncated`` marks them, and ``TimeStep.final_state``
  carries the state reached before the copy reset, so the learner bootstraps the
  value of a truncated episode instead of treating the cut as a terminal state.
  A robot that falls (Walker2d, Ant, Hopper) *terminates*: no bootstrap.

Install with ``pip install "mapograph[mamujoco]"`` (gymnasium-robotics and mujoco).
"""

from __future__ import annotations

import functools
from typing import Any

import networkx as nx
import numpy as np
from gymnasium import spaces

from mapograph._imports import require
from mapograph.envs._subprocess import WorkerVectorEnv
from mapograph.envs._types import EnvSpec


def _mamujoco() -> Any:
    module = require("gymnasium_robotics", "mamujoco")
    return module.mamujoco_v1


class MaMuJoCoCopy:
    """One Multi-Agent MuJoCo copy as a :class:`~mapograph.envs.SingleCopyEnv`.

    Args:
        scenario: MuJoCo robot (``HalfCheetah``, ``Walker2d``, ``Ant``...).
        agent_conf: how its joints are split (``6x1``, ``2x3``, ``4x2``...).
        agent_obsk: neighbourhood depth of each agent's observation.
        episode_limit: steps per episode (``None``: the scenario's own limit).
        **kwargs: passed to ``mamujoco_v1.parallel_env``.
    """

    #: ask the worker to report the state before an auto-reset (truncation bootstrap)
    report_final_state = True

    def __init__(
        self,
        scenario: str,
        agent_conf: str | None,
        agent_obsk: int | None = 1,
        episode_limit: int | None = None,
        **kwargs: Any,
    ) -> None:
        make = _mamujoco().parallel_env
        if episode_limit is not None and "max_episode_steps" not in kwargs:
            try:  # the inner gymnasium env's own TimeLimit must not end episodes first
                self.env = make(
                    scenario, agent_conf, agent_obsk=agent_obsk, max_episode_steps=episode_limit,
                    **kwargs,
                )  # fmt: skip
            except TypeError:  # a scenario whose constructor takes no time limit
                self.env = make(scenario, agent_conf, agent_obsk=agent_obsk, **kwargs)
        else:
            self.env = make(scenario, agent_conf, agent_obsk=agent_obsk, **kwargs)
        inner = getattr(getattr(self.env, "single_agent_env", None), "spec", None)
        inner_limit = getattr(inner, "max_episode_steps", None)
        if episode_limit is not None and inner_limit is not None and inner_limit < episode_limit:
            raise ValueError(
                f"mamujoco:{scenario}: episode_limit={episode_limit} exceeds the scenario's own "
                f"time limit of {inner_limit} steps"
            )
        self.agents = list(self.env.possible_agents)
        boxes = [self.env.action_space(a) for a in self.agents]
        self.sizes = [int(b.shape[0]) for b in boxes]
        obs_sizes = [int(np.prod(self.env.observation_space(a).shape)) for a in self.agents]
        self.obs_dim = max(obs_sizes)
        limit = episode_limit
        if limit is None:
            spec = getattr(self.env.single_agent_env, "spec", None)
            limit = getattr(spec, "max_episode_steps", None) or 1000
        state_dim = int(np.prod(self.env.state().shape)) if self._has_state() else sum(obs_sizes)
        self.spec = EnvSpec(
            n_agents=len(self.agents),
            obs_dim=self.obs_dim,
            state_dim=state_dim,
            n_actions=max(self.sizes),
            episode_limit=int(limit),
            action_spaces=tuple(
                spaces.Box(b.low.astype(np.float32), b.high.astype(np.float32), dtype=np.float32)
                for b in boxes
            ),
        )
        self.avail = self.spec.action_mask().numpy().copy()  # own memory: the spec is pickled

    def _has_state(self) -> bool:
        try:
            self.env.state()
        except Exception:  # before the first reset some versions have no state
            return False
        return True

    def _pack(self, obs: dict) -> tuple[np.ndarray, np.ndarray]:
        padded = np.zeros((len(self.agents), self.obs_dim), np.float32)
        for i, agent in enumerate(self.agents):  # one copy's agents, at conversion only
            o = np.asarray(obs[agent], np.float32).ravel()
            padded[i, : o.size] = o
        return padded, np.asarray(self.env.state(), np.float32).ravel()

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Start an episode."""
        obs, _ = self.env.reset(seed=seed)
        padded, state = self._pack(obs)
        return {"obs": padded, "state": state, "avail": self.avail}

    def step(self, actions: np.ndarray) -> tuple:
        """Apply ``[N, d]`` box actions (padded dimensions dropped)."""
        joint = {
            agent: np.asarray(actions[i, : self.sizes[i]], np.float32)
            for i, agent in enumerate(self.agents)
        }
        obs, rewards, terminated, truncated, _ = self.env.step(joint)
        padded, state = self._pack(obs)
        reward = float(np.mean([rewards[a] for a in self.agents]))
        term = bool(any(terminated.values()))
        trunc = bool(any(truncated.values()))
        return padded, state, self.avail, reward, term, trunc, {}

    def close(self) -> None:
        """Release the simulator."""
        self.env.close()

    def joint_tree(self) -> list[tuple[int, int]]:
        """Edges ``i -> j`` of the body's kinematic tree between agents.

        Agent ``j`` depends on agent ``i`` when the nearest actuated ancestor of a body
        that one of ``j``'s actuators drives is driven by ``i`` (HalfCheetah-6x1:
        thigh -> shin -> foot, back and front). Read from the MuJoCo model
        (``actuator_trnid``, ``jnt_bodyid``, ``body_parentid``) and MaMuJoCo's
        ``agent_action_partitions``, so it holds for every scenario and split.
        """
        model = self.env.single_agent_env.unwrapped.model
        owner: dict[int, int] = {}  # body -> the agent whose actuator drives it
        for agent, partition in enumerate(self.env.agent_action_partitions):
            for node in partition:
                ids = node.act_ids if isinstance(node.act_ids, (list, tuple)) else [node.act_ids]
                for act in ids:
                    owner[int(model.jnt_bodyid[model.actuator_trnid[int(act), 0]])] = agent
        edges = set()
        for body, child in owner.items():
            parent = int(model.body_parentid[body])
            while parent != 0 and parent not in owner:
                parent = int(model.body_parentid[parent])
            if parent in owner and owner[parent] != child:
                edges.add((owner[parent], child))
        return sorted(edges)


def split_task(task: str | None) -> tuple[str, str | None]:
    """``"HalfCheetah-6x1"`` -> ``("HalfCheetah", "6x1")``; a bare scenario has no split."""
    if not task:
        raise ValueError("mamujoco needs a task, e.g. 'mamujoco:HalfCheetah-6x1'")
    scenario, sep, conf = task.rpartition("-")
    return (scenario, conf) if sep else (task, None)


class MaMuJoCoVectorEnv(WorkerVectorEnv):
    """Multi-Agent MuJoCo copies in worker processes, with the body's joint tree.

    Args:
        tree: edges ``i -> j`` of :meth:`MaMuJoCoCopy.joint_tree`.
        *args, **kwargs: as :class:`~mapograph.envs.WorkerVectorEnv`.
    """

    def __init__(self, tree: list[tuple[int, int]], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tree = list(tree)

    def interdependence(self) -> nx.DiGraph:
        """The robot's kinematic tree between agents (parent joint -> child joint): the
        DAG to give B2MAPO as ``fixed_dag`` and to score a learned graph against."""
        graph = nx.DiGraph()
        graph.add_nodes_from(range(self.spec.n_agents))
        graph.add_edges_from(self._tree)
        return graph


def make_mamujoco(
    task: str | None = None,
    num_envs: int = 1,
    seed: int = 0,
    agent_obsk: int | None = 1,
    episode_limit: int | None = None,
    num_workers: int | None = None,
    **kwargs: Any,
) -> MaMuJoCoVectorEnv:
    """``mamujoco:<Scenario>-<agent_conf>``, e.g. ``mamujoco:HalfCheetah-6x1``.

    Args:
        task: scenario and agent configuration.
        num_envs: copies, spread over ``num_workers`` worker processes.
        seed: copy ``e`` is first reset with ``seed + e``.
        agent_obsk: neighbourhood depth of the observations (MaMuJoCo's ``agent_obsk``).
        episode_limit: steps per episode (default: the scenario's limit, 1000).
        num_workers: worker processes (default ``min(num_envs, cpu count)``).
        **kwargs: passed to ``mamujoco_v1.parallel_env``.

    Raises:
        ValueError: unknown scenario or agent configuration.
    """
    scenario, conf = split_task(task)
    factory = functools.partial(MaMuJoCoCopy, scenario, conf, agent_obsk, episode_limit, **kwargs)
    try:  # fail here, with a clear message, rather than inside the workers
        probe = factory()
        tree = probe.joint_tree()
        probe.close()
    except ImportError:
        raise
    except Exception as exc:
        raise ValueError(
            f"cannot make mamujoco:{task} (scenario {scenario!r}, agent_conf {conf!r}): {exc}"
        ) from exc
    return MaMuJoCoVectorEnv(
        tree, factory, num_envs, seed=seed, num_workers=num_workers, env_id=f"mamujoco:{task}"
    )
