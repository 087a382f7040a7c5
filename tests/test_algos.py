"""The batch-sequential optimizer: GAE, corrections, isolation of agents, presets."""

from __future__ import annotations

import copy

import pytest
import torch

import mapograph as mg
from mapograph.algos import AgentMaskedAdam, gae

from conftest import MatrixGameEnv, policy_probs


def test_gae_matches_hand_computation():
    # T=3, E=1; episode ends after step 1 (index 1); gamma=0.9, lambda=0.8
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [2.0], [4.0]])
    dones = torch.tensor([[False], [True], [False]])
    g, lam = 0.9, 0.8
    d2 = 3.0 + g * 4.0 - 2.0
    d1 = 2.0 - 1.0  # no bootstrap across the episode end
    d0 = 1.0 + g * 1.0 - 0.5
    a2 = d2
    a1 = d1
    a0 = d0 + g * lam * a1
    expected = torch.tensor([[a0], [a1], [a2]])
    torch.testing.assert_close(gae(rewards, values, dones, g, lam), expected)


def test_trace_of_ones_is_plain_gae_and_trace_scales_recursively():
    torch.manual_seed(0)
    rewards, dones = torch.randn(5, 3), torch.rand(5, 3) < 0.2
    values = torch.randn(6, 3)
    plain = gae(rewards, values, dones, 0.99, 0.95)
    assert torch.equal(gae(rewards, values, dones, 0.99, 0.95, trace=torch.ones(5, 3)), plain)
    trace = torch.full((5, 3), 0.5)
    traced = gae(rewards, values, dones, 0.99, 0.0, trace=trace)  # lambda 0: A_t = c_t * delta_t
    torch.testing.assert_close(traced, 0.5 * gae(rewards, values, dones, 0.99, 0.0))


@pytest.mark.parametrize("steps", [1, 2, 7, 64, 129, 1000])
def test_gae_scan_matches_the_backward_recursion(steps):
    """The parallel prefix scan gives the recursion's advantages (episode ends, traces,
    lengths that are and are not powers of two)."""
    gen = torch.Generator().manual_seed(steps)
    rewards, values = torch.randn(steps, 4, generator=gen), torch.randn(steps + 1, 4, generator=gen)
    dones = torch.rand(steps, 4, generator=gen) < 0.1
    trace = 0.5 + torch.rand(steps, 4, generator=gen)
    for c in (None, trace):
        expected = torch.zeros(steps, 4, dtype=torch.float64)
        running = torch.zeros(4, dtype=torch.float64)
        for t in range(steps - 1, -1, -1):  # A_t = c_t (delta_t + gamma lam (1 - d_t) A_{t+1})
            keep = 1.0 - dones[t].double()
            delta = rewards[t].double() + 0.99 * keep * values[t + 1].double() - values[t].double()
            running = delta + 0.99 * 0.95 * keep * running
            running = running if c is None else c[t].double() * running
            expected[t] = running
        got = gae(rewards, values, dones, 0.99, 0.95, trace=c)
        torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-4)


def test_gae_rejects_missing_bootstrap_row():
    with pytest.raises(ValueError, match="bootstrap"):
        gae(torch.zeros(3, 1), torch.zeros(3, 1), torch.zeros(3, 1, dtype=torch.bool), 0.9, 0.9)


def test_masked_adam_leaves_other_agents_bit_identical():
    torch.manual_seed(1)
    w = torch.nn.Parameter(torch.randn(4, 3, 2))
    opt = AgentMaskedAdam([w], 4, lr=0.1, max_grad_norm=1.0)
    (w**2).sum().backward()
    opt.step(torch.tensor([0, 1, 2, 3]))
    before_w = w.detach().clone()
    before_m = opt.state[w]["exp_avg"].clone()
    before_v = opt.state[w]["exp_avg_sq"].clone()
    before_steps = opt.steps.clone()
    opt.zero_grad()
    (w**3).sum().backward()
    opt.step(torch.tensor([1, 3]))
    for row in (0, 2):
        assert torch.equal(w[row], before_w[row])
        assert torch.equal(opt.state[w]["exp_avg"][row], before_m[row])
        assert torch.equal(opt.state[w]["exp_avg_sq"][row], before_v[row])
        assert opt.steps[row] == before_steps[row]
    for row in (1, 3):
        assert not torch.equal(w[row], before_w[row])
        assert opt.steps[row] == before_steps[row] + 1


