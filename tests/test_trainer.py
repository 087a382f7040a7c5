"""Trainer: history, act/evaluate, checkpoints and exact resume, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import mapograph as mg
from mapograph import CheckpointError

from conftest import MatrixGameEnv, policy_probs


def make_env(num_envs: int = 8) -> MatrixGameEnv:
    payoff = torch.rand(2, 3, 3, generator=torch.Generator().manual_seed(0)).sum(0)
    return MatrixGameEnv(payoff, num_envs=num_envs)


def small_cfg(**kw) -> mg.TrainConfig:
    base = dict(
        total_steps=8 * 16 * 6,
        rollout_length=16,
        num_envs=8,
        seed=3,
        progress=False,
        checkpoint_every=2,
    )
    base.update(kw)
    return mg.TrainConfig(**base)


def test_history_has_documented_fields_and_steps_advance(tmp_path):
    trainer = mg.Trainer(make_env(), small_cfg(), out_dir=tmp_path)
    result = trainer.train()
    assert len(result.history) == 6
    for key in ("step", "return_mean", "collect_s", "update_s", "batches"):
        assert key in result.history[0]
    assert [h["step"] for h in result.history] == [128 * (i + 1) for i in range(6)]
    assert all(math.isfinite(h["return_mean"]) for h in result.history)
    assert (tmp_path / "progress.csv").read_text().count("\n") == 7
    assert (tmp_path / "checkpoint.pt").exists()


def test_train_calls_back_with_every_logged_row():
    seen = []
    trainer = mg.Trainer(make_env(), small_cfg(total_steps=8 * 16 * 3))
    result = trainer.train(callback=seen.append)
    assert [row["step"] for row in seen] == [128, 256, 384]
    assert seen == result.history


def test_act_and_evaluate_shapes():
    env = make_env()
    trainer = mg.Trainer(env, small_cfg())
    ts = env.reset()
    actions = trainer.act(ts)
    assert actions.shape == (8, 2) and actions.dtype == torch.long
    result = trainer.evaluate(episodes=5)
    assert set(result) >= {"return_mean", "return_std"}
    with pytest.raises(ValueError, match="obs"):
        trainer.act(
            mg.envs.TimeStep(torch.zeros(8, 3, 2), ts.state, ts.avail_actions, ts.reward, ts.done)
        )


def _params(trainer) -> dict[str, torch.Tensor]:
    state = {}
    for name, module in trainer.algorithm.modules().items():
        for key, value in module.state_dict().items():
            state[f"{name}.{key}"] = value.clone()
    return state


@pytest.mark.parametrize("algo", ["mappo", "a2po", "b2mapo"])
def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(tmp_path, algo):
    full = mg.Trainer(make_env(), small_cfg(algo=algo))
    full.train()
    part = mg.Trainer(make_env(), small_cfg(algo=algo), out_dir=tmp_path)
    for _ in range(4):  # "killed" after iteration 4 (checkpoint at 2 and 4)
        part.train_iteration()
        if part.iteration % 2 == 0:
            part.save(tmp_path / "checkpoint.pt")
    part.train_iteration()  # progress after the last checkpoint is lost
    resumed = mg.Trainer.load(tmp_path, make_env())
    assert resumed.iteration == 4
    resumed.train()
    for key, value in _params(full).items():
        assert torch.equal(value, _params(resumed)[key]), key
    assert [h["step"] for h in resumed.history] == [h["step"] for h in full.history]


@pytest.mark.parametrize(
    "env_id", ["coordination:chain-4", "contextual:tree-5", "continuous:follow-3"]
)
def test_every_builtin_game_resumes_exactly(tmp_path, env_id):
    """The built-in games save their own state: a resumed run equals an uninterrupted one."""
    cfg = small_cfg(algo="happo", total_steps=4 * 8 * 5, num_envs=4, rollout_length=8)
    full = mg.Trainer(mg.envs.make(env_id, num_envs=4, seed=1), cfg)
    full.train()
    part = mg.Trainer(mg.envs.make(env_id, num_envs=4, seed=1), cfg, out_dir=tmp_path)
    for _ in range(3):
        part.train_iteration()
    part.save(tmp_path / "checkpoint.pt")
    resumed = mg.Trainer.load(tmp_path, mg.envs.make(env_id, num_envs=4, seed=1))
    resumed.train()
    for key, value in _params(full).items():
        assert torch.equal(value, _params(resumed)[key]), key


def test_corrupt_and_truncated_checkpoints_raise_clear_errors(tmp_path):
    trainer = mg.Trainer(make_env(), small_cfg())
    path = trainer.save(tmp_path / "checkpoint.pt")
    data = path.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        mg.Trainer.load(tmp_path / "truncated.pt", make_env())
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        mg.Trainer.load(tmp_path / "garbage.pt", make_env())
    with pytest.raises(CheckpointError, match="not found"):
        mg.Trainer.load(tmp_path / "missing.pt", make_env())
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a mapograph checkpoint"):
        mg.Trainer.load(tmp_path / "other.pt", make_env())


def test_saving_to_a_run_folder_writes_its_checkpoint_file(tmp_path):
    trainer = mg.Trainer(make_env(), small_cfg())
    path = trainer.save(tmp_path)  # a folder, as load() takes one
    assert path == tmp_path / "checkpoint.pt" and path.is_file()
    assert mg.Trainer.load(tmp_path, make_env()).iteration == trainer.iteration


def test_checkpoint_for_other_env_shape_is_rejected(tmp_path):
    trainer = mg.Trainer(make_env(), small_cfg())
    trainer.save(tmp_path / "checkpoint.pt")
    other = MatrixGameEnv(torch.rand(3, 3, 3), num_envs=8)
    with pytest.raises(CheckpointError):
        mg.Trainer.load(tmp_path / "checkpoint.pt", other)


def test_config_yaml_round_trip_and_errors(tmp_path):
    cfg = mg.TrainConfig(algo="b2mapo", total_steps=1234, fixed_order=None, k=4)
    path = tmp_path / "cfg.yaml"
    cfg.to_yaml(path)
    assert mg.TrainConfig.from_yaml(path) == cfg
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        mg.TrainConfig.from_dict({"algo": "mappo", "learning_rate": 1.0})
    with pytest.raises(ValueError, match="num_envs"):
        mg.TrainConfig(num_envs=0)
    with pytest.raises(ValueError, match="partition"):
        mg.TrainConfig(partition="zigzag")
    # YAML 1.1 reads 1e-3 (no dot) as a string: float fields take it as the number
    written = mg.TrainConfig.from_yaml("lr: 1e-3\ncritic_lr: 2E-4\nclip: .1\n")
    assert (written.lr, written.critic_lr, written.clip) == (1e-3, 2e-4, 0.1)
    with pytest.raises(ValueError, match=r"hidden must be a positive int, got '1e3'"):
        mg.TrainConfig.from_yaml("hidden: 1e3\n")  # not for int fields
    with pytest.raises(ValueError, match=r"lr must be a finite number > 0, got 'fast'"):
        mg.TrainConfig.from_yaml("lr: fast\n")
    assert mg.TrainConfig.from_yaml("") == mg.TrainConfig()  # empty text: the defaults


def test_wrong_env_object_is_rejected():
    with pytest.raises(ValueError, match="MultiAgentEnv"):
        mg.Trainer(object(), small_cfg())


class WinFlagGame(MatrixGameEnv):
    """A one-step matrix game that reports ``info["won"]`` = 1 exactly when the reward is 1."""

    def step(self, actions: torch.Tensor) -> mg.envs.TimeStep:
        ts = super().step(actions)
        ts.info["won"] = (ts.reward == 1.0).float()
        return ts


def test_win_rate_is_tracked_where_the_env_reports_wins():
    payoff = torch.zeros(2, 2)
    payoff[1, 1] = 1.0  # reward 1 (a win) only when both agents play action 1
    trainer = mg.Trainer(WinFlagGame(payoff, num_envs=8), small_cfg(total_steps=8 * 16 * 2))
    trainer.train()
    for row in trainer.history:  # every episode's reward is its win flag
        assert row["win_rate"] == pytest.approx(row["return_mean"])
    for deterministic in (True, False):
        result = trainer.evaluate(episodes=40, deterministic=deterministic)
        assert 0.0 <= result["win_rate"] <= 1.0
        assert result["win_rate"] == pytest.approx(result["return_mean"])
    plain = mg.Trainer(make_env(), small_cfg(total_steps=8 * 16))
    plain.train()
    assert math.isnan(plain.history[-1]["win_rate"])
    assert "win_rate" not in plain.evaluate(episodes=8)


@pytest.mark.parametrize(
    "algo, pi_ind",
    [("mappo", None), ("b2mapo", "tied"), ("b2mapo", "separate"), ("b2mapo", "readout")],
)
def test_iteration_stats_split_the_update_time(algo, pi_ind):
    env = mg.envs.make("coordination:chain-4", num_envs=2, seed=0)
    extra = {"pi_ind": pi_ind} if pi_ind else {}
    cfg = mg.TrainConfig(algo=algo, rollout_length=16, progress=False, tensorboard=False, **extra)
    row = mg.Trainer(env, cfg).train_iteration()
    parts = [row["policy_update_s"], row["schedule_update_s"], row["execution_update_s"]]
    assert all(p >= 0 for p in parts)
    assert sum(parts) <= row["update_s"] + 1e-6
    if algo == "b2mapo":  # the upper layer does work; so does a separate pi_ind
        assert parts[1] > 0
        assert ("ind_policy_loss" in row) == (pi_ind == "separate")


@pytest.mark.parametrize(
    "algo, extra", [("mappo", {}), ("b2mapo", {}), ("b2mapo", {"pi_ind": "separate"})]
)
def test_lr_anneal_decays_the_learning_rates_linearly_over_the_budget(algo, extra):
    env = mg.envs.make("coordination:chain-4", num_envs=4, seed=0)
    cfg = mg.TrainConfig(
        **extra,
        algo=algo,
        rollout_length=8,
        total_steps=4 * 8 * 4,
        lr=1e-3,
        critic_lr=2e-3,
        lr_anneal=True,
        progress=False,
        tensorboard=False,
    )
    trainer = mg.Trainer(env, cfg)
    algorithm = trainer.algorithm
    optims = {"actor": (algorithm.optimizer.actor_optim, 1e-3)}
    optims["critic"] = (algorithm.optimizer.critic_optim, 2e-3)
    if algo == "b2mapo" and algorithm.execution.trains:  # a separate pi_ind
        optims["pi_ind"] = (algorithm.execution.optim, 1e-3)
    if algorithm.optimizer.readout_optim is not None:  # a readout pi_ind's head
        optims["readout"] = (algorithm.optimizer.readout_optim, 1e-3)
    for k in range(4):  # iteration k updates with the fraction of the budget left before it
        trainer.train_iteration()
        for name, (optim, base) in optims.items():
            assert optim.param_groups[0]["lr"] == pytest.approx(base * (1 - k / 4)), name
    plain = mg.Trainer(env, cfg.replace(lr_anneal=False))
    plain.train_iteration()
    plain.train_iteration()
    assert plain.algorithm.optimizer.actor_optim.param_groups[0]["lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize("algo", ["mappo", "happo", "a2po", "b2mapo"])
def test_every_preset_trains_a_single_agent(algo):
    """N=1 has no agent pair: B2MAPO's upper layer must not average a loss over no pairs."""
    env = MatrixGameEnv(torch.tensor([0.0, 1.0, 0.2]), num_envs=8)
    trainer = mg.Trainer(env, small_cfg(algo=algo, total_steps=8 * 16 * 3, tensorboard=False))
    before = policy_probs(trainer)[0, 1]
    history = trainer.train().history
    assert all(math.isfinite(row["return_mean"]) for row in history)
    assert policy_probs(trainer)[0, 1] > before
    assert trainer.act(env.reset()).shape == (8, 1)
    assert trainer.evaluate(episodes=4)["episodes"] == 4


