"""Env copies in worker processes: :class:`WorkerVectorEnv` and the :class:`SingleCopyEnv` protocol.

Some simulators run one engine per process (Google Research Football) or are
slow pure-Python code. :class:`WorkerVectorEnv` spreads ``num_envs`` copies of
such an env over ``num_workers`` processes (each worker holds one or more
copies), steps them in parallel (commands go to every worker before any reply
is read) and stacks the replies into one :class:`~mapograph.envs.TimeStep`.

Shutdown is clean in every way a run can end: :meth:`WorkerVectorEnv.close`
(safe to call twice), garbage collection and interpreter exit (a
``weakref.finalize`` hook), Ctrl-C (workers ignore SIGINT; the parent shuts
them down and re-raises), and a worker that dies or hangs: the parent polls
its pipes with a timeout, checks that every worker is alive, and raises
:class:`~mapograph.MapographError` naming the env id, the worker and the
command instead of waiting forever.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import traceback
import weakref
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from mapograph._errors import MapographError
from mapograph.envs._base import MultiAgentEnv
from mapograph.envs._types import EnvSpec, TimeStep

__all__ = ["SingleCopyEnv", "WorkerError", "WorkerVectorEnv"]

# Spawned workers import the script that started them (as ``__mp_main__``) before they
# run: top-level code that builds a worker env then runs again inside every worker.
_MAIN_GUARD_HINT = 'the workers import the main script again: put its top-level code under `if __name__ == "__main__":`'


def _importing_main_in_worker() -> bool:
    """Whether this process is a spawned worker still importing the parent's main script."""
    return bool(getattr(mp.current_process(), "_inheriting", False))


@runtime_checkable
class SingleCopyEnv(Protocol):
    """One copy of a cooperative multi-agent env, the unit a worker process steps.

    Arrays are NumPy; ``N`` is ``spec.n_agents``.

    * ``spec``: the :class:`~mapograph.envs.EnvSpec` of the copy.
    * ``reset(seed)`` starts an episode and returns a dict with ``"obs"``
      ``[N, obs_dim]``, ``"state"`` ``[state_dim]`` and ``"avail"``
      ``[N, n_actions]`` (bool). ``seed`` is an int on the first reset of a copy
      and ``None`` afterwards (continue the copy's own random stream).
    * ``step(actions)`` takes an int array ``[N]`` and returns
      ``(obs, state, avail, reward, terminated, truncated, info)``: the arrays as
      in ``reset``, the team reward (float), whether the episode ended
      (``terminated``) or was cut by a time limit (``truncated``), and a dict
      whose numeric scalar entries are reported in ``TimeStep.info``. Box action
      spaces (``spec.continuous``) get a float array ``[N, d]`` instead.
    * ``close()`` releases the simulator.
    * optional class attribute ``report_final_state = True``: the worker keeps the
      state a copy reached before its auto-reset (``TimeStep.final_state``), so
      truncated episodes can be bootstrapped.
    """

    spec: EnvSpec

    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]: ...

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, bool, bool, dict]: ...

    def close(self) -> None: ...


class WorkerError(MapographError, RuntimeError):
    """A worker process died, hung or raised; the message names the env and the worker."""


# ---------------------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------------------


def _numeric_info(info: dict) -> dict[str, float]:
    out = {}
    for key, value in info.items():
        if isinstance(value, bool | int | float | np.bool_ | np.integer | np.floating):
            out[key] = float(value)
        elif isinstance(value, np.ndarray) and value.size == 1:
            out[key] = float(value.reshape(()))
    return out


