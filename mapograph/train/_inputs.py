"""Validation of what users hand to :meth:`Trainer.act` and :meth:`Trainer.evaluate`.

Time steps may come from any source (an env, a replay, a deployment); their
tensors may be numpy arrays. Anything the policy cannot act on sensibly — a
wrong shape, NaN observations, an agent with no available action — raises a
``ValueError`` that names the field and the env copy, instead of failing deep
inside torch or silently broadcasting.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mapograph._validation import plain_value
from mapograph.envs import EnvSpec, TimeStep

#: Complex dtypes (an env's output must hold real numbers).
_COMPLEX = frozenset({torch.complex32, torch.complex64, torch.complex128})


def is_continuous(spec: EnvSpec) -> bool:
    """Whether the env's actions are continuous (a ``gymnasium.spaces.Box``)."""
    return bool(getattr(spec, "continuous", False))


def as_tensor(name: str, value: Any, device: torch.device) -> torch.Tensor:
    """``value`` (tensor, numpy array or nested list) as a tensor on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (np.ndarray, list, tuple)):
        try:
            return torch.as_tensor(np.asarray(value), device=device)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{name} cannot be read as a tensor: {exc}") from exc
    raise ValueError(f"{name} must be a tensor or an array, got {type(value).__name__}")


def act_inputs(
    ts: Any, spec: EnvSpec, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(obs [E, N, obs_dim] float32, avail [E, N, n_actions] bool)`` checked.

    ``avail_actions`` may be ``None``: every action of each agent's own space is
    available (:meth:`EnvSpec.action_mask`: no action beyond an agent's ``Discrete(n_i)``,
    no padded dimension of its ``Box``).

    Raises:
        ValueError: ``ts`` has no ``obs``; a field has the wrong shape or dtype; ``obs``
            holds NaN or infinity; an agent has no available (discrete) action.
    """
    if ts is None or not hasattr(ts, "obs"):
        raise ValueError(
            f"act expects a TimeStep with obs [E, N, obs_dim] and avail_actions, got "
            f"{type(ts).__name__}"
        )
    obs = as_tensor("ts.obs", ts.obs, device)
    n, d = spec.n_agents, spec.obs_dim
    if obs.dim() != 3 or tuple(obs.shape[1:]) != (n, d):
        raise ValueError(f"ts.obs must have shape [E, {n}, {d}], got {list(obs.shape)}")
    if obs.is_complex():
        raise ValueError(f"ts.obs must hold real numbers, got dtype {obs.dtype}")
    obs = obs.float()  # float64, integer and boolean observations as float32, as in training
    finite = torch.isfinite(obs).flatten(1).all(1)
    if not bool(finite.all()):
        copy = int((~finite).nonzero()[0])
        raise ValueError(f"ts.obs holds NaN or infinite values (env copy {copy})")
    raw = getattr(ts, "avail_actions", None)
    expected = (obs.shape[0], n, spec.n_actions)
    if raw is None:
        return obs, spec.action_mask().to(device).expand(expected)
    avail = bool_tensor("ts.avail_actions", raw, expected, device)
    if is_continuous(spec):
        return obs, avail
    none = ~avail.any(-1)
    if bool(none.any()):
        e, agent = (int(i) for i in none.nonzero()[0])
        raise ValueError(
            f"agent {agent} in env copy {e} has no available action (avail_actions all False)"
        )
    return obs, avail


def bool_tensor(
    name: str, value: Any, shape: tuple[int, ...], device: torch.device, floats: bool = False
) -> torch.Tensor:
    """``value`` as a bool tensor of ``shape`` on ``device`` (0/1 integers read as bools).

    Args:
        floats: read 0.0/1.0 floats as bools too (``done`` flags; a mask must be integral).

    Raises:
        ValueError: ``value`` has another shape (nothing is broadcast), or holds other
            numbers than 0 and 1.
    """
    tensor = as_tensor(name, value, device)
    if tuple(tensor.shape) != shape:
        raise ValueError(f"{name} must have shape {list(shape)} like obs, got {list(tensor.shape)}")
    if tensor.dtype != torch.bool:
        if tensor.is_complex() or (tensor.is_floating_point() and not floats):
            raise ValueError(f"{name} must be boolean (or 0/1), got dtype {tensor.dtype}")
        if not bool(((tensor == 0) | (tensor == 1)).all()):
            raise ValueError(f"{name} must be boolean (or 0/1), got other values")
        tensor = tensor.bool()
    return tensor


