"""How a parent's action becomes the message a child of ``pi_seq`` receives.

Both encodings give every agent ``i`` a node feature ``x_i`` that depends on its
action ``a_i``; a child ``j`` receives ``m_j = sum_{i in pa(j)} x_i`` (a
torch_geometric ``SimpleConv`` over the DAG), and its own stacked head maps
``m_j`` to a logit (or Gaussian-mean) shift. With no parent, ``m_j = 0``: the
shift is zero and ``pi_seq`` equals its inner actor exactly.

- ``slots``: ``x_i`` is the one-hot of ``a_i`` placed in slot ``i`` of an
  ``N * A`` vector, so the child reads *which* parent did *what* from a table of
  its own (its head has ``N * A * hidden`` weights per child: ``O(N^2)`` in all);
- ``embedded``: ``x_i = a_i (outer) c_i``, the action vector times a fixed random
  unit code ``c_i`` of agent ``i`` (``C = 16`` numbers, drawn once from a seed of
  its own, not trained), flattened to ``D = A * C``. The child's head reads which
  parent did what from the code (random codes of different agents are far apart,
  and a child has few parents), but has ``A * C * hidden`` weights per child:
  ``O(N)`` parameters, and messages ``[B, N, A * C]`` instead of ``[B, N, N * A]``.
  Nothing in the encoding is trained, so every trained weight still belongs to one
  agent (the child) and agents outside an update's batch stay untouched.

``auto`` (the default) takes ``slots`` up to :data:`SLOTS_UP_TO` agents, where the
exact table is cheap, and ``embedded`` beyond.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: ``parent_encoding="auto"`` uses slots up to this many agents, embeddings beyond.
SLOTS_UP_TO = 16

#: Size ``C`` of an agent's code in an embedded parent message.
CODE_SIZE = 16

PARENT_ENCODINGS = ("auto", "slots", "embedded")


def resolve_parent_encoding(name: str, n_agents: int) -> str:
    """``slots`` or ``embedded`` for ``name`` (``auto`` decides by ``n_agents``)."""
    if name not in PARENT_ENCODINGS:
        raise ValueError(
            f"parent_encoding must be one of {', '.join(PARENT_ENCODINGS)}, got {name!r}"
        )
    if name == "auto":
        return "slots" if n_agents <= SLOTS_UP_TO else "embedded"
    return name


class SlotEncoding(nn.Module):
    """``x_i``: the action of agent ``i`` in slot ``i`` of an ``N * A`` vector."""

    def __init__(self, n_agents: int, n_actions: int) -> None:
        super().__init__()
        self.size = n_agents * n_actions
        self.register_buffer("_slots", torch.eye(n_agents), persistent=False)

    def forward(self, actions: torch.Tensor, agents: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, N, A]`` action vectors (one-hot or continuous) -> ``[B, N, N * A]``.

        ``agents``: the agents whose vectors ``actions`` holds (``[B, S, A]`` ->
        ``[B, S, N * A]``); all ``N`` when ``None``.
        """
        b, s, a = actions.shape
        slots = self._slots if agents is None else self._slots.index_select(0, agents)
        return (slots[None, :, :, None] * actions[:, :, None, :]).reshape(b, s, -1)

    def slot_weights(self, weight: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
        """A first layer ``weight [n, N * A, H]`` on compact messages: ``[n, K * A, H]``,
        block ``k`` of row ``m`` being the rows of ``weight[m]`` that read parent
        ``parents[m, k]``'s slot (so ``x_p @ weight[m] == a_p @ block``)."""
        n, _, hidden = weight.shape
        blocks = weight.reshape(n, self._slots.shape[0], -1)  # [n, N, A * H]
        index = parents.unsqueeze(-1).expand(*parents.shape, blocks.shape[-1])
        return torch.gather(blocks, 1, index).reshape(n, -1, hidden)


class EmbeddedEncoding(nn.Module):
    """``x_i = a_i (outer) c_i`` with fixed random unit codes ``c_i`` (not trained)."""

    def __init__(self, n_agents: int, n_actions: int, code_size: int = CODE_SIZE) -> None:
        super().__init__()
        self.size = n_actions * code_size
        # its own seed: building the encoding never shifts the global random stream
        codes = torch.randn(n_agents, code_size, generator=torch.Generator().manual_seed(n_agents))
        self.register_buffer("codes", codes / codes.norm(dim=-1, keepdim=True))

    def forward(self, actions: torch.Tensor, agents: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, N, A]`` action vectors -> ``[B, N, A * C]`` (``agents``: as in
        :meth:`SlotEncoding.forward`)."""
        b, s, a = actions.shape
        codes = self.codes if agents is None else self.codes.index_select(0, agents)
        return (actions[..., :, None] * codes[None, :, None, :]).reshape(b, s, -1)

    def slot_weights(self, weight: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
        """A first layer ``weight [n, A * C, H]`` on compact messages: ``[n, K * A, H]``,
        block ``k`` of row ``m`` being ``weight[m]`` contracted with parent
        ``parents[m, k]``'s code (so ``x_p @ weight[m] == a_p @ block``)."""
        n, _, hidden = weight.shape
        codes = self.codes.index_select(0, parents.reshape(-1)).reshape(*parents.shape, -1)
        per_action = weight.reshape(n, -1, codes.shape[-1], hidden)  # [n, A, C, H]
        return torch.einsum("nach,nkc->nkah", per_action, codes).reshape(n, -1, hidden)


def action_vectors(actions: torch.Tensor, n_agents: int, n_actions: int, continuous: bool):
    """``(vectors [B, N, A], leading shape)``: one-hot (discrete) or clipped action vectors."""
    if continuous:
        lead = actions.shape[:-2]
        return actions.reshape(-1, n_agents, n_actions).clamp(-1.0, 1.0), lead
    lead = actions.shape[:-1]
    return F.one_hot(actions.reshape(-1, n_agents), n_actions).float(), lead


def build_parent_encoding(name: str, n_agents: int, n_actions: int) -> nn.Module:
    """The encoding module for ``name`` (after :func:`resolve_parent_encoding`)."""
    if resolve_parent_encoding(name, n_agents) == "slots":
        return SlotEncoding(n_agents, n_actions)
    return EmbeddedEncoding(n_agents, n_actions)
