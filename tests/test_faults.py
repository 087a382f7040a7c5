"""Fault injection: diverging runs, NaN envs, kills mid-write, a full disk, killed tuning workers.

Each test injects one fault into the real code path and checks that nothing is
lost (the last good checkpoint stays loadable and finite) and nothing is
silently wrong (a clear error names what happened).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import mapograph as mg
from mapograph import CheckpointError, DivergenceError
from mapograph.cli import main
from mapograph.envs import EnvSpec, MultiAgentEnv, TimeStep
from mapograph.train import load_checkpoint, save_checkpoint

ENV = "coordination:chain-4"
REPO = Path(__file__).resolve().parents[1]


def small_cfg(**kw) -> mg.TrainConfig:
    base = dict(total_steps=8 * 16 * 12, rollout_length=16, num_envs=8, seed=0, progress=False)
    base.update(kw)
    return mg.TrainConfig(**base)


class PoisonedEnv:
    """Wraps an env; from step ``after`` on, ``field`` of the time step is NaN."""

    def __init__(self, env, after: int, field: str) -> None:
        self.env, self.after, self.field, self.steps = env, after, field, 0
        self.spec, self.num_envs = env.spec, env.num_envs

    def reset(self) -> TimeStep:
        return self.env.reset()

    def step(self, actions: torch.Tensor) -> TimeStep:
        ts = self.env.step(actions)
        self.steps += 1
        if self.steps > self.after:
            setattr(ts, self.field, torch.full_like(getattr(ts, self.field), float("nan")))
        return ts

    def close(self) -> None:
        self.env.close()


def _all_finite(state: dict) -> bool:
    return all(
        bool(torch.isfinite(v).all())
        for sd in state["modules"].values()
        for v in sd.values()
        if v.is_floating_point()
    )


@pytest.mark.parametrize("field,quantity", [("obs", "observations"), ("reward", "rewards")])
def test_nan_env_stops_training_naming_the_iteration_and_keeps_the_checkpoint(
    tmp_path, field, quantity, device
):
    env = PoisonedEnv(mg.envs.make(ENV, num_envs=8), after=16 * 5, field=field)
    trainer = mg.Trainer(env, small_cfg(checkpoint_every=1, device=device), out_dir=tmp_path)
    with pytest.raises(DivergenceError, match=rf"iteration 6\b.*env output.*{quantity}"):
        trainer.train()
    state = load_checkpoint(tmp_path)
    assert state["iteration"] == 5 and _all_finite(state)


@pytest.mark.parametrize("every,kept", [(1, True), (5, False)])
def test_the_divergence_error_says_whether_a_checkpoint_is_there_to_resume(tmp_path, every, kept):
    # it used to say "the last checkpoint was written before and is kept (resume it...)"
    # when the run diverged before its first checkpoint: `mapograph resume` then failed
    env = PoisonedEnv(mg.envs.make(ENV, num_envs=8), after=16 * 2, field="reward")
    trainer = mg.Trainer(env, small_cfg(checkpoint_every=every), out_dir=tmp_path)
    with pytest.raises(DivergenceError, match=r"iteration 3\b") as info:
        trainer.train()
    assert (tmp_path / "checkpoint.pt").exists() == kept
    message = str(info.value)
    if kept:
        assert str(tmp_path / "checkpoint.pt") in message and "resume" in message
    else:
        assert "no checkpoint" in message and "resume" not in message


@pytest.mark.parametrize("algo", ["mappo", "happo", "b2mapo"])
def test_a_diverging_lr_raises_and_never_overwrites_the_last_finite_checkpoint(tmp_path, algo):
    cfg = small_cfg(
        algo=algo, lr=1000.0, critic_lr=1000.0, checkpoint_every=1, total_steps=8 * 16 * 60
    )
    trainer = mg.Trainer(mg.envs.make(ENV, num_envs=8), cfg, out_dir=tmp_path)
    with pytest.raises(DivergenceError, match=r"diverged at iteration \d+: non-finite") as info:
        trainer.train()
    diverged_at = int(str(info.value).split("iteration ")[1].split(":")[0])
    assert trainer.iteration == diverged_at - 1  # the diverged iteration is not counted
    if diverged_at == 1:
        assert not (tmp_path / "checkpoint.pt").exists()
    else:  # every finite iteration was checkpointed; the diverged one was not
        state = load_checkpoint(tmp_path)
        assert state["iteration"] == diverged_at - 1 and _all_finite(state)
    with pytest.raises(DivergenceError):
        trainer.save(tmp_path / "other.pt")  # a diverged trainer never writes
    assert not (tmp_path / "other.pt").exists()


@pytest.mark.parametrize("algo", ["mappo", "b2mapo"])
def test_a_run_resumes_at_the_learning_rates_it_is_loaded_with(tmp_path, algo):
    # a run that diverges at a high lr resumes from its last checkpoint at a lower one:
    # the loaded optimizer states must not bring the saved rates back
    cfg = small_cfg(algo=algo, lr=1e-2, critic_lr=2e-2, generator_lr=3e-3, total_steps=8 * 16 * 2)
    mg.Trainer(mg.envs.make(ENV, num_envs=8), cfg, out_dir=tmp_path).train()
    resumed = mg.Trainer.load(
        tmp_path, mg.envs.make(ENV, num_envs=8), lr=1e-5, critic_lr=2e-5, generator_lr=3e-5
    )
    ppo = resumed.algorithm.optimizer
    rates = {
        "actor": {g["lr"] for g in ppo.actor_optim.param_groups},
        "critic": {g["lr"] for g in ppo.critic_optim.param_groups},
    }
    if ppo.readout_optim is not None:
        rates["readout"] = {g["lr"] for g in ppo.readout_optim.param_groups}
    assert rates.pop("critic") == {2e-5}
    assert all(r == {1e-5} for r in rates.values()), rates
    upper = getattr(resumed.algorithm.schedule, "upper", None)
    assert (algo == "b2mapo") == (upper is not None)
    if upper is not None:
        assert {g["lr"] for g in upper.optim.param_groups} == {3e-5}
    same = mg.Trainer.load(tmp_path, mg.envs.make(ENV, num_envs=8))  # no override: as saved
    assert {g["lr"] for g in same.algorithm.optimizer.actor_optim.param_groups} == {1e-2}


def test_overflowing_returns_stop_every_preset_with_a_divergence_error(tmp_path):
    # finite rewards whose returns overflow float32: A2PO's order must not fail first
    class Huge(PoisonedEnv):
        def step(self, actions):
            ts = self.env.step(actions)
            ts.reward = torch.full_like(ts.reward, 3e38)
            return ts

    for algo in ("mappo", "a2po"):
        env = Huge(mg.envs.make(ENV, num_envs=8), after=0, field="reward")
        trainer = mg.Trainer(env, small_cfg(algo=algo), out_dir=tmp_path / algo)
        with pytest.raises(DivergenceError, match=r"iteration 1\b.*values or advantages"):
            trainer.train()


@pytest.mark.parametrize("field", ["critic_lr", "generator_lr"])
def test_a_learning_rate_that_overflows_float32_stops_with_a_divergence_error(tmp_path, field):
    # 3e38 is a float32, but Adam's first step (lr / 0.1) is not: torch raised a bare
    # RuntimeError from inside the optimizer while the parameters were still finite
    cfg = small_cfg(algo="b2mapo", checkpoint_every=1, **{field: 3e38})
    trainer = mg.Trainer(mg.envs.make(ENV, num_envs=8), cfg, out_dir=tmp_path)
    with pytest.raises(DivergenceError, match=r"iteration 1\b.*overflow"):
        trainer.train()
    with pytest.raises(DivergenceError):
        trainer.save(tmp_path / "other.pt")
    assert not (tmp_path / "other.pt").exists()


def test_a_trainer_interrupted_during_its_update_refuses_to_save_a_torn_state(tmp_path):
    # `except KeyboardInterrupt: trainer.save(...)` used to write the env steps of the
    # interrupted iteration with a half-done update and the iteration count before it
    trainer = mg.Trainer(mg.envs.make(ENV, num_envs=8), small_cfg(algo="b2mapo"), out_dir=tmp_path)
    trainer.train_iteration()
    trainer.save(tmp_path / "checkpoint.pt")
    learn = trainer.algorithm.schedule.learn

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    trainer.algorithm.schedule.learn = interrupted  # after the policy's batches moved
    with pytest.raises(KeyboardInterrupt):
        trainer.train_iteration()
    trainer.algorithm.schedule.learn = learn
    with pytest.raises(mg.MapographError, match=r"iteration 2 was interrupted .*KeyboardInterrupt"):
        trainer.save(tmp_path / "checkpoint.pt")
    with pytest.raises(mg.MapographError, match=r"the last checkpoint, .*checkpoint\.pt, is kept"):
        trainer.save(tmp_path / "other.pt")
    assert not (tmp_path / "other.pt").exists()
    with pytest.raises(mg.MapographError, match=r"partly updated"):
        trainer.train()  # nothing it trains could be checkpointed
    state = load_checkpoint(tmp_path)
    assert (state["iteration"], state["env_steps"]) == (1, 8 * 16)
    resumed = mg.Trainer.load(tmp_path, mg.envs.make(ENV, num_envs=8), total_steps=8 * 16 * 3)
    resumed.train()
    assert [h["step"] for h in resumed.history] == [8 * 16, 8 * 16 * 2, 8 * 16 * 3]


class RotatingEnv(MultiAgentEnv):
    """Two agents, one available action at a time (``t % 3`` at step ``t``); episodes of 6
    steps; step ``interrupt_at`` (counted over the env's life) raises KeyboardInterrupt."""

    def __init__(self, num_envs: int = 4, interrupt_at: int | None = None) -> None:
        self.spec = EnvSpec(n_agents=2, obs_dim=3, state_dim=3, n_actions=3, episode_limit=6)
        self.num_envs, self.interrupt_at, self.t, self.steps = num_envs, interrupt_at, 0, 0

    def _timestep(self, done: bool) -> TimeStep:
        e, k = self.num_envs, self.t % 3
        avail = torch.zeros(e, 2, 3, dtype=torch.bool)
        avail[..., k] = True
        return TimeStep(
            obs=avail.float(),
            state=avail[:, 0].float(),
            avail_actions=avail,
            reward=torch.ones(e),
            done=torch.full((e,), done),
        )

    def reset(self) -> TimeStep:
        self.t = 0
        return self._timestep(False)

    def step(self, actions: torch.Tensor) -> TimeStep:
        self.steps += 1
        if self.steps == self.interrupt_at:
            raise KeyboardInterrupt
        self.check_actions(actions)
        self.t += 1
        return self._timestep(self.t % 6 == 0)


def test_training_continues_after_an_interrupt_during_collection():
    # the collector kept the time step its rollout started from while the env had moved
    # on: the next collection acted on stale masks (here: actions the env refuses)
    env = RotatingEnv(interrupt_at=8 + 3)  # the 3rd step of the second rollout
    trainer = mg.Trainer(env, small_cfg(num_envs=4, rollout_length=8, total_steps=4 * 8 * 3))
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert trainer.iteration == 1
    trainer.train()
    assert trainer.iteration == 3 and trainer.history[-1]["return_mean"] == 6.0


def test_load_names_the_caller_s_bad_or_shape_changing_overrides(tmp_path):
    mg.Trainer(
        mg.envs.make(ENV, num_envs=8), small_cfg(total_steps=8 * 16), out_dir=tmp_path
    ).train()
    env = mg.envs.make(ENV, num_envs=8)
    with pytest.raises(ValueError, match=r"with these changes: .*total_steps") as info:
        mg.Trainer.load(tmp_path, env, total_steps=0)
    assert not isinstance(info.value, CheckpointError)  # the checkpoint is fine
    with pytest.raises(CheckpointError, match=r"loaded with hidden changed") as info:
        mg.Trainer.load(tmp_path, env, hidden=16)
    assert "\n" not in str(info.value)


def test_eval_refuses_a_checkpoint_with_non_finite_parameters(tmp_path, capsys):
    assert main(["train", "--env", ENV, "--steps", "256", "--num-envs", "8", "--out",
                 str(tmp_path), "--eval-episodes", "0"]) == 0  # fmt: skip
    state = load_checkpoint(tmp_path)
    next(iter(state["modules"]["actor"].values())).fill_(float("nan"))
    save_checkpoint(
        {k: v for k, v in state.items() if k not in ("format", "version")},
        tmp_path / "checkpoint.pt",
    )
    with pytest.raises(CheckpointError, match="non-finite parameters"):
        mg.Trainer.load(tmp_path, mg.envs.make(ENV, num_envs=8))
    capsys.readouterr()
    assert main(["eval", str(tmp_path), "--episodes", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-finite parameters" in err[0]


WRITER = textwrap.dedent(
    """
    import sys, torch
    from mapograph.train import save_checkpoint
    state = {"config": {}, "modules": {"m": {"w": torch.randn(400, 400)}}, "optimizers": {},
             "rng": {}, "iteration": 0, "env_steps": 0}
    i = 0
    while True:
        i += 1
        state["iteration"] = i
        save_checkpoint(state, sys.argv[1])
    """
)


def test_kill_during_checkpoint_writes_leaves_a_loadable_checkpoint_and_no_tmp_after(tmp_path):
    path = tmp_path / "checkpoint.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for delay in (0.2, 0.45):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env)
        deadline = time.time() + 60
        while not path.exists() and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = load_checkpoint(path)  # whatever instant the kill hit, the file is whole
        assert state["iteration"] >= 1
    save_checkpoint(state, path)  # the next write removes what killed writers left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def _can_mount_tmpfs() -> str | None:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return "needs Linux and unshare"
    probe = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
    )
    if probe.returncode != 0:
        return f"cannot mount a tmpfs in a user namespace here: {probe.stderr.decode().strip()}"
    return None


DISK_FULL = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import mapograph as mg
    from mapograph.train import load_checkpoint
    out = Path(sys.argv[1])
    env = mg.envs.make("coordination:chain-4", num_envs=8)
    cfg = mg.TrainConfig(total_steps=128 * 40, rollout_length=16, num_envs=8, progress=False,
                         tensorboard=False, checkpoint_every=1)
    trainer = mg.Trainer(env, cfg, out_dir=out)
    trainer.train_iteration()
    trainer.save(out / "checkpoint.pt")
    filler = out / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:  # fill the disk
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:
        os.close(fd)
    try:
        trainer.train()
    except OSError as exc:
        print("ERRNO", exc.errno)
    state = load_checkpoint(out)
    print("ITERATION", state["iteration"])
    print("FILES", sorted(p.name for p in out.iterdir()))
    """
)


def test_a_full_disk_keeps_the_last_checkpoint_and_leaves_no_tmp(tmp_path):
    reason = _can_mount_tmpfs()
    if reason:
        pytest.skip(reason)
    script = tmp_path / "disk_full.py"
    script.write_text(DISK_FULL)
    cmd = f"mount -t tmpfs -o size=2m tmpfs /mnt && {sys.executable} {script} /mnt"
    proc = _in_private_mount_namespace(cmd)
    assert proc.returncode == 0, proc.stderr
    assert "ERRNO 28" in proc.stdout  # ENOSPC surfaced, not swallowed
    assert "ITERATION 1" in proc.stdout  # the checkpoint written before the disk filled
    files = proc.stdout.split("FILES", 1)[1]
    assert ".tmp" not in files


def _in_private_mount_namespace(cmd: str) -> subprocess.CompletedProcess:
    """Run the shell command ``cmd`` as root of a user+mount namespace (tmpfs allowed)."""
    return subprocess.run(
        ["unshare", "-Urm", "sh", "-c", cmd],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        timeout=120,
    )


def test_cli_reports_a_full_disk_in_one_line(tmp_path):
    reason = _can_mount_tmpfs()
    if reason:
        pytest.skip(reason)
    cmd = (
        "mount -t tmpfs -o size=40k tmpfs /mnt && "
        f"{sys.executable} -m mapograph.cli train --env {ENV} --steps 512 --num-envs 8 "
        "--out /mnt/run --eval-episodes 0"
    )
    proc = _in_private_mount_namespace(cmd)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [lines[0]] and "no space left" in lines[0], proc.stderr


def _journal_trials(path: Path, study: str):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if not path.exists():
        return []
    try:
        return optuna_load(study, JournalStorage(JournalFileBackend(str(path)))).trials
    except KeyError:  # the study is not created yet
        return []


def optuna_load(name, storage):
    import optuna

    return optuna.load_study(study_name=name, storage=storage)


@pytest.mark.slow
def test_a_killed_tuning_worker_is_failed_at_once_retried_and_reported(tmp_path):
    """End to end through `mapograph tune`: journal storage (no heartbeat), a worker SIGKILLed."""
    from optuna.trial import TrialState

    journal = tmp_path / "journal.log"
    cmd = [sys.executable, "-m", "mapograph.cli", "tune", "--env", ENV, "--trials", "3",
           "--workers", "2", "--steps", "3072", "--num-envs", "8", "--storage",
           f"journal:{journal}", "--study", "s", "--out", str(tmp_path / "out")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim, deadline = None, time.time() + 180
    while victim is None and time.time() < deadline and proc.poll() is None:
        running = [t for t in _journal_trials(journal, "s") if t.state == TrialState.RUNNING]
        with_pid = [t for t in running if t.user_attrs.get("worker_pid")]
        if with_pid:
            victim = (with_pid[0].number, with_pid[0].user_attrs["worker_pid"])
            os.kill(victim[1], signal.SIGKILL)
        time.sleep(0.05)
    out, err = proc.communicate(timeout=300)
    assert victim is not None, "no worker was ever seen running a trial"
    assert proc.returncode == 0, err
    summary = json.loads(out[out.index("{") :])
    assert summary["trials"]["worker_died"] == 1 and summary["trials"]["retried"] == 1
    assert (
        summary["trials"]["lost"] == 0
        and summary["trials"]["complete"] + summary["trials"]["pruned"] >= 3
    )
    assert "1 trial(s) failed, 1 of them because their worker died" in err
    trials = _journal_trials(journal, "s")
    killed = trials[victim[0]]
    assert killed.state == TrialState.FAIL and "died" in killed.system_attrs["mapograph_failure"]
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == victim[0]]
    assert retry and retry[0].params == killed.params and retry[0].state != TrialState.FAIL


SLOW_WORKER = textwrap.dedent(
    """
    import importlib.util, os, sys, time
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState
    # only optuna and mapograph's storage module: the worker starts in about a second
    spec = importlib.util.spec_from_file_location("storage", sys.argv[2])
    storage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(storage)

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)  # as the Objective: parameters, then the pid
        trial.set_user_attr("worker_pid", os.getpid())
        time.sleep(0.3)
        return x

    study = optuna.load_study(study_name="s", storage=storage.resolve_storage(sys.argv[1]))
    study.optimize(objective, callbacks=[MaxTrialsCallback(int(sys.argv[3]),
                   states=(TrialState.COMPLETE, TrialState.PRUNED))])
    """
)


class WorkerProcess:
    """A worker as a plain subprocess, with the Process interface ``supervise`` uses."""

    def __init__(self, args: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.popen = subprocess.Popen([sys.executable, "-c", SLOW_WORKER, *args], env=env)
        self.pid = self.popen.pid

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def join(self) -> None:
        self.popen.wait()

    @property
    def exitcode(self) -> int | None:
        return self.popen.returncode  # -9 after SIGKILL, as multiprocessing reports it


def test_the_parent_fails_a_killed_workers_trial_at_once_and_retries_it(tmp_path):
    """Journal storage has no heartbeat: only the parent's watch saves the trial."""
    import optuna
    from optuna.trial import TrialState

    from mapograph.tune import resolve_storage, supervise, trial_accounting

    url = f"journal:{tmp_path / 'journal.log'}"
    study = optuna.create_study(storage=resolve_storage(url), study_name="s")
    module = str(REPO / "mapograph" / "tune" / "_storage.py")
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        started.append(WorkerProcess([url, module, "4"]))
        return started[-1]

    killed: list[int] = []

    def killer() -> None:  # SIGKILL the first worker as soon as it runs a trial
        deadline = time.time() + 120
        while time.time() < deadline:
            for t in study.get_trials(states=(TrialState.RUNNING,)):
                if t.user_attrs.get("worker_pid") == started[0].pid:
                    killed.append(t.number)
                    os.kill(started[0].pid, signal.SIGKILL)
                    return
            time.sleep(0.01)

    import threading

    thread = threading.Thread(target=killer)
    thread.start()
    report = supervise(start, 2, study, n_trials=4, poll_s=0.05)
    thread.join()
    assert killed, "the worker was never seen running a trial"
    assert report["dead_workers"] == [-signal.SIGKILL]
    assert report["failed_by_dead_workers"] == killed
    trials = study.get_trials()
    victim = trials[killed[0]]
    assert victim.state == TrialState.FAIL
    assert "died" in victim.system_attrs["mapograph_failure"]
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == killed[0]]
    assert len(retry) == 1 and retry[0].params == victim.params
    assert retry[0].state == TrialState.COMPLETE
    counts = trial_accounting(study)
    assert (counts["worker_died"], counts["retried"], counts["lost"]) == (1, 1, 0)
    assert counts["complete"] >= 4 and counts["running"] == 0


