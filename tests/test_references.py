"""Shipped reference configurations: every file valid for every algorithm, layering, CLI."""

from __future__ import annotations

import pytest
import yaml

import mapograph as mg
from mapograph.cli import main
from mapograph.train import _references, config_with_reference, reference_families, reference_for

EXPECTED_FAMILIES = {"coordination", "football", "mamujoco", "mpe", "smacv2", "smax", "vmas"}


def test_every_family_ships_a_reference_with_its_source():
    assert set(reference_families()) >= EXPECTED_FAMILIES
    for family in reference_families():
        ref = reference_for(f"{family}:task")
        assert ref is not None and ref.name == family
        assert ref.sources and all(len(s) > 20 for s in ref.sources)  # says where values come from


@pytest.mark.parametrize("family", sorted(EXPECTED_FAMILIES))
def test_reference_builds_a_valid_config_for_every_algorithm(family):
    for algo in mg.algos.algorithms():
        cfg = mg.TrainConfig.for_env(f"{family}:task", algo=algo)
        assert cfg.algo == algo
        cfg.validate()  # the preset and the reference's fields work together
        ref = reference_for(f"{family}:task", algo)
        for name, value in ref.fields.items():
            assert getattr(cfg, name) == value


def test_smax_shares_parameters_for_every_preset():
    for algo in ("mappo", "happo", "a2po", "b2mapo"):
        assert mg.TrainConfig.for_env("smax:3m", algo=algo).share_params is True
    assert mg.TrainConfig.for_env("mpe:simple_spread_v3", algo="happo").share_params is False


def test_overrides_beat_the_reference_and_unknown_families_use_defaults():
    cfg = mg.TrainConfig.for_env("vmas:balance", lr=1e-3, seed=4)
    assert (cfg.lr, cfg.seed, cfg.epochs, cfg.hidden) == (1e-3, 4, 45, 256)
    assert reference_for("nosuchfamily:x") is None
    assert mg.TrainConfig.for_env("nosuchfamily:x") == mg.TrainConfig()
    assert mg.TrainConfig.for_env("vmas:balance", reference=False) == mg.TrainConfig()


def test_file_fields_override_the_reference_but_only_those_written(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("lr: 0.003\nalgo: happo\n")
    cfg, ref = config_with_reference("smax:3m", path, {"seed": 7, "num_envs": None})
    assert ref is not None and ref.name == "smax"
    assert (cfg.lr, cfg.algo, cfg.seed) == (0.003, "happo", 7)
    fields = reference_for("smax:3m", "happo").fields
    assert (cfg.epochs, cfg.clip) == (fields["epochs"], fields["clip"])  # kept from the reference
    assert (cfg.epochs, cfg.clip) != (mg.TrainConfig().epochs, mg.TrainConfig().clip)
    assert cfg.share_params is True  # the reference's family layer
    cfg, ref = config_with_reference("smax:3m", path, {}, use_reference=False)
    assert ref is None and cfg.epochs == mg.TrainConfig().epochs


def test_task_entries_layer_after_the_family(monkeypatch):
    data = {
        "source": "family source text, long enough",
        "config": {"lr": 1e-3, "epochs": 3},
        "algos": {"mappo": {"share_params": True}},
        "tasks": {
            "big": {
                "source": "task study: mapograph tune --env fam:big",
                "config": {"epochs": 9},
                "algos": {"mappo": {"hidden": 32}},
            }
        },
    }
    monkeypatch.setattr(_references, "_load_family", lambda family: data)
    ref = reference_for("fam:big", "mappo")
    assert ref.name == "fam/big" and len(ref.sources) == 2
    assert ref.fields == {"lr": 1e-3, "epochs": 9, "share_params": True, "hidden": 32}
    assert reference_for("fam:small", "happo").fields == {"lr": 1e-3, "epochs": 3}


def test_a_reference_naming_an_unknown_field_is_refused():
    with pytest.raises(ValueError, match="unknown field.*learning_rate"):
        _references._check_entry({"config": {"learning_rate": 1}}, "x.yaml")


def test_cli_train_records_the_reference_in_the_run_folder(tmp_path):
    args = ["train", "--env", "coordination:chain-3", "--steps", "32", "--num-envs", "4"]
    args += ["--eval-episodes", "0"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    run = yaml.safe_load((tmp_path / "a" / "run.yaml").read_text())
    assert run["reference"]["name"] == "coordination"
    assert "mapograph defaults" in run["reference"]["sources"][0]
    assert main([*args, "--out", str(tmp_path / "b"), "--no-reference"]) == 0
    assert yaml.safe_load((tmp_path / "b" / "run.yaml").read_text())["reference"] is None


def test_ppo_space_keeps_the_base_algorithm_and_gives_valid_configs():
    import optuna

    from mapograph.tune._search_space import search_space

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    base = mg.TrainConfig.for_env("smax:3m", algo="mappo")
    for _ in range(20):
        trial = study.ask()
        params = search_space(trial, "ppo")
        assert "algo" not in params and "partition" not in params
        cfg = base.replace(**params)
        assert cfg.algo == "mappo" and cfg.share_params is True
        study.tell(trial, 0.0)
    assert len({t.params["lr"] for t in study.trials}) == 20  # it does search


def test_for_env_refuses_unknown_fields_with_a_value_error():
    with pytest.raises(ValueError, match="unknown TrainConfig field.*bogus"):
        mg.TrainConfig.for_env("smax:3m", bogus=1)


@pytest.mark.parametrize("algo", [None, 1, ["mappo"]])
def test_reference_for_refuses_an_algo_that_is_not_a_name(algo):
    with pytest.raises(ValueError, match="algo must be an algorithm name"):
        reference_for("smax:3m", algo)
    with pytest.raises(ValueError, match="algo must be an algorithm name"):
        mg.TrainConfig.for_env("smax:3m", algo=algo)


def test_reference_reads_env_and_algo_names_as_make_and_the_config_do():
    # make() and TrainConfig accept these spellings; the reference must apply to them too
    expected = reference_for("mpe:simple_spread_v3", "mappo")
    for env_id, algo in [(" mpe:simple_spread_v3", "MAPPO"), ("MPE:simple_spread_v3", "ma_ppo")]:
        ref = reference_for(env_id, algo)
        assert ref is not None and ref.fields == expected.fields
        assert mg.TrainConfig.for_env(env_id, algo=algo).share_params is True


@pytest.mark.parametrize("reference", ["no", None, 0])
def test_for_env_refuses_a_reference_flag_that_is_not_a_bool(reference):
    with pytest.raises(ValueError, match="reference must be True or False"):
        mg.TrainConfig.for_env("smax:3m", reference=reference)


def test_reference_for_refuses_an_unknown_algorithm_instead_of_dropping_its_layer():
    with pytest.raises(ValueError, match="unknown algorithm 'mapo'; choose one of mappo"):
        reference_for("mpe:simple_spread_v3", "mapo")  # MAPPO's layer would silently not apply