def test_masked_adam_matches_torch_adam_on_selected_rows():
    torch.manual_seed(2)
    w1 = torch.nn.Parameter(torch.randn(2, 5))
    w2 = torch.nn.Parameter(w1.detach().clone())
    ours = AgentMaskedAdam([w1], 2, lr=0.01, eps=1e-8)
    ref = torch.optim.Adam([w2], lr=0.01, eps=1e-8)
    for _ in range(5):
        for w, opt in ((w1, ours), (w2, ref)):
            opt.zero_grad()
            (w.sin() * torch.arange(5.0)).sum().backward()
        ours.step(torch.tensor([0, 1]))
        ref.step()
    torch.testing.assert_close(w1, w2)


def test_masked_adam_is_a_torch_optimizer_that_lr_schedulers_drive():
    w = torch.nn.Parameter(torch.ones(3, 2))
    opt = AgentMaskedAdam([w], 3, lr=0.1)
    assert isinstance(opt, torch.optim.Optimizer)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(2):
        opt.zero_grad()
        w.sum().backward()
        opt.step()
        scheduler.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)
    # with the same gradient sign every step, Adam moves each step by ~lr: 0.1 + 0.05
    torch.testing.assert_close(w.detach(), torch.full((3, 2), 1 - 0.15), rtol=0, atol=1e-3)
    # state round-trips through torch's own state_dict format
    other = AgentMaskedAdam([torch.nn.Parameter(torch.ones(3, 2))], 3, lr=0.1)
    other.load_state_dict(opt.state_dict())
    assert torch.equal(other.steps, torch.full((3,), 2.0, dtype=torch.float64))


def test_masked_adam_survives_deepcopy_with_its_clip_and_agent_count():
    # torch.optim.Optimizer pickles only defaults/state/param_groups: a copy that lost
    # n_agents and max_grad_norm could not step (or would stop clipping)
    w = torch.nn.Parameter(torch.zeros(2, 3))
    opt = AgentMaskedAdam([w], 2, lr=0.1, max_grad_norm=1e-3)
    copied = copy.deepcopy(opt)
    assert (copied.n_agents, copied.max_grad_norm) == (2, 1e-3)
    w2 = copied.param_groups[0]["params"][0]
    (w2 * torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])).sum().backward()
    copied.step(torch.tensor([0]))
    assert torch.equal(w2[1], torch.zeros(3)) and not torch.equal(w2[0], torch.zeros(3))
    assert torch.equal(w, torch.zeros(2, 3))  # the original is untouched


def _train_one_iteration(env, **overrides):
    cfg = mg.TrainConfig(
        total_steps=env.num_envs * 32,
        rollout_length=32,
        num_envs=env.num_envs,
        seed=0,
        progress=False,
        **overrides,
    )
    trainer = mg.Trainer(env, cfg)
    return trainer


def test_agents_outside_the_batch_are_untouched(three_agent_game):
    trainer = _train_one_iteration(
        three_agent_game, algo="happo", partition="fixed", fixed_partition=[[2, 0], [1]]
    )
    ppo = trainer.algorithm.optimizer
    before = {k: v.detach().clone() for k, v in trainer.actor.state_dict().items()}
    state_before = copy.deepcopy(ppo.actor_optim.state_dict()["state"])
    rollout, _, _ = trainer.collector.collect(trainer._behaviour(trainer.plan), 16)
    ppo.update(rollout, [[2, 0]])  # only agents 0 and 2 may move
    after = trainer.actor.state_dict()
    state_after = ppo.actor_optim.state_dict()["state"]
    for name, tensor in after.items():
        assert torch.equal(tensor[1], before[name][1]), name
        assert not torch.equal(tensor[[0, 2]], before[name][[0, 2]]), name
    for i, param_state in state_after.items():
        for key in ("exp_avg", "exp_avg_sq", "agent_step"):
            assert torch.equal(state_before[i][key][1], param_state[key][1])
            assert not torch.equal(state_before[i][key][[0, 2]], param_state[key][[0, 2]])


