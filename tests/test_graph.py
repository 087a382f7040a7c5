"""DAG generator: acyclic samples, normalized probabilities, gradients, equivariance."""

from __future__ import annotations

import itertools

import networkx as nx
import pytest
import torch

import mapograph as mg
from mapograph.graph import DAGCritic, DAGGenerator


@pytest.mark.parametrize("n", [2, 5, 16, 64])
def test_ten_thousand_samples_are_acyclic(n):
    torch.manual_seed(n)
    gen = DAGGenerator(4, n, hidden=16, heads=2)
    copies = 10_000 // 50
    dist = gen(torch.randn(copies, n, 4) * 3)
    rng = torch.Generator().manual_seed(0)
    for _ in range(50):
        adj = dist.sample(rng).adjacency.float()  # [B, N, N]
        # a graph is acyclic iff its adjacency matrix is nilpotent: A^n = 0
        power = torch.linalg.matrix_power(adj, n) if n > 1 else adj
        assert power.abs().sum() == 0


def all_dags(n):
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    for mask in itertools.product([0, 1], repeat=len(pairs)):
        edges = [p for p, m in zip(pairs, mask) if m]
        g = nx.DiGraph(edges)
        g.add_nodes_from(range(n))
        if nx.is_directed_acyclic_graph(g):
            adj = torch.zeros(n, n, dtype=torch.bool)
            for i, j in edges:
                adj[i, j] = True
            yield adj


def test_probabilities_of_all_dags_sum_to_one_for_three_agents():
    torch.manual_seed(0)
    dist = DAGGenerator(3, 3, hidden=8, heads=2)(torch.randn(2, 3, 3))
    total = sum(dist.log_prob_marginal(adj.expand(2, 3, 3)).exp() for adj in all_dags(3))
    torch.testing.assert_close(total, torch.ones(2))


def test_generator_shortcuts_score_unordered_dags_from_tensors_and_networkx():
    torch.manual_seed(4)
    gen = DAGGenerator(3, 3, hidden=8, heads=2)
    features = torch.randn(1, 3, 3)
    dags = all_dags(3)
    total = sum(gen.log_prob(features, adj).exp() for adj in dags)
    torch.testing.assert_close(total, torch.ones(1))
    chain = nx.DiGraph([(0, 1), (1, 2)])
    adj = torch.zeros(3, 3, dtype=torch.bool)
    adj[0, 1] = adj[1, 2] = True
    torch.testing.assert_close(gen.log_prob(features, chain), gen.log_prob(features, adj))
    sample = gen.sample(features, torch.Generator().manual_seed(0))
    assert gen.log_prob(features, sample).shape == (1,)
    assert gen.log_prob(features, sample) <= gen.log_prob(features, sample.adjacency) + 1e-6
    assert gen.mode(features).adjacency.shape == (1, 3, 3)
    assert gen.entropy(features).shape == (1,)
    with pytest.raises(ValueError, match="nodes"):
        gen.log_prob(features, nx.DiGraph([(0, 5)]))
    with pytest.raises(ValueError, match="shape"):
        gen.log_prob(features, torch.zeros(4, 4, dtype=torch.bool))


def test_marginal_edge_probabilities_match_sampling():
    torch.manual_seed(1)
    dist = DAGGenerator(3, 4, hidden=8, heads=2)(torch.randn(1, 4, 3))
    rng = torch.Generator().manual_seed(0)
    freq = torch.stack([dist.sample(rng).adjacency[0].float() for _ in range(4000)]).mean(0)
    torch.testing.assert_close(freq, dist.edge_probabilities()[0].detach(), atol=0.03, rtol=0)


