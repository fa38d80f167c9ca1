r"""Synthetic scanning-probe topography: a Gaussian random field plus terraces and particles.

The surface on the unit square, sampled on a ``size × size`` pixel grid, is

.. math:: h(x) = g(x) + \sum_{j=1}^{J} s\,\sigma\!\big((n\cdot x - c_j - a_j \sin(2\pi t\cdot x
          + \phi_j))/w\big) + \max_i\, p\,\sqrt{\max(0, 1 - |x - z_i|^2 / \rho^2)},

* ``g`` a stationary, periodic Gaussian random field made by spectral synthesis: white noise
  ``W`` is filtered in Fourier space, :math:`g = \mathcal F^{-1}[\sqrt{S}\,\mathcal F W]`, so
  ``g`` has exactly the circular covariance :math:`C(\Delta) = \mathcal F^{-1}[S](\Delta)`;
* ``J`` meandering terrace steps of height ``s`` (logistic edges of width ``w`` ≈ one pixel)
  along a random normal ``n``;
* round particles (spherical caps of radius ``ρ`` and height ``p``); overlapping particles show
  their upper envelope, as a scanning tip would see them.

Two spectra (``q`` the spatial frequency in cycles per unit length, ``ℓ`` the lengthscale):

* ``"gaussian"``: :math:`S(q) \propto \exp(-2\pi^2\ell^2|q|^2)`, the covariance is the
  (periodised) squared exponential :math:`\sigma^2 \exp(-|\Delta|^2 / 2\ell^2)`;
* ``"powerlaw"``: :math:`S(q) \propto (1 + (2\pi\ell|q|)^2)^{-(1+H)}`, a self-affine rough
  surface with Hurst exponent ``H`` above the roll-off :math:`q_0 = 1/(2\pi\ell)`.

``S`` is normalised so that the field has variance exactly ``grf_std²``. Everything is pure JAX
and deterministic given the key; ``size``, ``num_steps``, ``num_particles`` and ``spectrum`` are
static under ``jit``.

Example:
    >>> h = make_surface(jax.random.key(0), 128)
    >>> X = grid_points(128)          # (16384, 2), row-major like h.ravel()
    >>> h.shape, X.shape
    ((128, 128), (16384, 2))
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ..gp.grids import check_grid_size, grid_points

SPECTRA = ("gaussian", "powerlaw")


def spectral_density(
    size: int,
    lengthscale: ArrayLike = 0.08,
    *,
    spectrum: str = "gaussian",
    hurst: ArrayLike = 0.8,
    std: ArrayLike = 1.0,
    dtype=None,
) -> Float[Array, "size size"]:
    r"""The discrete power spectrum ``S[k]`` (FFT layout) used by :func:`gaussian_random_field`.

    Normalised so that :math:`\frac{1}{N^2}\sum_k S[k] = \mathrm{std}^2` (the field variance);
    the field's circular covariance at lag ``Δ`` (in pixels) is ``real(ifft2(S))[Δ]``.
    """
    check_grid_size(size)
    if spectrum not in SPECTRA:
        raise ValueError(f"unknown spectrum {spectrum!r}; choose one of {SPECTRA}")
    dtype = dtype or jnp.result_type(float)
    q = jnp.fft.fftfreq(size, 1.0 / size).astype(dtype)  # integer frequencies, cycles per unit
    q2 = q[:, None] ** 2 + q[None, :] ** 2
    if spectrum == "gaussian":
        S = jnp.exp(-2.0 * jnp.pi**2 * lengthscale**2 * q2)
    else:
        S = (1.0 + (2.0 * jnp.pi * lengthscale) ** 2 * q2) ** (-(1.0 + hurst))
    return (std**2 * size * size) * S / jnp.sum(S)


def gaussian_random_field(
    key: PRNGKeyArray,
    size: int,
    lengthscale: ArrayLike = 0.08,
    *,
    spectrum: str = "gaussian",
    hurst: ArrayLike = 0.8,
    std: ArrayLike = 1.0,
    dtype=None,
) -> Float[Array, "size size"]:
    """A zero-mean stationary periodic Gaussian random field by FFT spectral synthesis."""
    S = spectral_density(size, lengthscale, spectrum=spectrum, hurst=hurst, std=std, dtype=dtype)
    w = jax.random.normal(key, (size, size), S.dtype)
    return jnp.real(jnp.fft.ifft2(jnp.fft.fft2(w) * jnp.sqrt(S))).astype(S.dtype)


class SurfaceParts(NamedTuple):
    """The components of a synthetic surface (their sum is the surface) and particle centres."""

    field: Float[Array, "size size"]
    steps: Float[Array, "size size"]
    particles: Float[Array, "size size"]
    centres: Float[Array, "p 2"]

    @property
    def total(self) -> Float[Array, "size size"]:
        return self.field + self.steps + self.particles


def _surface_parts(
    key: PRNGKeyArray,
    size: int = 128,
    *,
    lengthscale: ArrayLike = 0.08,
    spectrum: str = "gaussian",
    hurst: ArrayLike = 0.8,
    grf_std: ArrayLike = 0.5,
    num_steps: int = 3,
    step_height: ArrayLike = 1.0,
    step_width: ArrayLike | None = None,
    meander: ArrayLike = 0.03,
    num_particles: int = 6,
    particle_radius: ArrayLike = 0.05,
    particle_height: ArrayLike = 2.0,
    dtype=None,
) -> SurfaceParts:
    """Generate the components of :func:`make_surface` separately (same arguments)."""
    check_grid_size(size)
    if num_steps < 0 or num_particles < 0:
        raise ValueError(
            f"num_steps and num_particles must be >= 0, got {num_steps}, {num_particles}"
        )
    dtype = dtype or jnp.result_type(float)
    k_grf, k_dir, k_pos, k_mea, k_par = jax.random.split(key, 5)
    field = gaussian_random_field(
        k_grf, size, lengthscale, spectrum=spectrum, hurst=hurst, std=grf_std, dtype=dtype
    )
    X = grid_points(size, dtype).reshape(size, size, 2)

    # Terraces: edges perpendicular to a random unit normal n, spread over the image.
    theta = jax.random.uniform(k_dir, (), dtype, 0.0, 2.0 * jnp.pi)
    n = jnp.stack([jnp.cos(theta), jnp.sin(theta)])
    t = jnp.stack([-n[1], n[0]])
    proj = (X - 0.5) @ n  # in [-0.71, 0.71]
    u = (jnp.arange(num_steps, dtype=dtype) + jax.random.uniform(k_pos, (num_steps,), dtype)) / max(
        num_steps, 1
    )
    c = 0.6 * (u - 0.5)
    phase = jax.random.uniform(k_mea, (num_steps,), dtype, 0.0, 2.0 * jnp.pi)
    wiggle = meander * jnp.sin(2.0 * jnp.pi * ((X - 0.5) @ t)[..., None] * 1.5 + phase)
    width = 0.7 / size if step_width is None else step_width
    steps = step_height * jnp.sum(jax.nn.sigmoid((proj[..., None] - c - wiggle) / width), axis=-1)

    # Particles: spherical caps at uniform random centres; upper envelope where they overlap.
    centres = jax.random.uniform(
        k_par, (num_particles, 2), dtype, particle_radius, 1.0 - particle_radius
    )
    d2 = jnp.sum((X[:, :, None, :] - centres) ** 2, axis=-1)  # (size, size, p)
    caps = particle_height * jnp.sqrt(jnp.maximum(1.0 - d2 / particle_radius**2, 0.0))
    particles = jnp.max(caps, axis=-1, initial=0.0)
    return SurfaceParts(field, steps.astype(dtype), particles.astype(dtype), centres)


# Jitted: one compiled program instead of ~50 eagerly dispatched operations (≈3× faster first
# call); the integer counts, the spectrum name and the dtype are static.
surface_parts = jax.jit(
    _surface_parts, static_argnames=("size", "spectrum", "num_steps", "num_particles", "dtype")
)


def make_surface(
    key: PRNGKeyArray,
    size: int = 128,
    **kwargs,
) -> Float[Array, "size size"]:
    """A plausible SPM topography: Gaussian random field + terrace steps + round particles.

    Args:
        key: PRNG key; the surface is a deterministic function of it.
        size: pixels per side (static).
        **kwargs: see :func:`surface_parts`: ``lengthscale`` (0.08), ``spectrum``
            (``"gaussian"`` or ``"powerlaw"``), ``hurst`` (0.8), ``grf_std`` (0.5),
            ``num_steps`` (3), ``step_height`` (1.0), ``meander`` (0.03), ``num_particles`` (6),
            ``particle_radius`` (0.05), ``particle_height`` (2.0), ``dtype``.

    Returns:
        ``(size, size)`` heights; ``h[r, c]`` is at ``grid_points(size)[r * size + c]``.
    """
    return surface_parts(key, size, **kwargs).total
