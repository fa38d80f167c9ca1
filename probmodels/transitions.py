"""Phase transitions in a composition variable ``x`` (an order parameter vs composition).

Three competing hypotheses for a property measured across a combinatorial library, as in
Ziatdinov, Liu, Morozovska, Eliseev, Zhang, Takeuchi, Kalinin, "Hypothesis learning in automated
experiment: application to combinatorial materials libraries", Adv. Mater. 34, 2201345 (2022):
a second-order transition (continuous, critical exponent ``beta``), a first-order transition
(a jump ``J`` at ``xc``) and a smeared (diffuse) transition. Inputs are 1-D, ``x ∈ [0, 1]``.

``(1 − x/xc)^β`` is a fractional power of a negative number beyond ``xc``; the power is taken
with :func:`positive_power` (the double-``where`` guard), so values and gradients with respect to
``x`` and every parameter are finite below, exactly at and beyond ``xc``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpyro.distributions as dist

from .base import ProbModel, resolve_priors
from .guards import positive_power

DOMAIN = ((0.0, 1.0),)


def second_order(**priors: dist.Distribution) -> ProbModel:
    r"""Second-order (continuous) transition at ``xc`` with critical exponent ``beta``.

    .. math::
        f(x) = \begin{cases} S_0 (1 - x/x_c)^{\beta} + C & x < x_c \\ C & x \ge x_c \end{cases}

    Default priors: ``xc ~ Uniform(0.3, 0.7)``, ``beta ~ Uniform(0.1, 1.0)``,
    ``S0 ~ LogNormal(0, 0.5)``, ``C ~ Normal(0, 1)``.
    """
    defaults = {
        "xc": dist.Uniform(0.3, 0.7),
        "beta": dist.Uniform(0.1, 1.0),
        "S0": dist.LogNormal(0.0, 0.5),
        "C": dist.Normal(0.0, 1.0),
    }

    def fn(x, p):
        return p["C"] + p["S0"] * positive_power(1.0 - x[0] / p["xc"], p["beta"])

    pri = resolve_priors(defaults, priors, "second_order")
    return ProbModel(fn, pri, dim=1, domain=DOMAIN, name="second_order")


def first_order(**priors: dist.Distribution) -> ProbModel:
    r"""First-order transition: a jump ``J`` at ``xc`` on top of a ``5/4``-power decay.

    .. math::
        f(x) = \begin{cases} C + J + S_0 (1 - x/x_c)^{5/4} & x < x_c \\ C & x \ge x_c \end{cases}

    Default priors: ``xc ~ Uniform(0.3, 0.7)``, ``S0 ~ LogNormal(0, 0.5)``,
    ``J ~ LogNormal(log 0.3, 0.5)``, ``C ~ Normal(0, 1)``.
    """
    defaults = {
        "xc": dist.Uniform(0.3, 0.7),
        "S0": dist.LogNormal(0.0, 0.5),
        "J": dist.LogNormal(math.log(0.3), 0.5),
        "C": dist.Normal(0.0, 1.0),
    }

    def fn(x, p):
        u = 1.0 - x[0] / p["xc"]
        below = p["J"] + p["S0"] * positive_power(u, 1.25)
        return p["C"] + jnp.where(x[0] < p["xc"], below, 0.0)

    pri = resolve_priors(defaults, priors, "first_order")
    return ProbModel(fn, pri, dim=1, domain=DOMAIN, name="first_order")


def smeared(**priors: dist.Distribution) -> ProbModel:
    r"""Smeared (diffuse) transition: a logistic step of width ``w`` at ``xc``.

    .. math::
        f(x) = C + S_0 \, \mathrm{sigmoid}\!\left(\frac{x_c - x}{w}\right)

    Default priors: ``xc ~ Uniform(0.3, 0.7)``, ``S0 ~ LogNormal(0, 0.5)``,
    ``w ~ HalfNormal(0.05)``, ``C ~ Normal(0, 1)``.
    """
    defaults = {
        "xc": dist.Uniform(0.3, 0.7),
        "S0": dist.LogNormal(0.0, 0.5),
        "w": dist.HalfNormal(0.05),
        "C": dist.Normal(0.0, 1.0),
    }

    def fn(x, p):
        return p["C"] + p["S0"] * jax.nn.sigmoid((p["xc"] - x[0]) / p["w"])

    pri = resolve_priors(defaults, priors, "smeared")
    return ProbModel(fn, pri, dim=1, domain=DOMAIN, name="smeared")
