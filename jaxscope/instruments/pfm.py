r"""Ferroelectric PFM/BEPS digital twin: a domain image and a hysteresis loop at every pixel.

**Domains.** Two non-conserved order parameters :math:`p = (p_1, p_2)` (the out-of-plane and
one in-plane polarisation component; four variants :math:`(\pm 1, \pm 1)`) follow the
time-dependent Ginzburg–Landau (Allen–Cahn) equation after a quench from small noise,

.. math:: \partial_t p_i = \kappa\nabla^2 p_i + p_i - p_i^3 - \gamma\, p_i\, p_j^2,

integrated semi-implicitly in Fourier space (:math:`\hat p^{n+1} = \mathcal F[p^n + \Delta t
f(p^n)] / (1 + \Delta t\,\kappa |k|^2)`, Chen & Shen, Comput. Phys. Commun. 108, 147 (1998))
inside ``lax.fori_loop``; domains coarsen as :math:`L \sim \sqrt{\kappa t}` (Allen & Cahn, Acta
Metall. 27, 1085 (1979)). Walls of :math:`p_1` and :math:`p_2` cross at junctions where all four
variants meet. ``method="grf"`` instead thresholds two Gaussian random fields,
:math:`p_i = \tanh(g_i / 0.1)` (:func:`~jaxscope.instruments.surface.gaussian_random_field`,
lengthscale ``domain_px``). The order parameters are rescaled to ``±1`` in the domains.

**Local descriptors** (hidden; blurred over ``descriptor_sigma`` pixels, so they depend on a
neighbourhood, not one pixel): wall density :math:`\rho = G * (w_1 + w_2)` with the wall
indicator :math:`w_i = 1 - p_i^2`; junction density :math:`J = G * (w_1 w_2)`; signed wall
curvature :math:`c = G * (w_1\, \nabla\cdot(\nabla p_1 / |\nabla p_1|))` of the out-of-plane
domains (negative around a convex up-domain).

**BEPS loops** (Jesse, Baddorf, Kalinin, Appl. Phys. Lett. 88, 062908 (2006)): the waveform
:func:`beps_waveform` is a triangle :math:`0 \to 1 \to -1 \to 0` of 64 steps (voltage
normalised to ``V_max = 1``); the response is :func:`jaxscope.probmodels.hysteresis_loop`
(9 parameters) with the ascending sweep on branch 0 (coercive voltage
:math:`a_2 = I + V_c`) and the descending sweep on branch 1 (:math:`a_3 = I - V_c`), where

.. math:: V_c = v_{c0}(1 + \delta g)(1 - \alpha_w\rho - \alpha_j J), \quad
          I = \mathrm{clip}(I_0 + \beta_c c, \pm 0.3), \quad
          a_1 = s_0(1 - \gamma_w\rho - \gamma_j J), \quad
          a_0 = -a_1/2, \quad b_{0,2} = b(1 + \delta_b\rho),\ b_{1,3} = 1.5\,b_{0,2}

(``g`` a smooth unit random field of defect disorder): walls and junctions nucleate switching
at lower fields and carry less switchable polarisation (Jesse et al., Nat. Mater. 7, 209
(2008)); the bound charge of curved walls gives a built-in field, an imprint. The on-field loop
is :math:`f = a_0 + a_1 y + a_4 V` (:math:`a_4` the electrostatic slope); the off-field
(remanent) loop drops the electrostatic term and keeps the fraction ``remanence`` of the
switched response, :math:`r_\mathrm{off} = \mathrm{remanence}\,(a_0 + a_1 y)`. The raw
spectrum is ``(2, 64)``: on-field, off-field, each point plus Gaussian noise ``noise``.

**Image.** Vertical and lateral piezoresponse :math:`G_\mathrm{tip} * p_{1,2}` plus Gaussian
noise: ``(H, W, 2)``; the PFM amplitude :math:`|\cdot|` dips at walls, the phase is the sign.

Scalarizers (of the off-field loop, where electrostatics are removed): ``"loop_area"``
(default), ``"quarter_loop_area"``, ``"coercive_width"``, ``"imprint"``
(:mod:`jaxscope.scalarizers`).

Example:
    >>> sim = PFMTwin.create(jax.random.key(0), size=50)
    >>> loops = sim.spectrum(jax.random.key(1), sim.candidates[0])
    >>> sim.image.shape, sim.candidates.shape, loops.shape
    ((50, 50, 2), (1225, 2), (2, 64))
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .surface import gaussian_random_field
from .twin import ImageTwin, Scalar, check_twin_args, gaussian_blur, noisy_image, twin_grid

SCALARIZERS = ("loop_area", "quarter_loop_area", "coercive_width", "imprint")
METHODS = ("phase_field", "grf")
LOOP_PARAMS = ("a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2", "b3")
NUM_STEPS = 64
# loop-model coefficients (normalised voltage); see the module docstring
PHYSICS = {
    "vc0": 0.45,  # coercive voltage deep in a domain
    "disorder": 0.08,  # relative coercive-field disorder (smooth random field)
    "alpha_w": 0.9,  # coercive-field drop per unit wall density
    "alpha_j": 3.0,  # ... per unit junction density
    "imprint0": 0.0,
    "beta_c": 2.0,  # imprint per unit blurred curvature (1/pixel)
    "sat0": 1.0,  # loop height deep in a domain
    "gamma_w": 0.5,
    "gamma_j": 2.0,
    "width": 0.08,  # switching width b
    "delta_b": 1.0,
    "electro": 0.1,  # a4, on-field electrostatic slope
}


def beps_waveform(n: int = NUM_STEPS) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
    """Triangular BEPS cycle ``0 → 1 → -1 → 0`` of ``n`` steps and its branch (0 ascending,
    1 descending). ``v[k]`` at ``t = k / n``; ``n`` a multiple of 4."""
    if n % 4 or n < 8:
        raise ValueError(f"the waveform needs a multiple of 4 steps (>= 8), got {n}")
    t = jnp.arange(n, dtype=jnp.float32) / n
    v = jnp.where(t < 0.25, 4 * t, jnp.where(t < 0.75, 2 - 4 * t, 4 * t - 4))
    branch = jnp.where((t >= 0.25) & (t < 0.75), 1.0, 0.0).astype(jnp.float32)
    return v, branch


@functools.cache
def _loop_fn():
    from ..probmodels import hysteresis_loop

    return hysteresis_loop().fn


def loops(
    params: Float[Array, " 9"], remanence: Float[Array, ""] | float, n: int = NUM_STEPS
) -> Float[Array, "2 n"]:
    """On-field and off-field loops ``(2, n)`` of one set of :data:`LOOP_PARAMS`."""
    v, branch = beps_waveform(n)
    p = dict(zip(LOOP_PARAMS, params, strict=True))
    on = jax.vmap(lambda vb: _loop_fn()(vb, p))(jnp.stack([v, branch], 1))
    off = remanence * (on - p["a4"] * v)
    return jnp.stack([on, off]).astype(jnp.float32)


def phase_field_quench(
    key: PRNGKeyArray,
    size: int,
    *,
    steps: int = 80,
    dt: Scalar = 0.5,
    kappa: Scalar = 1.0,
    coupling: Scalar = 0.5,
    seed_noise: Scalar = 0.1,
) -> Float[Array, "2 size size"]:
    r"""Two-order-parameter Allen–Cahn quench (see the module docstring), rescaled to ``±1``."""
    p0 = seed_noise * jax.random.normal(key, (2, size, size), jnp.float32)
    k = 2 * jnp.pi * jnp.fft.fftfreq(size).astype(jnp.float32)
    denom = 1.0 + dt * kappa * (k[:, None] ** 2 + k[None, :] ** 2)

    def step(_, p):
        force = p - p**3 - coupling * p * p[::-1] ** 2
        return jnp.real(jnp.fft.ifft2(jnp.fft.fft2(p + dt * force) / denom)).astype(jnp.float32)

    p = jax.lax.fori_loop(0, steps, step, p0)
    return jnp.clip(p * jnp.sqrt(1.0 + coupling), -1.0, 1.0)


def descriptors(
    P: Float[Array, "2 H W"], sigma: Scalar
) -> tuple[Float[Array, "H W"], Float[Array, "H W"], Float[Array, "H W"]]:
    r"""Wall density :math:`\rho`, junction density :math:`J`, wall curvature :math:`c`."""
    w = 1.0 - P**2
    rho = gaussian_blur(w[0] + w[1], sigma)
    junc = gaussian_blur(w[0] * w[1], sigma)
    gy, gx = jnp.gradient(P[0])
    norm = jnp.sqrt(gx**2 + gy**2 + 1e-4)
    curv = jnp.gradient(gy / norm, axis=0) + jnp.gradient(gx / norm, axis=1)
    return rho, junc, gaussian_blur(w[0] * curv, sigma)


@functools.partial(jax.jit, static_argnames=("size", "method", "steps"))
def _build(key, size, method, steps, domain_px, coupling, tip_sigma, image_noise, dsigma, phys):
    k_dom, k_dis, k_img = jax.random.split(key, 3)
    if method == "phase_field":
        P = phase_field_quench(k_dom, size, steps=steps, coupling=coupling)
    else:
        ks = jax.random.split(k_dom)
        g = jnp.stack([gaussian_random_field(q, size, domain_px / size) for q in ks])
        P = jnp.tanh(g / 0.1).astype(jnp.float32)
    rho, junc, curv = descriptors(P, dsigma)
    g = gaussian_random_field(k_dis, size, 0.25, dtype=jnp.float32)
    weak = 1 - phys["alpha_w"] * rho - phys["alpha_j"] * junc
    vc = jnp.maximum(phys["vc0"] * (1 + phys["disorder"] * g) * weak, 0.05)
    imp = jnp.clip(phys["imprint0"] + phys["beta_c"] * curv, -0.3, 0.3)
    a1 = jnp.maximum(phys["sat0"] * (1 - phys["gamma_w"] * rho - phys["gamma_j"] * junc), 0.1)
    b = phys["width"] * (1 + phys["delta_b"] * rho)
    a4 = jnp.full_like(a1, phys["electro"])
    params = jnp.stack([-a1 / 2, a1, imp + vc, imp - vc, a4, b, 1.5 * b, b, 1.5 * b], -1)
    clean = gaussian_blur(jnp.moveaxis(P, 0, -1), tip_sigma)
    image = noisy_image(k_img, clean, image_noise)
    return image, jnp.moveaxis(P, 0, -1), rho, junc, curv, params.astype(jnp.float32)


class PFMTwin(ImageTwin):
    """PFM image of a ferroelectric domain structure and a BEPS loop pair at every pixel.

    Build it with :meth:`create`. Hidden truth (scoring only): ``polarization`` ``(H, W, 2)``,
    ``wall_density``, ``junctions``, ``curvature`` ``(H, W)`` and ``loop_params``
    ``(H, W, 9)`` (:data:`LOOP_PARAMS`).
    """

    image: Float[Array, "H W 2"]
    axis: Float[Array, " 64"]
    candidates: Float[Array, "m 2"]
    bounds: Float[Array, "2 2"]
    polarization: Float[Array, "H W 2"]
    wall_density: Float[Array, "H W"]
    junctions: Float[Array, "H W"]
    curvature: Float[Array, "H W"]
    loop_params: Float[Array, "H W 9"]
    noise: Float[Array, ""]
    remanence: Float[Array, ""]
    dwell: Float[Array, ""]
    speed: Float[Array, ""]
    window: int = eqx.field(static=True)
    scalarizer: str = eqx.field(static=True)
    method: str = eqx.field(static=True)
    maximize: bool = eqx.field(static=True)
    name: str = eqx.field(static=True)

    @classmethod
    def create(
        cls,
        key: PRNGKeyArray,
        size: int = 128,
        window: int = 16,
        scalarizer: str = "loop_area",
        noise: float = 0.02,
        *,
        method: str = "phase_field",
        steps: int = 80,
        domain_px: float = 8.0,
        coupling: float = 0.5,
        tip_sigma: float = 1.0,
        image_noise: float = 0.05,
        descriptor_sigma: float = 3.0,
        remanence: float = 0.7,
        dwell: float = 1.0,
        speed: float = 1.0,
        **physics: float,
    ) -> PFMTwin:
        """A twin drawn from ``key`` (the same key gives the same twin).

        Args:
            key: PRNG key of the domains, the disorder and the image noise.
            size: image side in pixels (>= 16).
            window: patch side (static); the candidates are the pixels with a whole window.
            scalarizer: one of :data:`SCALARIZERS`.
            noise: standard deviation of the Gaussian noise on each loop point.
            method: ``"phase_field"`` (quench of ``steps`` steps, wall coupling ``coupling``)
                or ``"grf"`` (thresholded random fields of lengthscale ``domain_px`` pixels).
            tip_sigma, image_noise: PFM tip blur (pixels) and image noise.
            descriptor_sigma: neighbourhood (pixels) of the wall/junction/curvature densities.
            remanence: off-field/on-field ratio of the switched response.
            dwell, speed: cost of one loop and probe speed (image sides per time unit).
            **physics: overrides of :data:`PHYSICS` (coercive, imprint and saturation laws).
        """
        check_twin_args(size, window, noise, min_size=16, scalarizer=scalarizer,
                        valid=SCALARIZERS, twin="pfm_twin")  # fmt: skip
        if method not in METHODS:
            raise ValueError(f"pfm_twin: unknown method {method!r}; choose one of {METHODS}")
        unknown = set(physics) - set(PHYSICS)
        if unknown:
            raise ValueError(f"pfm_twin: unknown physics {sorted(unknown)}; known {list(PHYSICS)}")
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"pfm_twin: steps must be a positive integer, got {steps!r}")
        phys = {k: jnp.float32(v) for k, v in {**PHYSICS, **physics}.items()}
        f32 = jnp.float32
        image, P, rho, junc, curv, params = _build(
            key, size, method, steps, f32(domain_px), f32(coupling), f32(tip_sigma),
            f32(image_noise), f32(descriptor_sigma), phys,
        )  # fmt: skip
        C, bounds = twin_grid(size, window)
        return cls(image, beps_waveform()[0], C, bounds, P, rho, junc, curv, params, f32(noise),
                   f32(remanence), f32(dwell), f32(speed), window, scalarizer, method, True,
                   "pfm_twin")  # fmt: skip

    def clean_spectrum(self, x: Float[Array, " 2"]) -> Float[Array, "2 64"]:
        """On-field and off-field loops at pixel ``x``, noise-free."""
        r, c = self.pixel(x)
        return loops(self.loop_params[r, c], self.remanence)

    def spectrum(self, key: PRNGKeyArray, x: Float[Array, " 2"]) -> Float[Array, "2 64"]:
        """Measured loops: :meth:`clean_spectrum` plus ``N(0, noise²)`` on every point."""
        eps = jax.random.normal(key, (2, NUM_STEPS), jnp.float32)
        return self.clean_spectrum(x) + self.noise * eps

    def scalarize(self, spec: Float[Array, "2 64"]) -> Float[Array, ""]:
        """The :attr:`scalarizer` of the off-field loop ``spec[1]`` against :attr:`axis`."""
        from .. import scalarizers

        return getattr(scalarizers, self.scalarizer)(self.axis, spec[1])
