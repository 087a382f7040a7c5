"""Climbing-game edges on the contextual layouts: payoffs, optimum, equilibria (their pooled
invisibility is tested with the contextual games')."""

from __future__ import annotations

import pytest
import torch

import mapograph as mg
from mapograph.envs._contextual import CLIMBING


@pytest.mark.parametrize("task", ["chain-2", "tree-7", "random-10", "mixed-12", "random-64"])
def test_protocol_optimum_and_random_play(task):
    env = mg.envs.make(f"climbing:{task}", num_envs=8192, seed=1)
    ts = env.reset()
    n = env.spec.n_agents
    assert env.spec.n_actions == 3 and ts.obs.shape == (8192, n, env.spec.obs_dim)
    assert torch.allclose(env.step(env.optimal_actions()).reward, torch.ones(8192))
    random = env.step(torch.randint(0, 3, (8192, n))).reward.mean()
    # uniform play: the mean of the 3 x 3 payoffs, (11 - 30 + 0 - 30 + 7 + 6 + 0 + 0 + 5) / 99
    # (one edge: a per-step standard deviation of ~1.1, so ~0.012 over 8192 copies)
    assert abs(float(random) - (-31 / 99)) < 0.04


def test_each_edge_pays_the_climbing_matrix_of_the_decoded_actions():
    env = mg.envs.make("climbing:chain-2", num_envs=1, seed=3)
    env.reset()
    best = env.optimal_actions()  # decoded action 0 for both
    ((parent, child),) = env.interdependence().edges
    for e_parent in range(3):
        for e_child in range(3):
            actions = best.clone()
            actions[0, parent] = (best[0, parent] + e_parent) % 3
            actions[0, child] = (best[0, child] + e_child) % 3
            reward = float(env.team_reward(actions, env.signal, env.context))
            assert reward == pytest.approx(float(CLIMBING[e_parent, e_child]))


def test_the_suboptimal_equilibrium_and_a_decentralized_optimum():
    """All agents on decoded 1: no agent gains alone (a suboptimal Nash profile); all on
    the safe action 2: the root gains by climbing to 1; the optimal action is a function
    of the agent's own observation."""
    env = mg.envs.make("climbing:tree-7", num_envs=512, seed=0)
    ts = env.reset()
    best = env.optimal_actions()
    root = next(v for v in range(7) if env.interdependence().in_degree(v) == 0)

    def deviations(profile):
        for agent in range(7):
            for other in (1, 2):
                moved = profile.clone()
                moved[:, agent] = (moved[:, agent] + other) % 3
                yield agent, env.team_reward(moved, env.signal, env.context)

    coordinated = (best + 1) % 3
    value = env.team_reward(coordinated, env.signal, env.context)
    assert torch.allclose(value, torch.full_like(value, 7 / 11))
    assert all(bool((reward < value).all()) for _, reward in deviations(coordinated))
    safe = (best + 2) % 3
    value = env.team_reward(safe, env.signal, env.context)
    assert torch.allclose(value, torch.full_like(value, 5 / 11))
    assert any(agent == root and bool((reward > value).all()) for agent, reward in deviations(safe))
    for agent in range(7):
        table: dict = {}
        for row, action in zip(ts.obs[:, agent].tolist(), best[:, agent].tolist()):
            assert table.setdefault(tuple(row), action) == action


@pytest.mark.parametrize("role", ["parent", "child"])
def test_relative_overgeneralization_against_uniform_partners(role):
    """Against a uniformly random partner the optimal action earns less than the safe one,
    whichever end of the edge the agent is."""
    env = mg.envs.make("climbing:chain-2", num_envs=8192, seed=2)
    env.reset()
    ((parent, child),) = env.interdependence().edges
    me, partner = (parent, child) if role == "parent" else (child, parent)
    best = env.optimal_actions()
    noise = torch.randint(0, 3, (8192,), generator=torch.Generator().manual_seed(0))
    earned = []
    for e_me in range(3):
        actions = best.clone()
        actions[:, partner] = noise
        actions[:, me] = (best[:, me] + e_me) % 3
        earned.append(float(env.team_reward(actions, env.signal, env.context).mean()))
    assert earned[0] < earned[2] and max(earned) == earned[2]
    assert earned[0] == pytest.approx(-19 / 33, abs=0.03)


@pytest.mark.parametrize(
    ("task", "kwargs", "match"),
    [
        ("ring-5", {}, "unknown climbing task"),
        ("chain-65", {}, "2..64 agents"),
        ("chain-5", {"n_actions": 2}, "n_actions must be an int >= 3"),
    ],
)
def test_bad_arguments_raise(task, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mg.envs.make(f"climbing:{task}", **kwargs)


def test_unknown_payoff_is_refused():
    with pytest.raises(ValueError, match="unknown payoff 'penalty'"):
        mg.envs.ContextualEnv("chain", 3, payoff="penalty")
