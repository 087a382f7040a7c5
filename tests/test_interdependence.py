"""Interdependence estimators (pairwise-payoff critic vs pooled ANOVA), direction, given DAGs."""

from __future__ import annotations

import networkx as nx
import pytest
import torch

import mapograph as mg
from mapograph.algos import PairwisePayoffEstimator, PooledRewardAnova
from mapograph.algos._estimators import behaviour_exploration
from mapograph.algos._interaction import action_interaction
from mapograph.graph import PairwisePayoffCritic, action_vectors, orient, priority_order


def skeleton_auc(score: torch.Tensor, dag: nx.DiGraph) -> float:
    """AUC of a symmetric pair score ``[N, N]`` for 'adjacent in ``dag``'."""
    n = dag.number_of_nodes()
    pos, neg = [], []
    for i in range(n):
        for j in range(i + 1, n):
            value = float(score[i, j] + score[j, i])
            (pos if dag.has_edge(i, j) or dag.has_edge(j, i) else neg).append(value)
    return sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))


def graph_scores(graph: nx.DiGraph) -> torch.Tensor:
    n = graph.number_of_nodes()
    out = torch.zeros(n, n)
    for i, j, w in graph.edges(data="weight"):
        out[i, j] = w
    return out


def random_action_data(task: str, samples: int, seed: int = 0):
    env = mg.envs.make(task, num_envs=samples, seed=seed)
    ts = env.reset()
    gen = torch.Generator().manual_seed(seed)
    actions = torch.randint(0, env.spec.n_actions, (samples, env.spec.n_agents), generator=gen)
    return env, ts.obs, actions, env.step(actions).reward


def fit(critic, obs, act, target, pairs, epochs, seed=0):
    gen = torch.Generator().manual_seed(seed)
    optim = torch.optim.Adam(critic.parameters(), lr=3e-3)
    target = (target - target.mean()) / target.std()
    for _ in range(epochs):
        for idx in torch.randperm(obs.shape[0], generator=gen).split(256):
            loss = (critic(obs[idx], act[idx], pairs) - target[idx]).pow(2).mean()
            optim.zero_grad()
            loss.backward()
            optim.step()
    return float(loss.detach())


def test_pairwise_critic_sees_observation_conditioned_edges_the_pooled_anova_misses():
    torch.manual_seed(0)
    env, obs, actions, reward = random_action_data("contextual:chain-6", 3072)
    n, a = env.spec.n_agents, env.spec.n_actions
    pairs = torch.triu_indices(n, n, 1)
    critic = PairwisePayoffCritic(env.spec.obs_dim, a, n, hidden=32, rank=2)
    fit(critic, obs, action_vectors(actions, a), reward, pairs, epochs=25)
    strength, _ = critic.pair_strength(obs[:256], pairs, torch.eye(a))
    matrix = torch.zeros(n, n)
    matrix[pairs[0], pairs[1]] = strength
    dag = env.interdependence()
    assert skeleton_auc(matrix, dag) >= 0.95
    assert skeleton_auc(action_interaction(actions, reward, a), dag) <= 0.7


