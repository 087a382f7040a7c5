"""B2MAPO with a tied execution policy (``pi_ind="tied"``).

``pi_ind`` is ``pi_seq``'s own observation part (the DAG actor without its parent
head); the batch passes add ``kl_coef * KL(pi_seq || pi_ind)`` with ``pi_seq`` held
fixed, so no second network is built, trained or checkpointed.
"""

from __future__ import annotations

import pytest
import torch
from torch.distributions import kl_divergence

import mapograph as mg
from mapograph.algos import AlgorithmConfig, BatchSequentialPPO
from mapograph.policies import Actor, CentralCritic
from mapograph.train._memory import estimate_bytes


def make_trainer(env_id: str = "coordination:chain-4", **kw) -> mg.Trainer:
    env = mg.envs.make(env_id, num_envs=8, seed=0)
    base = dict(
        algo="b2mapo",
        pi_ind="tied",
        partition="generations",
        edge_threshold=0.0,  # edges between batches: pi_seq reads its parents
        rollout_length=16,
        total_steps=8 * 16 * 3,
        seed=0,
        progress=False,
        tensorboard=False,
    )
    return mg.Trainer(env, mg.TrainConfig(**{**base, **kw}))


def _params(trainer: mg.Trainer) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{key}": value.clone()
        for name, module in trainer.algorithm.modules().items()
        for key, value in module.state_dict().items()
    }


def test_tied_pi_ind_is_pi_seqs_observation_part_with_no_network_of_its_own(tmp_path):
    trainer = make_trainer()
    separate = make_trainer(pi_ind="separate")
    assert trainer.algorithm.policy("ind") is trainer.actor.base
    assert "pi_ind" not in trainer.algorithm.modules()
    assert "pi_ind" in separate.algorithm.modules()
    trainer.train()
    state = trainer.state_dict()
    assert "pi_ind" not in state["modules"] and "pi_ind" not in state["optimizers"]
    row = trainer.history[-1]
    assert row["distill_kl"] >= 0.0 and row["execution_update_s"] < row["policy_update_s"]
    env = trainer.env
    assert estimate_bytes(env.spec, trainer.cfg, 8) < estimate_bytes(env.spec, separate.cfg, 8)
    # the execution policy acts with the tied network, and a checkpoint restores it
    loaded = mg.Trainer.load(trainer.save(tmp_path / "ckpt.pt"), env)
    ts = env.reset()
    torch.testing.assert_close(
        loaded.algorithm.policy("ind").distribution(ts.obs, ts.avail_actions).logits,
        trainer.actor.base.distribution(ts.obs, ts.avail_actions).logits,
    )
    assert loaded.evaluate(4)["episodes"] == 4


def _distill_gap(trainer: mg.Trainer) -> float:
    """Mean KL(pi_seq || pi_ind) over fresh states with the parents' sampled actions."""
    actor, plan = trainer.actor, trainer.plan
    ts = trainer.env.reset()
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        actions, _ = actor.act(
            ts.obs,
            ts.avail_actions,
            generator=gen,
            batches=plan.batches,
            edge_index=plan.edge_index,
        )
        messages = actor.parent_messages(actions, plan.edge_index)
        seq, ind = actor.distributions(ts.obs, ts.avail_actions, messages=messages)
        return float(kl_divergence(seq, ind).mean())


def test_distillation_pulls_the_tied_pi_ind_towards_pi_seq():
    """Same seed and data stream; the KL term keeps the parent head's effect on the
    distribution small (without it, nothing ties pi_ind to pi_seq's answers)."""
    gaps = {}
    chain = mg.envs.make("coordination:chain-6").interdependence()
    for coef in (0.0, 2.0):  # the true DAG: the pull alone differs, not the learned graph
        trainer = make_trainer(
            "coordination:chain-6",
            kl_coef=coef,
            total_steps=8 * 16 * 12,
            lr=3e-3,
            fixed_dag=[list(e) for e in chain.edges],
            parent_gain=1.0,  # the pull against the head at its own pace (a gain speeds the head)
        )
        trainer.train()
        gaps[coef] = _distill_gap(trainer)
    assert gaps[0.0] > 0.0
    assert gaps[2.0] < 0.5 * gaps[0.0], gaps


def test_agents_outside_the_batch_stay_untouched_with_the_distillation_term():
    trainer = make_trainer(total_steps=8 * 16)
    trainer.train()
    ppo = trainer.algorithm.optimizer
    assert ppo.distill_coef == trainer.cfg.distill_weight() == 0.3  # the tied default
    rollout, _, _ = trainer.collector.collect(trainer._behaviour(trainer.plan), 16)
    plan = trainer.plan
    assert len(plan.batches) > 1, "the plan must have several batches"
    moving = list(plan.batches[1])  # children: their KL term is not zero
    still = [a for a in range(trainer.env.spec.n_agents) if a not in moving]
    before = {k: v.detach().clone() for k, v in trainer.actor.state_dict().items()}
    stats = ppo.update(rollout, type(plan)([moving], plan.edge_index))
    assert stats["distill_kl"] > 0.0
    for name, tensor in trainer.actor.state_dict().items():
        if tensor.dim() and tensor.shape[0] == trainer.env.spec.n_agents:
            assert torch.equal(tensor[still], before[name][still]), name
    moved = [
        not torch.equal(t[moving], before[k][moving]) for k, t in trainer.actor.state_dict().items()
    ]
    assert any(moved)


