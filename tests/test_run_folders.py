"""Run folders: never destroyed by accident, resumed without duplicate rows, checked at load."""

from __future__ import annotations

import csv
import stat

import pytest
import torch

import mapograph as mg
from mapograph import CheckpointError, MapographError
from mapograph.cli import main
from mapograph.train import load_checkpoint

ENV = "coordination:chain-4"
TRAIN = ["train", "--env", ENV, "--num-envs", "8", "--eval-episodes", "0"]


def iterations(run) -> list[int]:
    with (run / "progress.csv").open() as handle:
        return [int(row["iteration"]) for row in csv.DictReader(handle)]


def test_resume_with_the_same_config_file_takes_the_runs_algo_and_seed(tmp_path, capsys):
    run, config = tmp_path / "run", tmp_path / "cfg.yaml"
    config.write_text("rollout_length: 16\n")
    base = [*TRAIN, "--config", str(config), "--out", str(run)]
    assert main([*base, "--algo", "mappo", "--seed", "3", "--steps", "256"]) == 0
    # --algo and --seed left out: the run's, not the defaults' (b2mapo's reference, seed 0)
    assert main([*base, "--steps", "384", "--resume"]) == 0
    assert iterations(run) == [1, 2, 3]
    config.write_text("rollout_length: 32\n")
    assert main([*base, "--steps", "512", "--resume"]) == 2
    assert "differs from the run's config in rollout_length" in capsys.readouterr().err


