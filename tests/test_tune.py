"""Optuna tuning with real storages: SQLite by default, PostgreSQL for several workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import torch
from optuna.trial import TrialState

import mapograph as mg
from mapograph.cli import main
from mapograph.tune import optimize, resolve_storage, search_space

from conftest import MatrixGameEnv

ENV = "coordination:chain-4"
BASE = dict(num_envs=8, rollout_length=16, epochs=2)


def fixed_space(trial: optuna.Trial) -> dict:
    """Good configurations, except the one the test enqueues with a tiny learning rate."""
    return {
        "algo": "b2mapo",
        "partition": trial.suggest_categorical("partition", ["generations", "k_batches"]),
        "lr": trial.suggest_float("lr", 1e-7, 3e-3, log=True),
    }


def test_small_sqlite_study_prunes_a_bad_trial_and_exports_a_config(tmp_path):
    storage = resolve_storage(None, tmp_path)
    name = "unit"
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction="maximize",
        # judged from 3000 env steps on: by then the good trials solve chain-4 (return 10)
        # while the tiny learning rate stays near a random policy's (about 6)
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=3000),
    )
    for _ in range(2):
        study.enqueue_trial({"partition": "generations", "lr": 3e-3})
    study.enqueue_trial({"partition": "k_batches", "lr": 1e-7})  # clearly bad: cannot learn
    study = optimize(
        ENV,
        3,
        storage=f"sqlite:///{tmp_path / 'study.db'}",
        study_name=name,
        pruner=study.pruner,
        steps=16 * 32 * 20,
        base_config=mg.TrainConfig(num_envs=16, rollout_length=32),
        space=fixed_space,
        out_dir=tmp_path,
        report_every=4,
        eval_episodes=16,
    )
    states = [t.state for t in study.trials]
    assert states[:2] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert states[2] == TrialState.PRUNED
    assert max(study.trials[2].intermediate_values) < 16 * 32 * 20  # stopped early
    assert (tmp_path / "study.db").exists()
    best = mg.TrainConfig.from_yaml(tmp_path / "best.yaml")
    assert best.lr == pytest.approx(3e-3) and best.algo == "b2mapo"
    assert (tmp_path / "optimization_history.png").exists()
    # the exported YAML trains
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--env",
                ENV,
                "--config",
                str(tmp_path / "best.yaml"),
                "--steps",
                "256",
                "--out",
                str(out),
                "--eval-episodes",
                "0",
            ]
        )
        == 0
    )


def test_a_trial_over_several_seeds_scores_the_mean_of_their_runs(tmp_path):
    def fixed_lr(trial):
        return {"lr": trial.suggest_float("lr", 2e-3, 2e-3)}

    def value_of(seed: int, seeds: int, where: str) -> optuna.trial.FrozenTrial:
        study = optimize(
            ENV,
            1,
            out_dir=tmp_path / where,
            steps=8 * 16 * 6,
            plots=False,
            space=fixed_lr,
            base_config=mg.TrainConfig(algo="mappo", seed=seed, **BASE),
            seeds_per_trial=seeds,
            report_every=2,
            eval_episodes=8,
        )
        (trial,) = study.trials
        assert trial.state == TrialState.COMPLETE
        return trial

    both = value_of(3, 2, "both")
    first, second = value_of(3, 1, "first"), value_of(4, 1, "second")
    # each seed's run is the run a one-seed trial with that seed makes
    assert both.user_attrs["seed_values"] == [first.value, second.value]
    assert both.value == pytest.approx((first.value + second.value) / 2)
    assert first.value != second.value  # the seeds differ, so the mean is informative
    with pytest.raises(ValueError, match="seeds_per_trial must be a positive int"):
        optimize(ENV, 1, out_dir=tmp_path / "bad", steps=256, seeds_per_trial=0)


def test_multi_objective_study_gives_a_pareto_front(tmp_path):
    study = optimize(
        ENV,
        2,
        steps=8 * 16 * 2,
        base_config=mg.TrainConfig(**BASE),
        out_dir=tmp_path,
        multi_objective=True,
        report_every=1,
        eval_episodes=4,
    )
    assert len(study.directions) == 2
    assert all(len(t.values) == 2 for t in study.best_trials)
    assert (tmp_path / "pareto_front.png").exists()


def test_diverging_run_fails_instead_of_scoring(tmp_path):
    space = lambda trial: {"lr": trial.suggest_float("lr", 1e38, 3e38)}  # noqa: E731
    study = optimize(
        ENV,
        1,
        steps=8 * 16 * 2,
        base_config=mg.TrainConfig(**BASE, max_grad_norm=None),
        out_dir=tmp_path,
        space=space,
        report_every=1,
        eval_episodes=4,
        plots=False,
        timeout=60,
    )
    assert study.trials[0].state == TrialState.FAIL


def test_bad_storage_and_unknown_partitioner_are_clear(tmp_path):
    with pytest.raises(ValueError, match="unsupported storage"):
        resolve_storage("redis://localhost/0", tmp_path)
    trial = optuna.trial.FixedTrial({"partition": "zigzag"})
    with pytest.raises(ValueError, match="unknown partitioner 'zigzag'"):
        search_space(trial, lambda t: {"partition": t.suggest_categorical("partition", ["zigzag"])})
    with pytest.raises(ValueError, match="unknown search space"):
        search_space(trial, "everything")
    with pytest.raises(ValueError, match=r"suggests unknown TrainConfig field\(s\): learning_rate"):
        search_space(trial, lambda t: {"learning_rate": 1e-3})


@pytest.mark.parametrize(
    "env_id,kwargs,match",
    [
        (ENV, {"report_every": 0}, r"report_every must be a positive int, got 0"),
        (ENV, {"eval_episodes": -1}, r"eval_episodes must be a positive int"),
        (ENV, {"base_config": {"lr": 1e-3, "nope": 1}}, r"base_config: .*'nope'"),
        (ENV, {"base_config": [1]}, r"base_config must be a TrainConfig or a dict"),
        (ENV, {"space": "everything"}, r"unknown search space 'everything'"),
        (ENV, {"env_kwargs": {"bogus": 1}}, r"env 'coordination:chain-4': .*bogus"),
        ("coordination:zigzag-4", {}, r"env 'coordination:zigzag-4': unknown coordination task"),
        ("nosuch:x", {}, r"no family 'nosuch'"),
    ],
)
def test_bad_arguments_fail_before_any_study_or_trial_exists(tmp_path, env_id, kwargs, match):
    with pytest.raises(ValueError, match=match):
        optimize(env_id, 1, out_dir=tmp_path, steps=256, **kwargs)
    assert not (tmp_path / "study.db").exists()


def test_a_dict_base_config_is_read_as_train_config_fields(tmp_path):
    study = optimize(
        ENV,
        1,
        out_dir=tmp_path,
        steps=256,
        base_config={**BASE, "algo": "mappo"},
        space=lambda t: {"lr": t.suggest_float("lr", 1e-3, 2e-3)},
        plots=False,
    )
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]
    assert mg.TrainConfig.from_yaml(tmp_path / "best.yaml").num_envs == 8


WORKER = """
import sys
import mapograph as mg
from mapograph.tune import run_worker, resolve_storage
run_worker("{env}", {n}, resolve_storage("{url}", heartbeat_interval=1, grace_period=3), "shared",
           mg.TrainConfig(num_envs=8, rollout_length=16, epochs=2, total_steps={steps}), "partition", False,
           report_every=100, eval_episodes=4)
