"""A size check before anything is allocated: refuse a run whose networks cannot fit.

``hidden``, ``layers``, ``num_envs`` and ``rollout_length`` each have an upper
bound in the config, but their product can still exceed the machine (a config
or an untrusted checkpoint with ``hidden: 65536`` asks for tens of GB per
agent). :func:`check_fits` estimates a *lower bound* of the bytes a run needs
(parameters with their gradients and Adam moments, plus the rollout buffer)
and raises a clear error when it exceeds the memory available on the device,
instead of letting the kernel kill the process mid-allocation.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from mapograph._errors import MapographError
from mapograph.algos import SCHEDULES

FLOAT_BYTES = 4
#: parameter + gradient + Adam's two moments
COPIES_PER_PARAMETER = 4


def actor_parameters(spec: Any, cfg: Any, per_agent_heads: bool) -> int:
    """Parameters of one actor: ``N`` stacked networks, or one network for all agents.

    With ``share_params`` the network exists once, its input widened by the agents'
    one-hot; ``per_agent_heads`` (the batch-by-batch presets) adds one output
    layer per agent.
    """
    h, layers, n = cfg.hidden, cfg.layers, spec.n_agents
    torso = (layers - 1) * h * h + (spec.obs_dim + layers) * h
    head = (spec.n_actions + 1) * h
    if not cfg.share_params:
        return n * (torso + head)
    return torso + n * h + (1 + (n if per_agent_heads else 0)) * head


def estimate_bytes(spec: Any, cfg: Any, num_envs: int) -> int:
    """A lower bound of the bytes a run of ``cfg`` on an env with ``spec`` allocates."""
    h, layers, n = cfg.hidden, cfg.layers, spec.n_agents
    preset = cfg.preset()
    one_batch = SCHEDULES.get(preset.schedule).single_batch and not preset.derived_policy
    parameters = actor_parameters(spec, cfg, per_agent_heads=not one_batch)
    if preset.derived_policy and cfg.pi_ind == "separate":  # pi_ind: its own network
        parameters += actor_parameters(spec, cfg, per_agent_heads=False)
    elif preset.derived_policy and cfg.pi_ind == "readout":  # one linear head per agent
        parameters += n * (h + 1) * spec.n_actions
    parameters += (layers - 1) * h * h + (spec.state_dim + layers + 1) * h  # the critic
    if preset.schedule == "learned_dag":
        parameters += 3 * cfg.generator_hidden * cfg.generator_hidden
    rollout = (
        cfg.rollout_length * num_envs * (n * (spec.obs_dim + spec.n_actions + 3) + spec.state_dim)
    )
    return FLOAT_BYTES * (COPIES_PER_PARAMETER * parameters + rollout)


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` (``None`` where it cannot be read)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(spec: Any, cfg: Any, num_envs: int, device: torch.device) -> None:
    """Raise :class:`MapographError` when the run cannot fit in ``device``'s free memory."""
    need = estimate_bytes(spec, cfg, num_envs)
    free = available_bytes(device)
    if free is not None and need > free:
        raise MapographError(
            f"the networks and rollout of this config need at least {need / 2**30:.1f} GiB but "
            f"{device} has {free / 2**30:.1f} GiB free (hidden={cfg.hidden}, layers={cfg.layers}, "
            f"{spec.n_agents} agents, rollout_length={cfg.rollout_length}, num_envs={num_envs}): "
            "use smaller sizes"
        )