def test_tied_b2mapo_resumes_bit_exactly(tmp_path):
    full = make_trainer()
    full.train()
    part = make_trainer(total_steps=8 * 16 * 2)
    part.train()
    resumed = mg.Trainer.load(part.save(tmp_path / "ckpt.pt"), part.env, total_steps=8 * 16 * 3)
    resumed.train()
    after = _params(resumed)
    for key, value in _params(full).items():
        assert torch.equal(value, after[key]), key


@pytest.mark.parametrize(
    "env_id, kw",
    [
        ("continuous:follow-4", {}),  # Gaussian actions: the parent head shifts the mean
        ("coordination:chain-4", {"share_params": True}),  # torso pass distills too
        ("coordination:chain-4", {"recurrent": True, "chunk_length": 8}),
    ],
)
def test_tied_b2mapo_trains_every_policy_kind(env_id, kw):
    trainer = make_trainer(env_id, **kw)
    trainer.train()
    assert trainer.history[-1]["distill_kl"] >= 0.0
    assert trainer.algorithm.policy("ind") is trainer.actor.base
    assert trainer.evaluate(4)["episodes"] == 4


def test_bad_pi_ind_values_are_one_line_errors():
    with pytest.raises(ValueError, match="pi_ind"):
        mg.TrainConfig(algo="b2mapo", pi_ind="shared")
    cfg = AlgorithmConfig()
    with pytest.raises(ValueError, match="tied pi_ind needs a DAG-conditioned actor"):
        BatchSequentialPPO(
            Actor(2, 3, 2), CentralCritic(4), None, 2, cfg, None, None, torch.Generator(), 1.0
        )


def test_kl_coef_defaults_per_pi_ind_mode_and_an_explicit_value_wins():
    assert mg.TrainConfig(algo="b2mapo").pi_ind == "readout"  # pi_seq's part plus a head
    assert mg.TrainConfig(algo="b2mapo").distill_weight() == 1.0
    assert mg.TrainConfig(algo="b2mapo", pi_ind="separate").distill_weight() == 1.0
    assert mg.TrainConfig(algo="b2mapo", pi_ind="tied").distill_weight() == 0.3
    assert mg.TrainConfig(algo="b2mapo", pi_ind="tied", kl_coef=2.0).distill_weight() == 2.0
    assert mg.TrainConfig(algo="b2mapo", kl_coef=0.0).distill_weight() == 0.0
    with pytest.raises(ValueError, match="kl_coef"):
        mg.TrainConfig(algo="b2mapo", kl_coef=-1.0)


@pytest.mark.parametrize("continuous", [False, True])
def test_distributions_are_pi_seq_and_its_parentless_part_from_one_forward(continuous):
    from mapograph.policies import DAGActor, detached

    torch.manual_seed(0)
    n, obs_dim, actions = 4, 5, 3
    actor = DAGActor(n, obs_dim, actions, hidden=16, continuous=continuous)
    with torch.no_grad():  # a parent head that matters (it starts at zero)
        actor.parent_out.weight.normal_()
    obs = torch.randn(6, n, obs_dim)
    avail = torch.ones(6, n, actions, dtype=torch.bool)
    parents = torch.randint(0, actions, (6, n)) if not continuous else torch.rand(6, n, actions)
    edges = torch.tensor([[0, 1], [2, 3]])
    messages = actor.parent_messages(parents, edges)
    agents = torch.tensor([2, 3])
    seq, ind = actor.distributions(obs, avail, agents, messages=messages)
    ref_seq = actor.distribution(obs, avail, agents, messages=messages)
    ref_ind = actor.distribution(obs, avail, agents)  # no parents
    sample = ref_seq.sample()
    torch.testing.assert_close(seq.log_prob(sample), ref_seq.log_prob(sample))
    torch.testing.assert_close(ind.log_prob(sample), ref_ind.log_prob(sample))
    assert not torch.allclose(seq.log_prob(sample), ind.log_prob(sample))  # parents matter
    # a detached teacher: same values, and the KL's gradient reaches the student only
    teacher = detached(seq)
    torch.testing.assert_close(teacher.log_prob(sample), seq.log_prob(sample))
    kl_divergence(teacher, ind).sum().backward()
    assert actor.parent_out.weight.grad is None or not actor.parent_out.weight.grad.any()
    assert any(p.grad is not None and p.grad.any() for p in actor.base.parameters())
