"""Per-agent categorical actors with action masking.

:class:`Actor` is the independent policy ``pi_i(a_i | o_i)`` of every agent (MAPPO,
HAPPO, A2PO and B2MAPO's derived policy ``pi_ind``). :class:`DAGActor` adds the
parents' actions on the interdependence DAG (B2MAPO's ``pi_seq``).
"""

from __future__ import annotations

import torch
from torch import nn

from mapograph.policies._distributions import MaskedCategorical, masked_logits
from mapograph.policies._stacked import SharedMLP, StackedMLP


class Actor(nn.Module):
    """Independent per-agent categorical policy.

    Args:
        n_agents: number of agents ``N``.
        obs_dim: observation size.
        n_actions: number of discrete actions.
        hidden: hidden width.
        layers: number of hidden layers.
        share_params: one network for all agents (plus agent one-hot) instead of
            ``N`` stacked networks. Batch-sequential updates need separate parameters.
    """

    def __init__(
        self,
        n_agents: int,
        obs_dim: int,
        n_actions: int,
        hidden: int = 64,
        layers: int = 2,
        share_params: bool = False,
    ) -> None:
        super().__init__()
        self.n_agents = n_agents
        self.n_actions = n_actions
        self.share_params = share_params
        net_cls = SharedMLP if share_params else StackedMLP
        self.net = net_cls(n_agents, obs_dim, [hidden] * layers, n_actions, out_scale=0.01)

    def logits(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor | None = None,
        agents: torch.Tensor | None = None,
        **_: object,
    ) -> torch.Tensor:
        """Masked logits ``[..., N, n_actions]``.

        ``obs`` and ``avail`` always hold all ``N`` agents; with ``agents`` (a LongTensor
        of ids) only those agents' networks run and ``[..., len(agents), n_actions]``
        comes back. Extra keywords (a DAG actor's ``parent_actions``...) are ignored.
        """
        if agents is not None:
            obs = obs.index_select(-2, agents)
            avail = None if avail is None else avail.index_select(-2, agents)
        return masked_logits(self.net(obs, agents), avail)

    def context(self, actions: torch.Tensor, edge_index: torch.Tensor | None) -> dict:
        """Extra keyword arguments of :meth:`logits` for fixed data (none: no parents)."""
        return {}

    def distribution(
        self, obs: torch.Tensor, avail: torch.Tensor | None = None, **kw
    ) -> MaskedCategorical:
        """The categorical distribution of every agent's action (same arguments as :meth:`logits`)."""
        return MaskedCategorical(self.logits(obs, avail, **kw))

    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor | None = None,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        **_: object,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample (or take the mode of) every agent's action in one forward.

        Extra keywords (a DAG actor's ``batches``/``edge_index``) are ignored.

        Returns:
            ``(actions [..., N] long, log_probs [..., N])``.
        """
        logits = self.logits(obs, avail)
        return sample_categorical(logits, deterministic, generator)


def sample_categorical(
    logits: torch.Tensor, deterministic: bool = False, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample from ``Categorical(logits)`` with an explicit generator (reproducible).

    Returns ``(actions, log_probs)``; masked actions (logit ``-1e9``) are never drawn.
    """
    log_p = torch.log_softmax(logits, dim=-1)
    if deterministic:
        actions = log_p.argmax(dim=-1)
    else:
        # Gumbel-max with an explicit generator: exact categorical sampling.
        # -log(E) with E ~ Exponential(1) is a standard Gumbel variable; the clamp
        # keeps E = 0 (probability ~2^-24) from giving +inf to a masked action.
        exp = torch.empty_like(log_p).exponential_(generator=generator).clamp_min_(1e-20)
        actions = (log_p - exp.log_()).argmax(dim=-1)
    return actions, log_p.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