def test_separate_parameters_make_uncorrected_sequential_updates_equal_mappo(three_agent_game):
    """With separate per-agent parameters MAPPO's loss splits into per-agent terms, so an
    agent-by-agent update without correction is MAPPO's update: only HAPPO's factor differs."""
    from mapograph.algos import CORRECTIONS

    trainer = _train_one_iteration(three_agent_game, algo="mappo", lr=1e-2)
    trainer.train_iteration()  # a policy away from uniform, Adam moments warm
    rollout, _, _ = trainer.collector.collect(trainer._behaviour(trainer.plan), 32)
    results = {}
    for name, plan, correction in (
        ("mappo", [[0, 1, 2]], "none"),
        ("sequential", [[2], [0], [1]], "none"),
        ("happo", [[2], [0], [1]], "factor"),
    ):
        ppo = copy.deepcopy(trainer.algorithm.optimizer)
        ppo.correction = CORRECTIONS.get(correction)
        ppo.update(rollout, plan)
        results[name] = ppo.actor.state_dict()
    for key, tensor in results["mappo"].items():
        torch.testing.assert_close(results["sequential"][key], tensor, rtol=1e-5, atol=1e-6)
    moved = [not torch.allclose(results["happo"][k], t) for k, t in results["mappo"].items()]
    assert any(moved)  # the factor changes the later agents' updates


PRESET_CONFIGS = {
    "mappo": {},
    "happo": {},
    "a2po": {},
    "b2mapo": {"partition": "generations"},
}


@pytest.mark.parametrize("algo", sorted(PRESET_CONFIGS))
def test_small_step_does_not_decrease_exact_objective(algo, three_agent_game):
    """Monotonic improvement: with a small step the exact joint objective never drops."""
    env = three_agent_game
    trainer = _train_one_iteration(
        env, algo=algo, lr=3e-3, epochs=2, entropy_coef=0.0, **PRESET_CONFIGS[algo]
    )
    trainer.cfg.total_steps = env.num_envs * 32 * 6
    objective = [env.objective(policy_probs(trainer))]
    while trainer.env_steps < trainer.cfg.total_steps:
        trainer.train_iteration()
        objective.append(env.objective(policy_probs(trainer)))
    diffs = torch.diff(torch.tensor(objective))
    assert (diffs >= -1e-4).all(), (algo, objective)
    assert objective[-1] > objective[0] + 1e-3, (algo, objective)


def _actor_params_after(env_factory, iterations=2, **overrides):
    env = env_factory()
    trainer = _train_one_iteration(env, **overrides)
    for _ in range(iterations):
        trainer.train_iteration()
    return trainer


@pytest.mark.parametrize(
    "execution",
    [{"pi_ind": "separate"}, {"pi_ind": "readout"}, {"pi_ind": "tied", "kl_coef": 0.0}],
)
def test_b2mapo_with_one_batch_performs_the_mappo_update(execution):
    # pi_seq's update is MAPPO's when nothing else enters its loss: a separate pi_ind,
    # a readout one (distilled into its own head only), or a tied one without its
    # distillation term
    payoff = torch.rand(2, 2, 2, generator=torch.Generator().manual_seed(5))
    factory = lambda: MatrixGameEnv(payoff, num_envs=64)  # noqa: E731
    mappo = _actor_params_after(factory, algo="mappo")
    b2mapo = _actor_params_after(factory, algo="b2mapo", partition="simultaneous", **execution)
    for name, tensor in mappo.actor.state_dict().items():
        assert torch.equal(tensor, b2mapo.actor.base.state_dict()[name]), name
    for name, tensor in mappo.critic.state_dict().items():
        assert torch.equal(tensor, b2mapo.critic.state_dict()[name]), name


@pytest.mark.parametrize("reference", ["happo", "a2po"])
def test_b2mapo_with_one_agent_batches_performs_the_sequential_update(reference):
    payoff = torch.rand(2, 2, 2, generator=torch.Generator().manual_seed(6))
    factory = lambda: MatrixGameEnv(payoff, num_envs=64)  # noqa: E731
    preset = mg.algos.get_algorithm(reference)
    order = [[2], [0], [1]]
    ref = _actor_params_after(factory, algo=reference, partition="fixed", fixed_partition=order)
    b2 = _actor_params_after(
        factory,
        algo="b2mapo",
        partition="fixed",
        fixed_partition=order,
        correction=preset.correction,
        correction_clip=preset.correction_clip,
        pi_ind="separate",
    )
    for name, tensor in ref.actor.state_dict().items():
        assert torch.equal(tensor, b2.actor.base.state_dict()[name]), name


