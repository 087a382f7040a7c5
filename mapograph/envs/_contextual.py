"""Games whose interdependence shows only given what the agents observe (``contextual:<layout>-<N>``,
and their relative-overgeneralization variant ``climbing:<layout>-<N>``).

The coordination games (:mod:`mapograph.envs._coordination`) have edges that a
statistic pooled over all states sees: the child must answer its parent's
action with a fixed offset. Here a child's best answer to its parent's action
also depends on a **context** that changes every step, so that, averaged over
observations, the pair's actions do not interact at all.

Layouts: ``chain-N``, ``tree-N``, ``random-N`` (a random hidden DAG drawn from
``layout_seed``, :func:`~mapograph.envs.layout_dag`) and ``mixed-N`` (a random
DAG in which only ``30%`` of the agents have a context, so about half of the edges
are pooled-visible and half observation-conditioned), for ``2 <= N <= 64``.

Where the contexts sit (``context_placement``): ``random`` (the default) gives a
context to a seeded random share ``conditioned`` of the agents, so an edge may have a
context at both ends, and then the child's right answer depends on its parent's action
*and two* contexts (a three-way function). ``independent`` gives one to a maximal
independent set of the DAG's non-root agents (greedily, in topological order: on a
chain or tree the odd generations), so no edge has a context at both ends: every
observation-conditioned edge's answer is a function of the parent's action and *one*
context, the other edges are pooled-visible. Roots stay plain.

The game, per step and per copy (``A`` actions):

- a public signal ``c in {0..A-1}`` and, for each *conditioned* agent ``k``, a
  context ``x_k in {0..A-1}`` are drawn (uniformly, every step); plain agents
  have ``x_k = 0`` always. Agent ``k`` has a fixed offset ``o_k``;
- agent ``k``'s action *decodes* to ``d_k = (a_k - o_k - x_k) mod A``;
- each **edge** ``i -> j`` scores 1 when ``d_i = d_j``: the child must answer its
  parent's *actual* action, and which answer is right depends on the contexts.
  If either end is conditioned, ``x`` is uniform and independent of the actions
  taken, so ``E[edge | a_i, a_j] = 1 / A`` for every action pair: the edge is
  invisible to a statistic pooled over observations (observation-conditioned
  edge). If both ends are plain, the edge is the coordination game's
  (pooled-visible edge);
- each **root** scores 1 when ``d_r = c``, every other agent ``unary`` (default 0.5)
  when ``d_k = c``;
- the team reward is the weighted mean of all terms.

Every agent observes the signal one-hot, its id one-hot, the episode's time
fraction, its own context one-hot and all contexts (one-hot per agent, zeros
for plain agents). The
optimal joint action ``a_k = (c + o_k + x_k) mod A`` satisfies every term (1.0
per step, :meth:`ContextualEnv.optimal_return`) and each agent computes its part
from its own observation: a decentralized optimum exists. A uniformly random
policy scores ``1 / A`` in expectation. The true DAG is
:meth:`ContextualEnv.interdependence`; which edges are observation-conditioned is
:meth:`ContextualEnv.conditioned_edges`.

**Climbing payoffs** (``climbing:<layout>-<N>``, ``payoff="climbing"``, ``A >= 3``,
default 3). Same layouts, signal, contexts, offsets and observations, but each
edge is a *climbing game* (Claus & Boutilier, 1998) on the agents' decoded actions
``e_k = (a_k - o_k - x_k - c) mod A`` (``e >= 2`` all count as the third row):

| row `e_i`, column `e_j` | 0 | 1 | 2 |
|---|---|---|---|
| 0 | 11 | -30 | 0 |
| 1 | -30 | 7 | 6 |
| 2 | 0 | 0 | 5 |

divided by 11, and the team reward is the mean over the edges (no own terms). The
optimum ``e = 0`` everywhere (``a_k = (c + o_k + x_k) mod A``, computed from the
agent's own observation) scores 1.0 per step. ``e = 1`` everywhere scores 0.64 and is
a Nash profile (no agent gains by changing alone); ``e = 2`` everywhere (the *safe*
action, 0.45) is not: an agent with children gains by moving to ``e = 1`` (6 against
5 per child), which is how the game climbs to 0.64 and no further. Against partners
that act uniformly at random the optimal action earns less than the safe one (per
edge -0.58 against +0.15 as the parent, -0.58 against +0.33 as the child), so
independent learners drift away from it and settle on ``e = 1`` or below: *relative
overgeneralization*. A child that answers its parent's actual action (``e_j = e_i``)
makes the parent's optimal action pay 1.0, which is what a batch-sequential policy can
learn and independent policies cannot represent. Edges with a context at either end are invisible to a
pooled statistic as in the ``match`` game; edges between plain agents are not (the
payoff depends on the difference of the two decoded actions, whatever the signal).
"""

