"""Built-in coordination games with a known interdependence DAG (``coordination:<layout>-<N>``).

Layouts: ``chain-N`` (a path), ``tree-N`` (a binary tree), ``random-N`` (each
agent after the first has one or two parents among the few agents just before
it in a hidden order), for ``2 <= N <= 1000``. Agent labels are a random
permutation (``layout_seed``, independent of the env ``seed``) so that the
identity order is not the topological order.

The game, per step and per copy:

- a signal ``c in {0..A-1}`` is drawn (a new one every step) and every agent sees it;
- agent ``j`` has a fixed offset ``o_j`` (drawn with the layout); its target is
  ``t_j = (c + o_j) mod A``;
- each **root** ``r`` scores 1 when ``a_r = t_r``; every other agent scores ``unary``
  (default 0.5) when it plays its own target;
- each **edge** ``i -> j`` scores 1 when ``a_j = (a_i + o_j - o_i) mod A``: the child
  must answer its parent's *actual* action. With ``A = 2`` and ``o_i != o_j`` this is
  anti-coordination: if parent and child both switch at once the edge still scores 0,
  which is exactly how simultaneous updates of interdependent agents undo each other;
- the team reward is the weighted mean of all terms, so the optimal joint action
  ``a_j = t_j`` scores 1.0 per step (:meth:`CoordinationEnv.optimal_return`) and a
  uniformly random policy ``1 / A`` in expectation.

The optimal policy is decentralized: ``t_j`` depends only on the signal and
the agent's own offset, both known to agent ``j`` (its observation holds the
signal one-hot, its id and the episode's time fraction). The id is one-hot up
to 64 agents and a binary code of ``ceil(log2 N)`` bits beyond (``ids="onehot"`` /
``"binary"`` choose either), so that 1,000 agents observe 13 numbers each, not 1,003. An agent's best
*response*, though, depends on its parents' actions, which is what makes the
order of updates matter: an edge (weight 1) outweighs a child's own term
(weight ``unary`` < 1), so a child whose parent errs should follow the parent.

Miscoordination trap (``trap > 0``): an extra "safe" action scores ``trap`` on
every term where both ends (or the root) play it, and a child that plays a
non-safe action while its parent is safe scores ``-trap``. Once the agents
collapse on the safe action a child's best response to a safe parent is safe,
and a parent cannot leave without breaking its children: policy-gradient
methods settle there. Simple versions of these games (``trap = 0``) have a
milder trap: a child that adapted to a parent stuck on a wrong action makes that
parent's improvement cost the edge's reward. With ``unary=0`` the agents below the
root can collapse on constant actions that satisfy their edges whatever the
signal (a chain then stalls at 1 - 0.5 / (number of terms) of the optimum);
the own-target terms (``unary > 0``) make leaving that collapse profitable. Episodes last ``episode_limit``
steps (default 10) and copies reset themselves.
"""

from __future__ import annotations

import re

import networkx as nx
import torch

from mapograph._devices import resolve_device
from mapograph._validation import non_negative_float, require, seed_value, unit_interval
from mapograph.envs._base import MultiAgentEnv
from mapograph.envs._tensor_state import TensorState
from mapograph.envs._types import EnvSpec, TimeStep

LAYOUTS = ("chain", "tree", "random")
MAX_AGENTS = 1000
ONE_HOT_IDS_UP_TO = 64
ID_ENCODINGS = ("auto", "onehot", "binary")
_TASK = re.compile(r"(chain|tree|random)-([0-9]+)")  # read with fullmatch


