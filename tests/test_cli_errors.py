"""Every user error of the command line is one line on stderr with exit code 2; bugs say so."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapograph.cli import main
from mapograph.train import load_checkpoint, save_checkpoint

ENV = "coordination:chain-4"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A small finished MAPPO run."""
    out = tmp_path_factory.mktemp("cli") / "run"
    argv = ["train", "--env", ENV, "--steps", "128", "--num-envs", "8", "--eval-episodes", "0",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    return out


def copy_run(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(run, target)
    return target


def _run_yaml(content):
    def make(run: Path, tmp_path: Path) -> list[str]:
        target = copy_run(run, tmp_path)
        (target / "run.yaml").write_text(yaml.safe_dump(content))
        return ["eval", str(target)]

    return make


def _config(text: str):
    def make(run: Path, tmp_path: Path) -> list[str]:
        (tmp_path / "c.yaml").write_text(text)
        return [
            "train",
            "--env",
            ENV,
            "--config",
            str(tmp_path / "c.yaml"),
            "--out",
            str(tmp_path / "o"),
        ]

    return make


def _mismatched_checkpoint(run: Path, tmp_path: Path) -> list[str]:
    target = copy_run(run, tmp_path)
    state = load_checkpoint(target)
    state["config"]["hidden"] = 32  # the weights are 64 wide: a state-dict size mismatch
    save_checkpoint(
        {k: v for k, v in state.items() if k not in ("format", "version")}, target / "checkpoint.pt"
    )
    return ["eval", str(target)]


def _no_checkpoint(run: Path, tmp_path: Path) -> list[str]:
    target = copy_run(run, tmp_path)
    (target / "checkpoint.pt").unlink()
    return ["resume", str(target)]


CASES = {
    "config is a folder": (lambda r, t: ["train", "--env", ENV, "--config", str(t), "--out", str(t / "o")], "is not a file"),
    "config path missing, no .yaml": (lambda r, t: ["train", "--env", ENV, "--config", str(t / "nope"), "--out", str(t / "o")], "no such file"),
    "out is a file": (lambda r, t: ["train", "--env", ENV, "--out", str(r / "run.yaml")], "is a file"),
    "out holds a run": (lambda r, t: ["train", "--env", ENV, "--out", str(r)], "already holds a run"),
    "run.yaml is a list": (_run_yaml([1, 2]), "must be a mapping"),
    "run.yaml lacks env": (_run_yaml({"num_envs": 8}), "lacks 'env'"),
    "device cuda:7": (_config("device: 'cuda:7'\n"), "cuda:7"),
    "lr .inf": (_config("lr: .inf\n"), "TrainConfig.lr"),
    "share_params 'yes'": (_config("share_params: 'yes'\n"), "share_params must be true or false"),
    "gamma 'x'": (_config("gamma: x\n"), "gamma must lie in"),
    "config is a list": (_config("- 1\n"), "must be a mapping"),
    "bench --iterations 0": (lambda r, t: ["bench", "--env", ENV, "--iterations", "0"], "--iterations"),
    "env-kwarg without =": (lambda r, t: ["train", "--env", ENV, "--env-kwarg", "x", "--out", str(t / "o")], "KEY=VALUE"),
    "eval of a missing folder": (lambda r, t: ["eval", str(t / "missing")], "not a mapograph run folder"),
    "resume without checkpoint": (_no_checkpoint, "checkpoint not found"),
    "resume before the first checkpoint": (_no_checkpoint, "--overwrite"),
    "train --resume without checkpoint": (lambda r, t: ["train", "--env", ENV, "--resume", "--out", _no_checkpoint(r, t)[1]], "before its first checkpoint"),
    "state-dict size mismatch": (_mismatched_checkpoint, "does not match"),
    "graph of a run without a graph": (lambda r, t: ["graph", str(r)], "graph"),
    "tune --trials 0": (lambda r, t: ["tune", "--env", ENV, "--trials", "0", "--out", str(t / "tune")], "--trials"),
    "tune --num-envs 0": (lambda r, t: ["tune", "--env", ENV, "--trials", "1", "--steps", "64", "--num-envs", "0", "--out", str(t / "tune")], "TrainConfig.num_envs must be a positive int"),
    "train --num-envs 0": (lambda r, t: ["train", "--env", ENV, "--num-envs", "0", "--out", str(t / "o")], "TrainConfig.num_envs must be a positive int"),
    "train --seed 2**64": (lambda r, t: ["train", "--env", ENV, "--seed", str(2**64), "--out", str(t / "o")], "TrainConfig.seed must be at most"),
    "eval --seed 2**64": (lambda r, t: ["eval", str(r), "--seed", str(2**64)], "seed must be at most"),
    "unknown env": (lambda r, t: ["train", "--env", "nosuch:x", "--out", str(t / "o")], "nosuch"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_errors_are_one_line(case, run, tmp_path, capsys):
    make, expected = CASES[case]
    argv = make(run, tmp_path)
    capsys.readouterr()
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("mapograph: error: ") and expected in err[0], err[0]
    assert "Traceback" not in err[0]


def test_an_interrupt_before_the_first_checkpoint_does_not_promise_one(
    tmp_path, monkeypatch, capsys
):
    """Ctrl-C before any checkpoint says there is nothing to resume, not that one is intact."""
    from mapograph.train import Trainer

    def interrupted(self, callback=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train", interrupted)
    out = tmp_path / "run"
    assert main(["train", "--env", ENV, "--steps", "128", "--out", str(out)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing to resume" in err[0] and "intact" not in err[0], err


def test_a_bug_prints_its_traceback_and_says_it_is_a_bug(run, monkeypatch, capsys):
    import mapograph.cli as cli

    def broken(args):
        raise KeyError("internal")

    monkeypatch.setattr(cli, "cmd_eval", broken)
    parser_func = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_eval(parser_func(), broken))
    assert main(["eval", str(run)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError" in err and "is a bug in mapograph" in err


def _with_eval(parser, func):
    for action in parser._subparsers._group_actions:
        action.choices["eval"].set_defaults(func=func)
    return parser


def test_read_only_file_systems_are_one_line(tmp_path):
    if sys.platform != "linux" or shutil.which("unshare") is None:
        pytest.skip("needs Linux and unshare")
    probe = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o ro tmpfs /mnt"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs in a user namespace here: {probe.stderr.decode().strip()}"
        )
    calls = (
        "from mapograph.cli import main\n"
        f"print('EXIT=%d' % main(['train', '--env', '{ENV}', '--steps', '128', '--out', '/mnt/run']))\n"
        f"print('EXIT=%d' % main(['tune', '--env', '{ENV}', '--trials', '1', '--storage', "
        f"'journal:/mnt/j.log', '--out', '{tmp_path}']))\n"
    )
    (tmp_path / "calls.py").write_text(calls)
    script = f"mount -t tmpfs -o ro tmpfs /mnt; {sys.executable} {tmp_path / 'calls.py'}"
    proc = subprocess.run(["unshare", "-Urm", "sh", "-c", script], capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert proc.stdout.count("EXIT=2") == 2, proc.stdout + proc.stderr
    err = [line for line in proc.stderr.splitlines() if line.startswith("mapograph")]
    assert len(err) == 2 and all("read-only file system" in line for line in err), err


# ------------------------------------------------------------------ property-based

FLAGS = ["--steps", "--seed", "--num-envs", "--episodes", "--iterations", "--trials", "--workers"]
BAD_NUMBERS = st.sampled_from(["0", "-1", "-5", "abc", "1.5", "", "nan", "1e9999"])


@st.composite
def bad_argv(draw) -> list[str]:
    command = draw(st.sampled_from(["train", "eval", "resume", "graph", "bench", "tune"]))
    argv = [command]
    if command in ("eval", "resume", "graph"):
        argv.append(draw(st.sampled_from(["/nonexistent/run", "/", ".", "/dev/null"])))
    else:
        argv += ["--env", draw(st.sampled_from([ENV, "nosuch:x", ":", "coordination:"]))]
    for flag in draw(st.lists(st.sampled_from(FLAGS), max_size=3, unique=True)):
        argv += [flag, draw(BAD_NUMBERS)]
    if command == "bench":
        argv += ["--iterations", draw(BAD_NUMBERS)]
    if command in ("train", "tune"):
        argv += ["--out", "/nonexistent/out"]
        if command == "tune":
            argv += ["--trials", draw(BAD_NUMBERS)]
        else:
            argv += ["--steps", draw(BAD_NUMBERS)]
    return argv


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(argv=bad_argv())
def test_bad_command_lines_never_crash(argv, capsys):
    """Each invalid command line ends in argparse's usage error or one error line, exit 2."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage line + error line
        assert exc.code == 2
        return
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2, (argv, err)
    assert len(err) == 1 and err[0].startswith("mapograph: error: "), (argv, err)
