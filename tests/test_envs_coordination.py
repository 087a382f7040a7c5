"""The built-in coordination games: protocol, optimum, interdependence, reproducibility."""

from __future__ import annotations

import networkx as nx
import pytest
import torch

import mapograph as mg


def check_timestep(ts, spec, num_envs):
    e, n = num_envs, spec.n_agents
    assert ts.obs.shape == (e, n, spec.obs_dim) and ts.obs.dtype == torch.float32
    assert ts.state.shape == (e, spec.state_dim) and ts.state.dtype == torch.float32
    assert ts.avail_actions.shape == (e, n, spec.n_actions) and ts.avail_actions.dtype == torch.bool
    assert ts.reward.shape == (e,) and ts.reward.dtype == torch.float32
    assert ts.done.shape == (e,) and ts.done.dtype == torch.bool


@pytest.mark.parametrize("task", ["chain-6", "tree-7", "random-10", "random-64"])
def test_protocol_and_auto_reset(task):
    env = mg.envs.make(f"coordination:{task}", num_envs=5, seed=0)
    ts = env.reset()
    check_timestep(ts, env.spec, 5)
    for step in range(env.spec.episode_limit):
        ts = env.step(torch.zeros(5, env.spec.n_agents, dtype=torch.long))
        check_timestep(ts, env.spec, 5)
        assert bool(ts.done.all()) == (step == env.spec.episode_limit - 1)
    assert float(ts.obs[0, 0, -1]) == 0.0  # time fraction restarted


@pytest.mark.parametrize("task", ["chain-6", "tree-7", "random-10"])
def test_optimal_policy_scores_one_and_random_about_half(task):
    env = mg.envs.make(f"coordination:{task}", num_envs=512, seed=1)
    env.reset()
    assert torch.allclose(env.step(env.optimal_actions()).reward, torch.ones(512))
    assert env.optimal_return() == 1.0
    random = env.step(torch.randint(0, 2, (512, env.spec.n_agents))).reward.mean()
    assert 0.45 < float(random) < 0.55


def test_true_dag_matches_the_reward():
    env = mg.envs.make("coordination:random-10", num_envs=1, seed=2)
    dag = env.interdependence()
    assert nx.is_directed_acyclic_graph(dag)
    assert nx.dag_longest_path_length(dag) + 1 >= 3
    env.reset()
    best = env.optimal_actions()

    def child_gain(actions, child):
        """Reward of the child's optimal action minus that of the other action."""
        other = actions.clone()
        other[0, child] = 1 - other[0, child]
        return float(env.team_reward(actions, env.signal)) - float(
            env.team_reward(other, env.signal)
        )

    for parent, child in dag.edges:
        flipped = best.clone()
        flipped[0, parent] = 1 - flipped[0, parent]
        # the value of the child's action depends on what its parent does
        assert abs(child_gain(best, child) - child_gain(flipped, child)) > 1e-6
        if dag.in_degree(child) == 1 and dag.out_degree(child) == 0:
            assert child_gain(flipped, child) < 0  # a lone parent's change flips the best response
    non_edges = [
        (i, j)
        for i in range(10)
        for j in range(10)
        if i != j and not dag.has_edge(i, j) and not dag.has_edge(j, i)
    ]
    i, j = non_edges[0]
    base = float(env.team_reward(best, env.signal))
    both = best.clone()
    both[0, i] = 1 - both[0, i]
    both[0, j] = 1 - both[0, j]
    one_i, one_j = best.clone(), best.clone()
    one_i[0, i] = 1 - one_i[0, i]
    one_j[0, j] = 1 - one_j[0, j]
    # no edge: the effects of i and j on the reward add up (no interaction)
    interaction = (
        float(env.team_reward(both, env.signal))
        - float(env.team_reward(one_i, env.signal))
        - float(env.team_reward(one_j, env.signal))
        + base
    )
    assert abs(interaction) < 1e-6


def test_reproducible_by_seed_and_state_dict():
    a = mg.envs.make("coordination:chain-4", num_envs=3, seed=7)
    b = mg.envs.make("coordination:chain-4", num_envs=3, seed=7)
    ta, tb = a.reset(), b.reset()
    assert torch.equal(ta.obs, tb.obs)
    acts = torch.ones(3, 4, dtype=torch.long)
    for _ in range(3):
        a.step(acts)
        b.step(acts)
    saved = a.state_dict()
    next_a = a.step(acts)
    b.load_state_dict(saved)
    next_b = b.step(acts)
    assert torch.equal(next_a.obs, next_b.obs) and torch.equal(next_a.reward, next_b.reward)


