"""Worker supervision and trial accounting: no trial of a study is silently lost.

A worker process that dies (SIGKILL, out-of-memory killer, segfault) leaves its
trial ``RUNNING`` forever on storages without heartbeats (journal files) and for
the heartbeat's grace period on RDB storages. The parent of local workers
watches their exit codes instead: the moment one dies, its running trials are
failed (system attribute ``mapograph_failure``) and re-enqueued with the same
parameters (Optuna's retry convention: the retry's system attribute
``failed_trial`` names the original), and a replacement worker starts while
work remains. :func:`trial_accounting` then says how many trials failed, were
retried, and were lost (failed by a dead worker with no finished retry).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
FAILURE_ATTR = "mapograph_failure"


def fail_trials(
    study: optuna.Study, trials: list[FrozenTrial], reason: str, max_retry: int = 3
) -> list[int]:
    """Mark ``trials`` failed with ``reason`` and enqueue a retry of each (at most ``max_retry``).

    Returns the numbers of the trials this call failed (one already finished is skipped).
    """
    storage, retry = study._storage, RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
    failed = []
    for trial in trials:
        try:
            storage.set_trial_system_attr(trial._trial_id, FAILURE_ATTR, reason)
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # it finished (or another process failed it) meanwhile
        retry(study, storage.get_trial(trial._trial_id))
        failed.append(trial.number)
    return failed


def trials_of(study: optuna.Study, pid: int | None) -> list[FrozenTrial]:
    """Running trials of the worker with process id ``pid`` (``None``: every running trial)."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return [t for t in running if pid is None or t.user_attrs.get("worker_pid") == pid]


def supervise(
    start: Callable[[], Any],
    workers: int,
    study: optuna.Study,
    n_trials: int,
    max_retry: int = 3,
    poll_s: float = 0.2,
) -> dict[str, Any]:
    """Run ``workers`` processes made by ``start()`` until all exit; fail a dead one's trials.

    A worker that exits with a non-zero code (or a signal) has its running trials
    failed and retried at once; a replacement starts while trials remain to be run
    (at most ``max_retry * workers`` replacements).

    Returns:
        ``{"dead_workers": [exit codes], "failed_by_dead_workers": [trial numbers]}``.
    """
    active = [start() for _ in range(workers)]
    dead: list[int] = []
    failed: list[int] = []
    replacements = 0
    while active:
        time.sleep(poll_s)
        for proc in [p for p in active if not p.is_alive()]:
            active.remove(proc)
            proc.join()
            if proc.exitcode == 0:
                continue
            dead.append(proc.exitcode)
            reason = f"worker process {proc.pid} died (exit code {proc.exitcode})"
            failed += fail_trials(study, trials_of(study, proc.pid), reason, max_retry)
            if replacements < max_retry * workers and _work_remains(study, n_trials):
                replacements += 1
                active.append(start())
    # every worker is gone: a trial still running has no process (killed before it said its pid)
    failed += fail_trials(study, trials_of(study, None), "its worker is gone", max_retry=0)
    return {"dead_workers": dead, "failed_by_dead_workers": failed}


def _work_remains(study: optuna.Study, n_trials: int) -> bool:
    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state in FINISHED for t in trials)
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    return finished < n_trials or waiting > 0


def trial_accounting(study: optuna.Study) -> dict[str, int]:
    """Counts of a study's trials: ``complete``, ``pruned``, ``failed``, ``running``,
    ``waiting``, ``worker_died`` (failed because their process died or went silent),
    ``retried`` (of those, how many were re-enqueued) and ``lost`` (of those, how many
    have no finished retry: their configuration was never evaluated).
    """
    trials = study.get_trials(deepcopy=False)
    by_state = {s: sum(t.state == s for t in trials) for s in TrialState}
    retries: dict[int, list[FrozenTrial]] = {}
    for t in trials:
        origin = t.system_attrs.get("failed_trial")
        if origin is not None:
            retries.setdefault(origin, []).append(t)
    died = [
        t
        for t in trials
        if t.state == TrialState.FAIL
        and (FAILURE_ATTR in t.system_attrs or t.number in retries)
        and "failed_trial" not in t.system_attrs  # count each configuration once
    ]
    lost = [t for t in died if not any(r.state in FINISHED for r in retries.get(t.number, []))]
    return {
        "complete": by_state[TrialState.COMPLETE],
        "pruned": by_state[TrialState.PRUNED],
        "failed": by_state[TrialState.FAIL],
        "running": by_state[TrialState.RUNNING],
        "waiting": by_state[TrialState.WAITING],
        "worker_died": len(died),
        "retried": sum(t.number in retries for t in died),
        "lost": len(lost),
    }
