"""Problems tabulated on a grid of the unit cube: stackable pure-JAX problems for benchmarks.

Example:
    >>> probs = stack_problems([tabulate(ThreeGaussians(), 32), tabulate(Branin(), 32)])
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..gp.grids import unit_grid
from .base import Problem


class GridProblem(Problem):
    """A problem tabulated on a grid of the unit cube: a pure JAX simulator (maximisation).

    ``measure(key, x) = values[nearest(x)] + noise · ε``; ``truth`` looks up the nearest grid
    value. With ``size`` set, the candidates are :func:`unit_grid` ``(size, d)`` and the lookup
    is O(1) per point (rounding); otherwise it is a brute-force nearest-neighbour search.
    Problems with equal grids stack into one pytree (:func:`stack_problems`) and ``vmap``.
    """

    candidates: Float[Array, "m d"]
    values: Float[Array, " m"]
    noise: Float[Array, ""]
    size: int | None = eqx.field(static=True, default=None)
    maximize: bool = eqx.field(static=True, default=True)

    def _nearest(self, X):
        if self.size is not None:
            n, d = self.size, X.shape[1]
            ij = jnp.clip(jnp.round(X * (n - 1)), 0, n - 1).astype(jnp.int32)
            return jnp.sum(ij * (n ** jnp.arange(d - 1, -1, -1, dtype=jnp.int32)), axis=1)
        a = jnp.sum(self.candidates**2, axis=1)
        d2 = jnp.sum(X**2, axis=1)[:, None] + a[None, :] - 2.0 * X @ self.candidates.T
        return jnp.argmin(d2, axis=1)

    def truth(self, X: Float[Array, "n d"]) -> Float[Array, " n"]:
        return self.values[self._nearest(X)]

    @property
    def has_truth(self) -> bool:
        return True

    def measure(self, key: PRNGKeyArray, x: Float[Array, " d"]) -> Float[Array, ""]:
        eps = jax.random.normal(key, (), self.values.dtype)
        return self.truth(x[None])[0] + self.noise * eps

    def measure_batch(self, key: PRNGKeyArray, X: Float[Array, "q d"]) -> Float[Array, " q"]:
        """Row ``i`` uses ``jax.random.split(key, q)[i]``."""
        return jax.vmap(self.measure)(jax.random.split(key, X.shape[0]), X)


def tabulate(sim: Any, size: int, *, noise: float = 0.02, dtype=None) -> GridProblem:
    """Tabulate a simulator's ground truth on a ``size``-per-side grid of its bounding box.

    The box is mapped to the unit cube and the problem turned into a maximisation (minimisation
    problems are negated). ``noise`` is the measurement-noise standard deviation as a fraction of
    the value range on the grid.
    """
    bounds = np.asarray(sim.bounds, float)
    dim = bounds.shape[0]
    U = unit_grid(size, dim, dtype)
    X = jnp.asarray(bounds[:, 0], U.dtype) + U * jnp.asarray(bounds[:, 1] - bounds[:, 0], U.dtype)
    sign = 1.0 if sim.maximize else -1.0
    values = sign * jnp.asarray(sim.truth(X), U.dtype)
    span = jnp.max(values) - jnp.min(values)
    return GridProblem(candidates=U, values=values, noise=(noise * span).astype(U.dtype), size=size)


def stack_problems(problems: list[GridProblem]) -> GridProblem:
    """One :class:`GridProblem` with a leading problem axis on every array."""
    shapes = {p.candidates.shape for p in problems}
    if len(shapes) != 1:
        raise ValueError(f"problems must share one grid to be stacked, got shapes {shapes}")
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *problems)
