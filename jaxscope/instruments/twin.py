r"""Digital twins of imaging instruments: a structural image, a spectrum at every pixel.

The three twins (:class:`~jaxscope.instruments.PFMTwin`, :class:`~jaxscope.instruments.EELSTwin`,
:class:`~jaxscope.instruments.DiffractionTwin`) share the workflow of structure–property
campaigns (Kalinin et al., "Automated and autonomous experiments in electron and scanning probe
microscopy", ACS Nano 15, 12604 (2021); Roccapriore et al., "Physics discovery in nanoplasmonic
systems via autonomous experiments in scanning transmission electron microscopy", Adv. Sci. 9,
2203422 (2022)): the campaign sees a structural ``image`` ``(H, W)`` or ``(H, W, c)``; its
candidates are the pixels ``(row, col)`` whose ``window``-sided patch lies in the image
(exactly :func:`jaxscope.images.valid_coordinates`, in the order of
:func:`jaxscope.images.extract`); measuring a pixel records a raw *spectrum*
(:meth:`ImageTwin.spectrum`, noisy; :meth:`ImageTwin.clean_spectrum`, noise-free) and reduces it
to one number with a *scalarizer* chosen by name (:mod:`jaxscope.scalarizers`).

:class:`ImageTwin` holds that common plumbing once: ``measure = scalarize ∘ spectrum``,
``truth = scalarize ∘ clean_spectrum`` (vectorised), :meth:`~ImageTwin.patches`, the probe-travel
:meth:`~ImageTwin.cost` (:func:`~jaxscope.instruments.base.travel_cost` over the pixel box plus a
per-spectrum dwell), and the argument checks. Each twin implements ``clean_spectrum``,
``spectrum`` and ``scalarize``; its hidden physics maps are for scoring only.
"""

# No ``from __future__ import annotations`` here: equinox cannot parse stringified AbstractVar
# annotations.

import abc
import math

import jax
import jax.numpy as jnp
from equinox import AbstractVar
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..images import Patches, extract, valid_coordinates
from ..runtime.jit import jit
from .base import Simulator, travel_cost

Scalar = float | Float[Array, ""]  # a Python number or a 0-d array (traced inside jit)


class ImageTwin(Simulator):
    """Abstract digital twin: an image, a raw spectrum per pixel, a named scalarizer.

    Concrete twins hold ``image``, ``axis`` (the spectrum's abscissa), ``candidates``,
    ``bounds`` (the pixel box ``[[0, H-1], [0, W-1]]``), ``dwell`` and ``speed`` (cost model),
    and the static ``window``, ``scalarizer``, ``maximize`` and ``name``; they implement
    :meth:`clean_spectrum`, :meth:`spectrum` and :meth:`scalarize`.
    """

    image: AbstractVar[Float[Array, "H W *c"]]
    axis: AbstractVar[Float[Array, "..."]]
    dwell: AbstractVar[Float[Array, ""]]
    speed: AbstractVar[Float[Array, ""]]
    window: AbstractVar[int]
    scalarizer: AbstractVar[str]

    @abc.abstractmethod
    def clean_spectrum(self, x: Float[Array, " 2"]) -> Float[Array, "..."]:
        """Noise-free raw measurement at pixel ``x = (row, col)``."""

    @abc.abstractmethod
    def spectrum(self, key: PRNGKeyArray, x: Float[Array, " 2"]) -> Float[Array, "..."]:
        """Noisy raw measurement at pixel ``x`` (deterministic given ``key``)."""

    @abc.abstractmethod
    def scalarize(self, spec: Float[Array, "..."]) -> Float[Array, ""]:
        """The twin's scalarizer (:attr:`scalarizer`) applied to one raw measurement."""

    def measure(self, key: PRNGKeyArray, x: Float[Array, " 2"]) -> Float[Array, ""]:
        """The scalarizer of the noisy spectrum at ``x``."""
        return self.scalarize(self.spectrum(key, x))

    def truth(self, X: Float[Array, "n 2"]) -> Float[Array, " n"]:
        """The scalarizer of the noise-free spectra at the rows of ``X`` (scoring only; one
        compiled program, so scoring all candidates from the host is fast)."""
        return _truth(self, X)

    def spectra(self, key: PRNGKeyArray, X: Float[Array, "n 2"]) -> Float[Array, "n ..."]:
        """Noisy spectra at the rows of ``X``; row ``i`` uses ``fold_in(key, i)`` (as
        :meth:`~jaxscope.instruments.Simulator.measure_batch`)."""
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(X.shape[0]))
        return jax.vmap(self.spectrum)(keys, X)

    def patches(self, normalize: str = "image") -> Patches:
        """:func:`jaxscope.images.extract` of :attr:`image` with this twin's window; its
        ``coords`` equal :attr:`candidates`."""
        return extract(self.image, self.window, normalize=normalize)

    def pixel(self, x: Float[Array, " 2"]) -> tuple[Int[Array, ""], Int[Array, ""]]:
        """Row and column of the pixel nearest ``x`` (clipped to the image)."""
        H, W = self.image.shape[:2]
        ij = jnp.round(x).astype(jnp.int32)
        return jnp.clip(ij[0], 0, H - 1), jnp.clip(ij[1], 0, W - 1)

    def cost(self, x: Float[Array, " 2"], x_prev: Float[Array, " 2"]) -> Float[Array, ""]:
        """Dwell of one spectrum plus the probe's travel, in image sides per ``speed``."""
        return travel_cost(x, x_prev, self.bounds, self.dwell, self.speed)