def test_pairwise_critic_takes_continuous_actions():
    """Box actions plug in as vectors: a bilinear team reward a_0 . a_2 is found on pair (0, 2)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    s, n, d = 2048, 4, 2
    obs = torch.randn(s, n, 3, generator=gen)
    act = torch.rand(s, n, d, generator=gen) * 2 - 1
    assert action_vectors(act) is act
    reward = (act[:, 0] * act[:, 2]).sum(-1) + 0.5 * act[:, 1, 0]
    pairs = torch.triu_indices(n, n, 1)
    critic = PairwisePayoffCritic(3, d, n, hidden=32, rank=2)
    fit(critic, obs, act, reward, pairs, epochs=15)
    strength, own = critic.pair_strength(obs[:128], pairs, act[:16, 0])
    best = int(strength.argmax())
    assert (int(pairs[0, best]), int(pairs[1, best])) == (0, 2)
    assert int(own.argmax()) in (0, 1, 2)


def test_pairwise_critic_scales_to_many_agents_with_candidate_pairs():
    n = 128
    critic = PairwisePayoffCritic(5, 3, n, hidden=16, rank=2)
    pairs = torch.randint(0, n, (2, 512))
    pairs = pairs[:, pairs[0] != pairs[1]]
    obs, act = torch.randn(8, n, 5), action_vectors(torch.randint(0, 3, (8, n)), 3)
    q = critic(obs, act, pairs)
    assert q.shape == (8,)
    strength, own = critic.pair_strength(obs, pairs, torch.eye(3))
    assert strength.shape == (pairs.shape[1],) and own.shape == (n,)


def test_action_vectors_need_n_actions_for_discrete_actions():
    with pytest.raises(ValueError, match="n_actions"):
        action_vectors(torch.zeros(3, dtype=torch.long))


# -------------------------------------------------------------------- direction
def test_priority_order_orients_a_tree_from_the_anchor():
    dag = mg.envs.layout_dag("tree", 7, layout_seed=3)
    strength = torch.full((7, 7), 0.01)
    for i, j in dag.edges:
        strength[i, j] = strength[j, i] = 1.0
    own = torch.full((7,), 0.25)
    root = next(v for v in dag if dag.in_degree(v) == 0)
    own[root] = 1.0
    order = priority_order(strength, own)
    assert order[0] == root
    assert set(orient(strength, order).edges) == set(dag.edges)


def test_priority_order_rejects_bad_shapes():
    with pytest.raises(ValueError, match="own_effect"):
        priority_order(torch.zeros(3, 3), torch.zeros(4))


# -------------------------------------------------------------- estimator choice
def small_b2mapo(env, **kw):
    return mg.TrainConfig(
        algo="b2mapo",
        total_steps=2 * 32 * env.num_envs,
        rollout_length=32,
        progress=False,
        tensorboard=False,
        **kw,
    )


def test_estimator_is_chosen_by_name_and_a_registered_one_is_used():
    from mapograph.algos import ESTIMATORS, InteractionEstimator, Interdependence

    calls = []

    class Diagonal(InteractionEstimator):
        def update(self, data):
            calls.append(data.rollout.horizon)
            n = self.context.n_agents
            strength = torch.zeros(n, n, device=self.context.device)
            strength[0, 1] = strength[1, 0] = 1.0
            return Interdependence(strength, order=list(range(n)))

    ESTIMATORS.register("test_diagonal", Diagonal)
    try:
        env = mg.envs.make("contextual:chain-4", num_envs=4, seed=0)
        trainer = mg.Trainer(env, small_b2mapo(env, interaction_estimator="test_diagonal"))
        trainer.train()
        assert calls == [32, 32]
        assert float(trainer.algorithm.schedule.upper.interaction[0, 1]) == 1.0
    finally:
        ESTIMATORS.unregister("test_diagonal")
    with pytest.raises(
        ValueError,
        match="interaction_estimator must be one of anova, anova_reward, pairwise, pairwise_td, auto",
    ):
        mg.TrainConfig(algo="b2mapo", interaction_estimator="nope")


@pytest.mark.parametrize("estimator", ["pairwise", "anova", "pairwise_td", "anova_reward"])
def test_each_estimator_trains_and_resumes(tmp_path, estimator):
    env = mg.envs.make("contextual:chain-4", num_envs=4, seed=0)
    trainer = mg.Trainer(env, small_b2mapo(env, interaction_estimator=estimator))
    trainer.train()
    path = trainer.save(tmp_path / "ckpt.pt")
    again = mg.Trainer.load(path, mg.envs.make("contextual:chain-4", num_envs=4, seed=0))
    assert torch.equal(
        again.algorithm.schedule.upper.interaction, trainer.algorithm.schedule.upper.interaction
    )
    graph = trainer.interdependence()
    assert graph.number_of_edges() == 12


@pytest.mark.slow
def test_trained_b2mapo_finds_the_observation_conditioned_dag_and_its_direction():
    """The issue's test: skeleton AUC of interdependence() high with the pairwise estimator,
    at chance or below with the pooled ANOVA; the estimator's order directs the chain."""
    results = {}
    for estimator in ("pairwise", "anova"):
        env = mg.envs.make("contextual:chain-6", num_envs=16, seed=0)
        cfg = mg.TrainConfig(
            algo="b2mapo",
            total_steps=24_000,
            seed=0,
            progress=False,
            tensorboard=False,
            interaction_estimator=estimator,
        )
        trainer = mg.Trainer(env, cfg)
        trainer.train()
        dag = env.interdependence()
        results[estimator] = skeleton_auc(graph_scores(trainer.interdependence()), dag)
        if estimator == "pairwise":
            est = trainer.algorithm.schedule.estimator
            order = priority_order(est.strength, est.own)
            rank = {v: k for k, v in enumerate(order)}
            assert all(rank[i] < rank[j] for i, j in dag.edges)
    assert results["pairwise"] >= 0.9
    assert results["anova"] <= 0.65


def test_auto_estimator_is_pairwise_while_all_pairs_fit_and_the_reward_anova_beyond():
    assert mg.TrainConfig().interaction_estimator == "auto"
    for n, extra, kind in (
        (45, {}, PairwisePayoffEstimator),  # 990 pairs <= estimator_max_pairs = 1024
        (46, {}, PooledRewardAnova),  # 1,035 pairs
        (46, {"estimator_max_pairs": 1035}, PairwisePayoffEstimator),
    ):
        env = mg.envs.make(f"coordination:random-{n}", num_envs=2, seed=0)
        trainer = mg.Trainer(env, small_b2mapo(env, **extra))
        assert type(trainer.algorithm.schedule.estimator) is kind


