"""Ferroelectric domain-growth laws: domain radius ``r`` vs write bias ``V`` and pulse time ``τ``.

Competing hypotheses for tip-written domains (Liu, Morozovska, Eliseev, Kelley, Vasudevan,
Ziatdinov, Kalinin, "Autonomous scanning probe microscopy with hypothesis learning: exploring the
physics of domain switching in ferroelectric materials", Patterns 4, 100704 (2023); the
thermodynamic nucleation threshold after Molotskii / Kalinin et al., and Kittel-type growth):

* :func:`nucleation_growth` — input ``V`` (1-D): a stable domain exists only above a threshold
  bias ``V_c``.
* :func:`log_time_growth` — input ``τ`` (1-D, ``τ > 0``): logarithmic (creep-like) growth.
* :func:`power_law_growth` — input ``(V, τ)`` (2-D, both ``> 0``): ``r = k V^α τ^γ``.

Fractional powers and logs go through :mod:`guards`, so gradients are finite everywhere.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpyro.distributions as dist

from .base import ProbModel, resolve_priors
from .guards import positive_log, positive_power


def nucleation_growth(**priors: dist.Distribution) -> ProbModel:
    r"""Threshold nucleation: no domain below ``V_c``, cube-root growth above it.

    .. math::
        r(V) = \begin{cases} r_c + r_0 \left((V/V_c)^2 - 1\right)^{1/3} & |V| > V_c \\
               0 & |V| \le V_c \end{cases}

    (``r_c`` the critical radius of the smallest stable domain, reached at the threshold.)
    Default priors (``V`` in volts, ``r`` in units of ~100 nm): ``Vc ~ Uniform(0.5, 3)``,
    ``rc ~ HalfNormal(0.5)``, ``r0 ~ LogNormal(0, 0.5)``.
    """
    defaults = {
        "Vc": dist.Uniform(0.5, 3.0),
        "rc": dist.HalfNormal(0.5),
        "r0": dist.LogNormal(0.0, 0.5),
    }

    def fn(x, p):
        u = (x[0] / p["Vc"]) ** 2 - 1.0
        return jnp.where(u > 0, p["rc"] + p["r0"] * positive_power(u, 1.0 / 3.0), 0.0)

    pri = resolve_priors(defaults, priors, "nucleation_growth")
    return ProbModel(fn, pri, dim=1, domain=((0.0, 5.0),), name="nucleation_growth")


def log_time_growth(tau0: float = 1.0, **priors: dist.Distribution) -> ProbModel:
    r"""Logarithmic growth in pulse time: ``r(τ) = a + b · log(τ / τ_0)`` for ``τ > 0``.

    ``τ_0`` is a fixed time unit (``a`` and ``τ_0`` are not separately identifiable); ``log`` of
    ``τ ≤ 0`` is taken as ``0``. Default priors: ``a ~ Normal(1, 1)``, ``b ~ HalfNormal(0.5)``.

    Args:
        tau0: reference time (same unit as ``τ``).
    """
    if not tau0 > 0:
        raise ValueError(f"log_time_growth: tau0 must be > 0, got {tau0}")
    defaults = {"a": dist.Normal(1.0, 1.0), "b": dist.HalfNormal(0.5)}
    log_tau0 = math.log(tau0)

    def fn(x, p):
        return p["a"] + p["b"] * (positive_log(x[0]) - log_tau0)

    pri = resolve_priors(defaults, priors, "log_time_growth")
    return ProbModel(fn, pri, dim=1, domain=((1e-3, 10.0),), name="log_time_growth")


def power_law_growth(**priors: dist.Distribution) -> ProbModel:
    r"""Power law in bias and time: ``r(V, τ) = k · V^α · τ^γ`` (input ``(V, τ)``, both > 0).

    Non-positive ``V`` or ``τ`` give ``r = 0``. Default priors: ``k ~ LogNormal(0, 1)``,
    ``alpha ~ Normal(1, 0.5)``, ``gamma ~ Normal(0.3, 0.2)``.
    """
    defaults = {
        "k": dist.LogNormal(0.0, 1.0),
        "alpha": dist.Normal(1.0, 0.5),
        "gamma": dist.Normal(0.3, 0.2),
    }

    def fn(x, p):
        return p["k"] * positive_power(x[0], p["alpha"]) * positive_power(x[1], p["gamma"])

    pri = resolve_priors(defaults, priors, "power_law_growth")
    return ProbModel(fn, pri, dim=2, domain=((0.5, 5.0), (1e-3, 10.0)), name="power_law_growth")
