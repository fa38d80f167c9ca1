r"""The static description of a VAE: shapes, latents, networks, likelihood and objective.

A :class:`Model` is a frozen, hashable dataclass (a static argument of ``jit``); its weights
are the plain dict returned by :meth:`Model.init`. Every family of :mod:`jaxscope.vae.families`
is a :class:`Model` with some latents switched on:

* content ``z`` (``latent_dim``, Gaussian, prior ``N(0, I)``);
* pose, for ``invariances``: the angle (2-D Gaussian, projected to the circle, see
  :mod:`~jaxscope.vae.distributions`), the shift ``t = shift_prior·ε`` (grid units) and the
  scale ``s = exp(scale_prior·ε)``; the decoder is then :class:`~.networks.SpatialDecoder`;
* ``discrete`` categorical latents (relaxed one-hot samples in the decoder code);
* ``supervised="class"`` (the first categorical is the label) or ``"regression"``
  (``regression_dim`` Gaussian latents, the label where known);
* ``condition_dim``: a given vector fed to encoder and decoder;
* ``out_shape``: a different output modality (VED: im2spec / spec2im).

Data shapes are stored with a trailing channel axis: ``(h, w, c)`` for images, ``(L, c)`` for
spectra (``spatial`` says which).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import grids
from .networks import DenseDecoder, Encoder, SpatialDecoder


def _scale(v):
    return jax.nn.softplus(v) + 1e-4


INVARIANCES = {2: ("r", "t", "s"), 1: ("t",)}
LIKELIHOODS = ("bernoulli", "gaussian")


@dataclasses.dataclass(frozen=True)
class Model:
    """A VAE family member (see the module docstring); build one with the constructors of
    :mod:`jaxscope.vae.families` (``VAE``, ``RVAE``, ...), which check their arguments."""

    family: str
    shape: tuple[int, ...]
    spatial: int
    latent_dim: int = 2
    invariances: tuple[str, ...] = ()
    discrete: tuple[int, ...] = ()
    supervised: str | None = None
    regression_dim: int = 0
    condition_dim: int = 0
    out_shape: tuple[int, ...] | None = None
    out_spatial: int = 0
    encoder_hidden: tuple[int, ...] = (128, 128)
    decoder_hidden: tuple[int, ...] = (128, 128)
    activation: str = "tanh"
    likelihood: str = "bernoulli"
    noise_scale: float = 0.5
    shift_prior: float = 0.1
    scale_prior: float = 0.1
    temperature: float = 0.67
    symmetry: int = 1
    aligned: bool = True
    coord_scale: float = 1.0
    fourier: int = 0
    fourier_scale: float = 2.0
    pixel_fraction: float = 1.0
    objective: Any = None

    # --- layout ---------------------------------------------------------------------------
    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.out_shape if self.out_shape is not None else self.shape

    @property
    def output_spatial(self) -> int:
        return self.out_spatial if self.out_shape is not None else self.spatial

    @property
    def num_discrete(self) -> int:
        return int(sum(self.discrete))

    @property
    def pose_dims(self) -> dict[str, int]:
        """Encoder outputs per pose latent (parameters, not samples)."""
        d = self.output_spatial
        out = {}
        if "r" in self.invariances:
            out["angle"] = 3  # 2-D mean + one scale
        if "t" in self.invariances:
            out["shift"] = 2 * d
        if "s" in self.invariances:
            out["scale"] = 2
        return out

    @property
    def two_stage(self) -> bool:
        """Pose first, then content from the input turned back to the canonical pose."""
        return self.aligned and bool(self.invariances) and self.out_shape is None

    @property
    def encoder_out(self) -> int:
        """Outputs of the (content) encoder; the pose's too unless :attr:`two_stage`."""
        pose = 0 if self.two_stage else sum(self.pose_dims.values())
        return 2 * self.latent_dim + pose + self.num_discrete + 2 * self.regression_dim

    @property
    def code_dim(self) -> int:
        """Width of the decoder's code: content, classes, regression latents, condition."""
        return self.latent_dim + self.num_discrete + self.regression_dim + self.condition_dim

    def networks(self) -> dict:
        nets = {"encoder": Encoder(self.encoder_out, self.encoder_hidden, self.activation)}
        if self.two_stage:
            nets["pose_encoder"] = Encoder(
                sum(self.pose_dims.values()), self.encoder_hidden, self.activation
            )
        oshape = self.output_shape
        if self.invariances:
            nets["decoder"] = SpatialDecoder(
                oshape[-1], self.decoder_hidden[0], self.decoder_hidden, self.activation,
                self.fourier, self.fourier_scale,
            )  # fmt: skip
        else:
            nets["decoder"] = DenseDecoder(
                int(np.prod(oshape)), self.decoder_hidden, self.activation
            )
        return nets

    def grid(self) -> jax.Array:
        return grids.grid(self.output_shape[:-1])

    def init(self, key: jax.Array) -> dict:
        """Fresh weights ``{"encoder", "decoder"[, "pose_encoder", "anchor", "rings"]}`` (a
        plain dict pytree; :func:`~jaxscope.vae.train` then fits ``rings`` to the data, see
        :meth:`fit_rings`)."""
        nets = self.networks()
        k1, k2, k3 = jax.random.split(key, 3)
        cond = jnp.zeros((1, self.condition_dim)) if self.condition_dim else None
        x0 = jnp.zeros((1, *self.shape))
        out = {"encoder": nets["encoder"].init(k1, x0, cond)["params"]}
        code = jnp.zeros((1, self.code_dim))
        if self.invariances:
            out["decoder"] = nets["decoder"].init(k2, self.grid()[None], code)["params"]
        else:
            out["decoder"] = nets["decoder"].init(k2, code)["params"]
        if self.two_stage:
            out["pose_encoder"] = nets["pose_encoder"].init(k3, x0, cond)["params"]
        if "r" in self.invariances:
            out["anchor"] = jnp.asarray(2.0, jnp.float32)
            out["rings"] = jnp.asarray(grids.default_ring_weights())
        return out

    def fit_rings(self, params: dict, x) -> dict:
        """``params`` with the angle anchor's ring weights fitted to samples ``x``
        (``(n, *shape)``, :func:`~.grids.fit_ring_weights`); unchanged without rotation."""
        if "r" not in self.invariances:
            return params
        xs = jnp.reshape(jnp.asarray(x, jnp.float32), (-1, *self.shape))
        return {**params, "rings": jnp.asarray(grids.fit_ring_weights(xs, self.symmetry))}

    # --- encoder ------------------------------------------------------------------------
    def posterior(self, params: dict, x: jax.Array, condition=None) -> dict[str, jax.Array]:
        """Posterior parameters of a batch ``x`` (``(B, *shape)``): ``z_loc``, ``z_scale``,
        and where present ``angle_mean`` (B, 2), ``angle_sigma`` (B,), ``shift_loc``,
        ``shift_scale`` (B, d), ``scale_loc``, ``scale_scale`` (B,), ``logits`` (B, ΣK),
        ``y_loc``, ``y_scale`` (B, r).

        Two-stage (:attr:`two_stage`): the pose encoder reads ``x``; the content encoder reads
        ``x`` turned back by the pose's posterior mean (:func:`~.grids.align`), so content and
        classes are inferred in the canonical frame and an MLP need not learn to be rotation
        invariant (one resampling per sample, negligible next to the spatial decoder)."""
        nets = self.networks()
        out = {}
        if self.two_stage:
            raw = nets["pose_encoder"].apply({"params": params["pose_encoder"]}, x, condition)
            self._pose(params, x, raw, out)
            x_in = grids.align(x, *self.pose_mean(out, x.shape[0]))
            raw = nets["encoder"].apply({"params": params["encoder"]}, x_in, condition)
            raw = self._content(raw, out)
        else:
            raw = nets["encoder"].apply({"params": params["encoder"]}, x, condition)
            raw = self._content(raw, out)
            self._pose(params, x, raw, out)
        return out

    def _content(self, raw, out):
        k = self.latent_dim
        out["z_loc"], out["z_scale"], raw = raw[:, :k], _scale(raw[:, k : 2 * k]), raw[:, 2 * k :]
        if self.discrete:
            out["logits"], raw = raw[:, : self.num_discrete], raw[:, self.num_discrete :]
        if self.regression_dim:
            r = self.regression_dim
            out["y_loc"], out["y_scale"], raw = (
                raw[:, :r],
                _scale(raw[:, r : 2 * r]),
                raw[:, 2 * r :],
            )
        return raw

    def _pose(self, params, x, raw, out):
        pd = self.pose_dims
        if "angle" in pd:
            # the head plus a rotation-equivariant anchor: the image's circular moment, turned
            # to a direction; it breaks the symmetry of a fresh decoder, whose mean image is
            # round and gives the angle no gradient
            M = grids.circular_moment(x, self.symmetry, params["rings"])
            M = M / jnp.sqrt(jnp.sum(M**2, -1, keepdims=True) + 1e-12)
            out["angle_mean"] = raw[:, :2] + params["anchor"] * M
            out["angle_sigma"], raw = _scale(raw[:, 2]), raw[:, 3:]
        if "shift" in pd:
            d = pd["shift"] // 2
            out["shift_loc"], out["shift_scale"], raw = (
                raw[:, :d],
                _scale(raw[:, d : 2 * d]),
                raw[:, 2 * d :],
            )
        if "scale" in pd:
            out["scale_loc"], out["scale_scale"], raw = raw[:, 0], _scale(raw[:, 1]), raw[:, 2:]
        return raw

    def pose_mean(self, post: dict, B: int):
        """``(angle, shift, scale)`` (radians, grid units, factor) at the posterior means."""
        d = self.output_spatial
        angle = jnp.zeros(B)
        if "angle_mean" in post:
            m = post["angle_mean"]
            angle = jnp.arctan2(m[:, 1], m[:, 0]) / self.symmetry
        shift = self.shift_prior * post["shift_loc"] if "shift_loc" in post else jnp.zeros((B, d))
        scale = (
            jnp.exp(self.scale_prior * post["scale_loc"]) if "scale_loc" in post else jnp.ones(B)
        )
        return angle, shift, scale

    # --- decoder ------------------------------------------------------------------------
    def decode_raw(
        self,
        params: dict,
        code: jax.Array,
        angle: jax.Array | None = None,
        shift: jax.Array | None = None,
        scale: jax.Array | None = None,
        pixels: jax.Array | None = None,
    ) -> jax.Array:
        """Decoder output before the likelihood's link (logits for ``bernoulli``, means for
        ``gaussian``), ``(B, *output_shape)``. ``angle`` (B,) radians, ``shift`` (B, d) grid
        units ``(x, y)``, ``scale`` (B,) magnification; ignored by non-spatial decoders.
        ``pixels`` (spatial decoders): evaluate only these flat pixel indices, ``(B, k, c)``."""
        dec = self.networks()["decoder"]
        B = code.shape[0]
        w = {"params": params["decoder"]}
        if not self.invariances:
            return jnp.reshape(dec.apply(w, code), (B, *self.output_shape))
        g = self.grid()
        if pixels is not None:
            g = g[pixels]
        d = g.shape[-1]
        angle = jnp.zeros(B) if angle is None else angle
        shift = jnp.zeros((B, d)) if shift is None else shift
        scale = jnp.ones(B) if scale is None else scale
        coords = jax.vmap(grids.transform, (None, 0, 0, 0))(g, angle, shift, scale)
        coords = coords * self.coord_scale  # the decoder sees scaled coordinates
        out = dec.apply(w, coords, code)
        return out if pixels is not None else jnp.reshape(out, (B, *self.output_shape))

    def mean(self, raw: jax.Array) -> jax.Array:
        """The likelihood's mean from :meth:`decode_raw`'s output."""
        return jax.nn.sigmoid(raw) if self.likelihood == "bernoulli" else raw

    def flops_per_sample(self) -> dict[str, int]:
        """Forward FLOPs per sample of encoder and decoder (multiply-add = 2)."""
        from .networks import spatial_flops

        def dense(sizes):
            return sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))

        n_in = int(np.prod(self.shape)) + self.condition_dim
        enc = dense([n_in, *self.encoder_hidden, self.encoder_out])
        if self.two_stage:
            enc += dense([n_in, *self.encoder_hidden, sum(self.pose_dims.values())])
        osh = self.output_shape
        if self.invariances:
            dec = spatial_flops(
                int(np.prod(osh[:-1])), self.output_spatial, self.code_dim,
                self.decoder_hidden[0], self.decoder_hidden, osh[-1], self.fourier,
            )  # fmt: skip
        else:
            dec = dense([self.code_dim, *self.decoder_hidden, int(np.prod(osh))])
        return {"encoder": enc, "decoder": dec}
