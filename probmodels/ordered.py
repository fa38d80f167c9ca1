"""Ordered priors: the uniform distribution on ordered vectors inside an interval.

Models with exchangeable components (two minima, N peaks) have a posterior with N! symmetric
modes; the label-switching is removed by sampling the component positions as an *ordered*
vector. :class:`OrderedUniform` is the uniform distribution on
``{v ∈ (low, high)^n : v_1 < v_2 < ... < v_n}`` (the joint law of the order statistics of n
independent ``Uniform(low, high)`` draws), with density ``n! / (high - low)^n``.

Its support :data:`ordered_interval`-type constraint (:class:`OrderedInterval`) is registered
with :func:`numpyro.distributions.transforms.biject_to`, so ``biject_to(prior.support)`` maps
``R^n`` onto the support by

``u ↦ low + (high - low) · sigmoid(OrderedTransform(u))``

(``OrderedTransform``: ``y_1 = u_1``, ``y_k = y_{k-1} + exp(u_k)``; the sigmoid is increasing so
it keeps the order). NUTS in numpyro (and any code that maps priors through ``biject_to``)
therefore works with it unchanged.

Example:
    >>> prior = OrderedUniform(0.0, 1.0, 2)
    >>> t = biject_to(prior.support)          # R^2 -> ordered pairs in (0, 1)
    >>> v = t(jnp.array([0.3, -1.0]))         # v[0] < v[1]
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float
from numpyro.distributions import Distribution, constraints
from numpyro.distributions.transforms import (
    AffineTransform,
    ComposeTransform,
    OrderedTransform,
    SigmoidTransform,
    biject_to,
)


class OrderedInterval(constraints.Constraint):
    """Constraint: ordered vectors (strictly increasing along the last axis) in ``(low, high)``."""

    event_dim = 1

    def __init__(self, lower_bound: float, upper_bound: float) -> None:
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound
        super().__init__()

    def __call__(self, x):
        x = jnp.asarray(x)
        inside = jnp.all((x > self.lower_bound) & (x < self.upper_bound), axis=-1)
        ordered = jnp.all(x[..., 1:] > x[..., :-1], axis=-1)
        return inside & ordered

    def feasible_like(self, prototype):
        n = jnp.shape(prototype)[-1]
        grid = (jnp.arange(n, dtype=jnp.result_type(prototype)) + 1.0) / (n + 1.0)
        value = self.lower_bound + (self.upper_bound - self.lower_bound) * grid
        return jnp.broadcast_to(value, jnp.shape(prototype))

    def tree_flatten(self):
        return (self.lower_bound, self.upper_bound), (("lower_bound", "upper_bound"), dict())

    def eq(self, other: object, static: bool = False):
        return (
            isinstance(other, OrderedInterval)
            and self.lower_bound == other.lower_bound
            and self.upper_bound == other.upper_bound
        )

    def __repr__(self) -> str:
        return f"OrderedInterval(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


@biject_to.register(OrderedInterval)
def ordered_interval_transform(constraint: OrderedInterval) -> ComposeTransform:
    """``R^n -> OrderedInterval``: ordered vector, then sigmoid, then affine onto the interval."""
    scale = constraint.upper_bound - constraint.lower_bound
    return ComposeTransform(
        [
            OrderedTransform(),
            SigmoidTransform(),
            AffineTransform(constraint.lower_bound, scale, domain=constraints.unit_interval),
        ]
    )


class OrderedUniform(Distribution):
    r"""Uniform distribution on ordered n-vectors inside ``(low, high)``.

    .. math::
        p(v) = \frac{n!}{(\mathrm{high} - \mathrm{low})^n}, \qquad
        \mathrm{low} < v_1 < \dots < v_n < \mathrm{high}

    (``-inf`` outside the support). A draw is the sorted vector of n independent
    ``Uniform(low, high)`` variables; the mean of component k (1-based) is
    ``low + (high - low)·k/(n+1)``.

    Args:
        low: lower end of the interval (a Python float).
        high: upper end, ``high > low``.
        n: length of the vector (``n >= 1``).

    Raises:
        ValueError: if ``high <= low`` or ``n < 1``.
    """

    arg_constraints = {}
    # low, high and n are Python numbers: the whole distribution is static pytree structure
    reparametrized_params = []

    def __init__(self, low: float = 0.0, high: float = 1.0, n: int = 2, *, validate_args=None):
        if not float(high) > float(low):
            raise ValueError(f"OrderedUniform needs high > low, got low={low}, high={high}")
        if int(n) < 1:
            raise ValueError(f"OrderedUniform needs n >= 1, got n={n}")
        self.low, self.high, self.n = float(low), float(high), int(n)
        super().__init__(batch_shape=(), event_shape=(self.n,), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self) -> OrderedInterval:
        return OrderedInterval(self.low, self.high)

    def sample(self, key: Array, sample_shape: tuple[int, ...] = ()) -> Float[Array, "..."]:
        shape = tuple(sample_shape) + self.event_shape
        u = jax.random.uniform(key, shape, minval=self.low, maxval=self.high)
        return jnp.sort(u, axis=-1)

    def log_prob(self, value: Float[ArrayLike, "... n"]) -> Float[Array, "..."]:
        value = jnp.asarray(value)
        const = math.lgamma(self.n + 1) - self.n * math.log(self.high - self.low)
        inside: Bool[Array, "..."] = OrderedInterval(self.low, self.high)(value)
        return jnp.where(inside, const, -jnp.inf).astype(value.dtype)

    @property
    def mean(self) -> Float[Array, " n"]:
        k = jnp.arange(1, self.n + 1)
        return self.low + (self.high - self.low) * k / (self.n + 1.0)

    @property
    def variance(self) -> Float[Array, " n"]:
        k = jnp.arange(1, self.n + 1)
        n = self.n
        return (self.high - self.low) ** 2 * k * (n + 1.0 - k) / ((n + 1.0) ** 2 * (n + 2.0))

    def tree_flatten(self):
        return (), (self.low, self.high, self.n)

    @classmethod
    def tree_unflatten(cls, aux_data, params):
        return cls(*aux_data)
