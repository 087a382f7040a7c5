"""Google Research Football adapter (``football:<scenario>``) on the real gfootball engine.

The engine tests need gfootball (``.ci/install_football.sh``) and are marked
``football``; they are skipped where it is not installed. The argument checks run
everywhere.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from mapograph import OptionalDependencyError
from mapograph.envs import WorkerError, _football, make

needs_gfootball = [
    pytest.mark.football,
    pytest.mark.skipif(
        importlib.util.find_spec("gfootball") is None, reason="gfootball is not installed"
    ),
]
SHOT, RIGHT, IDLE = 12, 5, 0
ACTIVE = slice(97, 108)  # one-hot of the active player in simple115


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task": "academy_nowhere"}, "unknown football scenario 'academy_nowhere'"),
        ({"task": None}, "unknown football scenario None"),
        ({"task": "academy_corner", "rewards": "checkpoints"}, "rewards must be one of"),
        ({"task": "academy_corner", "reward_reduction": "max"}, "reward_reduction"),
        ({"task": "academy_corner", "representation": "pixels"}, "representation"),
        ({"task": "academy_corner", "n_agents": 12}, r"n_agents must be an int in \[1, 11\]"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _football.make_football(num_envs=1, **kwargs)


def test_missing_gfootball_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gfootball" else real(name)
    )
    with pytest.raises(OptionalDependencyError, match=r"(?s)mapograph\[football\].*apt-get"):
        make("football:academy_3_vs_1_with_keeper")


def _football_test(fn):
    for mark in needs_gfootball:
        fn = mark(fn)
    return fn


@_football_test
def test_spec_shapes_and_state_of_3_vs_1():
    with make("football:academy_3_vs_1_with_keeper", num_envs=2, seed=0, num_workers=2) as env:
        assert (env.spec.n_agents, env.spec.obs_dim, env.spec.state_dim) == (3, 115, 115)
        assert (env.spec.n_actions, env.spec.episode_limit) == (19, 400)
        ts = env.reset()
        g = torch.Generator().manual_seed(0)
        for _ in range(10):
            assert ts.obs.shape == (2, 3, 115) and ts.obs.dtype == torch.float32
            assert ts.state.shape == (2, 115) and ts.avail_actions.all()
            active = ts.obs[..., ACTIVE]
            # every agent drives one player, all different; the state marks all three
            assert torch.equal(active.sum(-1), torch.ones(2, 3))
            assert torch.equal(active.sum(1).amax(-1), torch.ones(2))
            assert torch.equal(ts.state[:, ACTIVE].sum(-1), torch.full((2,), 3.0))
            # outside that block the agents see the same global vector, which is the state
            rest = torch.cat([ts.obs[..., :97], ts.obs[..., 108:]], -1)
            assert torch.equal(rest, rest[:, :1].expand_as(rest))
            assert torch.equal(ts.state[:, :97], ts.obs[:, 0, :97])
            ts = env.step(torch.randint(0, 19, (2, 3), generator=g))


@_football_test
def test_copies_are_seeded_seed_plus_index_whatever_the_worker_layout():
    rng = np.random.default_rng(0)
    actions = [torch.as_tensor(rng.integers(19, size=(2, 3))) for _ in range(120)]

    def run(seed, copies, num_workers):
        with make(
            "football:academy_3_vs_1_with_keeper",
            num_envs=len(copies),
            seed=seed,
            num_workers=num_workers,
        ) as env:
            obs = [env.reset().obs]
            obs += [env.step(a[copies]).obs for a in actions]
        return torch.stack(obs, 1)  # [E, T, N, obs]

    shared = run(0, [0, 1], num_workers=1)  # two engines in one worker
    assert torch.equal(shared, run(0, [0, 1], num_workers=2))
    assert torch.equal(shared[1], run(1, [1], num_workers=1)[0])  # copy 1 of seed 0 = seed 1
    assert not torch.equal(shared[0], shared[1])


@_football_test
@pytest.mark.parametrize(("reduction", "goal_reward"), [("mean", 1.0), ("sum", 2.0)])
def test_goal_gives_reward_win_and_resets(reduction, goal_reward):
    with make(
        "football:academy_empty_goal_close", num_envs=1, n_agents=2, reward_reduction=reduction
    ) as env:
        first = env.reset()
        rewards = []
        for t in range(60):
            ts = env.step(torch.tensor([[IDLE, RIGHT if t < 3 else SHOT]]))
            rewards.append(float(ts.reward))
            if ts.done.any():
                break
        assert ts.done.item() and not ts.truncated.item()
        assert rewards[-1] == goal_reward and not any(rewards[:-1])
        assert ts.info["won"].item() == 1.0 and ts.info["goal_diff"].item() == 1.0
        assert torch.equal(ts.obs, first.obs)  # auto-reset to the scenario's start


@_football_test
def test_episode_limit_truncates_without_a_win():
    with make("football:academy_empty_goal_close", num_envs=1, episode_limit=3) as env:
        env.reset()
        for _ in range(2):
            assert not env.step(torch.tensor([[IDLE]])).done.any()
        ts = env.step(torch.tensor([[IDLE]]))
        assert ts.done.item() and ts.truncated.item() and ts.info["won"].item() == 0.0
    with pytest.raises(WorkerError, match=r"episode_limit must lie in \[1, 400\]"):
        make("football:academy_empty_goal_close", num_envs=1, episode_limit=401)
