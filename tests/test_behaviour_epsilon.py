"""``TrainConfig.behaviour_epsilon``: a share of uniformly random actions while collecting.

The sampler draws from ``(1 - eps) pi + eps U(available)`` and returns the mixture's
log-probabilities; collection uses it, evaluation and ``act`` do not.
"""

from __future__ import annotations

import pytest
import torch

import mapograph as mg
from mapograph.policies import MASKED_LOGIT, sample_categorical


def test_the_sampler_draws_from_the_mixture_and_returns_its_log_probs():
    logits = torch.tensor([4.0, 1.0, MASKED_LOGIT, 0.0]).expand(200_000, 4)
    eps = 0.3
    gen = torch.Generator().manual_seed(0)
    actions, log_probs = sample_categorical(logits, False, gen, epsilon=eps)
    pi = torch.softmax(torch.tensor([4.0, 1.0, -1e9, 0.0]), -1)
    mixture = (1 - eps) * pi + eps * torch.tensor([1, 1, 0, 1]) / 3
    freq = torch.bincount(actions, minlength=4).float() / len(actions)
    torch.testing.assert_close(freq, mixture, atol=4e-3, rtol=0)
    assert freq[2] == 0  # a masked action is never drawn
    torch.testing.assert_close(log_probs, mixture.log()[actions])
    # without epsilon: the policy's own log-probs, the same draws as before the option
    plain = sample_categorical(logits[:1000], False, torch.Generator().manual_seed(1))
    zero = sample_categorical(logits[:1000], False, torch.Generator().manual_seed(1), 0.0)
    assert torch.equal(plain[0], zero[0]) and torch.equal(plain[1], zero[1])
    # greedy actions ignore it
    greedy, lp = sample_categorical(logits[:5], True, gen, epsilon=eps)
    assert torch.equal(greedy, torch.zeros(5, dtype=torch.long))
    torch.testing.assert_close(lp, pi[0].log().expand(5))


def _trainer(**kw) -> mg.Trainer:
    env = mg.envs.make("contextual:tree-7", num_envs=8, seed=0)
    dag = [list(e) for e in env.interdependence().edges]
    cfg = mg.TrainConfig(
        algo="b2mapo",
        fixed_dag=dag,
        rollout_length=16,
        total_steps=8 * 16 * 3,
        seed=0,
        progress=False,
        tensorboard=False,
        **kw,
    )
    return mg.Trainer(env, cfg)


def _collect(trainer: mg.Trainer):
    """One rollout of the behaviour policy (B2MAPO: pi_seq decoding batch after batch)."""
    plan = trainer.algorithm.schedule.propose(trainer._timestep())
    assert len(plan.batches) > 1 and plan.edge_index.numel() > 0
    return trainer.collector.collect(trainer._behaviour(plan), trainer.cfg.rollout_length)[0]


def test_b2mapo_collects_with_the_mixture_and_resumes_exactly(tmp_path):
    eps = 0.5

    def peaked(trainer: mg.Trainer) -> mg.Trainer:
        with torch.no_grad():  # every agent's policy all but certain of action 0
            trainer.algorithm.actor.base.net.out_layer.bias[:, 0] += 12.0
        return trainer

    trainer = peaked(_trainer(behaviour_epsilon=eps))
    plan = trainer.algorithm.schedule.propose(trainer._timestep())
    rollout = _collect(trainer)
    n_actions = trainer.env.spec.n_actions
    deviations = float((rollout.actions != 0).float().mean())
    assert abs(deviations - eps * (n_actions - 1) / n_actions) < 0.05
    assert float((_collect(peaked(_trainer())).actions != 0).float().mean()) < 0.01
    # the stored log-probs are the mixture's, under pi_seq given the parents' actual actions
    dist = trainer.algorithm.actor.distribution(
        rollout.obs, rollout.avail, parent_actions=rollout.actions, edge_index=plan.edge_index
    )
    mixture = ((1 - eps) * dist.log_prob(rollout.actions).exp() + eps / n_actions).log()
    torch.testing.assert_close(rollout.log_probs, mixture, rtol=1e-4, atol=1e-5)

    full = _trainer(behaviour_epsilon=eps)
    full.train()
    part = _trainer(behaviour_epsilon=eps)
    part.cfg.total_steps = 8 * 16 * 2
    part.train()
    resumed = mg.Trainer.load(part.save(tmp_path / "ckpt.pt"), part.env, total_steps=8 * 16 * 3)
    resumed.train()
    for name, module in full.algorithm.modules().items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, resumed.algorithm.modules()[name].state_dict()[key]), key


def test_behaviour_epsilon_needs_discrete_actions_and_a_valid_share():
    env = mg.envs.make("continuous:follow-3", num_envs=2, seed=0)
    with pytest.raises(ValueError, match="needs a discrete action space"):
        mg.Trainer(env, mg.TrainConfig(behaviour_epsilon=0.1, progress=False, tensorboard=False))
    with pytest.raises(ValueError, match="behaviour_epsilon must lie in"):
        mg.TrainConfig(behaviour_epsilon=1.0)