def test_reward_anova_weighs_iterations_by_exploration():
    """Iterations whose policies no longer explore barely move the estimate: one of a
    deterministic behaviour policy is skipped, one with exploration e counts e^2 as
    much as a fully exploring one, each on its own scale (z-scores)."""
    import dataclasses

    trainer, data = train_recording_estimator("coordination:chain-4")
    estimator = PooledRewardAnova(trainer.algorithm.schedule.context)
    first = estimator.update(data).strength
    explore = estimator.weight  # exploration squared
    assert 0.25 < explore <= 1.0  # fresh policies: near uniform
    frozen = dataclasses.replace(
        data.rollout,
        log_probs=torch.zeros_like(data.rollout.log_probs),
        rewards=torch.randn_like(data.rollout.rewards),
    )
    skipped = estimator.update(dataclasses.replace(data, rollout=frozen))
    assert torch.equal(skipped.strength, first) and estimator.weight == explore
    # half the log-probabilities: exploration halves, weight a quarter of the first's
    half = dataclasses.replace(data.rollout, log_probs=data.rollout.log_probs / 2)
    noise = dataclasses.replace(half, rewards=torch.randn_like(half.rewards))
    mixed = estimator.update(dataclasses.replace(data, rollout=noise)).strength
    # (the first's sample entropy may exceed log |A| and be clipped to 1: half of the
    # unclipped value then, not exactly half of 1)
    half_explore = behaviour_exploration(half)[0]
    assert 0.45 < half_explore < 0.55
    assert estimator.weight == pytest.approx(explore + half_explore**2)
    from mapograph.algos._interaction import standardize_offdiagonal

    alone = standardize_offdiagonal(estimator.strengths(dataclasses.replace(data, rollout=noise)))
    expected = (explore * first + half_explore**2 * alone) / (explore + half_explore**2)
    assert torch.allclose(mixed, expected)


def trained_b2mapo(task: str, iterations: int, **config):
    """B2MAPO with its defaults (16 copies x 64 steps, seed 0) after ``iterations``
    iterations on ``task``: ``(trainer, env)``."""
    env = mg.envs.make(task, num_envs=16, seed=0)
    cfg = mg.TrainConfig(
        algo="b2mapo",
        total_steps=16 * 64 * iterations,
        seed=0,
        progress=False,
        tensorboard=False,
        **config,
    )
    trainer = mg.Trainer(env, cfg)
    trainer.train()
    return trainer, env


@pytest.mark.slow
def test_reward_anova_keeps_the_graph_once_the_policies_commit():
    """coordination:random-50, 80 iterations: the policies become near-deterministic
    functions of the shared signal from iteration ~30; a plain mean of the reward ANOVA
    then fell to AUC 0.64, the exploration-weighted mean of z-scores stays high."""
    trainer, env = trained_b2mapo("coordination:random-50", 80)
    assert type(trainer.algorithm.schedule.estimator) is PooledRewardAnova
    interaction = trainer.algorithm.schedule.upper.interaction
    assert skeleton_auc(interaction, env.interdependence()) >= 0.95


def test_reward_anova_finds_a_hundred_agent_graph_the_advantage_anova_misses():
    """One iteration of B2MAPO on coordination:random-100 (near-uniform first policies):
    the ANOVA of the reward ranks the true edges first; that of the GAE advantage, where
    the next steps' independent rewards are noise, does not."""
    aucs = {}
    for estimator in ("anova_reward", "anova"):
        trainer, env = trained_b2mapo("coordination:random-100", 2, interaction_estimator=estimator)
        aucs[estimator] = skeleton_auc(
            trainer.algorithm.schedule.upper.interaction, env.interdependence()
        )
    assert aucs["anova_reward"] >= 0.95
    assert aucs["anova"] <= 0.7


# -------------------------------------------------------------------- given DAGs
@pytest.mark.parametrize(
    ("dag", "match"),
    [
        ([[0, 7]], r"fixed_dag names agents \[7\] that do not exist: the env has 4 agents"),
        ([[-1, 2]], r"fixed_dag names agents \[-1\]"),
        ([[0, 1], [1, 2], [2, 0]], r"fixed_dag is not a DAG: .*cycle: 0 -> 1 -> 2 -> 0"),
        ([[1, 1]], r"fixed_dag is not a DAG: .*self-loop on node 1"),
    ],
)
def test_bad_given_dags_are_refused_with_a_clear_message(dag, match):
    env = mg.envs.make("coordination:chain-4", num_envs=2)
    with pytest.raises(ValueError, match=match):
        mg.Trainer(env, small_b2mapo(env, fixed_dag=dag))


@pytest.mark.parametrize("estimator", ["pairwise", "anova", "anova_reward"])
def test_estimators_run_on_box_actions(estimator):
    env = mg.envs.make("continuous:follow-3", num_envs=4, seed=0)
    trainer = mg.Trainer(env, small_b2mapo(env, interaction_estimator=estimator))
    trainer.train()
    strength = trainer.algorithm.schedule.upper.interaction
    assert strength.shape == (3, 3) and bool(torch.isfinite(strength).all())
    assert float(strength.abs().sum()) > 0