def test_train_into_an_existing_run_refuses_unless_resume_or_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    config = tmp_path / "cfg.yaml"
    config.write_text("rollout_length: 16\n")
    TRAIN = [
        "train",
        "--env",
        ENV,
        "--num-envs",
        "8",
        "--eval-episodes",
        "0",
        "--config",
        str(config),
    ]  # noqa: N806
    assert main([*TRAIN, "--steps", "384", "--seed", "1", "--out", str(run)]) == 0
    before = (run / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main([*TRAIN, "--steps", "1024", "--seed", "2", "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a run" in err[0] and "--resume" in err[0]
    assert (run / "checkpoint.pt").read_bytes() == before  # untouched
    assert iterations(run) == [1, 2, 3]
    # --resume continues the run (its config and seed), to the new step count
    assert main([*TRAIN, "--steps", "640", "--out", str(run), "--resume"]) == 0
    assert iterations(run) == [1, 2, 3, 4, 5]
    assert load_checkpoint(run)["config"]["seed"] == 1
    # --overwrite replaces it with a fresh run
    assert main([*TRAIN, "--steps", "256", "--seed", "2", "--out", str(run), "--overwrite"]) == 0
    assert iterations(run) == [1, 2]
    assert load_checkpoint(run)["config"]["seed"] == 2


def test_resume_refuses_flags_that_would_change_the_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TRAIN, "--steps", "256", "--seed", "1", "--out", str(run)]) == 0
    before = (run / "checkpoint.pt").read_bytes()
    for flags, named in (
        (["--seed", "3"], "--seed 3 (the run's: 1)"),
        (["--algo", "happo"], "--algo happo"),
        (["--env-kwarg", "trap=0.5"], "--env-kwarg trap=0.5"),
    ):
        capsys.readouterr()
        assert main([*TRAIN, "--steps", "512", "--out", str(run), "--resume", *flags]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and named in err[0] and "--resume" in err[0], err
        assert (run / "checkpoint.pt").read_bytes() == before  # nothing trained
    other = ["train", "--env", "coordination:chain-6", "--num-envs", "8", "--eval-episodes", "0"]
    assert main([*other, "--steps", "512", "--out", str(run), "--resume"]) == 2
    assert "--env coordination:chain-6 (the run's: coordination:chain-4)" in capsys.readouterr().err
    # the run's own values are accepted
    assert main([*TRAIN, "--steps", "1024", "--seed", "1", "--out", str(run), "--resume"]) == 0
    assert iterations(run) == [1, 2]  # 8 copies x 64 steps per iteration


def test_out_on_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main([*TRAIN, "--steps", "128", "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file" in err[0]


def test_a_fresh_trainer_refuses_to_overwrite_another_runs_checkpoint(tmp_path):
    cfg = mg.TrainConfig(total_steps=256, rollout_length=16, num_envs=8, progress=False)
    mg.Trainer(mg.envs.make(ENV, num_envs=8), cfg, out_dir=tmp_path).train()
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(MapographError, match="already holds a run"):
        mg.Trainer(mg.envs.make(ENV, num_envs=8), cfg, out_dir=tmp_path).train()
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    # the trainer loaded from the folder continues it
    loaded = mg.Trainer.load(tmp_path, mg.envs.make(ENV, num_envs=8), total_steps=384)
    loaded.train()
    assert iterations(tmp_path) == [1, 2, 3]


def test_resume_drops_rows_logged_after_the_last_checkpoint(tmp_path):
    """A run killed after its checkpoint logged rows its resume logs again: they go."""
    cfg = mg.TrainConfig(
        total_steps=128 * 8, rollout_length=16, num_envs=8, progress=False, checkpoint_every=3
    )
    trainer = mg.Trainer(mg.envs.make(ENV, num_envs=8), cfg, out_dir=tmp_path)

    def die_at_5(row):
        if row["iteration"] == 5:
            raise KeyboardInterrupt  # as a kill after iteration 5 was logged

    with pytest.raises(KeyboardInterrupt):
        trainer.train(die_at_5)
    assert iterations(tmp_path) == [1, 2, 3, 4, 5]
    assert load_checkpoint(tmp_path)["iteration"] == 3
    mg.Trainer.load(tmp_path, mg.envs.make(ENV, num_envs=8)).train()
    assert iterations(tmp_path) == list(range(1, 9))


def test_flipped_bytes_are_refused_by_the_checksum(tmp_path):
    cfg = mg.TrainConfig(total_steps=128, rollout_length=16, num_envs=8, progress=False)
    path = mg.Trainer(mg.envs.make(ENV, num_envs=8), cfg).save(tmp_path / "checkpoint.pt")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_run_files_share_one_mode_and_no_tmp_files_stay(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt.abc123.tmp").write_bytes(b"left by a killed writer")
    cfg = mg.TrainConfig(total_steps=256, rollout_length=16, num_envs=8, progress=False)
    mg.Trainer(mg.envs.make(ENV, num_envs=8), cfg, out_dir=run).train()
    assert not list(run.glob("*.tmp"))
    modes = {
        stat.S_IMODE((run / name).stat().st_mode) for name in ("checkpoint.pt", "progress.csv")
    }
    assert len(modes) == 1


def test_foreign_checkpoints_are_refused_in_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TRAIN, "--steps", "128", "--out", str(run)]) == 0
    torch.save({"x": CheckpointError("pickled object")}, run / "checkpoint.pt")
    capsys.readouterr()
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a mapograph checkpoint" in err[0]
    assert "weights_only" not in err[0]


def test_progress_csv_holds_every_key_of_the_history_even_those_that_start_late(tmp_path):
    import json

    env = mg.envs.make(ENV, num_envs=8, seed=0)
    cfg = mg.TrainConfig(
        algo="b2mapo", total_steps=8 * 16 * 4, rollout_length=16, eval_every=2, eval_episodes=4,
        distill_every=2, progress=False, tensorboard=False,
    )  # fmt: skip
    history = mg.Trainer(env, cfg, out_dir=tmp_path).train().history
    with (tmp_path / "progress.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(history) == 4
    for row, logged in zip(history, rows):
        for key, value in row.items():
            assert key in logged, key  # eval_return_mean first appears at iteration 2
            if key == "batches":
                assert json.loads(logged[key]) == value
            elif isinstance(value, float) and value == value:
                assert float(logged[key]) == pytest.approx(value), key
    assert rows[0]["eval_return_mean"] == "" and rows[1]["eval_return_mean"] != ""
