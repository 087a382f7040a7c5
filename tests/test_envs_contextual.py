"""The observation-conditioned games: protocol, optimum, true DAG, pooled invisibility."""

from __future__ import annotations

import networkx as nx
import pytest
import torch

import mapograph as mg
from mapograph.algos._interaction import action_interaction


@pytest.mark.parametrize("task", ["chain-6", "tree-7", "random-10", "mixed-12", "random-64"])
def test_protocol_and_auto_reset(task):
    env = mg.envs.make(f"contextual:{task}", num_envs=5, seed=0)
    ts = env.reset()
    n, spec = env.spec.n_agents, env.spec
    assert ts.obs.shape == (5, n, spec.obs_dim) and ts.state.shape == (5, spec.state_dim)
    assert ts.avail_actions.shape == (5, n, spec.n_actions)
    for step in range(spec.episode_limit):
        ts = env.step(torch.zeros(5, n, dtype=torch.long))
        assert ts.reward.shape == (5,) and bool(ts.done.all()) == (step == spec.episode_limit - 1)


@pytest.mark.parametrize("task", ["chain-6", "tree-7", "random-10", "mixed-20"])
@pytest.mark.parametrize("n_actions", [2, 3])
def test_optimal_actions_score_one_random_one_over_a(task, n_actions):
    env = mg.envs.make(f"contextual:{task}", num_envs=2048, seed=1, n_actions=n_actions)
    env.reset()
    assert torch.allclose(env.step(env.optimal_actions()).reward, torch.ones(2048))
    random = env.step(torch.randint(0, n_actions, (2048, env.spec.n_agents))).reward.mean()
    assert abs(float(random) - 1 / n_actions) < 0.03


def test_optimum_is_decentralized():
    """Each agent's optimal action is a function of its own observation (a lookup table fits)."""
    env = mg.envs.make("contextual:random-8", num_envs=4096, seed=3, n_actions=3)
    ts = env.reset()
    best = env.optimal_actions()
    for agent in range(8):
        keys = [tuple(row.tolist()) for row in ts.obs[:, agent]]
        table: dict = {}
        for key, action in zip(keys, best[:, agent].tolist()):
            assert table.setdefault(key, action) == action


def test_true_dag_matches_the_reward():
    """Given the contexts, a parent's deviation changes the child's best action; non-edges add up."""
    env = mg.envs.make("contextual:random-10", num_envs=1, seed=2, n_actions=3)
    dag = env.interdependence()
    assert nx.is_directed_acyclic_graph(dag) and dag.number_of_edges() >= 9
    env.reset()
    best = env.optimal_actions()

    def reward(actions):
        return float(env.team_reward(actions, env.signal, env.context))

    def best_response(actions, child):
        scores = []
        for a in range(3):
            trial = actions.clone()
            trial[0, child] = a
            scores.append(reward(trial))
        return max(range(3), key=lambda a: scores[a])

    for parent, child in dag.edges:
        if dag.in_degree(child) != 1:
            continue
        moved = best.clone()
        moved[0, parent] = (moved[0, parent] + 1) % 3
        if dag.out_degree(child) == 0:  # a leaf with one parent follows it
            assert best_response(moved, child) != best_response(best, child)
    adjacent = {frozenset(e) for e in dag.edges}
    i, j = next(
        (i, j) for i in range(10) for j in range(i + 1, 10) if frozenset((i, j)) not in adjacent
    )
    one_i, one_j, both = best.clone(), best.clone(), best.clone()
    one_i[0, i] = both[0, i] = (best[0, i] + 1) % 3
    one_j[0, j] = both[0, j] = (best[0, j] + 1) % 3
    base = reward(best)
    assert reward(both) - base == pytest.approx((reward(one_i) - base) + (reward(one_j) - base))


