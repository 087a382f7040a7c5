"""``Trainer``: collect -> plan -> batch-by-batch update -> the schedule learns -> distill.

One iteration of :meth:`Trainer.train` reads like B2MAPO's algorithm box, for
every algorithm alike (the preset's parts, built by :class:`~mapograph.algos.Algorithm`,
decide what each step does):

1. **propose**: the schedule gives the plan the behaviour policy acts with
   (B2MAPO samples a DAG from its generator and partitions it);
2. **collect** ``rollout_length`` steps of every env copy with the behaviour policy;
3. **plan**: the schedule orders the update's batches (HAPPO random, A2PO semi-greedy);
4. **update**: :class:`~mapograph.algos.BatchSequentialPPO` loops over the batches;
5. **learn**: the schedule learns from the update (B2MAPO's upper layer);
6. **distill**: the execution policy learns (B2MAPO's ``pi_ind``; nothing otherwise).
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import torch

from mapograph._devices import resolve_device
from mapograph._errors import CheckpointError, DivergenceError, MapographError
from mapograph.algos import Algorithm, Plan, ScheduleData
from mapograph.envs import TimeStep, check_actions
from mapograph.policies._recurrent import reset_where
from mapograph.train._checkpoint import load_checkpoint, save_checkpoint
from mapograph.train._collector import Collector, EnvActions
from mapograph.train._config import TrainConfig
from mapograph.train._guard import divergence, nonfinite_scalars, nonfinite_tensors
from mapograph.train._inputs import (
    act_inputs,
    bool_tensor,
    check_eval_args,
    check_same_spec,
    env_timestep,
    is_continuous,
)
from mapograph.train._logging import RunLogger
from mapograph.train._memory import check_fits

CHECKPOINT_NAME = "checkpoint.pt"
"""File name of the checkpoint inside a run folder."""


@dataclass
class TrainResult:
    """What :meth:`Trainer.train` returns.

    Attributes:
        history: one dict per iteration with at least ``step``, ``return_mean``,
            ``collect_s``, ``update_s`` (split into ``policy_update_s``: the
            batch-by-batch update and the critic; ``schedule_update_s``: B2MAPO's
            upper layer and interdependence estimator; ``execution_update_s``:
            ``pi_ind``) and ``batches`` (the partition used).
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
    copies = env.num_envs
    if isinstance(copies, bool) or not isinstance(copies, numbers.Integral) or copies < 1:
        raise ValueError(f"env.num_envs must be a positive int, got {copies!r}")


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
        if cfg is not None and not isinstance(cfg, TrainConfig):
            raise ValueError(
                f"Trainer takes a TrainConfig (TrainConfig(**fields) or "
                f"TrainConfig.from_dict(...)), got {type(cfg).__name__}"
            )
        self.cfg = cfg = cfg if cfg is not None else TrainConfig()
        cfg.validate()
        if cfg.num_envs is not None and cfg.num_envs != env.num_envs:
            raise ValueError(
                f"TrainConfig.num_envs={cfg.num_envs} but the env has {env.num_envs} copies: "
                f"make the env with num_envs={cfg.num_envs} or leave num_envs unset (None)"
            )
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.device = resolve_device(cfg.device)
        check_fits(env.spec, cfg, env.num_envs, self.device)  # before allocating anything
        self.n_agents = env.spec.n_agents
        if cfg.recurrent and cfg.rollout_length % cfg.chunk_length:
            raise ValueError(
                f"recurrent=True trains on chunks: rollout_length={cfg.rollout_length} must be a "
                f"multiple of chunk_length={cfg.chunk_length}"
            )
        if cfg.behaviour_epsilon and is_continuous(env.spec):
            raise ValueError(
                f"behaviour_epsilon={cfg.behaviour_epsilon} mixes in uniformly random discrete "
                "actions: it needs a discrete action space (this env's actions are continuous)"
            )
        self.algorithm = Algorithm(env.spec, cfg, cfg.seed, self.device)
        hidden = getattr(self.algorithm.actor, "hidden_size", None)
        self.collector = Collector(
            env, self.device, None if hidden is None else (self.n_agents, hidden)
        )
        self._act_hidden: dict[str, torch.Tensor] = {}  # recurrent policies acting via act()
        self.env_actions = EnvActions(env.spec, self.device)
        self.iteration = 0
        self.env_steps = 0
        self.history: list[dict[str, Any]] = []
        self.plan = Plan([list(range(self.n_agents))])
        self._owns_out_dir = False  # True once this trainer wrote or was loaded from out_dir
        self._diverged: Exception | None = None  # set when training diverged: never save then
        self._interrupted: str | None = None  # set when an update stopped midway: never save
        self._checkpoint: Path | None = None  # the last checkpoint written or loaded

    # -------------------------------------------------------------- plumbing
    @property
    def actor(self) -> torch.nn.Module:
        """The policy being optimized (``pi_seq`` for B2MAPO)."""
        return self.algorithm.actor

    @property
    def critic(self) -> torch.nn.Module:
        """The centralized critic."""
        return self.algorithm.critic

    @property
    def batches(self) -> list[list[int]]:
        """The ordered batches of the last update."""
        return self.plan.batches

    @property
    def steps_per_iteration(self) -> int:
        """Env steps (summed over copies) collected per iteration."""
        return self.cfg.rollout_length * int(self.env.num_envs)

    def _timestep(self) -> TimeStep:
        return self.collector.timestep or self.collector.reset()

    def _behaviour(self, plan: Plan) -> Callable[[TimeStep], tuple]:
        """The behaviour policy of this iteration: the optimized actor acting with ``plan``."""
        actor, generator = self.algorithm.actor, self.algorithm.generators["act"]
        explore = {"epsilon": self.cfg.behaviour_epsilon} if self.cfg.behaviour_epsilon else {}

        def policy(ts: TimeStep, *hidden: torch.Tensor) -> tuple[torch.Tensor, ...]:
            memory = {"hidden": hidden[0]} if hidden else {}  # a recurrent actor's state
            memory.update(explore)
            return actor.act(
                ts.obs,
                ts.avail_actions,
                generator=generator,
                batches=plan.batches,
                edge_index=plan.edge_index,
                **memory,
            )

        return policy

    # ------------------------------------------------------------------ train
    def train(self, callback: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
        """Train until ``cfg.total_steps`` env steps (continues a loaded run).

        Args:
            callback: called with each iteration's history row after it is logged
                (and before the checkpoint of that iteration is written).
        """
        start = time.perf_counter()
        if self.out_dir is not None:
            self._check_saveable()  # before training what could never be checkpointed
        self._claim_out_dir()
        logger = RunLogger(
            self.out_dir,
            self.cfg.total_steps,
            self.cfg.progress,
            self.cfg.tensorboard,
            self.env_steps,
            resume_iteration=self.iteration,
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

    def _claim_out_dir(self) -> None:
        """Refuse to write over another run's checkpoint (a fresh trainer in a used folder)."""
        if self.out_dir is None or self._owns_out_dir:
            return
        if (self.out_dir / CHECKPOINT_NAME).exists():
            raise MapographError(
                f"{self.out_dir} already holds a run ({CHECKPOINT_NAME}): continue it with "
                f"Trainer.load({str(self.out_dir)!r}, env), or choose another out_dir"
            )
        self._owns_out_dir = True

    def _module_states(self) -> dict[str, Any]:
        algo = self.algorithm
        return {
            **{name: m.state_dict() for name, m in algo.modules().items()},
            "schedule": algo.schedule.state_dict(),
        }

    def _check_finite(self, iteration: int, quantity: str, names: list[str]) -> None:
        if names:
            self._diverged = divergence(iteration, quantity, names, self._checkpoint)
            raise self._diverged

    def train_iteration(self) -> dict[str, Any]:
        """One iteration: propose, collect, plan, batch-by-batch update, learn, distill."""
        algo = self.algorithm
        t0 = time.perf_counter()
        # 1. propose: the plan the behaviour policy acts with (B2MAPO: a sampled DAG)
        schedule = algo.schedule
        acting = schedule.propose(self._timestep()).check(self.env.spec.n_agents, _name(schedule))
        graph_s = time.perf_counter() - t0

        # 2. collect
        t1 = time.perf_counter()
        rollout, returns, lengths = self.collector.collect(
            self._behaviour(acting), self.cfg.rollout_length
        )
        collect_s = time.perf_counter() - t1
        it = self.iteration + 1
        self._check_finite(
            it,
            "env output",
            nonfinite_tensors(
                {"observations": rollout.obs, "state": rollout.state, "rewards": rollout.rewards}
            ),
        )
        algo.execution.record(rollout)
        if self.cfg.lr_anneal:  # the fraction of the budget left before this rollout
            done = self.env_steps / self.cfg.total_steps
            algo.scale_learning_rates(max(0.0, 1.0 - done))
        self.env_steps += self.steps_per_iteration

        t2 = time.perf_counter()
        stats = self._guarded_update(it, acting, rollout)
        update_s = time.perf_counter() - t2
        self._check_finite(it, "losses", nonfinite_scalars(stats))
        self._check_finite(it, "parameters", nonfinite_tensors(self._module_states()))
        self._check_finite(
            it, "returns", ["episode returns"] if not all(map(math.isfinite, returns)) else []
        )
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
            "batches": [list(b) for b in self.plan.batches],
            **stats,
        }
        if self.cfg.eval_every and self.iteration % self.cfg.eval_every == 0:
            evaluation = self.evaluate(self.cfg.eval_episodes)
            row["eval_return_mean"] = evaluation["return_mean"]
            self._check_finite(it, "returns", nonfinite_scalars(row, ("eval_return_mean",)))
        self.history.append(row)
        return row

    def _guarded_update(self, iteration: int, acting: Plan, rollout: Any) -> dict[str, Any]:
        """:meth:`_update`; an exception that stops it midway (a crash, ``KeyboardInterrupt``)
        leaves the trainer partly updated, so it refuses to :meth:`save` from then on.

        Raises:
            DivergenceError: torch refused a non-finite value (NaN probabilities in a loss)
                or a step that overflows float32 (a learning rate too large).
        """
        try:
            return self._update(acting, rollout)
        except BaseException as exc:
            self._interrupted = (
                f"iteration {iteration} was interrupted during its update ({type(exc).__name__})"
            )
            if isinstance(exc, RuntimeError):
                bad = nonfinite_tensors(self._module_states())
                if bad:
                    self._diverged = divergence(iteration, "parameters", bad, self._checkpoint)
                    raise self._diverged from exc
                if "without overflow" in str(exc):  # e.g. Adam's lr / bias correction
                    self._diverged = divergence(
                        iteration, "update step", ["float32 overflow"], self._checkpoint
                    )
                    raise self._diverged from exc
            raise

    def _update(self, acting: Plan, rollout: Any) -> dict[str, Any]:
        """Steps 3-6 of an iteration; returns the update's statistics."""
        algo = self.algorithm
        # 3. plan the update's batches
        values = algo.optimizer.rollout_values(rollout)
        data = ScheduleData(rollout, values, algo.optimizer.advantages(rollout, values))
        # finite rewards can still overflow the returns (a schedule's order would then
        # fail on its scores, far from the cause)
        self._check_finite(
            self.iteration + 1,
            "values or advantages",
            nonfinite_tensors({"values": values, "advantages": data.advantages}),
        )
        schedule = algo.schedule
        self.plan = schedule.plan(acting, data).check(self.env.spec.n_agents, _name(schedule))

        # 4. batch-by-batch update of the policy being optimized
        start = time.perf_counter()
        stats = algo.optimizer.update(
            rollout, self.plan, values, data.advantages, algo.schedule.uses_joint_gain
        )
        policy_done = time.perf_counter()

        # 5. the schedule learns from the update (B2MAPO's upper layer)
        stats.update(algo.schedule.learn(self.plan, data, stats))
        schedule_done = time.perf_counter()

        # 6. the execution policy learns (B2MAPO: MAPPO on pi_seq's data + distillation;
        # nothing where it is the optimized actor or tied to it)
        if algo.execution.trains:
            teacher_context = algo.actor.context(
                rollout.flat(rollout.actions), self.plan.edge_index
            )
            stats.update(
                algo.execution.update(
                    rollout, data.advantages, algo.actor, teacher_context, self.iteration
                )
            )
        # where the update's time went (each step ends with a host sync of its statistics)
        stats["policy_update_s"] = policy_done - start
        stats["schedule_update_s"] = schedule_done - policy_done
        stats["execution_update_s"] = time.perf_counter() - schedule_done
        return stats

    # ------------------------------------------------------------ execution
    @torch.no_grad()
    def act(self, ts: TimeStep, deterministic: bool = False, policy: str = "ind") -> torch.Tensor:
        """Joint actions for a time step: LongTensor ``[E, N]``, or float ``[E, N, d]``
        inside each agent's box for continuous (Box) action spaces.

        Args:
            ts: the current time step (``obs``, ``avail_actions``); tensors or numpy
                arrays; ``avail_actions=None`` means every action is available.
            deterministic: take each agent's most probable action.
            policy: ``"ind"`` (the derived independent policy for B2MAPO; the only
                policy for the other presets) or ``"seq"`` (B2MAPO's batch-sequential policy).

        Raises:
            ValueError: a field of ``ts`` has the wrong type or shape, ``obs`` is not
                finite, or an agent has no available action.
        """
        check_eval_args(1, deterministic, policy)
        actor = self.algorithm.policy(policy)
        obs, avail = act_inputs(ts, self.env.spec, self.device)
        memory = {}
        if getattr(actor, "recurrent", False):  # carried between calls, reset at episode starts
            hidden = self._act_hidden.get(policy)
            if hidden is None or hidden.shape[0] != obs.shape[0]:
                hidden = actor.initial_hidden(obs.shape[0], self.device)
            done = getattr(ts, "done", None)
            if done is not None:
                done = bool_tensor("ts.done", done, (obs.shape[0],), self.device, floats=True)
                hidden = reset_where(hidden, done)
            memory["hidden"] = hidden
        out = actor.act(
            obs,
            avail,
            deterministic,
            self.algorithm.generators["act"],
            batches=self.plan.batches,
            edge_index=self.plan.edge_index,
            **memory,
        )
        if memory:
            self._act_hidden[policy] = out[2]
        return self.env_actions(out[0])

    def reset_memory(self) -> None:
        """Forget the hidden states of recurrent policies acting through :meth:`act`
        (call it after resetting the env yourself; :meth:`evaluate` does)."""
        self._act_hidden.clear()

    @torch.no_grad()
    def evaluate(
        self, episodes: int = 32, deterministic: bool = True, policy: str = "ind", env: Any = None
    ) -> dict[str, float]:
        """Mean and std of the return of ``episodes`` complete episodes.

        Unbiased by episode length: each round resets every copy (fresh start states)
        and keeps the *first* episode of the first ``min(E, remaining)`` copies, so a
        short episode is never counted in place of a long one; rounds repeat until
        ``episodes`` are collected.

        Returns ``return_mean``, ``return_std``, ``episodes`` and, where the env
        reports ``TimeStep.info["won"]`` (SMAX, SMACv2, football), ``win_rate``.

        Runs on ``env`` when given (same agents, observations and actions as the
        training env), else on the training env, which is then reset before the next
        collection (evaluation never mixes with training episodes).

        Raises:
            ValueError: bad arguments, or ``env`` does not match the training env.
            MapographError: a copy did not finish an episode within 4 x ``episode_limit`` steps.
        """
        episodes = check_eval_args(episodes, deterministic, policy)
        target = env if env is not None else self.env
        if target is not self.env:
            _check_env(target)
            check_same_spec(self.env.spec, target.spec, "the evaluation env")
        returns: list[float] = []
        wins: list[float] = []
        try:
            while len(returns) < episodes:
                need = min(target.num_envs, episodes - len(returns))
                round_returns, round_wins = self._first_episodes(
                    target, need, deterministic, policy
                )
                returns += round_returns
                wins += round_wins
        finally:
            if target is self.env:
                self.collector.timestep = None  # the next collect starts from a reset
        values = torch.tensor(returns)
        result = {
            "return_mean": float(values.mean()),
            "return_std": float(values.std(unbiased=False)),
            "episodes": int(values.numel()),
        }
        if wins:
            result["win_rate"] = finite_mean(wins)
        return result

    def _first_episodes(
        self, target: Any, need: int, deterministic: bool, policy: str
    ) -> tuple[list[float], list[float]]:
        """Reset ``target``; the returns (and win flags) of the first episode of copies ``:need``."""
        copies = target.num_envs
        ts = env_timestep(target.reset(), target.spec, copies, "evaluation env.reset()")
        self.reset_memory()
        running = torch.zeros(copies)
        first = torch.full((copies,), float("nan"))
        won = torch.full((copies,), float("nan"))
        finished = torch.zeros(copies, dtype=torch.bool)
        env_device = getattr(target, "device", None) or "cpu"
        limit = 4 * target.spec.episode_limit + 1
        for _ in range(limit):
            actions = self.act(ts, deterministic, policy)
            ts = target.step(check_actions(actions, target.spec, copies, env_device))
            ts = env_timestep(ts, target.spec, copies, "evaluation env.step()")
            running += ts.reward.float().cpu()
            done = ts.done.cpu().bool()
            new = done & ~finished
            if bool(new.any()):
                first[new] = running[new]
                flags = ts.info.get("won") if ts.info else None
                if flags is not None:
                    won[new] = torch.as_tensor(flags, dtype=torch.float32).reshape(-1).cpu()[new]
                finished |= new
            running[done] = 0.0
            if bool(finished[:need].all()):
                break
        else:
            missing = (~finished[:need]).nonzero().flatten().tolist()
            raise MapographError(
                f"evaluation: env copies {missing[:5]} finished no episode in {limit} steps "
                f"(4 x episode_limit={target.spec.episode_limit}): does the env set done?"
            )
        flags = won[:need]
        return first[:need].tolist(), flags[~torch.isnan(flags)].tolist()

    def interdependence(self) -> nx.DiGraph:
        """The interdependence graph: edges ``i -> j`` with ``weight`` = P(edge).

        B2MAPO's learned graph (or the ``fixed_dag`` it was given).

        Raises:
            MapographError: the algorithm's schedule has no graph (MAPPO, HAPPO, A2PO).
        """
        return self.algorithm.schedule.interdependence(self._timestep())

    # ----------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly (tensors and plain data only)."""
        algo = self.algorithm
        env_state = self.env.state_dict() if hasattr(self.env, "state_dict") else None
        return {
            "config": self.cfg.to_dict(),
            "modules": {name: m.state_dict() for name, m in algo.modules().items()},
            "optimizers": algo.optimizer_states(),
            "schedule": algo.schedule.state_dict(),
            "rng": {name: g.get_state() for name, g in algo.generators.items()},
            "torch_rng": torch.get_rng_state(),
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "history": self.history,
            "num_envs": int(self.env.num_envs),  # a numpy int would not load safely
            "env_spec": {
                **{
                    k: getattr(self.env.spec, k)
                    for k in ("n_agents", "obs_dim", "state_dim", "n_actions")
                },
                "continuous": is_continuous(self.env.spec),  # absent from older checkpoints
            },
            "collector": self.collector.state_dict(),
            "env_state": env_state,
            "batches": self.plan.batches,
            "edge_index": self.plan.edge_index,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (raises CheckpointError when it does not fit)."""
        algo = self.algorithm
        try:
            for name, module in algo.modules().items():
                module.load_state_dict(state["modules"][name])
            algo.load_optimizer_states(state["optimizers"])
            algo.schedule.load_state_dict(state["schedule"])
            # the optimizer states carry the learning rates they were saved with; the
            # config's win (``load(..., lr=...)`` resumes a diverged run at a lower one).
            # With annealing every iteration sets them anyway, from the budget left.
            if not self.cfg.lr_anneal:
                algo.scale_learning_rates(1.0)
            for name, g in algo.generators.items():
                g.set_state(state["rng"][name])
            torch.set_rng_state(state["torch_rng"])
            self.iteration = int(state["iteration"])
            self.env_steps = int(state["env_steps"])
            self.history = list(state["history"])
            edge_index = state["edge_index"]
            self.plan = Plan(
                [list(b) for b in state["batches"]],
                None if edge_index is None else edge_index.to(self.device),
            )
            same_copies = state.get("num_envs", self.env.num_envs) == self.env.num_envs
            if (
                same_copies
                and state.get("env_state") is not None
                and hasattr(self.env, "load_state_dict")
            ):
                self.env.load_state_dict(state["env_state"])
                self.collector.load_state_dict(state["collector"])
            else:
                self.collector.timestep = None  # env cannot restore its state: start from a reset
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"checkpoint does not match this trainer: {exc}") from exc

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint atomically; returns its path.

        Raises:
            DivergenceError: a parameter is not finite (the previous checkpoint is kept).
            MapographError: an iteration was interrupted during its update (its state is torn).
        """
        self._check_saveable()
        self._check_finite(self.iteration, "parameters", nonfinite_tensors(self._module_states()))
        path = save_checkpoint(self.state_dict(), path)
        self._checkpoint = Path(path)
        if self.out_dir is not None and Path(path).parent.resolve() == self.out_dir.resolve():
            self._owns_out_dir = True
        return path

    def _check_saveable(self) -> None:
        """Raise when this trainer's state must not be written (diverged, or torn midway)."""
        if self._diverged is not None:
            raise DivergenceError(f"not saving a diverged trainer: {self._diverged}")
        if self._interrupted is not None:
            kept = (
                f"the last checkpoint, {self._checkpoint}, is kept (Trainer.load it to continue)"
                if self._checkpoint is not None
                else "no checkpoint of this run was written before (train it again)"
            )
            raise MapographError(
                f"not saving a partly updated trainer: {self._interrupted}; {kept}"
            )

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
        _check_env(env)
        overrides.setdefault("num_envs", int(env.num_envs))  # evaluation may use another count
        try:
            saved = TrainConfig.from_dict(state["config"])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path} holds an invalid config: {exc}") from exc
        try:
            cfg = saved.replace(**overrides)
        except (TypeError, ValueError) as exc:  # the caller's values, not the checkpoint's
            raise ValueError(f"cannot load {path} with these changes: {exc}") from None
        changed = sorted(
            k for k in overrides if k != "num_envs" and getattr(saved, k) != getattr(cfg, k)
        )
        saved_spec = state.get("env_spec") or {"n_agents": _saved_agent_count(state)}
        for key, saved in saved_spec.items():
            given = is_continuous(env.spec) if key == "continuous" else getattr(env.spec, key)
            if saved is not None and saved != given:
                raise CheckpointError(
                    f"checkpoint {path} was trained on an env with {key}={saved}; this env has "
                    f"{key}={given}"
                )
        bad = nonfinite_tensors({**state["modules"], "schedule": state.get("schedule")})
        if bad:
            raise CheckpointError(
                f"checkpoint {path} holds non-finite parameters ({', '.join(bad[:3])}): "
                "the run diverged before it was written"
            )
        folder = path if path.is_dir() else path.parent
        trainer = cls(env, cfg, out_dir=out_dir if out_dir is not None else folder)
        try:
            trainer.load_state_dict(state)
        except CheckpointError as exc:
            if not changed:
                raise
            first = str(exc).splitlines()[0]
            raise CheckpointError(
                f"checkpoint {path} cannot be loaded with {', '.join(changed)} changed: its "
                f"parameters and optimizer states keep their saved shapes ({first})"
            ) from None
        trainer._owns_out_dir = out_dir is None or Path(out_dir).resolve() == folder.resolve()
        trainer._checkpoint = path if path.is_file() else path / CHECKPOINT_NAME
        return trainer


def _name(schedule: Any) -> str:
    """How an error names a schedule: ``schedule 'LearnedDAG'`` (its class)."""
    return f"schedule {type(schedule).__name__!r}"


def _saved_agent_count(state: dict[str, Any]) -> int | None:
    """The number of agents a checkpoint was trained with (from its critic-free actor rows)."""
    actor = state.get("modules", {}).get("actor", {})
    for key, value in actor.items():
        if key.endswith("weight") and isinstance(value, torch.Tensor) and value.dim() == 3:
            # stacked per-agent parameters [N, in, out]; a shared recurrent torso has one row
            return int(value.shape[0]) if value.shape[0] > 1 else None
    return None


def finite_mean(values: list[float]) -> float:
    """Mean of the finite values (NaN when none)."""
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")
