"""Partitioners: properties on random DAGs (hypothesis), optimality against brute force, bad input."""

from __future__ import annotations

import itertools
import math

import networkx as nx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mapograph as mg
from mapograph import partition as P


@st.composite
def dags(draw, max_nodes: int = 9):
    n = draw(st.integers(1, max_nodes))
    perm = draw(st.permutations(list(range(n))))
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    for a in range(n):
        for b in range(a + 1, n):
            if draw(st.booleans()):
                graph.add_edge(perm[a], perm[b], weight=draw(st.integers(1, 3)))
    return graph


def check_valid(batches, graph, strict: bool):
    P.validate_partition(batches, graph.number_of_nodes(), graph, strict=strict)


@settings(max_examples=150, deadline=None)
@given(dags())
def test_generations_is_valid_and_minimal(graph):
    batches = P.generations(graph)
    check_valid(batches, graph, strict=True)
    longest = (
        nx.dag_longest_path_length(nx.DiGraph(graph.edges)) + 1 if graph.number_of_edges() else 1
    )
    assert len(batches) == longest


@settings(max_examples=150, deadline=None)
@given(dags(), st.integers(1, 4))
def test_bounded_respects_width_and_never_beats_split_generations(graph, width):
    batches = P.bounded(graph, max_batch_size=width)
    check_valid(batches, graph, strict=True)
    assert max(len(b) for b in batches) <= width
    split = sum(math.ceil(len(g) / width) for g in P.generations(graph))
    assert len(P.generations(graph)) <= len(batches) <= split


@settings(max_examples=120, deadline=None)
@given(dags(max_nodes=7), st.integers(1, 4))
def test_k_batches_is_optimal_against_brute_force(graph, k):
    batches = P.k_batches(graph, k)
    check_valid(batches, graph, strict=False)
    assert len(batches) <= k
    n = graph.number_of_nodes()
    best = min(
        sum(d["weight"] for u, v, d in graph.edges(data=True) if lv[u] == lv[v])
        for lv in itertools.product(range(k), repeat=n)
        if all(lv[u] <= lv[v] for u, v in graph.edges)
    )
    assert P.inside_weight(graph, batches) == best


@settings(max_examples=80, deadline=None)
@given(dags())
def test_digraph_and_edge_index_inputs_agree(graph):
    n = graph.number_of_nodes()
    edge_index, _ = mg.graph.from_networkx(graph)
    assert P.generations(edge_index, num_nodes=n) == P.generations(graph)
    assert P.bounded(edge_index, 2, num_nodes=n) == P.bounded(graph, 2)
    unit = nx.DiGraph(graph.edges)
    unit.add_nodes_from(range(n))
    assert P.inside_weight(
        unit, P.k_batches(edge_index, 2, num_nodes=n), weight=None
    ) == P.inside_weight(unit, P.k_batches(unit, 2, weight=None), weight=None)


def test_simple_partitions_and_orders():
    assert P.simultaneous(3) == [[0, 1, 2]]
    assert P.agent_by_agent([2, 0, 1]) == [[2], [0], [1]]
    g = torch.Generator().manual_seed(0)
    order = P.random_order(6, g)
    assert sorted(order) == list(range(6))
    assert P.random_order(6, torch.Generator().manual_seed(1)) == P.random_order(
        6, torch.Generator().manual_seed(1)
    )
    scores = torch.tensor([0.1, 5.0, 3.0, 4.0, 0.0])
    semi = P.semi_greedy_order(scores, torch.Generator().manual_seed(0))
    assert sorted(semi) == list(range(5))
    assert semi[0] == 1  # highest score first
    remaining_after_two = [a for a in range(5) if a not in semi[:2]]
    assert semi[2] == max(
        remaining_after_two, key=lambda a: scores[a]
    )  # then the highest remaining


def test_bad_input_is_named():
    cyc = nx.DiGraph([(0, 1), (1, 2), (2, 0)])
    with pytest.raises(ValueError, match="cycle: .*0"):
        P.generations(cyc)
    with pytest.raises(ValueError, match="exactly 0..2"):
        P.generations(nx.DiGraph([(0, 1), (1, 5)]))
    with pytest.raises(ValueError, match="max_batch_size"):
        P.bounded(nx.DiGraph([(0, 1)]), max_batch_size=0)
    with pytest.raises(ValueError, match="k must"):
        P.k_batches(nx.DiGraph([(0, 1)]), k=0)
    with pytest.raises(ValueError, match="num_nodes"):
        P.generations(torch.tensor([[0], [1]]))
    with pytest.raises(ValueError, match="unknown partitioner"):
        P.get_partitioner("zigzag")
    with pytest.raises(ValueError, match="permutation"):
        P.agent_by_agent([0, 0, 1])
    with pytest.raises(ValueError, match="backward"):
        P.validate_partition([[1], [0]], 2, nx.DiGraph([(0, 1)]))


