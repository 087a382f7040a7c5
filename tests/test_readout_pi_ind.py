"""B2MAPO with a readout execution policy (``pi_ind="readout"``).

``pi_ind`` is ``pi_seq``'s own observation part plus a per-agent linear head on the
torso's detached last hidden layer; the batch passes distill ``pi_seq`` into the
head only, so ``pi_seq`` trains exactly as without the distillation (no drift).
"""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Categorical, kl_divergence

import mapograph as mg
from mapograph.policies import DAGActor, ReadoutPolicy, detached
from mapograph.train._memory import estimate_bytes


def make_trainer(env_id: str = "coordination:chain-6", **kw) -> mg.Trainer:
    env = mg.envs.make(env_id, num_envs=8, seed=0)
    chain = env.interdependence() if env_id.startswith("coordination:chain") else None
    base = dict(
        algo="b2mapo",
        pi_ind="readout",
        rollout_length=16,
        total_steps=8 * 16 * 3,
        lr=3e-3,
        seed=0,
        progress=False,
        tensorboard=False,
    )
    if chain is not None:  # the true DAG: pi_seq reads its parents from the first iteration
        base["fixed_dag"] = [list(e) for e in chain.edges]
    return mg.Trainer(env, mg.TrainConfig(**{**base, **kw}))


def _params(trainer: mg.Trainer, skip: str = "\0") -> dict[str, torch.Tensor]:
    return {
        f"{name}.{key}": value.clone()
        for name, module in trainer.algorithm.modules().items()
        for key, value in module.state_dict().items()
        if skip not in key
    }


def test_readout_pi_ind_is_a_head_on_pi_seq_with_no_network_of_its_own(tmp_path):
    trainer = make_trainer()
    separate = make_trainer(pi_ind="separate")
    tied = make_trainer(pi_ind="tied")
    ind = trainer.algorithm.policy("ind")
    assert isinstance(ind, ReadoutPolicy) and ind.actor is trainer.actor
    assert "pi_ind" not in trainer.algorithm.modules()
    n, hidden, actions = trainer.env.spec.n_agents, trainer.cfg.hidden, trainer.env.spec.n_actions
    count = lambda t: sum(p.numel() for p in t.actor.parameters())  # noqa: E731
    assert count(trainer) - count(tied) == n * (hidden + 1) * actions  # the head, nothing else
    spec = trainer.env.spec
    assert (
        estimate_bytes(spec, tied.cfg, 8)
        < estimate_bytes(spec, trainer.cfg, 8)
        < estimate_bytes(spec, separate.cfg, 8)
    )
    # at init the head is zero: pi_ind is pi_seq's parentless part
    ts = trainer.env.reset()
    torch.testing.assert_close(
        ind.distribution(ts.obs, ts.avail_actions).logits,
        trainer.actor.base.distribution(ts.obs, ts.avail_actions).logits,
    )
    trainer.train()
    assert trainer.actor.readout.weight.abs().sum() > 0  # distilled
    state = trainer.state_dict()
    assert "pi_ind" not in state["modules"] and "readout_optim" in state["optimizers"]["ppo"]
    loaded = mg.Trainer.load(trainer.save(tmp_path / "ckpt.pt"), trainer.env)
    ts = trainer.env.reset()
    torch.testing.assert_close(
        loaded.algorithm.policy("ind").distribution(ts.obs, ts.avail_actions).logits,
        ind.distribution(ts.obs, ts.avail_actions).logits,
    )
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a, lp = ind.act(ts.obs, ts.avail_actions, generator=gen())
    b, lq = loaded.algorithm.policy("ind").act(ts.obs, ts.avail_actions, generator=gen())
    assert torch.equal(a, b) and torch.allclose(lp, lq)
    assert loaded.evaluate(4)["episodes"] == 4


def test_distilling_the_readout_never_moves_pi_seq():
    """The distillation changes pi_ind only: pi_seq (and the critic) end bit-identical
    whether the readout is distilled or not, and distilling brings pi_ind closer to
    pi_seq's average over its parents' actions (the distillation's target)."""
    runs = {}
    for coef in (0.0, 1.0):
        trainer = make_trainer(kl_coef=coef, total_steps=8 * 16 * 20)
        trainer.train()
        runs[coef] = trainer
    kept = _params(runs[1.0], skip="readout")
    for key, value in _params(runs[0.0], skip="readout").items():
        assert torch.equal(value, kept[key]), key
    assert runs[0.0].actor.readout.weight.abs().sum() == 0  # nothing pulled it
    gaps = {coef: _distill_gap(trainer) for coef, trainer in runs.items()}
    assert gaps[1.0] < 0.5 * gaps[0.0], gaps


