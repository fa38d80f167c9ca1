r"""Image scalarizers: the centre-of-mass shift of a diffraction pattern and its magnitude, and the
radius of a thresholded domain.

* Centre of mass of a 4D-STEM diffraction pattern (non-negative intensities ``(H, W)``), in
  pixels ``(row, col)``, relative to a reference centre (default the geometric centre
  ``((H-1)/2, (W-1)/2)``): the shift of the transmitted disc is proportional to the in-plane
  electric field (and magnetic induction) at the probe, the "COM" / differential-phase-contrast
  signal (Müller et al., "Atomic electric fields revealed by a quantum mechanical approach to
  electron picodiffraction", Nat. Commun. 5, 5653 (2014)).
* Domain radius from a thresholded phase image (a piezoresponse phase image of a written
  domain): :math:`\sqrt{A/\pi}`, ``A`` the pixel count above the threshold. The domain-writing
  simulator (:mod:`jaxscope.instruments.domains`) measures with this function.

Pure JAX (jit, vmap over patterns, grad of the centre of mass with respect to the intensities);
a pattern that is not 2-D raises ``ValueError`` at trace time.

Example:
    >>> com_shift(pattern)                 # (2,) (row, col) shift from the geometric centre
    >>> jax.vmap(com_magnitude)(patterns)  # one value per probe position
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float


def _check_image(name: str, image):
    image = jnp.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (H, W) image (vmap for stacks), got shape "
                         f"{image.shape}")  # fmt: skip
    return image


def com_shift(
    pattern: Float[Array, "h w"], center: Float[Array, " 2"] | ArrayLike | None = None
) -> Float[Array, " 2"]:
    r"""Centre of mass of ``pattern`` minus ``center``, ``(row, col)`` in pixels.

    .. math:: \mathbf c = \frac{\sum_{ij} I_{ij}\,(i, j)}{\sum_{ij} I_{ij}} - \mathbf c_0,
              \qquad \mathbf c_0 = \big(\tfrac{H-1}2, \tfrac{W-1}2\big) \text{ by default}.

    Pixel ``(i, j)`` sits at integer coordinates (row ``i``, column ``j``). The intensities
    should be non-negative; a pattern whose total is not positive (no signal) has no centre of
    mass and gives a zero shift, with a finite gradient.

    Args:
        pattern: ``(H, W)`` intensities.
        center: ``(2,)`` reference ``(row, col)``; default the geometric centre.
    """
    pattern = _check_image("com_shift", pattern)
    H, W = pattern.shape
    geo = jnp.array([(H - 1) / 2, (W - 1) / 2], pattern.dtype)
    if center is None:
        ref = geo
    else:
        ref = jnp.asarray(center, pattern.dtype)
        if ref.shape != (2,):
            raise ValueError(f"com_shift: center must be a (row, col) pair, got shape {ref.shape}")
    # moments about the geometric centre: small lever arms keep float32 sums accurate
    rows = jnp.arange(H, dtype=pattern.dtype) - geo[0]
    cols = jnp.arange(W, dtype=pattern.dtype) - geo[1]
    total = jnp.sum(pattern)
    ok = total > 0
    safe = jnp.where(ok, total, 1.0)
    com = jnp.stack([jnp.sum(pattern.sum(1) * rows), jnp.sum(pattern.sum(0) * cols)]) / safe
    return jnp.where(ok, com + (geo - ref), 0.0)


def com_magnitude(
    pattern: Float[Array, "h w"], center: Float[Array, " 2"] | ArrayLike | None = None
) -> Float[Array, ""]:
    r"""Length of the centre-of-mass shift, :math:`\|\mathbf c\|_2` (:func:`com_shift`), in
    pixels; its gradient is finite (zero) where the shift vanishes."""
    sq = jnp.sum(com_shift(pattern, center) ** 2)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def domain_radius(
    image: Float[Array, "h w"], threshold: Float[Array, ""] | float = 0.0
) -> Float[Array, ""]:
    r"""Radius in pixels of the switched region, :math:`\sqrt{A/\pi}`, ``A`` = pixels above
    ``threshold`` (strictly).

    The region is every pixel above the threshold, connected or not: the estimator of a single
    written domain in a clean field of view. Piecewise constant, so it has no useful gradient.

    Args:
        image: ``(H, W)`` phase (or any) image.
        threshold: switched pixels have ``image > threshold``.
    """
    image = _check_image("domain_radius", image)
    area = jnp.sum(image > threshold).astype(image.dtype)
    return jnp.sqrt(area / math.pi)
