"""Bad input to env.step, Trainer.act/evaluate/load is refused clearly; evaluation is unbiased."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

import mapograph as mg
from mapograph import CheckpointError
from mapograph.envs import EnvSpec, MultiAgentEnv, TimeStep

ENV = "coordination:chain-4"


class MaskedEnv(MultiAgentEnv):
    """Two agents, three actions; action 2 is never available. Episodes last one step."""

    def __init__(self, num_envs: int = 4) -> None:
        self.spec = EnvSpec(n_agents=2, obs_dim=3, state_dim=2, n_actions=3, episode_limit=1)
        self.num_envs = num_envs

    def _ts(self, reward: torch.Tensor, done: torch.Tensor) -> TimeStep:
        avail = torch.ones(self.num_envs, 2, 3, dtype=torch.bool)
        avail[..., 2] = False
        return TimeStep(torch.ones(self.num_envs, 2, 3), torch.ones(self.num_envs, 2), avail,
                        reward, done)  # fmt: skip

    def reset(self) -> TimeStep:
        e = self.num_envs
        return self._ts(torch.zeros(e), torch.zeros(e, dtype=torch.bool))

    def step(self, actions: torch.Tensor) -> TimeStep:
        actions = self.check_actions(actions)
        return self._ts(actions.float().sum(1), torch.ones(self.num_envs, dtype=torch.bool))


def test_env_step_refuses_an_unavailable_action_unless_the_check_is_off():
    env = MaskedEnv()
    env.reset()
    actions = torch.zeros(4, 2, dtype=torch.long)
    env.step(actions)
    actions[3, 1] = 2
    with pytest.raises(ValueError, match="action 2 of agent 1 in env copy 3 is not available"):
        env.step(actions)
    env.check_avail = False
    assert torch.equal(env.step(actions).reward, torch.tensor([0.0, 0.0, 0.0, 2.0]))


def trained(env=None, **kw):
    env = env or mg.envs.make(ENV, num_envs=4)
    cfg = mg.TrainConfig(
        total_steps=64, rollout_length=16, num_envs=env.num_envs, progress=False, **kw
    )
    return mg.Trainer(env, cfg)


def test_act_takes_numpy_and_none_masks_and_refuses_bad_input(device):
    trainer = trained(MaskedEnv(), device=device)
    ts = trainer.env.reset()
    expected = trainer.act(ts, deterministic=True)
    as_numpy = TimeStep(
        ts.obs.numpy(), ts.state.numpy(), ts.avail_actions.numpy(), ts.reward, ts.done
    )
    assert torch.equal(trainer.act(as_numpy, deterministic=True), expected)
    assert not (trainer.act(ts) == 2).any()  # the mask is obeyed
    no_mask = TimeStep(ts.obs, ts.state, None, ts.reward, ts.done)
    assert trainer.act(no_mask).shape == (4, 2)
    for bad, message in [
        (3, "TimeStep"),
        (None, "TimeStep"),
        (TimeStep("obs", ts.state, ts.avail_actions, ts.reward, ts.done), "tensor or an array"),
        (TimeStep(ts.obs[:, :1], ts.state, ts.avail_actions, ts.reward, ts.done), r"shape \[E, 2, 3\]"),
        (TimeStep(ts.obs, ts.state, ts.avail_actions[:1], ts.reward, ts.done), "avail_actions must have shape"),
        (TimeStep(ts.obs, ts.state, ts.avail_actions[..., :2], ts.reward, ts.done), "avail_actions must have shape"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            trainer.act(bad)
    nan_obs = ts.obs.clone()
    nan_obs[2, 1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or infinite values \(env copy 2\)"):
        trainer.act(TimeStep(nan_obs, ts.state, ts.avail_actions, ts.reward, ts.done))
    none_available = ts.avail_actions.clone()
    none_available[1, 0] = False
    with pytest.raises(ValueError, match="agent 0 in env copy 1 has no available action"):
        trainer.act(TimeStep(ts.obs, ts.state, none_available, ts.reward, ts.done))


class ReshapedEnv(MaskedEnv):
    """:class:`MaskedEnv` whose time steps pass through ``change`` (a custom env's mistake)."""

    def __init__(self, change, num_envs: int = 4) -> None:
        super().__init__(num_envs)
        self.change = change

    def _ts(self, reward: torch.Tensor, done: torch.Tensor) -> TimeStep:
        return self.change(super()._ts(reward, done))


def _with(**fields):
    def change(ts: TimeStep) -> TimeStep:
        for name, fn in fields.items():
            setattr(ts, name, fn(getattr(ts, name)))
        return ts

    return change


@pytest.mark.parametrize("dtype", [torch.float64, torch.int64, torch.bool])
def test_an_env_with_other_observation_dtypes_trains_and_acts(dtype):
    env = ReshapedEnv(_with(obs=lambda x: x.to(dtype), state=lambda x: x.to(dtype)))
    trainer = trained(env)
    trainer.train()
    assert trainer.act(env.reset()).shape == (4, 2)
    assert trainer.evaluate(episodes=4)["episodes"] == 4


def _dead_agent(avail: torch.Tensor) -> torch.Tensor:
    avail = avail.clone()
    avail[1, 0] = False
    return avail


@pytest.mark.parametrize(
    "change, message",
    [
        (_with(obs=lambda x: x[..., :2]), r"env.reset\(\) returned obs of shape \[4, 2, 2\]"),
        (_with(obs=lambda x: x[:, :1]), r"obs of shape \[4, 1, 3\].*\[E, N, obs_dim\]"),
        (_with(state=lambda x: x[:, :1]), r"state of shape \[4, 1\].*\[E, state_dim\]"),
        (_with(reward=lambda x: x[:, None]), r"reward of shape \[4, 1\].*one team reward"),
        (_with(done=lambda x: x[:, None]), r"done of shape \[4, 1\]"),
        (_with(avail_actions=lambda x: None), "returned no avail_actions"),
        (_with(avail_actions=lambda x: x[..., :2]), r"avail_actions of shape \[4, 2, 2\]"),
        (_with(avail_actions=_dead_agent), "no available action for agent 0 in env copy 1"),
    ],
)
def test_a_custom_env_output_of_the_wrong_shape_is_named_in_one_line(change, message):
    trainer = trained(ReshapedEnv(change))
    with pytest.raises(ValueError, match=message) as info:
        trainer.train()
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=message):
        trainer.evaluate(episodes=2)


