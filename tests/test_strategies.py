"""Algorithms as strategy objects: registries, user-defined presets and schedules, given DAGs."""

from __future__ import annotations

import shutil

import networkx as nx
import pytest
import torch

import mapograph as mg
from mapograph._registry import Registry
from mapograph.algos import ALGORITHMS, CORRECTIONS, ORDERS, SCHEDULES, Plan, Schedule
from mapograph.partition import PARTITIONERS

from conftest import MatrixGameEnv


def small_cfg(env, **kw) -> mg.TrainConfig:
    base = dict(total_steps=env.num_envs * 8 * 3, rollout_length=8, seed=0, progress=False)
    base.update(kw)
    return mg.TrainConfig(**base)


def game(n_agents: int = 3, num_envs: int = 16) -> MatrixGameEnv:
    payoff = torch.rand(*([2] * n_agents), generator=torch.Generator().manual_seed(1))
    return MatrixGameEnv(payoff, num_envs=num_envs)


# ----------------------------------------------------------------- registries
def test_registry_lookup_ignores_case_and_separators_and_lists_choices():
    registry: Registry[int] = Registry("widget")
    registry.register("k_batches", 1)
    assert registry.get("K-Batches") == 1 and registry.canonical("KBATCHES") == "k_batches"
    with pytest.raises(ValueError, match=r"unknown widget 'nope'; choose one of k_batches"):
        registry.get("nope")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("K_BATCHES", 2)
    registry.register("k_batches", 2, overwrite=True)
    assert registry.get("k_batches") == 2


def test_registry_resolve_passes_constructor_arguments():
    registry: Registry[type] = Registry("thing")
    registry.register("pair", lambda a, b=0: (a, b))
    assert registry.resolve("PAIR", 1, b=2) == (1, 2)
    obj = object()
    assert registry.resolve(obj) is obj


@pytest.mark.parametrize(
    ("registry", "names"),
    [
        (ALGORITHMS, {"mappo", "happo", "a2po", "b2mapo"}),
        (SCHEDULES, {"simultaneous", "agent_by_agent", "fixed", "given_dag", "learned_dag"}),
        (ORDERS, {"identity", "random", "semi_greedy", "fixed"}),
        (CORRECTIONS, {"none", "factor", "trace", "both"}),
        (PARTITIONERS, {"generations", "bounded", "k_batches"}),
        (mg.envs.ENV_FAMILIES, {"coordination", "mpe", "vmas", "smax"}),
    ],
)
def test_every_kind_of_name_has_one_registry(registry, names):
    assert names <= set(registry.names())


def test_config_validation_and_cli_read_the_registries(capsys):
    with pytest.raises(ValueError, match="TrainConfig.correction must be one of none, factor"):
        mg.TrainConfig(correction="half")
    with pytest.raises(ValueError, match="TrainConfig.partition must be one of generations"):
        mg.TrainConfig(partition="zigzag")
    assert mg.TrainConfig(algo="B2MAPO", partition="K-Batches").preset().partition == "k_batches"
    from mapograph.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    for name in ALGORITHMS.names():
        assert name in help_text


def test_a_dag_partitioner_without_a_dag_is_refused_at_config_time():
    with pytest.raises(ValueError, match="partitions a DAG"):
        mg.TrainConfig(algo="mappo", partition="generations")
    with pytest.raises(ValueError, match="needs fixed_order"):
        mg.TrainConfig(algo="happo", order="fixed")


def test_partitioner_search_space_reads_the_registry():
    import optuna

    from mapograph.tune import search_space

    trial = optuna.trial.FixedTrial(
        {"partition": "bounded", "max_batch_size": 2} | _partition_space_defaults()
    )
    params = search_space(trial, "partition")
    assert params["partition"] == "bounded" and params["max_batch_size"] == 2
    assert "k" not in params


def _partition_space_defaults() -> dict:
    return {
        "edge_threshold": 0.1,
        "dag_temperature": 1.0,
        "generator_lr": 1e-3,
        "generator_entropy_coef": 0.01,
        "distill_every": 1,
        "kl_coef": 1.0,
        "pi_ind": "separate",
        "condition_on_parents": True,
    }


@pytest.mark.parametrize(
    "registry,entry,match",
    [
        (SCHEDULES, 42, r"schedule 'zz' cannot be registered: expected a subclass of Schedule"),
        (mg.algos.ORDERS, lambda ctx, data: [0], r"expected an instance of OrderRule"),
        (mg.algos.CORRECTIONS, "factor", r"expected an instance of Correction"),
        (mg.partition.PARTITIONERS, "generations", r"partitioner 'zz' .*expected a callable"),
    ],
)
def test_entries_that_cannot_work_are_refused_when_registered(registry, entry, match):
    with pytest.raises(ValueError, match=match):
        registry.register("zz", entry)
    assert "zz" not in registry