def layout_dag(layout: str, n_agents: int, layout_seed: int = 0) -> nx.DiGraph:
    """The true DAG of a layout on agent labels permuted by ``layout_seed``.

    Raises:
        ValueError: ``layout_seed`` is not an int in ``[0, 2**53 - 1]``.
    """
    require("layout_seed", layout_seed, seed_value)
    gen = torch.Generator().manual_seed(layout_seed)
    perm = torch.randperm(n_agents, generator=gen).tolist()
    positions: list[tuple[int, int]] = []
    if layout == "chain":
        positions = [(p - 1, p) for p in range(1, n_agents)]
    elif layout == "tree":
        positions = [((p - 1) // 2, p) for p in range(1, n_agents)]
    elif layout == "random":
        for p in range(1, n_agents):
            window = list(range(max(0, p - 3), p))
            first = window[int(torch.randint(len(window), (), generator=gen))]
            parents = {first}
            if p >= 2 and float(torch.rand((), generator=gen)) < 0.5:
                parents.add(int(torch.randint(p, (), generator=gen)))
            positions += [(q, p) for q in sorted(parents)]
    else:
        raise ValueError(
            f"unknown coordination layout {layout!r}; choose one of {', '.join(LAYOUTS)}"
        )
    dag = nx.DiGraph()
    dag.add_nodes_from(range(n_agents))
    dag.add_edges_from((perm[a], perm[b]) for a, b in positions)
    return dag


def agent_id_features(n_agents: int, encoding: str, device: torch.device) -> torch.Tensor:
    """Per-agent id features ``[N, d]``: one-hot (``d = N``) or binary (``d = ceil(log2 N)``)."""
    if encoding == "onehot" or (encoding == "auto" and n_agents <= ONE_HOT_IDS_UP_TO):
        return torch.eye(n_agents, device=device)
    bits = max(1, (n_agents - 1).bit_length())
    powers = 2 ** torch.arange(bits, device=device)
    return ((torch.arange(n_agents, device=device)[:, None] & powers) > 0).float()


class CoordinationEnv(TensorState, MultiAgentEnv):
    """Vectorized coordination game on a known DAG (see the module docstring).

    Args:
        layout: ``chain``, ``tree`` or ``random``.
        n_agents: number of agents (2..1000).
        num_envs: number of copies.
        seed: seed of the signals (the env's own generator).
        n_actions: ``A`` (>= 2).
        episode_limit: steps per episode.
        trap: reward of the extra safe action (0: no safe action).
        layout_seed: seed of the agent permutation, the random DAG and the offsets.
        ids: how an agent's id appears in its observation: ``onehot`` (N numbers),
            ``binary`` (``ceil(log2 N)`` bits) or ``auto`` (one-hot up to 64 agents).
        device: torch device of the tensors.
    """

    fresh_outputs = True  # new tensors every call; actions only read

    state_tensors = ("signal", "steps")  # with self.generator: the whole state (TensorState)

    def __init__(
        self,
        layout: str,
        n_agents: int,
        num_envs: int = 1,
        seed: int = 0,
        n_actions: int = 2,
        episode_limit: int = 10,
        trap: float = 0.0,
        unary: float = 0.5,
        layout_seed: int = 0,
        ids: str = "auto",
        device: str | torch.device = "cpu",
    ) -> None:
        if not isinstance(n_agents, int) or not 2 <= n_agents <= MAX_AGENTS:
            raise ValueError(f"coordination games take 2..{MAX_AGENTS} agents, got {n_agents!r}")
        if not isinstance(n_actions, int) or n_actions < 2:
            raise ValueError(f"n_actions must be an int >= 2, got {n_actions!r}")
        if not isinstance(episode_limit, int) or episode_limit < 1:
            raise ValueError(f"episode_limit must be a positive int, got {episode_limit!r}")
        require("trap", trap, non_negative_float)
        require("unary", unary, unit_interval)
        if ids not in ID_ENCODINGS:
            raise ValueError(f"ids must be one of {', '.join(ID_ENCODINGS)}, got {ids!r}")
        self.unary = float(unary)
        self.layout = layout
        self.dag = layout_dag(layout, n_agents, layout_seed)
        self.num_envs = num_envs
        self.n_signals = n_actions
        self.trap = float(trap)
        self.safe_action = n_actions if trap > 0 else None
        total_actions = n_actions + (1 if trap > 0 else 0)
        self.device = resolve_device(device)
        self.ids = agent_id_features(n_agents, ids, self.device)
        self.spec = EnvSpec(
            n_agents=n_agents,
            obs_dim=n_actions + self.ids.shape[1] + 1,
            state_dim=n_actions + 1,
            n_actions=total_actions,
            episode_limit=episode_limit,
        )
        layout_gen = torch.Generator().manual_seed(layout_seed + 1)
        self.offsets = torch.randint(n_actions, (n_agents,), generator=layout_gen).to(self.device)
        edges = torch.tensor(list(self.dag.edges), dtype=torch.long).reshape(-1, 2).t()
        self.src, self.dst = edges[0].to(self.device), edges[1].to(self.device)
        self.roots = torch.tensor(
            [v for v in range(n_agents) if self.dag.in_degree(v) == 0], device=self.device
        )
        is_root = torch.zeros(n_agents, dtype=torch.bool)
        is_root[self.roots.cpu()] = True
        # weight of each agent's own-target term: 1 for roots, `unary` for the others
        self.own_weight = torch.where(is_root, 1.0, self.unary).to(self.device)
        self.total_weight = float(self.src.numel() + self.own_weight.sum())
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.signal = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.steps = torch.zeros(num_envs, dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------ API
    def interdependence(self) -> nx.DiGraph:
        """The true interdependence DAG (edge ``i -> j``: ``j``'s best action depends on ``a_i``)."""
        return self.dag.copy()

    def optimal_return(self) -> float:
        """Per-step team reward of the optimal decentralized policy (1.0 by construction)."""
        return 1.0

    def optimal_actions(self) -> torch.Tensor:
        """The optimal joint action ``[E, N]`` for the current signals."""
        return (self.signal[:, None] + self.offsets[None, :]) % self.n_signals

    def reset(self) -> TimeStep:
        """Reset every copy."""
        self.steps.zero_()
        self._draw_signal(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        zeros = torch.zeros(self.num_envs, device=self.device)
        no = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        return self._timestep(zeros, no, no)

    def step(self, actions: torch.Tensor) -> TimeStep:
        """Score the joint actions, advance time and reset finished copies."""
        a = self.check_actions(actions)
        reward = self.team_reward(a, self.signal)
        self.steps += 1
        done = self.steps >= self.spec.episode_limit
        self.steps = torch.where(done, torch.zeros_like(self.steps), self.steps)
        self._draw_signal(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        return self._timestep(reward, done, done.clone())

    def team_reward(self, actions: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
        """Mean of the root and edge terms for joint actions ``[E, N]`` and signals ``[E]``."""
        a_src, a_dst = actions[:, self.src], actions[:, self.dst]
        need = (a_src + self.offsets[self.dst] - self.offsets[self.src]) % self.n_signals
        edge = (a_dst == need).float()
        targets = (signal[:, None] + self.offsets[None, :]) % self.n_signals
        own = (actions == targets).float()
        if self.safe_action is not None:
            safe = self.safe_action
            src_safe, dst_safe = a_src == safe, a_dst == safe
            edge = torch.where(src_safe & dst_safe, torch.full_like(edge, self.trap), edge)
            edge = torch.where(src_safe & ~dst_safe, torch.full_like(edge, -self.trap), edge)
            edge = torch.where(~src_safe & dst_safe, torch.zeros_like(edge), edge)
            own = torch.where(actions == safe, torch.full_like(own, self.trap), own)
        return (edge.sum(1) + (own * self.own_weight).sum(1)) / self.total_weight

    # ----------------------------------------------------------- internals
    def _draw_signal(self, mask: torch.Tensor) -> None:
        fresh = torch.randint(
            self.n_signals, (self.num_envs,), generator=self.generator, device=self.device
        )
        self.signal = torch.where(mask, fresh, self.signal)

    def _timestep(
        self, reward: torch.Tensor, done: torch.Tensor, truncated: torch.Tensor
    ) -> TimeStep:
        e, n = self.num_envs, self.spec.n_agents
        signal = torch.nn.functional.one_hot(self.signal, self.n_signals).float()
        time_frac = (self.steps.float() / self.spec.episode_limit).unsqueeze(-1)
        shared = torch.cat([signal, time_frac], -1)  # [E, A + 1]
        obs = torch.cat(
            [
                signal[:, None, :].expand(e, n, -1),
                self.ids.expand(e, n, -1),
                time_frac[:, None, :].expand(e, n, 1),
            ],
            -1,
        )
        avail = torch.ones(e, n, self.spec.n_actions, dtype=torch.bool, device=self.device)
        return TimeStep(
            obs=obs,
            state=shared,
            avail_actions=avail,
            reward=reward,
            done=done,
            truncated=truncated,
        )


def make_coordination(
    task: str | None = None, num_envs: int = 1, seed: int = 0, **kwargs
) -> CoordinationEnv:
    """Factory of ``coordination:<layout>-<N>`` (e.g. ``coordination:chain-6``)."""
    match = _TASK.fullmatch(task or "")
    if match is None:
        raise ValueError(
            f"unknown coordination task {task!r}; use chain-N, tree-N or random-N with 2 <= N <= {MAX_AGENTS}"
        )
    return CoordinationEnv(
        match.group(1), int(match.group(2)), num_envs=num_envs, seed=seed, **kwargs
    )