"""


@pytest.mark.postgres
def test_two_postgres_workers_survive_a_killed_worker(tmp_path):
    url = os.environ.get("MAPOGRAPH_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("MAPOGRAPH_TEST_POSTGRES_URL not set (.ci/run starts a server)")
    pytest.importorskip("psycopg")
    n, steps = 3, 8 * 16 * 8
    script = WORKER.format(env=ENV, n=n, url=url, steps=steps)
    storage = resolve_storage(url, heartbeat_interval=1, grace_period=3)
    optuna.create_study(
        storage=storage, study_name="shared", direction="maximize", load_if_exists=True
    )
    first = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 120
    while time.time() < deadline:
        study = optuna.load_study(study_name="shared", storage=storage)
        running = [
            t
            for t in study.trials
            if t.state == TrialState.RUNNING and t.user_attrs.get("worker_pid") == first.pid
        ]
        if running:
            break
        time.sleep(0.2)
    assert running, "the first worker never started a trial"
    killed_number = running[0].number
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    second = subprocess.Popen([sys.executable, "-c", script])
    assert second.wait(timeout=600) == 0
    study = optuna.load_study(study_name="shared", storage=storage)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) >= n
    killed = study.trials[killed_number]
    assert killed.state == TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed_number]
    assert retries and retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retries[0].params == killed.params  # no trial lost: the same configuration ran again


def test_trials_with_other_rollout_lengths_report_at_the_same_budget_points(tmp_path):
    from mapograph.tune._objective import budget_tenth
    from mapograph.tune._optimize import default_pruner

    assert [budget_tenth(s, 1000) for s in (0, 99, 100, 250, 999, 1000, 1200)] == [
        0,
        0,
        100,
        200,
        900,
        1000,
        1000,
    ]
    assert default_pruner(8000)._n_warmup_steps == 2000  # no pruning in the first quarter
    lengths = iter([8, 24])
    space = lambda trial: {"rollout_length": next(lengths)}  # noqa: E731
    total = 8 * 8 * 12
    study = optimize(
        ENV,
        2,
        steps=total,
        base_config=mg.TrainConfig(num_envs=8, rollout_length=8, epochs=1),
        out_dir=tmp_path,
        space=space,
        report_every=1,
        eval_episodes=2,
        plots=False,
    )
    grid = {total * k // 10 for k in range(1, 11)}
    keys = [set(t.intermediate_values) for t in study.trials]
    assert all(k <= grid for k in keys)
    assert len(keys[0] & keys[1]) >= 3  # comparable points despite 64 vs 192 steps/iteration


class _DoubleWinGame(MatrixGameEnv):
    """Reward 2 (a win, ``info["won"]`` = 1) when both agents play action 1, else 0."""

    def __init__(self, num_envs: int = 8, seed: int = 0, **_: object) -> None:
        payoff = torch.zeros(2, 2)
        payoff[1, 1] = 2.0
        super().__init__(payoff, num_envs=num_envs, seed=seed)

    def step(self, actions: torch.Tensor) -> mg.envs.TimeStep:
        ts = super().step(actions)
        ts.info["won"] = (ts.reward == 2.0).float()
        return ts


def test_metric_win_rate_scores_trials_by_their_evaluation_win_rate(tmp_path):
    mg.envs.register("doublewin", _DoubleWinGame, overwrite=True)
    base = mg.TrainConfig(num_envs=8, rollout_length=4, epochs=1, lr=3e-2, algo="mappo")
    space = lambda trial: {"clip": trial.suggest_float("clip", 0.2, 0.2)}  # noqa: E731
    values = {}
    for metric in ("return", "win_rate"):
        study = optimize(
            "doublewin",
            1,
            steps=8 * 4 * 6,
            base_config=base,
            out_dir=tmp_path / metric,
            space=space,
            report_every=2,
            eval_episodes=16,
            plots=False,
            metric=metric,
        )
        values[metric] = study.trials[0].value
    # the same seeded run: every episode's return is twice its win flag
    assert 0.0 < values["win_rate"] <= 1.0
    assert values["return"] == pytest.approx(2 * values["win_rate"])
    with pytest.raises(ValueError, match="metric 'win_rate'.*reports no wins"):
        optimize(
            ENV,
            1,
            steps=8 * 16,
            base_config=mg.TrainConfig(**BASE),
            out_dir=tmp_path / "x",
            space=space,
            report_every=1,
            eval_episodes=2,
            plots=False,
            metric="win_rate",
        )
    with pytest.raises(ValueError, match="metric must be one of"):
        optimize(ENV, 1, out_dir=tmp_path / "y", metric="wins")


def test_cli_tunes_the_named_algorithm_on_its_win_rate(tmp_path, capsys):
    mg.envs.register("doublewin", _DoubleWinGame, overwrite=True)
    argv = ["tune", "--env", "doublewin", "--trials", "1", "--steps", "64", "--space", "ppo"]
    argv += ["--algo", "mappo", "--metric", "win_rate", "--eval-episodes", "4", "--seed", "3"]
    assert main([*argv, "--num-envs", "4", "--out", str(tmp_path)]) == 0
    best = mg.TrainConfig.from_yaml(tmp_path / "best.yaml")
    assert best.algo == "mappo" and best.seed == 3  # the CLI's default algorithm is b2mapo
    study = optuna.load_study(
        study_name="mapograph-doublewin", storage=resolve_storage(None, tmp_path)
    )
    assert 0.0 <= study.trials[0].value <= 1.0
    assert main([*argv[:-8], "--eval-episodes", "0", "--out", str(tmp_path / "z")]) == 2


def test_a_stored_study_with_other_directions_is_refused_before_any_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    storage = resolve_storage(url)
    optuna.create_study(storage=storage, study_name="by-hand", direction="minimize")
    optuna.create_study(storage=storage, study_name="single", direction="maximize")
    with pytest.raises(ValueError, match=r"'by-hand' .* directions \['minimize'\]"):
        mg.tune.create_study(storage, "by-hand", multi_objective=False)  # would minimize returns
    with pytest.raises(ValueError, match=r"'single' .*multi_objective=True"):
        # every trial trained, then failed on "2 values for 1 objective" (16 of them)
        optimize(
            ENV,
            1,
            storage=url,
            study_name="single",
            multi_objective=True,
            steps=256,
            out_dir=tmp_path,
        )
    assert optuna.load_study(study_name="single", storage=storage).trials == []


def test_objective_used_directly_checks_its_arguments():
    from mapograph.tune import Objective

    fixed = optuna.trial.FixedTrial({"partition": "generations", "lr": 1e-3})
    objective = Objective(ENV, {"algo": "b2mapo", **BASE}, space=fixed_space)
    assert objective.config_for(fixed).num_envs == 8  # a dict was an AttributeError
    for kwargs, match in (
        ({"report_every": 0}, "report_every must be a positive int"),  # ZeroDivisionError
        ({"eval_episodes": 0}, "eval_episodes must be a positive int"),
        ({"space": "nope"}, "unknown search space 'nope'"),
    ):
        with pytest.raises(ValueError, match=match):
            Objective(ENV, mg.TrainConfig(algo="b2mapo"), **kwargs)
    with pytest.raises(ValueError, match="base_config must be a TrainConfig or a dict"):
        Objective(ENV, "b2mapo")


def test_a_sampler_seed_makes_a_study_repeat_its_suggestions_and_sqlite_folders_are_made(tmp_path):
    def suggestions(folder):
        argv = ["tune", "--env", ENV, "--trials", "3", "--steps", "128", "--space", "ppo"]
        argv += ["--algo", "mappo", "--eval-episodes", "2", "--num-envs", "4", "--seed", "1"]
        url = f"sqlite:///{folder / 'new' / 'deeper' / 'study.db'}"  # folders made on open
        assert main([*argv, "--sampler-seed", "7", "--storage", url, "--out", str(folder)]) == 0
        study = optuna.load_study(study_name=f"mapograph-{ENV}", storage=url)
        return [(t.params, t.value) for t in study.trials]

    first = suggestions(tmp_path / "a")
    assert len(first) == 3 and len({str(params) for params, _ in first}) == 3
    assert suggestions(tmp_path / "b") == first  # unseeded, TPE's startup trials are random
    with pytest.raises(ValueError, match="a sampler or a sampler_seed, not both"):
        optimize(ENV, 1, sampler=optuna.samplers.RandomSampler(), sampler_seed=1, out_dir=tmp_path)
    with pytest.raises(ValueError, match="sampler_seed must be an int >= 0"):
        optimize(ENV, 1, sampler_seed=-1, out_dir=tmp_path)


def test_plots_leave_the_callers_figures_open(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mapograph.tune import save_plots

    study = optuna.create_study(direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    mine = plt.figure()
    save_plots(study, tmp_path)
    assert plt.fignum_exists(mine.number)  # plt.close("all") closed it
    assert plt.get_fignums() == [mine.number]  # and the plots' own figures are closed
    plt.close(mine)
