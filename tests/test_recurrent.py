"""Recurrent policies and critic: stacked GRU, hidden-state resets, chunked training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import mapograph as mg
from mapograph.algos import Plan
from mapograph.algos._chunks import ChunkLayout
from mapograph.policies import StackedGRU

PRESETS = ["mappo", "happo", "a2po", "b2mapo"]


def make_trainer(algo: str, env_id: str = "coordination:chain-4", **kw) -> mg.Trainer:
    env = mg.envs.make(env_id, num_envs=4, seed=0, **kw.pop("env_kwargs", {}))
    if algo == "b2mapo":  # edges between batches, so pi_seq conditions on parents;
        # the separate pi_ind: its own recurrent network and recorded log-probabilities
        kw = {"partition": "generations", "edge_threshold": 0.0, "pi_ind": "separate", **kw}
    cfg = mg.TrainConfig(
        algo=algo,
        recurrent=True,
        rollout_length=24,
        chunk_length=8,
        total_steps=4 * 24 * 2,
        seed=0,
        progress=False,
        tensorboard=False,
        **kw,
    )
    return mg.Trainer(env, cfg)


def collect(trainer: mg.Trainer, plan: Plan | None = None):
    rollout, _, _ = trainer.collector.collect(
        trainer._behaviour(plan or trainer.plan), trainer.cfg.rollout_length
    )
    return rollout


def test_stacked_gru_equals_separate_gru_cells():
    torch.manual_seed(0)
    n, d_in, h = 3, 4, 5
    gru = StackedGRU(n, d_in, h)
    x, h0 = torch.randn(n, 7, d_in), torch.randn(n, 7, h)
    out = gru(x, h0)
    for i in range(n):
        cell = nn.GRUCell(d_in, h)
        with torch.no_grad():
            cell.weight_ih.copy_(gru.ih.weight[i].t())
            cell.weight_hh.copy_(gru.hh.weight[i].t())
            cell.bias_ih.copy_(gru.ih.bias[i])
            cell.bias_hh.copy_(gru.hh.bias[i])
        torch.testing.assert_close(out[i], cell(x[i], h0[i]))
    rows = torch.tensor([2, 0])
    torch.testing.assert_close(gru(x[rows], h0[rows], rows), out[rows])


def test_hidden_states_reset_exactly_at_episode_starts():
    trainer = make_trainer("mappo", env_kwargs={"episode_limit": 5})
    first = collect(trainer)
    second = collect(trainer)
    for rollout in (first, second):
        assert rollout.hidden.shape == (24, 4, 4, 64)
        norms = rollout.hidden.abs().sum(dim=(-1, -2))  # [T, E]
        assert torch.equal(norms == 0, rollout.starts)  # zero exactly where an episode starts
        # an episode starts at t exactly where the previous step ended one
        assert torch.equal(rollout.starts[1:], rollout.dones[:-1])
    assert first.starts[0].all()  # after the reset
    assert torch.equal(second.starts[0], first.dones[-1])  # carried across collections
    assert first.starts.sum() > 4  # several episode ends inside the rollout


@pytest.mark.parametrize("algo", PRESETS)
def test_chunked_forward_reproduces_collection_log_probs(algo):
    trainer = make_trainer(algo, env_kwargs={"episode_limit": 5})
    algo_parts = trainer.algorithm
    plan = algo_parts.schedule.propose(trainer._timestep())
    rollout = collect(trainer, plan)
    algo_parts.execution.record(rollout)
    layout = ChunkLayout(rollout, 8, rollout.hidden)
    context = algo_parts.actor.context(rollout.flat(rollout.actions), plan.edge_index)
    context = {k: layout.from_flat(v) for k, v in context.items()}
    with torch.no_grad():
        dist = algo_parts.actor.distribution(
            layout.arrange(rollout.obs), layout.arrange(rollout.avail), **context, **layout.memory()
        )
        log_p = layout.restore(dist.log_prob(layout.arrange(rollout.actions)))
    torch.testing.assert_close(log_p, rollout.log_probs)  # ratio 1 before the first update
    if algo == "b2mapo":
        assert plan.edge_index.numel() > 0
        pi_ind = algo_parts.execution.actor
        ind_layout = ChunkLayout(rollout, 8, rollout.ind_hidden)
        with torch.no_grad():
            dist = pi_ind.distribution(
                ind_layout.arrange(rollout.obs),
                ind_layout.arrange(rollout.avail),
                **ind_layout.memory(),
            )
        log_p = ind_layout.restore(dist.log_prob(ind_layout.arrange(rollout.actions)))
        torch.testing.assert_close(log_p, rollout.ind_log_probs)
    # the critic: chunks from its stored hidden states give the full pass's values
    optimizer = algo_parts.optimizer
    values = optimizer.rollout_values(rollout)
    critic_layout = ChunkLayout(rollout, 8, rollout.critic_hidden)
    with torch.no_grad():
        chunked = optimizer._critic_values(
            critic_layout.arrange(rollout.state[:-1]), critic_layout, None
        )
    chunked = optimizer._denormalize(critic_layout.restore(chunked))
    torch.testing.assert_close(chunked, values[:-1])


def test_continuous_recurrent_chunks_reproduce_log_probs():
    trainer = make_trainer("happo", env_id="continuous:follow-3")
    rollout = collect(trainer)
    layout = ChunkLayout(rollout, 8, rollout.hidden)
    with torch.no_grad():
        dist = trainer.actor.distribution(
            layout.arrange(rollout.obs), layout.arrange(rollout.avail), **layout.memory()
        )
    log_p = layout.restore(dist.log_prob(layout.arrange(rollout.actions)))
    torch.testing.assert_close(log_p, rollout.log_probs)


def test_agents_outside_the_batch_stay_bit_identical():
    trainer = make_trainer("happo")
    rollout = collect(trainer)
    actor = trainer.actor
    before = {k: v.clone() for k, v in actor.state_dict().items()}
    optim_before = {
        k: v.clone()
        for k, v in trainer.algorithm.optimizer.actor_optim.state_dict()["state"][0].items()
    }
    stats = trainer.algorithm.optimizer.update(rollout, [[2]])
    assert stats["n_batches"] == 1.0
    moved = False
    for name, value in actor.state_dict().items():
        others = [0, 1, 3]
        assert torch.equal(value[others], before[name][others]), name
        moved |= not torch.equal(value[2], before[name][2])
    assert moved
    state = trainer.algorithm.optimizer.actor_optim.state_dict()["state"][0]
    for key, value in state.items():
        assert torch.equal(value[[0, 1, 3]], optim_before[key][[0, 1, 3]]), key


@pytest.mark.parametrize("algo", PRESETS)
def test_every_preset_trains_recurrent(algo):
    trainer = make_trainer(algo, env_kwargs={"episode_limit": 6})
    result = trainer.train()
    assert len(result.history) == 2
    assert all(torch.isfinite(torch.tensor(h["policy_loss"])) for h in result.history)
    evaluation = trainer.evaluate(4)
    assert evaluation["episodes"] == 4
    actions = trainer.act(trainer.env.reset())
    assert actions.shape == (4, 4) and actions.dtype == torch.long


def test_recurrent_resume_continues_exactly(tmp_path):
    trainer = make_trainer("b2mapo")
    trainer.cfg.total_steps = 4 * 24 * 3
    full = make_trainer("b2mapo")
    full.cfg.total_steps = 4 * 24 * 3
    full.train()
    trainer.cfg.total_steps = 4 * 24 * 2
    trainer.train()
    path = trainer.save(tmp_path / "ckpt.pt")
    resumed = mg.Trainer.load(path, trainer.env, total_steps=4 * 24 * 3)
    resumed.train()
    for name, module in full.algorithm.modules().items():
        for key, value in module.state_dict().items():
            torch.testing.assert_close(
                resumed.algorithm.modules()[name].state_dict()[key], value, rtol=0, atol=0
            )


def test_chunk_length_must_divide_the_rollout():
    env = mg.envs.make("coordination:chain-4", num_envs=2)
    cfg = mg.TrainConfig(recurrent=True, rollout_length=20, chunk_length=8, progress=False)
    with pytest.raises(ValueError, match="multiple of chunk_length"):
        mg.Trainer(env, cfg)


def test_shared_recurrent_mappo_saves_and_loads(tmp_path):
    trainer = make_trainer("mappo", share_params=True)
    assert trainer.actor.net.inp.weight.shape[0] == 1  # one GRU for all agents
    trainer.train()
    path = trainer.save(tmp_path / "ckpt.pt")
    loaded = mg.Trainer.load(path, trainer.env)
    ts = trainer.env.reset()
    torch.testing.assert_close(
        loaded.actor.distribution(
            ts.obs[None],
            ts.avail_actions[None],
            h0=torch.zeros(4, 4, 64),
            starts=ts.done[None] | True,
        ).logits,
        trainer.actor.distribution(
            ts.obs[None],
            ts.avail_actions[None],
            h0=torch.zeros(4, 4, 64),
            starts=ts.done[None] | True,
        ).logits,
    )


@pytest.mark.slow
@pytest.mark.smax
def test_smax_trains_recurrent():
    pytest.importorskip("jaxmarl")
    env = mg.envs.make("smax:3m", num_envs=8, seed=0)
    cfg = mg.TrainConfig(
        algo="mappo",
        recurrent=True,
        rollout_length=32,
        total_steps=8 * 32 * 2,
        progress=False,
        tensorboard=False,
    )
    history = mg.Trainer(env, cfg).train().history
    assert len(history) == 2 and history[-1]["episodes"] > 0
