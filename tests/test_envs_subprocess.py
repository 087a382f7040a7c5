"""WorkerVectorEnv: copies in worker processes, stacking, auto-reset, seeding and clean failure."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from mapograph import MapographError
from mapograph.envs import EnvSpec, SingleCopyEnv, WorkerError, WorkerVectorEnv
from mapograph.envs._subprocess import split_copies

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="process checks read /proc")


class GuessGame:
    """A tiny cooperative game: each step every agent should pick the hidden target.

    The target of each step is drawn from the copy's seeded stream, the episode
    length too (between 2 and 6 steps); reward = fraction of agents that guessed it.
    ``fail_at``/``hang_at`` make the copy raise or sleep at that step (for the tests).
    """

    def __init__(
        self, n_agents: int = 2, n_actions: int = 3, limit: int = 50, fail_at=None, hang_at=None
    ) -> None:
        self.spec = EnvSpec(
            n_agents=n_agents,
            obs_dim=n_actions + n_agents,
            state_dim=n_actions,
            n_actions=n_actions,
            episode_limit=limit,
        )
        self.rng = np.random.default_rng(0)
        self.fail_at, self.hang_at = fail_at, hang_at
        self.total_steps = 0

    def _observe(self) -> dict:
        n, a = self.spec.n_agents, self.spec.n_actions
        hint = np.eye(a, dtype=np.float32)[self.target]
        obs = np.concatenate([np.tile(hint, (n, 1)), np.eye(n, dtype=np.float32)], axis=1)
        avail = np.ones((n, a), dtype=bool)
        avail[:, -1] = self.t % 2 == 0  # the last action is available on even steps only
        return {"obs": obs, "state": hint, "avail": avail}

    def reset(self, seed=None) -> dict:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        self.length = int(self.rng.integers(2, 7))
        self.target = int(self.rng.integers(self.spec.n_actions))
        return self._observe()

    def step(self, actions: np.ndarray):
        self.total_steps += 1
        if self.total_steps == self.fail_at:
            raise ValueError("GuessGame was asked to fail here")
        if self.total_steps == self.hang_at:
            time.sleep(60)
        reward = float(np.mean(np.asarray(actions) == self.target))
        self.t += 1
        terminated = self.t >= self.length
        info = {"hits": reward * self.spec.n_agents} if terminated else {"step": self.t}
        self.target = int(self.rng.integers(self.spec.n_actions))
        first = self._observe()
        return first["obs"], first["state"], first["avail"], reward, terminated, False, info

    def close(self) -> None:
        pass


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_dead(pids, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def _serial_reference(num_envs: int, seed: int, actions: list[np.ndarray], **kw):
    """Step the same copies in this process, with the wrapper's documented semantics."""
    envs = [GuessGame(**kw) for _ in range(num_envs)]
    firsts = [env.reset(seed + e) for e, env in enumerate(envs)]
    t = np.zeros(num_envs, int)
    out = [np.stack([f["obs"] for f in firsts])]
    rewards, dones, truncs = [], [], []
    for act in actions:
        obs, r, d, tr = [], [], [], []
        t += 1
        for e, env in enumerate(envs):
            o, _, _, rew, term, trunc, _ = env.step(act[e])
            trunc = trunc or (not term and t[e] >= env.spec.episode_limit)
            if term or trunc:
                o = env.reset(None)["obs"]
                t[e] = 0
            obs.append(o)
            r.append(rew)
            d.append(term or trunc)
            tr.append(trunc and not term)
        out.append(np.stack(obs))
        rewards.append(r)
        dones.append(d)
        truncs.append(tr)
    return out, np.array(rewards), np.array(dones), np.array(truncs)


def _random_actions(steps: int, num_envs: int, n_agents: int, n_actions: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.integers(n_actions, size=(num_envs, n_agents)) for _ in range(steps)]


def test_split_copies_even_and_complete():
    assert split_copies(5, 2) == [3, 2]
    assert split_copies(4, 4) == [1, 1, 1, 1]
    assert sum(split_copies(17, 3)) == 17


def test_game_follows_protocol():
    assert isinstance(GuessGame(), SingleCopyEnv)


