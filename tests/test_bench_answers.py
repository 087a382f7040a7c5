"""benchmarks/answers.py: the children's right answers and the follow probe."""

from __future__ import annotations

import sys
from pathlib import Path

import networkx as nx
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from answers import follow_probability, right_answers  # noqa: E402

import mapograph as mg  # noqa: E402


@pytest.mark.parametrize("kwargs", [{}, {"conditioned": 0}])
def test_answering_every_parent_is_the_optimum_whatever_the_parents_play(kwargs):
    """Children that play `right_answers` to any parent actions reach every edge's best
    reply: with the roots at their optimal actions the team scores the optimum (1.0),
    and with the roots anywhere else every edge still sits on the climbing game's
    diagonal (decoded actions equal along every edge)."""
    env = mg.envs.make("climbing:tree-7", num_envs=512, seed=3, **kwargs)
    env.reset()
    edges = [list(e) for e in env.interdependence().edges]
    order = list(nx.topological_sort(env.interdependence()))
    for roots in (env.optimal_actions(), torch.randint(3, (512, 7))):
        actions = roots.clone()
        for j in order:  # fill in each child's answer once its parent has acted
            answers = right_answers(env, edges, actions)
            has_parent = answers[:, j] >= 0
            actions[:, j] = torch.where(has_parent, answers[:, j], actions[:, j])
        decoded = (actions - env.offsets - env.context - env.signal[:, None]) % 3
        for i, j in edges:
            assert torch.equal(decoded[:, i], decoded[:, j])
    best = right_answers(env, edges, env.optimal_actions())
    children = torch.tensor([j for _, j in edges])
    assert torch.equal(best[:, children], env.optimal_actions()[:, children])
    root = order[0]
    assert bool((best[:, root] == -1).all())  # the root has no parent
    reward = env.team_reward(env.optimal_actions(), env.signal, env.context)
    assert torch.allclose(reward, torch.ones_like(reward))


def test_a_policy_that_ignores_its_parents_follows_by_chance():
    """A fresh pi_seq's parent head outputs zero (its output layer starts at zero), so
    its answer does not depend on the parent: following is 1/A on average over the
    parent's actions."""
    env = mg.envs.make("climbing:tree-7", num_envs=16, seed=0)
    edges = [list(e) for e in env.interdependence().edges]
    trainer = mg.Trainer(
        env, mg.TrainConfig(algo="b2mapo", fixed_dag=edges, progress=False, tensorboard=False)
    )
    probe = mg.envs.make("climbing:tree-7", num_envs=2048, seed=999)
    edge_index = torch.tensor(edges).t()
    follow, entropy = follow_probability(trainer.actor, edge_index, probe, edges)
    assert follow == pytest.approx(1 / 3, abs=1e-5)
    assert 0.0 < entropy <= torch.log(torch.tensor(3.0)).item() + 1e-6