def test_presets_choose_their_partitions(three_agent_game):
    seen = {}
    for algo in ("mappo", "happo", "a2po"):
        trainer = _train_one_iteration(three_agent_game, algo=algo)
        seen[algo] = trainer.train_iteration()["batches"]
    assert seen["mappo"] == [[0, 1, 2]]
    for algo in ("happo", "a2po"):
        assert sorted(len(b) for b in seen[algo]) == [1, 1, 1]
        assert sorted(a for b in seen[algo] for a in b) == [0, 1, 2]


def test_share_params_with_several_batches_shares_only_the_torso(three_agent_game):
    trainer = _train_one_iteration(three_agent_game, algo="happo", share_params=True)
    actor = trainer.actor
    assert actor.shared_torso and not actor.share_params  # not one network for all agents
    heads = [p for p in actor.parameters() if all(p is not t for t in actor.torso_parameters())]
    assert heads and all(p.shape[0] == 3 for p in heads)  # stacked per agent
    assert trainer.train_iteration()["batches"] != [[0, 1, 2]]


def test_unknown_algorithm_lists_known_ones():
    with pytest.raises(ValueError, match="mappo"):
        mg.TrainConfig(algo="nope")


@pytest.mark.parametrize(
    "fixed",
    [
        {"algo": "happo", "fixed_order": [0, 1]},  # agent 2 would never be updated
        {"algo": "happo", "fixed_order": [0, 1, 1]},
        {"algo": "mappo", "fixed_partition": [[0, 1]]},
        {"algo": "mappo", "fixed_partition": [[0, 1], [1, 2]]},
        {"algo": "mappo", "fixed_partition": [[0], [1, 2, 3]]},
    ],
)
def test_fixed_batches_that_do_not_fit_the_env_are_rejected_at_construction(
    fixed, three_agent_game
):
    with pytest.raises(ValueError, match=r"(every agent|the 3 agents) 0\.\.2"):
        mg.Trainer(three_agent_game, mg.TrainConfig(progress=False, **fixed))


def test_b2mapo_beyond_64_agents_uses_sparse_candidates_and_linear_parent_messages():
    env = mg.envs.make("coordination:random-80", num_envs=2, seed=0)
    cfg = mg.TrainConfig(
        algo="b2mapo",
        total_steps=2 * 8 * 2,
        rollout_length=8,
        num_envs=2,
        hidden=16,
        generator_hidden=16,
        progress=False,
        tensorboard=False,
    )
    trainer = mg.Trainer(env, cfg)
    history = trainer.train().history
    assert sorted(a for b in history[-1]["batches"] for a in b) == list(range(80))
    upper = trainer.algorithm.schedule.upper
    pairs = upper.candidate_pairs()
    assert pairs is not None and pairs.shape[1] <= 2 * 16 * 80  # O(N k), not N (N - 1)
    probs = trainer.interdependence()
    allowed = {tuple(p) for p in pairs.t().tolist()}
    assert all((i, j) in allowed for i, j, w in probs.edges(data="weight") if w > 1e-6)
    assert type(trainer.actor.encode).__name__ == "EmbeddedEncoding"
    with pytest.raises(ValueError, match="generator_candidates"):
        mg.TrainConfig(generator_candidates=0)


def test_agent_masked_adam_shares_one_step_count_and_keeps_it_through_a_checkpoint():
    """One per-agent step tensor serves every parameter (one update per step, not one per
    parameter); it survives state_dict/load_state_dict as one shared float64 tensor."""
    from mapograph.algos._masked_adam import AgentMaskedAdam

    params = [torch.nn.Parameter(torch.randn(4, 3, 2)), torch.nn.Parameter(torch.randn(4, 5))]
    opt = AgentMaskedAdam(params, 4, lr=1e-2, max_grad_norm=1.0)
    for agents in (torch.tensor([0, 2]), None, torch.tensor([2])):
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step(agents)
    assert opt.steps.tolist() == [2.0, 1.0, 3.0, 1.0]
    manual = sum(p.grad.reshape(4, -1).pow(2).sum(1) for p in params).sqrt()
    torch.testing.assert_close(opt.agent_grad_norms(), manual)
    torch.testing.assert_close(opt.agent_grad_norms(torch.tensor([3, 1])), manual[[3, 1]])
    again = AgentMaskedAdam([torch.nn.Parameter(p.detach().clone()) for p in params], 4, lr=1e-2)
    again.load_state_dict(opt.state_dict())
    states = list(again.state.values())
    assert all(s["agent_step"] is states[0]["agent_step"] for s in states)
    assert again.steps.dtype == torch.float64 and again.steps.tolist() == [2.0, 1.0, 3.0, 1.0]
    for p in again._params():
        p.grad = torch.ones_like(p)
    again.step(torch.tensor([1]))
    assert again.steps.tolist() == [2.0, 2.0, 3.0, 1.0]


