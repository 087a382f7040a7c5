"""Network options of ``TrainConfig``: ``input_norm`` and ``activation``.

``input_norm``: every network layer-normalizes its raw input (MAPPO's and HARL's
``use_feature_normalization``). ``activation``: the hidden layers' nonlinearity
of the actors and the critic. Checked through the public path
(``Algorithm`` built from a ``TrainConfig``) on every kind of network: per-agent,
shared, shared torso with per-agent heads, B2MAPO's DAG actor and ``pi_ind``, GRU
torsos, Gaussian policies, both critics.
"""

from __future__ import annotations

import pytest
import torch

import mapograph as mg
from mapograph.algos import Algorithm

CASES = [
    ("coordination:chain-4", {"algo": "mappo"}),
    ("coordination:chain-4", {"algo": "mappo", "share_params": True}),
    ("coordination:chain-4", {"algo": "happo", "share_params": True}),
    ("coordination:chain-4", {"algo": "b2mapo"}),
    ("coordination:chain-4", {"algo": "b2mapo", "recurrent": True}),
    ("continuous:follow-3", {"algo": "a2po"}),
    ("continuous:follow-3", {"algo": "mappo", "state_dependent_std": True, "recurrent": True}),
]


def _outputs(alg: Algorithm, obs: torch.Tensor, state: torch.Tensor) -> list[torch.Tensor]:
    """Every policy's action distribution and the critic's values on ``obs``/``state``.

    ``obs [L, B, N, d]``, ``state [L, B, S]`` (one step per sequence for GRU torsos).
    """
    lead = obs.shape[:2]
    outs = []
    for name in ("seq", "ind"):
        actor = alg.policy(name)
        memory = {}
        if actor.recurrent:
            memory = {
                "h0": torch.zeros(lead[1], obs.shape[2], actor.hidden_size),
                "starts": torch.ones(lead),
            }
        dist = actor.distribution(obs, **memory)
        outs += [dist.mean, dist.stddev] if actor.continuous else [dist.logits]
    critic = alg.critic
    if getattr(critic, "recurrent", False):
        outs.append(
            critic.sequence(state, torch.zeros(lead[1], critic.hidden), torch.ones(lead))[0]
        )
    else:
        outs.append(critic(state))
    return outs


@pytest.mark.parametrize(("env_id", "kw"), CASES)
def test_input_norm_makes_every_network_blind_to_the_scale_and_offset_of_its_input(env_id, kw):
    spec = mg.envs.make(env_id, num_envs=1).spec
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(1, 6, spec.n_agents, spec.obs_dim, generator=gen)
    state = torch.randn(1, 6, spec.state_dim, generator=gen)
    # a different scale and offset for every sample (and every agent's observation)
    scale_obs = torch.rand(1, 6, spec.n_agents, 1, generator=gen) * 20 + 0.5
    scale_state = torch.rand(1, 6, 1, generator=gen) * 20 + 0.5
    moved_obs, moved_state = obs * scale_obs + 3.0, state * scale_state - 5.0

    normed = Algorithm(spec, mg.TrainConfig(input_norm=True, **kw), seed=0)
    for a, b in zip(_outputs(normed, obs, state), _outputs(normed, moved_obs, moved_state)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)

    plain = Algorithm(spec, mg.TrainConfig(**kw), seed=0)
    changed = [
        not torch.allclose(a, b, atol=1e-3)
        for a, b in zip(_outputs(plain, obs, state), _outputs(plain, moved_obs, moved_state))
    ]
    assert all(changed[:1]) and changed[-1]  # without it the same inputs move the outputs
    # no parameters added: every optimizer row and checkpoint keeps its shape
    for name, module in normed.modules().items():
        sizes = {k: v.shape for k, v in module.state_dict().items()}
        assert sizes == {k: v.shape for k, v in plain.modules()[name].state_dict().items()}


def test_input_norm_trains_and_resumes_from_its_checkpoint(tmp_path):
    def trainer(total: int) -> mg.Trainer:
        cfg = mg.TrainConfig(
            algo="b2mapo",
            input_norm=True,
            rollout_length=16,
            total_steps=total,
            seed=0,
            progress=False,
            tensorboard=False,
        )
        return mg.Trainer(mg.envs.make("coordination:chain-4", num_envs=4, seed=0), cfg)

    full = trainer(4 * 16 * 3)
    full.train()
    part = trainer(4 * 16 * 2)
    part.train()
    resumed = mg.Trainer.load(part.save(tmp_path / "ckpt.pt"), part.env, total_steps=4 * 16 * 3)
    assert resumed.cfg.input_norm
    resumed.train()
    for name, module in full.algorithm.modules().items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, resumed.algorithm.modules()[name].state_dict()[key]), key


def test_relu_networks_are_positively_homogeneous_and_differ_from_tanh():
    """At initialization every bias is zero, so a ReLU network satisfies f(c x) = c f(x)
    for c > 0 (a tanh network does not): the option reaches the actors and the critic."""
    spec = mg.envs.make("coordination:chain-4", num_envs=1).spec
    gen = torch.Generator().manual_seed(1)
    obs = 3 * torch.randn(5, spec.n_agents, spec.obs_dim, generator=gen)
    state = 3 * torch.randn(5, spec.state_dim, generator=gen)

    def outputs(alg: Algorithm, scale: float) -> list[torch.Tensor]:
        return [
            alg.policy("seq").base.features(scale * obs),
            alg.policy("ind").features(scale * obs),
            alg.critic(scale * state),
        ]

    relu = Algorithm(spec, mg.TrainConfig(algo="b2mapo", activation="relu"), seed=0)
    tanh = Algorithm(spec, mg.TrainConfig(algo="b2mapo"), seed=0)
    for a, b in zip(outputs(relu, 0.25), outputs(relu, 1.0)):
        torch.testing.assert_close(a, 0.25 * b, rtol=1e-4, atol=1e-6)
    for a, b in zip(outputs(tanh, 0.25), outputs(tanh, 1.0)):
        assert not torch.allclose(a, 0.25 * b, rtol=1e-3, atol=1e-5)
    # same parameters (same seed), different function
    for name, module in relu.modules().items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, tanh.modules()[name].state_dict()[key]), key
    recurrent = {"recurrent": True, "share_params": True}
    gru_relu = Algorithm(spec, mg.TrainConfig(activation="relu", **recurrent), seed=0)
    gru_tanh = Algorithm(spec, mg.TrainConfig(**recurrent), seed=0)
    seqs = obs.unsqueeze(0), torch.zeros(5, spec.n_agents, 64), torch.ones(1, 5)
    assert not torch.allclose(
        gru_relu.actor.features(seqs[0], h0=seqs[1], starts=seqs[2]),
        gru_tanh.actor.features(seqs[0], h0=seqs[1], starts=seqs[2]),
    )


def test_an_unknown_activation_is_a_one_line_error():
    with pytest.raises(ValueError, match="activation must be one of tanh, relu"):
        mg.TrainConfig(activation="sigmoid")
