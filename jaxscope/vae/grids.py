r"""Coordinate grids for spatial decoders and their pose transform.

A 2-D image of shape ``(h, w)`` gets one coordinate per pixel, ``(x, y)`` with ``x`` along
columns and ``y`` along rows, in *isotropic* units: pixel offsets from the image centre divided
by half the larger side minus a half, so the longer axis spans ``[-1, 1]`` and a rotation of the
grid is a rotation of the picture (pyroVED stretches each axis to ``[-1, 1]`` separately, which
makes rotations of non-square images shear). A spectrum of length ``L`` gets ``x ∈ [-1, 1]``.

The pose ``(φ, t, s)`` renders content ``c`` rotated counter-clockwise (as displayed with row 0
on top, the convention of ``numpy.rot90`` and ``scipy.ndimage.rotate``) by ``φ``, shifted by
``t`` and magnified by ``s``:

.. math::
    I(x) = c(x'), \qquad x' = R(\varphi)^{\top}\,(x - t) / s,

with ``R(φ)`` the display-counter-clockwise rotation. Shifts ``t`` are in grid units; one pixel
is :func:`pixel_size` grid units.

Example:
    >>> g = grid((28, 28))                         # (784, 2)
    >>> g2 = transform(g, jnp.pi / 2, jnp.zeros(2), 1.0)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float


def pixel_size(shape: tuple[int, ...]) -> float:
    """Grid units per pixel for data of ``shape`` (``(h, w)`` or ``(L,)``)."""
    n = max(int(s) for s in shape)
    return 2.0 / max(n - 1, 1)


def grid_numpy(shape: tuple[int, ...]) -> np.ndarray:
    """:func:`grid` as a NumPy array (a compile-time constant inside ``jit``)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (1, 2) or min(shape) < 1:
        raise ValueError(f"grid shape must be (L,) or (h, w) with positive sides; got {shape}")
    d = pixel_size(shape)
    if len(shape) == 1:
        return ((np.arange(shape[0]) - (shape[0] - 1) / 2) * d).astype(np.float32)[:, None]
    h, w = shape
    yy, xx = np.meshgrid(
        (np.arange(h) - (h - 1) / 2) * d, (np.arange(w) - (w - 1) / 2) * d, indexing="ij"
    )
    return np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32)


def grid(shape: tuple[int, ...]) -> Float[Array, "p d"]:
    """Coordinates of every pixel (row-major), ``(h·w, 2)`` as ``(x, y)`` for 2-D shapes and
    ``(L, 1)`` for 1-D ones."""
    return jnp.asarray(grid_numpy(shape))


def rotation(phi: Float[ArrayLike, ""]) -> Float[Array, "2 2"]:
    """``R(φ)`` acting on ``(x, y)`` columns with ``y`` pointing down the rows: a rotation that
    is counter-clockwise on the screen."""
    c, s = jnp.cos(phi), jnp.sin(phi)
    # y grows downwards, so the on-screen counter-clockwise turn is the clockwise matrix
    return jnp.array([[c, s], [-s, c]])


def transform(
    coords: Float[Array, "p d"],
    phi: Float[ArrayLike, ""],
    shift: Float[ArrayLike, " d"],
    scale: Float[ArrayLike, ""],
) -> Float[Array, "p d"]:
    r"""``x' = R(φ)ᵀ (x − t) / s`` for every row ``x`` of ``coords`` (1-D grids: ``(x − t)/s``).

    Example:
        >>> gp = transform(g, 0.3, t, 1.2)
        >>> jnp.allclose(inverse_transform(gp, 0.3, t, 1.2), g)   # True
    """
    x = coords - jnp.asarray(shift)
    if coords.shape[-1] == 2:
        x = x @ rotation(phi)  # row-vector form of R(φ)ᵀ x
    return x / scale


def inverse_transform(
    coords: Float[Array, "p d"],
    phi: Float[ArrayLike, ""],
    shift: Float[ArrayLike, " d"],
    scale: Float[ArrayLike, ""],
) -> Float[Array, "p d"]:
    """``x = s·R(φ)x' + t``: undoes :func:`transform` with the same pose."""
    x = coords * scale
    if coords.shape[-1] == 2:
        x = x @ rotation(phi).T
    return x + jnp.asarray(shift)


def pixels_to_grid(shift_rc: Float[ArrayLike, "*b d"], shape: tuple[int, ...]):
    """A shift in pixels, ``(row, col)`` order (``(L,)`` for spectra), as grid units ``(x, y)``."""
    s = jnp.asarray(shift_rc, jnp.float32) * pixel_size(shape)
    return s[..., ::-1] if len(shape) == 2 else s


def grid_to_pixels(shift_xy: Float[ArrayLike, "*b d"], shape: tuple[int, ...]):
    """Inverse of :func:`pixels_to_grid`."""
    s = jnp.asarray(shift_xy) / pixel_size(shape)
    return s[..., ::-1] if len(shape) == 2 else s


RADIAL_BINS = 8