class BufferEnv(MaskedEnv):
    """Writes every time step into the same tensors, and forces agent 0's action to 0 in
    place (as an env does for a dead agent); its observation counts the steps."""

    def __init__(self, num_envs: int = 4) -> None:
        super().__init__(num_envs)
        self.count = 0
        self.buffers = super()._ts(torch.zeros(num_envs), torch.zeros(num_envs, dtype=torch.bool))

    def _ts(self, reward: torch.Tensor, done: torch.Tensor) -> TimeStep:
        self.buffers.obs.fill_(float(self.count))
        self.buffers.reward.copy_(reward)
        self.buffers.done.copy_(done)
        return self.buffers

    def step(self, actions: torch.Tensor) -> TimeStep:
        actions = self.check_actions(actions)
        actions[:, 0] = 0
        self.count += 1
        return self._ts(actions.float().sum(1), torch.ones(self.num_envs, dtype=torch.bool))


def test_the_rollout_keeps_its_own_copies_of_what_the_env_reuses_or_edits():
    trainer = trained(BufferEnv())
    rollout, _, _ = trainer.collector.collect(trainer._behaviour(trainer.plan), 16)
    assert rollout.obs[:, 0, 0, 0].tolist() == [float(t) for t in range(16)]
    assert bool((rollout.actions[..., 0] != 0).any())  # the sampled actions, not the env's edit
    assert torch.equal(rollout.rewards, rollout.actions[..., 1].float())


FRESH_ENVS = ["coordination:random-6", "contextual:mixed-10", "climbing:tree-7",
              "continuous:follow-3", "vmas:balance", "smax:3m"]  # fmt: skip


