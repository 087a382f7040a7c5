"""Diagonal Gaussian action distribution with a mask over padded action dimensions.

Agents with fewer action dimensions than the padded size ``d`` have their
missing dimensions masked out (``mask[..., k] = False``). :class:`MaskedDiagGaussian`
is a diagonal ``Normal(loc, scale)`` over the ``d`` dimensions whose
log-probability, entropy and KL divergence sum only the existing ones:

``log pi(a) = sum_k mask_k log N(a_k; mu_k, sigma_k)``,
``H = sum_k mask_k (1/2 + 1/2 log(2 pi) + log sigma_k)``,
``KL(p || q) = sum_k mask_k KL(N_p,k || N_q,k)`` (analytic, registered with
:func:`torch.distributions.kl_divergence`).

Bounded actions (design choice, see docs/design-choices.md): the Gaussian lives
in normalized coordinates; the env receives ``to_box(a)`` = the action clipped to
``[-1, 1]`` and mapped affinely onto the agent's box ``[low, high]`` (dimensions
with an infinite bound pass unchanged). The *unclipped* action ``a`` is what the
rollout stores and what log-probabilities, ratios and KLs are computed on.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution, Normal, constraints, register_kl
from torch.distributions.kl import _kl_normal_normal

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class MaskedDiagGaussian(Distribution):
    """Diagonal Gaussian over ``[..., d]`` actions with a dimension mask.

    Args:
        loc: means ``[..., d]``.
        scale: standard deviations ``[..., d]`` (positive).
        mask: bool ``[..., d]`` (broadcastable), True where the dimension exists;
            ``None``: every dimension exists.

    ``batch_shape`` is ``loc.shape[:-1]``, ``event_shape`` is ``[d]``.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real_vector
    has_rsample = True

    def __init__(
        self, loc: torch.Tensor, scale: torch.Tensor, mask: torch.Tensor | None = None
    ) -> None:
        if loc.dim() < 1:
            raise ValueError("loc must be at least one-dimensional ([..., d])")
        self.loc = loc
        self.scale = scale.expand_as(loc)
        self.mask = None if mask is None else mask.to(torch.bool).expand_as(loc)
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    @property
    def normal(self) -> Normal:
        """The per-dimension ``Normal`` (mask not applied)."""
        return Normal(self.loc, self.scale, validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    @property
    def stddev(self) -> torch.Tensor:
        return self.scale

    def _masked_sum(self, x: torch.Tensor) -> torch.Tensor:
        if self.mask is not None:
            x = torch.where(self.mask, x, torch.zeros((), dtype=x.dtype, device=x.device))
        return x.sum(-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Sum over existing dimensions of the per-dimension log-density, ``[...]``."""
        return self._masked_sum(self.normal.log_prob(value))

    def entropy(self) -> torch.Tensor:
        """Sum over existing dimensions of the per-dimension entropy, ``[...]``."""
        return self._masked_sum(0.5 + 0.5 * math.log(2 * math.pi) + torch.log(self.scale))

    def rsample(self, sample_shape: tuple[int, ...] = ()) -> torch.Tensor:
        return self.normal.rsample(torch.Size(sample_shape))

    def sample_with(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One sample drawn with an explicit generator (reproducible); padded dimensions 0."""
        noise = torch.randn(
            self.loc.shape, generator=generator, device=self.loc.device, dtype=self.loc.dtype
        )
        sample = self.loc + self.scale * noise
        return sample if self.mask is None else sample * self.mask

    def select(self, index: torch.Tensor) -> MaskedDiagGaussian:
        """The distribution of samples ``index`` along the first batch axis."""
        mask = None if self.mask is None else self.mask[index]
        return MaskedDiagGaussian(self.loc[index], self.scale[index], mask)


@register_kl(MaskedDiagGaussian, MaskedDiagGaussian)
def _kl_masked_diag_gaussian(p: MaskedDiagGaussian, q: MaskedDiagGaussian) -> torch.Tensor:
    """Analytic ``KL(p || q)`` summed over the dimensions that exist (``p``'s mask)."""
    return p._masked_sum(_kl_normal_normal(p.normal, q.normal))


def sample_gaussian(
    dist: MaskedDiagGaussian, deterministic: bool = False, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(actions [..., d], log_probs [...])``: a sample (or the mean) and its log-probability."""
    if deterministic:
        actions = dist.loc if dist.mask is None else dist.loc * dist.mask
    else:
        actions = dist.sample_with(generator)
    return actions, dist.log_prob(actions)


def to_box(actions: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Map normalized actions onto the box: clip to ``[-1, 1]``, then ``low + (a + 1)(high - low) / 2``.

    Dimensions with an infinite bound are passed unchanged, clipped to their finite
    bound where they have one (``[0, inf)``: ``max(a, 0)``). The result never leaves
    ``[low, high]`` (clamped after the affine map, against rounding).
    """
    finite = torch.isfinite(low) & torch.isfinite(high)
    unit = actions.clamp(-1.0, 1.0)
    lo = torch.where(finite, low, -1.0)
    hi = torch.where(finite, high, 1.0)
    scaled = torch.minimum(torch.maximum(lo + (unit + 1.0) * 0.5 * (hi - lo), lo), hi)
    return torch.where(finite, scaled, torch.minimum(torch.maximum(actions, low), high))
