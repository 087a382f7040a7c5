"""Rollout collection: step the vectorized env and fill ``[T, E, N, ...]`` tensors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from mapograph.algos import Rollout
from mapograph.envs import TimeStep
from mapograph.policies import to_box
from mapograph.policies._recurrent import reset_where
from mapograph.train._inputs import env_timestep

# policy(ts) -> (actions [E, N] long or [E, N, d] float, log_probs [E, N]);
# recurrent: policy(ts, hidden) -> (actions, log_probs, next_hidden)
PolicyFn = Callable[..., tuple[torch.Tensor, ...]]


class EnvActions:
    """What the env receives for a policy's actions.

    Discrete actions pass unchanged. Continuous actions are sampled in normalized
    coordinates and stored unclipped in the rollout; the env receives them clipped
    to ``[-1, 1]`` and mapped onto each agent's box (:func:`~mapograph.policies.to_box`).

    Args:
        spec: the env's :class:`~mapograph.envs.EnvSpec`.
        device: where the actions are computed.
    """

    def __init__(self, spec: Any, device: torch.device | str) -> None:
        self.continuous = bool(getattr(spec, "continuous", False))
        if self.continuous:
            self.low, self.high = (b.to(device) for b in spec.action_bounds())

    def __call__(self, actions: torch.Tensor) -> torch.Tensor:
        """The env's actions for the policy's ``actions`` (``[E, N]`` or ``[E, N, d]``)."""
        if not self.continuous:
            return actions
        return to_box(actions, self.low, self.high)


class Collector:
    """Steps an env copy-batched for ``T`` steps per call, carrying episodes across calls.

    Args:
        env: any object with the MultiAgentEnv interface (its ``device`` attribute, if
            any, says where it wants actions; default the CPU).
        device: where the rollout's tensors are stored (the learner's device).
        hidden_shape: the per-copy hidden state of a recurrent behaviour policy
            (``(N, H)``); the collector carries it across steps and calls, resets it
            where an episode starts, and stores it (and the starts) in the rollout.
    """

    def __init__(
        self,
        env: Any,
        device: torch.device | str = "cpu",
        hidden_shape: tuple[int, ...] | None = None,
    ) -> None:
        self.env = env
        self.device = torch.device(device)
        # The one boundary between env and learner: actions go to the env's device
        # (VMAS may simulate on the GPU itself), time steps come to the learner's.
        self.env_device = torch.device(getattr(env, "device", None) or "cpu")
        self.env_actions = EnvActions(env.spec, self.device)
        # an env that promises new outputs and read-only actions is not copied
        self.fresh_outputs = bool(getattr(env, "fresh_outputs", False))
        self.timestep: TimeStep | None = None
        self.running_return = torch.zeros(env.num_envs, device=self.device)
        self.running_length = torch.zeros(env.num_envs, dtype=torch.long, device=self.device)
        self.last_wins: list[float] = []  # win flags of the episodes of the last collect
        self.hidden: torch.Tensor | None = None
        if hidden_shape is not None:
            self.hidden = torch.zeros(env.num_envs, *hidden_shape, device=self.device)
        # copies whose next step starts an episode although TimeStep.done is False (after reset)
        self.fresh = torch.ones(env.num_envs, dtype=torch.bool, device=self.device)

    def reset(self) -> TimeStep:
        """Reset every copy and the running episode statistics."""
        self.timestep = self.receive(self.env.reset(), "env.reset()")
        self.running_return.zero_()
        self.running_length.zero_()
        self.fresh.fill_(True)
        return self.timestep

    def receive(self, ts: Any, source: str = "env.step()") -> TimeStep:
        """``ts`` from the env, checked (:func:`~mapograph.train._inputs.env_timestep`)
        and copied to the learner's device: an env may write its next step into the same
        buffers, and the rollout keeps every step."""
        checked = env_timestep(ts, self.env.spec, self.env.num_envs, source)
        return checked.to(self.device, copy=not self.fresh_outputs)

    def collect(self, policy: PolicyFn, horizon: int) -> tuple[Rollout, list[float], list[int]]:
        """Run ``horizon`` steps with ``policy``.

        An exception midway (a crash, ``KeyboardInterrupt``) leaves the env ahead of the
        time step this collection started from: the next collection starts from a reset.

        Returns:
            ``(rollout, returns, lengths)`` where ``returns``/``lengths`` list the
            episodes that ended during these steps. Where the env reports
            ``TimeStep.info["won"]`` (battle and football envs), the win flags of
            those episodes are left in :attr:`last_wins`.
        """
        try:
            return self._collect(policy, horizon)
        except BaseException:
            self.timestep = None
            raise

    def _collect(self, policy: PolicyFn, horizon: int) -> tuple[Rollout, list[float], list[int]]:
        """:meth:`collect` without its recovery."""
        ts = self.timestep if self.timestep is not None else self.reset()
        obs, state, avail, actions, log_probs, rewards, dones = ([] for _ in range(7))
        truncs, finals, hiddens, starts = [], [], [], []
        finished_returns: list[torch.Tensor] = []
        finished_lengths: list[torch.Tensor] = []
        finished_wins: list[torch.Tensor] = []
        for _ in range(horizon):
            if self.hidden is None:
                act, logp = policy(ts)
            else:  # reset exactly where this step starts an episode, then carry
                start = ts.done.to(self.device).bool() | self.fresh
                self.fresh = torch.zeros_like(self.fresh)
                h = reset_where(self.hidden, start)
                hiddens.append(h)
                starts.append(start)
                act, logp, self.hidden = policy(ts, h)
            obs.append(ts.obs)
            state.append(ts.state)
            avail.append(ts.avail_actions)
            actions.append(act)
            log_probs.append(logp)
            # a copy: an env may overwrite its actions in place (a dead agent's forced
            # no-op), and the rollout keeps the sampled ones, which the log-probs are of
            sent = self.env_actions(act).to(self.env_device, copy=not self.fresh_outputs)
            ts = self.receive(self.env.step(sent))
            reward, done = ts.reward, ts.done  # float32 and bool (env_timestep)
            rewards.append(reward)
            dones.append(done)
            if ts.final_state is not None:
                finals.append(ts.final_state)
                truncs.append(torch.zeros_like(done) if ts.truncated is None else ts.truncated)
            self.running_return += reward
            self.running_length += 1
            if bool(done.any()):
                finished_returns.append(self.running_return[done].clone())
                finished_lengths.append(self.running_length[done].clone())
                wins = episode_wins(ts, done)
                if wins is not None:
                    finished_wins.append(wins)
                self.running_return[done] = 0.0
                self.running_length[done] = 0
        self.timestep = ts
        state.append(ts.state)
        rollout = Rollout(
            obs=torch.stack(obs),
            state=torch.stack(state),
            avail=torch.stack(avail),
            actions=torch.stack(actions),
            log_probs=torch.stack(log_probs),
            rewards=torch.stack(rewards),
            dones=torch.stack(dones),
        )
        if hiddens:
            rollout.hidden = torch.stack(hiddens)
            rollout.starts = torch.stack(starts)
        if len(finals) == horizon:  # the env reports final states: bootstrap truncations
            rollout.final_state = torch.stack(finals)
            rollout.truncated = torch.stack(truncs)
        returns = torch.cat(finished_returns).tolist() if finished_returns else []
        lengths = torch.cat(finished_lengths).tolist() if finished_lengths else []
        self.last_wins = torch.cat(finished_wins).tolist() if finished_wins else []
        return rollout, returns, lengths

    def state_dict(self) -> dict:
        """Current time step and running episode statistics (for exact resume)."""
        ts = self.timestep
        return {
            "hidden": None if self.hidden is None else self.hidden.clone(),
            "fresh": self.fresh.clone(),
            "running_return": self.running_return.clone(),
            "running_length": self.running_length.clone(),
            "timestep": None
            if ts is None
            else {
                "obs": ts.obs,
                "state": ts.state,
                "avail_actions": ts.avail_actions,
                "reward": ts.reward,
                "done": ts.done,
            },
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.running_return.copy_(state["running_return"])
        self.running_length.copy_(state["running_length"])
        if state.get("hidden") is not None and self.hidden is not None:
            self.hidden.copy_(state["hidden"])
        if "fresh" in state:
            self.fresh.copy_(state["fresh"])
        ts = state["timestep"]
        self.timestep = None if ts is None else TimeStep(**ts).to(self.device)


def episode_wins(ts: TimeStep, done: torch.Tensor) -> torch.Tensor | None:
    """Win flags (1.0 / 0.0) of the copies whose episode just ended, if the env reports them.

    Envs report ``TimeStep.info["won"]`` as ``[E]`` floats, NaN on copies still running.
    """
    won = ts.info.get("won") if ts.info else None
    if won is None:
        return None
    won = torch.as_tensor(won, dtype=torch.float32).reshape(-1)[done.cpu()]
    return won[~torch.isnan(won)]