class _Copies:
    """The copies held by one worker, with auto-reset and the spec's time limit."""

    def __init__(self, factory: Callable[[], SingleCopyEnv], n_copies: int) -> None:
        self.envs = [factory() for _ in range(n_copies)]
        self.spec = self.envs[0].spec
        self.report_final_state = bool(getattr(self.envs[0], "report_final_state", False))
        self.t = np.zeros(n_copies, dtype=np.int64)

    def reset(self, seeds: Sequence[int | None]) -> tuple:
        firsts = [env.reset(seed) for env, seed in zip(self.envs, seeds)]
        self.t[:] = 0
        k = len(self.envs)
        return (
            np.stack([f["obs"] for f in firsts]).astype(np.float32, copy=False),
            np.stack([f["state"] for f in firsts]).astype(np.float32, copy=False),
            np.stack([f["avail"] for f in firsts]).astype(bool, copy=False),
            np.zeros(k, np.float32),
            np.zeros(k, bool),
            np.zeros(k, bool),
            {},
            None,
        )

    def step(self, actions: np.ndarray) -> tuple:
        k = len(self.envs)
        obs, state, avail, final = [], [], [], []
        reward = np.zeros(k, np.float32)
        done = np.zeros(k, bool)
        truncated = np.zeros(k, bool)
        infos: dict[str, np.ndarray] = {}
        self.t += 1
        for i, env in enumerate(self.envs):
            o, s, a, r, term, trunc, info = env.step(actions[i])
            term, trunc = bool(term), bool(trunc)
            if not term and self.t[i] >= self.spec.episode_limit:
                trunc = True
            reward[i] = r
            final.append(s)
            if term or trunc:
                first = env.reset(None)
                o, s, a = first["obs"], first["state"], first["avail"]
                self.t[i] = 0
            done[i] = term or trunc
            truncated[i] = trunc and not term
            for key, value in _numeric_info(info).items():
                infos.setdefault(key, np.full(k, np.nan, np.float32))[i] = value
            obs.append(o)
            state.append(s)
            avail.append(a)
        return (
            np.stack(obs).astype(np.float32, copy=False),
            np.stack(state).astype(np.float32, copy=False),
            np.stack(avail).astype(bool, copy=False),
            reward,
            done,
            truncated,
            infos,
            np.stack(final).astype(np.float32, copy=False) if self.report_final_state else None,
        )

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _worker_main(conn: Connection, factory: Callable[[], SingleCopyEnv], n_copies: int) -> None:
    """Loop of one worker process: build the copies, then answer commands until ``close``."""
    # Ctrl-C reaches the whole process group: the parent decides, the workers ignore it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    copies = None
    try:
        copies = _Copies(factory, n_copies)
        conn.send(("ok", copies.spec))
        while True:
            try:
                cmd, arg = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                break
            if cmd == "step":
                conn.send(("ok", copies.step(arg)))
            elif cmd == "reset":
                conn.send(("ok", copies.reset(arg)))
            elif cmd == "close":
                conn.send(("ok", None))
                break
            elif cmd == "_crash":  # test hook: die the hard way
                os.kill(os.getpid(), signal.SIGKILL)
            else:
                conn.send(("error", f"unknown command {cmd!r}"))
    except Exception:  # report the traceback to the parent instead of dying silently
        try:
            conn.send(("error", traceback.format_exc()))
        except (BrokenPipeError, OSError):
            pass
    finally:
        if copies is not None:
            try:
                copies.close()
            except Exception:
                pass
        conn.close()


# ---------------------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------------------


def _shutdown(processes: list, conns: list, grace: float = 5.0) -> None:
    """Ask every worker to stop, then terminate / kill stragglers. Idempotent."""
    for conn in conns:
        try:
            conn.send(("close", None))
        except (BrokenPipeError, OSError, EOFError):
            pass
    deadline = time.monotonic() + grace
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
            proc.join(1.0)
        if proc.is_alive():
            proc.kill()
            proc.join(1.0)
    for conn in conns:
        conn.close()
    conns.clear()
    processes.clear()


def split_copies(num_envs: int, num_workers: int) -> list[int]:
    """How many copies each worker holds: as even as possible, earlier workers first."""
    base, extra = divmod(num_envs, num_workers)
    return [base + (1 if w < extra else 0) for w in range(num_workers)]


