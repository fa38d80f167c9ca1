"""Power laws, piecewise power laws at a sampled breakpoint, and two continuous line branches.

The piecewise models are the three candidates of the hypothesis-learning protocol B7 (gpax's
``hypo`` example, after Ziatdinov, Liu, Kelley, Vasudevan, Kalinin, "Bayesian active learning
for scanning probe microscopy: from Gaussian processes to hypothesis learning", ACS Nano 16,
13492 (2022)): gpax's ``pw1`` is :func:`piecewise_power_linear`, ``pw2``
:func:`piecewise_linear_linear` and ``pw3`` :func:`piecewise_power_power`. Inputs are 1-D; the
default priors are scaled for ``x ∈ [0, 2.5]``. Powers ``x^β`` are taken with
:func:`positive_power`, i.e. defined as ``0`` for ``x ≤ 0`` (finite gradients there).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro.distributions as dist

from .base import ProbModel, resolve_priors
from .guards import positive_power

B7_DOMAIN = ((0.0, 2.5),)


def power_law(offset: bool = True, **priors: dist.Distribution) -> ProbModel:
    r"""``f(x) = a · x^b (+ c)`` for ``x > 0``.

    Default priors: ``a ~ LogNormal(0, 1)``, ``b ~ Normal(1, 0.5)`` and, with ``offset``,
    ``c ~ Normal(0, 1)``.

    Args:
        offset: include the constant ``c``.
    """
    defaults = {"a": dist.LogNormal(0.0, 1.0), "b": dist.Normal(1.0, 0.5)}
    if offset:
        defaults["c"] = dist.Normal(0.0, 1.0)

    def fn(x, p):
        return p["a"] * positive_power(x[0], p["b"]) + (p["c"] if offset else 0.0)

    pri = resolve_priors(defaults, priors, "power_law")
    return ProbModel(fn, pri, dim=1, domain=((0.0, 1.0),), name="power_law")


def piecewise_power_linear(**priors: dist.Distribution) -> ProbModel:
    r"""gpax B7 ``pw1``: ``f(x) = x^β`` for ``x < t``, ``c·x`` for ``x ≥ t``.

    Default priors: ``t ~ Uniform(0.5, 2)``, ``beta ~ Normal(3, 1)``, ``c ~ Normal(3, 1)``.
    """
    defaults = {
        "t": dist.Uniform(0.5, 2.0),
        "beta": dist.Normal(3.0, 1.0),
        "c": dist.Normal(3.0, 1.0),
    }

    def fn(x, p):
        return jnp.where(x[0] < p["t"], positive_power(x[0], p["beta"]), p["c"] * x[0])

    pri = resolve_priors(defaults, priors, "piecewise_power_linear")
    return ProbModel(fn, pri, dim=1, domain=B7_DOMAIN, name="piecewise_power_linear")


def piecewise_linear_linear(**priors: dist.Distribution) -> ProbModel:
    r"""gpax B7 ``pw2``: ``f(x) = b·x`` for ``x < t``, ``c·x`` for ``x ≥ t``.

    Default priors: ``t ~ Uniform(0.5, 2)``, ``b ~ Normal(3, 1)``, ``c ~ Normal(3, 1)``.
    """
    defaults = {
        "t": dist.Uniform(0.5, 2.0),
        "b": dist.Normal(3.0, 1.0),
        "c": dist.Normal(3.0, 1.0),
    }

    def fn(x, p):
        return jnp.where(x[0] < p["t"], p["b"] * x[0], p["c"] * x[0])

    pri = resolve_priors(defaults, priors, "piecewise_linear_linear")
    return ProbModel(fn, pri, dim=1, domain=B7_DOMAIN, name="piecewise_linear_linear")


def piecewise_power_power(**priors: dist.Distribution) -> ProbModel:
    r"""gpax B7 ``pw3``: ``f(x) = x^{β_1}`` for ``x < t``, ``x^{β_2}`` for ``x ≥ t``.

    Default priors: ``t ~ Uniform(0.5, 2)``, ``beta1 ~ Normal(3, 1)``, ``beta2 ~ Normal(3, 1)``.
    """
    defaults = {
        "t": dist.Uniform(0.5, 2.0),
        "beta1": dist.Normal(3.0, 1.0),
        "beta2": dist.Normal(3.0, 1.0),
    }

    def fn(x, p):
        below = positive_power(x[0], p["beta1"])
        return jnp.where(x[0] < p["t"], below, positive_power(x[0], p["beta2"]))

    pri = resolve_priors(defaults, priors, "piecewise_power_power")
    return ProbModel(fn, pri, dim=1, domain=B7_DOMAIN, name="piecewise_power_power")


def linear_branches(**priors: dist.Distribution) -> ProbModel:
    r"""Two straight lines meeting (continuously) at a breakpoint ``t``.

    .. math::
        f(x) = y_t + \begin{cases} s_1 (x - t) & x < t \\ s_2 (x - t) & x \ge t \end{cases}

    Default priors: ``t ~ Uniform(0, 1)``, ``yt ~ Normal(0, 1)`` (the value at the break),
    ``s1 ~ Normal(0, 1)``, ``s2 ~ Normal(0, 1)``.
    """
    defaults = {
        "t": dist.Uniform(0.0, 1.0),
        "yt": dist.Normal(0.0, 1.0),
        "s1": dist.Normal(0.0, 1.0),
        "s2": dist.Normal(0.0, 1.0),
    }

    def fn(x, p):
        d = x[0] - p["t"]
        return p["yt"] + jnp.where(d < 0, p["s1"], p["s2"]) * d

    pri = resolve_priors(defaults, priors, "linear_branches")
    return ProbModel(fn, pri, dim=1, domain=((0.0, 1.0),), name="linear_branches")
