"""Google Research Football (``football:<scenario>``) in worker processes.

gfootball runs one game engine per process, so every copy lives in a worker of a
:class:`~mapograph.envs.WorkerVectorEnv`. ``N`` left players are controlled
(``number_of_left_players_agent_controls``); when a team has more controllable
players than ``N``, the engine picks which ones each agent drives (gfootball's
dynamic player selection), exactly as in the MAPPO/HAPPO/A2PO football setups.

* **obs** ``[N, 115]``: ``simple115v2`` of each controlled player (global
  positions/directions of both teams, the ball, its owner, a one-hot of the active
  player and the game mode; absent players padded with -1).
* **state** ``[115]``: the same vector with the active-player block holding every
  controlled player (the element-wise max over the agents' observations: all other
  entries are identical across agents).
* **actions**: gfootball's default action set, 19 actions, all always available.
* **reward**: ``rewards="scoring"`` (+1 per goal scored, -1 per goal conceded) or
  ``"scoring,checkpoints"`` (plus 0.1 per checkpoint zone towards the goal reached
  by a player owning the ball, at most 1.0 per player and episode; on a goal every
  player is credited the checkpoints it has not collected). gfootball hands one
  reward per player; the team reward is their mean (``reward_reduction="mean"``,
  the default: a goal is worth 1, a scoring episode with checkpoints returns 2.0
  whatever ``N``) or their sum (``"sum"``).
* **episodes** end on a goal, the ball going out of play or a change of possession
  (academy scenarios), or after ``game_duration`` steps of the scenario (400 for the
  academy, 3000 for full games), which is ``spec.episode_limit`` and is reported as
  ``truncated``. ``TimeStep.info["won"]`` (1.0 / 0.0) and ``info["goal_diff"]`` are
  set on copies whose episode ended, NaN elsewhere.
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
import tempfile
import warnings
from typing import Any

import numpy as np

from mapograph._errors import OptionalDependencyError
from mapograph.envs._subprocess import WorkerVectorEnv
from mapograph.envs._types import EnvSpec

__all__ = ["FOOTBALL_AGENTS", "FootballCopy", "make_football"]

#: Controlled left players per scenario when ``n_agents`` is not given (the numbers
#: used by the MAPPO / HAPPO / A2PO papers for the academy scenarios).
FOOTBALL_AGENTS: dict[str, int] = {
    "academy_3_vs_1_with_keeper": 3,
    "academy_counterattack_easy": 4,
    "academy_counterattack_hard": 4,
    "academy_pass_and_shoot_with_keeper": 2,
    "academy_run_pass_and_shoot_with_keeper": 2,
    "academy_corner": 10,
    "academy_empty_goal": 1,
    "academy_empty_goal_close": 1,
    "academy_run_to_score": 1,
    "academy_run_to_score_with_keeper": 1,
    "academy_single_goal_versus_lazy": 10,
    "1_vs_1_easy": 1,
    "5_vs_5": 4,
    "11_vs_11_stochastic": 10,
    "11_vs_11_easy_stochastic": 10,
    "11_vs_11_hard_stochastic": 10,
    "11_vs_11_competition": 10,
    "11_vs_11_kaggle": 10,
}

_REWARDS = ("scoring", "scoring,checkpoints")
_REDUCTIONS = ("mean", "sum")
_REPRESENTATIONS = ("simple115v2", "simple115")
_ACTIVE = slice(97, 108)  # one-hot of the active player inside simple115

INSTALL_HINT = (
    "gfootball also needs system packages and a compile step: on Debian/Ubuntu "
    "`apt-get install git cmake build-essential libgl1-mesa-dev libsdl2-dev libsdl2-image-dev "
    "libsdl2-ttf-dev libsdl2-gfx-dev libboost-all-dev libdirectfb-dev libst-dev mesa-utils "
    'xvfb x11vnc`, then `pip install psutil setuptools wheel six "gym<0.26"` and '
    "`pip install --no-build-isolation gfootball` (4-8 minutes). The script "
    ".ci/install_football.sh does all of it; see docs/environments.md"
)


class FootballCopy:
    """One gfootball game (a :class:`~mapograph.envs.SingleCopyEnv`), built inside a worker.

    Args:
        scenario: gfootball scenario name, e.g. ``"academy_3_vs_1_with_keeper"``.
        n_agents: controlled left players.
        rewards: ``"scoring"`` or ``"scoring,checkpoints"``.
        reward_reduction: ``"mean"`` or ``"sum"`` of the per-player rewards.
        episode_limit: steps per episode, at most the scenario's ``game_duration``
            (default: ``game_duration``).
        representation: ``"simple115v2"`` (default) or ``"simple115"``.
    """

    def __init__(
        self,
        scenario: str,
        n_agents: int,
        rewards: str = "scoring",
        reward_reduction: str = "mean",
        episode_limit: int | None = None,
        representation: str = "simple115v2",
    ) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gym<0.26 deprecation chatter
            import gfootball.env as football_env

            self._logdir = tempfile.mkdtemp(prefix="mapograph-football-")
            self._env = football_env.create_environment(
                env_name=scenario,
                representation=representation,
                rewards=rewards,
                number_of_left_players_agent_controls=n_agents,
                render=False,
                write_video=False,
                write_goal_dumps=False,
                write_full_episode_dumps=False,
                logdir=self._logdir,
            )
        self._config = self._env.unwrapped._config
        self._rng = np.random.default_rng(0)
        self._reduction = reward_reduction
        self._n = n_agents
        self._seed_engine(0)
        self._env.reset()  # builds the scenario, which sets game_duration
        self.game_duration = int(self._config.ScenarioConfig().game_duration)
        limit = self.game_duration if episode_limit is None else int(episode_limit)
        if not 1 <= limit <= self.game_duration:
            raise ValueError(
                f"episode_limit must lie in [1, {self.game_duration}] (the game_duration of "
                f"{scenario!r}), got {episode_limit!r}"
            )
        obs_dim = int(self._env.observation_space.shape[-1])  # [N, 115], or [115] when N = 1
        space = self._env.action_space  # MultiDiscrete, or Discrete when N = 1
        self.spec = EnvSpec(
            n_agents=n_agents,
            obs_dim=obs_dim,
            state_dim=obs_dim,
            n_actions=int(space.nvec[0] if hasattr(space, "nvec") else space.n),
            episode_limit=limit,
        )
        self._avail = np.ones((n_agents, self.spec.n_actions), dtype=bool)
        self._t = 0
        self._goal_diff = 0.0

    def _first(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        obs = obs.reshape(self._n, -1)
        return {"obs": obs, "state": obs.max(axis=0), "avail": self._avail}

    def _seed_engine(self, engine_seed: int) -> None:
        # gfootball draws an unseeded engine seed (python `random`) when none is set, and
        # keeps `reverse_team_processing` from the first episode's seed forever: set both.
        self._config["game_engine_random_seed"] = engine_seed
        self._config["reverse_team_processing"] = bool(engine_seed % 2)

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Start a match; the engine seed of every episode is drawn from the copy's stream."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._seed_engine(int(self._rng.integers(2**31 - 1)))
        self._t = 0
        self._goal_diff = 0.0
        return self._first(self._env.reset())

    def step(self, actions: np.ndarray) -> tuple:
        """Advance one step with one action per controlled player."""
        actions = np.asarray(actions, dtype=np.int64).reshape(self._n)
        obs, rewards, done, info = self._env.step(actions if self._n > 1 else int(actions[0]))
        rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
        score = float(info.get("score_reward", 0.0))
        reward = float(rewards.mean() if self._reduction == "mean" else rewards.sum())
        self._t += 1
        self._goal_diff += score
        first = self._first(obs)
        truncated = bool(done) and self._t >= self.game_duration and score == 0.0
        out_info: dict[str, Any] = {}
        if done or self._t >= self.spec.episode_limit:
            out_info = {"won": float(self._goal_diff > 0), "goal_diff": self._goal_diff}
        return (
            first["obs"],
            first["state"],
            first["avail"],
            reward,
            bool(done) and not truncated,
            truncated,
            out_info,
        )

    def close(self) -> None:
        """Stop the engine and delete the copy's log directory."""
        try:
            self._env.close()
        finally:
            shutil.rmtree(self._logdir, ignore_errors=True)


