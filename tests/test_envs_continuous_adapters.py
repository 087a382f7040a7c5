"""Continuous adapters against the real packages (MaMuJoCo, VMAS, MPE) and truncation bootstrap."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from test_envs_adapters import run_protocol

import mapograph as mg
from mapograph.algos._advantages import gae

needs_mamujoco = pytest.mark.skipif(
    importlib.util.find_spec("gymnasium_robotics") is None
    or importlib.util.find_spec("mujoco") is None,
    reason='Multi-Agent MuJoCo needs gymnasium-robotics and mujoco: pip install "mapograph[mamujoco]"',
)


@needs_mamujoco
@pytest.mark.parametrize(
    ("task", "n_agents", "sizes"),
    [("HalfCheetah-6x1", 6, [1] * 6), ("Walker2d-2x3", 2, [3, 3]), ("Ant-4x2", 4, [2] * 4)],
)
def test_mamujoco_protocol(task, n_agents, sizes):
    env = mg.envs.make(f"mamujoco:{task}", num_envs=2, seed=0, episode_limit=3, num_workers=1)
    try:
        spec = env.spec
        assert spec.continuous and spec.n_agents == n_agents
        assert [s.shape[0] for s in spec.action_spaces] == sizes
        assert run_protocol(env, 6) >= 4  # the time limit ends every copy twice (or earlier)
    finally:
        env.close()


@needs_mamujoco
def test_mamujoco_time_limit_is_a_truncation_with_its_final_state():
    env = mg.envs.make(
        "mamujoco:HalfCheetah-6x1", num_envs=2, seed=0, episode_limit=3, agent_obsk=0
    )
    try:
        assert env.spec.obs_dim < 9  # agent_obsk=0: only the agent's own joint
        first = env.reset()
        actions = torch.full((2, 6, 1), 0.5)
        for _ in range(2):
            ts = env.step(actions)
            assert not ts.done.any() and torch.equal(ts.final_state, ts.state)
        ts = env.step(actions)
        assert ts.done.all() and ts.truncated.all()  # HalfCheetah never terminates
        assert not torch.allclose(ts.final_state, ts.state)  # state before vs after the reset
        assert ts.reward.shape == (2,) and torch.isfinite(ts.reward).all()
        assert first.state.shape == ts.final_state.shape == (2, env.spec.state_dim)
    finally:
        env.close()


@needs_mamujoco
def test_mamujoco_trains_and_stores_final_states():
    env = mg.envs.make("mamujoco:HalfCheetah-6x1", num_envs=2, seed=0, episode_limit=5)
    try:
        cfg = mg.TrainConfig(
            algo="happo", total_steps=2 * 8 * 2, rollout_length=8, progress=False, tensorboard=False
        )
        trainer = mg.Trainer(env, cfg)
        rollout, _, _ = trainer.collector.collect(trainer._behaviour(trainer.plan), 8)
        assert rollout.final_state.shape == (8, 2, env.spec.state_dim)
        assert rollout.truncated[4].all() and not rollout.truncated[:4].any()
        history = trainer.train().history
        assert len(history) == 2 and all(h["episodes"] > 0 for h in history)
        actions = trainer.act(env.reset())
        assert actions.shape == (2, 6, 1) and actions.abs().max() <= 1.0
    finally:
        env.close()


@needs_mamujoco
@pytest.mark.parametrize(
    ("task", "edges"),
    [
        ("HalfCheetah-6x1", [(0, 1), (1, 2), (3, 4), (4, 5)]),  # thigh -> shin -> foot, x2
        ("Hopper-3x1", [(0, 1), (1, 2)]),  # thigh -> leg -> foot
        ("Walker2d-2x3", []),  # each agent a whole leg, both legs on the torso
    ],
)
def test_mamujoco_interdependence_is_the_bodys_joint_tree(task, edges):
    with mg.envs.make(f"mamujoco:{task}", num_envs=1, seed=0, num_workers=1) as env:
        graph = env.interdependence()
    assert sorted(graph.nodes) == list(range(env.spec.n_agents))
    assert sorted(graph.edges) == edges


@needs_mamujoco
def test_b2mapo_runs_on_the_given_joint_tree():
    env = mg.envs.make("mamujoco:HalfCheetah-6x1", num_envs=2, seed=0, episode_limit=5)
    try:
        dag = [list(e) for e in env.interdependence().edges]
        cfg = mg.TrainConfig(
            algo="b2mapo",
            fixed_dag=dag,
            total_steps=2 * 8 * 2,
            rollout_length=8,
            progress=False,
            tensorboard=False,
        )
        trainer = mg.Trainer(env, cfg)
        trainer.train()
        # generations of the tree: thighs, shins, feet
        assert sorted(map(sorted, trainer.batches)) == [[0, 3], [1, 4], [2, 5]]
    finally:
        env.close()


def test_unknown_mamujoco_task_is_clear():
    if importlib.util.find_spec("gymnasium_robotics") is None:
        with pytest.raises(ImportError, match="mamujoco"):
            mg.envs.make("mamujoco:HalfCheetah-6x1")
        return
    with pytest.raises(ValueError, match="mamujoco:NoRobot-2x1"):
        mg.envs.make("mamujoco:NoRobot-2x1")


def test_vmas_is_continuous_by_default_and_discrete_on_request():
    pytest.importorskip("vmas")
    env = mg.envs.make("vmas:balance", num_envs=3, seed=0, episode_limit=4)
    assert env.spec.continuous and env.spec.n_actions == 2
    assert run_protocol(env, 9) == 6
    with pytest.raises(ValueError, match="outside its box"):
        env.step(torch.full((3, env.spec.n_agents, 2), 5.0))
    discrete = mg.envs.make("vmas:balance", num_envs=3, continuous_actions=False, episode_limit=4)
    assert not discrete.spec.continuous and discrete.spec.n_actions == 9
    assert run_protocol(discrete, 9) == 6


def test_vmas_continuous_trains():
    pytest.importorskip("vmas")
    env = mg.envs.make("vmas:balance", num_envs=4, seed=0, episode_limit=8)
    cfg = mg.TrainConfig(
        algo="b2mapo", total_steps=4 * 16 * 2, rollout_length=16, progress=False, tensorboard=False
    )
    history = mg.Trainer(env, cfg).train().history
    assert len(history) == 2 and all(h["episodes"] > 0 for h in history)


def test_mpe_continuous_actions():
    pytest.importorskip("mpe2")
    env = mg.envs.make(
        "mpe:simple_spread_v3", num_envs=2, seed=0, max_cycles=5, continuous_actions=True
    )
    assert env.spec.continuous and env.spec.n_actions == 5
    low, high = env.spec.action_bounds()
    assert float(low.min()) == 0.0 and float(high.max()) == 1.0
    assert run_protocol(env, 10) == 4
    cfg = mg.TrainConfig(
        algo="mappo", total_steps=2 * 10 * 2, rollout_length=10, progress=False, tensorboard=False
    )
    assert len(mg.Trainer(env, cfg).train().history) == 2
    env.close()


def test_gae_bootstraps_truncated_episodes_from_their_final_state():
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [0.6], [0.7], [0.8]])
    dones = torch.tensor([[False], [True], [False]])
    final = torch.tensor([[0.6], [9.0], [0.8]])  # the state reached at step 1 before the reset
    gamma, lam = 0.9, 0.8
    no_terminal = torch.zeros_like(dones)  # the episode end at step 1 is a truncation
    truncated = gae(rewards, values, dones, gamma, lam, next_values=final, terminals=no_terminal)
    terminal = gae(rewards, values, dones, gamma, lam)
    assert truncated[1, 0] == pytest.approx(2.0 + gamma * 9.0 - 0.6)  # bootstrapped
    assert terminal[1, 0] == pytest.approx(2.0 - 0.6)  # cut
    assert truncated[2, 0] == pytest.approx(terminal[2, 0])  # next episode untouched
    d0 = 1.0 + gamma * 0.6 - 0.5
    assert truncated[0, 0] == pytest.approx(d0 + gamma * lam * float(truncated[1, 0]))
    same = gae(rewards, values, dones, gamma, lam, next_values=values[1:], terminals=dones)
    torch.testing.assert_close(same, terminal)  # without truncation nothing changes


@needs_mamujoco
def test_mamujoco_episode_limit_above_the_scenarios_own_is_honoured():
    # gymnasium's own TimeLimit (1000 for HalfCheetah) must not end the episodes first
    env = mg.envs.make(
        "mamujoco:HalfCheetah-6x1", num_envs=1, seed=0, episode_limit=1003, num_workers=1
    )
    try:
        env.reset()
        zeros = torch.zeros(1, 6, 1)
        ends = [t for t in range(1, 1004) if bool(env.step(zeros).done.any())]
        assert ends == [1003]
    finally:
        env.close()
