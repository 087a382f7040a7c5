"""Tune partitions with Optuna.

``optimize(env_id, n_trials, storage=None, ...)`` runs a study whose trials
train B2MAPO with parameters from a search space (``"partition"``, ``"full"``
or your own function), report evaluations to a pruner, and write the best
trial as ``best.yaml`` plus plots. Storage: an SQLite file by default,
PostgreSQL (``postgresql://``, extra ``postgres``) for many machines, a journal
file (``journal:PATH``) for several processes on one host.
"""

from mapograph.tune._export import best_trial, config_of, export_best
from mapograph.tune._objective import DivergedError, Objective
from mapograph.tune._optimize import create_study, optimize, run_worker
from mapograph.tune._plots import save_plots
from mapograph.tune._search_space import SPACES, full_space, partition_space, search_space
from mapograph.tune._storage import default_storage_url, resolve_storage
from mapograph.tune._workers import supervise, trial_accounting

__all__ = [
    "SPACES",
    "DivergedError",
    "Objective",
    "best_trial",
    "config_of",
    "create_study",
    "default_storage_url",
    "export_best",
    "full_space",
    "optimize",
    "partition_space",
    "resolve_storage",
    "run_worker",
    "save_plots",
    "search_space",
    "supervise",
    "trial_accounting",
]