# ------------------------------------------------- a user-defined algorithm
class ReverseOrder(Schedule):
    """One agent per batch, highest id first: a schedule written outside mapograph."""

    def plan(self, acting: Plan, data) -> Plan:
        return Plan([[a] for a in reversed(range(self.n_agents))])


@pytest.fixture
def reverse_algorithm():
    SCHEDULES.register("reverse_order", ReverseOrder)
    mg.algos.register_algorithm(
        mg.algos.AlgorithmPreset("reverse_happo", schedule="reverse_order", correction="factor")
    )
    yield "reverse_happo"
    ALGORITHMS.unregister("reverse_happo")
    SCHEDULES.unregister("reverse_order")


def test_a_user_defined_algorithm_trains_without_editing_mapograph(reverse_algorithm, tmp_path):
    env = game()
    trainer = mg.Trainer(env, small_cfg(env, algo=reverse_algorithm), out_dir=tmp_path)
    result = trainer.train()
    assert all(row["batches"] == [[2], [1], [0]] for row in result.history)
    assert all(row["n_batches"] == 3.0 for row in result.history)
    # its parameters moved and it resumes from its checkpoint like a built-in preset
    fresh = mg.Trainer(game(), small_cfg(env, algo=reverse_algorithm))
    assert not torch.equal(fresh.actor.net.out_layer.weight, trainer.actor.net.out_layer.weight)
    loaded = mg.Trainer.load(tmp_path, game())
    assert loaded.cfg.algo == "reverse_happo" and loaded.iteration == trainer.iteration


class Broken(Schedule):
    """A schedule written outside mapograph that returns ``PLAN`` (to be set per case)."""

    PLAN: Plan = Plan([[0]])

    def plan(self, acting: Plan, data) -> Plan:
        return type(self).PLAN


@pytest.mark.parametrize(
    "plan,match",
    [
        (Plan([[0], [1]]), r"invalid plan: .*missing \[2\]"),
        (Plan([[0, 1], [1, 2]]), r"invalid plan: .*duplicated \[1\]"),
        (Plan([[0], [1], [5]]), r"invalid plan: .*unknown \[5\]"),
        (
            Plan([[0], [1], [2]], torch.tensor([[2], [0]])),
            r"plan edge 2 -> 0 that does not go from an earlier batch to a later one",
        ),
    ],
)
def test_a_schedule_s_plan_is_checked_before_it_trains(plan, match):
    SCHEDULES.register("broken_plan", Broken)
    mg.algos.register_algorithm(mg.algos.AlgorithmPreset("broken_algo", schedule="broken_plan"))
    try:
        Broken.PLAN = plan
        env = game()
        with pytest.raises(
            ValueError, match=r"schedule 'Broken' returned .*" + match.split(".*")[-1]
        ):
            mg.Trainer(env, small_cfg(env, algo="broken_algo")).train_iteration()
    finally:
        ALGORITHMS.unregister("broken_algo")
        SCHEDULES.unregister("broken_plan")


def test_a_partitioner_s_output_is_checked_against_its_dag():
    def reversed_generations(dag, **_):
        return list(reversed(mg.partition.generations(dag)))

    def drops_one(dag, **_):
        return [[a] for a in range(dag.number_of_nodes() - 1)]

    env = game(n_agents=4)
    for name, fn, match in (
        ("reversed_generations", reversed_generations, r"edge 0 -> 1 points backward"),
        ("drops_one", drops_one, r"missing \[3\]"),
    ):
        mg.partition.register_partitioner(name, fn)
        try:
            cfg = small_cfg(env, algo="b2mapo", fixed_dag=[[0, 1], [1, 2], [2, 3]], partition=name)
            with pytest.raises(
                ValueError, match=rf"partitioner '{name}' returned an invalid partition: .*{match}"
            ):
                mg.Trainer(env, cfg).train_iteration()
        finally:
            mg.partition.PARTITIONERS.unregister(name)


def test_user_preset_with_unknown_parts_is_refused():
    with pytest.raises(ValueError, match="unknown correction 'sideways'"):
        mg.algos.register_algorithm(
            mg.algos.AlgorithmPreset("broken", schedule="simultaneous", correction="sideways")
        )
    assert "broken" not in ALGORITHMS


def test_trainer_holds_no_preset_interpretation():
    """The iteration reads the algorithm's parts; no preset names or type checks in train/."""
    import inspect

    from mapograph.train import _trainer

    source = inspect.getsource(_trainer)
    for needle in ("isinstance(self.actor", "DAGActor", '"b2mapo"', "semi_greedy", ".upper"):
        assert needle not in source, needle
    assert "is not None" not in inspect.getsource(_trainer.Trainer.train_iteration)