def _distill_gap(trainer: mg.Trainer, draws: int = 64) -> float:
    """Mean KL(pi_seq averaged over its parents' sampled actions || pi_ind), fresh states."""
    actor, plan = trainer.actor, trainer.plan
    ts = trainer.env.reset()
    with torch.no_grad():
        probs = torch.zeros(ts.avail_actions.shape)
        for draw in range(draws):
            actions, _ = actor.act(
                ts.obs,
                ts.avail_actions,
                generator=torch.Generator().manual_seed(draw),
                batches=plan.batches,
                edge_index=plan.edge_index,
            )
            messages = actor.parent_messages(actions, plan.edge_index)
            probs += actor.distribution(ts.obs, ts.avail_actions, messages=messages).probs / draws
        ind = trainer.algorithm.policy("ind").distribution(ts.obs, ts.avail_actions)
        return float(kl_divergence(Categorical(probs=probs), Categorical(logits=ind.logits)).mean())


def test_readout_b2mapo_resumes_bit_exactly(tmp_path):
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
        ("continuous:follow-4", {}),  # Gaussian actions: the head shifts the mean
        ("coordination:chain-4", {"share_params": True}),  # shared torso, per-agent heads
        ("coordination:chain-4", {"recurrent": True, "chunk_length": 8}),
        ("contextual:tree-7", {}),  # the learned graph
    ],
)
def test_readout_b2mapo_trains_every_policy_kind(env_id, kw):
    trainer = make_trainer(env_id, **kw)
    trainer.train()
    assert trainer.history[-1]["distill_kl"] >= 0.0
    assert trainer.actor.readout.weight.abs().sum() > 0
    ind = trainer.algorithm.policy("ind")
    assert isinstance(ind, ReadoutPolicy)
    assert trainer.evaluate(4)["episodes"] == 4
    ts = trainer.env.reset()
    assert trainer.act(ts, deterministic=True).shape[:2] == (8, trainer.env.spec.n_agents)


@pytest.mark.parametrize("continuous", [False, True])
def test_readout_distribution_is_the_parentless_part_plus_a_head_whose_gradient_stops(continuous):
    torch.manual_seed(0)
    n, obs_dim, actions = 4, 5, 3
    actor = DAGActor(n, obs_dim, actions, hidden=16, continuous=continuous, readout=True)
    with torch.no_grad():
        actor.parent_out.weight.normal_()
        actor.readout.weight.normal_()
    obs = torch.randn(6, n, obs_dim)
    avail = torch.ones(6, n, actions, dtype=torch.bool)
    parents = torch.randint(0, actions, (6, n)) if not continuous else torch.rand(6, n, actions)
    messages = actor.parent_messages(parents, torch.tensor([[0, 1], [2, 3]]))
    agents = torch.tensor([2, 3])
    seq, ind = actor.distributions(obs, avail, agents, messages=messages)
    ref_seq = actor.distribution(obs, avail, agents, messages=messages)
    sample = ref_seq.sample()
    torch.testing.assert_close(seq.log_prob(sample), ref_seq.log_prob(sample))
    torch.testing.assert_close(
        ind.log_prob(sample), actor.independent(obs, avail, agents).log_prob(sample)
    )
    parentless = actor.distribution(obs, avail, agents)
    assert not torch.allclose(ind.log_prob(sample), parentless.log_prob(sample))  # the head
    # distilling a fixed teacher (as the optimizer does) reaches the readout head only,
    # and only the rows of the agents evaluated
    kl_divergence(detached(seq), ind).sum().backward()
    moved = [name for name, p in actor.named_parameters() if p.grad is not None]
    assert moved == ["readout.weight", "readout.bias"], moved
    assert actor.readout.weight.grad[2:].abs().sum() > 0
    assert actor.readout.weight.grad[:2].abs().sum() == 0


def test_bad_readout_uses_are_one_line_errors():
    with pytest.raises(ValueError, match="pi_ind"):
        mg.TrainConfig(algo="b2mapo", pi_ind="head")
    with pytest.raises(ValueError, match="readout"):
        DAGActor(2, 3, 2).independent(torch.randn(1, 2, 3))
    with pytest.raises(ValueError, match="readout=True"):
        ReadoutPolicy(DAGActor(2, 3, 2))
    assert mg.TrainConfig(algo="b2mapo", pi_ind="readout").distill_weight() == 1.0


@pytest.mark.parametrize(
    "env_id, kw",
    [
        ("coordination:chain-4", {}),
        ("continuous:follow-4", {"state_dependent_std": True}),
        ("coordination:chain-4", {"share_params": True}),
        ("coordination:chain-4", {"recurrent": True, "chunk_length": 8}),
    ],
)
def test_the_readout_folds_into_a_plain_actor_for_deployment(env_id, kw):
    trainer = make_trainer(env_id, **kw)
    trainer.train()
    ind = trainer.algorithm.policy("ind")
    plain = ind.as_actor()
    assert type(plain).__name__ == "Actor" and not hasattr(plain, "readout")
    ts = trainer.env.reset()
    memory = {}
    if plain.recurrent:
        hidden = torch.randn(8, trainer.env.spec.n_agents, plain.hidden_size)
        memory = {"hidden": hidden}
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    a = ind.act(ts.obs, ts.avail_actions, generator=gen(), **memory)
    b = plain.act(ts.obs, ts.avail_actions, generator=gen(), **memory)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)
    if not plain.recurrent:  # the raw outputs agree too
        torch.testing.assert_close(ind.features(ts.obs), plain.features(ts.obs))
    # a copy: training on does not reach it
    before = [p.clone() for p in plain.parameters()]
    trainer.train_iteration()
    assert all(torch.equal(p, q) for p, q in zip(before, plain.parameters()))


