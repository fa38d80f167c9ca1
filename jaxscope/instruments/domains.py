r"""Domain writing in a ferroelectric film: a tip pulse writes a domain of hidden-law size.

An input is a write pulse ``x = (V, log10 τ)``: bias ``V`` in volts and pulse duration ``τ`` in
seconds, on a 20×20 grid over ``V in [1, 10] V`` and ``log10 τ in [-6, -1]`` (1 µs to 100 ms,
the usual range of piezoresponse-force-microscopy switching studies; candidate ``i * 20 + j``
is bias ``i``, duration ``j``). A measurement images the written domain (a 64×64 phase image,
``pixel_nm`` = 10 nm per pixel: a 640 nm field of view), thresholds it and returns the domain
radius in **nanometres** estimated from the switched area, :math:`\hat r = \sqrt{A/\pi}`.

The true radius follows one of two laws, hidden from the campaign and drawn from a key by
:meth:`DomainWriting.draw` (uniformly over :data:`LAWS`):

* ``"nucleation"`` (a threshold bias :math:`V_c` below which no domain nucleates, then
  field-driven growth, logarithmic in time):

  .. math:: r = \Big[r_c + r_0\big((V/V_c)^2 - 1\big)^{1/3}\Big]\,
            \big(1 + \kappa\,\log_{10}(\tau/\tau_0)\big) \quad (V > V_c), \qquad r = 0
            \quad (V \le V_c),

  with :math:`\tau_0 = 1\,\mu s`; priors :math:`r_c \sim U(10, 30)` nm,
  :math:`r_0 \sim U(20, 40)` nm, :math:`V_c \sim U(2, 5)` V, :math:`\kappa \sim U(0.05, 0.12)`.
* ``"power_law"`` (no threshold):

  .. math:: r = k V^\alpha \tau^\gamma = r_\mathrm{max} (V/V_\mathrm{ref})^\alpha
            (\tau/\tau_\mathrm{ref})^\gamma,

  normalised at :math:`V_\mathrm{ref} = 10` V, :math:`\tau_\mathrm{ref} = 0.1` s; priors
  :math:`r_\mathrm{max} \sim U(150, 250)` nm, :math:`\alpha \sim U(0.5, 1.5)`,
  :math:`\gamma \sim U(0.05, 0.15)`.

Imaging (:func:`render_domain`, keyed by the measurement key): the domain wall is
:math:`R(\theta) = r\,(1 + a_0 + \sum_{k=2}^{4} a_k \cos(k\theta + \phi_k))` with
:math:`a_k \sim N(0, \mathrm{wobble}^2)` (``a_0`` is the shot-to-shot size fluctuation, the
others a wobbly wall), centred within half a pixel of the image centre (tip-position jitter,
which also dithers the pixel quantisation); the phase image is
:math:`\tanh((R(\theta) - \rho)/\ell)` (+1 switched, -1 not, wall width :math:`\ell` pixels)
plus Gaussian image noise. :func:`~jaxscope.scalarizers.domain_radius` (imported here, defined
in :mod:`jaxscope.scalarizers`) thresholds it at 0. With the defaults the measured radius is
unbiased to well under a pixel and scatters by about ``wobble`` (4 %) of the radius plus a
fraction of a pixel. Radii beyond the half field of view (320 nm) are truncated by the image;
the default priors stay below about 240 nm.

The truth (:meth:`DomainWriting.truth`, the law's noise-free radius in nm) and the hidden law
(:attr:`~DomainWriting.law`, :attr:`~DomainWriting.law_index`, :attr:`~DomainWriting.params`)
are for scoring only. For regret the radius is maximised (``maximize=True``); the simulator is
meant for learning which law holds.

Example:
    >>> sim = DomainWriting.draw(jax.random.key(0))
    >>> sim.candidates.shape, sim.law in LAWS
    ((400, 2), True)
    >>> r = eqx.filter_jit(sim.measure)(jax.random.key(1), jnp.array([8.0, -3.0]))  # nm
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ..scalarizers import domain_radius
from .base import Simulator, draw_hidden_law

LAWS = ("nucleation", "power_law")
LOG10_TAU0 = -6.0  # nucleation law: time factor counted from 1 µs
V_REF, LOG10_TAU_REF = 10.0, -1.0  # power law: normalised at 10 V, 0.1 s
PRIOR_RANGES = {
    "r_c": (10.0, 30.0),
    "r_0": (20.0, 40.0),
    "V_c": (2.0, 5.0),
    "kappa": (0.05, 0.12),
    "r_max": (150.0, 250.0),
    "alpha": (0.5, 1.5),
    "gamma": (0.05, 0.15),
}
LAW_PARAMS = {
    "nucleation": ("r_c", "r_0", "V_c", "kappa"),
    "power_law": ("r_max", "alpha", "gamma"),
}
_WALL_MODES = (0, 2, 3, 4)  # size fluctuation and wall wobble (mode 1 is a shift: the jitter)


def nucleation_radius(
    V: Float[Array, "*n"],
    log10_tau: Float[Array, "*n"],
    r_c: ArrayLike,
    r_0: ArrayLike,
    V_c: ArrayLike,
    kappa: ArrayLike,
) -> Float[Array, "*n"]:
    r"""Threshold law :math:`[r_c + r_0((V/V_c)^2 - 1)^{1/3}](1 + \kappa\log_{10}(\tau/\tau_0))`.

    Zero at and below :math:`V_c`. The double ``where`` keeps the cube root's base positive in
    both branches, so gradients stay finite.
    """
    u = (V / V_c) ** 2 - 1.0
    above = u > 0
    grown = r_c + r_0 * jnp.where(above, u, 1.0) ** (1.0 / 3.0)
    return jnp.where(above, grown * (1.0 + kappa * (log10_tau - LOG10_TAU0)), 0.0)


def power_law_radius(
    V: Float[Array, "*n"],
    log10_tau: Float[Array, "*n"],
    r_max: ArrayLike,
    alpha: ArrayLike,
    gamma: ArrayLike,
) -> Float[Array, "*n"]:
    r""":math:`r_\mathrm{max} (V/V_\mathrm{ref})^\alpha (\tau/\tau_\mathrm{ref})^\gamma`."""
    return r_max * (V / V_REF) ** alpha * 10.0 ** (gamma * (log10_tau - LOG10_TAU_REF))


LAW_FUNCTIONS = {"nucleation": nucleation_radius, "power_law": power_law_radius}


def render_domain(
    key: PRNGKeyArray,
    radius_px: Float[Array, ""] | float,
    *,
    size: int = 64,
    wobble: Float[Array, ""] | float = 0.04,
    wall_px: Float[Array, ""] | float = 0.5,
    image_noise: Float[Array, ""] | float = 0.25,
    dtype=None,
) -> Float[Array, "size size"]:
    r"""Phase image ``(size, size)`` of a written domain of radius ``radius_px`` pixels.

    :math:`\tanh((R(\theta) - \rho)/\ell) + \epsilon`: +1 inside the wall
    :math:`R(\theta) = r(1 + \sum_k a_k\cos(k\theta + \phi_k))` (:math:`k = 0, 2, 3, 4`,
    :math:`a_k \sim N(0, \mathrm{wobble}^2)`, :math:`\phi_0 = 0`), -1 outside, centre jittered
    uniformly within half a pixel of the image centre, :math:`\epsilon \sim N(0,
    \mathrm{image\_noise}^2)` per pixel. ``wobble = image_noise = 0`` gives a clean disc.
    """
    dtype = dtype or jnp.result_type(float)
    k_off, k_amp, k_phase, k_img = jax.random.split(key, 4)
    centre = (size - 1) / 2 + jax.random.uniform(k_off, (2,), dtype, -0.5, 0.5)
    modes = jnp.asarray(_WALL_MODES, dtype)
    amp = wobble * jax.random.normal(k_amp, modes.shape, dtype)
    phase = jax.random.uniform(k_phase, modes.shape, dtype, 0.0, 2 * math.pi).at[0].set(0.0)
    i = jnp.arange(size, dtype=dtype)
    dy, dx = i[:, None] - centre[0], i[None, :] - centre[1]
    rho = jnp.sqrt(dy**2 + dx**2)
    theta = jnp.arctan2(dy, dx)
    shape = 1.0 + jnp.sum(amp * jnp.cos(modes * theta[..., None] + phase), axis=-1)
    R = jnp.maximum(radius_px * shape, 0.0)
    clean = jnp.tanh((R - rho) / wall_px)
    return clean + image_noise * jax.random.normal(k_img, (size, size), dtype)


class DomainWriting(Simulator):
    """Domain radius (nm) written by a pulse ``x = (V, log10 τ)``; one hidden growth law.

    Build it with :meth:`draw` (hidden law and parameters from a key), or directly.

    Args:
        law: one of :data:`LAWS`; static.
        r_c, r_0, V_c, kappa: nucleation-law parameters (nm, nm, V, per decade).
        r_max, alpha, gamma: power-law parameters (nm, -, -). All seven are held; each law
            uses its own (:data:`LAW_PARAMS`).
        pixel_nm: pixel size of the phase image (nm).
        wobble, wall_px, image_noise: imaging model of :func:`render_domain`.
        size: image side in pixels; static.
        grid: candidates are a ``grid[0] × grid[1]`` grid over ``bounds`` (``V`` major).
        bounds: ``((V_lo, V_hi), (log10τ_lo, log10τ_hi))``; default ``((1, 10), (-6, -1))``.
        dtype: float dtype (default: JAX's default float).
    """

    candidates: Float[Array, "m 2"]
    bounds: Float[Array, "2 2"]
    r_c: Float[Array, ""]
    r_0: Float[Array, ""]
    V_c: Float[Array, ""]
    kappa: Float[Array, ""]
    r_max: Float[Array, ""]
    alpha: Float[Array, ""]
    gamma: Float[Array, ""]
    pixel_nm: Float[Array, ""]
    wobble: Float[Array, ""]
    wall_px: Float[Array, ""]
    image_noise: Float[Array, ""]
    law: str = eqx.field(static=True)
    size: int = eqx.field(static=True)
    maximize: bool = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def __init__(
        self,
        law: str = "nucleation",
        *,
        r_c: float | ArrayLike = 20.0,
        r_0: float | ArrayLike = 30.0,
        V_c: float | ArrayLike = 3.5,
        kappa: float | ArrayLike = 0.08,
        r_max: float | ArrayLike = 200.0,
        alpha: float | ArrayLike = 1.0,
        gamma: float | ArrayLike = 0.1,
        pixel_nm: float = 10.0,
        wobble: float = 0.04,
        wall_px: float = 0.5,
        image_noise: float = 0.25,
        size: int = 64,
        grid: tuple[int, int] = (20, 20),
        bounds: ArrayLike | tuple = ((1.0, 10.0), (-6.0, -1.0)),
        dtype=None,
    ):
        if law not in LAWS:
            raise ValueError(f"unknown law {law!r}; choose one of {LAWS}")
        if not isinstance(size, int) or size < 8:
            raise ValueError(f"size must be an integer >= 8, got {size!r}")
        dtype = dtype or jnp.result_type(float)
        bounds = jnp.asarray(bounds, dtype)
        if bounds.shape != (2, 2) or not bool(jnp.all(bounds[:, 0] < bounds[:, 1])):
            raise ValueError(f"bounds must be ((V_lo, V_hi), (logtau_lo, logtau_hi)), got {bounds}")
        if float(bounds[0, 0]) <= 0:
            raise ValueError(f"biases must be positive, got bounds {bounds[0]}")
        vv = jnp.linspace(bounds[0, 0], bounds[0, 1], grid[0], dtype=dtype)
        tt = jnp.linspace(bounds[1, 0], bounds[1, 1], grid[1], dtype=dtype)
        V, T = jnp.meshgrid(vv, tt, indexing="ij")
        self.candidates = jnp.stack([V.ravel(), T.ravel()], axis=1)
        self.bounds = bounds
        self.r_c, self.r_0 = jnp.asarray(r_c, dtype), jnp.asarray(r_0, dtype)
        self.V_c, self.kappa = jnp.asarray(V_c, dtype), jnp.asarray(kappa, dtype)
        self.r_max, self.alpha = jnp.asarray(r_max, dtype), jnp.asarray(alpha, dtype)
        self.gamma = jnp.asarray(gamma, dtype)
        self.pixel_nm = jnp.asarray(pixel_nm, dtype)
        self.wobble = jnp.asarray(wobble, dtype)
        self.wall_px = jnp.asarray(wall_px, dtype)
        self.image_noise = jnp.asarray(image_noise, dtype)
        self.law = law
        self.size = size
        self.maximize = True
        self.name = "domain_writing"

    @classmethod
    def draw(cls, key: PRNGKeyArray, law: str | None = None, **kwargs) -> DomainWriting:
        """A film with its hidden law and parameters drawn from ``key`` (host-side).

        The law is uniform over :data:`LAWS` (unless ``law`` is given), every parameter uniform
        over :data:`PRIOR_RANGES`; the same key gives the same film. ``kwargs`` go to the
        constructor. Not traceable: the law is a static choice, read from the key on the host.
        """
        law, params = draw_hidden_law(key, LAWS, PRIOR_RANGES, law, kwargs.get("dtype"))
        return cls(law, **params, **kwargs)

    @property
    def law_index(self) -> int:
        """Index of the hidden law in :data:`LAWS` (scoring only)."""
        return LAWS.index(self.law)

    @property
    def params(self) -> dict[str, float]:
        """The hidden law's parameters as floats (scoring only), named as in :data:`LAW_PARAMS`."""
        return {k: float(getattr(self, k)) for k in LAW_PARAMS[self.law]}

    def value(self, x: Float[Array, " 2"]) -> Float[Array, ""]:
        """Noise-free radius (nm) written by the pulse ``x = (V, log10 τ)``."""
        args = (getattr(self, k) for k in LAW_PARAMS[self.law])
        return LAW_FUNCTIONS[self.law](x[0], x[1], *args)

    def truth(self, X: Float[Array, "n 2"]) -> Float[Array, " n"]:
        return jax.vmap(self.value)(X)

    def image(self, key: PRNGKeyArray, x: Float[Array, " 2"]) -> Float[Array, "size size"]:
        """The phase image a measurement at ``x`` thresholds (same key, same image)."""
        return render_domain(
            key,
            self.value(x) / self.pixel_nm,
            size=self.size,
            wobble=self.wobble,
            wall_px=self.wall_px,
            image_noise=self.image_noise,
            dtype=self.candidates.dtype,
        )

    def measure(self, key: PRNGKeyArray, x: Float[Array, " 2"]) -> Float[Array, ""]:
        """Domain radius in nm from the thresholded phase image: ``sqrt(area/π) · pixel_nm``."""
        return domain_radius(self.image(key, x)) * self.pixel_nm