def test_gradients_reach_the_attention_encoder():
    torch.manual_seed(2)
    gen = DAGGenerator(5, 4)
    dist = gen(torch.randn(3, 4, 5))
    sample = dist.sample()
    (dist.log_prob(sample).sum() + dist.entropy().sum()).backward()
    conv = gen.encoder.convs[0]
    grads = [p.grad for p in conv.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    critic = DAGCritic(5, 4)
    critic(torch.randn(3, 4, 5)).sum().backward()
    assert critic.encoder.inp.weight.grad.abs().sum() > 0


def test_permuting_agents_permutes_edge_probabilities():
    torch.manual_seed(3)
    gen = DAGGenerator(6, 5)
    x = torch.randn(2, 5, 6)
    perm = torch.tensor([3, 0, 4, 1, 2])
    p = gen(x).edge_probabilities()
    p_perm = gen(x[:, perm]).edge_probabilities()
    torch.testing.assert_close(p_perm, p[:, perm][:, :, perm], atol=1e-5, rtol=1e-4)


def test_mode_log_prob_entropy_and_temperature():
    torch.manual_seed(4)
    gen = DAGGenerator(3, 4)
    x = torch.randn(1, 4, 3)
    mode = gen(x).mode()
    assert nx.is_directed_acyclic_graph(mode.to_networkx())
    assert gen(x).log_prob(mode) <= 0
    hot, cold = gen(x, temperature=10.0), gen(x, temperature=0.1)
    assert hot.entropy() > cold.entropy()
    with pytest.raises(ValueError, match="agents"):
        gen(torch.randn(1, 3, 3))
    with pytest.raises(
        ValueError, match=r"expected features \[B, 4 agents, 3\], got shape \[1, 4, 5\]"
    ):
        gen(torch.randn(1, 4, 5))  # the wrong feature width, named before any matmul
    for bad in (
        {"feature_dim": 0, "n_agents": 4},
        {"feature_dim": "3", "n_agents": 4},
        {"feature_dim": 3, "n_agents": 0},
        {"feature_dim": 3, "n_agents": 4, "hidden": 0},
        {"feature_dim": 3, "n_agents": 4, "heads": 0},
    ):
        with pytest.raises(ValueError, match="DAGGenerator: .* must be a positive int"):
            DAGGenerator(**bad)


def test_agent_graph_and_networkx_round_trip():
    batch = mg.graph.agent_graph(torch.randn(4, 3, 2))
    assert batch.num_graphs == 4 and batch.x.shape == (12, 2)
    assert batch.edge_index.shape == (2, 4 * 6)
    ei = torch.tensor([[0, 1], [2, 2]])
    g = mg.graph.to_networkx(ei, 3, edge_weight=torch.tensor([0.3, 0.7]))
    assert g[1][2]["weight"] == pytest.approx(0.7)
    back, w = mg.graph.from_networkx(g)
    assert torch.equal(back, ei) and torch.allclose(w, torch.tensor([0.3, 0.7]))


def test_top_k_candidates_keep_each_agents_strongest_partners_both_ways():
    strength = torch.zeros(5, 5)
    strength[3, 0] = 2.0  # 3 -> 0 strongest for agent 0
    strength[1, 4] = 1.0
    pairs = mg.graph.top_k_candidates(strength, k=1)
    as_set = {tuple(p) for p in pairs.t().tolist()}
    assert (3, 0) in as_set and (0, 3) in as_set and (1, 4) in as_set and (4, 1) in as_set
    assert all(i != j for i, j in as_set)
    assert pairs.shape[1] <= 2 * 5  # at most 2 k N pairs
    with pytest.raises(ValueError, match="k must be"):
        mg.graph.top_k_candidates(strength, k=0)


def test_generator_on_a_sparse_candidate_graph_never_draws_other_edges():
    torch.manual_seed(0)
    n = 200
    gen = mg.graph.DAGGenerator(feature_dim=6, n_agents=n, hidden=16, heads=2)
    x = torch.randn(2, n, 6)
    candidates = mg.graph.top_k_candidates(torch.rand(n, n), k=4)
    allowed = torch.zeros(n, n, dtype=torch.bool)
    allowed[candidates[0], candidates[1]] = True
    dist = gen(x, candidates=candidates)
    sample = dist.sample(torch.Generator().manual_seed(1))
    assert sample.adjacency.any()
    assert not (sample.adjacency & ~allowed).any()
    assert float(dist.edge_probabilities()[:, ~allowed].max()) < 1e-9
    assert torch.isfinite(dist.log_prob(sample)).all() and torch.isfinite(dist.entropy()).all()
    # the candidate graph is what the encoder attends over: other pairs change nothing
    sparse, dense = gen.encoder(x, candidates), gen.encoder(x)
    assert not torch.allclose(sparse, dense)
    # permuting the agents (and the candidate graph) permutes the distribution
    perm = torch.randperm(n)
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(n)
    permuted = gen(x[:, perm], candidates=inverse[candidates])
    assert torch.allclose(
        permuted.edge_probabilities(), dist.edge_probabilities()[:, perm][:, :, perm], atol=1e-5
    )


def test_encoder_reuses_its_graph_only_while_the_graph_is_the_same():
    torch.manual_seed(5)
    enc = mg.graph.AgentAttentionEncoder(4, hidden=8, heads=2)

    def reference(x, edge_index=None):
        """The same layers with PyG's own self-loops, on a freshly built graph."""
        graph = mg.graph.agent_graph(x, edge_index)
        h = torch.tanh(enc.inp(graph.x))
        for conv in enc.convs:
            conv.add_self_loops = True
            try:
                h = h + enc.act(conv(h, graph.edge_index))
            finally:
                conv.add_self_loops = False
        return h.reshape(x.shape[0], x.shape[1], -1)

    ring = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]])
    x2, x3 = torch.randn(2, 5, 4), torch.randn(3, 5, 4)
    calls = [(x2, None), (x2, None), (x3, None), (x3, ring), (x3, ring), (x2, ring)]
    for x, edges in calls:  # repeated, and changed copies and graph, hit and miss the cache
        torch.testing.assert_close(enc(x, edges), reference(x, edges), rtol=0, atol=0)
    ring[1] = torch.tensor([2, 3, 4, 0, 1])  # edited in place: the cache must notice
    torch.testing.assert_close(enc(x2, ring), reference(x2, ring), rtol=0, atol=0)
    assert not torch.allclose(enc(x2, ring), enc(x2, ring[:, :2].clone()))
    with pytest.raises(ValueError, match="outside"):
        enc(x2, torch.tensor([[0], [7]]))


