"""Action distributions returned by the policies (``torch.distributions`` objects).

:class:`MaskedCategorical` is a :class:`torch.distributions.Categorical` whose
logits are normalized by one ``log_softmax`` (a fused kernel) and whose
probabilities are ``exp(logits)``; unavailable actions carry the logit ``-1e9``
and get probability exactly 0. ``log_prob``, ``entropy``, ``sample`` and
``kl_divergence`` are torch's own.
"""

from __future__ import annotations

import torch
from torch.distributions import Categorical, Distribution, Independent, Normal
from torch.distributions.utils import lazy_property

MASKED_LOGIT = -1e9
"""Logit given to unavailable actions before the softmax (their probability is then exactly 0)."""


def masked_logits(logits: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
    """Set the logits of unavailable actions to a large negative value (probability 0)."""
    if avail is None:
        return logits
    return torch.where(avail, logits, MASKED_LOGIT)


class MaskedCategorical(Categorical):
    """Categorical distribution over (masked) logits ``[..., n_actions]``.

    Args:
        logits: unnormalized logits (unavailable actions already set to ``-1e9``).
        normalized: the logits are already log-probabilities (skip the ``log_softmax``).
    """

    def __init__(self, logits: torch.Tensor, normalized: bool = False) -> None:
        if logits.dim() < 1:
            raise ValueError("logits must be at least one-dimensional")
        self.logits = logits if normalized else torch.log_softmax(logits, dim=-1)
        self._param = self.logits
        self._num_events = logits.shape[-1]
        Distribution.__init__(self, logits.shape[:-1], validate_args=False)

    @lazy_property
    def probs(self) -> torch.Tensor:  # type: ignore[override]
        """Action probabilities ``exp(logits)``."""
        return self.logits.exp()


def select(dist: Distribution, index: torch.Tensor) -> Distribution:
    """The distribution of the samples ``index`` along the first batch axis of ``dist``.

    Supports the distributions mapograph's policies return.
    """
    if isinstance(dist, MaskedCategorical):
        return MaskedCategorical(dist.logits[index], normalized=True)
    if hasattr(dist, "select"):  # MaskedDiagGaussian
        return dist.select(index)
    if isinstance(dist, Independent):
        return Independent(select(dist.base_dist, index), dist.reinterpreted_batch_ndims)
    if isinstance(dist, Normal):
        return Normal(dist.loc[index], dist.scale[index], validate_args=False)
    raise TypeError(f"cannot select samples of a {type(dist).__name__}")


def detached(dist: Distribution) -> Distribution:
    """The same distribution with its parameters cut from the graph (a fixed teacher).

    Supports the distributions mapograph's policies return.
    """
    if isinstance(dist, MaskedCategorical):
        return MaskedCategorical(dist.logits.detach(), normalized=True)
    if hasattr(dist, "select"):  # MaskedDiagGaussian
        return type(dist)(dist.loc.detach(), dist.scale.detach(), dist.mask)
    raise TypeError(f"cannot detach a {type(dist).__name__}")
