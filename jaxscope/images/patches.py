r"""Image patches: a window around every valid pixel (or around given pixels), with an exact
index ↔ coordinate map.

A campaign's candidates stay *coordinates* (pixel ``(row, col)`` as floats); a surrogate that
learns from image structure (deep kernel learning, a VAE's latent space) looks each one's patch
up with :meth:`Patches.lookup`. The window of side ``w`` around pixel ``(i, j)`` covers rows
``i - w//2 … i - w//2 + w - 1`` (and the same for columns), so for an even ``w`` the pixel sits
just below and right of the window's centre; a pixel is *valid* when its whole window lies in
the image. Nothing is cropped or padded: an invalid pixel has no patch, and the index of a valid
pixel never depends on which other pixels were dropped (a lookup table of the image's shape
holds every pixel's row in :attr:`Patches.patches`, ``-1`` where it has none).

Normalisation (``normalize=``): ``"none"``; ``"image"`` standardises the whole image (zero mean,
unit variance per channel) before windows are cut, so patches keep their relative contrast;
``"patch"`` standardises each patch on its own (contrast-invariant features); ``"minmax"``
scales the image to ``[0, 1]`` per channel.

Example:
    >>> P = extract(image, 16)                    # every valid pixel of a 50×50 image: 1225
    >>> P.coords.shape, P.patches.shape           # ((1225, 2), (1225, 16, 16))
    >>> P.lookup(P.coords[10]) == P.patches[10]   # exact, inside jit too
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

NORMALIZE = ("none", "image", "patch", "minmax")


def _origin(window: int) -> int:
    return window // 2


def valid_coordinates(shape: tuple[int, int], window: int) -> np.ndarray:
    """``(m, 2)`` float32 ``(row, col)`` of every pixel whose ``window``-sided window lies in an
    image of ``shape`` (row-major order)."""
    H, W = int(shape[0]), int(shape[1])
    if window < 1 or window > min(H, W):
        raise ValueError(f"window {window} does not fit an image of shape {(H, W)}")
    o = _origin(window)
    rows = np.arange(o, H - window + o + 1)
    cols = np.arange(o, W - window + o + 1)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([rr.ravel(), cc.ravel()], 1).astype(np.float32)


def _normalize_image(img: np.ndarray, how: str) -> np.ndarray:
    axes = (0, 1)
    if how == "image":
        sd = img.std(axes, keepdims=True)
        return (img - img.mean(axes, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    if how == "minmax":
        lo, hi = img.min(axes, keepdims=True), img.max(axes, keepdims=True)
        return (img - lo) / np.where(hi > lo, hi - lo, 1.0)
    return img


class Patches(eqx.Module):
    """Windows cut from one image, and the map between pixels and windows.

    Attributes:
        patches: ``(m, w, w)`` or ``(m, w, w, c)`` windows (float32).
        coords: ``(m, 2)`` ``(row, col)`` of each window's pixel: row ``k`` of ``patches``
            belongs to pixel ``coords[k]``.
        table: ``(H, W)`` int32: the row of each pixel's window, ``-1`` for pixels without one.
        window: side of the windows (static).
    """

    patches: Float[Array, "m w w *c"]
    coords: Float[Array, "m 2"]
    table: Int[Array, "H W"]
    window: int = eqx.field(static=True)

    @property
    def num(self) -> int:
        return self.patches.shape[0]

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.table.shape)

    def index(self, x: Float[ArrayLike, "*b 2"]) -> Int[Array, "*b"]:
        """The row of the window of pixel ``x`` (rounded to the nearest pixel), ``-1`` when it
        has none (outside the image or without a whole window). Pure: works under ``jit``."""
        ij = jnp.round(jnp.asarray(x)).astype(jnp.int32)
        H, W = self.table.shape
        inside = (ij[..., 0] >= 0) & (ij[..., 0] < H) & (ij[..., 1] >= 0) & (ij[..., 1] < W)
        k = self.table[jnp.clip(ij[..., 0], 0, H - 1), jnp.clip(ij[..., 1], 0, W - 1)]
        return jnp.where(inside, k, -1)

    def lookup(self, x: Float[ArrayLike, " 2"]) -> Float[Array, "w w *c"]:
        """The window of pixel ``x``; NaN for a pixel without one (under ``jit`` an invalid
        coordinate cannot raise, so it poisons what it touches instead of reading a neighbour's
        window; host code calls :meth:`check` first)."""
        return self._window(x, jnp.nan)

    def lookup_or_zeros(self, x: Float[Array, " 2"]) -> Float[Array, "w w *c"]:
        """The window of pixel ``x``, zeros for a pixel without one: for the padding rows of an
        observation buffer, which are masked out but must stay finite (a NaN there would reach
        the gradients through the masked kernel entries)."""
        return self._window(x, 0.0)

    def _window(self, x, fill):
        k = self.index(x)
        return jnp.where(k >= 0, self.patches[jnp.maximum(k, 0)], fill)

    def check(self, X, name: str = "X") -> np.ndarray:
        """Host-side: ``X`` as an ``(n, 2)`` array whose every row is a pixel with a window, or a
        ``ValueError`` naming the first one that is not."""
        X = np.asarray(X, np.float32)
        if X.ndim != 2 or X.shape[1] != 2:
            raise ValueError(f"{name} must have shape (n, 2) (row, col); got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError(f"{name} holds NaN or inf")
        k = np.asarray(self.index(jnp.asarray(X)))
        bad = np.flatnonzero(k < 0)
        if bad.size:
            raise ValueError(
                f"{name}[{bad[0]}] = {X[bad[0]].tolist()} has no {self.window}-px window in an "
                f"image of shape {self.image_shape} ({bad.size} such rows)"
            )
        return X


def extract(
    image,
    window: int,
    coords=None,
    *,
    normalize: str = "none",
) -> Patches:
    """Cut a ``window``-sided patch around every valid pixel of ``image`` or around ``coords``.

    Args:
        image: ``(H, W)`` or ``(H, W, c)`` array.
        window: side of the square windows (pixels).
        coords: ``(n, 2)`` integer-valued ``(row, col)`` pixels; default every valid pixel
            (:func:`valid_coordinates`). A pixel without a whole window is an error that names
            it, never a silently shifted or cropped window.
        normalize: one of :data:`NORMALIZE` (see the module docstring).
    """
    if normalize not in NORMALIZE:
        raise ValueError(f"unknown normalize {normalize!r}; use one of {NORMALIZE}")
    img = np.asarray(image, np.float32)
    if img.ndim not in (2, 3):
        raise ValueError(f"image must have shape (H, W) or (H, W, c); got {img.shape}")
    if not np.all(np.isfinite(img)):
        raise ValueError("image holds NaN or inf")
    H, W = img.shape[:2]
    if coords is None:
        C = valid_coordinates((H, W), window)
    else:
        C = np.asarray(coords, np.float32)
        if C.ndim != 2 or C.shape[1] != 2:
            raise ValueError(f"coords must have shape (n, 2); got {C.shape}")
        if not np.allclose(C, np.round(C)):
            raise ValueError("coords must be whole pixels (row, col)")
        valid = set(map(tuple, valid_coordinates((H, W), window).astype(int).tolist()))
        for k, c in enumerate(C.astype(int).tolist()):
            if tuple(c) not in valid:
                raise ValueError(
                    f"coords[{k}] = {c} has no {window}-px window in an image of shape {(H, W)}"
                )
        if len({tuple(c) for c in C.astype(int).tolist()}) != len(C):
            raise ValueError("coords holds a pixel twice")
    img = _normalize_image(img, normalize)
    o = _origin(window)
    ij = C.astype(np.int64)
    r = ij[:, 0, None] - o + np.arange(window)  # (n, w)
    c = ij[:, 1, None] - o + np.arange(window)
    P = img[r[:, :, None], c[:, None, :]]  # (n, w, w[, c])
    if normalize == "patch":
        axes = (1, 2)
        sd = P.std(axes, keepdims=True)
        P = (P - P.mean(axes, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    table = np.full((H, W), -1, np.int32)
    table[ij[:, 0], ij[:, 1]] = np.arange(len(C), dtype=np.int32)
    return Patches(jnp.asarray(P, jnp.float32), jnp.asarray(C), jnp.asarray(table), window)


def lookup_all(P: Patches, X: Float[Array, "n 2"]) -> Float[Array, "n w w *c"]:
    """:meth:`Patches.lookup` of every row of ``X``."""
    return jax.vmap(P.lookup)(X)