class WorkerVectorEnv(MultiAgentEnv):
    """``num_envs`` copies of a :class:`SingleCopyEnv` stepped in worker processes.

    Args:
        factory: picklable callable with no arguments that builds one copy (a
            module-level function or a ``functools.partial`` of one). It runs inside
            the workers only; the parent never builds a copy.
        num_envs: number of copies ``E``.
        seed: copy ``e`` is reset with seed ``seed + e`` the first time, later
            episodes continue that copy's own random stream.
        num_workers: worker processes (default ``min(num_envs, os.cpu_count())``);
            copies are spread as evenly as possible, a worker steps its copies in turn.
        env_id: name used in error messages (e.g. ``"football:academy_corner"``).
        timeout: seconds to wait for a reply before declaring a worker hung
            (building the copies gets ``start_timeout``).
        start_timeout: seconds to wait for the workers to build their copies.
        context: multiprocessing start method, ``"spawn"`` (default) or
            ``"forkserver"``. ``fork`` is refused: simulators and torch threads do not
            survive it reliably. Scripts using this class need the usual
            ``if __name__ == "__main__":`` guard.

    Every copy resets itself when its episode ends (``TimeStep.done``), also when it
    reaches ``spec.episode_limit`` steps (then ``TimeStep.truncated``).
    ``TimeStep.info`` holds the numeric scalar entries of the copies' info dicts as
    float32 ``[E]`` tensors, NaN where a copy did not report that key this step.

    Raises:
        WorkerError: a worker died (e.g. killed, segfault), did not answer within
            ``timeout`` or raised; the message names ``env_id``, the worker and its
            pid. All workers are shut down before it is raised.
    """

    def __init__(
        self,
        factory: Callable[[], SingleCopyEnv],
        num_envs: int,
        seed: int = 0,
        num_workers: int | None = None,
        env_id: str = "worker env",
        timeout: float = 120.0,
        start_timeout: float = 300.0,
        context: str = "spawn",
    ) -> None:
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if num_workers is None:
            num_workers = min(num_envs, os.cpu_count() or 1)
        if not isinstance(num_workers, int) or not 1 <= num_workers <= num_envs:
            raise ValueError(
                f"num_workers must be an int in [1, num_envs={num_envs}], got {num_workers!r}"
            )
        if context not in ("spawn", "forkserver"):
            raise ValueError(f"context must be 'spawn' or 'forkserver', got {context!r}")
        if _importing_main_in_worker():
            raise WorkerError(
                f"env {env_id!r} was built while a worker process imported the main script; "
                f"{_MAIN_GUARD_HINT}"
            )
        if timeout <= 0 or start_timeout <= 0:
            raise ValueError(f"timeouts must be positive, got {timeout!r}, {start_timeout!r}")
        self.num_envs = num_envs
        self.num_workers = num_workers
        self.env_id = env_id
        self.timeout = float(timeout)
        self.seed = int(seed)
        self._copies = split_copies(num_envs, num_workers)
        self._bounds = np.cumsum([0, *self._copies])
        self._seeded = False
        self._closed = False
        self._processes: list = []
        self._conns: list[Connection] = []
        # Registered before the workers start so that an error half-way cleans up too.
        self._finalizer = weakref.finalize(self, _shutdown, self._processes, self._conns)
        ctx = mp.get_context(context)
        for w, n_copies in enumerate(self._copies):
            parent_conn, child_conn = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main,
                args=(child_conn, factory, n_copies),
                name=f"mapograph-{env_id}-worker-{w}",
                daemon=True,
            )
            try:
                proc.start()
            except BaseException:
                self.close()
                raise
            child_conn.close()  # so that the worker's death shows up as EOF here
            self._processes.append(proc)
            self._conns.append(parent_conn)
        specs = self._gather("start", start_timeout)
        if any(s != specs[0] for s in specs):
            self.close()
            raise WorkerError(f"{env_id}: workers built copies with different specs: {specs}")
        self.spec: EnvSpec = specs[0]

    # -- communication ------------------------------------------------------------------

    def _describe(self, w: int) -> str:
        proc = self._processes[w]
        return f"worker {w} (pid {proc.pid}) of env {self.env_id!r}"

    def _fail(self, message: str) -> None:
        self.close()
        raise WorkerError(message)

    def _send_all(self, cmd: str, args: Sequence[Any]) -> None:
        if self._closed:
            raise WorkerError(f"env {self.env_id!r} is closed")
        for w, (conn, arg) in enumerate(zip(self._conns, args)):
            try:
                conn.send((cmd, arg))
            except (BrokenPipeError, OSError) as exc:
                self._fail(
                    f"{self._describe(w)} cannot receive {cmd!r}: {exc}; worker exit code {self._processes[w].exitcode}"
                )

    def _gather(self, cmd: str, timeout: float) -> list[Any]:
        """Read one reply per worker; raise instead of hanging on a dead or stuck worker."""
        replies: list[Any] = [None] * len(self._conns)
        try:
            for w, conn in enumerate(self._conns):
                deadline = time.monotonic() + timeout
                while not conn.poll(0.05):
                    proc = self._processes[w]
                    if not proc.is_alive():
                        self._fail(self._death_message(w, cmd))
                    if time.monotonic() > deadline:
                        self._fail(
                            f"{self._describe(w)} did not answer {cmd!r} within {timeout:.0f} s"
                            + self._start_hint(cmd)
                        )
                try:
                    status, payload = conn.recv()
                except (EOFError, OSError):
                    self._processes[w].join(1.0)
                    self._fail(self._death_message(w, cmd))
                if status != "ok":
                    self._fail(f"{self._describe(w)} raised during {cmd!r}:\n{payload}")
                replies[w] = payload
        except KeyboardInterrupt:
            self.close()
            raise
        return replies

    def _death_message(self, w: int, cmd: str) -> str:
        code = self._processes[w].exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return f"{self._describe(w)} died ({how}) during {cmd!r}" + self._start_hint(cmd)

    @staticmethod
    def _start_hint(cmd: str) -> str:
        """Why a worker may fail to start: a script without a ``__main__`` guard."""
        return f" (if the script has no main guard: {_MAIN_GUARD_HINT})" if cmd == "start" else ""

    # -- public API ----------------------------------------------------------------------

    def _timestep(self, replies: list[tuple]) -> TimeStep:
        obs, state, avail, reward, done, truncated = (
            torch.from_numpy(np.concatenate([r[i] for r in replies])) for i in range(6)
        )
        keys = sorted({k for r in replies for k in r[6]})
        info = {}
        for key in keys:
            parts = [
                r[6].get(key, np.full(n, np.nan, np.float32)) for r, n in zip(replies, self._copies)
            ]
            info[key] = torch.from_numpy(np.concatenate(parts))
        final_state = None
        if replies[0][7] is not None:
            final_state = torch.from_numpy(np.concatenate([r[7] for r in replies]))
        return TimeStep(
            obs=obs,
            state=state,
            avail_actions=avail,
            reward=reward,
            done=done,
            truncated=truncated,
            info=info,
            final_state=final_state,
        )

    def reset(self) -> TimeStep:
        """Reset every copy (seeded ``seed + e`` the first time) and return the first step."""
        args = []
        for w in range(self.num_workers):
            lo, hi = self._bounds[w], self._bounds[w + 1]
            args.append([None if self._seeded else self.seed + e for e in range(lo, hi)])
        self._send_all("reset", args)
        replies = self._gather("reset", self.timeout)
        self._seeded = True
        return self._timestep(replies)

    def step(self, actions: torch.Tensor) -> TimeStep:
        """Step every copy with ``actions`` (LongTensor ``[E, N]``, or float ``[E, N, d]`` for
        Box actions); done copies auto-reset."""
        actions = self.check_actions(actions).numpy()
        self._send_all("step", np.split(actions, self._bounds[1:-1]))
        return self._timestep(self._gather("step", self.timeout))

    def close(self) -> None:
        """Stop the workers (ask, then terminate what does not exit). Safe to call twice."""
        self._closed = True
        self._finalizer()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran or a worker failure shut the env down."""
        return self._closed

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers (empty once closed)."""
        return [p.pid for p in self._processes]

    def __repr__(self) -> str:
        return (
            f"WorkerVectorEnv({self.env_id!r}, num_envs={self.num_envs}, "
            f"num_workers={self.num_workers}, closed={self._closed})"
        )