def test_generator_input_errors_are_one_line_value_errors():
    import numpy as np

    gen = mg.graph.DAGGenerator(np.int64(4), np.int64(3), hidden=8, heads=2)  # numpy sizes
    x = torch.randn(2, 3, 4)
    cases = [
        (lambda: gen(x.double()), ValueError, r"features must be torch.float32 .*float64"),
        (lambda: gen(x.long()), ValueError, r"features must be torch.float32 .*int64"),
        (lambda: gen(x.numpy()), TypeError, r"features must be a torch.Tensor, got ndarray"),
        (lambda: gen(x[:0]), ValueError, r"at least one copy \(B >= 1\), got B = 0"),
        (lambda: gen(x, temperature=float("nan")), ValueError, "temperature must be a finite"),
        (lambda: gen(x, edge_offset=torch.zeros(4, 4)), ValueError, r"edge_offset must have"),
        (lambda: gen(x, candidates=torch.tensor([[0.0], [1.0]])), ValueError, "candidates"),
        (
            lambda: gen.log_prob(x, mg.graph.DAGGenerator(4, 2, 8, 2).sample(x[:, :2])),
            ValueError,
            r"a DAGSample of this distribution has order \[2, 3\]",
        ),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()
    with pytest.raises(ValueError, match="n_agents must be a positive int, got True"):
        mg.graph.DAGGenerator(4, True)


def test_to_networkx_names_a_bad_num_nodes():
    import numpy as np

    empty = torch.zeros(2, 0, dtype=torch.long)
    assert list(mg.graph.to_networkx(torch.tensor([[0], [1]]), np.int64(2)).edges) == [(0, 1)]
    for bad in (-1, 2.5, "3", True):  # -1 gave an empty graph, "3" a TypeError on '>='
        with pytest.raises(ValueError, match="num_nodes must be an int >= 0"):
            mg.graph.to_networkx(empty, bad)


def test_payoff_critic_dag_critic_and_direction_refuse_malformed_input():
    from mapograph.graph import PairwisePayoffCritic, action_vectors, orient, priority_order

    torch.manual_seed(0)
    critic = PairwisePayoffCritic(5, 3, 4, hidden=8, rank=2)
    obs, pairs = torch.randn(6, 4, 5), mg.graph.complete_edge_index(4)
    actions = torch.randint(0, 3, (6, 4))
    assert critic(obs, action_vectors(actions, 3), pairs).shape == (6,)
    with pytest.raises(ValueError, match=r"act must be action vectors \[6, 4, 3\]"):
        critic(obs, actions, pairs)  # integer actions broadcast against the meanings, silently
    with pytest.raises(ValueError, match=r"expected features \[B, 2 agents, 3\]"):
        DAGCritic(3, 2)(torch.randn(2, 2, 4))  # was a matmul RuntimeError
    strength = torch.tensor([[0.0, 5.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="strength holds NaN"):
        priority_order(torch.full((3, 3), float("nan")), torch.ones(3))  # was [0, 1, 2]
    with pytest.raises(ValueError, match="own_effect holds NaN"):
        priority_order(strength, torch.tensor([1.0, float("nan"), 0.5]))
    with pytest.raises(ValueError, match=r"strength must be \[N, N\]"):
        priority_order(torch.rand(3, 4), torch.ones(3))
    with pytest.raises(ValueError, match="order must be a permutation of 0..2"):
        orient(strength, [0, 0, 1])  # a duplicated agent was accepted


def test_mode_threshold_and_sample_generator_are_checked():
    gen = DAGGenerator(4, 3, hidden=8, heads=2)
    x = torch.randn(2, 3, 4)
    assert gen.mode(x, threshold=0.0).adjacency.sum() == 6  # every forward pair
    assert gen.mode(x, threshold=1.0).adjacency.sum() == 0
    for bad in (float("nan"), 2.0, -0.5, "0.5"):  # NaN and 2 kept no edge, silently
        with pytest.raises(ValueError, match="threshold must be a number in"):
            gen.mode(x, threshold=bad)
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None, got int"):
        gen.sample(x, generator=3)  # was torch.rand's multi-line signature dump


def test_agent_graph_refuses_float_edge_ids():
    x = torch.randn(2, 3, 4)
    assert mg.graph.agent_graph(x, [[0], [1]]).edge_index.tolist() == [[0, 3], [1, 4]]
    with pytest.raises(ValueError, match="edge_index must hold integer node ids"):
        mg.graph.agent_graph(x, torch.tensor([[0.5], [1.0]]))  # was truncated to 0 -> 1