def test_agent_masked_adam_leaves_a_parameter_without_gradient_and_its_moments_alone():
    """A parameter that got no gradient this step (a parent head no agent of the batch
    uses) keeps its values and moments on both paths (a subset of agents and all of
    them); the others move exactly as with an optimizer of their own."""
    from mapograph.algos._masked_adam import AgentMaskedAdam

    torch.manual_seed(3)
    used, unused = torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(4, 2))
    alone = torch.nn.Parameter(used.detach().clone())
    both = AgentMaskedAdam([used, unused], 4, lr=1e-2, max_grad_norm=0.5)
    single = AgentMaskedAdam([alone], 4, lr=1e-2, max_grad_norm=0.5)
    for p in (used, unused):  # a first step of both (below the clip) gives both moments
        p.grad = 0.01 * torch.randn_like(p)
    alone.grad = used.grad.clone()
    both.step(torch.tensor([0, 2]))
    single.step(torch.tensor([0, 2]))
    for agents in (torch.tensor([2, 1]), None):
        before = unused.detach().clone()
        moments = [both.state[unused][k].clone() for k in ("exp_avg", "exp_avg_sq")]
        used.grad, unused.grad = torch.randn_like(used), None
        alone.grad = used.grad.clone()
        both.step(agents)
        single.step(agents)
        assert torch.equal(unused, before)
        assert torch.equal(both.state[unused]["exp_avg"], moments[0])
        assert torch.equal(both.state[unused]["exp_avg_sq"], moments[1])
        assert torch.equal(used, alone)
        assert torch.equal(both.state[used]["exp_avg_sq"], single.state[alone]["exp_avg_sq"])
    # the state torch saves is the state the steps use
    saved = both.state_dict()["state"][0]["exp_avg"]
    assert saved.shape == (4, 3) and torch.equal(saved, both.state[used]["exp_avg"])
    assert not torch.equal(saved[3], torch.zeros(3))  # agent 3 stepped in the last step


def test_agent_masked_adam_refuses_a_param_group_added_later():
    """Parameters share one per-agent step count, so a group added after construction
    (whose moments would start at zero under that count) is refused, by name."""
    from mapograph.algos._masked_adam import AgentMaskedAdam

    opt = AgentMaskedAdam([torch.nn.Parameter(torch.randn(3, 2))], 3, lr=1e-2)
    with pytest.raises(ValueError, match="AgentMaskedAdam takes all its parameters"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.randn(3, 4))], "lr": 1e-3})
    assert len(opt.param_groups) == 1


def test_agent_masked_adam_steps_a_batch_of_every_agent_in_place_with_the_same_result():
    """A batch holding all N agents (in any order) takes the in-place path: the same
    parameters and moments as the gathering path on the same rows, and the gradients
    are not scaled in place."""
    from mapograph.algos._masked_adam import AgentMaskedAdam

    torch.manual_seed(1)
    first = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(4, 2, 2))]
    second = [torch.nn.Parameter(p.detach().clone()) for p in first]
    by_batch = AgentMaskedAdam(first, 4, lr=1e-2, max_grad_norm=0.1)
    by_rows = AgentMaskedAdam(second, 4, lr=1e-2, max_grad_norm=0.1)
    for _ in range(4):
        grads = [torch.randn_like(p) for p in first]
        for p, g in zip(first, grads):
            p.grad = g.clone()
        for p, g in zip(second, grads):
            p.grad = g.clone()
        by_batch.step(torch.tensor([2, 0, 3, 1]))
        # the gathering path, two agents at a time (rows are independent), is the reference
        by_rows.step(torch.tensor([0, 1]))
        by_rows.step(torch.tensor([3, 2]))
        assert all(torch.equal(p.grad, g) for p, g in zip(first, grads))  # not clipped in place
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    for a, b in zip(first, second):
        assert torch.equal(by_batch.state[a]["exp_avg"], by_rows.state[b]["exp_avg"])
