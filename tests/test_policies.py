"""Stacked per-agent networks, masking and the DAG-conditioned actor."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mapograph.policies import Actor, DAGActor, StackedMLP, sample_categorical


def test_stacked_mlp_equals_separate_mlps():
    torch.manual_seed(0)
    n, d_in, d_out = 4, 5, 3
    stacked = StackedMLP(n, d_in, [8, 8], d_out)
    x = torch.randn(6, 7, n, d_in)
    y = stacked(x)
    for agent in range(n):
        mlp = nn.Sequential(
            nn.Linear(d_in, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, d_out)
        )
        layers = [*stacked.hidden_layers, stacked.out_layer]
        with torch.no_grad():
            for lin, stacked_layer in zip([m for m in mlp if isinstance(m, nn.Linear)], layers):
                lin.weight.copy_(stacked_layer.weight[agent].t())
                lin.bias.copy_(stacked_layer.bias[agent])
        torch.testing.assert_close(y[..., agent, :], mlp(x[..., agent, :]))


def test_stacked_subset_matches_full_and_only_touches_its_rows():
    torch.manual_seed(1)
    net = StackedMLP(5, 3, [4], 2)
    x = torch.randn(10, 5, 3)
    agents = torch.tensor([3, 1])
    sub = net(x[:, agents], agents)
    torch.testing.assert_close(sub, net(x)[:, agents])
    sub.sum().backward()
    grad = net.out_layer.weight.grad
    assert grad[[0, 2, 4]].abs().sum() == 0
    assert grad[[1, 3]].abs().sum() > 0


def test_masked_actions_are_never_sampled():
    torch.manual_seed(2)
    actor = Actor(3, 4, 5)
    obs = torch.randn(2000, 3, 4)
    avail = torch.rand(2000, 3, 5) > 0.5
    avail[..., 0] |= ~avail.any(-1)  # at least one available action
    gen = torch.Generator().manual_seed(0)
    actions, log_probs = actor.act(obs, avail, generator=gen)
    chosen = avail.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    assert chosen.all()
    assert torch.isfinite(log_probs).all()
    greedy, _ = actor.act(obs, avail, deterministic=True)
    assert avail.gather(-1, greedy.unsqueeze(-1)).all()


def test_sampling_matches_probabilities():
    logits = torch.log(torch.tensor([0.1, 0.6, 0.3])).expand(20000, 3)
    actions, _ = sample_categorical(logits, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(actions, minlength=3).float() / actions.numel()
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.6, 0.3]), atol=0.015, rtol=0)


def test_shared_actor_uses_agent_ids():
    torch.manual_seed(3)
    actor = Actor(3, 4, 2, share_params=True)
    obs = torch.randn(1, 1, 4).expand(5, 3, 4)
    logits = actor.logits(obs)
    assert logits.shape == (5, 3, 2)
    assert not torch.allclose(logits[:, 0], logits[:, 1])


def test_dag_actor_without_edges_equals_its_base_and_parents_change_children():
    torch.manual_seed(4)
    actor = DAGActor(3, 4, 2)
    obs = torch.randn(8, 3, 4)
    actions = torch.randint(0, 2, (8, 3))
    torch.testing.assert_close(actor.logits(obs), actor.base.logits(obs))
    edge_index = torch.tensor([[0], [2]])  # 0 -> 2
    with torch.no_grad():
        actor.parent_out.weight.normal_()
    msgs = actor.parent_messages(actions, edge_index)
    assert msgs.shape == (8, 3, 3 * 2)
    assert torch.equal(msgs[:, 2, :2], nn.functional.one_hot(actions[:, 0], 2).float())
    assert msgs[:, [0, 1]].abs().sum() == 0
    flipped = actions.clone()
    flipped[:, 0] = 1 - flipped[:, 0]
    a = actor.logits(obs, parent_actions=actions, edge_index=edge_index)
    b = actor.logits(obs, parent_actions=flipped, edge_index=edge_index)
    torch.testing.assert_close(a[:, :2], b[:, :2])
    assert not torch.allclose(a[:, 2], b[:, 2])


def test_dag_actor_sequential_act_conditions_on_earlier_batches():
    torch.manual_seed(5)
    actor = DAGActor(2, 3, 2)
    with torch.no_grad():
        # child 1 strongly copies parent 0
        actor.parent_out.weight.zero_()
        actor.parent_hidden.weight.zero_()
        actor.parent_hidden.weight[1, 0, 0] = 5.0  # slot (agent 0, action 0)
        actor.parent_hidden.weight[1, 1, 1] = 5.0  # slot (agent 0, action 1)
        actor.parent_out.weight[1, 0, 0] = 20.0
        actor.parent_out.weight[1, 1, 1] = 20.0
    obs = torch.randn(500, 2, 3)
    actions, _ = actor.act(
        obs,
        None,
        generator=torch.Generator().manual_seed(1),
        batches=[[0], [1]],
        edge_index=torch.tensor([[0], [1]]),
    )
    assert (actions[:, 0] == actions[:, 1]).float().mean() > 0.99


def test_embedded_parent_encoding_is_linear_in_agents_and_tells_parents_apart():
    from mapograph.policies import DAGActor

    def head_params(actor):
        return sum(
            p.numel()
            for name, p in actor.named_parameters()
            if name.startswith(("encode", "parent_hidden", "parent_out"))
        )

    slots = [head_params(DAGActor(n, 5, 3, hidden=16, parent_encoding="slots")) for n in (20, 40)]
    embedded = [
        head_params(DAGActor(n, 5, 3, hidden=16, parent_encoding="embedded")) for n in (20, 40)
    ]
    assert slots[1] / slots[0] > 3.5  # quadratic
    assert embedded[1] / embedded[0] < 2.1  # linear
    torch.manual_seed(0)
    actor = DAGActor(3, 4, 2, hidden=8, parent_encoding="embedded")
    with torch.no_grad():
        actor.parent_out.weight.normal_()
    obs = torch.randn(1, 3, 4)
    none = actor.distribution(obs).probs
    assert torch.equal(none, actor.base.distribution(obs).probs)  # no parents: the inner actor
    edges_from_0 = torch.tensor([[0], [2]])
    edges_from_1 = torch.tensor([[1], [2]])
    acts = torch.tensor([[0, 0, 0]])
    from_0 = actor.distribution(obs, parent_actions=acts, edge_index=edges_from_0).probs
    from_1 = actor.distribution(obs, parent_actions=acts, edge_index=edges_from_1).probs
    other = actor.distribution(
        obs, parent_actions=torch.tensor([[1, 0, 0]]), edge_index=edges_from_0
    ).probs
    assert not torch.allclose(from_0[0, 2], from_1[0, 2])  # which parent acted matters
    assert not torch.allclose(from_0[0, 2], other[0, 2])  # and what it did
    assert torch.equal(from_0[0, :2], none[0, :2])  # agents without parents unchanged
    with pytest.raises(ValueError, match="parent_encoding must be one of"):
        DAGActor(3, 4, 2, parent_encoding="dense")


def _head_reading(form: str | None) -> dict:
    """DAGActor keywords of a parent head that reads the observation in ``form`` (None:
    an action-only head)."""
    return {} if form is None else {"parent_obs": True, "parent_obs_form": form}


def _fit_answer_to_parent(form: str | None) -> float:
    """Train a child to answer its parent with ``a_1 = a_0 xor bit(o_1)``; its accuracy."""
    torch.manual_seed(0)
    actor = DAGActor(2, 2, 2, hidden=16, **_head_reading(form))
    gen = torch.Generator().manual_seed(1)
    bit = torch.randint(0, 2, (512,), generator=gen)
    obs = torch.zeros(512, 2, 2)
    obs[:, 1] = nn.functional.one_hot(bit, 2).float()  # the child sees the bit
    actions = torch.randint(0, 2, (512, 2), generator=gen)
    target = actions[:, 0] ^ bit
    edge_index = torch.tensor([[0], [1]])
    opt = torch.optim.Adam(actor.parameters(), lr=0.03)
    for _ in range(300):
        logits = actor.logits(obs, parent_actions=actions, edge_index=edge_index)[:, 1]
        loss = nn.functional.cross_entropy(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    logits = actor.logits(obs, parent_actions=actions, edge_index=edge_index)[:, 1]
    return float((logits.argmax(-1) == target).float().mean())


def test_parent_head_reads_the_observation_so_the_answer_can_depend_on_it():
    # which answer to a parent's action is right depends on what the child observes
    # (the observation-conditioned games): an additive f(obs) + g(parent action)
    # tops out at 3 of the 4 (bit, parent action) cells
    assert _fit_answer_to_parent("add") > 0.99
    assert _fit_answer_to_parent("gate") > 0.99
    assert _fit_answer_to_parent(None) < 0.8


@pytest.mark.parametrize("form", ["add", "gate"])
def test_parent_obs_keeps_the_reductions_exact(form):
    torch.manual_seed(3)
    actor = DAGActor(3, 4, 2, **_head_reading(form))
    obs = torch.randn(6, 3, 4)
    actions = torch.randint(0, 2, (6, 3))
    edge_index = torch.tensor([[0], [2]])
    with torch.no_grad():
        actor.parent_out.weight.normal_()
    torch.testing.assert_close(actor.logits(obs), actor.base.logits(obs))  # no edges
    conditioned = actor.logits(obs, parent_actions=actions, edge_index=edge_index)
    torch.testing.assert_close(conditioned[:, :2], actor.base.logits(obs)[:, :2])  # no parents
    decoded, _ = actor.act(obs, deterministic=True, batches=[[0, 1], [2]], edge_index=edge_index)
    answered = actor.logits(obs, parent_actions=decoded, edge_index=edge_index)
    assert torch.equal(decoded, answered.argmax(-1))  # sequential decoding reads the same head


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("parent_obs", [None, "add", "gate"])
def test_parentless_agents_skip_the_parent_head_with_the_same_result(continuous, parent_obs):
    """``receivers`` runs the parent head on the agents with a parent only: the others'
    term is exactly zero anyway, so distributions and gradients are the same (where no
    agent has a parent the head is not used at all: no gradient instead of a zero one)."""
    from mapograph.policies._dag_actor import receivers_of

    torch.manual_seed(0)
    n, obs_dim, d = 6, 5, 3
    actor = DAGActor(n, obs_dim, d, hidden=8, continuous=continuous, **_head_reading(parent_obs))
    with torch.no_grad():
        actor.parent_out.weight.normal_()  # zero at init: make the parents matter
    edge_index = torch.tensor([[0, 1, 0], [2, 3, 3]])
    obs = torch.randn(7, n, obs_dim)
    actions = torch.randn(7, n, d) if continuous else torch.randint(0, d, (7, n))
    messages = actor.parent_messages(actions, edge_index)
    receivers = receivers_of(edge_index)
    assert receivers.tolist() == [2, 3] and receivers_of(edge_index[:, :0]) is None
    for agents in (None, torch.tensor([1, 2, 5]), torch.tensor([3, 2]), torch.tensor([0, 4])):
        results = []
        for kw in ({}, {"receivers": receivers}):
            actor.zero_grad()
            dist = actor.distribution(obs, None, agents, messages=messages, **kw)
            mean = dist.loc if continuous else dist.logits
            mean.pow(2).sum().backward()
            # unused (no receiver among the agents): no gradient, the zero it was before
            grads = [
                torch.zeros_like(p) if p.grad is None else p.grad.clone()
                for p in actor.parent_hidden.parameters()
            ]
            results.append((mean.detach(), grads))
        (full, g_full), (skip, g_skip) = results
        torch.testing.assert_close(skip, full, rtol=0, atol=1e-6)
        for a, b in zip(g_full, g_skip):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("continuous", [False, True])
def test_sequential_decoding_follows_a_new_plan(continuous):
    """Decoding keeps its per-plan index work between steps; a new plan (other batches or
    edges) is decoded as by an actor that never saw the old one."""
    import copy

    torch.manual_seed(0)
    n, obs_dim, d = 5, 4, 3
    actor = DAGActor(n, obs_dim, d, hidden=8, continuous=continuous)
    with torch.no_grad():
        actor.parent_out.weight.normal_(std=3.0)
    fresh = copy.deepcopy(actor)
    obs = torch.randn(6, n, obs_dim)
    plan_a = ([[0, 1], [2, 3, 4]], torch.tensor([[0, 1], [2, 4]]))
    plan_b = ([[3], [0, 1, 2], [4]], torch.tensor([[3, 3, 1], [0, 2, 4]]))

    def act(policy, plan, seed):
        batches, edges = plan
        gen = torch.Generator().manual_seed(seed)
        return policy.act(obs, None, generator=gen, batches=batches, edge_index=edges)

    for seed in range(2):  # the same plan objects again: the kept index work is reused
        act(actor, plan_a, seed)
    for seed in range(2):
        got, expected = act(actor, plan_b, seed), act(fresh, plan_b, seed)
        for x, y in zip(got, expected):
            torch.testing.assert_close(x, y)
    # the parent term reaches the children: decoding without edges differs
    gen = torch.Generator().manual_seed(0)
    unconditioned = actor.act(obs, None, generator=gen)[1]
    assert not torch.allclose(unconditioned, act(actor, plan_b, 0)[1])


def test_log_softmax_over_few_categories_is_torchs():
    """The CPU fast path (categories moved to the front) gives torch's values bit for bit
    and its gradients to rounding, for few and for many categories."""
    from mapograph.policies._distributions import FEW_CATEGORIES, log_softmax

    torch.manual_seed(0)
    for shape in ((256, 7, 5), (9, 2), (4, 3, FEW_CATEGORIES + 1), (6,)):
        x = torch.randn(*shape, requires_grad=True)
        weights = torch.randn(shape)
        ours, theirs = log_softmax(x), torch.log_softmax(x, -1)
        assert ours.shape == theirs.shape and torch.equal(ours, theirs)
        (g_ours,) = torch.autograd.grad((ours * weights).sum(), x)
        (g_theirs,) = torch.autograd.grad((theirs * weights).sum(), x)
        torch.testing.assert_close(g_ours, g_theirs, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("encoding", ["slots", "embedded"])
@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("parent_obs", [None, "add", "gate"])
def test_compact_parent_messages_match_the_encoded_messages(encoding, continuous, parent_obs):
    """The head on compact messages (K parents' action vectors, the weight rearranged per
    parent) is the head on the encoded messages: same outputs, same gradients, same
    sequential decoding."""
    from mapograph.policies._dag_actor import receivers_of

    n, n_actions, obs_dim, samples = 18, 4, 6, 64
    torch.manual_seed(11)
    actor = DAGActor(
        n,
        obs_dim,
        n_actions,
        hidden=16,
        continuous=continuous,
        parent_encoding=encoding,
        **_head_reading(parent_obs),
    )
    with torch.no_grad():
        actor.parent_out.weight.normal_()
    batches = [list(range(0, 6)), list(range(6, 12)), list(range(12, n))]
    # every agent of a later batch gets 1-3 parents from earlier batches
    gen = torch.Generator().manual_seed(3)
    edges = []
    for child in range(6, n):
        earlier = (child // 6) * 6
        for parent in torch.randperm(earlier, generator=gen)[: 1 + child % 3].tolist():
            edges.append([parent, child])
    edge_index = torch.tensor(edges).t()
    obs = torch.randn(samples, n, obs_dim)
    if continuous:
        actions = torch.randn(samples, n, n_actions) * 1.5  # some outside [-1, 1]
    else:
        actions = torch.randint(0, n_actions, (samples, n))
    compact = actor.context(actions, edge_index)
    assert set(compact) == {"messages", "parent_slots"}
    assert compact["messages"].shape == (samples, n, 3 * n_actions)  # K = 3 parents at most
    dense = {"messages": actor.parent_messages(actions, edge_index)}
    receivers = receivers_of(edge_index)
    for agents in (None, torch.tensor(batches[2]), torch.tensor([0, 7, 13, 2])):
        outputs, grads = [], []
        for ctx in (compact, dense):
            actor.zero_grad()
            dist = actor.distribution(obs, None, agents, receivers=receivers, **ctx)
            picked = actions if agents is None else actions[:, agents]
            dist.log_prob(picked).sum().backward()
            outputs.append(dist.loc if continuous else dist.logits)
            grads.append(
                [p.grad.clone() for p in (actor.parent_hidden.weight, actor.parent_out.weight)]
            )
        torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=1e-5)
        for g_compact, g_dense in zip(*grads):
            torch.testing.assert_close(g_compact, g_dense, atol=1e-4, rtol=1e-4)  # float sums
    # sequential decoding reads compact messages too, and agrees with the update's pi_seq
    with torch.no_grad():
        taken, log_probs = actor.act(
            obs, None, False, torch.Generator().manual_seed(5), batches, edge_index
        )
        steps = actor._decoding(batches, edge_index, obs.device)
        assert all(step.compact is not None for step in steps[1:])
        again = actor.distribution(obs, None, **actor.context(taken, edge_index))
        torch.testing.assert_close(again.log_prob(taken), log_probs, atol=1e-5, rtol=1e-5)
        # decoding keeps the rearranged weights per plan; a moved head is read anew
        actor.parent_hidden.weight.mul_(-2.0)
        taken, log_probs = actor.act(obs, None, True, None, batches, edge_index)
        again = actor.distribution(obs, None, **actor.context(taken, edge_index))
        torch.testing.assert_close(again.log_prob(taken), log_probs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_the_parent_head_uses_its_configured_activation(activation):
    """``pi_seq``'s logits are the inner actor's plus ``out(act(hidden(message)))`` with the
    configured ``act`` (agents without parents get exactly the inner actor's)."""
    n, n_actions, obs_dim = 5, 3, 4
    torch.manual_seed(0)
    actor = DAGActor(n, obs_dim, n_actions, hidden=8, parent_activation=activation)
    with torch.no_grad():
        actor.parent_out.weight.normal_()
    edge_index = torch.tensor([[0, 1, 0], [2, 3, 3]])  # 0 -> 2, 1 -> 3, 0 -> 3
    obs = torch.randn(32, n, obs_dim)
    actions = torch.randint(0, n_actions, (32, n))
    messages = actor.parent_messages(actions, edge_index)
    act = {"relu": torch.relu, "tanh": torch.tanh}[activation]
    pre = actor.parent_hidden(messages, None)
    assert (pre < 0).any()  # the two activations differ on this input
    term = actor.parent_out(act(pre), None)
    expected = torch.log_softmax(actor.base.logits(obs) + term, -1)
    for context in ({"messages": messages}, actor.context(actions, edge_index)):
        got = actor.distribution(obs, None, **context).logits
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(term[:, [0, 1, 4]], torch.zeros(32, 3, n_actions))


@pytest.mark.parametrize("gain", [1.0, 40.0])
def test_the_parent_gain_scales_the_parent_term_in_training_and_decoding(gain):
    """``parent_gain`` multiplies the parent head's output wherever it is used: the
    distribution of ``pi_seq`` (dense and compact messages) and greedy decoding; agents
    without parents are untouched."""
    n, n_actions, obs_dim = 5, 3, 4
    torch.manual_seed(0)
    plain = DAGActor(n, obs_dim, n_actions, hidden=8)
    scaled = DAGActor(n, obs_dim, n_actions, hidden=8, parent_gain=gain)
    scaled.load_state_dict(plain.state_dict())
    for actor in (plain, scaled):
        with torch.no_grad():
            actor.parent_out.weight.copy_(
                torch.randn(
                    actor.parent_out.weight.shape, generator=torch.Generator().manual_seed(1)
                )
            )
    edge_index = torch.tensor([[0, 1, 0], [2, 3, 3]])
    obs = torch.randn(64, n, obs_dim)
    actions = torch.randint(0, n_actions, (64, n))
    base = plain.base.logits(obs)
    for context in (
        {"messages": scaled.parent_messages(actions, edge_index)},
        scaled.context(actions, edge_index),
    ):
        got = scaled.distribution(obs, None, **context).logits
        expected = torch.log_softmax(base + gain * _parent_term_of(plain, actions, edge_index), -1)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    batches = [[0, 1, 4], [2, 3]]
    greedy, _ = scaled.act(obs, None, True, batches=batches, edge_index=edge_index)
    first = base.argmax(-1)
    assert torch.equal(greedy[:, [0, 1, 4]], first[:, [0, 1, 4]])
    later = (base + gain * _parent_term_of(plain, greedy, edge_index)).argmax(-1)
    assert torch.equal(greedy[:, [2, 3]], later[:, [2, 3]])


def _parent_term_of(actor, actions, edge_index):
    """The parent head's raw output (gain 1) for ``actions`` on ``edge_index``."""
    hidden = actor.parent_activation(
        actor.parent_hidden(actor.parent_messages(actions, edge_index), None)
    )
    return actor.parent_out(hidden, None)


def test_an_unknown_parent_obs_form_is_refused():
    with pytest.raises(ValueError, match="parent_obs_form must be one of add, gate"):
        DAGActor(3, 4, 2, parent_obs=True, parent_obs_form="mul")


def test_a_parent_gain_that_is_not_positive_is_refused():
    with pytest.raises(ValueError, match="parent_gain must be a positive number"):
        DAGActor(3, 4, 2, parent_gain=0.0)
