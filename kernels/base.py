"""Kernel base classes and combinators.

A :class:`Kernel` is an immutable equinox module whose fields are its hyperparameters. Subclasses
implement :meth:`Kernel.evaluate` on two single points; :meth:`Kernel.__call__` turns that into a
matrix by a double ``vmap``. Stationary kernels (see :mod:`jaxscope.kernels.stationary`) override
the matrix path with a squared-distance formula built from one matrix product, which is what makes
an N = 4000 likelihood as fast as a hand-written reference.

Kernels compose: ``k1 + k2`` is a :class:`Sum`, ``k1 * k2`` a :class:`Product`, ``2.0 * k`` a
:class:`Scaled` kernel, and ``Transformed(k, fn)`` applies an input transform (a normalisation,
or a neural feature extractor for deep kernels) before ``k``.

Example:
    >>> import jax.numpy as jnp
    >>> from jaxscope.kernels import RBF, White
    >>> k = RBF(lengthscale=0.3) + White(variance=1e-2)
    >>> k(jnp.zeros((3, 2)), jnp.ones((4, 2))).shape
    (3, 4)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float


def as_points(X: ArrayLike, name: str = "X") -> Float[Array, "n d"]:
    """Return ``X`` as an ``(n, d)`` float array; a 1-D array is ``n`` points in one dimension.

    Raises:
        ValueError: if ``X`` has more than two dimensions.
    """
    X = jnp.asarray(X)
    if not jnp.issubdtype(X.dtype, jnp.floating):
        X = X.astype(jnp.result_type(float))
    if X.ndim == 1:
        return X[:, None]
    if X.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d) or (n,), got shape {X.shape}")
    return X


class Kernel(eqx.Module):
    """Covariance function ``k(x1, x2)``: subclasses implement ``evaluate`` on single points."""

    def evaluate(self, x1: Float[Array, " d"], x2: Float[Array, " d"]) -> Float[Array, ""]:
        raise NotImplementedError

    def matrix(self, X1: Float[Array, "n d"], X2: Float[Array, "m d"]) -> Float[Array, "n m"]:
        """Kernel matrix by a double vmap over :meth:`evaluate` (overridden by fast paths)."""
        return jax.vmap(lambda a: jax.vmap(lambda b: self.evaluate(a, b))(X2))(X1)

    def diag(self, X: Float[Array, "n d"]) -> Float[Array, " n"]:
        """``k(x, x)`` for every row of ``X`` without forming the matrix."""
        return jax.vmap(lambda a: self.evaluate(a, a))(as_points(X))

    def __call__(self, X1: ArrayLike, X2: ArrayLike | None = None) -> Float[Array, "n m"]:
        X1 = as_points(X1, "X1")
        X2 = X1 if X2 is None else as_points(X2, "X2")
        if X1.shape[1] != X2.shape[1]:
            raise ValueError(
                f"X1 and X2 must have the same number of input dimensions, got X1 of shape "
                f"{X1.shape} and X2 of shape {X2.shape}"
            )
        return self.matrix(X1, X2)

    def __add__(self, other: Kernel | float) -> Kernel:
        if isinstance(other, Kernel):
            return Sum(self, other)
        return Sum(self, Constant(jnp.asarray(other)))

    def __radd__(self, other: Kernel | float) -> Kernel:
        return self.__add__(other)

    def __mul__(self, other: Kernel | float) -> Kernel:
        if isinstance(other, Kernel):
            return Product(self, other)
        return Scaled(self, jnp.asarray(other))

    def __rmul__(self, other: Kernel | float) -> Kernel:
        return self.__mul__(other)


class Sum(Kernel):
    """``k1(x, x') + k2(x, x')``."""

    k1: Kernel
    k2: Kernel

    def evaluate(self, x1, x2):
        return self.k1.evaluate(x1, x2) + self.k2.evaluate(x1, x2)

    def matrix(self, X1, X2):
        return self.k1.matrix(X1, X2) + self.k2.matrix(X1, X2)

    def diag(self, X):
        return self.k1.diag(X) + self.k2.diag(X)


class Product(Kernel):
    """``k1(x, x') * k2(x, x')``."""

    k1: Kernel
    k2: Kernel

    def evaluate(self, x1, x2):
        return self.k1.evaluate(x1, x2) * self.k2.evaluate(x1, x2)

    def matrix(self, X1, X2):
        return self.k1.matrix(X1, X2) * self.k2.matrix(X1, X2)

    def diag(self, X):
        return self.k1.diag(X) * self.k2.diag(X)


class Scaled(Kernel):
    """``scale * k(x, x')`` for a positive scalar ``scale``."""

    kernel: Kernel
    scale: Any

    def evaluate(self, x1, x2):
        return self.scale * self.kernel.evaluate(x1, x2)

    def matrix(self, X1, X2):
        return self.scale * self.kernel.matrix(X1, X2)

    def diag(self, X):
        return self.scale * self.kernel.diag(X)


class Constant(Kernel):
    """``k(x, x') = variance``."""

    variance: Any = 1.0

    def evaluate(self, x1, x2):
        return jnp.asarray(self.variance, dtype=x1.dtype)

    def matrix(self, X1, X2):
        return jnp.full((X1.shape[0], X2.shape[0]), self.variance, dtype=X1.dtype)


class White(Kernel):
    """``k(x, x') = variance * [x == x']`` (independent noise at identical inputs)."""

    variance: Any = 1.0

    def evaluate(self, x1, x2):
        return jnp.where(jnp.all(x1 == x2), self.variance, 0.0).astype(x1.dtype)


class Transformed(Kernel):
    """``k(g(x), g(x'))`` for an input transform ``g`` acting on one point.

    ``g`` may be any pure function (a scaling, a projection) or an equinox module (a neural
    feature extractor: this is how deep kernels are built).
    """

    kernel: Kernel
    transform: Callable

    def evaluate(self, x1, x2):
        return self.kernel.evaluate(self.transform(x1), self.transform(x2))

    def matrix(self, X1, X2):
        return self.kernel.matrix(jax.vmap(self.transform)(X1), jax.vmap(self.transform)(X2))

    def diag(self, X):
        return self.kernel.diag(jax.vmap(self.transform)(X))


class FunctionKernel(Kernel):
    """A kernel from a user function ``fn(x1, x2, params)`` of two single points.

    This is how a custom kernel enters jaxscope: ``params`` is any pytree of hyperparameters
    (they are what MAP and NUTS infer), ``fn`` is a pure function.

    Example:
        >>> def my_rbf(x1, x2, p):
        ...     return p["var"] * jnp.exp(-0.5 * jnp.sum((x1 - x2) ** 2) / p["ls"] ** 2)
        >>> k = FunctionKernel(my_rbf, {"var": 1.0, "ls": 0.2})
    """

    fn: Callable = eqx.field(static=True)
    params: Any

    def evaluate(self, x1, x2):
        return self.fn(x1, x2, self.params)
