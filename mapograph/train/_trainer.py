"""``Trainer``: collect -> graph -> partition -> batch-by-batch update, with checkpoints.

One iteration of :meth:`Trainer.train` reads top to bottom like B2MAPO's algorithm box:

1. **graph + partition** (B2MAPO): the upper layer samples a DAG and partitions it;
2. **collect** ``rollout_length`` steps of ``num_envs`` copies with the behaviour policy
   (``pi_seq``, which acts batch by batch when it conditions on parents);
3. **partition** (other presets): one batch, or one agent per batch in a random
   (HAPPO) or semi-greedy (A2PO) order;
4. **update**: :class:`~mapograph.algos.BatchSequentialPPO` loops over the batches;
5. **upper layer** learns from the improvement its DAG produced;
6. **derived policy** ``pi_ind``: MAPPO on the same data, distilled from ``pi_seq``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import torch

from mapograph._errors import CheckpointError, MapographError
from mapograph.algos import (
    BatchSequentialPPO,
    DerivedPolicy,
    PPOHyperparameters,
    Rollout,
)
from mapograph.algos._interaction import action_interaction
from mapograph.algos._schedule import a2po_scores, check_fixed_order, preset_batches
from mapograph.envs import TimeStep, check_actions
from mapograph.partition import validate_partition
from mapograph.policies import Actor, CentralCritic, DAGActor, ValueNormalizer
from mapograph.train._checkpoint import load_checkpoint, save_checkpoint
from mapograph.train._collector import Collector, episode_wins
from mapograph.train._config import TrainConfig
from mapograph.train._logging import RunLogger

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class TrainResult:
    """What :meth:`Trainer.train` returns.

    Attributes:
        history: one dict per iteration with at least ``step``, ``return_mean``,
            ``collect_s``, ``update_s`` and ``batches`` (the partition used).
        out_dir: the run folder, if any.
        wall_s: wall-clock seconds of this call.
    """

    history: list[dict[str, Any]]
    out_dir: Path | None = None
    wall_s: float = 0.0
    final: dict[str, Any] = field(default_factory=dict)


def _check_env(env: Any) -> None:
    for name in ("spec", "num_envs", "reset", "step"):
        if not hasattr(env, name):
            raise ValueError(
                f"env {env!r} lacks '{name}': it must follow the MultiAgentEnv interface"
            )


class Trainer:
    """Trains a team of agents on ``env`` with the algorithm named by ``cfg.algo``.

    Args:
        env: any object with the MultiAgentEnv interface (``spec``, ``num_envs``,
            ``reset()``, ``step(actions)``).
        cfg: the run configuration.
        out_dir: folder for ``progress.csv``, TensorBoard logs and ``checkpoint.pt``
            (written every ``cfg.checkpoint_every`` iterations); ``None``: nothing is written.
    """

    def __init__(self, env: Any, cfg: TrainConfig | None = None, out_dir: str | Path | None = None):
        _check_env(env)
        self.env = env
        self.cfg = cfg = cfg if cfg is not None else TrainConfig()
        cfg.validate()
        self.preset = cfg.preset()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.device = torch.device(cfg.device)
        spec = env.spec
        self.n_agents = spec.n_agents
        if cfg.share_params and self.preset.partition != "simultaneous":
            raise ValueError(
                f"share_params=True cannot be combined with algo={cfg.algo!r}: batch-by-batch updates "
                "need separate per-agent parameters (share_params=False)"
            )

        # Fixed batches or orders must fit this env: fail now, not at the first update.
        if cfg.fixed_partition is not None:
            validate_partition([list(map(int, b)) for b in cfg.fixed_partition], self.n_agents)
        if cfg.fixed_order is not None:
            check_fixed_order(cfg.fixed_order, self.n_agents)

        # Separate generators so that, e.g., DAG sampling never shifts action sampling.
        self.rngs = {
            name: torch.Generator().manual_seed(cfg.seed * 1000 + i)
            for i, name in enumerate(("act", "update", "order", "dag"))
        }
        torch.manual_seed(cfg.seed)
        # Construction order (critic, then actor) is the same for every preset, so
        # equal seeds give equal initial critics and actors across presets.
        self.critic = CentralCritic(spec.state_dim, cfg.hidden, cfg.layers)
        if self.preset.derived_policy:
            self.actor: torch.nn.Module = DAGActor(
                spec.n_agents, spec.obs_dim, spec.n_actions, cfg.hidden, cfg.layers
            )
        else:
            self.actor = Actor(
                spec.n_agents,
                spec.obs_dim,
                spec.n_actions,
                cfg.hidden,
                cfg.layers,
                cfg.share_params,
            )
        self.value_norm = ValueNormalizer() if cfg.value_norm else None
        self.hp = PPOHyperparameters(
            gamma=cfg.gamma,
            gae_lambda=cfg.gae_lambda,
            clip=cfg.clip,
            epochs=cfg.epochs,
            minibatches=cfg.minibatches,
            entropy_coef=cfg.entropy_coef,
            max_grad_norm=cfg.max_grad_norm,
            correction=self.preset.correction,
            correction_clip=self.preset.correction_clip,
        )
        self.ppo = BatchSequentialPPO(
            self.actor,
            self.critic,
            self.value_norm,
            spec.n_agents,
            cfg.lr,
            cfg.critic_lr,
            self.hp,
            self.rngs["update"],
        )
        self.derived: DerivedPolicy | None = None
        self.upper = None
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed + 7919)
            if self.preset.derived_policy:
                pi_ind = Actor(spec.n_agents, spec.obs_dim, spec.n_actions, cfg.hidden, cfg.layers)
                self.derived = DerivedPolicy(pi_ind, cfg.lr, self.hp, self.rngs["update"])
            if self.preset.learned_dag:
                from mapograph.algos._upper import DAGUpperLayer

                self.upper = DAGUpperLayer(
                    feature_dim=spec.obs_dim + spec.n_agents,
                    n_agents=spec.n_agents,
                    partitioner=self.preset.partition,
                    partition_kwargs=self._partition_kwargs(),
                    hidden=cfg.generator_hidden,
                    heads=cfg.generator_heads,
                    lr=cfg.generator_lr,
                    entropy_coef=cfg.generator_entropy_coef,
                    epochs=cfg.generator_epochs,
                    clip=cfg.clip,
                    temperature=cfg.dag_temperature,
                    edge_threshold=cfg.edge_threshold,
                    generator=self.rngs["dag"],
                    interaction_coef=cfg.interaction_coef,
                )
        for module in self._modules().values():
            module.to(self.device)

        self.collector = Collector(env, self.device)
        self.iteration = 0
        self.env_steps = 0
        self.history: list[dict[str, Any]] = []
        self.batches: list[list[int]] = [list(range(self.n_agents))]
        self.edge_index: torch.Tensor | None = None
        self._features: torch.Tensor | None = None

    # -------------------------------------------------------------- plumbing
    def _partition_kwargs(self) -> dict:
        if self.preset.partition == "bounded":
            return {"max_batch_size": self.cfg.max_batch_size}
        if self.preset.partition == "k_batches":
            return {"k": self.cfg.k}
        return {}

    def _modules(self) -> dict[str, torch.nn.Module]:
        modules: dict[str, torch.nn.Module] = {"actor": self.actor, "critic": self.critic}
        if self.value_norm is not None:
            modules["value_norm"] = self.value_norm
        if self.derived is not None:
            modules["pi_ind"] = self.derived.actor
        return modules

    @property
    def steps_per_iteration(self) -> int:
        """Env steps (summed over copies) collected per iteration."""
        return self.cfg.rollout_length * self.env.num_envs

    def _agent_features(self, obs: torch.Tensor) -> torch.Tensor:
        """Generator input ``[1, N, obs_dim + N]``: mean observation per agent and its one-hot id."""
        mean_obs = obs.reshape(-1, self.n_agents, obs.shape[-1]).float().mean(0)
        ids = torch.eye(self.n_agents, device=obs.device)
        return torch.cat([mean_obs, ids], -1).unsqueeze(0)

    def _behaviour(self, ts: TimeStep) -> tuple[torch.Tensor, torch.Tensor, None]:
        """Sample the joint action of the policy being optimized (one batched call)."""
        gen = self.rngs["act"]
        if isinstance(self.actor, DAGActor):
            actions, log_probs = self.actor.act(
                ts.obs, ts.avail_actions, self.batches, self.edge_index, generator=gen
            )
        else:
            actions, log_probs = self.actor.act(ts.obs, ts.avail_actions, generator=gen)
        return actions, log_probs, None

    @torch.no_grad()
    def _derived_log_probs(self, rollout: Rollout) -> torch.Tensor:
        """pi_ind's log-probabilities of the collected actions, ``[T, E, N]``.

        pi_ind does not change during collection, so one batched forward over the
        whole rollout gives exactly what a per-step forward would.
        """
        logits = self.derived.actor.logits(rollout.obs, rollout.avail)
        return torch.log_softmax(logits, -1).gather(-1, rollout.actions.unsqueeze(-1)).squeeze(-1)

    # ------------------------------------------------------------------ train
    def train(self, callback: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
        """Train until ``cfg.total_steps`` env steps (continues a loaded run).

        Args:
            callback: called with each iteration's history row after it is logged
                (and before the checkpoint of that iteration is written).
        """
        start = time.perf_counter()
        logger = RunLogger(
            self.out_dir,
            self.cfg.total_steps,
            self.cfg.progress,
            self.cfg.tensorboard,
            self.env_steps,
        )
        try:
            while self.env_steps < self.cfg.total_steps:
                row = self.train_iteration()
                logger.log(row)
                if callback is not None:
                    callback(row)
                if self.out_dir is not None and self.iteration % self.cfg.checkpoint_every == 0:
                    self.save(self.out_dir / CHECKPOINT_NAME)
            if self.out_dir is not None:
                self.save(self.out_dir / CHECKPOINT_NAME)
        finally:
            logger.close()
        final = self.history[-1] if self.history else {}
        return TrainResult(list(self.history), self.out_dir, time.perf_counter() - start, final)

    def train_iteration(self) -> dict[str, Any]:
        """One iteration: graph, collect, partition, batch-by-batch update, upper layer, distill."""
        cfg = self.cfg
        t0 = time.perf_counter()
        # 1. graph + partition (B2MAPO): the DAG used to act and to update this iteration
        proposal = None
        if self.upper is not None:
            if self._features is None:
                ts = self.collector.timestep or self.collector.reset()
                self._features = self._agent_features(ts.obs)
            proposal = self.upper.propose(self._features)
            self.batches = proposal.batches
            self.edge_index = proposal.edge_index if cfg.condition_on_parents else None
        graph_s = time.perf_counter() - t0

        # 2. collect
        t1 = time.perf_counter()
        rollout, returns, lengths = self.collector.collect(self._behaviour, cfg.rollout_length)
        if self.derived is not None:
            rollout.ind_log_probs = self._derived_log_probs(rollout)
        collect_s = time.perf_counter() - t1
        self.env_steps += self.steps_per_iteration

        # 3. partition (presets without a learned DAG)
        t2 = time.perf_counter()
        values = self.ppo.values(rollout.state)
        if self.upper is None:
            scores = None
            if self.preset.order == "semi_greedy":
                scores = a2po_scores(rollout, self.ppo.advantages(rollout, values), values)
            self.batches = preset_batches(
                self.preset,
                self.n_agents,
                self.rngs["order"],
                cfg.fixed_partition,
                cfg.fixed_order,
                scores,
            )

        # 4. batch-by-batch update of the policy being optimized
        stats = self.ppo.update(rollout, self.batches, self.edge_index, values)

        # 5. upper layer learns from the improvement its DAG produced
        if self.upper is not None and proposal is not None:
            interaction = action_interaction(
                rollout.flat(rollout.actions),
                self.ppo.last_advantages.reshape(-1),
                self.env.spec.n_actions,
            )
            stats.update(self.upper.learn(proposal, stats["joint_ratio_gain"], interaction))
            self._features = self._agent_features(rollout.obs)

        # 6. derived independent policy: MAPPO on the same data, then distillation
        if self.derived is not None:
            distill = (self.iteration + 1) % cfg.distill_every == 0
            stats.update(
                self.derived.update(
                    rollout,
                    self.ppo.last_advantages,
                    teacher=self.actor if distill else None,
                    teacher_context=self.actor.context(
                        rollout.flat(rollout.actions), self.edge_index
                    ),
                    kl_coef=cfg.kl_coef,
                )
            )
        update_s = time.perf_counter() - t2
        self.iteration += 1

        total_s = time.perf_counter() - t0
        row: dict[str, Any] = {
            "iteration": self.iteration,
            "step": self.env_steps,
            "return_mean": float(sum(returns) / len(returns)) if returns else float("nan"),
            "return_std": float(torch.tensor(returns).std(unbiased=False))
            if len(returns) > 1
            else 0.0,
            "episodes": len(returns),
            "win_rate": finite_mean(self.collector.last_wins),
            "episode_length": float(sum(lengths) / len(lengths)) if lengths else float("nan"),
            "reward_per_step": float(rollout.rewards.mean()),
            "collect_s": collect_s,
            "update_s": update_s,
            "graph_s": graph_s,
            "total_s": total_s,
            "env_steps_per_s": self.steps_per_iteration / max(total_s, 1e-9),
            "batches": [list(b) for b in self.batches],
            **stats,
        }
        if cfg.eval_every and self.iteration % cfg.eval_every == 0:
            evaluation = self.evaluate(cfg.eval_episodes)
            row["eval_return_mean"] = evaluation["return_mean"]
        self.history.append(row)
        return row

    # ------------------------------------------------------------ execution
    @torch.no_grad()
    def act(self, ts: TimeStep, deterministic: bool = False, policy: str = "ind") -> torch.Tensor:
        """Joint actions ``[E, N]`` for a time step.

        Args:
            ts: the current time step (``obs``, ``avail_actions``).
            deterministic: take each agent's most probable action.
            policy: ``"ind"`` (the derived independent policy for B2MAPO; the only
                policy for the other presets) or ``"seq"`` (B2MAPO's batch-sequential policy).
        """
        if policy not in ("ind", "seq"):
            raise ValueError(f"policy must be 'ind' or 'seq', got {policy!r}")
        obs = ts.obs.to(self.device)
        if obs.dim() != 3 or obs.shape[1:] != (self.n_agents, self.env.spec.obs_dim):
            raise ValueError(
                f"ts.obs must have shape [E, {self.n_agents}, {self.env.spec.obs_dim}], got {list(obs.shape)}"
            )
        avail = ts.avail_actions.to(self.device).bool()
        if policy == "ind" and self.derived is not None:
            actions, _ = self.derived.actor.act(obs, avail, deterministic, self.rngs["act"])
        elif isinstance(self.actor, DAGActor):
            actions, _ = self.actor.act(
                obs, avail, self.batches, self.edge_index, deterministic, self.rngs["act"]
            )
        else:
            actions, _ = self.actor.act(obs, avail, deterministic, self.rngs["act"])
        return actions

    @torch.no_grad()
    def evaluate(
        self, episodes: int = 32, deterministic: bool = True, policy: str = "ind", env: Any = None
    ) -> dict[str, float]:
        """Mean and std of the return of ``episodes`` full episodes.

        Returns ``return_mean``, ``return_std``, ``episodes`` and, where the env
        reports ``TimeStep.info["won"]`` (SMAX, SMACv2, football), ``win_rate``.

        Runs on ``env`` when given, else on the training env, which is then reset
        before the next collection (evaluation never mixes with training episodes).
        """
        if not isinstance(episodes, int) or episodes < 1:
            raise ValueError(f"episodes must be a positive int, got {episodes!r}")
        target = env if env is not None else self.env
        ts = target.reset()
        running = torch.zeros(target.num_envs)
        returns: list[float] = []
        wins: list[float] = []
        limit = (episodes // target.num_envs + 2) * target.spec.episode_limit * 4
        for _ in range(limit):
            actions = self.act(ts, deterministic, policy)
            ts = target.step(check_actions(actions, target.spec, target.num_envs))
            running += ts.reward.float().cpu()
            done = ts.done.cpu().bool()
            if done.any():
                returns.extend(running[done].tolist())
                won = episode_wins(ts, done)
                if won is not None:
                    wins.extend(won.tolist())
                running[done] = 0.0
                if len(returns) >= episodes:
                    break
        if target is self.env:
            self.collector.timestep = None  # the next collect starts from a reset
        if not returns:
            raise MapographError("evaluation finished no episode: does the env ever set done?")
        values = torch.tensor(returns[:episodes])
        result = {
            "return_mean": float(values.mean()),
            "return_std": float(values.std(unbiased=False)),
            "episodes": int(values.numel()),
        }
        if wins:
            result["win_rate"] = finite_mean(wins[:episodes])
        return result

    def interdependence(self) -> nx.DiGraph:
        """The learned interdependence graph: edges ``i -> j`` with ``weight`` = P(edge).

        Raises:
            MapographError: the algorithm has no learned DAG (only ``b2mapo`` does).
        """
        if self.upper is None:
            raise MapographError(
                f"algo {self.cfg.algo!r} learns no interdependence graph (use algo='b2mapo')"
            )
        if self._features is None:
            ts = self.collector.timestep or self.collector.reset()
            self._features = self._agent_features(ts.obs)
        probs = self.upper.edge_probabilities(self._features).cpu()
        graph = nx.DiGraph()
        graph.add_nodes_from(range(self.n_agents))
        for i in range(self.n_agents):
            for j in range(self.n_agents):
                if i != j:
                    graph.add_edge(i, j, weight=float(probs[i, j]))
        return graph

    # ----------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly (tensors and plain data only)."""
        env_state = self.env.state_dict() if hasattr(self.env, "state_dict") else None
        optimizers: dict[str, Any] = {"ppo": self.ppo.state_dict()}
        if self.derived is not None:
            optimizers["pi_ind"] = self.derived.state_dict()
        return {
            "config": self.cfg.to_dict(),
            "modules": {name: m.state_dict() for name, m in self._modules().items()},
            "optimizers": optimizers,
            "upper": self.upper.state_dict() if self.upper is not None else None,
            "rng": {name: g.get_state() for name, g in self.rngs.items()},
            "torch_rng": torch.get_rng_state(),
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "history": self.history,
            "collector": self.collector.state_dict(),
            "env_state": env_state,
            "batches": self.batches,
            "edge_index": self.edge_index,
            "features": self._features,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (raises CheckpointError when it does not fit)."""
        try:
            for name, module in self._modules().items():
                module.load_state_dict(state["modules"][name])
            self.ppo.load_state_dict(state["optimizers"]["ppo"])
            if self.derived is not None:
                self.derived.load_state_dict(state["optimizers"]["pi_ind"])
            if self.upper is not None:
                self.upper.load_state_dict(state["upper"])
            for name, g in self.rngs.items():
                g.set_state(state["rng"][name])
            torch.set_rng_state(state["torch_rng"])
            self.iteration = int(state["iteration"])
            self.env_steps = int(state["env_steps"])
            self.history = list(state["history"])
            self.batches = [list(b) for b in state["batches"]]
            self.edge_index = state["edge_index"]
            self._features = state["features"]
            if state.get("env_state") is not None and hasattr(self.env, "load_state_dict"):
                self.env.load_state_dict(state["env_state"])
                self.collector.load_state_dict(state["collector"])
            else:
                self.collector.timestep = None  # env cannot restore its state: start from a reset
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"checkpoint does not match this trainer: {exc}") from exc

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically; returns its path."""
        return save_checkpoint(self.state_dict(), path)

    @classmethod
    def load(
        cls, path: str | Path, env: Any, out_dir: str | Path | None = None, **overrides: Any
    ) -> Trainer:
        """Rebuild a trainer from a checkpoint (file or run folder) for ``env``.

        ``overrides`` change config fields (e.g. ``total_steps`` to train longer).
        Training continues in the checkpoint's folder unless ``out_dir`` is given.
        """
        path = Path(path)
        state = load_checkpoint(path)
        try:
            cfg = TrainConfig.from_dict(state["config"]).replace(**overrides)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path} holds an invalid config: {exc}") from exc
        folder = path if path.is_dir() else path.parent
        spec = env.spec
        trainer = cls(env, cfg, out_dir=out_dir if out_dir is not None else folder)
        if trainer.n_agents != spec.n_agents:
            raise CheckpointError(f"checkpoint {path} does not fit env with {spec.n_agents} agents")
        trainer.load_state_dict(state)
        return trainer


def finite_mean(values: list[float]) -> float:
    """Mean of the finite values (NaN when none)."""
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")