@pytest.mark.parametrize(
    "env_id, extra",
    [
        ("coordination:random-8", {}),
        ("coordination:random-8", {"recurrent": True, "chunk_length": 8}),
        ("continuous:follow-5", {}),
    ],
)
def test_the_readout_teacher_gathered_from_the_batch_passes_equals_a_teacher_pass(
    monkeypatch, env_id, extra
):
    """Without a shared torso each batch's ratio forward is the final pi_seq for its agents:
    gathering those replaces the teacher pass and distils the same head (discrete,
    recurrent chunks, Gaussian)."""
    from mapograph.algos import _ppo

    runs = {}
    for gathered in (True, False):
        if not gathered:  # as before: the optimizer gathers nothing, distilling runs its pass
            monkeypatch.setattr(_ppo, "readout_teacher", lambda actor: None)
        trainer = make_trainer(env_id, total_steps=8 * 16 * 4, **extra)
        trainer.train()
        assert len(trainer.plan.batches) > 1
        runs[gathered] = trainer
    new, old = (_params(runs[g]) for g in (True, False))
    for key, value in old.items():
        torch.testing.assert_close(new[key], value, rtol=1e-5, atol=1e-6)
    assert runs[True].actor.readout.weight.abs().sum() > 0


def test_only_a_learned_dag_pays_for_the_joint_gain(monkeypatch):
    """The last batch's ratio pass serves only the upper layer's reward: HAPPO and MAPPO skip
    it (no joint_ratio_gain) and train exactly as with it; B2MAPO reports it."""
    from mapograph.algos._schedules import Schedule

    def train(algo, **kw):
        env = mg.envs.make("coordination:chain-4", num_envs=4, seed=0)
        cfg = mg.TrainConfig(
            algo=algo,
            rollout_length=8,
            total_steps=4 * 8 * 3,
            seed=0,
            progress=False,
            tensorboard=False,
            **kw,
        )
        trainer = mg.Trainer(env, cfg)
        trainer.train()
        return trainer

    for algo in ("happo", "mappo"):
        skipped = train(algo)
        assert "joint_ratio_gain" not in skipped.history[-1]
        monkeypatch.setattr(Schedule, "uses_joint_gain", True)
        computed = train(algo)
        monkeypatch.undo()
        assert "joint_ratio_gain" in computed.history[-1]
        a, b = _params(skipped), _params(computed)
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert "joint_ratio_gain" in train("b2mapo").history[-1]


def test_the_discrete_readout_step_is_the_categorical_kl_and_its_gradient():
    """The readout's steps run laid out [N, actions, samples]: their KL is torch's
    categorical KL(pi_seq || pi_ind) (unavailable actions included) and one SGD step
    moves the head by that KL's gradient."""
    from mapograph.algos._chunks import FlatLayout
    from mapograph.algos._readout_distill import distill_readout
    from mapograph.algos._rollout import Rollout

    torch.manual_seed(0)
    n, obs_dim, actions, samples = 4, 5, 3, 12
    actor = DAGActor(n, obs_dim, actions, hidden=8, readout=True)
    with torch.no_grad():
        actor.readout.weight.normal_()
        actor.parent_out.weight.normal_()
    obs = torch.randn(samples, n, obs_dim)
    avail = torch.rand(samples, n, actions) > 0.3
    avail[..., 0] = True
    edges = torch.tensor([[0, 1], [2, 3]])
    context = {"messages": actor.parent_messages(torch.randint(0, 1, (samples, n)), edges)}
    with torch.no_grad():
        out, hidden, term, _ = actor.readout_inputs(obs, avail, **context)
        teacher = actor.sequential_distribution(out, term, avail)
    head = [actor.readout.weight, actor.readout.bias]
    reference = kl_divergence(teacher, actor.readout_distribution(out, hidden, avail))
    grads = torch.autograd.grad(reference.mean(0).sum(), head)
    before = [p.detach().clone() for p in head]
    rollout = Rollout(
        obs=obs[:, None],
        state=torch.zeros(samples + 1, 1, 1),
        avail=avail[:, None],
        actions=torch.zeros(samples, 1, n, dtype=torch.long),
        log_probs=torch.zeros(samples, 1, n),
        rewards=torch.zeros(samples, 1),
        dones=torch.zeros(samples, 1, dtype=torch.bool),
    )
    layout = FlatLayout(rollout)  # T = samples steps of one copy
    kl = distill_readout(
        actor, torch.optim.SGD(head, lr=1.0), 1.0, obs, avail, context, layout, 1, 1
    )
    torch.testing.assert_close(kl, reference.mean(), rtol=1e-5, atol=1e-6)
    for p, b, g in zip(head, before, grads):
        torch.testing.assert_close(p.detach(), b - g, rtol=1e-5, atol=1e-6)