def _require_gfootball() -> None:
    if importlib.util.find_spec("gfootball") is None:
        raise OptionalDependencyError(
            "'gfootball' is needed for football:* envs but is not installed. "
            f'Install it with: pip install "mapograph[football]". {INSTALL_HINT}'
        )


def make_football(
    num_envs: int = 1,
    seed: int = 0,
    task: str | None = None,
    n_agents: int | None = None,
    rewards: str = "scoring",
    reward_reduction: str = "mean",
    episode_limit: int | None = None,
    representation: str = "simple115v2",
    num_workers: int | None = None,
    timeout: float = 120.0,
    context: str = "spawn",
) -> WorkerVectorEnv:
    """Build ``football:<scenario>``: ``num_envs`` gfootball games in worker processes.

    Args:
        num_envs: copies ``E``.
        seed: copy ``e``'s engine seeds are drawn from a stream seeded with ``seed + e``.
        task: the scenario, e.g. ``"academy_3_vs_1_with_keeper"`` (see ``FOOTBALL_AGENTS``).
        n_agents: controlled left players (default from ``FOOTBALL_AGENTS``).
        rewards: ``"scoring"`` or ``"scoring,checkpoints"``.
        reward_reduction: ``"mean"`` (default) or ``"sum"`` of gfootball's per-player
            rewards.
        episode_limit: steps per episode (default and maximum: the scenario's
            ``game_duration``).
        representation: ``"simple115v2"`` or ``"simple115"``.
        num_workers: worker processes (default ``min(num_envs, cpu_count)``).
        timeout: seconds a worker may take to answer one command.
        context: ``"spawn"`` or ``"forkserver"``.

    Raises:
        ValueError: unknown scenario, reward or representation, bad ``n_agents``.
        OptionalDependencyError: gfootball is not installed (the message says how).
    """
    if task is None or task not in FOOTBALL_AGENTS:
        raise ValueError(
            f"unknown football scenario {task!r}; known: {', '.join(sorted(FOOTBALL_AGENTS))}"
        )
    if rewards not in _REWARDS:
        raise ValueError(f"rewards must be one of {_REWARDS}, got {rewards!r}")
    if reward_reduction not in _REDUCTIONS:
        raise ValueError(f"reward_reduction must be one of {_REDUCTIONS}, got {reward_reduction!r}")
    if representation not in _REPRESENTATIONS:
        raise ValueError(
            f"representation must be one of {_REPRESENTATIONS}, got {representation!r}"
        )
    if n_agents is None:
        n_agents = FOOTBALL_AGENTS[task]
    if not isinstance(n_agents, int) or not 1 <= n_agents <= 11:
        raise ValueError(f"n_agents must be an int in [1, 11], got {n_agents!r}")
    _require_gfootball()
    factory = functools.partial(
        FootballCopy,
        scenario=task,
        n_agents=n_agents,
        rewards=rewards,
        reward_reduction=reward_reduction,
        episode_limit=episode_limit,
        representation=representation,
    )
    return WorkerVectorEnv(
        factory,
        num_envs=num_envs,
        seed=seed,
        num_workers=num_workers,
        env_id=f"football:{task}",
        timeout=timeout,
        context=context,
    )