# --------------------------------------------------------------- given DAGs
def test_b2mapo_with_a_given_dag_uses_it_for_batches_parents_and_the_graph():
    env = game(n_agents=4)
    dag = [[0, 1], [1, 2], [0, 3]]
    trainer = mg.Trainer(env, small_cfg(env, algo="b2mapo", fixed_dag=dag, partition="generations"))
    result = trainer.train()
    assert all(row["batches"] == [[0], [1, 3], [2]] for row in result.history)
    assert sorted(map(tuple, trainer.plan.edge_index.t().tolist())) == [(0, 1), (0, 3), (1, 2)]
    graph = trainer.interdependence()  # the given DAG itself, usable as a DAG
    assert sorted(graph.nodes) == [0, 1, 2, 3]
    assert sorted(graph.edges(data="weight")) == [(0, 1, 1.0), (0, 3, 1.0), (1, 2, 1.0)]
    assert mg.partition.generations(graph) == [[0], [1, 3], [2]]
    assert "generator_loss" not in result.history[-1]  # nothing learned about the graph


def test_a_given_dag_keeps_every_edge_across_batches_unless_a_partitioner_is_named():
    # a chain of 5: the default partition of a given DAG is its generations (every edge
    # crosses batches, so every child conditions on its parent); B2MAPO's learned graph
    # and a named partitioner keep theirs (k_batches with k=3 must put edges inside)
    env = game(n_agents=5)
    chain = [[3, 0], [0, 4], [4, 1], [1, 2]]
    assert mg.TrainConfig(algo="b2mapo", fixed_dag=chain).preset().partition == "generations"
    assert mg.TrainConfig(algo="b2mapo").preset().partition == "k_batches"
    trainer = mg.Trainer(env, small_cfg(env, algo="b2mapo", fixed_dag=chain))
    trainer.train_iteration()
    assert trainer.plan.batches == [[3], [0], [4], [1], [2]]
    assert trainer.plan.edge_index.shape[1] == len(chain)  # all edges conditioned on
    named = mg.Trainer(env, small_cfg(env, algo="b2mapo", fixed_dag=chain, partition="k_batches"))
    named.train_iteration()
    assert len(named.plan.batches) == 3 and named.plan.edge_index.shape[1] < len(chain)


@pytest.mark.parametrize(
    "fields,match",
    [
        (
            {"algo": "b2mapo", "fixed_dag": [[0, 1]], "fixed_partition": [[0], [1]]},
            r"fixed_partition is set but schedule 'given_dag' does not read it",
        ),
        ({"algo": "mappo", "fixed_dag": [[0, 1]], "schedule": "simultaneous"}, r"fixed_dag is set"),
        ({"algo": "mappo", "fixed_order": [1, 0]}, r"schedule 'simultaneous' has no agent order"),
        ({"algo": "happo", "order": "random", "fixed_order": [1, 0]}, r"order='random' draws"),
    ],
)
def test_fields_that_the_chosen_schedule_would_ignore_are_refused(fields, match):
    with pytest.raises(ValueError, match=match):
        mg.TrainConfig(**fields)
    # the same fields in a combination that reads them are accepted
    assert mg.TrainConfig(algo="happo", fixed_order=[1, 0]).preset().order == "fixed"
    assert mg.TrainConfig(algo="b2mapo", fixed_dag=[[0, 1]]).preset().schedule == "given_dag"


@pytest.mark.parametrize(
    "partition,match",
    [([[], [0, 1, 2]], r"batch 0 is empty"), ([], r"non-empty list"), ([[0, 1]], r"missing \[2\]")],
)
def test_a_bad_fixed_partition_is_named_in_the_error(partition, match):
    env = game()
    with pytest.raises(ValueError, match=rf"^fixed_partition .*{match}"):
        mg.Trainer(env, small_cfg(env, algo="mappo", fixed_partition=partition))


def test_a_given_dag_with_a_cycle_or_foreign_agents_is_refused():
    env = game()
    with pytest.raises(ValueError, match="cycle"):
        mg.Trainer(env, small_cfg(env, algo="b2mapo", fixed_dag=[[0, 1], [1, 0]]))
    with pytest.raises(ValueError):
        mg.Trainer(env, small_cfg(env, algo="b2mapo", fixed_dag=[[0, 5]]))
    with pytest.raises(ValueError, match=r"fixed_dag must be a list of \[int, int\] pairs"):
        mg.TrainConfig(algo="b2mapo", fixed_dag=[[0, 1, 2]])


def test_algorithms_without_a_graph_say_so():
    env = game()
    trainer = mg.Trainer(env, small_cfg(env, algo="happo"))
    with pytest.raises(mg.MapographError, match="no interdependence graph"):
        trainer.interdependence()


