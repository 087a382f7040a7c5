"""PettingZoo/MPE and VMAS adapters against the real packages: protocol, auto-reset, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_envs_coordination import check_timestep

import mapograph as mg


def run_protocol(env, steps: int) -> int:
    ts = env.reset()
    check_timestep(ts, env.spec, env.num_envs)
    assert ts.avail_actions.any(-1).all()
    gen = torch.Generator().manual_seed(0)
    finished = 0
    low, high = env.spec.action_bounds()
    for _ in range(steps):
        if env.spec.continuous:  # uniform inside every agent's box
            actions = low + torch.rand(env.num_envs, *low.shape, generator=gen) * (high - low)
        else:
            logits = torch.where(ts.avail_actions, 0.0, -1e9)
            actions = torch.distributions.Categorical(logits=logits).sample()
        ts = env.step(actions)
        check_timestep(ts, env.spec, env.num_envs)
        finished += int(ts.done.sum())
    return finished


def test_mpe_simple_spread_protocol_and_auto_reset():
    pytest.importorskip("mpe2")
    env = mg.envs.make("mpe:simple_spread_v3", num_envs=3, seed=0, max_cycles=5)
    assert env.spec.n_agents == 3 and env.spec.n_actions == 5 and env.spec.episode_limit == 5
    assert run_protocol(env, 11) == 6  # every copy ended twice (after 5 and 10 steps)
    env.close()


def test_mpe_is_reproducible_and_pads_unequal_observations():
    pytest.importorskip("mpe2")
    a = mg.envs.make("mpe:simple_spread_v3", num_envs=2, seed=4)
    b = mg.envs.make("mpe:simple_spread_v3", num_envs=2, seed=4)
    assert torch.equal(a.reset().obs, b.reset().obs)
    adv = mg.envs.make("mpe:simple_adversary_v3", num_envs=2, seed=0)  # agents see 8 or 10 numbers
    ts = adv.reset()
    assert adv.spec.obs_dim == 10 and ts.obs.shape == (2, 3, 10)
    assert torch.all(ts.obs[:, 0, 8:] == 0)  # the adversary's shorter observation is zero-padded


def test_mpe_trains_with_mappo():
    pytest.importorskip("mpe2")
    env = mg.envs.make("mpe:simple_spread_v3", num_envs=4, seed=0, max_cycles=10)
    cfg = mg.TrainConfig(
        algo="happo", total_steps=4 * 32 * 2, rollout_length=32, num_envs=4, progress=False
    )
    history = mg.Trainer(env, cfg).train().history
    assert len(history) == 2 and all(h["episodes"] > 0 for h in history)


def test_vmas_protocol_and_auto_reset():
    pytest.importorskip("vmas")
    env = mg.envs.make("vmas:balance", num_envs=3, seed=0, episode_limit=4)
    assert env.spec.n_agents >= 2
    assert run_protocol(env, 9) == 6


@pytest.mark.parametrize("scenario", ["balance", "transport", "wheel", "navigation"])
def test_vmas_scenarios_follow_the_protocol(scenario):
    pytest.importorskip("vmas")
    env = mg.envs.make(f"vmas:{scenario}", num_envs=2, seed=0, episode_limit=3)
    assert run_protocol(env, 4) == 2  # wheel gives per-agent rewards as [E, 1]: still [E]


def test_a_vmas_env_keeps_its_own_random_streams():
    pytest.importorskip("vmas")
    import random

    def starts(env, other=None):  # first observations of three resets (random positions)
        rows = []
        for _ in range(3):
            rows.append(env.reset().obs.clone())
            if other is not None:  # another env drawing in between
                other.reset()
                random.random(), np.random.rand(), torch.rand(1)
        return rows

    alone = starts(mg.envs.make("vmas:balance", num_envs=2, seed=0))
    first = mg.envs.make("vmas:balance", num_envs=2, seed=0)
    second = mg.envs.make("vmas:balance", num_envs=2, seed=1)  # used to reseed the first
    assert all(torch.equal(a, b) for a, b in zip(alone, starts(first, second)))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    env = mg.envs.make("vmas:balance", num_envs=2, seed=5)  # VMAS seeds the global RNGs
    env.step(torch.zeros(2, env.spec.n_agents, env.spec.n_actions))
    assert torch.equal(torch.rand(3), expected)  # the caller's stream is untouched


def test_arguments_a_family_does_not_take_are_named():
    with pytest.raises(ValueError, match="coordination:chain-4.*colour"):
        mg.envs.make("coordination:chain-4", colour="red")
    pytest.importorskip("mpe2")
    with pytest.raises(ValueError, match="colour"):
        mg.envs.make("mpe:simple_spread_v3", colour="red")
    pytest.importorskip("vmas")
    with pytest.raises(ValueError, match=r"'balance': it takes no argument\(s\) \{'colour'"):
        mg.envs.make("vmas:balance", colour="red")  # VMAS only warned, and trained balance
    assert mg.envs.make("vmas:balance", n_agents=3).spec.n_agents == 3


def test_continuous_actions_must_be_a_bool():
    """A string such as ``continuous_actions=maybe`` (``--env-kwarg``) is refused, not truthy."""
    pytest.importorskip("vmas")
    with pytest.raises(ValueError, match="continuous_actions must be true or false"):
        mg.envs.make("vmas:balance", num_envs=1, continuous_actions="false")
    pytest.importorskip("mpe2")
    with pytest.raises(ValueError, match="continuous_actions must be true or false"):
        mg.envs.make("mpe:simple_spread_v3", num_envs=1, continuous_actions="maybe")


def test_vmas_trains_with_b2mapo():
    pytest.importorskip("vmas")
    env = mg.envs.make("vmas:balance", num_envs=4, seed=0, episode_limit=8)
    cfg = mg.TrainConfig(
        algo="b2mapo", total_steps=4 * 16 * 2, rollout_length=16, num_envs=4, progress=False
    )
    trainer = mg.Trainer(env, cfg)
    history = trainer.train().history
    assert len(history) == 2
    assert sorted(a for b in history[-1]["batches"] for a in b) == list(range(env.spec.n_agents))
    assert trainer.interdependence().number_of_nodes() == env.spec.n_agents


def test_unknown_scenarios_are_clear():
    pytest.importorskip("vmas")
    with pytest.raises(ValueError, match="VMAS scenario"):
        mg.envs.make("vmas:no_such_scenario", num_envs=1)
    pytest.importorskip("mpe2")
    with pytest.raises(ValueError, match="MPE scenario"):
        mg.envs.make("mpe:no_such_scenario", num_envs=1)


def test_a_pettingzoo_env_whose_state_is_not_a_method_falls_back_to_the_observations():
    pytest.importorskip("pettingzoo.classic")
    # rock-paper-scissors keeps a dict in `self.state`: no global state method
    env = mg.envs.make("pettingzoo:pettingzoo.classic.rps_v2", num_envs=2, seed=0)
    assert env.spec.state_dim == env.spec.n_agents * env.spec.obs_dim
    assert run_protocol(env, 20) > 0
