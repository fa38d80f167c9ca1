r"""A small U-Net that segments atom columns and defect classes, trained as a ``vmap``-ped
ensemble for per-pixel uncertainty.

:class:`UNet` (Flax linen, one image ``(H, W)`` or ``(H, W, c)`` → ``(H, W, classes)``
logits; the classes of :data:`~jaxscope.vae.lattice.MASK_CLASSES` by default): the image is
standardised (zero mean, unit variance), then ``len(channels)`` levels of ``convs`` 3×3
convolutions with ReLU, 2×2 max pooling down, nearest-neighbour upsampling and skip
concatenation up, and a 1×1 convolution to the class logits.

Each convolution is its im2col (:func:`jaxscope.dkl.networks.shifted_windows` and a dense
layer on the channel axis, the same function class as ``nn.Conv``). Measured on the shared
2-core CPU, interleaved in one run (64×64 images, batch 8, channels (8, 16, 32), two
convolutions a level, Adam steps inside ``lax.scan``): im2col 82 ms a step for one network
and 341 ms for three ``vmap``-ped members; ``nn.Conv`` 713 ms and 2514 ms. (A lone jitted
``nn.Conv`` step outside a loop ran in about 27 ms: XLA:CPU's slow path is the
weight-gradient convolution in a loop body, see :mod:`jaxscope.dkl.networks`.)

Training (:func:`train_unet`): softmax cross-entropy per pixel with class weights (default
:math:`w_c \propto f_c^{-1/2}` for class frequencies :math:`f_c`, normalised so that
:math:`\sum_c f_c w_c = 1`: rare defect classes count more, background less), Adam, random
minibatches; ``members`` networks with independent initialisations and batch orders are
trained side by side by ``vmap``, all ``steps`` inside one ``lax.scan``: one compilation per
(network, data shape, steps, batch, members).

:func:`segment` gives the ensemble's mean softmax and its variance across members,
:math:`\bar p = \frac1M\sum_m p_m`, :math:`v = \frac1M\sum_m (p_m - \bar p)^2`.

Example:
    >>> data = lattice_images(key, honeycomb(), 32, shape=64, dose=200.0)
    >>> masks = jax.vmap(column_mask, (0, 0, None))(data.positions, data.site_class, (64, 64))
    >>> fit = train_unet(key, UNet(), data.image, masks, members=3, steps=500)
    >>> pred = segment(UNet(), fit.params, data.image[:2])   # pred.mean: (2, 64, 64, 5)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from ..dkl.networks import shifted_windows
from .lattice import MASK_CLASSES


class UNet(nn.Module):
    """U-Net on one image: ``(H, W)`` or ``(H, W, c)`` → ``(H, W, num_classes)`` logits.

    ``H`` and ``W`` must be divisible by ``2 ** (len(channels) - 1)``.
    """

    channels: Sequence[int] = (8, 16, 32)
    num_classes: int = len(MASK_CLASSES)
    convs: int = 2

    def _block(self, h, width):
        for _ in range(self.convs):
            h = nn.relu(nn.Dense(width)(shifted_windows(h)))
        return h

    @nn.compact
    def __call__(self, x):
        h = x[..., None] if x.ndim == 2 else x
        f = 2 ** (len(self.channels) - 1)
        if h.ndim != 3 or h.shape[0] % f or h.shape[1] % f:
            raise ValueError(
                f"UNet with {len(self.channels)} levels needs an (H, W[, c]) image with H and W "
                f"divisible by {f}; got shape {x.shape}"
            )
        mean = h.mean((0, 1), keepdims=True)
        sd = h.std((0, 1), keepdims=True)
        h = (h - mean) / (sd + 1e-6)
        skips = []
        for level, width in enumerate(self.channels):
            h = self._block(h, width)
            if level < len(self.channels) - 1:
                skips.append(h)
                H, W, c = h.shape
                h = h.reshape(H // 2, 2, W // 2, 2, c).max((1, 3))
        for width, skip in zip(self.channels[-2::-1], skips[::-1], strict=True):
            h = jnp.repeat(jnp.repeat(h, 2, axis=0), 2, axis=1)
            h = self._block(jnp.concatenate([h, skip], axis=-1), width)
        return nn.Dense(self.num_classes)(h)


class UNetFit(NamedTuple):
    """Trained ensemble: ``params`` (every leaf with a leading member axis ``M``) and the
    minibatch ``losses`` ``(M, steps)``."""

    params: dict
    losses: Float[Array, "M steps"]


class UNetPrediction(NamedTuple):
    """Ensemble softmax: ``mean`` and ``var`` across members, ``(n, H, W, classes)``."""

    mean: Float[Array, "n H W k"]
    var: Float[Array, "n H W k"]


def class_weights(masks: Int[Array, "*s"], num_classes: int) -> Float[Array, " k"]:
    r""":math:`w_c \propto (f_c + 10^{-4})^{-1/2}`, normalised to :math:`\sum_c f_c w_c = 1`
    (``f_c``: the fraction of pixels of class ``c``)."""
    f = jnp.bincount(masks.ravel(), length=num_classes) / masks.size
    w = (f + 1e-4) ** -0.5
    return w / jnp.sum(f * w)


def _loss(net, params, x, y, weights):
    logits = jax.vmap(lambda im: net.apply(params, im))(x)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    w = weights[y]
    return jnp.sum(w * ce) / jnp.sum(w)


@jax.jit(static_argnames=("net", "members", "steps", "batch_size"))
def _fit(key, net, images, masks, weights, members, steps, batch_size, lr):
    opt = optax.adam(lr)
    if weights is None:
        weights = class_weights(masks, net.num_classes)

    def member(k):
        k_init, k_batch = jax.random.split(k)
        params = net.init(k_init, images[0])
        batches = jax.vmap(
            lambda kk: jax.random.choice(kk, images.shape[0], (batch_size,), replace=False)
        )(jax.random.split(k_batch, steps))

        def step(carry, idx):
            p, s = carry
            loss, g = jax.value_and_grad(lambda q: _loss(net, q, images[idx], masks[idx], weights))(
                p
            )
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), loss

        (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), batches)
        return params, losses

    return jax.vmap(member)(jax.random.split(key, members))


def train_unet(
    key: PRNGKeyArray,
    net: UNet,
    images: Float[ArrayLike, "n H W *c"],
    masks: Int[ArrayLike, "..."],
    *,
    members: int = 1,
    steps: int = 300,
    batch_size: int = 8,
    lr: float = 3e-3,
    weights: Float[Array, " k"] | None = None,
) -> UNetFit:
    """Train ``members`` independently initialised U-Nets on ``(images, masks)`` (module
    docstring), in one compiled program.

    Args:
        key: PRNG key (initialisations and batch orders).
        net: the :class:`UNet` (its ``num_classes`` must exceed every mask value).
        images: ``(n, H, W)`` or ``(n, H, W, c)`` raw images (each is standardised).
        masks: ``(n, H, W)`` integer classes, e.g. from
            :func:`~jaxscope.vae.lattice.column_mask`.
        members: ensemble size; steps, batch_size, lr: Adam on random minibatches.
        weights: per-class loss weights; default :func:`class_weights` of ``masks``.
    """
    images, masks = np.asarray(images, np.float32), np.asarray(masks)  # host checks: no
    if images.shape[:3] != masks.shape:  # eager device ops, so one compilation in all
        raise ValueError(f"images {images.shape} and masks {masks.shape} must agree in (n, H, W)")
    if not np.all(np.isfinite(images)):
        raise ValueError("images hold NaN or inf")
    if not np.issubdtype(masks.dtype, np.integer):
        raise ValueError(f"masks must hold integer classes; got {masks.dtype}")
    if masks.min() < 0 or masks.max() >= net.num_classes:
        raise ValueError(f"mask values must lie in [0, {net.num_classes}); got "
                         f"[{masks.min()}, {masks.max()}]")  # fmt: skip
    for name, v in (("members", members), ("steps", steps), ("batch_size", batch_size)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int; got {v!r}")
    if batch_size > images.shape[0]:
        raise ValueError(f"batch_size {batch_size} exceeds the {images.shape[0]} images")
    w = None if weights is None else np.asarray(weights, np.float32)
    if w is not None and w.shape != (net.num_classes,):
        raise ValueError(f"weights must have shape ({net.num_classes},); got {w.shape}")
    masks = masks.astype(np.int32)
    params, losses = _fit(key, net, images, masks, w, members, steps, batch_size, float(lr))
    return UNetFit(params, losses)


@jax.jit(static_argnames=("net",))
def _segment(net, params, images):
    def one(im):
        p = jax.vmap(lambda q: jax.nn.softmax(net.apply(q, im), axis=-1))(params)
        return p.mean(0), p.var(0)

    return jax.lax.map(one, images)


def segment(net: UNet, params: dict, images: Float[ArrayLike, "n H W *c"]) -> UNetPrediction:
    """Ensemble softmax of ``images``: mean and variance across the members of ``params``
    (stacked, as :func:`train_unet` returns them); one image at a time, members by vmap."""
    images = jnp.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be (n, H, W) or (n, H, W, c); got {images.shape}")
    mean, var = _segment(net, params, images)
    return UNetPrediction(mean, var)