@pytest.mark.parametrize("env_id", FRESH_ENVS)
def test_envs_that_promise_fresh_outputs_keep_them(env_id):
    """A built-in env stored without the collector's copies gives the same rollouts as
    with them: it never writes an earlier output again nor edits its actions."""
    if env_id.startswith(("vmas", "smax")):
        pytest.importorskip("vmas" if env_id.startswith("vmas") else "jaxmarl")
    rollouts = []
    for copies in (True, False):
        env = mg.envs.make(env_id, num_envs=3, seed=4)
        assert env.fresh_outputs
        trainer = trained(env)
        trainer.collector.fresh_outputs = not copies
        behaviour = trainer._behaviour(trainer.plan)
        rollouts.append([trainer.collector.collect(behaviour, 12)[0] for _ in range(3)])
        env.close()
    for with_copies, without in zip(*rollouts):
        for name in ("obs", "state", "avail", "actions", "log_probs", "rewards", "dones"):
            assert torch.equal(getattr(with_copies, name), getattr(without, name)), name


def test_evaluate_refuses_bad_arguments_and_a_foreign_env():
    trainer = trained()
    for kwargs, message in [
        ({"episodes": 0}, "episodes"),
        ({"episodes": True}, "episodes"),
        ({"episodes": 2.5}, "episodes"),
        ({"deterministic": "yes"}, "deterministic"),
        ({"policy": "best"}, "policy"),
        ({"env": mg.envs.make("coordination:chain-6", num_envs=2)}, "n_agents=6"),
    ]:
        with pytest.raises(ValueError, match=message):
            trainer.evaluate(**kwargs)


def test_load_with_another_copy_count_trains_and_evaluates(tmp_path):
    trainer = trained(mg.envs.make(ENV, num_envs=8))
    trainer.train()
    trainer.save(tmp_path / "checkpoint.pt")
    assert trainer.env_steps == 128  # one iteration of 8 copies
    loaded = mg.Trainer.load(tmp_path, mg.envs.make(ENV, num_envs=2), total_steps=128 + 64)
    assert loaded.evaluate(4)["episodes"] == 4
    loaded.train()
    assert loaded.env_steps == 128 + 2 * 32  # two iterations of 2 copies


@pytest.mark.parametrize(
    "other,field",
    [("coordination:chain-6", "n_agents=4"), ("coordination:chain-4", "obs_dim=7")],
)
def test_load_names_what_differs_between_the_checkpoint_and_the_env(tmp_path, other, field):
    trainer = trained()
    trainer.save(tmp_path / "checkpoint.pt")
    kwargs = {"n_actions": 3} if field.startswith("obs_dim") else {}
    with pytest.raises(CheckpointError, match=f"trained on an env with {field}"):
        mg.Trainer.load(tmp_path, mg.envs.make(other, num_envs=4, **kwargs))


class LengthBiasEnv(MultiAgentEnv):
    """Even copies: episodes of 1 step and return 0. Odd copies: 5 steps and return 1."""

    def __init__(self, num_envs: int = 4) -> None:
        self.spec = EnvSpec(n_agents=1, obs_dim=1, state_dim=1, n_actions=2, episode_limit=5)
        self.num_envs = num_envs
        self.length = torch.where(torch.arange(num_envs) % 2 == 0, 1, 5)
        self.t = torch.zeros(num_envs, dtype=torch.long)

    def _ts(self, reward, done) -> TimeStep:
        e = self.num_envs
        return TimeStep(torch.zeros(e, 1, 1), torch.zeros(e, 1), torch.ones(e, 1, 2, dtype=torch.bool),
                        reward, done)  # fmt: skip

    def reset(self) -> TimeStep:
        self.t.zero_()
        return self._ts(torch.zeros(self.num_envs), torch.zeros(self.num_envs, dtype=torch.bool))

    def step(self, actions) -> TimeStep:
        self.check_actions(actions)
        self.t += 1
        reward = torch.where(self.length == 5, 0.2, 0.0)
        done = self.t >= self.length
        self.t[done] = 0
        return self._ts(reward, done)