def test_tune_exits_non_zero_and_says_so_when_a_trial_was_lost(tmp_path, capsys):
    import optuna

    from mapograph.tune import create_study, resolve_storage
    from mapograph.tune._workers import fail_trials, trials_of

    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = create_study(resolve_storage(url), "s", False)
    orphan = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    orphan.set_user_attr("worker_pid", 999_999)
    fail_trials(study, trials_of(study, 999_999), "worker died", max_retry=0)  # never retried
    code = main(["tune", "--env", ENV, "--trials", "1", "--steps", "512", "--num-envs", "8",
                 "--storage", url, "--study", "s", "--out", str(tmp_path / "out")])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 3
    summary = json.loads(out[out.index("{") :])
    assert summary["trials"]["lost"] == 1 and summary["trials"]["complete"] >= 1
    assert "1 trial(s) lost" in err


def test_trial_accounting_counts_a_lost_trial_until_its_retry_finishes(tmp_path):
    import optuna

    from mapograph.tune import resolve_storage, trial_accounting
    from mapograph.tune._workers import fail_trials, trials_of

    study = optuna.create_study(storage=resolve_storage(None, tmp_path), direction="maximize")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr("worker_pid", 999_999)
    done = study.ask()
    study.tell(done, 1.0)
    assert fail_trials(study, trials_of(study, 999_999), "worker died") == [trial.number]
    counts = trial_accounting(study)
    assert (counts["worker_died"], counts["retried"], counts["lost"]) == (1, 1, 1)
    retry = study.ask()  # the enqueued retry runs next, with the same parameters
    assert retry.params == {"x": trial.params["x"]}
    study.tell(retry, 0.5)
    counts = trial_accounting(study)
    assert (counts["worker_died"], counts["lost"], counts["complete"]) == (1, 0, 2)