def test_parent_warmup_delays_parent_conditioning_and_survives_resume(tmp_path):
    env = mg.envs.make("contextual:chain-4", num_envs=4, seed=0)
    cfg = small_b2mapo(env, fixed_dag=[[0, 1], [1, 2]], parent_warmup=2)
    trainer = mg.Trainer(env, cfg)
    trainer.train_iteration()
    assert trainer.plan.edge_index is None  # pi_seq reads no parent yet
    path = trainer.save(tmp_path / "ckpt.pt")
    again = mg.Trainer.load(path, mg.envs.make("contextual:chain-4", num_envs=4, seed=0))
    again.train_iteration()
    assert again.plan.edge_index is None
    again.train_iteration()
    assert sorted(map(tuple, again.plan.edge_index.t().tolist())) == [(0, 1), (1, 2)]
    with pytest.raises(ValueError, match="parent_warmup"):
        mg.TrainConfig(algo="b2mapo", parent_warmup=-1)


def test_pair_strength_is_the_double_centred_payoff_of_the_critics_own_forward():
    """The strengths (computed with per-node projections and one meaning per state) equal
    the non-additive part of each pair's payoff read off the critic's message-passing
    forward: Q with the pair minus Q without it, over every joint action of the pair."""
    torch.manual_seed(0)
    n, n_actions, b = 4, 3, 5
    critic = PairwisePayoffCritic(6, n_actions, n, hidden=16, rank=3)
    obs = torch.randn(b, n, 6)
    pairs = torch.tensor([[0, 1, 2], [2, 3, 3]])
    strength, _ = critic.pair_strength(obs, pairs, torch.eye(n_actions))
    base = torch.zeros(b, n, dtype=torch.long)
    for p in range(pairs.shape[1]):
        i, j = pairs[:, p].tolist()
        table = torch.empty(b, n_actions, n_actions)
        for a in range(n_actions):
            for c in range(n_actions):
                joint = base.clone()
                joint[:, i], joint[:, j] = a, c
                act = action_vectors(joint, n_actions)
                with torch.no_grad():
                    table[:, a, c] = critic(obs, act, pairs[:, p : p + 1]) - critic(
                        obs, act, pairs[:, :0]
                    )
        centred = (
            table
            - table.mean(-1, keepdim=True)
            - table.mean(-2, keepdim=True)
            + table.mean((-1, -2), keepdim=True)
        )
        assert torch.allclose(strength[p], centred.pow(2).mean(), rtol=1e-4, atol=1e-7)
        assert strength[p] > 0


def test_estimator_work_per_iteration_is_a_fixed_number_of_steps_whatever_the_rollout():
    cfg = mg.TrainConfig(algo="b2mapo", estimator_steps=5, progress=False, tensorboard=False)
    for copies in (2, 32):
        env = mg.envs.make("contextual:chain-4", num_envs=copies, seed=0)
        trainer = mg.Trainer(env, cfg)
        estimator = trainer.algorithm.schedule.estimator
        batches = estimator.minibatches(copies * cfg.rollout_length)
        assert len(batches) == 5
        assert all(
            len(idx) == min(estimator.batch_size, copies * cfg.rollout_length) for idx in batches
        )
        flat = torch.cat(batches)
        if flat.numel() <= copies * cfg.rollout_length:  # within one pass: no sample twice
            assert flat.unique().numel() == flat.numel()
    with pytest.raises(ValueError, match="estimator_steps"):
        mg.TrainConfig(estimator_steps=0)


def train_recording_estimator(env_id: str):
    """Train a small B2MAPO on ``env_id`` with the pairwise estimator recording the data
    of every update; returns ``(trainer, last ScheduleData)``."""
    from mapograph.algos import ESTIMATORS
    from mapograph.algos._estimators import PairwisePayoffEstimator

    seen = []

    class Recording(PairwisePayoffEstimator):
        def update(self, data):
            seen.append(data)
            return super().update(data)

    ESTIMATORS.register("test_recording", Recording)
    try:
        env = mg.envs.make(env_id, num_envs=4, seed=0)
        trainer = mg.Trainer(env, small_b2mapo(env, interaction_estimator="test_recording"))
        trainer.train()
    finally:
        ESTIMATORS.unregister("test_recording")
    return trainer, seen[-1]