# --------------------------------------------------------------- config
def test_num_envs_must_match_the_env_or_be_left_unset():
    env = game(num_envs=8)
    with pytest.raises(ValueError, match="num_envs=16 but the env has 8 copies"):
        mg.Trainer(env, small_cfg(env, num_envs=16))
    trainer = mg.Trainer(env, small_cfg(env))  # None: the env's count
    assert trainer.steps_per_iteration == 8 * 8


@pytest.mark.parametrize(
    "bad",
    [
        {"lr": float("inf")},
        {"clip": float("nan")},
        {"clip": -0.5},
        {"max_grad_norm": -1.0},
        {"value_norm": "no"},
        {"share_params": "yes"},
        {"kl_coef": float("nan")},
        {"interaction_coef": float("-inf")},
        {"correction_clip": -0.2},
        {"device": "banana"},
        {"parent_activation": "sigmoid"},
        {"parent_gain": 0.0},
        {"parent_obs_form": "multiply"},
        {"seed": "abc"},
        {"seed": 1.5},
        {"eval_every": -1},
        {"gamma": "x"},
        {"hidden": 10**9},
    ],
)
def test_invalid_values_are_refused_with_the_field_named(bad):
    (name,) = bad
    with pytest.raises(ValueError, match=rf"TrainConfig\.{name} "):
        mg.TrainConfig(**bad)


def test_old_configs_with_removed_fields_still_load():
    cfg = mg.TrainConfig.from_dict({"algo": "mappo", "extra": {}, "num_envs": 4})
    assert cfg.num_envs == 4


# ------------------------------------------------ checkpoints of mapograph 0.1
@pytest.mark.parametrize("algo", ["mappo", "a2po", "b2mapo"])
def test_checkpoints_written_before_the_refactor_load_and_continue(algo, tmp_path, request):
    source = request.path.parent / "data" / f"checkpoint_v0_{algo}.pt"
    shutil.copy(source, tmp_path / "checkpoint.pt")
    raw = torch.load(source, weights_only=True)
    assert raw["version"] == 1
    env = mg.envs.make("coordination:chain-4", num_envs=2, seed=0)
    trainer = mg.Trainer.load(tmp_path, env)
    assert trainer.cfg.algo == algo and trainer.iteration == raw["iteration"]
    for name, module in trainer.algorithm.modules().items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, raw["modules"][name][key]), (name, key)
    assert trainer.batches == raw["batches"]
    if algo == "b2mapo":
        upper = trainer.algorithm.schedule.upper
        for key, value in upper.net.state_dict().items():
            assert torch.equal(value, raw["upper"]["net"][key]), key
        assert isinstance(trainer.interdependence(), nx.DiGraph)
        # written when the parent head's activation was tanh: it keeps it (now relu)
        assert trainer.cfg.parent_activation == "tanh"
        assert isinstance(trainer.actor.parent_activation, torch.nn.Tanh)
        assert isinstance(
            mg.Trainer(env, trainer.cfg.replace(parent_activation="relu")).actor.parent_activation,
            torch.nn.ReLU,
        )
        # and without a gain on the parent head (the default since session 14 has one)
        assert trainer.cfg.parent_gain == 1.0 and trainer.actor.parent_gain == 1.0
        gained = mg.Trainer(env, trainer.cfg.replace(parent_gain=25.0))
        assert gained.actor.parent_gain == 25.0
        # parent_obs's form then was the gate (now "add")
        assert trainer.cfg.parent_obs_form == "gate" and trainer.actor.parent_obs_form == "gate"
        assert mg.TrainConfig().parent_obs_form == "add"
    else:  # the old optimizer format became torch's: moments and per-agent steps kept
        state = trainer.algorithm.optimizer.actor_optim.state_dict()["state"]
        old = raw["optimizers"]["ppo"]["actor_optim"]
        for i, param_state in state.items():
            assert torch.equal(param_state["exp_avg"], old["exp_avg"][i])
            assert torch.equal(param_state["agent_step"], old["steps"])
    trainer.cfg.total_steps = trainer.env_steps + 2 * 8 * 2
    trainer.train()
    assert trainer.iteration == raw["iteration"] + 2


def test_the_algorithms_page_examples_run(request, capsys):
    """Every code block of docs/algorithms.md runs (with a tiny step budget)."""
    import re

    page = (request.path.parent.parent / "docs" / "algorithms.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert len(blocks) == 3
    namespace: dict = {}
    try:
        for block in blocks:
            exec(block.replace("total_steps=4_000", "total_steps=8 * 16"), namespace)
    finally:
        for name in ("happo_trace", "reverse_happo"):
            if name in ALGORITHMS:
                ALGORITHMS.unregister(name)
        if "reverse_order" in SCHEDULES:
            SCHEDULES.unregister("reverse_order")
    assert "[[3], [2], [1], [0]]" in capsys.readouterr().out
    assert namespace["cfg"].preset().schedule == "given_dag"
