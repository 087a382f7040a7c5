"""The command line: train, eval, resume, graph, bench and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mapograph.cli import main
from mapograph.train import load_checkpoint

ENV = "coordination:chain-4"


def run_cli(*args: str) -> int:
    return main(list(args))


def test_train_eval_resume_graph(tmp_path, capsys):
    out = tmp_path / "run"
    code = run_cli(
        "train",
        "--env",
        ENV,
        "--algo",
        "b2mapo",
        "--steps",
        "1024",
        "--num-envs",
        "8",
        "--seed",
        "1",
        "--out",
        str(out),
        "--eval-episodes",
        "4",
    )
    assert code == 0
    for name in ("progress.csv", "checkpoint.pt", "summary.json", "config.yaml", "run.yaml"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 1024 and "eval" in summary
    # not a terminal: plain progress lines instead of a bar (2 iterations of 512 steps)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("step ")]
    assert [ln.split()[1] for ln in lines] == ["512/1024", "1024/1024"]
    assert run_cli("eval", str(out), "--episodes", "4") == 0
    assert "return_mean" in capsys.readouterr().out
    assert run_cli("resume", str(out), "--steps", "2048", "--eval-episodes", "0") == 0
    assert load_checkpoint(out)["env_steps"] == 2048
    capsys.readouterr()
    assert run_cli("resume", str(out), "--steps", "1000", "--eval-episodes", "0") == 0
    assert "at step 2048, already past 1000: nothing to train" in capsys.readouterr().out
    assert load_checkpoint(out)["env_steps"] == 2048
    # resume at a lower learning rate (what the divergence error suggests)
    args = ("--steps", "2560", "--lr", "1e-5", "--critic-lr", "2e-5", "--eval-episodes", "0")
    assert run_cli("resume", str(out), *args) == 0
    state = load_checkpoint(out)
    assert (state["config"]["lr"], state["config"]["critic_lr"]) == (1e-5, 2e-5)
    groups = state["optimizers"]["ppo"]["actor_optim"]["param_groups"]
    assert {g["lr"] for g in groups} == {1e-5}
    assert run_cli("graph", str(out)) == 0
    assert (out / "graph.png").stat().st_size > 1000


def test_eval_of_the_sequential_policy_says_when_a_run_has_only_one(tmp_path, capsys):
    for algo in ("mappo", "b2mapo"):
        out = tmp_path / algo
        argv = ("--env", ENV, "--algo", algo, "--steps", "256", "--num-envs", "8")
        assert run_cli("train", *argv, "--eval-episodes", "0", "--out", str(out)) == 0
        capsys.readouterr()
        assert run_cli("eval", str(out), "--episodes", "2", "--policy", "seq") == 0
        note = "mappo acts with one policy; --policy seq evaluates that one"
        assert (note in capsys.readouterr().err) == (algo == "mappo")


def test_unknown_env_is_one_line_listing_families(tmp_path, capsys):
    code = run_cli("train", "--env", "nosuch:thing", "--steps", "10", "--out", str(tmp_path / "x"))
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "coordination" in err and "Traceback" not in err


def test_unknown_algo_and_bad_checkpoint_are_clear(tmp_path, capsys):
    assert (
        run_cli(
            "train", "--env", ENV, "--algo", "ppo2", "--steps", "10", "--out", str(tmp_path / "a")
        )
        == 2
    )
    assert "mappo" in capsys.readouterr().err
    assert run_cli("eval", str(tmp_path / "nothing")) == 2
    assert "run folder" in capsys.readouterr().err


def test_config_file_is_read(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("algo: happo\nrollout_length: 8\nnum_envs: 4\n")
    out = tmp_path / "run"
    assert (
        run_cli(
            "train",
            "--env",
            ENV,
            "--config",
            str(cfg),
            "--steps",
            "64",
            "--out",
            str(out),
            "--eval-episodes",
            "0",
        )
        == 0
    )
    assert "algo: happo" in (out / "config.yaml").read_text()


def test_train_resume_refuses_a_config_that_differs_from_the_run(tmp_path, capsys):
    """``train --resume --config`` does not silently ignore a changed config file."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("rollout_length: 8\nnum_envs: 4\n")
    out = str(tmp_path / "run")
    argv = ("train", "--env", ENV, "--config", str(cfg), "--eval-episodes", "0", "--out", out)
    assert run_cli(*argv, "--steps", "64") == 0
    assert run_cli(*argv, "--steps", "128", "--resume") == 0  # the same command continues
    assert load_checkpoint(out)["env_steps"] == 128
    cfg.write_text("rollout_length: 8\nnum_envs: 4\nepochs: 2\n")
    capsys.readouterr()
    assert run_cli(*argv, "--steps", "192", "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--config" in err[0] and "epochs" in err[0], err


def _final_params(run_dir: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run_dir)
    return {f"{m}.{k}": v for m, sd in state["modules"].items() for k, v in sd.items()}


def test_kill_and_resume_equals_uninterrupted_run(tmp_path):
    """A run killed with SIGKILL and resumed ends with the same parameters."""
    args = [
        "train",
        "--env",
        ENV,
        "--algo",
        "a2po",
        "--steps",
        "12288",
        "--num-envs",
        "8",
        "--seed",
        "3",
        "--eval-episodes",
        "0",
        "--config",
    ]
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("rollout_length: 64\ncheckpoint_every: 2\ntensorboard: false\n")
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert run_cli(*args, str(cfg), "--out", str(full)) == 0

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mapograph.cli", *args, str(cfg), "--out", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if (killed / "checkpoint.pt").exists() and load_checkpoint(killed)["iteration"] >= 4:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stopped_at = load_checkpoint(killed)["iteration"]
    if stopped_at >= 24:
        pytest.skip("the run finished before it could be killed")
    assert run_cli("resume", str(killed), "--eval-episodes", "0") == 0
    a, b = _final_params(full), _final_params(killed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_summary_is_strict_json_with_the_last_finished_episodes_return():
    """An iteration that ended no episode (return NaN) neither blanks nor breaks summary.json."""
    from types import SimpleNamespace

    from mapograph.cli import _summarize

    trainer = SimpleNamespace(cfg=SimpleNamespace(algo="mappo"), env_steps=400, iteration=2)
    history = [
        {"return_mean": -63.0, "collect_s": 1.0, "update_s": 1.0, "batches": [[0, 1]]},
        {
            "return_mean": float("nan"),
            "collect_s": 1.0,
            "update_s": float("inf"),
            "batches": [[0, 1]],
        },
    ]
    summary = json.loads(json.dumps(_summarize(trainer, history, 0), allow_nan=False))
    assert summary["final_return_mean"] == -63.0 and summary["update_s_mean"] is None
