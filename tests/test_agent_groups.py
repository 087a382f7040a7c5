"""Actor passes in agent groups (``_agent_groups``): the same training, to rounding."""

from __future__ import annotations

import pytest
import torch

import mapograph as mg
from mapograph.algos import _ppo


def _train(env_id: str, algo: str, group_elements: int, **extra) -> tuple[mg.Trainer, int]:
    """Three iterations with ``GROUP_ELEMENTS`` set; returns the trainer and how many
    passes ran in more than one group."""
    grouped = 0
    original = _ppo.BatchSequentialPPO._agent_groups

    def counting(self, *args, **kwargs):
        nonlocal grouped
        groups = original(self, *args, **kwargs)
        grouped += len(groups) > 1
        return groups

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_ppo, "GROUP_ELEMENTS", group_elements)
        patch.setattr(_ppo.BatchSequentialPPO, "_agent_groups", counting)
        env = mg.envs.make(env_id, num_envs=4, seed=0)
        cfg = mg.TrainConfig(
            algo=algo,
            rollout_length=16,
            total_steps=4 * 16 * 3,
            hidden=16,
            seed=0,
            progress=False,
            tensorboard=False,
            **extra,
        )
        trainer = mg.Trainer(env, cfg)
        trainer.train()
    return trainer, grouped


@pytest.mark.parametrize(
    "env_id, algo, extra",
    [
        ("coordination:random-8", "mappo", {}),
        ("coordination:random-8", "b2mapo", {}),
        ("coordination:random-8", "b2mapo", {"pi_ind": "tied", "minibatches": 2}),
        ("coordination:random-8", "mappo", {"recurrent": True, "chunk_length": 8}),
        (  # k_batches: batches of several agents (a given chain's generations are single)
            "continuous:follow-5",
            "b2mapo",
            {"fixed_dag": [[0, 1], [1, 2], [2, 3], [3, 4]], "partition": "k_batches"},
        ),
    ],
)
def test_agent_groups_train_as_one_pass(env_id, algo, extra):
    """With groups of a few agents (forced by a tiny ``GROUP_ELEMENTS``) an iteration ends
    with the parameters of one pass over all of a batch's agents, to float rounding:
    each agent's gradient depends on its own rows only."""
    whole, none_grouped = _train(env_id, algo, 1 << 60, **extra)
    split, grouped = _train(env_id, algo, 1, **extra)
    assert none_grouped == 0 and grouped > 0
    assert [b for b in whole.plan.batches] == [b for b in split.plan.batches]
    for name, module in whole.algorithm.modules().items():
        other = split.algorithm.modules()[name].state_dict()
        for key, value in module.state_dict().items():
            if value.is_floating_point():
                torch.testing.assert_close(other[key], value, rtol=1e-4, atol=1e-5)


def test_agent_groups_only_split_large_passes_on_a_cpu():
    """Groups hold at most GROUP_ELEMENTS activations per layer; a pass that fits, a
    shared network and a non-CPU tensor stay one group."""
    env = mg.envs.make("coordination:random-10", num_envs=2, seed=0)
    trainer = mg.Trainer(env, mg.TrainConfig(algo="mappo", hidden=64, progress=False))
    opt = trainer.algorithm.optimizer
    agents = torch.arange(10)
    old = torch.zeros(1024, 10)  # 1,024 samples per agent: 65,536 activations per agent
    groups = opt._agent_groups(agents, old, 1)
    assert len(groups) == 2 and torch.equal(torch.cat(groups), agents)  # 8 fit: 5 + 5
    assert len(opt._agent_groups(agents, torch.zeros(64, 10), 1)) == 1
    assert len(opt._agent_groups(agents, old, 1, minibatches=4)) == 1  # 256 per pass
    assert max(len(g) for g in groups) * 1024 * 64 <= _ppo.GROUP_ELEMENTS
