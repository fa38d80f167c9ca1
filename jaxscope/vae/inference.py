r"""Pose-aware encoding and decoding with trained weights, and latent maps of whole images.

* :func:`encode`: posterior means in physical units — content ``z``, the angle (radians, the
  direction of the angle latent's 2-D mean; ``angle_concentration = |m|/σ``), the shift
  (pixels, ``(row, col)``; ``(L,)`` for spectra), the scale factor, class probabilities and
  regression means.
* :func:`decode`: the likelihood's mean image / spectrum for content ``z`` rendered at any
  ``angle``, ``shift`` (pixels) and ``scale`` (the pose convention of :mod:`.grids`: the content
  turns counter-clockwise on screen by ``angle``).
* :func:`latent_map`: every valid window of an image encoded, per pixel (NaN where a pixel has
  no whole window), via :func:`jaxscope.images.patches.extract`.

Both run in jitted chunks of ``batch_size`` (at most two shapes compile).

Example:
    >>> enc = encode(model, params, patches)
    >>> upright = decode(model, params, enc.z)                 # pose removed
    >>> again = decode(model, params, enc.z, angle=enc.angle, shift=enc.shift)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..images.patches import extract
from . import grids
from .data import prepare


class Encoding(NamedTuple):
    """Posterior summaries of a batch (``None`` where the model has no such latent)."""

    z: np.ndarray
    z_scale: np.ndarray
    angle: np.ndarray | None = None
    angle_concentration: np.ndarray | None = None
    shift: np.ndarray | None = None
    scale: np.ndarray | None = None
    class_probs: np.ndarray | None = None
    y: np.ndarray | None = None


@functools.partial(jax.jit, static_argnames=("model",))
def _encode_chunk(model, params, x, condition):
    post = model.posterior(params, x, condition)
    out = {"z": post["z_loc"], "z_scale": post["z_scale"]}
    angle, shift, scale = model.pose_mean(post, x.shape[0])
    if "angle_mean" in post:
        out["angle"] = angle
        out["angle_concentration"] = (
            jnp.linalg.norm(post["angle_mean"], axis=-1) / post["angle_sigma"]
        )
    if "shift_loc" in post:
        out["shift"] = grids.grid_to_pixels(shift, model.output_shape[:-1])
    if "scale_loc" in post:
        out["scale"] = scale
    if "logits" in post:
        sizes, pos, probs = model.discrete, 0, []
        for k in sizes:
            probs.append(jax.nn.softmax(post["logits"][:, pos : pos + k], -1))
            pos += k
        out["class_probs"] = jnp.concatenate(probs, -1)
    if "y_loc" in post:
        out["y"] = post["y_loc"]
    return out


def _chunks(n, batch_size):
    return [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]


def encode(model, params, x, *, condition=None, batch_size: int = 1000) -> Encoding:
    """Posterior summaries of every sample of ``x`` (``(n, *shape)``); see the module
    docstring. ``condition`` for a CVAE."""
    data = prepare(model, x, condition=condition, targets=_dummy_targets(model, x))
    xs, cond = data["x"], data.get("condition")
    parts = []
    for a, b in _chunks(xs.shape[0], batch_size):
        c = None if cond is None else cond[a:b]
        parts.append(jax.device_get(_encode_chunk(model, params, xs[a:b], c)))
    keys = parts[0].keys()
    return Encoding(**{k: np.concatenate([p[k] for p in parts]) for k in keys})


def _dummy_targets(model, x):
    if model.out_shape is None:
        return None
    return np.zeros((len(x), *model.out_shape), np.float32)


@functools.partial(jax.jit, static_argnames=("model",))
def _decode_chunk(model, params, code, angle, shift, scale):
    return model.mean(model.decode_raw(params, code, angle, shift, scale))


def decode(
    model, params, z, *, angle=0.0, shift=0.0, scale=1.0, classes=None, y=None,
    condition=None, batch_size: int = 1000,
) -> np.ndarray:  # fmt: skip
    """Decoded means ``(n, *output_shape)`` of content ``z`` (``(n, latent_dim)``) at the given
    pose: ``angle`` radians, ``shift`` pixels ``(row, col)`` (``(n, 2)`` or ``(2,)``; ``(n,)``
    or a scalar for spectra), ``scale`` factor; ``classes`` ``(n, ΣK)`` one-hot (or
    probabilities) for models with categorical latents, ``y`` ``(n, r)`` regression latents,
    ``condition`` ``(n, condition_dim)``."""
    z = np.asarray(z, np.float32)
    if z.ndim != 2 or z.shape[1] != model.latent_dim:
        raise ValueError(f"z must have shape (n, {model.latent_dim}); got {z.shape}")
    n = z.shape[0]
    parts = [z]
    for name, arr, width in (
        ("classes", classes, model.num_discrete),
        ("y", y, model.regression_dim),
        ("condition", condition, model.condition_dim),
    ):
        if width == 0:
            if arr is not None:
                raise ValueError(f"this model takes no {name}")
            continue
        if arr is None:
            raise ValueError(f"this model needs {name} of shape ({n}, {width})")
        a = np.asarray(arr, np.float32)
        if a.shape != (n, width):
            raise ValueError(f"{name} must have shape ({n}, {width}); got {a.shape}")
        parts.append(a)
    code = np.concatenate(parts, 1)
    d = model.output_spatial
    shp = model.output_shape[:-1]
    ang = np.broadcast_to(np.asarray(angle, np.float32), (n,))
    sh = np.asarray(shift, np.float32)
    sh = np.broadcast_to(sh[..., None] if d == 1 and sh.ndim <= 1 else sh, (n, d))
    sh = np.asarray(grids.pixels_to_grid(sh, shp))
    sc = np.broadcast_to(np.asarray(scale, np.float32), (n,))
    if not (np.all(np.isfinite(code)) and np.all(np.isfinite(ang)) and np.all(np.isfinite(sh))):
        raise ValueError("decode inputs hold NaN or inf")
    if np.any(sc <= 0):
        raise ValueError("scale must be positive")
    out = [
        np.asarray(_decode_chunk(model, params, code[a:b], ang[a:b], sh[a:b], sc[a:b]))
        for a, b in _chunks(n, batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, *model.output_shape), np.float32)


def latent_map(
    model, params, image, window: int, *, normalize: str = "minmax", batch_size: int = 1000
) -> dict[str, np.ndarray]:
    """Encode the ``window``-sided patch of every valid pixel of ``image`` (``(H, W)`` or
    ``(H, W, c)``) and scatter each :class:`Encoding` field into an ``(H, W)`` map (``(H, W, k)``
    for vector fields), NaN where a pixel has no whole window. ``normalize`` as in
    :func:`~jaxscope.images.patches.extract` (``"minmax"`` keeps the Bernoulli likelihood's
    ``[0, 1]``).

    Example:
        >>> maps = latent_map(model, params, image, 28)
        >>> maps["angle"].shape, maps["z"].shape           # ((H, W), (H, W, latent_dim))
    """
    if model.spatial != 2:
        raise ValueError("latent_map needs a model of 2-D images")
    P = extract(image, window, normalize=normalize)
    if P.patches.shape[1:3] != model.shape[:2]:
        raise ValueError(f"window {window} does not give the model's patch shape {model.shape}")
    enc = encode(model, params, np.asarray(P.patches), batch_size=batch_size)
    H, W = P.image_shape
    ij = np.asarray(P.coords).astype(int)
    maps = {}
    for name, val in enc._asdict().items():
        if val is None:
            continue
        m = np.full((H, W, *val.shape[1:]), np.nan, np.float32)
        m[ij[:, 0], ij[:, 1]] = val
        maps[name] = m
    return maps