def test_matches_serial_copies_and_stacks_in_order():
    num_envs, steps = 5, 12
    actions = _random_actions(steps, num_envs, 2, 3)
    ref_obs, ref_r, ref_d, ref_tr = _serial_reference(num_envs, 7, actions)
    with WorkerVectorEnv(GuessGame, num_envs=num_envs, seed=7, num_workers=2) as env:
        env.check_avail = False  # random actions ignore the mask: this test is about order
        assert env.spec == GuessGame().spec
        ts = env.reset()
        assert ts.obs.shape == (5, 2, 5) and ts.obs.dtype == torch.float32
        assert ts.state.shape == (5, 3) and ts.state.dtype == torch.float32
        assert ts.avail_actions.shape == (5, 2, 3) and ts.avail_actions.dtype == torch.bool
        assert ts.reward.shape == (5,) and not ts.done.any()
        np.testing.assert_array_equal(ts.obs.numpy(), ref_obs[0])
        saw_done = saw_info = False
        for k, act in enumerate(actions):
            ts = env.step(torch.as_tensor(act))
            np.testing.assert_array_equal(ts.obs.numpy(), ref_obs[k + 1])
            np.testing.assert_allclose(ts.reward.numpy(), ref_r[k])
            np.testing.assert_array_equal(ts.done.numpy(), ref_d[k])
            np.testing.assert_array_equal(ts.truncated.numpy(), ref_tr[k])
            assert ts.reward.dtype == torch.float32 and ts.done.dtype == torch.bool
            # info: numeric entries stacked over copies, NaN where a copy did not report them
            hits = ts.info["hits"] if "hits" in ts.info else torch.full((5,), float("nan"))
            assert torch.equal(torch.isnan(hits), ~ts.done)
            if ts.done.any():
                saw_done = True
                np.testing.assert_allclose(hits[ts.done].numpy(), 2 * ref_r[k][ref_d[k]])
            saw_info |= "step" in ts.info
        assert saw_done and saw_info


def test_reproducible_by_seed():
    actions = _random_actions(8, 3, 2, 3, seed=1)

    def run(seed):
        with WorkerVectorEnv(GuessGame, num_envs=3, seed=seed, num_workers=1) as env:
            env.check_avail = False  # random actions ignore the mask
            obs = [env.reset().obs]
            obs += [env.step(torch.as_tensor(a)).obs for a in actions]
        return torch.stack(obs)

    first = run(3)
    assert torch.equal(first, run(3))
    assert not torch.equal(first, run(4))


def test_wrapper_enforces_episode_limit_as_truncation():
    factory = functools.partial(GuessGame, limit=1)  # GuessGame episodes last 2-6 steps
    with WorkerVectorEnv(factory, num_envs=2, seed=0, num_workers=1) as env:
        env.reset()
        ts = env.step(torch.zeros(2, 2, dtype=torch.long))
        assert ts.done.all() and ts.truncated.all()


def test_bad_actions_and_arguments_raise_value_error():
    with pytest.raises(ValueError, match="num_workers"):
        WorkerVectorEnv(GuessGame, num_envs=2, num_workers=3)
    with pytest.raises(ValueError, match="context"):
        WorkerVectorEnv(GuessGame, num_envs=2, context="fork")
    with WorkerVectorEnv(GuessGame, num_envs=2, num_workers=1) as env:
        env.reset()
        with pytest.raises(ValueError, match="shape"):
            env.step(torch.zeros(2, 3, dtype=torch.long))
        with pytest.raises(ValueError, match=r"\[0, 2\]"):
            env.step(torch.full((2, 2), 3))


