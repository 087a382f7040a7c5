"""Optuna storages: SQLite by default, PostgreSQL for many machines, a journal file for many processes."""

from __future__ import annotations

import random
import time
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from mapograph._imports import require

DEFAULT_DB = "study.db"

#: Seconds after which a journal file lock left by a killed worker is taken over.
JOURNAL_LOCK_GRACE_S = 5


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
        # a worker killed while appending leaves the lock behind: others take it over after
        # JOURNAL_LOCK_GRACE_S seconds (Optuna's default, 30 s, stalls the whole study)
        lock = JournalFileSymlinkLock(str(path), grace_period=JOURNAL_LOCK_GRACE_S)
        return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
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
    if url.startswith("sqlite:///") and url[len("sqlite:///") :] not in ("", ":memory:"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(8):
        try:
            return RDBStorage(
                url,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period or 2 * heartbeat_interval,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=max_retry
                ),
            )
        except Exception as exc:  # sqlalchemy raises many kinds for a bad URL or server
            if attempt < 7 and is_creation_race(exc):
                time.sleep(0.05 * (attempt + 1) + random.random() * 0.1)
                continue  # another process is creating the same database's tables
            message = " ".join(str(exc).split())[:300]
            raise ValueError(f"cannot open the Optuna storage {storage!r}: {message}") from exc
    raise AssertionError("unreachable")


#: What a database says when two processes create the same tables or study at once.
CREATION_RACE = (
    "already exists",
    "unique constraint",
    "alembic_version",
    "database is locked",
    "duplicate key",
    "duplicatedstudyerror",
)


def is_creation_race(exc: BaseException) -> bool:
    """Whether ``exc`` comes from another process creating the same storage or study."""
    text = f"{type(exc).__name__} {exc}".lower()
    return any(marker in text for marker in CREATION_RACE)


def create_or_load_study(storage: optuna.storages.BaseStorage, **kwargs) -> optuna.Study:
    """``optuna.create_study(storage=storage, load_if_exists=True, **kwargs)``, retried on the race.

    Processes that join a new study at the same moment race to create it; the
    loser retries (a few times, with jitter) instead of failing.
    """
    for attempt in range(8):
        try:
            return optuna.create_study(storage=storage, load_if_exists=True, **kwargs)
        except Exception as exc:
            if attempt == 7 or not is_creation_race(exc):
                raise
            time.sleep(0.05 * (attempt + 1) + random.random() * 0.1)
    raise AssertionError("unreachable")
