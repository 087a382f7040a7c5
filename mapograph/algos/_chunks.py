"""How the optimizer cuts a rollout into training samples: flat steps or recurrent chunks.

Feed-forward policies treat every step ``(t, e)`` as an independent sample
(:class:`FlatLayout`: ``[T, E, ...] -> [T * E, ...]``; minibatches are sets of steps).

Recurrent policies and critics train on *chunks* (MAPPO's data-chunk scheme,
:class:`ChunkLayout`): the ``T`` steps of each env copy are cut into
``C = T / L`` chunks of ``L = chunk_length`` consecutive steps, laid out
sequence-major ``[L, C * E, ...]``; minibatches are sets of chunks. Each chunk
starts from the hidden state stored at collection time at its first step and
resets it inside where an episode starts, so before any update the chunked
forward reproduces the collection-time log-probabilities exactly.

Both layouts answer the same calls (``arrange``, ``take``, ``samples``,
``restore``, ``memory``), so the update loop is written once.
"""

from __future__ import annotations

import torch

from mapograph.algos._rollout import Rollout


class FlatLayout:
    """Every step is a sample (feed-forward networks).

    Args:
        rollout: the data (only its ``T`` and ``E`` are read).
    """

    agent_axis = 1

    def __init__(self, rollout: Rollout) -> None:
        self.horizon, self.num_envs = rollout.horizon, rollout.num_envs
        self.units = self.horizon * self.num_envs

    def arrange(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, E, ...] -> [T * E, ...]``."""
        return x.reshape(self.units, *x.shape[2:])

    def from_flat(self, x: torch.Tensor) -> torch.Tensor:
        """A tensor already flat ``[T * E, ...]`` (a context computed on flat data)."""
        return x

    def take(self, x: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        """The samples ``idx`` (all when ``None``); a context entry that is not a
        per-sample tensor (a DAG actor's ``ParentSlots``) as it is."""
        return x if idx is None or not isinstance(x, torch.Tensor) else x[idx]

    def samples(self, y: torch.Tensor) -> torch.Tensor:
        """Per-sample rows ``[b, ...]`` of an arranged result (already flat)."""
        return y

    def restore(self, y: torch.Tensor) -> torch.Tensor:
        """An arranged result over all samples back to ``[T, E, ...]``."""
        return y.reshape(self.horizon, self.num_envs, *y.shape[1:])

    def memory(self, idx: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Extra keyword arguments of the network for samples ``idx`` (none)."""
        return {}


class ChunkLayout(FlatLayout):
    """Chunks of ``chunk_length`` steps, sequence-major ``[L, C * E, ...]`` (recurrent networks).

    Args:
        rollout: the data (``starts`` marks episode starts).
        chunk_length: ``L``; must divide the rollout length.
        hidden: ``[T, E, ...]`` the hidden states each step started from at
            collection (the network this layout feeds).
    """

    agent_axis = 2

    def __init__(self, rollout: Rollout, chunk_length: int, hidden: torch.Tensor) -> None:
        super().__init__(rollout)
        if rollout.starts is None:
            raise ValueError("recurrent training needs rollout.starts (episode starts)")
        if self.horizon % chunk_length:
            raise ValueError(
                f"rollout_length={self.horizon} must be a multiple of chunk_length={chunk_length}"
            )
        self.length = chunk_length
        self.chunks = self.horizon // chunk_length
        self.units = self.chunks * self.num_envs
        self.h0 = self.arrange(hidden)[0]  # [C * E, ...] the state each chunk starts from
        self.starts = self.arrange(rollout.starts)  # [L, C * E]

    def arrange(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, E, ...] -> [L, C * E, ...]`` (chunk ``c`` of copy ``e`` is column ``c * E + e``)."""
        rest = x.shape[2:]
        x = x.reshape(self.chunks, self.length, self.num_envs, *rest).transpose(0, 1)
        return x.reshape(self.length, self.units, *rest)

    def from_flat(self, x: torch.Tensor) -> torch.Tensor:
        """``[T * E, ...]`` (flat) -> ``[L, C * E, ...]`` (not a tensor: as it is)."""
        if not isinstance(x, torch.Tensor):
            return x
        return self.arrange(x.reshape(self.horizon, self.num_envs, *x.shape[1:]))

    def take(self, x: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        """The chunks ``idx`` ``[L, b, ...]`` (all when ``None``; not a tensor: as it is)."""
        return x if idx is None or not isinstance(x, torch.Tensor) else x[:, idx]

    def samples(self, y: torch.Tensor) -> torch.Tensor:
        """``[L, b, ...] -> [L * b, ...]``."""
        return y.reshape(-1, *y.shape[2:])

    def restore(self, y: torch.Tensor) -> torch.Tensor:
        """``[L, C * E, ...] -> [T, E, ...]``."""
        rest = y.shape[2:]
        y = y.reshape(self.length, self.chunks, self.num_envs, *rest).transpose(0, 1)
        return y.reshape(self.horizon, self.num_envs, *rest)

    def memory(self, idx: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``h0`` and ``starts`` of the chunks ``idx``."""
        h0 = self.h0 if idx is None else self.h0[idx]
        return {"h0": h0, "starts": self.take(self.starts, idx)}


def layout_for(rollout: Rollout, chunk_length: int, hidden: torch.Tensor | None) -> FlatLayout:
    """:class:`ChunkLayout` when the network is recurrent (``hidden`` given), else flat."""
    if hidden is None:
        return FlatLayout(rollout)
    return ChunkLayout(rollout, chunk_length, hidden)
