"""Property-based checks of TrainConfig validation (hypothesis): anything goes in, only
valid configs come out, and every refusal is a ValueError naming the field."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mapograph as mg

FIELDS = {f.name: str(f.type) for f in dataclasses.fields(mg.TrainConfig)}

ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["yes", "no", "true", "cpu", "cuda", "cuda:7", "banana", "mappo", "b2mapo"]),
    st.lists(st.integers(-2, 5), max_size=4),
    st.lists(st.lists(st.integers(-2, 5), max_size=3), max_size=3),
)


def _holds_its_type(name: str, value) -> bool:
    """What an accepted value must be, read from the field's annotation."""
    annotation = FIELDS[name]
    if value is None:
        return "None" in annotation
    if annotation.startswith("bool"):
        return isinstance(value, bool)
    if annotation.startswith("int"):
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation.startswith("float"):
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
    if annotation.startswith("str"):
        return isinstance(value, str)
    if annotation.startswith("list[list"):
        return all(isinstance(x, list) and all(type(i) is int for i in x) for x in value)
    if annotation.startswith("list"):
        return all(type(i) is int for i in value)
    raise AssertionError(f"unhandled annotation {annotation} of {name}")


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(sorted(FIELDS)), value=ANY_VALUE)
def test_a_field_accepts_only_values_of_its_type_and_range(name, value):
    try:
        cfg = mg.TrainConfig(**{name: value})
    except ValueError as exc:
        assert name in str(exc) or "needs" in str(exc) or "partition" in str(exc), str(exc)
        assert "\n" not in str(exc)
        return
    assert _holds_its_type(name, getattr(cfg, name)), (name, value)
    assert mg.TrainConfig.from_yaml(cfg.to_yaml()) == cfg  # what is accepted round-trips


@settings(max_examples=150, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(sorted(FIELDS)), ANY_VALUE, min_size=1, max_size=4))
def test_from_dict_refuses_with_value_error_or_round_trips(changes):
    try:
        cfg = mg.TrainConfig.from_dict(changes)
    except ValueError:
        return
    for name in changes:
        assert _holds_its_type(name, getattr(cfg, name)), name
    assert mg.TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "name,value",
    [
        ("lr", float("inf")),
        ("entropy_coef", float("inf")),
        ("clip", float("nan")),
        ("clip", -0.5),
        ("max_grad_norm", -1),
        ("value_norm", "no"),
        ("share_params", "yes"),
        ("kl_coef", float("nan")),
        ("interaction_coef", float("-inf")),
        ("correction_clip", -0.5),
        ("device", "banana"),
        ("seed", "abc"),
        ("seed", 1.5),
        ("eval_every", -1),
        ("gamma", "x"),
        ("hidden", 1_000_000_000),
        ("seed", 2**63),  # torch's generators took it, then overflowed seeding
        ("clip", 1e300),  # beyond float32: overflowed deep inside the surrogate
        ("correction_clip", 1e300),
        ("dag_temperature", 1e-300),  # zero in float32
        ("entropy_coef", 1e39),
    ],
)
def test_the_values_the_probe_found_accepted_are_refused(name, value):
    with pytest.raises(ValueError, match=rf"TrainConfig\.{name} "):
        mg.TrainConfig(**{name: value})


def test_the_largest_seed_accepted_builds_a_trainer():
    from mapograph._validation import MAX_SEED

    env = mg.envs.make("coordination:chain-4", num_envs=2, seed=MAX_SEED)
    mg.Trainer(env, mg.TrainConfig(seed=MAX_SEED))
    with pytest.raises(ValueError, match=r"TrainConfig\.seed must be at most"):
        mg.TrainConfig(seed=MAX_SEED + 1)
    with pytest.raises(ValueError, match=r"seed must be at most"):
        mg.envs.make("coordination:chain-4", num_envs=2, seed=2**64)


def test_a_refused_value_is_named_on_one_short_line():
    with pytest.raises(ValueError, match=r"TrainConfig\.fixed_dag .*got tensor") as info:
        mg.TrainConfig(algo="b2mapo", fixed_dag=torch.tensor([[0, 1], [1, 2]]))
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"TrainConfig\.fixed_partition ") as info:
        mg.TrainConfig(fixed_partition=[list(range(100_000)), ["x"]])
    assert len(str(info.value)) < 400


@pytest.mark.parametrize(
    "name,value",
    [("lr", np.float64(1e-3)), ("gamma", np.float32(0.9)), ("seed", np.int64(3)),
     ("algo", np.str_("b2mapo")), ("fixed_dag", [[np.int64(0), 1]]),
     ("fixed_dag", np.array([[0, 1], [1, 2]]))],
)  # fmt: skip
def test_numpy_values_become_plain_python_values_at_construction(name, value):
    # np.float64 is a float: it was accepted as it was, then to_yaml raised a
    # RepresenterError and the run's first checkpoint failed (a safe load refuses numpy)
    # after all its training
    cfg = mg.TrainConfig(**{"algo": "b2mapo", name: value})
    held = getattr(cfg, name)
    assert held == (value.tolist() if hasattr(value, "tolist") else [[0, 1]])
    flat = [held] if not isinstance(held, list) else [v for row in held for v in row]
    assert not any(type(v).__module__ == "numpy" for v in flat)
    assert mg.TrainConfig.from_yaml(cfg.to_yaml()) == cfg


def test_numpy_values_still_meet_the_fields_rules():
    with pytest.raises(ValueError, match=r"TrainConfig\.seed .*got -1"):
        mg.TrainConfig(seed=np.int64(-1))
    with pytest.raises(ValueError, match=r"TrainConfig\.fixed_dag .*'x'"):
        mg.TrainConfig(algo="b2mapo", fixed_dag=np.array([[0, 1], [1, "x"]]))


def test_a_network_too_big_for_memory_is_refused_before_allocating():
    env = mg.envs.make("coordination:chain-4", num_envs=2)
    with pytest.raises(mg.MapographError, match=r"need at least [\d.]+ GiB .* free"):
        mg.Trainer(env, mg.TrainConfig(hidden=65536, layers=4))


def test_an_untrusted_checkpoint_asking_for_a_huge_network_is_refused(tmp_path):
    from mapograph.train import load_checkpoint, save_checkpoint

    env = mg.envs.make("coordination:chain-4", num_envs=2)
    mg.Trainer(env, mg.TrainConfig(num_envs=2)).save(tmp_path / "checkpoint.pt")
    state = load_checkpoint(tmp_path)
    body = {k: v for k, v in state.items() if k not in ("format", "version")}
    body["config"]["hidden"] = 1_000_000_000
    save_checkpoint(body, tmp_path / "checkpoint.pt")
    with pytest.raises(mg.CheckpointError, match="hidden must be at most"):
        mg.Trainer.load(tmp_path, env)
    body["config"].update(hidden=65536, layers=4)
    save_checkpoint(body, tmp_path / "checkpoint.pt")
    with pytest.raises(mg.MapographError, match="need at least"):
        mg.Trainer.load(tmp_path, env)
