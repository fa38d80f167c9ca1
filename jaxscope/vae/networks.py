r"""Linen encoder and decoders of the VAE family (batched: they take ``(B, ...)`` arrays).

* :class:`Encoder`: flatten (and append a condition), ``hidden`` dense layers with
  ``activation``, one linear head with every posterior parameter (pyroVED's ``fcEncoderNet``:
  2 × 128 tanh; its separate loc / scale heads are slices of one dense layer here).
* :class:`DenseDecoder`: ``hidden`` dense layers then a linear map to every output value
  (pyroVED's ``fcDecoderNet``).
* :class:`SpatialDecoder`: for every pixel, ``h₀ = act(W_x·x' + W_z·code + b)`` from its
  transformed coordinate ``x'`` and the sample's code, then ``hidden`` dense layers and a
  linear map to the channels (pyroVED's ``sDecoderNet``: 128, then 2 × 128 tanh, one output).
  FLOPs per pixel and sample (forward): ``2·h₀·d + Σ 2·hᵢ₋₁·hᵢ + 2·h_last·c``; the code term
  ``W_z·code`` is computed once per sample, not per pixel. With ``fourier = m > 0`` the
  coordinate first becomes ``[x', sin 2πBx', cos 2πBx']`` (``d + 2m`` inputs, ``B`` fixed
  Gaussian ``(m, d)``; :func:`fourier_encode`), adding ``2·m·d + 2·2m·h₀`` FLOPs per pixel.

Example:
    >>> dec = SpatialDecoder(channels=1, first=128, hidden=(128, 128))
    >>> w = dec.init(key, jnp.zeros((1, 784, 2)), jnp.zeros((1, 2)))
    >>> dec.apply(w, coords, codes).shape          # (B, 784, 1)
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

ACTIVATIONS = {
    "tanh": nn.tanh,
    "relu": nn.relu,
    "gelu": nn.gelu,
    "silu": nn.silu,
    "softplus": nn.softplus,
    "lrelu": nn.leaky_relu,
}


def activation(name: str):
    """The activation function called ``name`` (one of :data:`ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; use one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class Encoder(nn.Module):
    """``(B, *shape)`` (+ optional ``(B, k)`` condition) → ``(B, out)`` raw posterior
    parameters."""

    out: int
    hidden: Sequence[int] = (128, 128)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x, condition=None):
        act = activation(self.activation)
        h = jnp.reshape(x, (x.shape[0], -1))
        if condition is not None:
            h = jnp.concatenate([h, condition], axis=-1)
        for width in self.hidden:
            h = act(nn.Dense(width)(h))
        return nn.Dense(self.out)(h)


class DenseDecoder(nn.Module):
    """``(B, k)`` code → ``(B, out)`` (logits or means, flattened)."""

    out: int
    hidden: Sequence[int] = (128, 128)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, code):
        act = activation(self.activation)
        h = code
        for width in self.hidden:
            h = act(nn.Dense(width)(h))
        return nn.Dense(self.out)(h)


def fourier_frequencies(n: int, dim: int, scale: float, seed: int = 0) -> np.ndarray:
    r"""``(n, dim)`` fixed frequencies ``B ~ N(0, scale²)`` (cycles per grid unit) of the
    Fourier-feature coordinate encoding, a deterministic function of ``seed``.

    Example:
        >>> fourier_frequencies(64, 2, 2.0).shape          # (64, 2), the same on every call
    """
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((n, dim))).astype(np.float32)


def fourier_encode(
    coords: Float[Array, "*b d"], freqs: Float[ArrayLike, "n d"]
) -> Float[Array, "*b e"]:
    r"""``γ(x') = [x', sin(2π B x'), cos(2π B x')]`` for each row ``x'`` of ``coords``
    (``(..., d)`` → ``(..., d + 2n)``; Tancik et al. 2020).

    Example:
        >>> fourier_encode(jnp.zeros((5, 2)), fourier_frequencies(8, 2, 2.0)).shape  # (5, 18)
    """
    a = 2 * np.pi * (coords @ jnp.asarray(freqs).T)
    return jnp.concatenate([coords, jnp.sin(a), jnp.cos(a)], axis=-1)


class SpatialDecoder(nn.Module):
    """``(B, P, d)`` transformed coordinates and ``(B, k)`` codes → ``(B, P, channels)``.

    ``fourier > 0``: the coordinates first go through :func:`fourier_encode` with ``fourier``
    fixed Gaussian frequencies of standard deviation ``fourier_scale`` cycles per grid unit
    (a coordinate MLP alone is biased to low frequencies and misses lattices). The encoding
    acts on the already transformed ``x'``, so rotating / shifting the pose still rotates /
    shifts the decoded image exactly."""

    channels: int = 1
    first: int = 128
    hidden: Sequence[int] = (128, 128)
    activation: str = "tanh"
    fourier: int = 0
    fourier_scale: float = 2.0

    @nn.compact
    def __call__(self, coords, code):
        act = activation(self.activation)
        if self.fourier:
            freqs = fourier_frequencies(self.fourier, coords.shape[-1], self.fourier_scale)
            coords = fourier_encode(coords, freqs)
        hz = nn.Dense(self.first, use_bias=False, name="latent")(code)  # once per sample
        h = act(nn.Dense(self.first, name="coord")(coords) + hz[:, None, :])
        for width in self.hidden:
            h = act(nn.Dense(width)(h))
        return nn.Dense(self.channels)(h)


def spatial_flops(
    pixels: int, coord_dim: int, code: int, first: int, hidden, channels: int, fourier: int = 0
):
    """Forward FLOPs of :class:`SpatialDecoder` for one sample (multiply-add = 2 FLOPs; the
    Fourier encoding's ``B x'`` counted, its sines and cosines not)."""
    feat = coord_dim + 2 * fourier
    f = 2 * pixels * (fourier * coord_dim + feat * first) + 2 * code * first
    prev = first
    for w in hidden:
        f += 2 * pixels * prev * w
        prev = w
    return f + 2 * pixels * prev * channels
