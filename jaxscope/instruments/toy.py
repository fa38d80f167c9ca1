r"""The three-Gaussian 25×25 toy: GPim's exploration example with two decoy peaks.

GPim's Bayesian-optimisation example measures a Gaussian bump
:math:`\exp(-4\ln 2\,\lVert i - c\rVert^2 / \mathrm{fwhm}^2)` on a 25×25 pixel grid (centre at
pixel (5, 10), FWHM 4.5 pixels). This toy keeps that bump as the global maximum and adds two
lower ones, so that a greedy strategy can get stuck on a decoy:

.. math:: f(x) = \sum_{k=1}^{3} A_k \exp\!\big(-4\ln 2\,\lVert x - c_k\rVert^2 / w_k^2\big)

with, in pixel units (:math:`x = 24\,u` for the unit-square coordinates ``u``),
``c = (5, 10), (17, 18), (18, 5)``, ``w = 4.5, 3.5, 5.0``, ``A = 1.0, 0.8, 0.6``.
Coordinates are the unit square; candidate ``r * 25 + c`` is pixel ``(r, c)`` at
``(r / 24, c / 24)``. The maximum on the grid is at pixel (5, 10); its value
(:attr:`ThreeGaussians.optimum`) is 1 plus the decoys' tails there (about 3e-10).

Example:
    >>> sim = ThreeGaussians(noise=0.05)
    >>> sim.candidates.shape, sim.truth(sim.candidates).reshape(25, 25).argmax()
    ((625, 2), Array(135, dtype=int32))
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .base import Simulator, travel_cost

_CENTRES_PX = ((5.0, 10.0), (17.0, 18.0), (18.0, 5.0))
_FWHM_PX = (4.5, 3.5, 5.0)
_AMPLITUDES = (1.0, 0.8, 0.6)


class ThreeGaussians(Simulator):
    """Three Gaussian bumps on a ``size × size`` grid of the unit square (default 25×25).

    Args:
        noise: standard deviation of the additive Gaussian measurement noise.
        size: pixels per side; the bumps scale with the grid (defined in 25×25 pixel units).
        dwell: time per measurement; speed: probe travel in box sides per time unit
            (:func:`~jaxscope.instruments.base.travel_cost`).
        dtype: float dtype of the arrays (default: JAX's default float).
    """

    candidates: Float[Array, "m 2"]
    bounds: Float[Array, "2 2"]
    centres: Float[Array, "3 2"]
    fwhm: Float[Array, " 3"]
    amplitudes: Float[Array, " 3"]
    noise: Float[Array, ""]
    dwell: Float[Array, ""]
    speed: Float[Array, ""]
    size: int = eqx.field(static=True)
    maximize: bool = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __init__(
        self,
        noise: float | ArrayLike = 0.0,
        size: int = 25,
        *,
        dwell: float = 1.0,
        speed: float = 1.0,
        dtype=None,
    ):
        if not isinstance(size, int) or size < 2:
            raise ValueError(f"size must be an integer >= 2, got {size!r}")
        dtype = dtype or jnp.result_type(float)
        t = jnp.linspace(0.0, 1.0, size, dtype=dtype)
        rr, cc = jnp.meshgrid(t, t, indexing="ij")
        self.candidates = jnp.stack([rr.ravel(), cc.ravel()], axis=1)
        self.bounds = jnp.asarray([[0.0, 1.0], [0.0, 1.0]], dtype)
        self.centres = jnp.asarray(_CENTRES_PX, dtype) / 24.0
        self.fwhm = jnp.asarray(_FWHM_PX, dtype) / 24.0
        self.amplitudes = jnp.asarray(_AMPLITUDES, dtype)
        self.noise = jnp.asarray(noise, dtype)
        self.dwell = jnp.asarray(dwell, dtype)
        self.speed = jnp.asarray(speed, dtype)
        self.size = size
        self.maximize = True
        self.name = f"three_gaussians_{size}x{size}"

    def value(self, x: Float[Array, " 2"]) -> Float[Array, ""]:
        """Noise-free value at one point."""
        d2 = jnp.sum((x - self.centres) ** 2, axis=-1)
        return jnp.sum(self.amplitudes * jnp.exp(-4.0 * math.log(2.0) * d2 / self.fwhm**2))

    def truth(self, X: Float[Array, "n 2"]) -> Float[Array, " n"]:
        return jax.vmap(self.value)(X)

    def measure(self, key: PRNGKeyArray, x: Float[Array, " 2"]) -> Float[Array, ""]:
        return self.value(x) + self.noise * jax.random.normal(key, (), self.candidates.dtype)

    def cost(self, x: Float[Array, " 2"], x_prev: Float[Array, " 2"]) -> Float[Array, ""]:
        return travel_cost(x, x_prev, self.bounds, self.dwell, self.speed)

    @property
    def optimizer(self) -> Float[Array, " 2"]:
        """The grid point of the global maximum."""
        return self.candidates[jnp.argmax(self.truth(self.candidates))]

    def image(self) -> Float[Array, "size size"]:
        """The noise-free truth as a ``size × size`` image (``image[r, c]``)."""
        return self.truth(self.candidates).reshape(self.size, self.size)