@jit
def _truth(twin: ImageTwin, X):
    return jax.vmap(lambda x: twin.scalarize(twin.clean_spectrum(x)))(X)


def check_twin_args(
    size, window, noise, *, min_size: int, scalarizer: str, valid: tuple[str, ...], twin: str
) -> None:
    """``ValueError`` naming the problem for a bad size, window, noise or scalarizer name."""
    if isinstance(size, bool) or not isinstance(size, int) or size < min_size:
        raise ValueError(f"{twin}: size must be an integer >= {min_size} pixels, got {size!r}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"{twin}: window must be a positive integer, got {window!r}")
    if window > size:
        raise ValueError(f"{twin}: window {window} is larger than the image ({size}×{size})")
    if not (math.isfinite(float(noise)) and float(noise) >= 0):
        raise ValueError(f"{twin}: noise must be finite and >= 0, got {noise!r}")
    if scalarizer not in valid:
        raise ValueError(f"{twin}: unknown scalarizer {scalarizer!r}; choose one of {valid}")


def twin_grid(size: int, window: int) -> tuple[Float[Array, "m 2"], Float[Array, "2 2"]]:
    """Candidates (:func:`~jaxscope.images.valid_coordinates`, float32) and the pixel box."""
    C = jnp.asarray(valid_coordinates((size, size), window))
    bounds = jnp.asarray([[0.0, size - 1.0], [0.0, size - 1.0]], jnp.float32)
    return C, bounds


def blur_matrix(n: int, sigma: float | Float[Array, ""]) -> Float[Array, "n n"]:
    r"""Row-normalised Gaussian smoothing matrix :math:`B_{ij} \propto e^{-(i-j)^2/2\sigma^2}`.

    Rows sum to one, so a constant image stays constant up to the border (no periodic wrap,
    no dark edges). ``sigma`` in pixels; ``sigma → 0`` gives the identity.
    """
    i = jnp.arange(n, dtype=jnp.float32)
    s = jnp.maximum(jnp.asarray(sigma, jnp.float32), 1e-3)
    K = jnp.exp(-0.5 * ((i[:, None] - i[None, :]) / s) ** 2)
    return K / jnp.sum(K, axis=1, keepdims=True)


def gaussian_blur(
    img: Float[Array, "H W *c"], sigma: float | Float[Array, ""]
) -> Float[Array, "H W *c"]:
    r"""Separable Gaussian blur :math:`B_H\,I\,B_W^\top` (per channel), width ``sigma`` pixels."""
    Br, Bc = blur_matrix(img.shape[0], sigma), blur_matrix(img.shape[1], sigma)
    return jnp.einsum("ij,jk...,lk->il...", Br, img, Bc)


def noisy_image(
    key: PRNGKeyArray, clean: Float[Array, "H W *c"], noise: float | Float[Array, ""]
) -> Float[Array, "H W *c"]:
    """``clean + noise · N(0, 1)`` per pixel, float32."""
    eps = jax.random.normal(key, clean.shape, jnp.float32)
    return (clean + noise * eps).astype(jnp.float32)
