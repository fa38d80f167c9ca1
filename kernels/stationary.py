"""Stationary kernels ``k(x, x') = variance * g(r)``, ``r = |(x - x') / lengthscale|``.

``lengthscale`` is a scalar or, for automatic relevance determination (ARD), an array with one
entry per input dimension. The matrix path computes scaled squared distances with one matrix
product, ``r² = |a|² + |b|² - 2 a·b`` (clipped at 0), instead of a double vmap.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from .base import Kernel


def _safe_sqrt(r2):
    # sqrt has an infinite derivative at 0; the kernels below are differentiable there.
    safe = jnp.where(r2 > 0, r2, 1.0)
    return jnp.where(r2 > 0, jnp.sqrt(safe), 0.0)


class Stationary(Kernel):
    """Base for kernels that depend on the scaled squared distance only."""

    lengthscale: Any = 1.0
    variance: Any = 1.0

    def shape(self, r2):
        """``g`` as a function of the scaled squared distance ``r²``."""
        raise NotImplementedError

    def evaluate(self, x1, x2):
        d = (x1 - x2) / self.lengthscale
        return self.variance * self.shape(jnp.sum(d * d))

    def matrix(self, X1, X2):
        a, b = X1 / self.lengthscale, X2 / self.lengthscale
        r2 = (
            jnp.sum(a * a, axis=1)[:, None]
            + jnp.sum(b * b, axis=1)[None, :]
            - 2.0 * a @ b.T
        )
        return self.variance * self.shape(jnp.maximum(r2, 0.0))

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
