"""B2MAPO's upper layer: a learned DAG generator trained with PPO.

Each iteration the generator reads per-agent features (mean observation of the
last rollout plus the agent's one-hot id), samples a DAG (acyclic by
construction, see :mod:`mapograph.graph`), and a partitioner from
:mod:`mapograph.partition` turns it into ordered batches. After the lower layer
has updated the policies batch by batch on that partition, the generator
receives a reward:

``reward = E[(prod_i r_i - 1) * A_hat]``

the importance-weighted estimate of how much the joint policy improved on the
rollout (``r_i`` new/old ratio of agent ``i`` after all batches, ``A_hat`` the
normalized advantage), divided by a running standard deviation. The
:class:`~mapograph.graph.DAGCritic` predicts it from the features (baseline);
the generator takes ``generator_epochs`` clipped PPO steps on its log-probability
of the sampled DAG with an entropy bonus so it keeps exploring orderings.

Edge prior from an interdependence estimator (``interaction_estimator``, see
:mod:`mapograph.algos._estimators`): one DAG sample per iteration is little signal
for which pairs of agents depend on each other, so the same steps also fit the
*skeleton* probabilities ``q_ij = p(i->j) + p(j->i)`` to ``sigmoid(2 z_ij)``
(binary cross-entropy, weight ``interaction_coef``), where ``z_ij`` is the
standardized pair strength of the estimator. When the estimator gives a
priority order (the ``pairwise`` one does), the order probabilities of the
skeleton pairs, ``P(i before j) = sigmoid(s_i - s_j)``, are fitted to it too
(direction prior, same weight). The ``pairwise`` estimator's strengths are its
current estimate; the pooled ANOVA's (``anova``) are the standardized
*cumulative* mean over all iterations of the pairwise action
interaction in the advantage
(:func:`~mapograph.algos._interaction.action_interaction`). Cumulative, not a
moving average: the skeleton is a property of the reward, and the statistic is
informative while the agents still explore (actions nearly independent) but
not once policies have become deterministic functions of shared signals (the
actions of all agents are then correlated); those late iterations also have
small advantages, so they weigh little in the mean. The PPO reward then
decides the direction (the priority order) and which edges pay off.

The prior also enters the edge logits directly (``prior_offset``, default on): after
each fit the generator's logits get the fixed offset ``2 z_ij`` (the logit of the
skeleton target, clipped to ``+-PRIOR_LOGIT_LIMIT``), so the skeleton follows the
estimate at once and the attention learns corrections to it, which the prior's loss
keeps small. Without it the attention must learn the pattern of strong pairs by
gradient steps: at 100 agents (147 true pairs among 4,950) its skeleton stayed at
``p <= 0.3`` after hundreds of steps, every sampled edge fell under
``edge_threshold`` and B2MAPO ran one batch, i.e. MAPPO (docs/design-choices.md,
"Interdependence at 100 agents").
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import torch
import torch.nn.functional as F

from mapograph.algos._estimators import Interdependence
from mapograph.algos._interaction import standardize_offdiagonal
from mapograph.algos._surrogate import clipped_surrogate
from mapograph.graph import DAGCritic, DAGGenerator, skeleton_mask, top_k_candidates

#: Above this many agents the generator attends over a sparse candidate graph by default.
COMPLETE_GRAPH_UP_TO = 64

#: Candidate partners per agent when the candidate graph is sparse by default.
DEFAULT_CANDIDATES = 16

#: Largest magnitude of the prior's logit offset (``prior_offset``).
PRIOR_LOGIT_LIMIT = 8.0


@dataclass
class DAGProposal:
    """One iteration's DAG sample and what the generator's PPO step needs of it.

    Attributes:
        features: ``[1, N, F]`` generator input.
        sample: the sampled DAG (``DAGSample``).
        log_prob: its log-probability at sampling time.
        value: the critic's prediction for ``features`` (``None``: computed by
            :meth:`DAGUpperLayer.learn` when it fits, with the parameters it was
            sampled with; most iterations do not fit and never need it).
        dag: the sampled DAG (edges below ``edge_threshold`` dropped) as a networkx graph.
        candidates: the candidate pairs ``[2, E]`` the generator attended over
            (``None``: the complete graph); the PPO step reuses them.
    """

    features: torch.Tensor
    sample: object
    log_prob: torch.Tensor
    value: torch.Tensor | None
    dag: nx.DiGraph
    candidates: torch.Tensor | None = None


class DAGUpperLayer:
    """Generator + critic + PPO, proposing one DAG (and its batches) per iteration.

    Args:
        feature_dim: size of a per-agent feature vector.
        n_agents: number of agents.
        hidden, heads: generator/critic sizes.
        lr: learning rate of generator and critic.
        entropy_coef: entropy bonus of the generator's PPO.
        epochs: PPO steps per iteration.
        clip: PPO clip range.
        temperature: divides the generator's logits when sampling (higher explores more).
        edge_threshold: sampled edges whose marginal probability is below this are dropped.
        generator: torch generator for DAG sampling (on ``device``).
        interaction_coef: weight of the edge prior from action interactions.
        prior_epochs: extra steps per fit on the edge and direction prior alone (no PPO
            term), after the ``epochs`` joint steps (0: none).
        prior_offset: add the prior's logit ``2 z_ij`` to the generator's edge logits
            (see the module docstring); updated at the end of each fit.
        prior_fit: with ``prior_epochs``, take those extra steps only while the
            generator's skeleton ranks the prior's strong pairs (strength z-score above
            1, :func:`~mapograph.graph.skeleton_mask`) below this
            (:func:`prior_agreement`, an AUC); ``None``: always all ``prior_epochs``.
        candidates: partners per agent of the sparse candidate graph the generator and
            its critic attend over (the strongest pairs of the interdependence
            estimate, random ones before the first estimate); ``None``: the complete
            graph up to :data:`COMPLETE_GRAPH_UP_TO` agents, :data:`DEFAULT_CANDIDATES`
            partners beyond.
        device: where the networks and statistics live.
    """

    def __init__(
        self,
        feature_dim: int,
        n_agents: int,
        hidden: int,
        heads: int,
        lr: float,
        entropy_coef: float,
        epochs: int,
        clip: float,
        temperature: float,
        edge_threshold: float,
        generator: torch.Generator,
        interaction_coef: float = 1.0,
        candidates: int | None = None,
        device: torch.device | str = "cpu",
        prior_epochs: int = 0,
        prior_fit: float | None = None,
        prior_offset: bool = False,
    ) -> None:
        self.n_agents = n_agents
        if candidates is None and n_agents > COMPLETE_GRAPH_UP_TO:
            candidates = DEFAULT_CANDIDATES
        self.candidates = candidates
        self.device = torch.device(device)
        # Built on the CPU (same initial weights on every device), then moved.
        self.net = DAGGenerator(feature_dim, n_agents, hidden=hidden, heads=heads).to(self.device)
        self.critic = DAGCritic(feature_dim, n_agents, hidden=hidden, heads=heads).to(self.device)
        self.optim = torch.optim.Adam(
            [*self.net.parameters(), *self.critic.parameters()], lr=lr, foreach=True
        )
        self.entropy_coef = entropy_coef
        self.epochs = epochs
        self.clip = clip
        self.temperature = temperature
        self.edge_threshold = edge_threshold
        self.generator = generator
        self.interaction_coef = interaction_coef
        self.prior_epochs = prior_epochs
        self.prior_fit = prior_fit
        # cumulative mean of the action interaction; running second moment of rewards
        self.interaction = torch.zeros(n_agents, n_agents, device=self.device)
        self.interaction_updates = 0
        self.reward_sq = torch.ones((), device=self.device)
        self.features: torch.Tensor | None = None
        self.prior_offset = prior_offset
        self.prior_logits: torch.Tensor | None = None  # the offset, once there is a prior
        self.initial_candidates: torch.Tensor | None = None  # random pairs before an estimate

    def distribution(self, features: torch.Tensor, candidates: torch.Tensor | None = None):
        """The DAG distribution for ``features`` ``[B, N, F]`` at this layer's temperature
        (``candidates``: the sparse pairs it may use, see :meth:`candidate_pairs`)."""
        return self.net(
            features,
            temperature=self.temperature,
            candidates=candidates,
            edge_offset=self.prior_logits,
        )

    @torch.no_grad()
    def candidate_pairs(self) -> torch.Tensor | None:
        """This iteration's candidate graph ``[2, E]`` (``None``: the complete graph).

        The ``candidates`` strongest partners of each agent in the interdependence
        estimate (symmetrized); before the first estimate, random partners drawn
        from the DAG generator's random stream.
        """
        if self.candidates is None:
            return None
        if self.interaction_updates == 0:
            # drawn once and kept: reading the graph (edge_probabilities, mode_edges,
            # interdependence()) must not draw random numbers or give another graph
            if self.initial_candidates is None:
                strength = torch.rand(
                    self.n_agents, self.n_agents, generator=self.generator, device=self.device
                )
                self.initial_candidates = top_k_candidates(strength + strength.t(), self.candidates)
            return self.initial_candidates
        strength = self.interaction.abs()
        return top_k_candidates(strength + strength.t(), self.candidates)

    def edge_probabilities(self, features: torch.Tensor | None = None) -> torch.Tensor:
        """Marginal ``P(edge i -> j)`` ``[N, N]`` for ``features`` (default: the last ones)."""
        features = self.features if features is None else features
        if features is None:
            raise ValueError("no features yet: call propose() (train one iteration) first")
        with torch.no_grad():
            return self.distribution(features, self.candidate_pairs()).edge_probabilities()[0]

    @torch.no_grad()
    def propose(self, features: torch.Tensor, deterministic: bool = False) -> DAGProposal:
        """Sample (or take the mode of) a DAG for ``features`` ``[1, N, F]``."""
        self.features = features
        candidates = self.candidate_pairs()
        dist = self.distribution(features, candidates)
        sample = dist.mode() if deterministic else dist.sample(generator=self.generator)
        dag = self._as_graph(dist, sample)
        return DAGProposal(
            features=features,
            sample=sample,
            log_prob=dist.log_prob(sample),
            value=None,
            dag=dag,
            candidates=candidates,
        )

    @torch.no_grad()
    def mode_edges(self, features: torch.Tensor) -> frozenset[tuple[int, int]]:
        """The edges of the most likely DAG for ``features`` (no random draw, no side effect)."""
        dist = self.distribution(features, self.candidate_pairs())
        return frozenset(self._as_graph(dist, dist.mode()).edges)

    def _as_graph(self, dist, sample) -> nx.DiGraph:
        """``sample`` as a networkx DAG, edges below ``edge_threshold`` dropped."""
        adjacency = sample.adjacency[0]
        if self.edge_threshold > 0:
            adjacency = adjacency & (dist.edge_probabilities()[0] >= self.edge_threshold)
        dag = nx.DiGraph()
        dag.add_nodes_from(range(self.n_agents))
        dag.add_edges_from(adjacency.nonzero().tolist())
        return dag

    def observe(self, interaction: Interdependence | torch.Tensor) -> None:
        """Take in one iteration's interdependence estimate without training: a cumulative
        one (or a bare ``[N, N]`` matrix) enters the running mean, another replaces the
        current estimate. :meth:`learn` calls it with the estimate it is given; call it
        directly for the iterations whose fit is skipped, so that a cumulative mean
        still sees every iteration."""
        if isinstance(interaction, torch.Tensor):
            interaction = Interdependence(interaction, cumulative=True)
        strength = interaction.strength.detach().to(self.device)
        self.interaction_updates += 1
        if interaction.cumulative:
            rate = 1.0 / self.interaction_updates  # cumulative mean (see module docstring)
            self.interaction = (1 - rate) * self.interaction + rate * strength
        else:
            self.interaction = strength

    def learn(
        self,
        proposal: DAGProposal,
        improvement: float,
        interaction: Interdependence | torch.Tensor | None = None,
    ) -> dict[str, float]:
        """PPO step(s) of the generator on the reward ``improvement`` of its DAG.

        Args:
            proposal: what :meth:`propose` returned this iteration.
            improvement: the lower layer's estimated joint improvement.
            interaction: the interdependence estimate of this iteration (optional): an
                :class:`~mapograph.algos.Interdependence`, or a bare ``[N, N]`` strength
                matrix (averaged over iterations, no direction).
        """
        if isinstance(interaction, torch.Tensor):
            interaction = Interdependence(interaction, cumulative=True)
        self.reward_sq = 0.95 * self.reward_sq + 0.05 * improvement**2
        reward = torch.tensor(improvement, device=self.device) / (self.reward_sq.sqrt() + 1e-8)
        value = proposal.value
        if value is None:  # the parameters are still those it was sampled with
            with torch.no_grad():
                value = self.critic(proposal.features, proposal.candidates)
        advantage = (reward - value).detach()
        target = before = strong = logits = None
        upper = torch.triu(
            torch.ones(self.n_agents, self.n_agents, dtype=torch.bool, device=self.device),
            diagonal=1,
        )
        if interaction is not None and self.interaction_coef > 0:
            self.observe(interaction)
            logits = 2.0 * standardize_offdiagonal(self.interaction)  # the prior, as logits
            target = torch.sigmoid(logits)
            strong = skeleton_mask(self.interaction) & upper  # the prior's strong pairs
            if interaction.order is not None:
                # direction prior: on skeleton pairs, P(i before j) toward the estimator's order
                rank = torch.empty(self.n_agents, dtype=torch.long, device=self.device)
                rank[torch.as_tensor(interaction.order, device=self.device)] = torch.arange(
                    self.n_agents, device=self.device
                )
                before = (rank[:, None] < rank[None, :]).float()
                direction_pairs = strong
        direction = (before, direction_pairs) if before is not None else None
        losses = []
        for _ in range(self.epochs):
            dist = self.distribution(proposal.features, proposal.candidates)
            surrogate, _ = clipped_surrogate(
                dist.log_prob(proposal.sample), proposal.log_prob, advantage, self.clip
            )
            value_loss = (self.critic(proposal.features, proposal.candidates) - reward).pow(2)
            loss = (-surrogate - self.entropy_coef * dist.entropy() + 0.5 * value_loss).mean()
            loss = self._with_prior(loss, dist, target, direction, upper)
            self._step(loss)
            losses.append(float(loss.detach()))
        stats = {"generator_loss": sum(losses) / len(losses), "generator_reward": float(reward)}
        if target is None:
            return stats
        if self.prior_offset:  # after the PPO steps, which must see their sampling logits
            self.prior_logits = logits.clamp(-PRIOR_LOGIT_LIMIT, PRIOR_LOGIT_LIMIT)
        prior_steps = 0
        while True:  # prior-only steps up to the cap, or until the bar is met
            dist = self.distribution(proposal.features, proposal.candidates)
            capped = prior_steps >= self.prior_epochs
            agreement = None  # needed by the bar, and at the end for the statistics
            if self.prior_fit is not None or capped:
                agreement = prior_agreement(dist.edge_probabilities()[0], strong, upper)
            if capped or (
                self.prior_fit is not None and (agreement is None or agreement >= self.prior_fit)
            ):
                break
            self._step(self._with_prior(0.0, dist, target, direction, upper))
            prior_steps += 1
        if agreement is not None:
            stats["generator_prior_agreement"] = agreement
        stats["generator_prior_steps"] = float(prior_steps)
        return stats

    def _with_prior(self, loss, dist, target, direction, upper) -> torch.Tensor:
        """``loss`` plus ``interaction_coef`` x (the skeleton's BCE to ``target`` and the
        order's BCE on the ``direction`` pairs), each where given (a single agent has
        no pair: nothing to add, where a mean over no pairs would be NaN)."""
        if target is not None and bool(upper.any()):
            p = dist.edge_probabilities()[0]
            skeleton = (p + p.t())[upper].clamp(1e-6, 1 - 1e-6)
            loss = loss + self.interaction_coef * F.binary_cross_entropy(skeleton, target[upper])
        if direction is not None and bool(direction[1].any()):
            before, pairs = direction
            scores = dist.scores[0]
            order_logits = (scores[:, None] - scores[None, :])[pairs]
            loss = loss + self.interaction_coef * F.binary_cross_entropy_with_logits(
                order_logits, before[pairs]
            )
        return loss

    def _step(self, loss: torch.Tensor) -> None:
        self.optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(
            [*self.net.parameters(), *self.critic.parameters()], 1.0, foreach=True
        )
        self.optim.step()

    def state_dict(self) -> dict:
        """Generator, critic and optimizer states."""
        return {
            "net": self.net.state_dict(),
            "critic": self.critic.state_dict(),
            "optim": self.optim.state_dict(),
            "reward_sq": self.reward_sq.clone(),
            "interaction": self.interaction.clone(),
            "interaction_updates": self.interaction_updates,
            "features": self.features,
            "prior_logits": self.prior_logits,
            "initial_candidates": self.initial_candidates,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.net.load_state_dict(state["net"])
        self.critic.load_state_dict(state["critic"])
        self.optim.load_state_dict(state["optim"])
        self.reward_sq = state["reward_sq"].to(self.device)
        self.interaction = state["interaction"].to(self.device)
        self.interaction_updates = int(state["interaction_updates"])
        features = state["features"]
        self.features = None if features is None else features.to(self.device)
        prior = state.get("prior_logits")  # absent in checkpoints that predate the offset
        self.prior_logits = None if prior is None else prior.to(self.device)
        initial = state.get("initial_candidates")  # absent before they were kept
        self.initial_candidates = None if initial is None else initial.to(self.device)


#: :class:`RefitSchedule`: a prior counts as held while its strong pairs change by at
#: most this share (below 20 pairs: not at all; at 100 agents pairs near the
#: threshold flicker in and out, 1-5 % per fit, docs)...
PRIOR_PAIRS_TOLERANCE = 0.05
#: ...or while its edge probabilities ``sigmoid(2 z)`` move by at most this on average.
PRIOR_TOLERANCE = 0.01


@dataclass(frozen=True)
class Prior:
    """What the generator's skeleton follows (with ``prior_offset``), for :class:`RefitSchedule`.

    Attributes:
        probabilities: the prior's edge probability ``sigmoid(2 z_ij)`` of each agent pair
            (``i < j``, row-major), the skeleton target and, as its logit, the offset.
        pairs: its strong pairs (``z > 1``, :func:`~mapograph.graph.skeleton_mask`).
        order: the estimator's agent order (its direction prior), or ``None``.
    """

    probabilities: torch.Tensor
    pairs: frozenset = frozenset()
    order: tuple[int, ...] | None = None

    def held(self, before: Prior) -> bool:
        """Whether this prior is ``before`` still: the same order, and its strong pairs
        changed by at most :data:`PRIOR_PAIRS_TOLERANCE` or its probabilities moved by at
        most :data:`PRIOR_TOLERANCE` on average."""
        if self.order != before.order or self.probabilities.shape != before.probabilities.shape:
            return False
        union = len(self.pairs | before.pairs)
        if len(self.pairs ^ before.pairs) <= PRIOR_PAIRS_TOLERANCE * union:
            return True
        return float((self.probabilities - before.probabilities).abs().mean()) <= PRIOR_TOLERANCE


class RefitSchedule:
    """When B2MAPO's upper layer (estimator + generator) is fitted: back off while it holds.

    The upper layer is fitted every iteration at first. After each fit the most
    likely DAG (:meth:`DAGUpperLayer.mode_edges`) is compared with the one after
    the previous fit, and so is the prior the fit followed, where one is given
    (:class:`Prior`, see :meth:`fitted`): when the DAG is unchanged, or the prior
    held (:meth:`Prior.held`), the period until the next fit doubles (up to ``max_period`` iterations); otherwise it falls
    back to 1. Between fits the generator still samples a DAG every iteration from
    its (unchanged) distribution; only the estimator's and the generator's training
    are skipped. ``max_period=1`` fits every iteration (the paper's schedule).

    Args:
        max_period: the longest gap between two fits, in iterations (>= 1).
    """

    def __init__(self, max_period: int) -> None:
        self.max_period = max_period
        self.period = 1
        self.wait = 0  # iterations to skip before the next fit
        self.last: frozenset[tuple[int, int]] | None = None
        self.last_prior: Prior | None = None

    @property
    def adaptive(self) -> bool:
        """Whether fits can be skipped at all (``max_period > 1``)."""
        return self.max_period > 1

    def due(self) -> bool:
        """Whether this iteration fits the upper layer; counts a skipped iteration otherwise."""
        if self.wait > 0:
            self.wait -= 1
            return False
        return True

    def fitted(self, mode: frozenset[tuple[int, int]], prior: Prior | None = None) -> None:
        """Record the most likely DAG after a fit and set the gap to the next one.

        ``prior``: what the fit followed where the generator sits on its prior (with
        ``prior_offset``). Where the generator's skeleton is the prior's, its remaining
        moves are the reward's noise: a held prior says the fit has nothing new to learn
        even when the mode DAG wanders (at 100 agents it changes 10-30 % of its edges
        per fit while the prior's probabilities settle, docs: design choices).
        """
        stable = self.last is not None and mode == self.last
        if not stable and prior is not None and self.last_prior is not None:
            stable = prior.held(self.last_prior)
        self.period = min(2 * self.period, self.max_period) if stable else 1
        self.wait = self.period - 1
        self.last = mode
        self.last_prior = prior

    def state_dict(self) -> dict:
        """Period, remaining wait, the last fit's DAG and prior (for bit-exact resume)."""
        prior = self.last_prior
        return {
            "period": self.period,
            "wait": self.wait,
            "last": None if self.last is None else sorted(self.last, key=repr),
            "last_prior": None
            if prior is None
            else {
                "probabilities": prior.probabilities.clone(),
                "pairs": sorted(prior.pairs),
                "order": prior.order,
            },
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.period = int(state["period"])
        self.wait = int(state["wait"])
        last = state["last"]
        self.last = None if last is None else frozenset(_as_tuple(item) for item in last)
        prior = state.get("last_prior")  # absent before the prior rule
        self.last_prior = None
        if isinstance(prior, dict):
            order = prior["order"]
            self.last_prior = Prior(
                prior["probabilities"],
                frozenset(_as_tuple(pair) for pair in prior["pairs"]),
                None if order is None else tuple(int(a) for a in order),
            )


def _as_tuple(item: object) -> object:
    """Lists (as a checkpoint may return them) back to hashable tuples, nested."""
    return tuple(_as_tuple(x) for x in item) if isinstance(item, (list, tuple)) else item


@torch.no_grad()
def prior_agreement(
    edge_probabilities: torch.Tensor, strong: torch.Tensor, pairs: torch.Tensor
) -> float | None:
    """How well a generator's skeleton ranks the edge prior's strong pairs first.

    The AUC of the skeleton scores ``p(i->j) + p(j->i)`` over the agent pairs of the
    bool mask ``pairs`` for "the pair is in ``strong``" (the prior's strong pairs,
    :func:`~mapograph.graph.skeleton_mask`): 1.0 when every strong pair scores above
    every other pair, 0.5 at chance. ``None`` when ``pairs`` holds no strong pair or
    only strong pairs. Computed from ranks (``O(M log M)`` in the number of pairs).
    """
    p = edge_probabilities
    scores = (p + p.t())[pairs].float()
    positive = strong[pairs]
    n_pos = int(positive.sum())
    n_neg = int(positive.numel()) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = torch.empty_like(scores)
    ranks[scores.argsort()] = torch.arange(1, scores.numel() + 1, device=scores.device).float()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