def test_killed_worker_raises_clear_error_quickly_and_cleans_up():
    env = WorkerVectorEnv(GuessGame, num_envs=4, num_workers=2, env_id="guess:test")
    env.reset()
    pids = env.pids
    os.kill(pids[1], signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(WorkerError) as err:
        env.step(torch.zeros(4, 2, dtype=torch.long))
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "guess:test" in message and "worker 1" in message and str(pids[1]) in message
    assert "signal 9" in message
    assert isinstance(err.value, MapographError)
    assert env.closed and _wait_dead(pids)
    with pytest.raises(WorkerError, match="closed"):
        env.step(torch.zeros(4, 2, dtype=torch.long))


def test_worker_exception_is_reported_with_its_traceback():
    factory = functools.partial(GuessGame, fail_at=2)
    env = WorkerVectorEnv(factory, num_envs=2, num_workers=2, env_id="guess:fail")
    env.reset()
    pids = env.pids
    env.step(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(WorkerError, match="(?s)guess:fail.*asked to fail here"):
        env.step(torch.zeros(2, 2, dtype=torch.long))
    assert _wait_dead(pids)


def test_factory_failure_at_start_is_reported():
    factory = functools.partial(GuessGame, n_agents=0)  # EnvSpec rejects it in the worker
    with pytest.raises(WorkerError, match="(?s)worker 0.*n_agents must be a positive int"):
        WorkerVectorEnv(factory, num_envs=1, num_workers=1)


def test_hung_worker_times_out():
    factory = functools.partial(GuessGame, hang_at=1)
    env = WorkerVectorEnv(factory, num_envs=1, num_workers=1, timeout=1.0, env_id="guess:hang")
    env.reset()
    pids = env.pids
    start = time.monotonic()
    with pytest.raises(WorkerError, match="did not answer 'step' within 1 s"):
        env.step(torch.zeros(1, 2, dtype=torch.long))
    assert time.monotonic() - start < 10
    assert _wait_dead(pids)


def test_close_is_idempotent_and_garbage_collection_stops_workers():
    env = WorkerVectorEnv(GuessGame, num_envs=2, num_workers=2, context="forkserver")
    env.reset()
    pids = env.pids
    env.close()
    env.close()
    assert _wait_dead(pids)

    env = WorkerVectorEnv(GuessGame, num_envs=2, num_workers=2)
    pids = env.pids
    del env
    assert _wait_dead(pids)


_CTRL_C_SCRIPT = textwrap.dedent(
    """
    import faulthandler, signal, sys, time, torch
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test's diagnosis on a hang
    # a program started from a terminal has Python's Ctrl-C handler; one started by a
    # pytest that runs in the background (`pytest &` in a script) inherits SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, {tests!r})
    from test_envs_subprocess import GuessGame
    from mapograph.envs import WorkerVectorEnv

    if __name__ == "__main__":
        env = WorkerVectorEnv(GuessGame, num_envs=2, num_workers=2)
        env.reset()
        print(" ".join(map(str, env.pids)), flush=True)
        while True:
            env.step(torch.zeros(2, 2, dtype=torch.long))
    """
)


def test_ctrl_c_stops_parent_and_workers(tmp_path):
    script = tmp_path / "ctrl_c.py"
    script.write_text(_CTRL_C_SCRIPT.format(tests=os.path.dirname(__file__)))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2, proc.stderr.read()
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        try:
            _, err = proc.communicate(timeout=60)  # generous: a loaded machine is slow to unwind
        except subprocess.TimeoutExpired:  # say where the parent is stuck, then fail
            os.kill(proc.pid, signal.SIGUSR1)
            time.sleep(1.0)
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            inherited = (
                signal.getsignal(signal.SIGINT),
                signal.pthread_sigmask(signal.SIG_BLOCK, []),
            )
            pytest.fail(
                f"the parent did not exit within 60 s of Ctrl-C (this process's SIGINT handler "
                f"and blocked signals: {inherited}); its output and threads:\n{err[-6000:]}"
            )
        assert "KeyboardInterrupt" in err
        assert _wait_dead(pids)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


_UNGUARDED_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_envs_subprocess import GuessGame
    from mapograph.envs import WorkerVectorEnv

    print("top level ran", flush=True)
    env = WorkerVectorEnv(GuessGame, num_envs=1, num_workers=1, start_timeout=60)
    env.close()
    """
)


def test_a_script_without_main_guard_fails_fast_naming_the_guard(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(_UNGUARDED_SCRIPT.format(tests=os.path.dirname(__file__)))
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert time.monotonic() - start < 50  # not the 60 s start timeout
    assert proc.returncode != 0
    # the parent's error, one line: the worker died while starting, and why
    parent = [
        line
        for line in proc.stderr.splitlines()
        if line.startswith("mapograph.envs._subprocess.WorkerError") and "during 'start'" in line
    ]
    assert parent, proc.stderr[-2000:]
    assert 'if __name__ == "__main__":' in parent[-1]
    # the worker's own error says what happened inside it
    assert "was built while a worker process imported the main script" in proc.stderr
