r"""4D-STEM digital twin: a HAADF image of nanoparticles, a diffraction disk shifted by a field.

The specimen is that of the EELS twin (:func:`~jaxscope.instruments.eels.build_particles`:
non-overlapping ellipsoidal particles, HAADF ∝ blurred projected thickness plus noise). The
projected electrostatic potential is the mean-inner-potential map of the particles plus a
smooth random field (charged defects, a substrate field),

.. math:: \varphi = G_{\sigma_\varphi} * (t / t_\mathrm{ref}) + \delta\, g,

and the beam is deflected by the in-plane field: the convergent-beam disk's centre moves by
:math:`\mathbf s = s_\mathrm{max}\,\nabla\varphi / \max|\nabla\varphi|` detector pixels (the
centre-of-mass / differential-phase-contrast picture, Müller et al., "Atomic electric fields
revealed by a quantum mechanical approach to electron picodiffraction", Nat. Commun. 5, 5653
(2014); Lazić, Bosch, Lazar, Ultramicroscopy 160, 265 (2016)), so the largest shift in the
image is ``max_shift`` pixels. The finite-difference gradient (``jnp.gradient``) is in
``(row, col)`` order, like :func:`jaxscope.scalarizers.com_shift`.

The pattern on a ``detector × detector`` camera is a disk of radius ``disk_radius`` with a
soft edge, :math:`I(\mathbf q) \propto \sigma((r_d - |\mathbf q - \mathbf q_0 - \mathbf s|)/w)`
(:math:`\mathbf q_0` the camera centre), normalised to unit total; a measurement counts
:math:`1/\nu^2` electrons on average (``noise`` :math:`= \nu`), Poisson distributed:
:math:`\nu^2\,\mathrm{Poisson}(I/\nu^2)`. The COM of a uniform disk of radius :math:`r_d`
then scatters by about :math:`\nu\,r_d/2` per axis.

Scalarizer: ``"com_magnitude"`` (:func:`jaxscope.scalarizers.com_magnitude` about the camera
centre): its noise-free value is the shift magnitude :math:`|\mathbf s|`, the truth.

Example:
    >>> sim = DiffractionTwin.create(jax.random.key(0), size=50)
    >>> sim.spectrum(jax.random.key(1), sim.candidates[0]).shape
    (32, 32)
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .eels import Particles, build_particles, default_num_particles, poisson_noise
from .surface import gaussian_random_field
from .twin import ImageTwin, check_twin_args, gaussian_blur, twin_grid

SCALARIZERS = ("com_magnitude",)


@functools.partial(jax.jit, static_argnames=("size",))
def _field(key, thickness, size, t_ref, sigma, disorder, max_shift):
    g = gaussian_random_field(key, size, 0.15, dtype=jnp.float32)
    phi = gaussian_blur(thickness / t_ref, sigma) + disorder * g
    grad = jnp.stack(jnp.gradient(phi), -1)
    mag = jnp.sqrt(jnp.sum(grad**2, -1))
    return phi, (max_shift * grad / jnp.max(mag)).astype(jnp.float32)


def disk_pattern(
    shift: Float[Array, " 2"], detector: int, radius: float | Float[Array, ""],
    edge: float | Float[Array, ""],
) -> Float[Array, "k k"]:  # fmt: skip
    """Soft-edged disk centred at the camera centre plus ``shift`` (row, col), unit total."""
    q = jnp.arange(detector, dtype=jnp.float32) - (detector - 1) / 2
    r = jnp.sqrt((q[:, None] - shift[0]) ** 2 + (q[None, :] - shift[1]) ** 2)
    img = jax.nn.sigmoid((radius - r) / edge)
    return (img / jnp.sum(img)).astype(jnp.float32)


class DiffractionTwin(ImageTwin):
    """HAADF image and a shifted convergent-beam diffraction disk at every pixel.

    Build it with :meth:`create`. Hidden truth (scoring only): ``shift`` ``(H, W, 2)`` (the
    disk shift, detector px, row/col), ``potential`` ``(H, W)``, ``particles``, ``thickness``.
    """

    image: Float[Array, "H W"]
    axis: Float[Array, " k"]
    candidates: Float[Array, "m 2"]
    bounds: Float[Array, "2 2"]
    particles: Particles
    thickness: Float[Array, "H W"]
    potential: Float[Array, "H W"]
    shift: Float[Array, "H W 2"]
    disk_radius: Float[Array, ""]
    edge: Float[Array, ""]
    noise: Float[Array, ""]
    dwell: Float[Array, ""]
    speed: Float[Array, ""]
    window: int = eqx.field(static=True)
    detector: int = eqx.field(static=True)
    scalarizer: str = eqx.field(static=True)
    maximize: bool = eqx.field(static=True)
    name: str = eqx.field(static=True)

    @classmethod
    def create(
        cls,
        key: PRNGKeyArray,
        size: int = 128,
        window: int = 16,
        scalarizer: str = "com_magnitude",
        noise: float = 0.01,
        *,
        detector: int = 32,
        disk_radius: float = 6.0,
        edge: float = 0.5,
        max_shift: float = 2.0,
        potential_sigma: float = 2.0,
        disorder: float = 0.1,
        num_particles: int | None = None,
        radius_px: tuple[float, float] = (3.0, 7.0),
        max_aspect: float = 1.6,
        gap: float = 2.0,
        probe_sigma: float = 0.7,
        image_noise: float = 0.02,
        dwell: float = 0.05,
        speed: float = 1.0,
    ) -> DiffractionTwin:
        """A twin drawn from ``key`` (the same key gives the same twin).

        Args:
            key: PRNG key of the particles, the random field and the image noise.
            size: image side in pixels (>= 16).
            window: patch side (static).
            scalarizer: one of :data:`SCALARIZERS`.
            noise: :math:`\\nu`, one over the square root of the electrons per pattern.
            detector, disk_radius, edge: camera side (px), disk radius and edge width (px).
            max_shift: the largest disk shift over the image (detector px).
            potential_sigma, disorder: smoothing (px) of the particles' potential and the
                amplitude of the random-field part.
            num_particles, radius_px, max_aspect, gap, probe_sigma, image_noise: the specimen
                and HAADF image, as in :meth:`~jaxscope.instruments.EELSTwin.create`.
            dwell, speed: cost of one pattern and probe speed (image sides per time unit).
        """
        check_twin_args(size, window, noise, min_size=16, scalarizer=scalarizer,
                        valid=SCALARIZERS, twin="stem4d_twin")  # fmt: skip
        if not 0 < radius_px[0] <= radius_px[1] < size / 4:
            raise ValueError(f"stem4d_twin: radius_px {radius_px} must satisfy 0 < lo <= hi "
                             "< size/4")  # fmt: skip
        if isinstance(detector, bool) or not isinstance(detector, int) or detector < 8:
            raise ValueError(f"stem4d_twin: detector must be an integer >= 8, got {detector!r}")
        if not (disk_radius > 0 and edge > 0 and max_shift >= 0):
            raise ValueError("stem4d_twin: need disk_radius > 0, edge > 0 and max_shift >= 0")
        if disk_radius + max_shift + 4 * edge > (detector - 1) / 2:
            raise ValueError(
                f"stem4d_twin: a disk of radius {disk_radius} shifted by up to {max_shift} px "
                f"leaves the {detector}-px detector (need radius + shift + 4·edge <= "
                f"{(detector - 1) / 2})"
            )
        num = default_num_particles(size) if num_particles is None else int(num_particles)
        f32 = jnp.float32
        k_spec, k_field = jax.random.split(key)
        rp = (float(radius_px[0]), float(radius_px[1]))
        P, t, image = build_particles(k_spec, size, num, rp, float(max_aspect), float(gap),
                                      f32(probe_sigma), f32(image_noise))  # fmt: skip
        phi, shift = _field(k_field, t, size, f32(2 * rp[1]), f32(potential_sigma),
                            f32(disorder), f32(max_shift))  # fmt: skip
        C, bounds = twin_grid(size, window)
        axis = jnp.arange(detector, dtype=f32) - (detector - 1) / 2
        return cls(image, axis, C, bounds, P, t, phi, shift, f32(disk_radius), f32(edge),
                   f32(noise), f32(dwell), f32(speed), window, detector, scalarizer, True,
                   "stem4d_twin")  # fmt: skip

    def clean_spectrum(self, x: Float[Array, " 2"]) -> Float[Array, "k k"]:
        """Noise-free pattern (unit total) with the probe at pixel ``x``."""
        r, c = self.pixel(x)
        return disk_pattern(self.shift[r, c], self.detector, self.disk_radius, self.edge)

    def spectrum(self, key: PRNGKeyArray, x: Float[Array, " 2"]) -> Float[Array, "k k"]:
        """Measured pattern: Poisson counts of ``1/noise²`` electrons on average, rescaled."""
        return poisson_noise(key, self.clean_spectrum(x), self.noise)

    def scalarize(self, spec: Float[Array, "k k"]) -> Float[Array, ""]:
        """COM shift magnitude about the camera centre (detector px)."""
        from .. import scalarizers

        return scalarizers.com_magnitude(spec)