def moment_bins(shape: tuple[int, int], symmetry: int = 1, bins: int = RADIAL_BINS) -> np.ndarray:
    r"""``(P, bins, 2)`` per-pixel weights of the ``n``-th circular moment of each radial ring
    of the inscribed disc: ``(cos nα, sin nα)`` in ring ``⌊r·bins⌋`` (pixels outside the disc
    weigh 0, so a square's corners add no four-fold term), with ``α = atan2(−y, x)`` the angle
    in the pose convention (a feature at angle ``α`` of the content appears at ``α + φ`` when
    the content is turned by ``φ``)."""
    g = grid_numpy(shape)
    r = np.hypot(g[:, 0], g[:, 1])
    a = np.arctan2(-g[:, 1], g[:, 0]) * symmetry
    ring = np.floor(r * bins).astype(int)
    onehot = (ring[:, None] == np.arange(bins)[None]).astype(np.float32)  # (P, bins)
    return np.stack([onehot * np.cos(a)[:, None], onehot * np.sin(a)[:, None]], -1)


def default_ring_weights(bins: int = RADIAL_BINS) -> np.ndarray:
    """``(bins, 2)`` complex ring weights ``r`` (real): the plain ``r``-weighted moment."""
    return np.stack([(np.arange(bins) + 0.5) / bins, np.zeros(bins)], 1).astype(np.float32)


def ring_moments(x: Float[Array, "b h w c"], symmetry: int = 1) -> Float[Array, "b k 2"]:
    """Each ring's ``n``-th moment ``Σ_p I_p e^{inα_p}`` (as ``(re, im)``) over ``Σ_p |I_p|``."""
    B, h, w = x.shape[:3]
    img = jnp.reshape(jnp.sum(x, axis=-1), (B, h * w))
    W = jnp.asarray(moment_bins((h, w), symmetry))
    return jnp.einsum("bp,pkc->bkc", img, W) / (jnp.sum(jnp.abs(img), -1) + 1e-6)[:, None, None]


def circular_moment(
    x: Float[Array, "b h w c"], symmetry: int = 1, weights: Float[Array, "k 2"] | None = None
) -> Float[Array, "b 2"]:
    r"""``M = Σ_k w̄_k M_k`` over the rings ``k`` (complex ring weights ``w``, default
    :func:`default_ring_weights`; ``M_k`` of :func:`ring_moments`), as ``(re, im)``. Any
    weights keep it equivariant: turning an image by ``φ`` turns ``M`` by ``n·φ`` (up to
    resampling), so ``atan2(M)/n`` is an angle estimate; :func:`fit_ring_weights` picks the
    weights that make it strongest on a data set."""
    w = jnp.asarray(default_ring_weights() if weights is None else weights)
    M = ring_moments(x, symmetry)
    re = M[..., 0] @ w[:, 0] + M[..., 1] @ w[:, 1]
    im = M[..., 1] @ w[:, 0] - M[..., 0] @ w[:, 1]
    return jnp.stack([re, im], -1)


def fit_ring_weights(x, symmetry: int = 1) -> np.ndarray:
    r"""Unit complex ring weights maximising ``E|Σ_k w̄_k M_k|²`` over the images ``x``
    (``(n, h, w, c)``): the top eigenvector of the rings' moment covariance ``E[M Mᴴ]``. Rings
    whose ``n``-fold moments point the same way (or opposite ways, as a lattice's first and
    diagonal neighbour shells do) add up instead of cancelling; unsupervised, and still
    rotation-equivariant (the weights depend on the radius only). On 28-px perovskite /
    honeycomb lattice patches it recovers the lattice angle with |ρ| ≈ 0.998 / 0.96 where the
    plain ``r``-weighted moment reaches 0.67 / 0.65."""
    M = np.asarray(ring_moments(jnp.asarray(x, jnp.float32), symmetry), np.float64)
    Mc = M[..., 0] + 1j * M[..., 1]  # (n, k)
    C = Mc.T @ Mc.conj() / max(len(Mc), 1)
    _, V = np.linalg.eigh(C)
    c = V[:, -1]  # circular_moment forms Σ_k M_k c̄_k = the projection on the top eigenvector
    return np.stack([c.real, c.imag], 1).astype(np.float32)


def align(
    x: Float[Array, "b *s c"],
    phi: Float[Array, " b"],
    shift: Float[Array, "b d"],
    scale: Float[Array, " b"],
) -> Float[Array, "b *s c"]:
    r"""Undo a pose: ``c(x') = I(s·R(φ)x' + t)`` for every grid point ``x'`` of each image
    (``(B, h, w, c)``) or spectrum (``(B, L, c)``), bilinear (linear) interpolation, edge
    values repeated outside. The inverse of what a spatial decoder does with the same pose."""
    spatial = x.shape[1:-1]
    g = grid_numpy(spatial)
    px = pixel_size(spatial)
    centre = (np.asarray(spatial[::-1], np.float32) - 1) / 2  # (x, y) order

    def one(img, p, t, s):
        src = inverse_transform(jnp.asarray(g), p, t, s) / px + centre  # (P, d) (col, row)
        idx = [src[:, i] for i in range(src.shape[1])][::-1]  # (row, col) order
        chans = [
            jax.scipy.ndimage.map_coordinates(img[..., k], idx, order=1, mode="nearest")
            for k in range(img.shape[-1])
        ]
        return jnp.reshape(jnp.stack(chans, -1), img.shape)

    return jax.vmap(one)(x, phi, shift, scale)