def test_pairwise_estimator_keeps_its_estimate_once_the_policies_stop_exploring():
    """Pairwise payoffs are identified only where joint actions vary: a rollout of a
    (nearly) deterministic policy must neither train the payoff critic nor move the
    strengths, whatever its rewards (which, standardized, would be mostly noise)."""
    import dataclasses

    trainer, data = train_recording_estimator("contextual:chain-4")
    estimator = trainer.algorithm.schedule.estimator
    assert 0.5 < estimator.exploration(data.rollout) <= 1.0  # fresh policies: near uniform
    frozen = dataclasses.replace(
        data.rollout,
        log_probs=torch.zeros_like(data.rollout.log_probs),
        rewards=data.rollout.rewards * 100.0 + torch.randn_like(data.rollout.rewards),
    )
    assert estimator.exploration(frozen) == 0.0
    before = estimator.strength.clone()
    params = [p.detach().clone() for p in estimator.critic.parameters()]
    estimate = estimator.update(dataclasses.replace(data, rollout=frozen))
    assert torch.equal(estimate.strength, before)
    assert all(torch.equal(p, q) for p, q in zip(params, estimator.critic.parameters()))
    # an exploring rollout still moves it
    estimator.update(data)
    assert not torch.equal(estimator.strength, before)


def test_pairwise_estimator_reads_box_actions_as_the_env_received_them():
    """The rollout stores unclipped Gaussian samples; the env acts on them clipped to the
    box. The payoff critic must regress the reward on the clipped actions: a rollout whose
    out-of-box actions are pushed further out gives bit-identically the same estimate."""
    import copy
    import dataclasses

    trainer, data = train_recording_estimator("continuous:follow-3")
    actions = data.rollout.actions
    outside = actions.abs() > 1
    assert bool(outside.any()), "the test needs out-of-box samples"
    pushed = torch.where(outside, actions * 3.0, actions)  # same clipped action
    estimates = []
    for rollout_actions in (actions, pushed):
        estimator = copy.deepcopy(trainer.algorithm.schedule.estimator)
        rollout = dataclasses.replace(data.rollout, actions=rollout_actions)
        estimates.append(estimator.update(dataclasses.replace(data, rollout=rollout)).strength)
    assert torch.equal(estimates[0], estimates[1])


def test_estimator_hidden_sets_the_payoff_critics_width():
    env = mg.envs.make("contextual:chain-4", num_envs=2, seed=0)
    widths = {}
    for hidden in (8, 24):
        trainer = mg.Trainer(env, small_b2mapo(env, estimator_hidden=hidden))
        critic = trainer.algorithm.schedule.estimator.critic
        widths[hidden] = critic.pair.hidden
    assert widths == {8: 8, 24: 24}


def test_refit_schedule_doubles_its_period_while_the_dag_holds_and_resets_when_it_changes():
    from mapograph.algos._upper import RefitSchedule

    refit = RefitSchedule(max_period=4)
    a, b = frozenset({(0, 1)}), frozenset({(1, 0)})
    pattern = []
    for mode in (a, a, a, a, b):
        while not refit.due():
            pattern.append(0)
        pattern.append(1)
        refit.fitted(mode)
    # first fit: nothing to compare; then periods 2, 4, 4 (capped); a new DAG -> every iteration
    assert pattern == [1, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]
    assert refit.period == 1 and refit.due()
    again = RefitSchedule(max_period=4)
    refit.fitted(b)
    again.load_state_dict(refit.state_dict())
    assert (again.period, again.wait, again.last) == (refit.period, refit.wait, refit.last)
    with pytest.raises(ValueError, match="upper_max_period"):
        mg.TrainConfig(algo="b2mapo", upper_max_period=0)


def test_refit_schedule_counts_a_held_prior_as_held_even_when_the_dag_wanders():
    """With the prior given (the generator sits on it), a fit whose prior held (its
    probabilities moved by at most PRIOR_TOLERANCE on average, or its strong pairs by at
    most PRIOR_PAIRS_TOLERANCE) backs off although the mode DAG changed; a larger
    move, another order, or no prior falls back to the DAG rule. The prior is
    checkpointed."""
    from mapograph.algos._upper import PRIOR_TOLERANCE, Prior, RefitSchedule

    torch.manual_seed(0)
    base = torch.rand(4950)
    pairs = frozenset((i, i + 1) for i in range(100))
    other = frozenset((i, i + 2) for i in range(100))  # every strong pair changed
    prior = Prior(base, pairs)
    # the probabilities barely move while the strong pairs change, or the other way round
    nudged = Prior((base + 0.5 * PRIOR_TOLERANCE * torch.randn(4950).sign()).clamp(0, 1), other)
    flicker = Prior((base + 3 * PRIOR_TOLERANCE).clamp(0, 1), (pairs - {(0, 1)}) | {(0, 2)})
    moved = Prior(
        (base + 3 * PRIOR_TOLERANCE).clamp(0, 1), frozenset((i, i + 3) for i in range(99))
    )
    assert nudged.held(prior) and flicker.held(prior) and not moved.held(prior)
    assert not Prior(base, pairs, (0, 1)).held(Prior(base, pairs, (1, 0)))  # another order
    dags = [frozenset({(0, k)}) for k in range(1, 6)]  # a different mode DAG every fit
    refit = RefitSchedule(max_period=8)
    refit.fitted(dags[0], prior)
    refit.fitted(dags[1], nudged)
    assert refit.period == 2  # the prior held: backs off
    refit.fitted(dags[2], moved)
    assert refit.period == 1  # the prior moved
    again = RefitSchedule(max_period=8)
    again.load_state_dict(refit.state_dict())
    assert again.last == dags[2] and again.last_prior.pairs == moved.pairs
    assert torch.equal(again.last_prior.probabilities, moved.probabilities)
    plain = RefitSchedule(max_period=8)
    plain.fitted(dags[0])
    plain.fitted(dags[1])
    assert plain.period == 1  # no prior: the DAG rule alone
    old = refit.state_dict()
    del old["last_prior"]  # a checkpoint from before the prior rule
    again.load_state_dict(old)
    assert again.last_prior is None


