"""The host runner's view of a problem: the candidates plus the host's exclusion mask.

Example:
    >>> guarded = GuardedProblem(C, mask, inner=sim)   # vetoed / failed candidates masked out
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from .base import Problem


class GuardedProblem(Problem):
    """The problem as ``decide``/``record`` see it on the host: candidates plus a mask.

    ``mask`` (``True`` = may be chosen) holds the host's vetoes and failed points; truth and
    cost come from ``inner`` when it is given (scoring and travel-time bookkeeping). Measuring
    happens on the host, through the instrument, never through this problem.
    """

    candidates: Float[Array, "m d"]
    mask: Bool[Array, " m"]
    inner: Problem | None = None
    maximize: bool = eqx.field(static=True, default=True)

    def candidate_mask(self) -> Bool[Array, " m"]:
        return self.mask

    def measure_batch(self, key: PRNGKeyArray, X: Float[Array, "q d"]) -> Float[Array, " q"]:
        raise ValueError("a guarded host problem is measured by its instrument, on the host")

    @property
    def has_truth(self) -> bool:
        return self.inner is not None and self.inner.has_truth

    def truth(self, X):
        if self.inner is None:
            return super().truth(X)
        return self.inner.truth(X)

    def cost(self, x, x_prev):
        if self.inner is None:
            return super().cost(x, x_prev)
        return self.inner.cost(x, x_prev)


def guard(candidates, mask=None, inner: Problem | None = None, maximize: bool = True):
    """A :class:`GuardedProblem` over ``candidates`` (default mask: everything allowed)."""
    C = jnp.asarray(candidates)
    mask = jnp.ones(C.shape[0], bool) if mask is None else jnp.asarray(mask, bool)
    return GuardedProblem(C, mask, inner, maximize)