from __future__ import annotations

import re

import networkx as nx
import torch

from mapograph._devices import resolve_device
from mapograph._validation import require, unit_interval
from mapograph.envs._base import MultiAgentEnv
from mapograph.envs._coordination import layout_dag
from mapograph.envs._tensor_state import TensorState
from mapograph.envs._types import EnvSpec, TimeStep

#: Layout -> (DAG layout, default fraction of agents with a context).
CONTEXT_LAYOUTS = {"chain": ("chain", 1.0), "tree": ("tree", 1.0), "random": ("random", 1.0)}
CONTEXT_LAYOUTS["mixed"] = ("random", 0.3)
#: Every agent observes all contexts, so an observation has ``O(N A)`` entries.
MAX_AGENTS = 64
_TASK = re.compile(r"(chain|tree|random|mixed)-([0-9]+)")  # read with fullmatch
#: Edge payoffs of ``payoff="climbing"`` by decoded action (``e >= 2`` uses row/column 2).
CLIMBING = torch.tensor([[11.0, -30.0, 0.0], [-30.0, 7.0, 6.0], [0.0, 0.0, 5.0]]) / 11.0
#: Payoff rules of the family: ``match`` (the contextual game) and ``climbing``.
PAYOFFS = ("match", "climbing")
#: Where the contexts sit: a random share of the agents, or an independent set of the DAG.
PLACEMENTS = ("random", "independent")


