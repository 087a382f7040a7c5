"""Optuna storages: SQLite by default, PostgreSQL for many machines, a journal file for many processes."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend

from mapograph._imports import require

DEFAULT_DB = "study.db"


def default_storage_url(out_dir: str | Path) -> str:
    """``sqlite:///<out_dir>/study.db``."""
    path = Path(out_dir).absolute() / DEFAULT_DB
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def resolve_storage(
    storage: str | optuna.storages.BaseStorage | None,
    out_dir: str | Path = ".",
    heartbeat_interval: int = 10,
    grace_period: int | None = None,
    max_retry: int = 3,
) -> optuna.storages.BaseStorage:
    """Build the storage a study runs on.

    Args:
        storage: ``None`` (SQLite file ``study.db`` in ``out_dir``), ``sqlite:///path``,
            ``postgresql://user@host:port/db`` (needs the ``postgres`` extra; the
            ``psycopg`` driver is used), ``journal:/path/to/file.log`` (a JournalStorage
            file for several processes on one host), or an Optuna storage object.
        out_dir: where the default SQLite file goes.
        heartbeat_interval: seconds between heartbeats of a running trial (RDB storages).
        grace_period: seconds without heartbeat after which a trial counts as dead
            (default: twice the interval); it is then marked failed and retried.
        max_retry: how often a dead trial is retried (``RetryHeartbeatStaleTrialCallback``).

    Raises:
        ValueError: the URL is not one of the forms above or the database cannot be reached.
    """
    if storage is None:
        storage = default_storage_url(out_dir)
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage
    if not isinstance(storage, str) or not storage:
        raise ValueError(f"storage must be a URL string, got {storage!r}")
    if storage.startswith("journal:"):
        path = Path(storage[len("journal:") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    url = storage
    if url.startswith(("postgresql://", "postgres://")):
        require("psycopg", "postgres", "PostgreSQL storages use the psycopg (v3) driver")
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    elif url.startswith("postgresql+"):
        require("psycopg", "postgres", "PostgreSQL storages use the psycopg (v3) driver")
    elif not url.startswith(("sqlite:///", "mysql")):
        raise ValueError(
            f"unsupported storage {storage!r}: use sqlite:///PATH, postgresql://USER@HOST:PORT/DB "
            "or journal:PATH"
        )
    try:
        return RDBStorage(
            url,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period or 2 * heartbeat_interval,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
        )
    except Exception as exc:  # sqlalchemy raises many kinds for a bad URL or an unreachable server
        raise ValueError(f"cannot open the Optuna storage {storage!r}: {exc}") from exc
