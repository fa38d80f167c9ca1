r"""Plasmonic STEM-EELS digital twin: a HAADF image of nanoparticles, a low-loss spectrum per pixel.

**Particles** (:func:`place_particles`): up to ``num_particles`` ellipses (semi-axes ``a ≥ b``,
equivalent radius :math:`R = \sqrt{ab}` uniform in ``radius_px``, aspect ratio up to
``max_aspect``, random orientation) placed by sequential random addition: a proposal is kept
when its bounding circle clears every accepted one by ``gap`` pixels and the image border
(Widom, J. Chem. Phys. 44, 3888 (1966)); pure JAX (``lax.fori_loop`` over a fixed number of
proposals), so the same key gives the same particles. Each is an ellipsoid of half-thickness
:math:`R`: projected thickness :math:`t = 2R\sqrt{1 - \rho^2}`, with :math:`\rho` the
normalised elliptical radius; the signed distance to the surface (negative inside) is the
first-order estimate :math:`d \approx (\rho - 1)/|\nabla\rho|` (exact for discs).

**HAADF** (Z-contrast, ∝ thickness): :math:`I = G_\mathrm{probe} * (t / t_\mathrm{ref}) +
\mathrm{substrate} + \epsilon`, Gaussian noise ``image_noise``.

**Low-loss spectrum** at a probe position, energies ``axis`` (``0 … 6`` eV, ``num_channels``
channels), for a Drude metal of plasma energy :math:`E_p` (García de Abajo, "Optical
excitations in electron microscopy", Rev. Mod. Phys. 82, 209 (2010); Nelayah et al., Nat.
Phys. 3, 348 (2007)), summed over the particles :math:`j` (distances in nm, ``pixel_nm`` per
pixel), with Lorentzian lines :math:`L(E; E_0, \Gamma) = (\Gamma/2)^2 / ((E-E_0)^2 +
(\Gamma/2)^2)`:

* zero-loss tail :math:`Z_0 e^{-t/\lambda}\,\gamma^2/(E^2 + \gamma^2)` (Lorentzian tail,
  attenuated by the local thickness, mean free path :math:`\lambda`);
* dipole mode at :math:`E_d = (E_p/\sqrt3)/\sqrt{1 + (R/R_\mathrm{ret})^2}` (the quasistatic
  sphere mode red-shifted with size by retardation, Meier & Wokaun, Opt. Lett. 8, 581 (1983)),
  amplitude :math:`A_d (R/10\,\mathrm{nm})\,e^{-|d|/\ell_d}` with the aloof-excitation decay
  length :math:`\ell_d = \beta\hbar c / (2E_d)` (:math:`\beta = v/c = 0.55`, 100 keV);
* edge mode at the planar surface-plasmon energy :math:`E_s = E_p/\sqrt2` (the high-order
  multipole limit, localised at edges and corners), amplitude :math:`A_e\,\sigma(2d + 1)
  \,e^{-\max(d, 0)/\ell_e}` (strongest just outside the surface, short decay ``edge_nm``);
* bulk plasmon at :math:`E_p`, amplitude :math:`A_b\,t/(20\,\mathrm{nm})` (inside only);
* a flat background ``background``.

Noise: Poisson counting, :math:`s = \nu^2\,\mathrm{Poisson}(s_\mathrm{clean}/\nu^2)` with
``noise`` :math:`= \nu` (a channel of unit mean signal has relative spread :math:`\nu`):
unbiased, variance :math:`\nu^2 s_\mathrm{clean}`.

Scalarizers (:mod:`jaxscope.scalarizers`): ``"window_sum"`` (default) over ``energy_window``
(default the edge-mode window :math:`E_s \pm 0.25` eV), ``"peak_ratio"`` of ``ratio_windows``
(edge over dipole window), ``"peak_energy"`` in ``peak_range`` (the dipole band, 1.8–3.2 eV).

Example:
    >>> sim = EELSTwin.create(jax.random.key(0), size=50)
    >>> sim.image.shape, sim.clean_spectrum(sim.candidates[0]).shape
    ((50, 50), (128,))
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from .twin import ImageTwin, check_twin_args, gaussian_blur, noisy_image, twin_grid

SCALARIZERS = ("window_sum", "peak_ratio", "peak_energy")
HBAR_C = 197.327  # eV nm
PHYSICS = {
    "plasma_ev": 5.0,  # E_p
    "retard_nm": 40.0,  # R_ret
    "beta": 0.55,  # v/c of the beam
    "edge_nm": 4.0,  # l_e
    "zlp": 50.0,  # Z_0
    "zlp_ev": 0.1,  # gamma
    "mfp_nm": 100.0,  # lambda
    "dipole": 1.0,  # A_d
    "edge": 3.0,  # A_e
    "bulk": 2.0,  # A_b
    "width_dipole": 0.3,  # Gamma (eV)
    "width_edge": 0.35,
    "width_bulk": 0.8,
    "background": 0.02,
}
EDGE_EV = PHYSICS["plasma_ev"] / math.sqrt(2.0)
DEFAULT_WINDOW = (round(EDGE_EV - 0.25, 3), round(EDGE_EV + 0.25, 3))
DEFAULT_RATIO_WINDOWS = (DEFAULT_WINDOW, (2.0, 2.9))
DEFAULT_PEAK_RANGE = (1.8, 3.2)


class Particles(eqx.Module):
    """Ellipses: ``centres`` ``(p, 2)`` (row, col px), ``axes`` ``(p, 2)`` semi-axes ``a ≥ b``
    (px), ``angle`` ``(p,)`` of the long axis from the row axis, ``mask`` which are placed."""

    centres: Float[Array, "p 2"]
    axes: Float[Array, "p 2"]
    angle: Float[Array, " p"]
    mask: Bool[Array, " p"]

    @property
    def radius(self) -> Float[Array, " p"]:
        """Equivalent radius :math:`\\sqrt{ab}` (px)."""
        return jnp.sqrt(self.axes[:, 0] * self.axes[:, 1])


def place_particles(
    key: PRNGKeyArray,
    size: int,
    num: int,
    radius_px: tuple[float, float] = (3.0, 7.0),
    max_aspect: float = 1.6,
    gap: float = 2.0,
    tries: int | None = None,
) -> Particles:
    """Sequential random addition of non-overlapping ellipses (see the module docstring)."""
    tries = 8 * num if tries is None else tries
    kr, ka, kt, kc = jax.random.split(key, 4)
    R = jax.random.uniform(kr, (tries,), jnp.float32, *radius_px)
    asp = jax.random.uniform(ka, (tries,), jnp.float32, 1.0, max_aspect)
    axes = jnp.stack([R * jnp.sqrt(asp), R / jnp.sqrt(asp)], 1)
    angle = jax.random.uniform(kt, (tries,), jnp.float32, 0.0, jnp.pi)
    lo = axes[:, 0] + 1.0
    u = jax.random.uniform(kc, (tries, 2), jnp.float32)
    centres = lo[:, None] + u * (size - 1.0 - 2 * lo[:, None])

    def body(i, carry):
        C, A, T, M, n = carry
        d = jnp.sqrt(jnp.sum((C - centres[i]) ** 2, axis=1))
        clear = jnp.all(~M | (d > A[:, 0] + axes[i, 0] + gap))
        ok = clear & (n < num)
        j = jnp.minimum(n, num - 1)
        C = jnp.where(ok, C.at[j].set(centres[i]), C)
        A = jnp.where(ok, A.at[j].set(axes[i]), A)
        T = jnp.where(ok, T.at[j].set(angle[i]), T)
        M = jnp.where(ok, M.at[j].set(True), M)
        return C, A, T, M, n + ok.astype(jnp.int32)

    init = (jnp.zeros((num, 2)), jnp.ones((num, 2)), jnp.zeros(num), jnp.zeros(num, bool), 0)
    C, A, T, M, _ = jax.lax.fori_loop(0, tries, body, init)
    return Particles(C.astype(jnp.float32), A.astype(jnp.float32), T.astype(jnp.float32), M)


def geometry(y: Float[Array, " 2"], P: Particles) -> tuple[Float[Array, " p"], Float[Array, " p"]]:
    r"""Signed distance :math:`d` (px, negative inside, large for unplaced particles) and
    projected thickness :math:`t` (px) of every particle at the point ``y = (row, col)``."""
    dy = y - P.centres
    c, s = jnp.cos(P.angle), jnp.sin(P.angle)
    u = c * dy[:, 0] + s * dy[:, 1]  # along the long axis
    v = -s * dy[:, 0] + c * dy[:, 1]
    a, b = P.axes[:, 0], P.axes[:, 1]
    rho = jnp.sqrt((u / a) ** 2 + (v / b) ** 2 + 1e-12)
    grad = jnp.sqrt((u / a**2) ** 2 + (v / b**2) ** 2 + 1e-12) / rho
    d = jnp.where(P.mask, (rho - 1.0) / grad, 1e4)
    t = jnp.where(P.mask, 2.0 * jnp.sqrt(a * b) * jnp.sqrt(jnp.maximum(1.0 - rho**2, 0.0)), 0.0)
    return d, t


def thickness_map(size: int, P: Particles) -> Float[Array, "size size"]:
    """Projected thickness (px) at every pixel."""
    i = jnp.arange(size, dtype=jnp.float32)
    Y = jnp.stack(jnp.meshgrid(i, i, indexing="ij"), -1).reshape(-1, 2)
    return jax.vmap(lambda y: geometry(y, P)[1].sum())(Y).reshape(size, size)


def lorentz(e: Float[Array, " n"], e0, width) -> Float[Array, "... n"]:
    r"""Unit-height Lorentzian :math:`(\Gamma/2)^2 / ((E - E_0)^2 + (\Gamma/2)^2)`."""
    h = 0.5 * width
    return h**2 / ((e - e0) ** 2 + h**2)


def low_loss(
    e: Float[Array, " n"], d_nm: Float[Array, " p"], t_nm: Float[Array, " p"],
    R_nm: Float[Array, " p"], phys: dict,
) -> Float[Array, " n"]:  # fmt: skip
    """The noise-free low-loss spectrum of the module docstring at one probe position."""
    f = phys
    t = jnp.sum(t_nm)
    zlp = f["zlp"] * jnp.exp(-t / f["mfp_nm"]) * f["zlp_ev"] ** 2 / (e**2 + f["zlp_ev"] ** 2)
    Ed = f["plasma_ev"] / jnp.sqrt(3.0) / jnp.sqrt(1.0 + (R_nm / f["retard_nm"]) ** 2)
    ld = f["beta"] * HBAR_C / (2.0 * Ed)
    Ad = f["dipole"] * (R_nm / 10.0) * jnp.exp(-jnp.abs(d_nm) / ld)
    dipole = jnp.sum(Ad[:, None] * lorentz(e, Ed[:, None], f["width_dipole"]), axis=0)
    Ae = f["edge"] * jax.nn.sigmoid(2.0 * d_nm / f["edge_nm"] + 1.0)
    Ae = Ae * jnp.exp(-jnp.maximum(d_nm, 0.0) / f["edge_nm"])
    Es = f["plasma_ev"] / jnp.sqrt(2.0)
    edge = jnp.sum(Ae) * lorentz(e, Es, f["width_edge"])
    bulk = f["bulk"] * (t / 20.0) * lorentz(e, f["plasma_ev"], f["width_bulk"])
    return (zlp + dipole + edge + bulk + f["background"]).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("size", "num", "radius_px", "max_aspect", "gap"))
def build_particles(key, size, num, radius_px, max_aspect, gap, probe_sigma, image_noise):
    """Particles, thickness map and the noisy HAADF image (shared with the 4D-STEM twin)."""
    k_p, k_img = jax.random.split(key)
    P = place_particles(k_p, size, num, radius_px, max_aspect, gap)
    t = thickness_map(size, P)
    clean = gaussian_blur(t / (2.0 * radius_px[1]), probe_sigma) + 0.05
    return P, t, noisy_image(k_img, clean, image_noise)


def default_num_particles(size: int) -> int:
    """About one particle per 300 px² (6 at 50 px, 218 at 256 px)."""
    return max(3, round(size * size / 300))


def poisson_noise(key: PRNGKeyArray, clean: Float[Array, "*s"], nu) -> Float[Array, "*s"]:
    r""":math:`\nu^2\,\mathrm{Poisson}(s/\nu^2)` (the clean signal where :math:`\nu = 0`)."""
    nu2 = jnp.maximum(nu**2, 1e-12)
    counts = jax.random.poisson(key, jnp.maximum(clean, 0.0) / nu2, clean.shape)
    return jnp.where(nu > 0, nu2 * counts.astype(jnp.float32), clean).astype(jnp.float32)


class EELSTwin(ImageTwin):
    """HAADF image of plasmonic nanoparticles and a low-loss EELS spectrum at every pixel.

    Build it with :meth:`create`. Hidden truth (scoring only): ``particles``, ``thickness``
    ``(H, W)`` (projected, px), ``physics`` (the coefficients of the spectrum model).
    """

    image: Float[Array, "H W"]
    axis: Float[Array, " n"]
    candidates: Float[Array, "m 2"]
    bounds: Float[Array, "2 2"]
    particles: Particles
    thickness: Float[Array, "H W"]
    physics: dict
    pixel_nm: Float[Array, ""]
    noise: Float[Array, ""]
    dwell: Float[Array, ""]
    speed: Float[Array, ""]
    window: int = eqx.field(static=True)
    scalarizer: str = eqx.field(static=True)
    energy_window: tuple[float, float] = eqx.field(static=True)
    ratio_windows: tuple[tuple[float, float], tuple[float, float]] = eqx.field(static=True)
    peak_range: tuple[float, float] = eqx.field(static=True)
    maximize: bool = eqx.field(static=True)
    name: str = eqx.field(static=True)

    @classmethod
    def create(
        cls,
        key: PRNGKeyArray,
        size: int = 128,
        window: int = 16,
        scalarizer: str = "window_sum",
        noise: float = 0.1,
        *,
        num_particles: int | None = None,
        radius_px: tuple[float, float] = (3.0, 7.0),
        max_aspect: float = 1.6,
        gap: float = 2.0,
        pixel_nm: float = 4.0,
        num_channels: int = 128,
        max_ev: float = 6.0,
        probe_sigma: float = 0.7,
        image_noise: float = 0.02,
        energy_window: tuple[float, float] = DEFAULT_WINDOW,
        ratio_windows: tuple = DEFAULT_RATIO_WINDOWS,
        peak_range: tuple[float, float] = DEFAULT_PEAK_RANGE,
        dwell: float = 0.2,
        speed: float = 1.0,
        **physics: float,
    ) -> EELSTwin:
        """A twin drawn from ``key`` (the same key gives the same twin).

        Args:
            key: PRNG key of the particles and the image noise.
            size: image side in pixels (>= 16).
            window: patch side (static).
            scalarizer: one of :data:`SCALARIZERS`.
            noise: Poisson noise level :math:`\\nu` of the spectra (see the module docstring).
            num_particles: most particles placed (default :func:`default_num_particles`).
            radius_px, max_aspect, gap: particle size range (px), elongation and spacing.
            pixel_nm: pixel size (nm). num_channels, max_ev: the energy axis ``0 … max_ev``.
            probe_sigma, image_noise: HAADF probe blur (px) and image noise.
            energy_window, ratio_windows, peak_range: scalarizer windows (eV).
            dwell, speed: cost of one spectrum and probe speed (image sides per time unit).
            **physics: overrides of :data:`PHYSICS`.
        """
        check_twin_args(size, window, noise, min_size=16, scalarizer=scalarizer,
                        valid=SCALARIZERS, twin="eels_twin")  # fmt: skip
        unknown = set(physics) - set(PHYSICS)
        if unknown:
            raise ValueError(f"eels_twin: unknown physics {sorted(unknown)}; known {list(PHYSICS)}")
        if not 0 < radius_px[0] <= radius_px[1] < size / 4:
            raise ValueError(f"eels_twin: radius_px {radius_px} must satisfy 0 < lo <= hi < size/4")
        if num_channels < 8 or max_ev <= 0:
            raise ValueError(f"eels_twin: need num_channels >= 8 and max_ev > 0, got "
                             f"{num_channels}, {max_ev}")  # fmt: skip
        num = default_num_particles(size) if num_particles is None else int(num_particles)
        f32 = jnp.float32
        P, t, image = build_particles(
            key, size, num, (float(radius_px[0]), float(radius_px[1])), float(max_aspect),
            float(gap), f32(probe_sigma), f32(image_noise),
        )  # fmt: skip
        C, bounds = twin_grid(size, window)
        e = jnp.linspace(0.0, max_ev, num_channels, dtype=jnp.float32)
        phys = {k: f32(v) for k, v in {**PHYSICS, **physics}.items()}
        rw = tuple(tuple(float(b) for b in w) for w in ratio_windows)
        return cls(image, e, C, bounds, P, t, phys, f32(pixel_nm), f32(noise), f32(dwell),
                   f32(speed), window, scalarizer, tuple(map(float, energy_window)), rw,
                   tuple(map(float, peak_range)), True, "eels_twin")  # fmt: skip

    def clean_spectrum(self, x: Float[Array, " 2"]) -> Float[Array, " n"]:
        """Noise-free low-loss spectrum with the probe at pixel ``x``."""
        r, c = self.pixel(x)
        y = jnp.stack([r, c]).astype(jnp.float32)
        d, t = geometry(y, self.particles)
        s = self.pixel_nm
        return low_loss(self.axis, d * s, t * s, self.particles.radius * s, self.physics)

    def spectrum(self, key: PRNGKeyArray, x: Float[Array, " 2"]) -> Float[Array, " n"]:
        """Measured spectrum: Poisson counting noise on :meth:`clean_spectrum`."""
        return poisson_noise(key, self.clean_spectrum(x), self.noise)

    def scalarize(self, spec: Float[Array, " n"]) -> Float[Array, ""]:
        """The :attr:`scalarizer` of one spectrum with this twin's windows."""
        from .. import scalarizers

        if self.scalarizer == "window_sum":
            return scalarizers.window_sum(self.axis, spec, *self.energy_window)
        if self.scalarizer == "peak_ratio":
            return scalarizers.peak_ratio(self.axis, spec, *self.ratio_windows)
        return scalarizers.peak_energy(self.axis, spec, *self.peak_range)