CREATOR = textwrap.dedent(
    """
    import importlib.util, sys, time
    from pathlib import Path
    # only optuna and mapograph's storage module: joiners start fast and race for real
    spec = importlib.util.spec_from_file_location("storage", sys.argv[3])
    storage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(storage)
    barrier = Path(sys.argv[2])
    (barrier / sys.argv[4]).touch()
    while len(list(barrier.iterdir())) < int(sys.argv[5]):
        time.sleep(0.001)
    study = storage.create_or_load_study(
        storage.resolve_storage(sys.argv[1]), study_name="joined", direction="maximize"
    )
    print(study.study_name)
    """
)


def test_processes_joining_a_fresh_sqlite_study_at_once_all_succeed(tmp_path):
    url, barrier, n = f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path / "barrier", 4
    barrier.mkdir()
    module = REPO / "mapograph" / "tune" / "_storage.py"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CREATOR, url, str(barrier), str(module), str(i), str(n)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "joined"


def test_sigterm_stops_a_cli_run_as_ctrl_c_does_and_resume_continues(tmp_path):
    """A scheduler's SIGTERM ends ``mapograph train`` with the interrupted message (exit
    143), no half-written checkpoint file, and a checkpoint that ``resume`` continues
    (the default action killed the process on the spot, without either)."""
    out = tmp_path / "run"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("rollout_length: 16\ncheckpoint_every: 1\ntensorboard: false\n")
    args = ["train", "--env", "coordination:chain-4", "--steps", "10000000", "--num-envs", "4"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mapograph.cli", *args, "--config", str(cfg), "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "checkpoint.pt").exists():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted" in err and f"mapograph resume {out}" in err
    assert not list(out.glob("*.tmp"))
    done = load_checkpoint(out)["env_steps"]
    assert main(["resume", str(out), "--steps", str(done + 64), "--eval-episodes", "0"]) == 0
    assert load_checkpoint(out)["env_steps"] > done