def test_trap_adds_a_safe_action():
    env = mg.envs.make("coordination:chain-3", num_envs=2, seed=0, trap=0.5)
    assert env.spec.n_actions == 3
    env.reset()
    safe = torch.full((2, 3), 2)
    assert torch.allclose(env.step(safe).reward, torch.full((2,), 0.5))


def test_bad_input_raises_clear_errors():
    env = mg.envs.make("coordination:chain-4", num_envs=2, seed=0)
    env.reset()
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        env.step(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        env.step(torch.full((2, 4), 5))
    with pytest.raises(ValueError, match="chain-N"):
        mg.envs.make("coordination:ring-4")
    with pytest.raises(ValueError, match="2..1000"):
        mg.envs.make("coordination:chain-1001")
    with pytest.raises(ValueError, match="ids must be one of"):
        mg.envs.make("coordination:chain-4", ids="gray")
    with pytest.raises(mg.envs.UnknownEnvError, match="coordination"):
        mg.envs.make("nope:x")


def test_registered_custom_family_trains():
    mg.envs.register(
        "mycoord",
        lambda num_envs, seed, **kw: mg.envs.make(
            "coordination:chain-3", num_envs=num_envs, seed=seed
        ),
        overwrite=True,
    )
    env = mg.envs.make("mycoord", num_envs=4, seed=0)
    trainer = mg.Trainer(
        env, mg.TrainConfig(total_steps=4 * 16, rollout_length=16, num_envs=4, progress=False)
    )
    assert trainer.train().history[-1]["step"] == 64


def test_a_thousand_agents_observe_binary_ids_and_score_the_optimum():
    env = mg.envs.make("coordination:random-1000", num_envs=3, seed=0)
    assert env.spec.obs_dim == 2 + 10 + 1  # signal, ceil(log2 1000) id bits, time
    ts = env.reset()
    ids = ts.obs[0, :, 2:12]
    assert torch.unique(ids, dim=0).shape[0] == 1000  # every agent tells itself apart
    assert env.interdependence().number_of_nodes() == 1000
    best = env.step(env.optimal_actions())
    assert torch.allclose(best.reward, torch.ones(3))
    worst = env.step((env.optimal_actions() + 1) % 2)
    assert bool((worst.reward < 1).all())


def test_id_encoding_can_be_chosen():
    onehot = mg.envs.make("coordination:chain-80", ids="onehot")
    binary = mg.envs.make("coordination:chain-6", ids="binary")
    assert onehot.spec.obs_dim == 2 + 80 + 1
    assert binary.spec.obs_dim == 2 + 3 + 1
    ts = binary.reset()
    assert torch.unique(ts.obs[0, :, 2:5], dim=0).shape[0] == 6


@pytest.mark.parametrize("task", ["chain-4\n", "chain-\u0664", "chain-4 "])
def test_a_task_name_is_read_exactly(task):
    # a trailing newline or a non-ASCII digit is refused like a trailing space
    with pytest.raises(ValueError, match="unknown coordination task"):
        mg.envs.make(f"coordination:{task}")


@pytest.mark.parametrize(
    ("env_id", "kwargs", "match"),
    [
        (
            "coordination:chain-4",
            {"task": "tree-6"},
            r"names its task \('chain-4'\).*task='tree-6'",
        ),
        ("coordination:chain-4", {"n_agents": 6}, r"sets n_agents itself"),
        ("coordination:chain-4", {"layout": "tree"}, r"sets layout itself"),
        ("climbing:chain-6", {"payoff": "matching"}, r"sets payoff itself"),
        ("continuous:follow-3", {"n_agents": 5}, r"sets n_agents itself"),
    ],
)
def test_make_refuses_an_argument_the_env_id_already_sets(env_id, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mg.envs.make(env_id, **kwargs)


@pytest.mark.parametrize("env_id", ["coordination:random-4", "contextual:random-4"])
@pytest.mark.parametrize("layout_seed", [1.5, None, True, -1, "3"])
def test_a_layout_seed_that_is_no_seed_is_refused_in_one_line(env_id, layout_seed):
    with pytest.raises(ValueError, match="layout_seed must be a non-negative int"):
        mg.envs.make(env_id, layout_seed=layout_seed)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"trap": float("nan")}, r"trap must be a finite number >= 0, got nan"),
        ({"trap": float("inf")}, r"trap must be a finite number >= 0"),
        ({"trap": 1e300}, r"trap must be at most 3.4e38"),
        ({"trap": "1"}, r"trap must be a finite number >= 0, got '1'"),
        ({"unary": "0.5"}, r"unary must lie in \[0, 1\], got '0.5'"),
        ({"unary": None}, r"unary must lie in \[0, 1\], got None"),
    ],
)
def test_a_coordination_reward_weight_that_is_no_number_is_refused_in_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mg.envs.make("coordination:chain-4", **kwargs)
