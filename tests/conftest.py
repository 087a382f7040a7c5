"""Shared test fixtures: a small matrix game whose joint objective is computable by hand."""

from __future__ import annotations

import itertools

import pytest
import torch

from mapograph.envs import EnvSpec, MultiAgentEnv, TimeStep

# Tiny models: one intra-op thread is faster and keeps timings stable on shared cores.
torch.set_num_threads(1)


class MatrixGameEnv(MultiAgentEnv):
    """A one-step cooperative matrix game: the team reward is ``payoff[a_1, ..., a_N]``.

    Observations are constant, so each agent's policy is one categorical
    distribution and the exact objective is ``sum_a prod_i pi_i(a_i) payoff[a]``.
    """

    def __init__(self, payoff: torch.Tensor, num_envs: int = 64, seed: int = 0) -> None:
        self.payoff = payoff.float()
        n_agents = payoff.dim()
        n_actions = payoff.shape[0]
        self.spec = EnvSpec(
            n_agents=n_agents, obs_dim=2, state_dim=2, n_actions=n_actions, episode_limit=1
        )
        self.num_envs = num_envs

    def _timestep(self, reward: torch.Tensor, done: torch.Tensor) -> TimeStep:
        e, n = self.num_envs, self.spec.n_agents
        return TimeStep(
            obs=torch.ones(e, n, 2),
            state=torch.ones(e, 2),
            avail_actions=torch.ones(e, n, self.spec.n_actions, dtype=torch.bool),
            reward=reward,
            done=done,
        )

    def reset(self) -> TimeStep:
        return self._timestep(
            torch.zeros(self.num_envs), torch.zeros(self.num_envs, dtype=torch.bool)
        )

    def step(self, actions: torch.Tensor) -> TimeStep:
        actions = self.check_actions(actions)
        reward = self.payoff[tuple(actions.t())]
        return self._timestep(reward, torch.ones(self.num_envs, dtype=torch.bool))

    def objective(self, probs: torch.Tensor) -> float:
        """Exact expected team reward for per-agent action probabilities ``[N, A]``."""
        total = 0.0
        n, a = probs.shape
        for joint in itertools.product(range(a), repeat=n):
            p = 1.0
            for i, ai in enumerate(joint):
                p *= float(probs[i, ai])
            total += p * float(self.payoff[joint])
        return total


def policy_probs(trainer) -> torch.Tensor:
    """``[N, A]`` action probabilities of the trainer's optimized policy on the constant obs."""
    env = trainer.env
    obs = torch.ones(1, env.spec.n_agents, 2)
    with torch.no_grad():
        logits = trainer.actor.logits(obs, None)
    return torch.softmax(logits, -1)[0]


@pytest.fixture
def climbing_game() -> MatrixGameEnv:
    """The 2-agent climbing game (Claus and Boutilier 1998), rescaled to [-1, 1]."""
    payoff = torch.tensor([[11.0, -30.0, 0.0], [-30.0, 7.0, 6.0], [0.0, 0.0, 5.0]]) / 30.0
    return MatrixGameEnv(payoff, num_envs=256)


@pytest.fixture
def three_agent_game() -> MatrixGameEnv:
    """A 3-agent, 2-action game with a coordination reward on agents 0 -> 1 -> 2."""
    g = torch.Generator().manual_seed(3)
    payoff = torch.rand(2, 2, 2, generator=g)
    return MatrixGameEnv(payoff, num_envs=256)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Every device test runs on the CPU, and on CUDA where a GPU is present (skipped otherwise)."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    return request.param
