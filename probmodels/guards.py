"""Numerically guarded elementwise functions for model formulas.

Each guard uses the double-``where`` pattern: the unsafe argument is first replaced by a safe
value where the branch is not taken, so that neither the value nor the gradient of the untaken
branch can be ``nan`` / ``inf`` (``jnp.where`` alone still differentiates both branches, and
``0 · nan = nan``).
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float


def positive_power(base: Float[ArrayLike, "..."], exponent: Float[ArrayLike, "..."]) -> Array:
    """``base ** exponent`` where ``base > 0``, else ``0``; finite gradients everywhere.

    Positive bases below the smallest normal float are raised to the power as that number
    (denormals), which keeps ``d/dbase = exponent · base^(exponent-1)`` finite for exponents
    in ``(0, 1)``.
    """
    base = jnp.asarray(base)
    positive = base > 0
    tiny = jnp.finfo(jnp.result_type(base, float)).tiny
    safe = jnp.where(positive, jnp.maximum(base, tiny), 1.0)
    return jnp.where(positive, safe**exponent, 0.0)


def positive_log(x: Float[ArrayLike, "..."]) -> Array:
    """``log x`` where ``x > 0``, else ``0`` (finite gradients everywhere)."""
    x = jnp.asarray(x)
    positive = x > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, x, 1.0)), 0.0)


def clamped_reciprocal(x: Float[ArrayLike, "..."], eps: float) -> Array:
    """``1 / x`` with ``|x|`` clamped below at ``eps`` (sign kept, ``+eps`` at ``x == 0``)."""
    x = jnp.asarray(x)
    big = jnp.abs(x) >= eps
    sign = jnp.where(x < 0, -1.0, 1.0)
    return 1.0 / jnp.where(big, x, sign * eps)