class NumpyCopiesGame(MatrixGameEnv):
    """A custom env whose ``num_envs`` is a numpy integer and whose state is numpy."""

    def __init__(self, numpy_state: bool = False) -> None:
        super().__init__(torch.eye(3), num_envs=4)
        self.num_envs = np.int64(4)
        self.numpy_state = numpy_state

    def state_dict(self) -> dict:
        return {"rng": np.arange(3, dtype=np.uint32) if self.numpy_state else torch.arange(3)}

    def load_state_dict(self, state: dict) -> None:
        pass


def test_checkpoints_of_custom_envs_load_or_are_refused_when_written(tmp_path):
    """A numpy ``num_envs`` must not make the checkpoint unloadable; a numpy env state is
    refused at save time (one line naming it), and the previous checkpoint is kept."""
    cfg = small_cfg(num_envs=None, total_steps=4 * 16 * 2, tensorboard=False)
    trainer = mg.Trainer(NumpyCopiesGame(), cfg, out_dir=tmp_path)
    trainer.train()
    resumed = mg.Trainer.load(tmp_path, NumpyCopiesGame(), total_steps=4 * 16 * 3)
    assert resumed.iteration == 2 and len(resumed.train().history) == 3
    numpy_env = NumpyCopiesGame(numpy_state=True)
    trainer = mg.Trainer(numpy_env, cfg)
    trainer.train_iteration()
    with pytest.raises(CheckpointError, match=r"state\['env_state'\]\['rng'\] holds numpy"):
        trainer.save(tmp_path / "checkpoint.pt")
    assert mg.Trainer.load(tmp_path, NumpyCopiesGame()).iteration == 3
    assert [p.name for p in tmp_path.glob("checkpoint.pt.*")] == []
    with pytest.raises(ValueError, match="env.num_envs must be a positive int, got 0"):
        mg.Trainer(MatrixGameEnv(torch.eye(3), num_envs=0), cfg)
