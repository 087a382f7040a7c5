"""Tutorial 5: your own environment — a PettingZoo env through the adapter, then a
hand-written vectorized ``MultiAgentEnv`` registered with ``mg.envs.register``.

Run it with ``python docs/tutorials/custom_env.py`` (needs the ``mpe`` extra for
PettingZoo); the tests set ``MAPOGRAPH_TUTORIAL_STEPS`` to a tiny budget.
"""

import os

import numpy as np
import torch
from gymnasium import spaces

import mapograph as mg

STEPS = int(os.environ.get("MAPOGRAPH_TUTORIAL_STEPS", 30_000))


# --8<-- [start:pettingzoo]
from pettingzoo import ParallelEnv  # noqa: E402


class EchoGame(ParallelEnv):
    """Each step every agent sees a fresh bit; the team scores when everyone plays it."""

    metadata = {"name": "echo_v0"}

    def __init__(self, n=3, max_cycles=20):
        self.possible_agents = [f"agent_{i}" for i in range(n)]
        self.max_cycles = max_cycles

    def observation_space(self, agent):
        return spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)

    def action_space(self, agent):
        return spaces.Discrete(2)

    def _obs(self):
        return {
            a: np.array([self.bit, i / len(self.possible_agents)], dtype=np.float32)
            for i, a in enumerate(self.agents)
        }

    def reset(self, seed=None, options=None):
        self.rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.t, self.bit = 0, float(self.rng.integers(2))
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions):
        hit = all(actions[a] == self.bit for a in self.agents)
        rewards = {a: float(hit) for a in self.agents}
        self.t += 1
        self.bit = float(self.rng.integers(2))
        done = self.t >= self.max_cycles
        terms = {a: False for a in self.agents}
        truncs = {a: done for a in self.agents}
        obs, infos = self._obs(), {a: {} for a in self.agents}
        if done:
            self.agents = []
        return obs, rewards, terms, truncs, infos


env = mg.envs.make("pettingzoo", env_fn=lambda: EchoGame(n=3), num_envs=8, seed=0)
print(env.spec)  # 3 agents, obs_dim 2, state = concatenated observations
trainer = mg.Trainer(env, mg.TrainConfig(algo="mappo", total_steps=STEPS, seed=0))
trainer.train()
print("EchoGame, MAPPO:", trainer.evaluate(16))
env.close()
# --8<-- [end:pettingzoo]

# --8<-- [start:mpe]
env = mg.envs.make("mpe:simple_spread_v3", num_envs=4, seed=0, N=3, max_cycles=25)
print(env.spec)
env.close()
# --8<-- [end:mpe]


# --8<-- [start:native]
class Relay(mg.envs.MultiAgentEnv):
    """N agents in a line pass a bit on: agent 0 sees it, agent i sees agent i-1's last action.

    The bit is drawn at the start of an episode; team reward per step: the fraction
    of agents whose action equals it (agent i can know it from step i on).
    All copies live in tensors: one ``step`` handles every copy at once.
    """

    def __init__(self, num_envs=1, seed=0, n_agents=4, episode_limit=16):
        self.num_envs, self.n = num_envs, n_agents
        self.spec = mg.envs.EnvSpec(
            n_agents=n_agents,
            obs_dim=2 + n_agents,
            state_dim=1 + n_agents,
            n_actions=2,
            episode_limit=episode_limit,
        )
        self.gen = torch.Generator().manual_seed(seed)
        self.ids = torch.eye(n_agents).expand(num_envs, -1, -1)

    def _timestep(self, reward, done):
        seen = torch.cat([self.bit[:, None], self.last[:, :-1]], dim=1)  # [E, N]
        obs = torch.cat(
            [
                seen[..., None],
                (self.t[:, None, None] / self.spec.episode_limit).expand(-1, self.n, 1),
                self.ids,
            ],
            dim=-1,
        )
        return mg.envs.TimeStep(
            obs=obs.float(),
            state=torch.cat([self.bit[:, None], self.last], dim=1).float(),
            avail_actions=torch.ones(self.num_envs, self.n, 2, dtype=torch.bool),
            reward=reward,
            done=done,
            truncated=done.clone(),
        )

    def _new_bits(self, mask):
        fresh = torch.randint(0, 2, (self.num_envs,), generator=self.gen).float()
        self.bit = torch.where(mask, fresh, self.bit)

    def reset(self):
        self.t = torch.zeros(self.num_envs)
        self.bit = torch.zeros(self.num_envs)
        self.last = torch.zeros(self.num_envs, self.n)
        self._new_bits(torch.ones(self.num_envs, dtype=torch.bool))
        zeros = torch.zeros(self.num_envs)
        return self._timestep(zeros, zeros.bool())

    def step(self, actions):
        actions = self.check_actions(actions)  # clear ValueError on a wrong shape or value
        reward = (actions.float() == self.bit[:, None]).float().mean(dim=1)
        self.last = actions.float()
        self.t += 1
        done = self.t >= self.spec.episode_limit
        self.t[done] = 0  # finished copies reset themselves
        self.last[done] = 0
        self._new_bits(done)
        return self._timestep(reward, done)


# Register a factory: make("relay:<task>", ...) then works everywhere (CLI, tuning, benchmarks).
def make_relay(task=None, num_envs=1, seed=0, **kwargs):
    return Relay(num_envs=num_envs, seed=seed, n_agents=int(task or 4), **kwargs)


mg.envs.register("relay", make_relay, overwrite=True)
env = mg.envs.make("relay:5", num_envs=16, seed=0)
print(env.spec)
trainer = mg.Trainer(env, mg.TrainConfig(algo="b2mapo", total_steps=STEPS, seed=0))
trainer.train()
print("Relay-5, B2MAPO:", trainer.evaluate(16), "batches", trainer.batches)
# --8<-- [end:native]

# --8<-- [start:checks]
try:
    env.step(torch.zeros(16, 3, dtype=torch.long))  # 3 agents' actions for a 5-agent env
except ValueError as err:
    print("ValueError:", err)
env.close()
# --8<-- [end:checks]
