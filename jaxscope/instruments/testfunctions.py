r"""Standard optimisation test functions in pure JAX, with bounds and known optima, for regret.

Each function takes one point ``x`` ``(d,)`` and is written as in the literature, to be
*minimised* (Surjanovic & Bingham's Virtual Library of Simulation Experiments; BoTorch's
``test_functions.synthetic`` uses the same forms):

* Branin (2-D, :math:`[-5, 10]\times[0, 15]`): :math:`a(x_2 - bx_1^2 + cx_1 - r)^2 +
  s(1-t)\cos x_1 + s`, minimum :math:`5/(4\pi) \approx 0.397887` at :math:`(-\pi, 12.275)`,
  :math:`(\pi, 2.275)`, :math:`(3\pi, 2.475)`.
* Hartmann-3 / Hartmann-6 (:math:`[0, 1]^d`): :math:`-\sum_i \alpha_i
  \exp(-\sum_j A_{ij}(x_j - P_{ij})^2)`, minima -3.86278 and -3.32237.
* Ackley (:math:`[-32.768, 32.768]^d`): :math:`-20 e^{-0.2\sqrt{\overline{x^2}}} -
  e^{\overline{\cos 2\pi x}} + 20 + e`, minimum 0 at 0.
* Levy (:math:`[-10, 10]^d`), minimum 0 at :math:`(1, \dots, 1)`.
* Rosenbrock (:math:`[-5, 10]^d`): :math:`\sum_i 100(x_{i+1} - x_i^2)^2 + (x_i - 1)^2`,
  minimum 0 at :math:`(1, \dots, 1)`.
* Shekel-10 (:math:`[0, 10]^4`): :math:`-\sum_{i=1}^{10} (\lVert x - C_i\rVert^2 + \beta_i)^{-1}`,
  minimum -10.5364 near :math:`(4, 4, 4, 4)`.

:class:`SyntheticFunction` turns one of them into a :class:`~jaxscope.instruments.Simulator`
over a candidate set (uniform random points, or a grid in 2-D), with ``maximize=False``; call
:meth:`~jaxscope.instruments.Simulator.as_maximization` (as campaigns do) to get ``-f``. By
default the known minimisers are among the candidates, so the best candidate is the global
optimum and regret is measured against the true optimum.

Example:
    >>> sim = SyntheticFunction("hartmann6", n=2048, noise=0.01).as_maximization()
    >>> float(sim.optimum)                                      # doctest: +ELLIPSIS
    3.3223...
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .base import Simulator


def branin(x: Float[Array, " 2"]) -> Float[Array, ""]:
    b, c, t = 5.1 / (4 * math.pi**2), 5.0 / math.pi, 1.0 / (8 * math.pi)
    return (x[1] - b * x[0] ** 2 + c * x[0] - 6.0) ** 2 + 10.0 * (1 - t) * jnp.cos(x[0]) + 10.0


_H3_ALPHA = (1.0, 1.2, 3.0, 3.2)
_H3_A = ((3.0, 10, 30), (0.1, 10, 35), (3.0, 10, 30), (0.1, 10, 35))
_H3_P = ((3689, 1170, 2673), (4699, 4387, 7470), (1091, 8732, 5547), (381, 5743, 8828))
_H6_A = (
    (10, 3, 17, 3.5, 1.7, 8),
    (0.05, 10, 17, 0.1, 8, 14),
    (3, 3.5, 1.7, 10, 17, 8),
    (17, 8, 0.05, 10, 0.1, 14),
)
_H6_P = (
    (1312, 1696, 5569, 124, 8283, 5886),
    (2329, 4135, 8307, 3736, 1004, 9991),
    (2348, 1451, 3522, 2883, 3047, 6650),
    (4047, 8828, 8732, 5743, 1091, 381),
)


def _hartmann(x, A, P):
    A = jnp.asarray(A, x.dtype)
    P = jnp.asarray(P, x.dtype) * 1e-4
    alpha = jnp.asarray(_H3_ALPHA, x.dtype)
    return -jnp.sum(alpha * jnp.exp(-jnp.sum(A * (x - P) ** 2, axis=1)))


def hartmann3(x: Float[Array, " 3"]) -> Float[Array, ""]:
    return _hartmann(x, _H3_A, _H3_P)


def hartmann6(x: Float[Array, " 6"]) -> Float[Array, ""]:
    return _hartmann(x, _H6_A, _H6_P)


def ackley(x: Float[Array, " d"]) -> Float[Array, ""]:
    r2 = jnp.mean(x**2)
    safe = jnp.where(r2 > 0, r2, 1.0)  # sqrt has no derivative at 0: keep grad finite there
    r = jnp.where(r2 > 0, jnp.sqrt(safe), 0.0)
    return -20.0 * jnp.exp(-0.2 * r) - jnp.exp(jnp.mean(jnp.cos(2 * jnp.pi * x))) + 20.0 + math.e


def levy(x: Float[Array, " d"]) -> Float[Array, ""]:
    w = 1.0 + (x - 1.0) / 4.0
    mid = (w[:-1] - 1) ** 2 * (1 + 10 * jnp.sin(jnp.pi * w[:-1] + 1) ** 2)
    last = (w[-1] - 1) ** 2 * (1 + jnp.sin(2 * jnp.pi * w[-1]) ** 2)
    return jnp.sin(jnp.pi * w[0]) ** 2 + jnp.sum(mid) + last


def rosenbrock(x: Float[Array, " d"]) -> Float[Array, ""]:
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (x[:-1] - 1.0) ** 2)


_SHEKEL_BETA = (1, 2, 2, 4, 4, 6, 3, 7, 5, 5)
_SHEKEL_C = (
    (4, 1, 8, 6, 3, 2, 5, 8, 6, 7),
    (4, 1, 8, 6, 7, 9, 3, 1, 2, 3.6),
    (4, 1, 8, 6, 3, 2, 5, 8, 6, 7),
    (4, 1, 8, 6, 7, 9, 3, 1, 2, 3.6),
)


def shekel(x: Float[Array, " 4"]) -> Float[Array, ""]:
    beta = 0.1 * jnp.asarray(_SHEKEL_BETA, x.dtype)
    C = jnp.asarray(_SHEKEL_C, x.dtype)
    return -jnp.sum(1.0 / (jnp.sum((x[:, None] - C) ** 2, axis=0) + beta))


class FunctionSpec(NamedTuple):
    """A test function: ``fn(x)``, its box, minimum value and minimisers, given the dimension."""

    fn: Callable
    bounds: Callable[[int], np.ndarray]  # d -> (d, 2)
    optimum: float
    optimizers: Callable[[int], np.ndarray]  # d -> (k, d)
    dim: int | None  # fixed dimension, or None for any d >= 2


def _box(lo, hi):
    return lambda d: np.tile([[lo, hi]], (d, 1))


FUNCTIONS: dict[str, FunctionSpec] = {
    "branin": FunctionSpec(
        branin,
        lambda d: np.array([[-5.0, 10.0], [0.0, 15.0]]),
        5.0 / (4.0 * math.pi),
        lambda d: np.array([[-math.pi, 12.275], [math.pi, 2.275], [3 * math.pi, 2.475]]),
        2,
    ),
    "hartmann3": FunctionSpec(
        hartmann3,
        _box(0.0, 1.0),
        -3.8627797869675,  # literature: -3.86278
        lambda d: np.array([[0.114614, 0.555649, 0.852547]]),
        3,
    ),
    "hartmann6": FunctionSpec(
        hartmann6,
        _box(0.0, 1.0),
        -3.3223680114155,  # literature: -3.32237
        lambda d: np.array(
            [[0.20168952, 0.15001069, 0.47687398, 0.27533243, 0.31165162, 0.65730054]]
        ),
        6,
    ),
    "ackley": FunctionSpec(ackley, _box(-32.768, 32.768), 0.0, lambda d: np.zeros((1, d)), None),
    "levy": FunctionSpec(levy, _box(-10.0, 10.0), 0.0, lambda d: np.ones((1, d)), None),
    "rosenbrock": FunctionSpec(rosenbrock, _box(-5.0, 10.0), 0.0, lambda d: np.ones((1, d)), None),
    "shekel": FunctionSpec(
        shekel,
        _box(0.0, 10.0),
        -10.5364431534835,  # literature: -10.5364
        lambda d: np.array([[4.000747, 3.99951, 4.000747, 3.99951]]),
        4,
    ),
}


class SyntheticFunction(Simulator):
    """A test function from :data:`FUNCTIONS` as a simulator (``maximize=False``).

    Args:
        name: one of ``FUNCTIONS`` (branin, hartmann3, hartmann6, ackley, levy, rosenbrock,
            shekel).
        n: number of candidates (uniform random in the box; ignored when ``grid`` is given).
        dim: dimension for ackley/levy/rosenbrock (default 2); must match fixed-size functions.
        noise: standard deviation of the additive Gaussian measurement noise.
        key: PRNG key of the candidate set (default ``jax.random.key(0)``).
        grid: for 2-D functions, candidates on a ``grid × grid`` lattice instead.
        include_optimizer: put the known minimisers among the candidates (first rows).
        dtype: float dtype (default: JAX's default float).
    """

    candidates: Float[Array, "m d"]
    bounds: Float[Array, "d 2"]
    optimizers: Float[Array, "k d"]
    noise: Float[Array, ""]
    fn: Callable = eqx.field(static=True)
    known_optimum: float = eqx.field(static=True)
    maximize: bool = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __init__(
        self,
        name: str,
        n: int = 1024,
        *,
        dim: int | None = None,
        noise: float | ArrayLike = 0.0,
        key: PRNGKeyArray | None = None,
        grid: int | None = None,
        include_optimizer: bool = True,
        dtype=None,
    ):
        if name not in FUNCTIONS:
            raise ValueError(f"unknown test function {name!r}; choose one of {sorted(FUNCTIONS)}")
        spec = FUNCTIONS[name]
        if spec.dim is not None and dim not in (None, spec.dim):
            raise ValueError(f"{name} is {spec.dim}-dimensional, got dim={dim}")
        d = spec.dim or dim or 2
        if d < 2:
            raise ValueError(f"dim must be >= 2, got {d}")
        dtype = dtype or jnp.result_type(float)
        bounds = np.asarray(spec.bounds(d), np.float64)
        lo, hi = bounds[:, 0], bounds[:, 1]
        if grid is not None:
            if d != 2 or grid < 2:
                raise ValueError(f"grid candidates need a 2-D function and grid >= 2, got d={d}")
            axes = [np.linspace(lo[i], hi[i], grid) for i in range(2)]
            X = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
        else:
            if n < 1:
                raise ValueError(f"n must be >= 1, got {n}")
            key = jax.random.key(0) if key is None else key
            u = jax.random.uniform(key, (n * d,), jnp.float32)  # flat: compiles much faster
            X = lo + (hi - lo) * np.asarray(u, np.float64).reshape(n, d)
        opt = np.asarray(spec.optimizers(d), np.float64)
        if include_optimizer:
            if X.shape[0] < opt.shape[0]:
                raise ValueError(f"need at least {opt.shape[0]} candidates to hold the optimisers")
            X = np.concatenate([opt, X[opt.shape[0] :]], axis=0)
        self.candidates = jnp.asarray(X, dtype)
        self.bounds = jnp.asarray(bounds, dtype)
        self.optimizers = jnp.asarray(opt, dtype)
        self.noise = jnp.asarray(noise, dtype)
        self.fn = spec.fn
        self.known_optimum = float(spec.optimum)
        self.maximize = False
        self.name = name if spec.dim else f"{name}{d}"

    def value(self, x: Float[Array, " d"]) -> Float[Array, ""]:
        """Noise-free function value at one point."""
        return self.fn(x)

    def truth(self, X: Float[Array, "n d"]) -> Float[Array, " n"]:
        return jax.vmap(self.fn)(X)

    def measure(self, key: PRNGKeyArray, x: Float[Array, " d"]) -> Float[Array, ""]:
        return self.fn(x) + self.noise * jax.random.normal(key, (), x.dtype)

    @property
    def optimum(self) -> Float[Array, ""]:
        """The literature minimum (attained on the candidates when ``include_optimizer``)."""
        return jnp.asarray(self.known_optimum, self.candidates.dtype)
