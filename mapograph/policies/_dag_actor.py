"""B2MAPO's batch-sequential policy ``pi_seq``: each agent also sees its DAG parents' actions.

``pi_seq(a | o) = prod_j pi_j(a_j | o_j, a_pa(j))`` where ``pa(j)`` are the parents of
``j`` in the iteration's DAG restricted to edges that cross batches (within a batch
all agents act at once, so an edge inside a batch carries no information at act time).

Parents' actions reach agent ``j`` by message passing over the DAG, a sum
aggregation along the agent axis for every sample at once (``index_add_``; it
replaced torch_geometric's ``SimpleConv`` over a per-sample copy of the graph, same
sums, 2-3x faster): node ``i`` sends an encoding of its
action (:mod:`mapograph.policies._parent_encoding`: ``slots``, the one-hot of its
action placed in slot ``i`` of an ``N * n_actions`` vector, so ``j`` receives which
parent did what; or ``embedded``, a learned action embedding plus a per-agent
embedding, linear in ``N``). A per-agent parent head (stacked, bias-free, one hidden
layer with ``parent_activation``, last layer zero at init, output times
``parent_gain``) maps that message to logits added to the independent :class:`Actor`'s
logits. With no edges the message is zero and ``pi_seq`` equals the inner actor
exactly — the reduction to MAPPO/HAPPO/A2PO holds bit for bit. Where it is smaller,
the head reads compact messages instead (each child's parents' action vectors side by
side, its first-layer weight rearranged per parent: :meth:`DAGActor.slot_messages`),
the same function to rounding.

That head reads only the parents' actions, so the child's answer to them cannot
depend on what the child observes (``logits = f(obs) + g(parents' actions)``).
``parent_obs=True`` lets the agent's own observation into the head, so any function
of (observation, parents' actions) is within reach. Two forms (``parent_obs_form``):
``add`` (default) adds ``W obs + b`` to the head's pre-activation and subtracts the
head's output at a zero message, ``head(m, o) = out(act(P m + W o + b)) -
out(act(W o + b))``; ``gate`` multiplies the hidden units by ``1 + tanh(W obs + b)``
(the only form before session 15). Either way a zero message (no parents) still gives
exactly zero, so the reductions hold.

Continuous actions: a parent's action reaches the child as a vector, its action
clipped to ``[-1, 1]`` (padded dimensions zero), encoded the same way and summed by
the same aggregation; the parent head's output shifts the
child's Gaussian mean.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from mapograph.policies._actor import Actor, sample_categorical
from mapograph.policies._distributions import MaskedCategorical, detached, masked_logits
from mapograph.policies._gaussian import MaskedDiagGaussian, sample_gaussian
from mapograph.policies._parent_encoding import action_vectors, build_parent_encoding
from mapograph.policies._stacked import StackedLinear, activation_class, stacked_matmul

#: How ``parent_obs`` lets the observation into the parent head (see the module docstring).
PARENT_OBS_FORMS = ("add", "gate")


class ParentSlots(NamedTuple):
    """Which parent fills each of ``M`` rows' ``K`` message slots (compact messages).

    ``index [M, K]``: the parent in slot ``k`` of row ``m`` (0 where the slot is
    empty); ``mask [M, K, 1]``: 1.0 where the slot holds a parent. ``K`` is the
    largest number of parents of a row.
    """

    index: torch.Tensor
    mask: torch.Tensor


def parent_slots(sources: torch.Tensor, rows: torch.Tensor, count: int) -> ParentSlots:
    """The :class:`ParentSlots` of ``count`` rows from edges ``sources[e] -> rows[e]``
    (``rows``: the edge's child as a row index in ``[0, count)``)."""
    order = torch.argsort(rows, stable=True)
    rows, sources = rows[order], sources[order]
    counts = torch.bincount(rows, minlength=count)
    first = torch.cumsum(counts, 0) - counts  # where each row's edges start in `order`
    rank = torch.arange(rows.numel(), device=rows.device) - first[rows]
    width = int(counts.max()) if rows.numel() else 0
    index = rows.new_zeros(count, width).index_put_((rows, rank), sources)
    mask = torch.zeros(count, width, 1, device=rows.device)
    mask[rows, rank] = 1.0
    return ParentSlots(index, mask)


class _DecodingStep(NamedTuple):
    """Index work of one batch of sequential decoding (see :meth:`DAGActor._decoding`).

    ``agents``: the batch; ``sources``: the parent of every edge into it, ``slots``: the
    position of that edge's child in ``takers`` (the batch's agents with a parent);
    ``rows``: the takers' positions in ``agents`` (``None`` when all have a parent);
    ``compact``: the takers' :class:`ParentSlots` where compact messages are smaller.
    Without parents in the batch only ``agents`` is set.
    """

    agents: torch.Tensor
    sources: torch.Tensor | None = None
    slots: torch.Tensor | None = None
    takers: torch.Tensor | None = None
    rows: torch.Tensor | None = None
    compact: ParentSlots | None = None


def receivers_of(edge_index: torch.Tensor | None) -> torch.Tensor | None:
    """The agents with at least one parent in ``edge_index`` (sorted), ``None`` without edges."""
    if edge_index is None or edge_index.numel() == 0:
        return None
    return edge_index[1].unique()


class DAGActor(nn.Module):
    """Per-agent actor conditioned on the actions of its parents in a DAG.

    Args:
        n_agents: number of agents ``N``.
        obs_dim: observation size.
        n_actions: number of discrete actions (continuous: the padded action size ``d``).
        hidden: hidden width of the inner actor and the parent head.
        layers: hidden layers of the inner actor.
        continuous: Gaussian actions (as in :class:`Actor`).
        state_dependent_std: the log-std is an output of the network (as in :class:`Actor`).
        log_std_init: initial log-std of the Gaussian (as in :class:`Actor`).
        recurrent: a GRU torso (as in :class:`Actor`); the GRU reads the observation and
            the parent term is added to its output.
        parent_encoding: ``auto``, ``slots`` or ``embedded`` (see
            :mod:`mapograph.policies._parent_encoding`).
        share_params: the inner actor is one network for all agents (agent one-hot in
            its input) plus per-agent output heads; the parent heads stay per agent
            (see :meth:`torso_parameters`).
        parent_obs: the parent head also reads the agent's own observation (see the
            module docstring); default off (action-only head).
        parent_obs_form: how it reads it with ``parent_obs``: ``add`` (to the
            pre-activation, minus the head at a zero message) or ``gate`` (a
            multiplicative modulation of the hidden units).
        normalize_input: layer-normalize the observation before the torso (see
            :func:`~mapograph.policies.input_norm`; the parent head reads it raw).
        activation: the torso's hidden-layer activation.
        parent_activation: the parent head's hidden-layer activation (a name of
            :data:`~mapograph.policies.ACTIVATIONS`; the class default keeps the original
            tanh, :class:`~mapograph.TrainConfig`'s is relu).
        readout: add B2MAPO's readout ``pi_ind`` (see :meth:`independent`): a per-agent
            linear head, zero at init, on the torso's detached last hidden layer.
        parent_gain: factor on the parent head's output (the class default 1.0 keeps the
            original head; :class:`~mapograph.TrainConfig`'s is larger). Under Adam a gain
            ``g`` moves the head's logits about ``g`` times faster per step, so children
            learn their answers to their parents' actions on a faster timescale than the
            policies they answer change (docs/design-choices.md, "The children's answers
            need a faster timescale").
    """

    def __init__(
        self,
        n_agents: int,
        obs_dim: int,
        n_actions: int,
        hidden: int = 64,
        layers: int = 2,
        continuous: bool = False,
        state_dependent_std: bool = False,
        log_std_init: float = -0.5,
        recurrent: bool = False,
        parent_encoding: str = "auto",
        share_params: bool = False,
        parent_obs: bool = False,
        normalize_input: bool = False,
        activation: str = "tanh",
        readout: bool = False,
        parent_activation: str = "tanh",
        parent_gain: float = 1.0,
        parent_obs_form: str = "add",
    ) -> None:
        super().__init__()
        if parent_obs_form not in PARENT_OBS_FORMS:
            raise ValueError(
                f"parent_obs_form must be one of {', '.join(PARENT_OBS_FORMS)}, "
                f"got {parent_obs_form!r}"
            )
        self.parent_obs_form = parent_obs_form
        if not (isinstance(parent_gain, (int, float)) and parent_gain > 0):
            raise ValueError(f"parent_gain must be a positive number, got {parent_gain!r}")
        self.parent_gain = float(parent_gain)
        self.n_agents = n_agents
        self.n_actions = n_actions
        self.continuous = continuous
        self.recurrent = recurrent
        self.hidden_size = hidden if recurrent else None
        self.base = Actor(
            n_agents,
            obs_dim,
            n_actions,
            hidden,
            layers,
            share_params=share_params,
            continuous=continuous,
            state_dependent_std=state_dependent_std,
            log_std_init=log_std_init,
            recurrent=recurrent,
            per_agent_heads=True,
            normalize_input=normalize_input,
            activation=activation,
        )
        self.encode = build_parent_encoding(parent_encoding, n_agents, n_actions)
        self.parent_hidden = StackedLinear(n_agents, self.encode.size, hidden, bias=False)
        self.parent_out = StackedLinear(n_agents, hidden, n_actions, bias=False)
        self.parent_activation = activation_class(parent_activation)()
        with torch.no_grad():
            self.parent_out.weight.zero_()
        self.parent_obs: StackedLinear | None = None
        if parent_obs:
            self.parent_obs = StackedLinear(n_agents, obs_dim, hidden)
        self._decoding_cache: tuple | None = None  # see _decoding
        self.readout: StackedLinear | None = None
        if readout:
            with torch.random.fork_rng(devices=[]):  # zero weights: no draw shifts the others
                self.readout = StackedLinear(n_agents, hidden, n_actions, init_scale=0.0)

    def torso_parameters(self) -> list[nn.Parameter]:
        """The inner actor's shared part (empty with per-agent parameters)."""
        return self.base.torso_parameters()

    def context(self, actions: torch.Tensor, edge_index: torch.Tensor | None) -> dict:
        """Keyword arguments of :meth:`logits` for fixed data: the precomputed messages.

        Compact messages (:meth:`slot_messages` with their ``parent_slots``) where they
        are smaller than the encoding's, else :meth:`parent_messages`.
        """
        if edge_index is None or edge_index.numel() == 0:
            return {}
        slots = self._compact_slots(edge_index[0], edge_index[1], self.n_agents)
        if slots is None:
            return {"messages": self.parent_messages(actions, edge_index)}
        return {"messages": self.slot_messages(actions, slots), "parent_slots": slots}

    def _compact_slots(
        self, sources: torch.Tensor, rows: torch.Tensor, count: int
    ) -> ParentSlots | None:
        """The :class:`ParentSlots` of edges ``sources -> rows``, ``None`` where compact
        messages (``K * A`` numbers per row) would not be smaller than the encoding's."""
        slots = parent_slots(sources, rows, count)
        if slots.index.shape[1] * self.n_actions >= self.encode.size:
            return None
        return slots

    def slot_messages(self, actions: torch.Tensor, slots: ParentSlots) -> torch.Tensor:
        """Compact messages ``[..., M, K * A]``: block ``k`` of row ``m`` holds the action
        vector of parent ``slots.index[m, k]`` (one-hot; continuous: clipped), zero where
        the slot is empty.

        The parent head's first layer is linear in the encoded message, and the message
        is a sum over parents, so ``W_j m_j = sum_k W_j x(p_k)``: with the head's weight
        rearranged per parent (``slot_weights`` of the encoding) the head reads ``K * A``
        numbers per child instead of the encoding's ``N * A`` (slots) or ``A * C``
        (embedded). Same function and gradients (to rounding), 3-8x less arithmetic.
        """
        rows, width = slots.index.shape
        agent_axis = -2 if self.continuous else -1
        picked = actions.index_select(agent_axis, slots.index.reshape(-1))
        vectors, lead = action_vectors(picked, rows * width, self.n_actions, self.continuous)
        vectors = vectors.reshape(-1, rows, width, self.n_actions) * slots.mask
        return vectors.reshape(*lead, rows, width * self.n_actions)

    def parent_messages(self, actions: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Messages ``[..., N, D]``: for every agent, the sum of its parents' encodings.

        Args:
            actions: ``[..., N]`` long joint actions (continuous: ``[..., N, d]``; only
                parents' entries matter).
            edge_index: ``[2, e]`` DAG edges ``i -> j`` between agents.
        """
        source, target = edge_index
        return self._summed_messages(actions, source, target, self.n_agents)

    def _summed_messages(
        self, actions: torch.Tensor, sources: torch.Tensor, slots: torch.Tensor, count: int
    ) -> torch.Tensor:
        """Messages ``[..., count, D]``: edge ``e``'s parent ``sources[e]`` encoded and
        added to row ``slots[e]`` (only the parents' actions are encoded).

        Every sample's parents are summed at once along the agent axis: no per-sample
        copy of the graph; ``index_add_`` is 2-3x faster than torch_geometric's
        ``SimpleConv`` or ``scatter`` on these shapes and gives the same sums (docs:
        design choices).
        """
        agent_axis = -2 if self.continuous else -1
        picked = actions.index_select(agent_axis, sources)
        vectors, lead = action_vectors(picked, sources.numel(), self.n_actions, self.continuous)
        x = self.encode(vectors, sources)  # [B, S, D]
        messages = x.new_zeros(x.shape[0], count, x.shape[-1]).index_add_(1, slots, x)
        return messages.reshape(*lead, count, -1)

    def _messages_into(self, actions: torch.Tensor, step: _DecodingStep) -> torch.Tensor:
        """The parent messages of one decoding step's receivers only (``[..., T, D]``, or
        compact ones when the step has ``compact`` slots)."""
        if step.compact is not None:
            return self.slot_messages(actions, step.compact)
        return self._summed_messages(actions, step.sources, step.slots, step.takers.numel())

    def _decoding(self, batches, edge_index, device) -> list[_DecodingStep]:
        """One :class:`_DecodingStep` per batch of a plan.

        Built once per plan and kept while the same ``batches`` and ``edge_index``
        objects come back (every step of a rollout), so that sequential decoding does
        no per-step index work.
        """
        key = str(device)
        cached = self._decoding_cache
        if (
            cached is not None
            and cached[0] is batches
            and cached[1] is edge_index
            and cached[2] == key
        ):
            return cached[3]
        steps = []
        position = torch.full((self.n_agents,), -1, dtype=torch.long, device=device)
        for batch in batches:
            agents = torch.as_tensor(batch, dtype=torch.long, device=device)
            into = edge_index[:, torch.isin(edge_index[1], agents)]
            if into.numel() == 0:
                steps.append(_DecodingStep(agents))
                continue
            rows = torch.isin(agents, into[1]).nonzero().squeeze(-1)
            takers = agents.index_select(0, rows)
            position[takers] = torch.arange(takers.numel(), device=device)
            slots = position.index_select(0, into[1])
            rows = None if rows.numel() == agents.numel() else rows
            compact = self._compact_slots(into[0], slots, takers.numel())
            steps.append(_DecodingStep(agents, into[0], slots, takers, rows, compact))
        self._decoding_cache = (batches, edge_index, key, steps, {})
        return steps

    def _decoding_weight(self, position: int, step: _DecodingStep) -> torch.Tensor:
        """The compact first-layer weight of decoding step ``position`` of the cached plan,
        rearranged once while the head's weight is the same tensor, unchanged in place
        (its version counter: optimizer steps and loads bump it)."""
        weights = self._decoding_cache[4]
        weight = self.parent_hidden.weight
        cached = weights.get(position)
        if cached is None or cached[0] is not weight or cached[1] != weight._version:
            first = self.encode.slot_weights(
                weight.index_select(0, step.takers), step.compact.index
            )
            cached = weights[position] = (weight, weight._version, first)
        return cached[2]

    def logits(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor | None = None,
        agents: torch.Tensor | None = None,
        parent_actions: torch.Tensor | None = None,
        edge_index: torch.Tensor | None = None,
        messages: torch.Tensor | None = None,
        h0: torch.Tensor | None = None,
        starts: torch.Tensor | None = None,
        receivers: torch.Tensor | None = None,
        parent_slots: ParentSlots | None = None,
    ) -> torch.Tensor:
        """Masked logits ``[..., N, n_actions]`` given the parents' actions (discrete only).

        Same arguments as :meth:`distribution`.
        """
        if self.continuous:
            raise TypeError("a continuous actor has no logits: use distribution()")
        out, _, term, avail = self._parts(
            obs,
            avail,
            agents,
            parent_actions,
            edge_index,
            messages,
            h0,
            starts,
            receivers,
            parent_slots,
        )
        return masked_logits(out if term is None else out + term, avail)

    def distribution(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor | None = None,
        agents: torch.Tensor | None = None,
        parent_actions: torch.Tensor | None = None,
        edge_index: torch.Tensor | None = None,
        messages: torch.Tensor | None = None,
        h0: torch.Tensor | None = None,
        starts: torch.Tensor | None = None,
        receivers: torch.Tensor | None = None,
        parent_slots: ParentSlots | None = None,
    ) -> MaskedCategorical | MaskedDiagGaussian:
        """Every agent's action distribution given the parents' actions.

        Args:
            obs: ``[..., N, obs_dim]``.
            avail: ``[..., N, n_actions]`` bool mask.
            agents: evaluate only these agents (obs/avail still hold all ``N``).
            parent_actions: ``[..., N]`` actions of the agents (parents' entries used).
            edge_index: DAG edges; ``None`` or empty means no conditioning.
            messages: precomputed messages (the optimizer computes them once per
                iteration with :meth:`context`): :meth:`parent_messages` ``[..., N, D]``,
                or compact :meth:`slot_messages` ``[..., N, K * A]`` with their
                ``parent_slots``; overrides ``parent_actions``/``edge_index``.
            h0: a recurrent actor's hidden states (see :meth:`Actor.features`).
            starts: a recurrent actor's episode starts (see :meth:`Actor.features`).
            receivers: the agents that have a parent in the DAG (:func:`receivers_of`;
                optional): the parent head runs on their rows only, the others' term
                being exactly zero (a zero message through a bias-free head).
            parent_slots: the :class:`ParentSlots` of compact ``messages``
                (:meth:`slot_messages`; :meth:`context` gives both).
        """
        out, _, term, avail = self._parts(
            obs,
            avail,
            agents,
            parent_actions,
            edge_index,
            messages,
            h0,
            starts,
            receivers,
            parent_slots,
        )
        return self.sequential_distribution(out, term, avail, agents)

    def distributions(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor | None = None,
        agents: torch.Tensor | None = None,
        messages: torch.Tensor | None = None,
        h0: torch.Tensor | None = None,
        starts: torch.Tensor | None = None,
        receivers: torch.Tensor | None = None,
        parent_slots: ParentSlots | None = None,
    ) -> tuple[MaskedCategorical | MaskedDiagGaussian, MaskedCategorical | MaskedDiagGaussian]:
        """``(pi_seq, independent)`` from one forward pass.

        ``pi_seq`` is :meth:`distribution` given the precomputed parent ``messages``;
        ``independent`` is the same inner actor's output without the parent head (what
        ``pi_seq`` would be with no parents): B2MAPO's tied ``pi_ind``; with a readout
        head, the readout ``pi_ind`` (:meth:`independent`). Arguments as in
        :meth:`distribution`.
        """
        out, hidden, term, avail = self._parts(
            obs, avail, agents, None, None, messages, h0, starts, receivers, parent_slots
        )
        seq = self.sequential_distribution(out, term, avail, agents)
        if self.readout is not None:
            return seq, self.readout_distribution(out, hidden, avail, agents)
        return seq, self.sequential_distribution(out, None, avail, agents)

    @torch.no_grad()
    def readout_inputs(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor | None = None,
        messages: torch.Tensor | None = None,
        h0: torch.Tensor | None = None,
        starts: torch.Tensor | None = None,
        agents: torch.Tensor | None = None,
        receivers: torch.Tensor | None = None,
        parent_slots: ParentSlots | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``(out, hidden, term, avail)`` of ``agents`` (all when ``None``) without
        gradient: what the readout head is distilled on (:meth:`readout_distribution`)
        and its teacher ``pi_seq`` (:meth:`sequential_distribution`). Arguments as in
        :meth:`distribution`."""
        return self._parts(
            obs, avail, agents, None, None, messages, h0, starts, receivers, parent_slots
        )

    def sequential_distribution(
        self,
        out: torch.Tensor,
        term: torch.Tensor | None,
        avail: torch.Tensor | None,
        agents: torch.Tensor | None = None,
    ) -> MaskedCategorical | MaskedDiagGaussian:
        """``pi_seq`` from the inner actor's output ``out`` and the parent head's ``term``."""
        if self.continuous:
            return self.base.gaussian(out, avail, agents, term)
        return MaskedCategorical(masked_logits(out if term is None else out + term, avail))

    def independent(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor | None = None,
        agents: torch.Tensor | None = None,
        h0: torch.Tensor | None = None,
        starts: torch.Tensor | None = None,
    ) -> MaskedCategorical | MaskedDiagGaussian:
        """The readout ``pi_ind`` (needs ``readout=True``): the inner actor's output plus
        the readout head on its last hidden layer, both cut from the graph below the head.

        ``pi_ind(. | o) = softmax(f(o) + R(h(o)))`` (continuous: the Gaussian of ``f`` with
        its mean shifted by ``R``), ``f`` and ``h`` held fixed: distilling ``pi_seq`` into it
        moves only ``R``, so it never moves ``pi_seq`` (unlike the tied form). Arguments
        as in :meth:`distribution`.
        """
        if self.readout is None:
            raise ValueError("this DAGActor has no readout head (readout=False)")
        out, hidden, _, avail = self._parts(obs, avail, agents, None, None, None, h0, starts)
        return self.readout_distribution(out, hidden, avail, agents)

    def readout_distribution(
        self,
        out: torch.Tensor,
        hidden: torch.Tensor,
        avail: torch.Tensor | None,
        agents: torch.Tensor | None = None,
    ) -> MaskedCategorical | MaskedDiagGaussian:
        """The readout ``pi_ind`` from the torso's ``out`` and last hidden layer ``hidden``
        (``agents``' rows; the gradient reaches the readout head only)."""
        shift = self.readout(hidden.detach(), agents)
        if self.continuous:
            fixed = detached(self.base.gaussian(out, avail, agents, None))
            return MaskedDiagGaussian(fixed.loc + shift, fixed.scale, fixed.mask)
        return MaskedCategorical(masked_logits(out.detach() + shift, avail))

    def _parent_term(
        self, agents, parent_actions, edge_index, messages, obs=None, receivers=None, slots=None
    ) -> torch.Tensor | None:
        """The parent head's output for ``agents`` (``None`` without parents).

        ``obs``: ``agents``' observations; with ``parent_obs`` they modulate the head's
        hidden units, so the answer to a parent's action can depend on what the agent sees.
        ``receivers``: the agents with a parent; the head runs on those rows only (the
        others' term is exactly zero) and ``None`` comes back when none is among ``agents``.
        ``slots``: the :class:`ParentSlots` of compact ``messages`` (same rows).
        """
        if (
            messages is None
            and edge_index is not None
            and edge_index.numel() > 0
            and parent_actions is not None
        ):
            messages = self.parent_messages(parent_actions, edge_index)
            slots = None
        if messages is None:
            return None
        rows = None  # positions in `agents` whose term is computed (None: all)
        if receivers is not None:
            if agents is None:
                agents = torch.arange(self.n_agents, device=messages.device)
            rows = torch.isin(agents, receivers).nonzero().squeeze(-1)
            if rows.numel() == 0:
                return None
            if rows.numel() == agents.numel():
                rows = None
            else:
                agents_all, agents = agents, agents.index_select(0, rows)
                obs = None if obs is None else obs.index_select(-2, rows)
        if agents is not None:
            messages = messages.index_select(-2, agents)
            if slots is not None:
                slots = ParentSlots(*(x.index_select(0, agents) for x in slots))
        term = self._parent_head(messages, agents, obs, slots)
        if rows is None:
            return term
        shape = list(term.shape)
        shape[-2] = agents_all.numel()
        return term.new_zeros(shape).index_copy(-2, rows, term)

    def _parent_head(
        self,
        messages: torch.Tensor,
        agents: torch.Tensor | None,
        obs: torch.Tensor | None,
        slots: ParentSlots | None = None,
        first: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The parent head of ``agents`` (all when ``None``) on their own ``messages``
        (compact ones with their ``slots``: see :meth:`slot_messages`; ``first``: their
        first-layer weight when already rearranged)."""
        if slots is None:
            pre = self.parent_hidden(messages, agents)
        else:
            if first is None:
                weight = self.parent_hidden.weight
                weight = weight if agents is None else weight.index_select(0, agents)
                first = self.encode.slot_weights(weight, slots.index)
            pre = stacked_matmul(messages, first)
        if self.parent_obs is None or obs is None:
            out = self.parent_out(self.parent_activation(pre), agents)
        elif self.parent_obs_form == "gate":
            gate = 1 + torch.tanh(self.parent_obs(obs, agents))
            out = self.parent_out(self.parent_activation(pre) * gate, agents)
        else:  # add: the head's answer relative to its output at a zero message
            seen = self.parent_obs(obs, agents)
            out = self.parent_out(self.parent_activation(pre + seen), agents)
            out = out - self.parent_out(self.parent_activation(seen), agents)
        return out if self.parent_gain == 1.0 else out * self.parent_gain

    def _parts(
        self,
        obs,
        avail,
        agents,
        parent_actions,
        edge_index,
        messages,
        h0,
        starts,
        receivers=None,
        slots=None,
    ):
        """One forward of ``agents``: the inner actor's output, its last hidden layer, the
        parent head's term (``None`` without parents) and the agents' ``avail`` rows."""
        obs_sel = obs if agents is None else obs.index_select(-2, agents)
        out, hidden = self.base.features_with_hidden(obs_sel, agents, h0, starts)
        term = self._parent_term(
            agents, parent_actions, edge_index, messages, obs_sel, receivers, slots
        )
        if avail is not None and agents is not None:
            avail = avail.index_select(-2, agents)
        return out, hidden, term, avail

    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor | None = None,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        batches: list[list[int]] | None = None,
        edge_index: torch.Tensor | None = None,
        hidden: torch.Tensor | None = None,
        epsilon: float = 0.0,
    ) -> tuple[torch.Tensor, ...]:
        """Sequential decoding: batches act in order, each seeing earlier batches' actions.

        ``epsilon`` (sampling, discrete only): each agent's action is uniformly random
        with that probability and the log-probs are the mixture's, so later batches
        see earlier batches deviate (see :func:`~mapograph.policies.sample_categorical`).

        Within a batch every agent acts at once (one vectorized forward per batch).
        Without ``edge_index`` (or ``batches``) all agents act at once, unconditioned.

        Returns:
            ``(actions [..., N], log_probs [..., N])`` (continuous: actions ``[..., N, d]``);
            a recurrent actor takes ``hidden [..., N, H]`` and also returns the next one.
        """
        sampling = (deterministic, generator, batches, edge_index, epsilon)
        if not self.recurrent:
            return self._decode(obs, avail, *sampling)
        if hidden is None:
            raise ValueError("a recurrent actor's act() needs hidden= (see initial_hidden)")
        out, next_hidden = self.base.net.step(obs, hidden)  # the GRU steps once for all agents
        result = self._decode(obs, avail, *sampling, out)
        return (*result, next_hidden)

    def initial_hidden(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Zero hidden state ``[batch, N, H]`` of a recurrent actor."""
        return self.base.initial_hidden(batch, device)

    def _decode(
        self, obs, avail, deterministic, generator, batches, edge_index, epsilon=0.0, out=None
    ):
        """Sample batch after batch; ``out``: the torso's output when already computed."""
        if self.continuous:
            return self._act_continuous(
                obs, avail, deterministic, generator, batches, edge_index, out
            )
        if edge_index is None or edge_index.numel() == 0 or batches is None:
            logits = self.logits(obs, avail) if out is None else masked_logits(out, avail)
            return sample_categorical(logits, deterministic, generator, epsilon)
        # the observation part does not depend on parents: once
        base_logits = self.base.net(obs) if out is None else out
        actions = torch.zeros(obs.shape[:-1], dtype=torch.long, device=obs.device)
        log_probs = torch.zeros(obs.shape[:-1], dtype=obs.dtype, device=obs.device)
        for position, step in enumerate(self._decoding(batches, edge_index, obs.device)):
            logits = base_logits.index_select(-2, step.agents)
            term = self._decoding_term(actions, obs, position, step)
            if term is not None:
                rows = step.rows
                logits = logits + term if rows is None else logits.index_add(-2, rows, term)
            if avail is not None:
                logits = masked_logits(logits, avail.index_select(-2, step.agents))
            a, lp = sample_categorical(logits, deterministic, generator, epsilon)
            actions[..., step.agents] = a
            log_probs[..., step.agents] = lp
        return actions, log_probs

    def _decoding_term(
        self, actions: torch.Tensor, obs: torch.Tensor, position: int, step: _DecodingStep
    ) -> torch.Tensor | None:
        """The parent head's term of decoding step ``position`` (``step``) of the cached
        plan given the actions taken so far (``None`` when no agent of it has a parent)."""
        if step.takers is None:
            return None
        messages = self._messages_into(actions, step)
        obs = obs.index_select(-2, step.takers)
        first = None if step.compact is None else self._decoding_weight(position, step)
        return self._parent_head(messages, step.takers, obs, step.compact, first)

    def _act_continuous(self, obs, avail, deterministic, generator, batches, edge_index, out):
        """Sequential decoding of Gaussian actions (see :meth:`act`)."""
        if out is None:
            out = self.base.net(obs)  # the observation part does not depend on parents: once
        if edge_index is None or edge_index.numel() == 0 or batches is None:
            return sample_gaussian(self.base.gaussian(out, avail, None), deterministic, generator)
        actions = torch.zeros(*obs.shape[:-1], self.n_actions, dtype=obs.dtype, device=obs.device)
        log_probs = torch.zeros(obs.shape[:-1], dtype=obs.dtype, device=obs.device)
        for position, step in enumerate(self._decoding(batches, edge_index, obs.device)):
            agents, rows = step.agents, step.rows
            shift = term = self._decoding_term(actions, obs, position, step)
            if term is not None and rows is not None:
                shift = term.new_zeros(
                    (*term.shape[:-2], agents.numel(), term.shape[-1])
                ).index_copy(-2, rows, term)
            dist = self.base.gaussian(
                out.index_select(-2, agents),
                None if avail is None else avail.index_select(-2, agents),
                agents,
                shift,
            )
            a, lp = sample_gaussian(dist, deterministic, generator)
            actions[..., agents, :] = a
            log_probs[..., agents] = lp
        return actions, log_probs
