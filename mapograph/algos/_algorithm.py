"""``Algorithm``: the parts a preset names, assembled for one env.

The Trainer never asks which algorithm it runs: it calls the parts built here.

- ``actor``: the policy being optimized (``pi_seq``, conditioned on DAG parents,
  when the preset trains a derived policy; else the independent actor);
- ``critic`` and ``value_norm``;
- ``optimizer``: :class:`~mapograph.algos.BatchSequentialPPO` with the preset's correction;
- ``schedule``: the preset's :class:`~mapograph.algos.Schedule`;
- ``execution``: the policy that acts at execution (:class:`~mapograph.algos.DerivedPolicy`
  or the actor itself);
- ``generators``: the random generators (``act``, ``update``, ``order``, ``dag``), on the device.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mapograph.algos._config import AlgorithmConfig
from mapograph.algos._corrections import CORRECTIONS
from mapograph.algos._derived import DerivedPolicy, SamePolicy
from mapograph.algos._ppo import BatchSequentialPPO
from mapograph.algos._schedules import SCHEDULES, ScheduleContext
from mapograph.policies import (
    Actor,
    CentralCritic,
    DAGActor,
    ReadoutPolicy,
    RecurrentCritic,
    ValueNormalizer,
)

GENERATOR_NAMES = ("act", "update", "order", "dag")


class Algorithm:
    """An algorithm assembled from ``config.preset()`` for an env with ``spec``.

    Args:
        spec: the env's :class:`~mapograph.envs.EnvSpec`.
        config: the algorithm configuration (a :class:`~mapograph.TrainConfig` is one).
        seed: seeds the initial weights and the random generators.
        device: where every module, optimizer state and generator lives.

    ``share_params=True`` gives one-batch schedules (MAPPO) one network for all
    agents; schedules of several batches (HAPPO, A2PO, B2MAPO's ``pi_seq``) get
    that network plus per-agent output heads (the shared part trained jointly once
    per iteration, the heads batch by batch), and B2MAPO's ``pi_ind`` one network.
    """

    def __init__(
        self, spec: Any, config: AlgorithmConfig, seed: int, device: torch.device | str = "cpu"
    ) -> None:
        self.config = config
        self.preset = preset = config.preset()
        self.device = device = torch.device(device)
        schedule_cls = SCHEDULES.get(preset.schedule)
        n, obs_dim, n_actions = spec.n_agents, spec.obs_dim, spec.n_actions
        # Gaussian policies for Box actions; the discrete actors are built exactly as before.
        actor_kwargs = (
            {
                "continuous": True,
                "state_dependent_std": config.state_dependent_std,
                "log_std_init": config.log_std_init,
            }
            if getattr(spec, "continuous", False)
            else {}
        )
        if config.recurrent:  # GRU torsos; the feed-forward networks are built exactly as before
            actor_kwargs["recurrent"] = True
        network = {"normalize_input": config.input_norm, "activation": config.activation}
        actor_kwargs.update(network)
        # Separate generators so that, e.g., DAG sampling never shifts action sampling.
        self.generators = {
            name: torch.Generator(device=device).manual_seed(seed * 1000 + i)
            for i, name in enumerate(GENERATOR_NAMES)
        }
        torch.manual_seed(seed)
        # Construction order (critic, then actor) is the same for every preset, so
        # equal seeds give equal initial critics and actors across presets.
        self.critic: nn.Module = (
            RecurrentCritic(spec.state_dim, config.hidden, **network)
            if config.recurrent
            else CentralCritic(spec.state_dim, config.hidden, config.layers, **network)
        )
        if preset.derived_policy:
            self.actor: nn.Module = DAGActor(
                n,
                obs_dim,
                n_actions,
                config.hidden,
                config.layers,
                parent_encoding=config.parent_encoding,
                share_params=config.share_params,
                parent_obs=config.parent_obs,
                parent_obs_form=config.parent_obs_form,
                parent_activation=config.parent_activation,
                parent_gain=config.parent_gain,
                readout=config.pi_ind == "readout",
                **actor_kwargs,
            )
        else:
            self.actor = Actor(
                n,
                obs_dim,
                n_actions,
                config.hidden,
                config.layers,
                config.share_params,
                per_agent_heads=not schedule_cls.single_batch,
                **actor_kwargs,
            )
        self.value_norm = ValueNormalizer() if config.value_norm else None
        #: B2MAPO's pi_ind lives in pi_seq's network, distilled in its batch passes
        #: (``pi_ind="tied"``: its observation part; ``"readout"``: plus a readout head)
        self.tied_execution = bool(preset.derived_policy and config.pi_ind != "separate")
        self.optimizer = BatchSequentialPPO(
            self.actor.to(device),
            self.critic.to(device),
            None if self.value_norm is None else self.value_norm.to(device),
            n,
            config,
            CORRECTIONS.get(preset.correction),
            preset.correction_clip,
            self.generators["update"],
            distill_coef=config.distill_weight() if self.tied_execution else 0.0,
        )
        # Parts built from their own seed: adding them never shifts the weights above.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 7919)
            if self.tied_execution:  # pi_ind is inside pi_seq's network: nothing to build
                self.execution: DerivedPolicy | SamePolicy = SamePolicy(
                    ReadoutPolicy(self.actor) if config.pi_ind == "readout" else self.actor.base
                )
            elif preset.derived_policy:
                pi_ind = Actor(
                    n,
                    obs_dim,
                    n_actions,
                    config.hidden,
                    config.layers,
                    config.share_params,  # trained on all agents at once: one network
                    **actor_kwargs,
                )
                pi_ind = pi_ind.to(device)
                self.execution = DerivedPolicy(pi_ind, config, self.generators["update"])
            else:
                self.execution = SamePolicy(self.actor)
            self.schedule = schedule_cls(
                ScheduleContext(n, obs_dim, n_actions, config, preset, device, self.generators)
            )

    def scale_learning_rates(self, scale: float) -> None:
        """Set the policies' and the critic's learning rates to ``scale`` times the config's.

        Covers the optimized actor (and its shared torso), the critic and B2MAPO's
        ``pi_ind``; the upper layer's generator is set to ``generator_lr`` (not scaled).
        """
        ppo, cfg = self.optimizer, self.config
        pairs = [(ppo.actor_optim, cfg.lr), (ppo.torso_optim, cfg.lr), (ppo.readout_optim, cfg.lr)]
        pairs += [
            (ppo.critic_optim, cfg.critic_lr),
            (getattr(self.execution, "optim", None), cfg.lr),
        ]
        for optim, base in pairs:
            if optim is not None:
                for group in optim.param_groups:
                    group["lr"] = base * scale
        upper = getattr(self.schedule, "upper", None)
        if upper is not None:
            for group in upper.optim.param_groups:
                group["lr"] = cfg.generator_lr

    def modules(self) -> dict[str, nn.Module]:
        """The trained modules by checkpoint name (``actor``, ``critic``, ``value_norm``, ``pi_ind``)."""
        modules: dict[str, nn.Module] = {"actor": self.actor, "critic": self.critic}
        if self.value_norm is not None:
            modules["value_norm"] = self.value_norm
        return {**modules, **self.execution.modules()}

    def policy(self, name: str) -> nn.Module:
        """``"ind"``: the execution policy; ``"seq"``: the optimized (batch-sequential) one."""
        if name == "ind":
            return self.execution.actor
        if name == "seq":
            return self.actor
        raise ValueError(f"policy must be 'ind' or 'seq', got {name!r}")

    def optimizer_states(self) -> dict[str, Any]:
        """Optimizer states by checkpoint name."""
        states = {"ppo": self.optimizer.state_dict()}
        execution = self.execution.state_dict()
        if execution is not None:
            states["pi_ind"] = execution
        return states

    def load_optimizer_states(self, states: dict[str, Any]) -> None:
        """Restore :meth:`optimizer_states`."""
        self.optimizer.load_state_dict(states["ppo"])
        self.execution.load_state_dict(states.get("pi_ind"))
