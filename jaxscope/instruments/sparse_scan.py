r"""Sparse-scan surface instrument: a scanning probe that measures single pixels of a topography.

The hidden ground truth is an image ``h`` (``size × size``, by default a synthetic topography
from :func:`jaxscope.instruments.surface.make_surface`) on the pixel-centre grid
:func:`~jaxscope.instruments.surface.grid_points` of the unit square. Measuring at ``x`` returns
the height of the pixel containing ``x`` plus Gaussian noise,

.. math:: y = h[\lfloor s x_0\rfloor, \lfloor s x_1\rfloor] + \sigma\varepsilon,

and costs the dwell time plus the probe's travel from the previous point,
:math:`t = t_\mathrm{dwell} + \lVert x - x_\mathrm{prev}\rVert / v` (unit square, so crossing
the whole image at the default speed costs ``1 / v``). ``maximize=True`` by default (find the
highest feature, e.g. a particle); reconstruction campaigns ignore it and score the map.

Example:
    >>> sim = SparseScanSimulator.create(jax.random.key(0), size=64, noise=0.05)
    >>> sim.candidates.shape, sim.image.shape
    ((4096, 2), (64, 64))
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .base import Simulator, travel_cost


class SparseScanSimulator(Simulator):
    """Pixel measurements of a surface image with noise and a travel-time cost.

    Args:
        image: ``(size, size)`` ground-truth heights, ``image[r, c]`` at pixel centre
            ``((r + 0.5) / size, (c + 0.5) / size)``.
        noise: standard deviation of the measurement noise.
        dwell: time spent measuring one pixel.
        speed: probe speed in image sides per time unit.
        maximize: whether the campaign objective is the maximum (True) or minimum height.
    """

    image: Float[Array, "s s"]
    candidates: Float[Array, "m 2"]
    bounds: Float[Array, "2 2"]
    noise: Float[Array, ""]
    dwell: Float[Array, ""]
    speed: Float[Array, ""]
    size: int = eqx.field(static=True)
    maximize: bool = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __init__(
        self,
        image: ArrayLike,
        noise: float | ArrayLike = 0.0,
        *,
        dwell: float = 0.1,
        speed: float = 1.0,
        maximize: bool = True,
        name: str = "sparse_scan",
    ):
        from .surface import grid_points

        image = jnp.asarray(image)
        if image.ndim != 2 or image.shape[0] != image.shape[1] or image.shape[0] < 4:
            raise ValueError(f"image must be square (size, size) with size >= 4, got {image.shape}")
        if not jnp.issubdtype(image.dtype, jnp.floating):
            image = image.astype(jnp.result_type(float))
        if not bool(jnp.all(jnp.isfinite(image))):
            raise ValueError("image contains NaN or inf")
        dtype = image.dtype
        self.size = int(image.shape[0])
        self.image = image
        self.candidates = grid_points(self.size, dtype)
        self.bounds = jnp.asarray([[0.0, 1.0], [0.0, 1.0]], dtype)
        self.noise = jnp.asarray(noise, dtype)
        self.dwell = jnp.asarray(dwell, dtype)
        self.speed = jnp.asarray(speed, dtype)
        self.maximize = bool(maximize)
        self.name = f"{name}_{self.size}x{self.size}"

    @classmethod
    def create(
        cls,
        key: PRNGKeyArray,
        size: int = 64,
        noise: float = 0.05,
        *,
        dwell: float = 0.1,
        speed: float = 1.0,
        maximize: bool = True,
        **surface_kwargs,
    ) -> SparseScanSimulator:
        """A simulator over ``make_surface(key, size, **surface_kwargs)``."""
        from .surface import make_surface

        # one compiled program instead of dozens of eager ops; non-array arguments are static
        image = eqx.filter_jit(make_surface)(key, size, **surface_kwargs)
        return cls(image, noise, dwell=dwell, speed=speed, maximize=maximize)

    def pixel(self, x: Float[Array, " 2"]) -> tuple[Array, Array]:
        """Row and column of the pixel containing ``x`` (clipped to the image)."""
        rc = jnp.clip(jnp.floor(x * self.size).astype(jnp.int32), 0, self.size - 1)
        return rc[0], rc[1]

    def value(self, x: Float[Array, " 2"]) -> Float[Array, ""]:
        """Noise-free height of the pixel containing ``x``."""
        r, c = self.pixel(x)
        return self.image[r, c]

    def truth(self, X: Float[Array, "n 2"]) -> Float[Array, " n"]:
        return jax.vmap(self.value)(X)

    def measure(self, key: PRNGKeyArray, x: Float[Array, " 2"]) -> Float[Array, ""]:
        return self.value(x) + self.noise * jax.random.normal(key, (), self.image.dtype)

    def cost(self, x: Float[Array, " 2"], x_prev: Float[Array, " 2"]) -> Float[Array, ""]:
        return travel_cost(x, x_prev, self.bounds, self.dwell, self.speed)
