"""The 9-parameter ferroelectric hysteresis-loop function (BEPS / SS-PFM loop fitting).

The loop of switching spectroscopy PFM (Jesse, Baddorf, Kalinin, "Switching spectroscopy
piezoresponse force microscopy of ferroelectric materials", Appl. Phys. Lett. 88, 062908 (2006);
Jesse, Lee, Kalinin, Rev. Sci. Instrum. 77, 073702 (2006); Jesse et al., Nanotechnology 19,
175704 (2008)) in the form of pycroscopy / BGlib's ``loop_fit_function``. Each branch ``j`` of
the cycle rises from ``a0 + a4·V`` to ``a0 + a1 + a4·V`` around its coercive voltage, with a
width ``b`` on each side of it:

    g(V)  = (b_hi − b_lo)/2 · (erf(d·(V − V_c)) + 1) + b_lo           (width, b_lo → b_hi at V_c)
    y(V)  = (g · erf((V − V_c)/g) + b_lo) / (b_lo + b_hi)             (0 → 1)
    f(V)  = a0 + a1 · y(V) + a4 · V

with ``(V_c, b_lo, b_hi) = (a2, b0, b1)`` on branch 0 (pycroscopy's first half of the cycle,
``v1``) and ``(a3, b2, b3)`` on branch 1 (the second half, ``v2``); ``d`` (default 1000, as in
pycroscopy) sets how sharply the width switches at ``V_c``. ``y`` is continuous with a
continuous slope at ``V_c`` for any ``d``.

Input: ``x = (V, branch)`` with ``branch`` 0 or 1 (rows with ``branch < 0.5`` are on branch 0),
so a full cycle is two stacked sweeps ``[(V_i, 0)] + [(V_i, 1)]``.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import jax.scipy.special as jsp
import numpyro.distributions as dist

from .base import ProbModel, resolve_priors


def hysteresis_loop(d: float = 1000.0, **priors: dist.Distribution) -> ProbModel:
    r"""The 9-parameter hysteresis-loop model ``f(V, branch)`` (see the module docstring).

    Parameters (pycroscopy's names): ``a0`` offset, ``a1`` loop height, ``a2`` / ``a3`` the
    coercive voltages of branch 0 / 1, ``a4`` linear (electrostatic) slope, ``b0``..``b3`` the
    switching widths. Default priors (voltage normalised to ``V ∈ [-1, 1]``):
    ``a0 ~ Normal(0, 1)``, ``a1 ~ LogNormal(0, 0.5)``, ``a2, a3 ~ Normal(0, 0.5)``,
    ``a4 ~ Normal(0, 0.1)``, ``b0..b3 ~ LogNormal(log 0.2, 0.5)``.

    Args:
        d: sharpness of the width switch at the coercive voltage (a constant, not fitted).
    """
    width = dist.LogNormal(math.log(0.2), 0.5)
    defaults = {
        "a0": dist.Normal(0.0, 1.0),
        "a1": dist.LogNormal(0.0, 0.5),
        "a2": dist.Normal(0.0, 0.5),
        "a3": dist.Normal(0.0, 0.5),
        "a4": dist.Normal(0.0, 0.1),
        "b0": width,
        "b1": width,
        "b2": width,
        "b3": width,
    }

    def rise(v, vc, b_lo, b_hi):
        g = 0.5 * (b_hi - b_lo) * (jsp.erf((v - vc) * d) + 1.0) + b_lo
        return (g * jsp.erf((v - vc) / g) + b_lo) / (b_lo + b_hi)

    def fn(x, p):
        v = x[0]
        y0 = rise(v, p["a2"], p["b0"], p["b1"])
        y1 = rise(v, p["a3"], p["b2"], p["b3"])
        y = jnp.where(x[1] < 0.5, y0, y1)
        return p["a0"] + p["a1"] * y + p["a4"] * v

    pri = resolve_priors(defaults, priors, "hysteresis_loop")
    return ProbModel(fn, pri, dim=2, domain=((-1.0, 1.0), (0.0, 1.0)), name="hysteresis_loop")
