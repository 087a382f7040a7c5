"""benchmarks/interdependence.py: the equilibrium probe of a greedy joint policy."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import interdependence  # noqa: E402
from interdependence import profile_equilibrium  # noqa: E402

import mapograph as mg  # noqa: E402


def _decoded(env, decoded: torch.Tensor) -> torch.Tensor:
    """Actions whose decoded values are ``decoded`` ``[E, N]``."""
    return (decoded + env.offsets[None] + env.context) % env.spec.n_actions


def test_optimum_is_optimal_and_a_wrong_convention_is_a_suboptimal_nash_profile():
    env = mg.envs.make("contextual:tree-7", num_envs=256, seed=0)
    env.reset()
    best = profile_equilibrium(env, env.optimal_actions())
    assert best == {"optimal_states": 1.0, "nash_states": 1.0, "subopt_nash_states": 0.0}
    # every agent agrees on the wrong value: all edges hold, every own term fails;
    # the root (two children) loses 2 edges for its own term: nobody gains alone
    wrong = (1 - env.signal)[:, None].expand(-1, env.spec.n_agents)
    stuck = profile_equilibrium(env, _decoded(env, wrong))
    assert stuck == {"optimal_states": 0.0, "nash_states": 1.0, "subopt_nash_states": 1.0}


def test_a_lone_wrong_root_is_not_an_equilibrium():
    env = mg.envs.make("contextual:tree-7", num_envs=256, seed=0)
    env.reset()
    root = next(v for v in env.interdependence() if env.interdependence().in_degree(v) == 0)
    decoded = env.signal[:, None].repeat(1, env.spec.n_agents)
    decoded[:, root] = 1 - decoded[:, root]
    result = profile_equilibrium(env, _decoded(env, decoded))
    assert result == {"optimal_states": 0.0, "nash_states": 0.0, "subopt_nash_states": 0.0}


def test_explore_variants_add_the_behaviour_epsilon_to_their_base_variant():
    env = mg.envs.make("contextual:tree-7", num_envs=1, seed=0)
    true_dag = interdependence.variant_config("b2mapo_true", env, 0)
    explored = interdependence.variant_config("b2mapo_true_explore", env, 0)
    assert explored == {
        **true_dag,
        "behaviour_epsilon": interdependence.EXPLORE["behaviour_epsilon"],
    }
    assert interdependence.variant_config("mappo_explore", env, 0)["algo"] == "mappo"
    mg.TrainConfig(**explored).validate()


def test_ignoring_the_public_signal_is_the_climbing_games_070_convention():
    """Every agent decoding its own context but ignoring the public signal ``c``: all
    decoded actions equal ``-c``, so a third of the states are at the optimum, a third at
    the Nash profile ``e = 1`` and a third at the safe profile (not Nash), worth
    ``(11 + 7 + 5) / 33`` per step (the level the conditioned climbing layouts stop at)."""
    env = mg.envs.make("climbing:tree-7", num_envs=6000, seed=0)
    env.reset()
    ignoring = (env.offsets[None] + env.context) % env.spec.n_actions
    reward = env.team_reward(ignoring, env.signal, env.context)
    by_signal = [float(reward[env.signal == c].mean()) for c in range(3)]
    torch.testing.assert_close(torch.tensor(by_signal), torch.tensor([1.0, 5 / 11, 7 / 11]))
    result = profile_equilibrium(env, ignoring)
    share = [float((env.signal == c).float().mean()) for c in range(3)]
    assert abs(result["optimal_states"] - share[0]) < 1e-6
    assert abs(result["subopt_nash_states"] - share[2]) < 1e-6  # e = 1 is Nash, e = 2 is not
