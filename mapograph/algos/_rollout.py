"""The on-policy data one iteration collects, as the optimizer reads it."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Rollout:
    """Tensors of one rollout, shaped ``[T, E, ...]`` (time, env copy) and ``N`` agents.

    Attributes:
        obs: ``[T, E, N, obs_dim]``.
        state: ``[T + 1, E, state_dim]`` (last row: state after the final step).
        avail: ``[T, E, N, n_actions]`` bool (Box actions: the padded-dimension mask).
        actions: ``[T, E, N]`` long, or ``[T, E, N, d]`` float for Box actions (the
            unclipped sample in normalized coordinates).
        log_probs: ``[T, E, N]`` behaviour log-probabilities of ``actions``.
        rewards: ``[T, E]`` team rewards.
        dones: ``[T, E]`` episode ended at this step.
        ind_log_probs: ``[T, E, N]`` log-probabilities under the derived policy
            ``pi_ind`` at collection time (B2MAPO only).
        truncated: ``[T, E]`` the episode ended at this step by the time limit only
            (set when the env reports final states).
        final_state: ``[T, E, state_dim]`` the state reached at step ``t`` before an
            auto-reset (bootstraps truncated episodes); ``None`` when not reported.
        final_values: the critic's raw values of ``final_state`` ``[T, E]``, cached by
            the optimizer on first use (before its critic update).
        starts: ``[T, E]`` step ``t`` is the first of an episode (recurrent policies).
        hidden: ``[T, E, N, H]`` the behaviour actor's hidden state each step started
            from (already reset at episode starts); ``None`` for feed-forward actors.
        ind_hidden: the same for the derived policy ``pi_ind`` (B2MAPO, recurrent).
        critic_hidden: ``[T, E, H]`` the recurrent critic's hidden states.
    """

    obs: torch.Tensor
    state: torch.Tensor
    avail: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor
    ind_log_probs: torch.Tensor | None = None
    truncated: torch.Tensor | None = None
    final_state: torch.Tensor | None = None
    final_values: torch.Tensor | None = None
    starts: torch.Tensor | None = None
    hidden: torch.Tensor | None = None
    ind_hidden: torch.Tensor | None = None
    critic_hidden: torch.Tensor | None = None

    @property
    def continuous(self) -> bool:
        """True when the actions are continuous vectors."""
        return self.actions.dtype.is_floating_point

    @property
    def horizon(self) -> int:
        """Number of time steps ``T``."""
        return int(self.rewards.shape[0])

    @property
    def num_envs(self) -> int:
        """Number of env copies ``E``."""
        return int(self.rewards.shape[1])

    def flat(self, x: torch.Tensor) -> torch.Tensor:
        """Merge the ``[T, E]`` leading axes of ``x`` into one sample axis."""
        return x.reshape(self.horizon * self.num_envs, *x.shape[2:])
