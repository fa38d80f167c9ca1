r"""A combinatorial composition library whose property follows one hidden phase-transition law.

A thin-film library spans the composition ``x`` in ``[0, 1]`` on a 100-point grid
(``linspace(0, 1, 100)``, candidates ``(100, 1)``). The measured property (an order parameter:
a polarisation, a magnetisation, a superconducting gap, in arbitrary units) follows one of three
laws, hidden from the campaign and drawn from a key by :meth:`CombiLibrary.draw`:

* ``"second_order"`` (continuous transition, critical exponent :math:`\beta`):

  .. math:: f(x) = S_0 (1 - x/x_c)^\beta + C \quad (x < x_c), \qquad f(x) = C \quad (x \ge x_c)

* ``"first_order"`` (a jump :math:`J` at :math:`x_c`, then a smooth ``5/4`` power):

  .. math:: f(x) = C + J + S_0 (1 - x/x_c)^{5/4} \quad (x < x_c), \qquad f(x) = C
            \quad (x \ge x_c)

* ``"smeared"`` (a transition broadened by composition disorder over a width :math:`w`):

  .. math:: f(x) = C + S_0\,\sigma\big((x_c - x)/w\big), \qquad \sigma(t) = 1/(1 + e^{-t})

The hidden parameters are drawn uniformly: :math:`x_c \sim U(0.35, 0.65)`,
:math:`S_0 \sim U(0.6, 1.5)`, :math:`C \sim U(-0.5, 0.5)`, :math:`\beta \sim U(0.25, 0.5)`,
:math:`J \sim U(0.3, 0.6)`, :math:`w \sim U(0.02, 0.05)`; the law is uniform over :data:`LAWS`.
A measurement adds Gaussian noise of standard deviation ``noise`` (default 0.03).

The truth is exposed for scoring only: :attr:`CombiLibrary.law`, :attr:`CombiLibrary.law_index`
(into :data:`LAWS`) and :attr:`CombiLibrary.params` (the law's parameters as floats). For regret
the property is maximised (``maximize=True``); every law decreases in ``x``, so the optimum is
at ``x = 0``, and the library is meant for learning *which* law holds, not for optimisation.

Example:
    >>> sim = CombiLibrary.draw(jax.random.key(0))
    >>> sim.candidates.shape, sim.law in LAWS
    ((100, 1), True)
    >>> y = sim.measure_batch(jax.random.key(1), sim.candidates)   # 100 noisy values
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .base import Simulator, draw_hidden_law

LAWS = ("second_order", "first_order", "smeared")
FIRST_ORDER_EXPONENT = 1.25
# (low, high) of the uniform draw of every hidden parameter
PRIOR_RANGES = {
    "xc": (0.35, 0.65),
    "S0": (0.6, 1.5),
    "C": (-0.5, 0.5),
    "beta": (0.25, 0.5),
    "J": (0.3, 0.6),
    "w": (0.02, 0.05),
}
# the parameters each law depends on, in the order of ``params``
LAW_PARAMS = {
    "second_order": ("xc", "S0", "C", "beta"),
    "first_order": ("xc", "S0", "C", "J"),
    "smeared": ("xc", "S0", "C", "w"),
}


def _reduced_power(x, xc, exponent):
    """:math:`(1 - x/x_c)^p` below :math:`x_c`, 0 above; finite gradients everywhere.

    The double ``where`` keeps the power's base positive in both branches, so the gradient of
    the discarded branch is not NaN (a negative base to a fractional power is). Written as
    ``(xc - x) / xc`` so that ``x == xc`` gives exactly 0 (``1 - x / xc`` may not, once the
    compiler turns the division into a multiplication by ``1 / xc``).
    """
    t = (xc - x) / xc
    below = t > 0
    return jnp.where(below, jnp.where(below, t, 1.0) ** exponent, 0.0), below


def second_order(
    x: Float[Array, "*n"], xc: ArrayLike, S0: ArrayLike, C: ArrayLike, beta: ArrayLike
) -> Float[Array, "*n"]:
    r""":math:`S_0 (1 - x/x_c)^\beta + C` below :math:`x_c`, :math:`C` above."""
    p, _ = _reduced_power(x, xc, beta)
    return C + S0 * p


def first_order(
    x: Float[Array, "*n"], xc: ArrayLike, S0: ArrayLike, C: ArrayLike, J: ArrayLike
) -> Float[Array, "*n"]:
    r""":math:`C + J + S_0 (1 - x/x_c)^{5/4}` below :math:`x_c`, :math:`C` above."""
    p, below = _reduced_power(x, xc, FIRST_ORDER_EXPONENT)
    return C + jnp.where(below, J + S0 * p, 0.0)


def smeared(
    x: Float[Array, "*n"], xc: ArrayLike, S0: ArrayLike, C: ArrayLike, w: ArrayLike
) -> Float[Array, "*n"]:
    r""":math:`C + S_0\,\sigma((x_c - x)/w)`."""
    return C + S0 * jax.nn.sigmoid((xc - x) / w)


LAW_FUNCTIONS = {"second_order": second_order, "first_order": first_order, "smeared": smeared}


class CombiLibrary(Simulator):
    """A composition-spread library measured at ``x`` in ``[0, 1]``; one hidden law.

    Build it with :meth:`draw` (hidden law and parameters from a key), or directly with a
    given law and parameters (for tests and known-truth studies).

    Args:
        law: one of :data:`LAWS`; static.
        xc, S0, C, beta, J, w: the law's parameters (all six are held; each law uses four,
            :data:`LAW_PARAMS`).
        noise: standard deviation of the Gaussian measurement noise.
        n: number of grid compositions (``linspace(0, 1, n)``).
        dtype: float dtype (default: JAX's default float).
    """

    candidates: Float[Array, "m 1"]
    bounds: Float[Array, "1 2"]
    xc: Float[Array, ""]
    S0: Float[Array, ""]
    C: Float[Array, ""]
    beta: Float[Array, ""]
    J: Float[Array, ""]
    w: Float[Array, ""]
    noise: Float[Array, ""]
    law: str = eqx.field(static=True)
    maximize: bool = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __init__(
        self,
        law: str = "second_order",
        *,
        xc: float | ArrayLike = 0.5,
        S0: float | ArrayLike = 1.0,
        C: float | ArrayLike = 0.0,
        beta: float | ArrayLike = 0.35,
        J: float | ArrayLike = 0.45,
        w: float | ArrayLike = 0.03,
        noise: float | ArrayLike = 0.03,
        n: int = 100,
        dtype=None,
    ):
        if law not in LAWS:
            raise ValueError(f"unknown law {law!r}; choose one of {LAWS}")
        if not isinstance(n, int) or n < 2:
            raise ValueError(f"n must be an integer >= 2, got {n!r}")
        dtype = dtype or jnp.result_type(float)
        self.candidates = jnp.linspace(0.0, 1.0, n, dtype=dtype)[:, None]
        self.bounds = jnp.asarray([[0.0, 1.0]], dtype)
        self.xc = jnp.asarray(xc, dtype)
        self.S0 = jnp.asarray(S0, dtype)
        self.C = jnp.asarray(C, dtype)
        self.beta = jnp.asarray(beta, dtype)
        self.J = jnp.asarray(J, dtype)
        self.w = jnp.asarray(w, dtype)
        self.noise = jnp.asarray(noise, dtype)
        self.law = law
        self.maximize = True
        self.name = "combi_library"

    @classmethod
    def draw(cls, key: PRNGKeyArray, law: str | None = None, **kwargs) -> CombiLibrary:
        """A library with its hidden law and parameters drawn from ``key`` (host-side).

        The law is uniform over :data:`LAWS` (unless ``law`` is given) and the parameters are
        uniform over :data:`PRIOR_RANGES`; the same key gives the same law and parameters.
        ``kwargs`` (``noise``, ``n``, ``dtype``) go to the constructor. Not traceable: the law
        is a static choice, read from the key on the host.
        """
        law, params = draw_hidden_law(key, LAWS, PRIOR_RANGES, law, kwargs.get("dtype"))
        return cls(law, **params, **kwargs)

    @property
    def law_index(self) -> int:
        """Index of the hidden law in :data:`LAWS` (scoring only)."""
        return LAWS.index(self.law)

    @property
    def params(self) -> dict[str, float]:
        """The hidden law's parameters as floats (scoring only), named as in :data:`LAW_PARAMS`."""
        return {k: float(getattr(self, k)) for k in LAW_PARAMS[self.law]}

    def value(self, x: Float[Array, "*n"]) -> Float[Array, "*n"]:
        """Noise-free property at compositions ``x`` (any shape)."""
        args = (getattr(self, k) for k in LAW_PARAMS[self.law])
        return LAW_FUNCTIONS[self.law](x, *args)

    def truth(self, X: Float[Array, "n 1"]) -> Float[Array, " n"]:
        return self.value(X[:, 0])

    def measure(self, key: PRNGKeyArray, x: Float[Array, " 1"]) -> Float[Array, ""]:
        return self.value(x[0]) + self.noise * jax.random.normal(key, (), self.candidates.dtype)
