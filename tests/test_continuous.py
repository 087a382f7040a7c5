"""Continuous (Box) actions: spec, Gaussian policies, bounded actions, every preset training."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch.distributions import Normal, kl_divergence

import mapograph as mg
from mapograph.algos._interaction_continuous import continuous_interaction
from mapograph.envs import EnvSpec, check_actions
from mapograph.policies import Actor, DAGActor, MaskedDiagGaussian, select, to_box

PRESETS = ["mappo", "happo", "a2po", "b2mapo"]


def follow(num_envs: int = 8, n: int = 3, seed: int = 0):
    return mg.envs.make(f"continuous:follow-{n}", num_envs=num_envs, seed=seed)


def test_spec_carries_per_agent_boxes_and_padding_mask():
    env = follow()
    spec = env.spec
    assert spec.continuous and spec.n_actions == 2 and spec.action_dim == 2
    assert [s.shape for s in spec.action_spaces] == [(1,), (2,), (1,)]
    assert isinstance(spec.action_space, spaces.Box) and spec.action_space.shape == (2,)
    assert spec.action_mask().tolist() == [[True, False], [True, True], [True, False]]
    low, high = spec.action_bounds()
    assert low[1].tolist() == [0.0, 0.0] and high[1].tolist() == [2.0, 2.0]
    ts = env.reset()
    assert torch.equal(ts.avail_actions[0], spec.action_mask())
    discrete = EnvSpec(2, 3, 4, 5, 10)
    assert not discrete.continuous and discrete.action_space == spaces.Discrete(5)
    with pytest.raises(ValueError, match="largest agent"):
        EnvSpec(2, 3, 4, 3, 10, action_spaces=[spaces.Box(-1, 1, (2,))] * 2)
    with pytest.raises(ValueError, match="all gymnasium"):
        EnvSpec(2, 3, 4, 2, 10, action_spaces=[spaces.Box(-1, 1, (2,)), spaces.Discrete(2)])
    with pytest.raises(ValueError, match="action_spaces must be a sequence of one space"):
        EnvSpec(2, 3, 4, 2, 10, action_spaces=spaces.Discrete(2))
    with pytest.raises(ValueError, match="agent 1's Discrete space starts at 1"):
        EnvSpec(2, 3, 4, 2, 10, action_spaces=[spaces.Discrete(2), spaces.Discrete(2, start=1)])
    with pytest.raises(ValueError, match="n_actions must be a positive int, got True"):
        EnvSpec(2, 3, 4, True, 10)
    from_numpy = EnvSpec(2, 3, 4, spaces.Discrete(5).n, 10)  # gymnasium's n is np.int64
    assert from_numpy == discrete and type(from_numpy.n_actions) is int


def test_check_actions_rejects_wrong_box_actions():
    env = follow(num_envs=2)
    good = torch.zeros(2, 3, 2)
    good[:, 1] = 1.0  # inside [0, 2]
    assert check_actions(good, env.spec, 2).dtype == torch.float32
    with pytest.raises(ValueError, match="shape"):
        check_actions(torch.zeros(2, 3), env.spec, 2)
    with pytest.raises(ValueError, match="float"):
        check_actions(torch.zeros(2, 3, 2, dtype=torch.long), env.spec, 2)
    bad = good.clone()
    bad[1, 1, 0] = -0.5  # agent 1's box is [0, 2]
    with pytest.raises(ValueError, match="agent 1, dimension 0"):
        check_actions(bad, env.spec, 2)
    padded = good.clone()
    padded[:, 0, 1] = 50.0  # a padded dimension: ignored
    check_actions(padded, env.spec, 2)


def test_stacked_gaussian_equals_separate_normals():
    torch.manual_seed(0)
    n, d = 4, 3
    actor = Actor(n, 5, d, continuous=True)
    with torch.no_grad():
        actor.log_std.copy_(torch.randn(n, d) * 0.3)
    obs = torch.randn(6, n, 5)
    mask = torch.ones(6, n, d, dtype=torch.bool)
    mask[:, 1, 2] = False  # agent 1 has 2 dimensions
    dist = actor.distribution(obs, mask)
    actions = torch.randn(6, n, d)
    log_p, entropy = dist.log_prob(actions), dist.entropy()
    assert log_p.shape == entropy.shape == (6, n)
    mean = actor.net(obs)
    for i in range(n):
        dims = 2 if i == 1 else 3
        normal = Normal(mean[:, i, :dims], actor.log_std[i, :dims].exp())
        torch.testing.assert_close(log_p[:, i], normal.log_prob(actions[:, i, :dims]).sum(-1))
        torch.testing.assert_close(entropy[:, i], normal.entropy().sum(-1))
    # a subset of agents runs only those rows and gives the same numbers
    agents = torch.tensor([3, 1])
    sub = actor.distribution(obs, mask, agents=agents)
    torch.testing.assert_close(sub.log_prob(actions[:, agents]), log_p[:, agents])


def test_kl_is_analytic_and_masked():
    loc_p, loc_q = torch.randn(5, 3, 2), torch.randn(5, 3, 2)
    sp, sq = torch.rand(5, 3, 2) + 0.5, torch.rand(5, 3, 2) + 0.5
    mask = torch.tensor([[True, True], [True, False], [True, True]])
    p, q = MaskedDiagGaussian(loc_p, sp, mask), MaskedDiagGaussian(loc_q, sq, mask)
    kl = kl_divergence(p, q)
    expected = (kl_divergence(Normal(loc_p, sp), Normal(loc_q, sq)) * mask).sum(-1)
    torch.testing.assert_close(kl, expected)
    index = torch.tensor([4, 0])
    torch.testing.assert_close(kl_divergence(select(p, index), select(q, index)), kl[index])


def test_state_dependent_std_varies_with_observation():
    torch.manual_seed(1)
    actor = Actor(2, 3, 2, continuous=True, state_dependent_std=True, log_std_init=-1.0)
    assert not hasattr(actor, "log_std")
    with torch.no_grad():
        actor.net.out_layer.weight.normal_()
    dist = actor.distribution(torch.randn(7, 2, 3))
    assert dist.scale.std() > 0


def test_bounded_actions_never_leave_the_box():
    env = follow(num_envs=64)
    cfg = mg.TrainConfig(algo="mappo", log_std_init=2.0, progress=False, tensorboard=False)
    trainer = mg.Trainer(env, cfg)
    ts = env.reset()
    low, high = env.spec.action_bounds()
    mask = env.spec.action_mask()
    actions = trainer.act(ts)  # std e^2: most raw samples fall outside [-1, 1]
    assert actions.dtype == torch.float32 and actions.shape == (64, 3, 2)
    assert ((actions >= low) & (actions <= high) | ~mask).all()
    assert ((actions == low) | (actions == high)).any()  # clipping did happen
    raw = torch.randn(1000, 3, 2) * 10
    boxed = to_box(raw, low, high)
    assert ((boxed >= low) & (boxed <= high)).all()
    torch.testing.assert_close(to_box(torch.zeros(1, 3, 2), low, high)[0], (low + high) / 2)
    unbounded = torch.full((3, 2), float("inf"))
    torch.testing.assert_close(to_box(raw, -unbounded, unbounded), raw)  # no bound: unchanged
    half = to_box(raw, torch.zeros(3, 2), unbounded)  # [0, inf): clipped at 0 only
    torch.testing.assert_close(half, raw.clamp(min=0.0))
    torch.testing.assert_close(to_box(raw, -unbounded, torch.zeros(3, 2)), raw.clamp(max=0.0))


def test_rollout_stores_unclipped_actions_and_their_log_probs():
    env = follow(num_envs=16)
    cfg = mg.TrainConfig(algo="mappo", log_std_init=1.0, progress=False, tensorboard=False)
    trainer = mg.Trainer(env, cfg)
    rollout, _, _ = trainer.collector.collect(trainer._behaviour(trainer.plan), 8)
    assert rollout.actions.shape == (8, 16, 3, 2) and rollout.continuous
    assert rollout.actions.abs().max() > 1.0  # stored before clipping
    dist = trainer.actor.distribution(rollout.obs, rollout.avail)
    torch.testing.assert_close(dist.log_prob(rollout.actions), rollout.log_probs)
    assert (rollout.actions[..., 0, 1] == 0).all()  # padded dimension


@pytest.mark.parametrize("algo", PRESETS)
def test_every_preset_trains_on_a_continuous_env(algo):
    env = follow(num_envs=16)
    dag = {"edge_threshold": 0.0, "partition": "generations"} if algo == "b2mapo" else {}
    cfg = mg.TrainConfig(
        algo=algo,
        total_steps=16 * 32 * 20,
        rollout_length=32,
        lr=3e-3,
        critic_lr=3e-3,
        seed=0,
        progress=False,
        tensorboard=False,
        **dag,
    )
    trainer = mg.Trainer(env, cfg)
    before = trainer.evaluate(16)["return_mean"]
    result = trainer.train()
    first = np.mean([h["return_mean"] for h in result.history[:3]])
    last = np.mean([h["return_mean"] for h in result.history[-3:]])
    assert last > first + 0.5, (first, last)  # the sampled policy improved
    assert np.isfinite(trainer.evaluate(16)["return_mean"]) and np.isfinite(before)
    if algo == "b2mapo":
        assert any(len(h["batches"]) > 1 for h in result.history)  # DAG batches were used
        assert "distill_kl" in result.history[-1]


def test_dag_actor_continuous_parents_reach_children():
    torch.manual_seed(2)
    actor = DAGActor(3, 4, 2, continuous=True)
    obs = torch.randn(8, 3, 4)
    actions = torch.randn(8, 3, 2)
    base = actor.base.distribution(obs)
    torch.testing.assert_close(actor.distribution(obs).loc, base.loc)
    edge_index = torch.tensor([[0], [2]])
    msgs = actor.parent_messages(actions, edge_index)
    assert msgs.shape == (8, 3, 6)
    torch.testing.assert_close(msgs[:, 2, :2], actions[:, 0].clamp(-1, 1))
    # zero-initialized parent head: conditioning does not change the policy yet
    cond = actor.distribution(obs, parent_actions=actions, edge_index=edge_index)
    torch.testing.assert_close(cond.loc, base.loc)
    with torch.no_grad():
        actor.parent_out.weight.normal_()
    moved = actions.clone()
    moved[:, 0] = -moved[:, 0]
    a = actor.distribution(obs, parent_actions=actions, edge_index=edge_index).loc
    b = actor.distribution(obs, parent_actions=moved, edge_index=edge_index).loc
    torch.testing.assert_close(a[:, :2], b[:, :2])
    assert not torch.allclose(a[:, 2], b[:, 2])
    # sequential decoding: the child's log-prob is that of its conditioned distribution
    acts, log_probs = actor.act(
        obs,
        None,
        generator=torch.Generator().manual_seed(0),
        batches=[[0], [1, 2]],
        edge_index=edge_index,
    )
    dist = actor.distribution(obs, parent_actions=acts, edge_index=edge_index)
    torch.testing.assert_close(dist.log_prob(acts), log_probs)


def test_continuous_interaction_finds_the_coupled_pair():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 3, 2, generator=gen)
    adv = a[:, 0, 0] * a[:, 2, 1] + a[:, 1, 0]  # 0 and 2 interact; 1 acts alone
    strength = continuous_interaction(a, adv)
    assert strength.shape == (3, 3)
    assert strength[0, 2] > 10 * max(strength[0, 1], strength[1, 2])
    torch.testing.assert_close(strength, strength.t())


def test_follow_knows_its_chain_and_b2mapo_can_be_given_it():
    """``continuous:follow-N``'s interdependence is the chain its reward defines (agent
    ``i``'s best first coordinate is its predecessor's plus ``c_i / 2``): a DAG whose
    generations put one agent per batch, in chain order."""
    env = mg.envs.make("continuous:follow-4", num_envs=1, seed=0)
    graph = env.interdependence()
    assert sorted(graph.edges) == [(0, 1), (1, 2), (2, 3)] and nx.is_directed_acyclic_graph(graph)
    assert graph is not env.interdependence()  # a fresh copy each call
    trainer = mg.Trainer(
        mg.envs.make("continuous:follow-4", num_envs=4, seed=0),
        mg.TrainConfig(
            algo="b2mapo",
            fixed_dag=[list(e) for e in graph.edges],
            partition="generations",
            rollout_length=8,
            total_steps=4 * 8 * 2,
            progress=False,
            tensorboard=False,
        ),
    )
    trainer.train()
    assert trainer.batches == [[0], [1], [2], [3]]


@pytest.mark.parametrize("task", ["follow-3\n", "follow-\u0663"])
def test_a_task_name_is_read_exactly(task):
    with pytest.raises(ValueError, match="unknown continuous task"):
        mg.envs.make(f"continuous:{task}")