@pytest.mark.slow
def test_at_a_hundred_agents_the_generator_rests_once_its_prior_settles():
    """coordination:random-100: the mode DAG keeps changing, but the prior the generator
    follows settles, so the generator's fits back off (before: a fit every iteration)."""
    trainer, _ = trained_b2mapo("coordination:random-100", 56)
    fits = [row["upper_fitted"] for row in trainer.history[40:]]
    assert sum(fits) <= 8, fits


def _generator_state(schedule) -> list[torch.Tensor]:
    upper = [*schedule.upper.net.parameters(), *schedule.upper.critic.parameters()]
    return [p.detach().clone() for p in upper]


def _estimator_state(schedule) -> list[torch.Tensor]:
    critic = [p.detach().clone() for p in schedule.estimator.critic.parameters()]
    return [*critic, schedule.estimator.strength.clone()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a, b))


def test_the_upper_layer_skips_training_while_its_dag_holds_and_resumes_exactly(tmp_path):
    """With a generator that barely moves its DAG holds, so its fits back off; the estimator
    rests while its own skeleton and order hold. Whatever is not fitted in an iteration stays
    bit-identical; a run checkpointed mid-wait continues with the same fits and parameters."""
    task = "contextual:chain-4"
    cfg = dict(upper_max_period=4, generator_lr=1e-9)

    def run(trainer, iterations):
        fitted = []
        for _ in range(iterations):
            schedule = trainer.algorithm.schedule
            generator, estimator = _generator_state(schedule), _estimator_state(schedule)
            row = trainer.train_iteration()
            assert _same(generator, _generator_state(schedule)) == (row["upper_fitted"] == 0.0)
            assert _same(estimator, _estimator_state(schedule)) == (row["estimator_fitted"] == 0.0)
            fitted.append((row["upper_fitted"], row["estimator_fitted"]))
        return fitted

    env = mg.envs.make(task, num_envs=4, seed=0)
    trainer = mg.Trainer(env, small_b2mapo(env, **cfg))
    first = run(trainer, 6)
    path = trainer.save(tmp_path / "ckpt.pt")
    rest = run(trainer, 6)
    fits = first + rest
    assert first[:2] == [(1.0, 1.0), (1.0, 1.0)]
    assert any(g == 0.0 for g, _ in fits) and any(e == 0.0 for _, e in fits)
    again = mg.Trainer.load(path, mg.envs.make(task, num_envs=4, seed=0))
    assert run(again, 6) == rest
    a, b = again.algorithm.schedule, trainer.algorithm.schedule
    assert _same(_generator_state(a), _generator_state(b))
    assert _same(_estimator_state(a), _estimator_state(b))
    assert torch.equal(a.estimate.strength, b.estimate.strength)
    # the paper's schedule: both fitted every iteration
    every = mg.Trainer(env, small_b2mapo(env, **{**cfg, "upper_max_period": 1}))
    assert run(every, 3) == [(1.0, 1.0)] * 3


def test_a_cumulative_estimate_counts_every_iteration_while_the_generator_rests():
    """The pooled ANOVA of the advantage is a mean over all iterations: the iterations
    whose generator fit is skipped still enter it (they were dropped before)."""
    env = mg.envs.make("contextual:chain-4", num_envs=4, seed=0)
    cfg = small_b2mapo(env, upper_max_period=4, generator_lr=1e-9, interaction_estimator="anova")
    trainer = mg.Trainer(env, cfg)
    rows = [trainer.train_iteration() for _ in range(10)]
    upper = trainer.algorithm.schedule.upper
    assert sum(r["upper_fitted"] for r in rows) < 10  # the generator rested
    assert upper.interaction_updates == 10  # the mean saw every iteration


