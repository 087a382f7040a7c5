"""Parameter sharing with the batch-by-batch presets (HAPPO, A2PO, B2MAPO).

``share_params=True`` gives B2MAPO's ``pi_ind`` one network for all agents, and the
optimized actor of a schedule with several batches a shared torso under per-agent
heads: the heads move batch by batch, the torso once per iteration in a joint pass.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import mapograph as mg
from mapograph.algos import Algorithm
from mapograph.algos._chunks import FlatLayout
from mapograph.policies import SharedMLP, SharedTorsoMLP
from mapograph.train._memory import estimate_bytes


def make_trainer(algo: str = "b2mapo", env_id: str = "coordination:chain-4", **kw) -> mg.Trainer:
    env = mg.envs.make(env_id, num_envs=4, seed=0)
    if algo == "b2mapo":  # edges between batches, so pi_seq conditions on parents
        kw = {"partition": "generations", "edge_threshold": 0.0, **kw}
    base = dict(rollout_length=16, total_steps=4 * 16 * 3, seed=0)
    cfg = mg.TrainConfig(
        algo=algo, share_params=True, progress=False, tensorboard=False, **{**base, **kw}
    )
    return mg.Trainer(env, cfg)


def _params(trainer: mg.Trainer) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{key}": value.clone()
        for name, module in trainer.algorithm.modules().items()
        for key, value in module.state_dict().items()
    }


@pytest.mark.parametrize("recurrent", [False, True])
def test_b2mapo_with_shared_params_trains_and_resumes_bit_exactly(tmp_path, recurrent):
    kw = {"recurrent": True, "chunk_length": 8} if recurrent else {}
    full = make_trainer(**kw)
    full.train()
    part = make_trainer(**kw)
    part.cfg.total_steps = 4 * 16 * 2
    part.train()
    assert "torso_optim" in part.state_dict()["optimizers"]["ppo"]
    resumed = mg.Trainer.load(part.save(tmp_path / "ckpt.pt"), part.env, total_steps=4 * 16 * 3)
    resumed.train()
    after = _params(resumed)
    for key, value in _params(full).items():
        assert torch.equal(value, after[key]), key
    assert resumed.evaluate(4)["episodes"] == 4


def _spec(n_agents: int):
    spec = mg.envs.make("coordination:chain-4", num_envs=1).spec
    return dataclasses.replace(spec, n_agents=n_agents)


def _count(params) -> int:
    return sum(p.numel() for p in params)


def test_pi_ind_is_one_network_and_pi_seq_one_torso_whatever_the_team_size():
    cfg = mg.TrainConfig(algo="b2mapo", share_params=True, hidden=32, pi_ind="separate")
    small, large = Algorithm(_spec(3), cfg, 0), Algorithm(_spec(7), cfg, 0)
    for parts in (small, large):
        assert isinstance(parts.execution.actor.net, SharedMLP)
        assert isinstance(parts.actor.base.net, SharedTorsoMLP)
    one_hot = (7 - 3) * 32  # the first layer reads the agent's one-hot
    ind = [_count(p.execution.actor.parameters()) for p in (small, large)]
    assert ind[1] - ind[0] == one_hot
    torso = [_count(p.actor.torso_parameters()) for p in (small, large)]
    assert torso[1] - torso[0] == one_hot
    # the output heads are per agent: they grow linearly with the team, and start at
    # zero, so every agent starts as the shared network
    heads = [_count(p.actor.base.net.out_layer.parameters()) for p in (small, large)]
    assert heads[1] * 3 == heads[0] * 7
    assert not small.actor.base.net.out_layer.weight.any()
    # the memory estimate counts the shared parts once
    shared = [estimate_bytes(_spec(n), cfg, 1) for n in (3, 7)]
    separate = [
        estimate_bytes(_spec(n), dataclasses.replace(cfg, share_params=False), 1) for n in (3, 7)
    ]
    assert shared[0] < separate[0] and shared[1] - shared[0] < (separate[1] - separate[0]) / 2


@pytest.mark.parametrize("algo, recurrent", [("happo", False), ("b2mapo", False), ("a2po", True)])
def test_heads_outside_the_batch_and_the_torso_stay_bit_identical_during_the_batches(
    algo, recurrent
):
    trainer = make_trainer(algo, **({"recurrent": True, "chunk_length": 8} if recurrent else {}))
    ppo = trainer.algorithm.optimizer
    actor = trainer.actor
    rollout, _, _ = trainer.collector.collect(trainer._behaviour(trainer.plan), 16)
    torso_before = [p.detach().clone() for p in ppo.torso]
    seen = []
    step = ppo._step_actor

    def spy(agents: torch.Tensor) -> None:  # the real step, then a snapshot
        step(agents)
        seen.append((agents.tolist(), [p.detach().clone() for p in ppo.heads]))

    ppo._step_actor = spy
    heads_before = [p.detach().clone() for p in ppo.heads]
    stats = ppo.update(rollout, [[2, 0], [1], [3]])
    assert stats["n_batches"] == 3.0 and "torso_loss" in stats
    previous = heads_before
    moved = set()
    for agents, heads in seen:
        others = [a for a in range(4) if a not in agents]
        for old, new in zip(previous, heads):
            assert torch.equal(old[others], new[others])
            moved |= {a for a in agents if not torch.equal(old[a], new[a])}
        previous = heads
    assert moved == {0, 1, 2, 3}
    # the torso moved only after the batches, and the heads did not move with it
    assert all(torch.equal(h, p) for h, p in zip(previous, ppo.heads))
    assert not all(torch.equal(b, p) for b, p in zip(torso_before, ppo.torso))
    # every parameter is the torso's, a head's, or a readout pi_ind's head (B2MAPO)
    assert len(ppo.torso) + len(ppo.heads) + len(ppo.readout) == len(list(actor.parameters()))


def test_the_joint_pass_trains_the_torso():
    """The torso pass raises the MAPPO surrogate of the iteration's data (heads fixed)."""
    trainer = make_trainer("happo", rollout_length=32, total_steps=4 * 32)
    ppo = trainer.algorithm.optimizer
    rollout, _, _ = trainer.collector.collect(trainer._behaviour(trainer.plan), 32)
    values = ppo.rollout_values(rollout)
    adv = ppo.advantages(rollout, values)
    obs, avail, actions = (rollout.flat(x) for x in (rollout.obs, rollout.avail, rollout.actions))
    old = rollout.flat(rollout.log_probs)
    flat_adv = rollout.flat(adv)

    def surrogate() -> float:
        with torch.no_grad():
            log_p = trainer.actor.distribution(obs, avail).log_prob(actions)
        return float(((log_p - old).exp() * mg.algos.normalize(flat_adv)[:, None]).mean())

    before = surrogate()
    heads = [p.detach().clone() for p in ppo.heads]
    ppo.update_torso(obs, avail, actions, old, flat_adv, {}, FlatLayout(rollout))
    assert surrogate() > before + 1e-5  # small: the heads start near zero (gain 0.01)
    assert all(torch.equal(h, p) for h, p in zip(heads, ppo.heads))


def test_continuous_happo_with_a_shared_torso_trains():
    trainer = make_trainer("happo", env_id="continuous:follow-3")
    result = trainer.train()
    assert all(torch.isfinite(torch.tensor(h["torso_loss"])) for h in result.history)
    assert trainer.actor.log_std.shape[0] == 3  # per-agent heads keep per-agent stds
    assert trainer.evaluate(2)["episodes"] == 2


def test_mappo_keeps_one_network_and_it_refuses_a_partition_of_several_batches():
    trainer = make_trainer("mappo")
    assert isinstance(trainer.actor.net, SharedMLP) and trainer.actor.torso_parameters() == []
    rollout, _, _ = trainer.collector.collect(trainer._behaviour(trainer.plan), 16)
    with pytest.raises(ValueError, match="share_params"):
        trainer.algorithm.optimizer.update(rollout, [[0], [1, 2, 3]])