class ContextualEnv(TensorState, MultiAgentEnv):
    """Vectorized observation-conditioned coordination game (see the module docstring).

    Args:
        layout: ``chain``, ``tree``, ``random`` or ``mixed``.
        n_agents: number of agents (2..64).
        num_envs: number of copies.
        seed: seed of the signals and contexts (the env's own generator).
        n_actions: ``A`` (>= 2).
        episode_limit: steps per episode.
        unary: weight of a non-root agent's own term, in ``[0, 1]``.
        conditioned: fraction of agents with a context (default: the layout's; only
            with ``context_placement="random"``).
        layout_seed: seed of the DAG, the agent permutation, the offsets and the
            choice of conditioned agents.
        context_placement: ``"random"`` (a random share ``conditioned`` of the agents)
            or ``"independent"`` (a maximal independent set of the DAG's non-root
            agents: no edge has a context at both ends; see the module docstring).
        payoff: ``"match"`` (edges score 1 when the decoded actions agree, plus own
            terms) or ``"climbing"`` (climbing-game edges, no own terms, ``n_actions
            >= 3``; see the module docstring).
        device: torch device of the tensors.
    """

    fresh_outputs = True  # new tensors every call; actions only read

    state_tensors = (
        "signal",
        "context",
        "steps",
    )  # with self.generator: the whole state (TensorState)

    def __init__(
        self,
        layout: str,
        n_agents: int,
        num_envs: int = 1,
        seed: int = 0,
        n_actions: int = 2,
        episode_limit: int = 10,
        unary: float = 0.5,
        conditioned: float | None = None,
        layout_seed: int = 0,
        payoff: str = "match",
        device: str | torch.device = "cpu",
        context_placement: str = "random",
    ) -> None:
        if context_placement not in PLACEMENTS:
            raise ValueError(
                f"unknown context_placement {context_placement!r}; "
                f"choose one of {', '.join(PLACEMENTS)}"
            )
        if context_placement == "independent" and conditioned is not None:
            raise ValueError(
                "conditioned (a share of random agents) does not apply with "
                "context_placement='independent' (an independent set of the DAG)"
            )
        if payoff not in PAYOFFS:
            raise ValueError(f"unknown payoff {payoff!r}; choose one of {', '.join(PAYOFFS)}")
        if layout not in CONTEXT_LAYOUTS:
            raise ValueError(
                f"unknown contextual layout {layout!r}; choose one of {', '.join(CONTEXT_LAYOUTS)}"
            )
        if not isinstance(n_agents, int) or not 2 <= n_agents <= MAX_AGENTS:
            raise ValueError(f"contextual games take 2..{MAX_AGENTS} agents, got {n_agents!r}")
        least = 3 if payoff == "climbing" else 2
        if not isinstance(n_actions, int) or n_actions < least:
            raise ValueError(
                f"n_actions must be an int >= {least} ({payoff} payoff), got {n_actions!r}"
            )
        if not isinstance(episode_limit, int) or episode_limit < 1:
            raise ValueError(f"episode_limit must be a positive int, got {episode_limit!r}")
        require("unary", unary, unit_interval)
        dag_layout, default_fraction = CONTEXT_LAYOUTS[layout]
        fraction = default_fraction if conditioned is None else conditioned
        require("conditioned", fraction, unit_interval)
        self.layout = layout
        self.payoff = payoff
        self.dag = layout_dag(dag_layout, n_agents, layout_seed)
        self.device = resolve_device(device)
        self.num_envs = num_envs
        self.n_signals = n_actions
        self.spec = EnvSpec(
            n_agents=n_agents,
            obs_dim=2 * n_actions + n_agents + 1 + n_agents * n_actions,
            state_dim=n_actions + 1 + n_agents * n_actions,
            n_actions=n_actions,
            episode_limit=episode_limit,
        )
        layout_gen = torch.Generator().manual_seed(layout_seed + 2)
        self.offsets = torch.randint(n_actions, (n_agents,), generator=layout_gen).to(self.device)
        n_conditioned = round(fraction * n_agents)
        chosen = torch.randperm(n_agents, generator=layout_gen)[:n_conditioned]
        if context_placement == "independent":
            chosen = torch.tensor(independent_agents(self.dag), dtype=torch.long)
        self.context_placement = context_placement
        self.has_context = torch.zeros(n_agents, dtype=torch.bool)
        self.has_context[chosen] = True
        self.has_context = self.has_context.to(self.device)
        edges = torch.tensor(list(self.dag.edges), dtype=torch.long).reshape(-1, 2).t()
        self.src, self.dst = edges[0].to(self.device), edges[1].to(self.device)
        is_root = torch.tensor([self.dag.in_degree(v) == 0 for v in range(n_agents)])
        self.own_weight = torch.where(is_root, 1.0, float(unary)).to(self.device)
        self.total_weight = float(self.src.numel() + self.own_weight.sum())
        self.climbing = CLIMBING.to(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.ids = torch.eye(n_agents, device=self.device)
        self.signal = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.context = torch.zeros(num_envs, n_agents, dtype=torch.long, device=self.device)
        self.steps = torch.zeros(num_envs, dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------ API
    def interdependence(self) -> nx.DiGraph:
        """The true interdependence DAG (edge ``i -> j``: ``j``'s best action depends on ``a_i``)."""
        return self.dag.copy()

    def conditioned_edges(self) -> list[tuple[int, int]]:
        """Edges invisible to a pooled statistic (at least one end has a context)."""
        flags = self.has_context.cpu()
        return [(i, j) for i, j in self.dag.edges if bool(flags[i] or flags[j])]

    def optimal_return(self) -> float:
        """Per-step team reward of the optimal decentralized policy (1.0 by construction)."""
        return 1.0

    def optimal_actions(self) -> torch.Tensor:
        """The optimal joint action ``[E, N]`` for the current signal and contexts."""
        return (self.signal[:, None] + self.offsets[None, :] + self.context) % self.n_signals

    def reset(self) -> TimeStep:
        """Reset every copy."""
        self.steps.zero_()
        self._draw()
        zeros = torch.zeros(self.num_envs, device=self.device)
        no = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        return self._timestep(zeros, no, no)

    def step(self, actions: torch.Tensor) -> TimeStep:
        """Score the joint actions, advance time and reset finished copies."""
        a = self.check_actions(actions)
        reward = self.team_reward(a, self.signal, self.context)
        self.steps += 1
        done = self.steps >= self.spec.episode_limit
        self.steps = torch.where(done, torch.zeros_like(self.steps), self.steps)
        self._draw()
        return self._timestep(reward, done, done.clone())

    def team_reward(
        self, actions: torch.Tensor, signal: torch.Tensor, context: torch.Tensor
    ) -> torch.Tensor:
        """Team reward for actions ``[E, N]``, signals ``[E]``, contexts ``[E, N]``: the
        weighted mean of the edge and own terms (``match``), or the mean climbing-game
        payoff of the edges (``climbing``)."""
        if self.payoff == "climbing":
            e = (
                (actions - self.offsets[None, :] - context - signal[:, None]) % self.n_signals
            ).clamp(max=2)
            return self.climbing[e[:, self.src], e[:, self.dst]].sum(1) / max(1, self.src.numel())
        decoded = (actions - self.offsets[None, :] - context) % self.n_signals
        edge = (decoded[:, self.src] == decoded[:, self.dst]).float()
        own = (decoded == signal[:, None]).float()
        return (edge.sum(1) + (own * self.own_weight).sum(1)) / self.total_weight

    # ----------------------------------------------------------- internals
    def _draw(self) -> None:
        e, n, a = self.num_envs, self.spec.n_agents, self.n_signals
        self.signal = torch.randint(a, (e,), generator=self.generator, device=self.device)
        fresh = torch.randint(a, (e, n), generator=self.generator, device=self.device)
        self.context = fresh * self.has_context[None, :]

    def _timestep(
        self, reward: torch.Tensor, done: torch.Tensor, truncated: torch.Tensor
    ) -> TimeStep:
        e, n = self.num_envs, self.spec.n_agents
        signal = torch.nn.functional.one_hot(self.signal, self.n_signals).float()
        context = torch.nn.functional.one_hot(self.context, self.n_signals).float()
        context = context * self.has_context[None, :, None]  # [E, N, A]
        own_context = context
        context = context.reshape(e, -1)  # [E, N * A]
        time_frac = (self.steps.float() / self.spec.episode_limit).unsqueeze(-1)
        state = torch.cat([signal, time_frac, context], -1)
        obs = torch.cat(
            [
                signal[:, None, :].expand(e, n, -1),
                self.ids.expand(e, n, n),
                time_frac[:, None, :].expand(e, n, 1),
                own_context,
                context[:, None, :].expand(e, n, -1),
            ],
            -1,
        )
        avail = torch.ones(e, n, self.spec.n_actions, dtype=torch.bool, device=self.device)
        return TimeStep(
            obs=obs, state=state, avail_actions=avail, reward=reward, done=done, truncated=truncated
        )


def independent_agents(dag: nx.DiGraph) -> list[int]:
    """A maximal independent set of ``dag``'s non-root agents, taken greedily in
    (lexicographic) topological order: an agent joins unless one of its parents did.
    On a chain or a tree these are the odd generations."""
    taken: set[int] = set()
    for node in nx.lexicographical_topological_sort(dag):
        if dag.in_degree(node) and not any(p in taken for p in dag.predecessors(node)):
            taken.add(node)
    return sorted(taken)


def _layout_of(task: str | None, family: str) -> tuple[str, int]:
    """``(layout, N)`` of a ``<layout>-<N>`` task name of ``family`` (a clear error else)."""
    match = _TASK.fullmatch(task or "")
    if match is None:
        raise ValueError(
            f"unknown {family} task {task!r}; use chain-N, tree-N, random-N or mixed-N "
            f"with 2 <= N <= {MAX_AGENTS}"
        )
    return match.group(1), int(match.group(2))


def make_contextual(
    task: str | None = None, num_envs: int = 1, seed: int = 0, **kwargs
) -> ContextualEnv:
    """Factory of ``contextual:<layout>-<N>`` (e.g. ``contextual:random-10``)."""
    return ContextualEnv(*_layout_of(task, "contextual"), num_envs=num_envs, seed=seed, **kwargs)


def make_climbing(
    task: str | None = None, num_envs: int = 1, seed: int = 0, **kwargs
) -> ContextualEnv:
    """Factory of ``climbing:<layout>-<N>`` (e.g. ``climbing:tree-7``): the contextual
    layouts with climbing-game edges (``payoff="climbing"``, 3 actions by default)."""
    kwargs.setdefault("n_actions", 3)
    layout, n_agents = _layout_of(task, "climbing")
    return ContextualEnv(
        layout, n_agents, num_envs=num_envs, seed=seed, payoff="climbing", **kwargs
    )
