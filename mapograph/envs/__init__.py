"""Vectorized cooperative multi-agent environments.

``make("family:task", num_envs=E, seed=s)`` builds one; every env returns
:class:`TimeStep` objects of torch tensors batched over ``E`` copies and ``N`` agents.
Optional backends (mpe, vmas, mamujoco, football, smax, smacv2) are imported only when used.
"""

from mapograph.envs._base import MultiAgentEnv, MultiAgentEnvProtocol, check_actions
from mapograph.envs._registry import (
    ENV_FAMILIES,
    UnknownEnvError,
    families,
    make,
    register,
    split_env_id,
)
from mapograph.envs._subprocess import SingleCopyEnv, WorkerError, WorkerVectorEnv
from mapograph.envs._types import EnvSpec, TimeStep

__all__ = [
    "ENV_FAMILIES",
    "EnvSpec",
    "MultiAgentEnv",
    "MultiAgentEnvProtocol",
    "SingleCopyEnv",
    "TimeStep",
    "UnknownEnvError",
    "WorkerError",
    "WorkerVectorEnv",
    "check_actions",
    "families",
    "make",
    "register",
    "split_env_id",
]

from mapograph.envs._contextual import ContextualEnv  # noqa: E402
from mapograph.envs._coordination import CoordinationEnv, layout_dag  # noqa: E402

__all__ += ["ContextualEnv", "CoordinationEnv", "layout_dag"]