def _fitted_upper(prior_epochs: int, prior_fit: float | None = None, prior_offset: bool = False):
    """A fresh generator after three fits to a fixed prior: (upper layer, features,
    target, the last fit's statistics)."""
    from mapograph.algos._estimators import Interdependence
    from mapograph.algos._upper import DAGUpperLayer

    n = 8
    torch.manual_seed(0)
    upper = DAGUpperLayer(
        feature_dim=n + 3,
        n_agents=n,
        hidden=32,
        heads=2,
        lr=3e-3,
        entropy_coef=0.01,
        epochs=4,
        clip=0.2,
        temperature=1.0,
        edge_threshold=0.0,
        generator=torch.Generator().manual_seed(1),
        prior_epochs=prior_epochs,
        prior_fit=prior_fit,
        prior_offset=prior_offset,
    )
    strength = torch.zeros(n, n)
    for i, j in [(0, 1), (1, 2), (3, 4), (5, 6), (6, 7)]:
        strength[i, j] = strength[j, i] = 1.0
    features = torch.cat([torch.randn(1, n, 3), torch.eye(n)[None]], -1)
    for _ in range(3):
        stats = upper.learn(
            upper.propose(features), 0.1, Interdependence(strength, cumulative=False)
        )
    from mapograph.algos._interaction import standardize_offdiagonal

    target = torch.sigmoid(2.0 * standardize_offdiagonal(strength))
    return upper, features, target, stats


def _skeleton_fit_error(prior_epochs: int, prior_offset: bool = False) -> float:
    """Mean |skeleton probability - prior target| after three fits of a fresh generator."""
    upper, features, target, _ = _fitted_upper(prior_epochs, prior_offset=prior_offset)
    n = upper.n_agents
    with torch.no_grad():
        p = upper.distribution(features).edge_probabilities()[0]
    mask = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    return float(((p + p.t())[mask] - target[mask]).abs().mean())


def test_prior_epochs_bring_the_generator_closer_to_its_prior():
    # the generator trails the estimator for lack of steps (docs: design choices);
    # extra steps on the prior alone close the gap, and 0 of them changes nothing
    assert _skeleton_fit_error(32) < 0.5 * _skeleton_fit_error(0)
    defaults = mg.TrainConfig(algo="b2mapo")  # up to 24 steps, while the fit is below 0.98
    assert (defaults.generator_prior_epochs, defaults.generator_prior_fit) == (24, 0.98)
    with pytest.raises(ValueError, match="generator_prior_epochs"):
        mg.TrainConfig(algo="b2mapo", generator_prior_epochs=-1)


def test_prior_offset_puts_the_prior_into_the_edge_logits():
    # the offset is the logit of the skeleton target: without any prior-only step the
    # skeleton sits on the prior, far closer than the loss alone brings it
    assert _skeleton_fit_error(0, prior_offset=True) < 0.25 * _skeleton_fit_error(0)
    upper, features, target, _ = _fitted_upper(0, prior_offset=True)
    from mapograph.algos._interaction import standardize_offdiagonal
    from mapograph.algos._upper import PRIOR_LOGIT_LIMIT

    z = standardize_offdiagonal(upper.interaction)
    assert torch.equal(upper.prior_logits, (2 * z).clamp(-PRIOR_LOGIT_LIMIT, PRIOR_LOGIT_LIMIT))
    # the generator's own logits are unchanged by it: the offset is added, not learned
    plain = upper.net(features).edge_logits
    shifted = upper.net(features, edge_offset=upper.prior_logits).edge_logits
    assert torch.allclose(shifted - plain, upper.prior_logits.expand_as(plain), atol=1e-5)
    assert mg.TrainConfig(algo="b2mapo").prior_offset is True


def test_the_prior_offset_is_checkpointed(tmp_path):
    env = mg.envs.make("contextual:chain-4", num_envs=4, seed=0)
    trainer = mg.Trainer(env, small_b2mapo(env))
    trainer.train()
    upper = trainer.algorithm.schedule.upper
    assert upper.prior_logits is not None and float(upper.prior_logits.abs().max()) > 0
    path = trainer.save(tmp_path / "ckpt.pt")
    again = mg.Trainer.load(path, mg.envs.make("contextual:chain-4", num_envs=4, seed=0))
    restored = again.algorithm.schedule.upper
    assert torch.equal(restored.prior_logits, upper.prior_logits)
    assert torch.equal(restored.edge_probabilities(), upper.edge_probabilities())


def test_b2mapo_uses_the_graph_it_finds_among_a_hundred_agents():
    """Defaults on coordination:random-100: the reward ANOVA finds the graph and, with the
    prior in the edge logits, the generator's skeleton follows it and the partition has
    several batches; with the prior only as a loss the true pairs' skeleton probability
    stays near the threshold (later every sampled edge falls under it and B2MAPO runs
    one batch: docs, design-choices)."""
    results = {}
    for offset in (True, False):
        trainer, env = trained_b2mapo("coordination:random-100", 4, prior_offset=offset)
        true = env.interdependence()
        scores = graph_scores(trainer.interdependence())
        skeleton = scores + scores.t()
        on_true = float(torch.stack([skeleton[i, j] for i, j in true.edges]).mean())
        batches = len(trainer.history[-1]["batches"])
        results[offset] = (skeleton_auc(scores, true), on_true, batches)
    auc, on_true, batches = results[True]
    assert auc >= 0.95 and on_true >= 0.8 and batches >= 2, results
    assert results[False][1] <= 0.65, results


