"""Scalarizers: a measurement (a hysteresis loop, a spectrum, a diffraction pattern, a phase
image) reduced to the one number a campaign optimises. Pure JAX functions: jit, vmap (over probe
positions) and, where the quantity is smooth, grad.

* loops (:mod:`.loops`): :func:`loop_area` (shoelace, real and combined real/imaginary),
  :func:`quarter_loop_area` (the quarter-cycle proxy of automated BEPS experiments),
  :func:`coercive_fields`, :func:`coercive_width`, :func:`imprint`.
* spectra (:mod:`.spectra`): :func:`window_sum`, :func:`window_integral`, :func:`peak_ratio`,
  :func:`peak_energy`.
* images (:mod:`.images`): :func:`com_shift`, :func:`com_magnitude`, :func:`domain_radius`.

:data:`SCALARIZERS` names the scalar-valued ones for the command line.
"""

from .images import com_magnitude, com_shift, domain_radius
from .loops import coercive_fields, coercive_width, imprint, loop_area, quarter_loop_area
from .spectra import peak_energy, peak_ratio, window_integral, window_sum

# name -> function, for the command line; each returns one number per measurement
SCALARIZERS = {
    "loop_area": loop_area,
    "quarter_loop_area": quarter_loop_area,
    "coercive_width": coercive_width,
    "imprint": imprint,
    "window_sum": window_sum,
    "peak_ratio": peak_ratio,
    "peak_energy": peak_energy,
    "com_magnitude": com_magnitude,
    "domain_radius": domain_radius,
}

__all__ = [
    "loop_area", "quarter_loop_area", "coercive_fields", "coercive_width", "imprint",
    "window_sum", "window_integral", "peak_ratio", "peak_energy", "com_shift", "com_magnitude",
    "domain_radius", "SCALARIZERS",
]  # fmt: skip