@pytest.mark.parametrize("episodes", [4, 8, 6])
def test_evaluation_does_not_favour_short_episodes(episodes):
    """Counting the first finished episodes would give 0.0 (only the short ones finish first)."""
    trainer = trained(LengthBiasEnv(4))
    result = trainer.evaluate(episodes)
    assert result["episodes"] == episodes
    # rounds take copies 0..3 in order: half the episodes are long ones (return 1)
    long_ones = (episodes // 4) * 2 + min(episodes % 4, 4) // 2
    assert result["return_mean"] == pytest.approx(long_ones / episodes)


def test_every_mpe_evaluation_starts_from_fresh_states_reproducibly():
    pytest.importorskip("mpe2")
    env = mg.envs.make("mpe:simple_spread_v3", num_envs=2, seed=0, max_cycles=5)
    first, second = env.reset().obs, env.reset().obs
    assert not torch.equal(first, second)  # a new start state each reset
    again = mg.envs.make("mpe:simple_spread_v3", num_envs=2, seed=0, max_cycles=5)
    assert torch.equal(again.reset().obs, first) and torch.equal(again.reset().obs, second)
    assert not torch.equal(first[0], first[1])  # copies differ from each other too
    assert isinstance(np.asarray(first), np.ndarray)


def test_wrong_types_at_the_public_entry_points_are_named(capsys):
    env = mg.envs.make(ENV, num_envs=4)
    bad = [
        (lambda: mg.envs.make(ENV, seed="a"), r"seed must be a non-negative int, got 'a'"),
        (lambda: mg.envs.make(ENV, num_envs=True), r"num_envs must be a positive int"),
        (lambda: mg.partition.agent_by_agent("012"), r"order must be a sequence of int agent ids"),
        (lambda: mg.partition.agent_by_agent([0.0, 1.0]), r"sequence of int agent ids"),
        (lambda: mg.Trainer(env, {"lr": 1e-3}), r"Trainer takes a TrainConfig.*got dict"),
    ]
    for call, match in bad:
        with pytest.raises(ValueError, match=match):
            call()
    trainer = mg.Trainer(env, mg.TrainConfig(num_envs=4, progress=False, tensorboard=False))
    with pytest.raises(ValueError, match=r"deterministic must be True or False, got 'yes'"):
        trainer.act(env.reset(), deterministic="yes")
    assert mg.partition.agent_by_agent(np.array([1, 0])) == [[1], [0]]  # numpy ids are ints
    from mapograph.cli import main

    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error
        main(["train", "--env", ENV, "--eval-episodes", "-1", "--steps", "8"])
    assert exit_info.value.code == 2
    assert "--eval-episodes: must be >= 0, got -1" in capsys.readouterr().err


def test_numpy_integers_are_read_as_ints_at_the_public_entry_points():
    # TrainConfig(seed=np.int64(3)) is accepted; make() and evaluate() read them alike
    env = mg.envs.make(ENV, num_envs=np.int64(2), seed=np.int64(3))
    assert type(env.num_envs) is int and env.num_envs == 2
    assert torch.equal(env.reset().obs, mg.envs.make(ENV, num_envs=2, seed=3).reset().obs)
    trainer = mg.Trainer(env, mg.TrainConfig(progress=False, tensorboard=False))
    assert trainer.evaluate(episodes=np.int64(3))["episodes"] == 3
    for call in (
        lambda: mg.envs.make(ENV, num_envs=np.bool_(True)),
        lambda: mg.envs.make(ENV, seed=np.float64(1.0)),
        lambda: trainer.evaluate(episodes=np.bool_(True)),
    ):
        with pytest.raises(ValueError, match="must be a (positive|non-negative) int"):
            call()


def test_make_refuses_more_copies_than_a_config_allows_before_allocating():
    with pytest.raises(ValueError, match=r"num_envs must be at most 1048576, got 1000000000000"):
        mg.envs.make(ENV, num_envs=10**12)


class SmallerActionSpaceEnv(MaskedEnv):
    """:class:`MaskedEnv` whose agent 0 has two actions (``Discrete(2)``), agent 1 three."""

    def __init__(self, num_envs: int = 4) -> None:
        super().__init__(num_envs)
        self.spec = EnvSpec(2, 3, 2, 3, 1, action_spaces=(spaces.Discrete(2), spaces.Discrete(3)))


def test_act_without_a_mask_keeps_each_agent_inside_its_own_action_space():
    trainer = trained(SmallerActionSpaceEnv(num_envs=64))
    ts = trainer.env.reset()
    no_mask = TimeStep(ts.obs, ts.state, None, ts.reward, ts.done)
    for _ in range(5):
        assert (trainer.act(no_mask)[:, 0] < 2).all()  # agent 0 has no action 2


def test_act_on_a_box_env_checks_its_mask_and_reads_none_as_the_spec_mask():
    env = mg.envs.make("continuous:follow-3", num_envs=4)
    trainer = trained(env)
    ts = env.reset()
    expected = trainer.act(ts, deterministic=True)
    no_mask = TimeStep(ts.obs, ts.state, None, ts.reward, ts.done)
    assert torch.equal(trainer.act(no_mask, deterministic=True), expected)  # padding stays unused
    for avail, message in [
        (torch.ones(5, dtype=torch.bool), r"avail_actions must have shape \[4, 3, 2\]"),
        (torch.full((4, 3, 2), 0.5), "avail_actions must be boolean"),
    ]:
        with pytest.raises(ValueError, match=message):
            trainer.act(TimeStep(ts.obs, ts.state, avail, ts.reward, ts.done))


@pytest.mark.parametrize(
    ("done", "message"),
    [
        (torch.tensor([True]), r"ts.done must have shape \[4\]"),
        (torch.ones(1, 4, dtype=torch.bool), r"ts.done must have shape \[4\]"),
        (torch.full((4,), 0.5), "ts.done must be boolean"),
    ],
)
def test_a_recurrent_policy_refuses_a_done_flag_it_would_broadcast(done, message):
    trainer = trained(recurrent=True, chunk_length=16)
    ts = trainer.env.reset()
    with pytest.raises(ValueError, match=message):
        trainer.act(TimeStep(ts.obs, ts.state, ts.avail_actions, ts.reward, done))
    assert trainer.act(
        TimeStep(ts.obs, ts.state, ts.avail_actions, ts.reward, np.ones(4))
    ).shape == (4, 4)


class FollowSizedDiscreteEnv(MultiAgentEnv):
    """Discrete actions with the sizes of ``continuous:follow-3`` (3 agents, obs 5, state 4,
    2 actions)."""

    def __init__(self, num_envs: int = 2) -> None:
        self.spec = EnvSpec(n_agents=3, obs_dim=5, state_dim=4, n_actions=2, episode_limit=4)
        self.num_envs = num_envs

    def reset(self) -> TimeStep:
        e = self.num_envs
        return TimeStep(torch.zeros(e, 3, 5), torch.zeros(e, 4), torch.ones(e, 3, 2, dtype=torch.bool),
                        torch.zeros(e), torch.ones(e, dtype=torch.bool))  # fmt: skip

    def step(self, actions) -> TimeStep:
        self.check_actions(actions)
        return self.reset()


def test_evaluate_and_load_refuse_an_env_with_another_kind_of_actions(tmp_path):
    trainer = trained(mg.envs.make("continuous:follow-3", num_envs=2))
    with pytest.raises(ValueError, match="the evaluation env has discrete actions, the trainer's"):
        trainer.evaluate(2, env=FollowSizedDiscreteEnv())
    trainer.save(tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="trained on an env with continuous=True"):
        mg.Trainer.load(tmp_path, FollowSizedDiscreteEnv())
    discrete = trained(FollowSizedDiscreteEnv())
    with pytest.raises(ValueError, match="the evaluation env has continuous actions"):
        discrete.evaluate(2, env=mg.envs.make("continuous:follow-3", num_envs=2))


def test_evaluate_refuses_an_env_whose_agents_have_other_action_spaces():
    trainer = trained(SmallerActionSpaceEnv())  # agent 0: Discrete(2)
    with pytest.raises(ValueError, match="the evaluation env's agents have other action spaces"):
        trainer.evaluate(2, env=MaskedEnv())  # agent 0: Discrete(3)
