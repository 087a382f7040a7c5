"""SMACv2 adapter: scenario configs, the missing-install message and the translation of
smacv2's interface, checked against a stand-in battle (StarCraft II cannot be installed here).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from mapograph import OptionalDependencyError
from mapograph.envs import make
from mapograph.envs._smacv2 import Smacv2Copy, smacv2_kwargs

N_NO_ATTACK = 6  # smacv2: no-op, stop, four moves; then one attack action per enemy


class StandInBattle:
    """Follows smacv2's documented interface with a tiny, fully known battle.

    Enemy ``j`` has integer health drawn from the seed; attack action ``6 + j`` removes
    one health point per attacking agent. All enemies dead: ``battle_won``. Every
    step after ``kill_allies_at`` one ally dies (dead agents may only take no-op 0).
    The time limit ends the episode without an ``episode_limit`` flag, as smacv2 does
    with ``continuing_episode=False``.
    """

    def __init__(self, map_name, capability_config, seed=None, kill_allies_at=None, **kwargs):
        assert map_name.startswith("10gen_")
        self.n_agents = capability_config["n_units"]
        self.n_enemies = capability_config["n_enemies"]
        self.seed, self.kill_allies_at = seed, kill_allies_at
        self.limit = 8
        self.rng = np.random.default_rng(seed)
        self.closed = False

    def get_env_info(self):
        return {
            "state_shape": self.n_enemies + 1,
            "obs_shape": self.n_agents + self.n_enemies,
            "n_actions": N_NO_ATTACK + self.n_enemies,
            "n_agents": self.n_agents,
            "episode_limit": self.limit,
        }

    def reset(self):
        self.health = self.rng.integers(1, 4, size=self.n_enemies).astype(float)
        self.alive = np.ones(self.n_agents, bool)
        self.t = 0
        return self.get_obs(), self.get_state()

    def get_obs(self):
        return [
            np.concatenate([np.eye(self.n_agents)[i], self.health]) for i in range(self.n_agents)
        ]

    def get_state(self):
        return np.concatenate([self.health, [self.t]])

    def get_avail_agent_actions(self, agent_id):
        avail = [0] * (N_NO_ATTACK + self.n_enemies)
        if not self.alive[agent_id]:
            avail[0] = 1
            return avail
        avail[1:N_NO_ATTACK] = [1] * (N_NO_ATTACK - 1)
        for j in range(self.n_enemies):
            avail[N_NO_ATTACK + j] = int(self.health[j] > 0)
        return avail

    def get_avail_actions(self):
        return [self.get_avail_agent_actions(i) for i in range(self.n_agents)]

    def step(self, actions):
        assert all(isinstance(a, int) for a in actions)
        assert len(actions) == self.n_agents
        before = self.health.sum()
        for i, a in enumerate(actions):
            assert self.get_avail_agent_actions(i)[a], f"agent {i} took unavailable {a}"
        for a in actions:
            if a >= N_NO_ATTACK:
                self.health[a - N_NO_ATTACK] = max(0.0, self.health[a - N_NO_ATTACK] - 1)
        self.t += 1
        if self.kill_allies_at is not None and self.t >= self.kill_allies_at:
            self.alive[np.argmax(self.alive)] = False
        info = {"battle_won": False}
        terminated = False
        if (self.health == 0).all():
            terminated, info["battle_won"] = True, True
        elif not self.alive.any() or self.t >= self.limit:
            terminated = True
        if terminated:
            info["dead_allies"] = int((~self.alive).sum())
            info["dead_enemies"] = int((self.health == 0).sum())
        return float(before - self.health.sum()), terminated, info

    def close(self):
        self.closed = True


def focus_fire(avail: torch.Tensor) -> torch.Tensor:
    """Attack the first living enemy, else no-op."""
    attack = avail[..., N_NO_ATTACK:]
    return torch.where(attack.any(-1), attack.float().argmax(-1) + N_NO_ATTACK, 0)


def test_scenario_configs_follow_smacv2_examples():
    kw = smacv2_kwargs("zerg_10_vs_11")
    assert kw["map_name"] == "10gen_zerg"
    cap = kw["capability_config"]
    assert (cap["n_units"], cap["n_enemies"]) == (10, 11)
    assert cap["team_gen"]["unit_types"] == ["zergling", "baneling", "hydralisk"]
    assert cap["team_gen"]["weights"] == [0.45, 0.1, 0.45]
    assert cap["team_gen"]["exception_unit_types"] == ["baneling"]
    assert cap["start_positions"]["dist_type"] == "surrounded_and_reflect"
    assert (
        "exception_unit_types"
        not in smacv2_kwargs("protoss_5_vs_5")["capability_config"]["team_gen"]
    )
    assert smacv2_kwargs("terran_5_vs_5", conic_fov=True)["conic_fov"] is True
    for bad in ("protoss_5v5", "orc_5_vs_5", "terran_0_vs_5", None):
        with pytest.raises(ValueError, match="smacv2 scenario"):
            smacv2_kwargs(bad)


@pytest.mark.skipif(importlib.util.find_spec("smacv2") is not None, reason="smacv2 installed")
def test_missing_smacv2_says_how_to_install_it_and_starcraft():
    with pytest.raises(OptionalDependencyError) as err:
        make("smacv2:protoss_5_vs_5")
    message = str(err.value)
    assert "git+https://github.com/oxwhirl/smacv2" in message
    assert "StarCraft II" in message and "SC2PATH" in message


def test_copy_translates_interface_and_seeds_the_game():
    copy = Smacv2Copy(smacv2_kwargs("protoss_3_vs_2"), env_factory=StandInBattle)
    assert (copy.spec.n_agents, copy.spec.obs_dim, copy.spec.state_dim) == (3, 5, 3)
    assert (copy.spec.n_actions, copy.spec.episode_limit) == (8, 8)
    first = copy.reset(seed=14)  # enemy health [1, 3]: no win on the first step
    health = np.random.default_rng(14).integers(1, 4, size=2).astype(float)
    np.testing.assert_array_equal(first["state"], np.append(health, 0.0))
    np.testing.assert_array_equal(first["obs"][:, 3:], np.tile(health, (3, 1)))
    assert first["obs"].dtype == np.float32 and first["avail"].dtype == bool
    assert first["avail"].shape == (3, 8) and not first["avail"][:, 0].any()
    obs, state, avail, reward, terminated, truncated, info = copy.step(np.array([6, 6, 7]))
    assert reward == 3.0 - max(0, 2 - health[0]) - max(0, 1 - health[1])
    assert state[-1] == 1.0 and not terminated and not truncated and info == {}
    copy.close()


def test_vector_env_on_stand_in_wins_truncates_and_resets():
    with make(
        "smacv2:terran_2_vs_3", num_envs=3, seed=5, num_workers=2, env_factory=StandInBattle
    ) as env:
        assert (env.spec.n_agents, env.spec.n_actions) == (2, 9)
        ts = env.reset()
        expected = [np.random.default_rng(5 + e).integers(1, 4, size=3) for e in range(3)]
        for e in range(3):  # copy e built with seed=5+e
            np.testing.assert_array_equal(ts.state[e, :3].numpy(), expected[e])
        total, finished = torch.zeros(3), torch.zeros(3, dtype=torch.bool)
        for _ in range(8):
            ts = env.step(focus_fire(ts.avail_actions))
            total += torch.where(finished, 0.0, ts.reward)
            now = ts.done & ~finished
            # two attackers against 3 enemies of 1-3 health: every battle is won in time
            assert not ts.truncated[now].any()
            if now.any():  # info keys appear on steps where some copy reported them
                assert torch.equal(ts.info["won"][now], torch.ones(int(now.sum())))
                assert torch.equal(ts.info["dead_enemies"][now], torch.full((int(now.sum()),), 3.0))
                assert ts.info["won"][~ts.done].isnan().all()
            assert ts.state[now, -1].eq(0).all()  # auto-reset: a new battle at t = 0
            finished |= ts.done
        assert finished.all()
        assert torch.equal(total, torch.tensor([float(h.sum()) for h in expected]))

        ts = env.reset()
        idle = torch.ones(3, 2, dtype=torch.long)  # "stop": nobody attacks
        for _ in range(7):
            assert not env.step(idle).done.any()
        ts = env.step(idle)
        assert ts.done.all() and ts.truncated.all()  # the time limit, inferred
        assert torch.equal(ts.info["won"], torch.zeros(3))


def test_defeat_is_termination_not_truncation():
    with make("smacv2:zerg_2_vs_2", num_envs=1, env_factory=StandInBattle, kill_allies_at=1) as env:
        ts = env.reset()
        ts = env.step(torch.ones(1, 2, dtype=torch.long))
        assert not ts.done.any()  # one ally died
        ts = env.step(torch.tensor([[0, 1]]))  # the dead one may only no-op
        assert ts.done.all() and not ts.truncated.any()
        assert ts.info["won"].item() == 0.0 and ts.info["dead_allies"].item() == 2.0
