"""Everything on the device the config names: modules, optimizer state, generators, plans."""

from __future__ import annotations

import pytest
import torch

import mapograph as mg

from conftest import MatrixGameEnv

PRESETS = {
    "mappo": {},
    "happo": {},
    "a2po": {},
    "b2mapo": {"edge_threshold": 0.0, "partition": "generations"},
    "b2mapo_given_dag": {"algo": "b2mapo", "fixed_dag": [[0, 1], [1, 2]]},
}


def _cfg(name: str, device: str, **kw) -> mg.TrainConfig:
    overrides = dict(PRESETS[name])
    overrides.setdefault("algo", name)
    base = dict(total_steps=16 * 8 * 3, rollout_length=8, seed=2, progress=False, device=device)
    return mg.TrainConfig(**{**base, **overrides, **kw})


def _env() -> MatrixGameEnv:
    return MatrixGameEnv(torch.rand(2, 2, 2, generator=torch.Generator().manual_seed(0)), 16)


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensors(value)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_training_keeps_every_tensor_on_the_configured_device(name, device):
    trainer = mg.Trainer(_env(), _cfg(name, device))
    trainer.train()
    expected = torch.device(device).type
    algo = trainer.algorithm
    for module in algo.modules().values():
        for tensor in [*module.parameters(), *module.buffers()]:
            assert tensor.device.type == expected
    for state in algo.optimizer_states().values():
        for key, tensor in [(k, t) for k, v in state.items() for t in _tensors(v)]:
            if tensor.numel() > 1:  # torch keeps Adam's scalar step counts on the CPU
                assert tensor.device.type == expected, key
    for generator in algo.generators.values():
        assert generator.device.type == expected
    if trainer.plan.edge_index is not None:
        assert trainer.plan.edge_index.device.type == expected
    for tensor in _tensors(algo.schedule.state_dict()):
        assert tensor.device.type == expected
    actions = trainer.act(trainer.env.reset())
    assert actions.device.type == expected and actions.shape == (16, 3)
    assert set(trainer.evaluate(episodes=4)) >= {"return_mean", "return_std"}


@pytest.mark.parametrize("name", ["a2po", "b2mapo"])
def test_resume_on_the_device_equals_an_uninterrupted_run(name, device, tmp_path):
    full = mg.Trainer(_env(), _cfg(name, device))
    full.train()
    part = mg.Trainer(_env(), _cfg(name, device, total_steps=16 * 8), out_dir=tmp_path)
    part.train()
    resumed = mg.Trainer.load(tmp_path, _env(), total_steps=16 * 8 * 3)
    resumed.train()
    for module_name, module in full.algorithm.modules().items():
        other = resumed.algorithm.modules()[module_name].state_dict()
        for key, value in module.state_dict().items():
            assert torch.equal(value, other[key]), (module_name, key)


def test_a_device_this_machine_lacks_is_refused_in_one_line():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="device 'cuda' is not available"):
        mg.Trainer(_env(), _cfg("mappo", "cuda"))


@pytest.mark.parametrize("name", ["meta", "xpu", "mps"])
def test_a_backend_torch_cannot_use_here_is_refused_in_one_line(name):
    module = getattr(torch, name, None)
    if module is not None and getattr(module, "is_available", lambda: False)():
        pytest.skip(f"this machine has {name}")
    with pytest.raises(ValueError, match=rf"device '{name}' is not available"):
        mg.Trainer(_env(), _cfg("mappo", name))


BUILT_IN_ENVS = [
    "coordination:chain-4",
    "contextual:tree-7",
    "climbing:chain-6",
    "continuous:follow-3",
]


@pytest.mark.parametrize("env_id", BUILT_IN_ENVS)
@pytest.mark.parametrize("device", ["cuda", "cuda:3", "mps", "tpu", "cuda:x"])
def test_a_built_in_env_refuses_a_device_it_cannot_use_in_one_line(env_id, device):
    kind = device.split(":")[0]
    module = getattr(torch, kind, None)
    if module is not None and getattr(module, "is_available", lambda: False)():
        pytest.skip(f"this machine has {kind}")
    with pytest.raises(ValueError, match=rf"device '{device}' is (not available|unknown)"):
        mg.envs.make(env_id, num_envs=2, device=device)


@pytest.mark.parametrize("env_id", BUILT_IN_ENVS)
@pytest.mark.parametrize("device", ["cpu", "cpu:0", torch.device("cpu")])
def test_a_built_in_env_runs_on_the_cpu_however_it_is_named(env_id, device):
    env = mg.envs.make(env_id, num_envs=2, device=device)
    assert env.device == torch.device(device) and env.reset().obs.device.type == "cpu"
