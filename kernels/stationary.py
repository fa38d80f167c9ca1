"""Stationary kernels ``k(x, x') = variance * g(r)``, ``r = |(x - x') / lengthscale|``.

``lengthscale`` is a scalar or, for automatic relevance determination (ARD), an array with one
entry per input dimension. The matrix path computes all scaled squared distances at once
(:func:`scaled_sq_dist`) instead of a double vmap over :meth:`Kernel.evaluate`.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from .base import Kernel


def _safe_sqrt(r2):
    # sqrt has an infinite derivative at 0; the kernels below are differentiable there. A NaN
    # distance stays NaN (a NaN input must never look like a zero distance).
    safe = jnp.where(r2 > 0, r2, 1.0)
    return jnp.where(r2 > 0, jnp.sqrt(safe), jnp.where(jnp.isnan(r2), r2, 0.0))


def check_lengthscale(lengthscale, dim: int) -> None:
    """Raise a clear error if an ARD ``lengthscale`` does not match ``dim`` input dimensions."""
    shape = jnp.shape(lengthscale)
    if shape not in ((), (1,), (dim,)):
        raise ValueError(
            f"lengthscale has shape {shape}, but the inputs have {dim} dimensions: use a scalar "
            f"or shape ({dim},)"
        )


_DIRECT_MAX_DIM = 8  # up to this many input dimensions, sum squared differences directly


def scaled_sq_dist(X1, X2, lengthscale):
    """``r²[i, j] = |(X1[i] - X2[j]) / lengthscale|²`` for all pairs.

    For few input dimensions the squared differences are summed one dimension at a time: exact
    (no cancellation, so ``r² = 0`` on the diagonal even for inputs far from the origin, which
    the Matérn-1/2 kernel's square root would otherwise amplify to errors of order 1e-3 in
    float32) and as fast as a matrix product, because XLA fuses the loop into one pass. For many
    dimensions the expansion ``|a|² + |b|² - 2 a·b`` is used on inputs centred at their mean,
    which keeps the cancellation error small.
    """
    d = X1.shape[1]
    check_lengthscale(lengthscale, d)
    if d <= _DIRECT_MAX_DIM:
        inv = jnp.broadcast_to(1.0 / jnp.asarray(lengthscale, X1.dtype), (d,))
        r2 = 0.0
        for j in range(d):  # subtract before scaling, as evaluate() does
            r2 = r2 + ((X1[:, j, None] - X2[None, :, j]) * inv[j]) ** 2
        return r2
    a, b = X1 / lengthscale, X2 / lengthscale
    c = jnp.mean(a, axis=0)
    a, b = a - c, b - c
    r2 = jnp.sum(a * a, axis=1)[:, None] + jnp.sum(b * b, axis=1)[None, :] - 2.0 * a @ b.T
    return jnp.maximum(r2, 0.0)


class Stationary(Kernel):
    """Base for kernels that depend on the scaled squared distance only."""

    lengthscale: Any = 1.0
    variance: Any = 1.0

    def shape(self, r2):
        """``g`` as a function of the scaled squared distance ``r²``."""
        raise NotImplementedError

    def evaluate(self, x1, x2):
        check_lengthscale(self.lengthscale, x1.shape[-1])
        d = (x1 - x2) / self.lengthscale
        return self.variance * self.shape(jnp.sum(d * d))

    def matrix(self, X1, X2):
        return self.variance * self.shape(scaled_sq_dist(X1, X2, self.lengthscale))

    def diag(self, X):
        return jnp.full((X.shape[0],), self.variance, dtype=X.dtype) * self.shape(
            jnp.zeros((), X.dtype)
        )


class RBF(Stationary):
    r"""Squared exponential: :math:`\sigma^2 \exp(-r^2/2)`."""

    def shape(self, r2):
        return jnp.exp(-0.5 * r2)


class Matern12(Stationary):
    r"""Matérn ν=1/2 (exponential): :math:`\sigma^2 \exp(-r)`."""

    def shape(self, r2):
        return jnp.exp(-_safe_sqrt(r2))


class Matern32(Stationary):
    r"""Matérn ν=3/2: :math:`\sigma^2 (1 + \sqrt3 r) \exp(-\sqrt3 r)`."""

    def shape(self, r2):
        s = jnp.sqrt(3.0) * _safe_sqrt(r2)
        return (1.0 + s) * jnp.exp(-s)


class Matern52(Stationary):
    r"""Matérn ν=5/2: :math:`\sigma^2 (1 + \sqrt5 r + 5r^2/3) \exp(-\sqrt5 r)`."""

    def shape(self, r2):
        s = jnp.sqrt(5.0) * _safe_sqrt(r2)
        return (1.0 + s + 5.0 * r2 / 3.0) * jnp.exp(-s)


class RationalQuadratic(Stationary):
    r"""Rational quadratic: :math:`\sigma^2 (1 + r^2 / 2\alpha)^{-\alpha}`."""

    alpha: Any = 1.0

    def shape(self, r2):
        return (1.0 + 0.5 * r2 / self.alpha) ** (-self.alpha)


class Periodic(Kernel):
    r"""Periodic (exp-sine-squared):
    :math:`\sigma^2 \exp\left(-2 \sum_d \sin^2(\pi |x_d - x'_d| / p) / \ell^2\right)`."""

    lengthscale: Any = 1.0
    period: Any = 1.0
    variance: Any = 1.0

    def evaluate(self, x1, x2):
        s = jnp.sin(jnp.pi * (x1 - x2) / self.period) / self.lengthscale
        return self.variance * jnp.exp(-2.0 * jnp.sum(s * s))