def test_prior_agreement_ranks_the_priors_strong_pairs():
    from mapograph.algos._upper import prior_agreement

    n = 6
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    strong = torch.zeros(n, n, dtype=torch.bool)
    strong[0, 1] = strong[2, 4] = True  # the prior's strong pairs
    good = torch.full((n, n), 0.1)
    good[0, 1] = good[4, 2] = 0.45  # either direction counts for the skeleton
    assert prior_agreement(good, strong, upper) == 1.0
    bad = torch.full((n, n), 0.4)
    bad[0, 1] = bad[2, 4] = 0.0
    assert prior_agreement(bad, strong, upper) == 0.0
    half = good.clone()
    half[0, 1] = 0.0  # one strong pair now ranks last
    assert prior_agreement(half, strong, upper) == pytest.approx(0.5)
    assert prior_agreement(good, torch.zeros_like(strong), upper) is None


def test_prior_fit_takes_extra_steps_only_while_the_generator_lags():
    from mapograph.algos._upper import prior_agreement
    from mapograph.graph import skeleton_mask

    # a bar the generator cannot miss: no extra step, the same generator as without them
    lazy, features, _, lazy_stats = _fitted_upper(32, prior_fit=0.0)
    none, *_ = _fitted_upper(0)
    assert lazy_stats["generator_prior_steps"] == 0.0
    for a, b in zip(lazy.net.parameters(), none.net.parameters()):
        assert torch.equal(a, b)
    # a bar it has not reached: steps until it does or until the cap, and a closer fit
    eager, _, _, stats = _fitted_upper(32, prior_fit=1.0)
    assert 0 < stats["generator_prior_steps"] <= 32
    assert stats["generator_prior_agreement"] > lazy_stats["generator_prior_agreement"]
    # the logged agreement is that of the generator after the fit
    pairs = torch.triu(torch.ones(8, 8, dtype=torch.bool), diagonal=1)
    with torch.no_grad():
        p = eager.distribution(features).edge_probabilities()[0]
    now = prior_agreement(p, skeleton_mask(eager.interaction) & pairs, pairs)
    assert stats["generator_prior_agreement"] == now
    with pytest.raises(ValueError, match="generator_prior_fit"):
        mg.TrainConfig(algo="b2mapo", generator_prior_fit=1.5)


def test_an_estimator_with_nothing_to_say_and_read_only_graph_calls_change_no_training(tmp_path):
    from mapograph.algos._estimators import ESTIMATORS, InteractionEstimator

    class Silent(InteractionEstimator):
        """Returns no estimate (as the pooled ANOVA does beyond its cell budget)."""

        def update(self, data):
            return None

    ESTIMATORS.register("silent", Silent)
    try:
        env = mg.envs.make("coordination:chain-4", num_envs=8, seed=0)
        cfg = small_b2mapo(env, interaction_estimator="silent")
        trainer = mg.Trainer(env, cfg)
        for _ in range(6):  # backs off with no estimate
            trainer.train_iteration()
        assert trainer.iteration == 6
    finally:
        ESTIMATORS.unregister("silent")

    # a sparse candidate graph before any estimate: reading the graph draws nothing
    def run(peek: bool):
        env = mg.envs.make("coordination:chain-6", num_envs=8, seed=0)
        trainer = mg.Trainer(env, small_b2mapo(env, generator_candidates=2, interaction_coef=0.0))
        graphs = []
        for _ in range(3):
            trainer.train_iteration()
            if peek:
                graphs += [sorted(trainer.interdependence().edges(data="weight")) for _ in range(2)]
        return [row["return_mean"] for row in trainer.history], graphs

    plain, _ = run(False)
    peeked, graphs = run(True)
    assert peeked == plain
    assert all(graphs[i] == graphs[i + 1] for i in range(0, len(graphs), 2))


@pytest.mark.parametrize(
    "output,match",
    [
        ({"strength": 1}, r"must return an Interdependence or None, got dict"),
        ("shape", r"strength must be \[4, 4\], got \[3, 3\]"),
        ("nan", r"strength holds NaN or infinity"),
        ("order", r"order must be a permutation of 0..3, got \[0, 0, 9\]"),
    ],
)
def test_a_registered_estimator_s_output_is_checked(output, match):
    from mapograph.algos._estimators import ESTIMATORS, InteractionEstimator, Interdependence

    class Wrong(InteractionEstimator):
        def update(self, data):
            if output == "shape":
                return Interdependence(torch.zeros(3, 3))
            if output == "nan":
                return Interdependence(torch.full((4, 4), float("nan")))
            if output == "order":
                return Interdependence(torch.zeros(4, 4), order=[0, 0, 9])
            return output

    ESTIMATORS.register("wrong", Wrong)
    try:
        env = mg.envs.make("coordination:chain-4", num_envs=8, seed=0)
        trainer = mg.Trainer(env, small_b2mapo(env, interaction_estimator="wrong"))
        with pytest.raises(ValueError, match=match):
            trainer.train_iteration()
    finally:
        ESTIMATORS.unregister("wrong")