def test_partition_scales_to_a_thousand_agents():
    graph = nx.gnp_random_graph(1000, 0.004, seed=1, directed=True)
    dag = nx.DiGraph([(u, v) for u, v in graph.edges if u < v])
    dag.add_nodes_from(range(1000))
    for batches in (P.generations(dag), P.bounded(dag, 50), P.k_batches(dag, 4)):
        assert sorted(a for b in batches for a in b) == list(range(1000))


def test_multigraphs_and_non_integer_edge_indices():
    parallel = nx.MultiDiGraph([(0, 1), (0, 1), (1, 2)])
    calls = {
        "bounded": lambda g: P.bounded(g, 3),
        "generations": P.generations,
        "k_batches": lambda g: P.k_batches(g, 2),
    }
    for name, partition in calls.items():
        batches = partition(parallel)
        assert sorted(a for b in batches for a in b) == [0, 1, 2], name  # nobody dropped
    for bad in (torch.tensor([[False], [True]]), torch.tensor([[0.0], [1.0]])):
        with pytest.raises(ValueError, match="edge_index must hold integer node ids"):
            mg.partition.generations(bad, num_nodes=2)
        with pytest.raises(ValueError, match="edge_index must hold integer node ids"):
            mg.graph.to_networkx(bad, 2)
    with pytest.raises(ValueError, match="needs a directed graph"):
        mg.graph.from_networkx(nx.Graph([(0, 1)]))


def test_numpy_ints_are_agent_ids_and_never_leak_into_batches():
    import json

    import numpy as np

    graph = nx.DiGraph()
    graph.add_nodes_from(np.arange(3))
    graph.add_edge(np.int64(0), np.int64(1))
    for batches in (P.generations(graph), P.bounded(graph, 1), P.k_batches(graph, 2)):
        assert all(type(a) is int for b in batches for a in b), batches
        json.dumps(batches)  # a plan is written to logs and checkpoints
    edge_index = torch.tensor([[0], [1]])
    assert P.generations(edge_index, num_nodes=np.int64(2)) == [[0], [1]]
    assert P.bounded(graph, max_batch_size=np.int64(2)) == P.bounded(graph, 2)
    assert P.k_batches(graph, k=np.int64(1)) == [[0, 1, 2]]
    with pytest.raises(ValueError, match="num_nodes must be an int >= 1, got True"):
        P.generations(torch.zeros(2, 0, dtype=torch.long), num_nodes=True)
    with pytest.raises(ValueError, match="DAG nodes must be int agent ids"):
        P.generations(nx.DiGraph([(0.0, 1.0)]))


def test_validate_partition_refuses_non_int_ids_and_flat_lists():
    with pytest.raises(ValueError, match="batch 0 must be a list of agent ids"):
        P.validate_partition([0, 1], 2)  # was "batch 0 is empty"
    for bad in ([[0.5], [1]], [[0.0], [1]], [[False], [True]], [["a"], [1]]):
        with pytest.raises(ValueError, match="batch 0 must hold int agent ids"):
            P.validate_partition(bad, 2)  # 0.5 was truncated to agent 0
    with pytest.raises(ValueError, match="n_agents must be an int >= 1"):
        P.validate_partition([[0]], 0)
    P.validate_partition([torch.tensor([1]), (0,)], 2)  # tensors and tuples of ints are fine


def test_inside_weight_names_a_partition_that_misses_an_agent():
    with pytest.raises(ValueError, match=r"missing \[1\]"):
        P.inside_weight(nx.DiGraph([(0, 1)]), [[0]])


def test_k_batches_with_huge_or_non_numeric_weights():
    graph = nx.DiGraph()
    graph.add_weighted_edges_from([(0, 1, 1e308), (1, 2, 1e308), (0, 2, 1.0)])
    # the sum of the weights overflows: the cut must still keep one heavy edge between
    # batches (a single batch costs 2e308 + 1, the optimum 1e308)
    batches = P.k_batches(graph, k=2)
    assert P.inside_weight(graph, batches) == 1e308
    graph[0][1]["weight"] = "heavy"
    with pytest.raises(ValueError, match=r"edge 0 -> 1: weight 'weight' must be a number"):
        P.k_batches(graph, k=2)


def test_validate_partition_refuses_a_dag_of_another_size():
    batches = [[0], [1], [2]]
    with pytest.raises(ValueError, match="the DAG has 4 nodes, the partition is of n_agents=3"):
        P.validate_partition(batches, 3, nx.DiGraph([(0, 1), (2, 3)]))  # was KeyError 3
    with pytest.raises(ValueError, match="the DAG has 2 nodes"):
        P.validate_partition(batches, 3, nx.DiGraph([(1, 0)]))  # passed, agent 2 unchecked