def env_timestep(ts: Any, spec: EnvSpec, num_envs: int, source: str) -> TimeStep:
    """The time step an env returned, checked against its spec, in the protocol's dtypes.

    A custom env's output is read at the one boundary between env and learner: every
    field must have its documented shape (``obs [E, N, obs_dim]``, ``state
    [E, state_dim]``, ``avail_actions [E, N, n_actions]``, ``reward [E]``, ``done [E]``;
    ``truncated [E]`` and ``final_state [E, state_dim]`` where given). Numpy arrays
    become tensors; real observations and states (float64, integers, bools) become
    float32, rewards float32, ``done``/``truncated`` and a 0/1 mask bool. Tensors
    stay on the env's device.

    Args:
        ts: what ``reset()`` or ``step()`` returned.
        spec: the env's :class:`~mapograph.envs.EnvSpec`.
        num_envs: the env's number of copies ``E``.
        source: how an error names the call (``"env.step()"``).

    Raises:
        ValueError: ``ts`` is not a time step, a field has the wrong shape or holds
            no real numbers, or (discrete actions) an agent has no available action.
    """
    fields = ("obs", "state", "avail_actions", "reward", "done")
    if not all(hasattr(ts, f) for f in fields):
        raise ValueError(
            f"{source} must return a TimeStep ({', '.join(fields)}), got {type(ts).__name__}"
        )
    e, n = num_envs, spec.n_agents

    def field(name: str, shape: tuple[int, ...], layout: str) -> torch.Tensor:
        value = getattr(ts, name)
        if value is None:
            raise ValueError(f"{source} returned no {name}; it must be a tensor {layout}")
        if not isinstance(value, torch.Tensor):
            value = as_tensor(f"{source} {name}", value, torch.device("cpu"))
        if value.shape != shape:  # torch.Size is a tuple
            raise ValueError(
                f"{source} returned {name} of shape {list(value.shape)}; the env's spec "
                f"and num_envs say {layout} = {list(shape)}"
            )
        if value.dtype in _COMPLEX:
            raise ValueError(f"{source} returned {name} of dtype {value.dtype}: not real numbers")
        return value

    continuous = is_continuous(spec)
    avail = field("avail_actions", (e, n, spec.n_actions), "[E, N, n_actions]")
    if avail.dtype != torch.bool:
        if avail.is_floating_point() or not bool(((avail == 0) | (avail == 1)).all()):
            raise ValueError(
                f"{source} returned avail_actions of dtype {avail.dtype}: it must be boolean "
                "(or 0/1 integers)"
            )
        avail = avail.bool()
    # an agent without any action would sample an unavailable one (one sync per step)
    if not continuous and not bool(avail.any(-1).all()):
        copy, agent = (int(i) for i in (~avail.any(-1)).nonzero()[0])
        raise ValueError(
            f"{source} returned avail_actions with no available action for agent {agent} "
            f"in env copy {copy} (give a dead agent a no-op action)"
        )
    optional = {
        "truncated": getattr(ts, "truncated", None),
        "final_state": getattr(ts, "final_state", None),
    }
    if optional["truncated"] is not None:
        optional["truncated"] = field("truncated", (e,), "[E]").bool()
    if optional["final_state"] is not None:
        optional["final_state"] = field("final_state", (e, spec.state_dim), "[E, state_dim]")
        optional["final_state"] = optional["final_state"].float()
    info = getattr(ts, "info", None)
    return TimeStep(
        obs=field("obs", (e, n, spec.obs_dim), "[E, N, obs_dim]").float(),
        state=field("state", (e, spec.state_dim), "[E, state_dim]").float(),
        avail_actions=avail,
        reward=field("reward", (e,), "[E] (one team reward per copy)").float(),
        done=field("done", (e,), "[E]").bool(),
        info=dict(info) if info else {},
        **optional,
    )


def check_eval_args(episodes: Any, deterministic: Any, policy: Any) -> int:
    """Refuse evaluation arguments of the wrong type or range; ``episodes`` as an int
    (a numpy integer is read as one, as configs read it)."""
    episodes = plain_value(episodes)
    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1:
        raise ValueError(f"episodes must be a positive int, got {episodes!r}")
    if not isinstance(deterministic, bool):
        raise ValueError(f"deterministic must be True or False, got {deterministic!r}")
    if policy not in ("ind", "seq"):
        raise ValueError(f"policy must be 'ind' or 'seq', got {policy!r}")
    return episodes


def check_same_spec(spec: EnvSpec, other: EnvSpec, what: str) -> None:
    """Refuse an env whose agents, observations or actions differ from the trained one's:
    sizes, the kind of actions (discrete or Box) and each agent's action space."""
    for field in ("n_agents", "obs_dim", "state_dim", "n_actions"):
        mine, theirs = getattr(spec, field), getattr(other, field)
        if mine != theirs:
            raise ValueError(f"{what} has {field}={theirs}, the trainer's env {mine}")
    kinds = ["continuous" if is_continuous(s) else "discrete" for s in (spec, other)]
    if kinds[0] != kinds[1]:
        raise ValueError(f"{what} has {kinds[1]} actions, the trainer's env {kinds[0]} actions")
    if not _same_action_spaces(spec, other):
        raise ValueError(
            f"{what}'s agents have other action spaces ({other.action_spaces}) than the "
            f"trainer's env's ({spec.action_spaces})"
        )


def _same_action_spaces(spec: EnvSpec, other: EnvSpec) -> bool:
    """Whether every agent has the same actions (sizes; bounds for a Box env) in both specs."""
    if not all(hasattr(s, "action_mask") for s in (spec, other)):
        return True  # a spec that is no EnvSpec: only its sizes can be compared
    if not torch.equal(spec.action_mask(), other.action_mask()):
        return False
    if not is_continuous(spec):
        return True
    return all(torch.equal(a, b) for a, b in zip(spec.action_bounds(), other.action_bounds()))