@pytest.mark.parametrize(
    ("task", "n_actions", "copies", "kwargs"),
    [
        ("contextual:mixed-12", 2, 4096, {}),
        ("climbing:mixed-12", 3, 8192, {}),
        ("climbing:random-12", 3, 8192, {"context_placement": "independent"}),
    ],
)
def test_conditioned_edges_are_invisible_to_the_pooled_anova(task, n_actions, copies, kwargs):
    """Random actions: the pooled interaction of conditioned edges is at noise level, plain ones
    not (both payoff rules, both context placements)."""
    env = mg.envs.make(task, num_envs=copies, seed=0, **kwargs)
    env.reset()
    conditioned = set(env.conditioned_edges())
    plain = [e for e in env.interdependence().edges if e not in conditioned]
    assert conditioned and plain
    gen = torch.Generator().manual_seed(0)
    actions = torch.randint(0, n_actions, (copies, 12), generator=gen)
    reward = env.step(actions).reward
    strength = action_interaction(actions, reward, n_actions)
    adjacent = {frozenset(e) for e in env.interdependence().edges}
    noise = max(
        float(strength[i, j])
        for i in range(12)
        for j in range(i + 1, 12)
        if frozenset((i, j)) not in adjacent
    )
    assert all(float(strength[i, j]) > 5 * noise for i, j in plain)
    assert all(float(strength[i, j]) < 2 * noise for i, j in conditioned)


@pytest.mark.parametrize("task", ["chain-6", "tree-15", "random-10", "random-40"])
def test_independent_placement_puts_at_most_one_context_on_every_edge(task):
    """``context_placement="independent"``: no edge has a context at both ends, roots are
    plain, every other plain agent has a parent with a context (maximal), and the optimum
    still scores 1."""
    env = mg.envs.make(f"climbing:{task}", num_envs=512, seed=0, context_placement="independent")
    dag, flags = env.interdependence(), env.has_context.tolist()
    assert not any(flags[i] and flags[j] for i, j in dag.edges)
    for node in dag.nodes:
        if dag.in_degree(node) == 0:
            assert not flags[node]
        elif not flags[node]:
            assert any(flags[p] for p in dag.predecessors(node))
    assert set(env.conditioned_edges()) == {(i, j) for i, j in dag.edges if flags[i] or flags[j]}
    env.reset()
    assert torch.allclose(env.step(env.optimal_actions()).reward, torch.ones(512))
    if task.startswith(("chain", "tree")):  # the odd generations
        generations = list(nx.topological_generations(dag))
        odd = sorted(v for g, nodes in enumerate(generations) if g % 2 for v in nodes)
        assert env.has_context.nonzero().flatten().tolist() == odd


def test_seeded_layout_and_signals_reproduce():
    a = mg.envs.make("contextual:random-16", num_envs=3, seed=5, layout_seed=7)
    b = mg.envs.make("contextual:random-16", num_envs=3, seed=5, layout_seed=7)
    c = mg.envs.make("contextual:random-16", num_envs=3, seed=5, layout_seed=8)
    assert set(a.interdependence().edges) == set(b.interdependence().edges)
    assert set(a.interdependence().edges) != set(c.interdependence().edges)
    assert torch.equal(a.reset().obs, b.reset().obs)


@pytest.mark.parametrize(
    ("task", "kwargs", "match"),
    [
        ("ring-5", {}, "unknown contextual task"),
        ("tree-7\n", {}, "unknown contextual task"),  # no trailing newline read as the end
        ("tree-\uff17", {}, "unknown contextual task"),  # a full-width 7 is not a digit here
        ("chain-65", {}, "2..64 agents"),
        ("chain-5", {"n_actions": 1}, "n_actions"),
        ("chain-5", {"conditioned": 1.5}, "conditioned"),
        ("chain-5", {"conditioned": "0.5"}, r"conditioned must lie in \[0, 1\], got '0.5'"),
        ("chain-5", {"unary": None}, r"unary must lie in \[0, 1\], got None"),
        ("chain-5", {"context_placement": "ends"}, "context_placement"),
        ("chain-5", {"context_placement": "independent", "conditioned": 0.5}, "conditioned"),
    ],
)
def test_bad_arguments_raise(task, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mg.envs.make(f"contextual:{task}", **kwargs)
