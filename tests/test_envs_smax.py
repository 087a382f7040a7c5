"""SMAX adapter (``smax:<map>``) against jaxmarl's real environment."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from mapograph.envs import make

pytestmark = [
    pytest.mark.smax,
    pytest.mark.skipif(importlib.util.find_spec("jaxmarl") is None, reason="jaxmarl missing"),
]
N_MOVES = 5  # four directions and stop come before the attack actions


def focus_fire(avail: torch.Tensor) -> torch.Tensor:
    """Attack the lowest-index enemy in range, else move (or whatever is available)."""
    attack = avail[..., N_MOVES:]
    act = torch.where(
        attack.any(-1), attack.float().argmax(-1) + N_MOVES, torch.ones(avail.shape[:2]).long()
    )
    ok = avail.gather(-1, act[..., None]).squeeze(-1)
    return torch.where(ok, act, avail.float().argmax(-1))


def test_spec_shapes_and_agreement_with_jaxmarl():
    import jax
    from jaxmarl.environments.smax import HeuristicEnemySMAX, map_name_to_scenario

    env = make("smax:3m", num_envs=8, seed=3)  # 8 copies in every 3m test: one compilation
    assert (env.spec.n_agents, env.spec.n_actions, env.spec.episode_limit) == (3, 8, 101)
    ts = env.reset()
    assert ts.obs.shape == (8, 3, env.spec.obs_dim) and ts.obs.dtype == torch.float32
    assert ts.state.shape == (8, env.spec.state_dim) and ts.state.dtype == torch.float32
    assert ts.avail_actions.shape == (8, 3, 8) and ts.avail_actions.dtype == torch.bool
    assert not ts.done.any() and torch.equal(ts.reward, torch.zeros(8))

    # the same keys handed to jaxmarl give the same first observations, state and masks
    ref = HeuristicEnemySMAX(scenario=map_name_to_scenario("3m"))
    _, sub = jax.random.split(jax.random.PRNGKey(3))
    for e, key in enumerate(jax.random.split(sub, 8)):
        obs, state = ref.reset(key)
        avail = ref.get_avail_actions(state)
        for i, agent in enumerate(ref.agents):
            np.testing.assert_array_equal(ts.obs[e, i].numpy(), np.asarray(obs[agent]))
            np.testing.assert_array_equal(ts.avail_actions[e, i].numpy(), np.asarray(avail[agent]))
        np.testing.assert_array_equal(ts.state[e].numpy(), np.asarray(obs["world_state"]))
    env.close()


def test_reproducible_by_seed():
    def run(seed):
        env = make("smax:2s3z", num_envs=3, seed=seed)
        ts = env.reset()
        out = [ts.obs]
        for _ in range(20):
            ts = env.step(focus_fire(ts.avail_actions))
            out.append(ts.obs)
        return torch.stack(out)

    first = run(0)
    assert torch.equal(first, run(0))
    assert not torch.equal(first, run(1))


def test_focus_fire_wins_some_battles_with_win_bonus():
    env = make("smax:3m", num_envs=8, seed=0)
    ts = env.reset()
    wins = episodes = 0
    for _ in range(150):
        ts = env.step(focus_fire(ts.avail_actions))
        won = ts.info["won"]
        assert torch.equal(torch.isnan(won), ~ts.done)  # reported only where an episode ended
        if ts.done.any():
            episodes += int(ts.done.sum())
            wins += int(won[ts.done].sum())
            # a win pays the won_battle_bonus (1.0) on top of the damage reward
            assert (ts.reward[ts.done & (won == 1)] >= 1.0).all()
            assert not ts.truncated[ts.done & (won == 1)].any()
    assert episodes > 16 and 0 < wins < episodes


def test_time_limit_is_truncation_and_copies_reset():
    env = make("smax:3m", num_envs=8, seed=0, max_steps=3)
    assert env.spec.episode_limit == 4  # jaxmarl: max_steps + 1
    ts = env.reset()
    stay = torch.full((8, 3), 4)  # everybody stops: nobody dies in four steps
    for _ in range(3):
        assert not env.step(stay).done.any()
    ts = env.step(stay)
    assert ts.done.all() and ts.truncated.all()
    assert torch.equal(ts.info["won"], torch.zeros(8))
    assert not env.step(stay).done.any()  # a fresh episode started


def test_bad_input():
    with pytest.raises(ValueError, match="unknown SMAX map 'nope'.*3m"):
        make("smax:nope")
    with pytest.raises(ValueError, match="needs a map"):
        make("smax")
    with pytest.raises(ValueError, match="max_steps"):
        make("smax:3m", max_steps=0)
    env = make("smax:3m", num_envs=8)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(8, 3, dtype=torch.long))
    env.reset()
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(8, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 7\]"):
        env.step(torch.full((8, 3), 8))
