"""Peaks and minima: sums of Lorentzian / Gaussian peaks and of inverse-distance minima.

Components are exchangeable, so their positions ``x0`` have an :class:`OrderedUniform` prior
(``x0[0] < x0[1] < ...``): the posterior has one mode instead of ``n!`` label-swapped copies.
Every vector parameter (``A``, widths, ``x0``) has length ``n``. Inputs are 1-D, ``x ∈ (0, 1)``
for the default priors.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro.distributions as dist

from .base import ProbModel, resolve_priors
from .ordered import OrderedUniform


def _check_n(n: int, model: str) -> int:
    if int(n) < 1:
        raise ValueError(f"{model}: need n >= 1 components, got {n}")
    return int(n)


def lorentzian_peaks(n: int = 1, **priors: dist.Distribution) -> ProbModel:
    r"""Sum of ``n`` Lorentzian peaks on a constant background.

    .. math::
        f(x) = c + \sum_{k=1}^{n} A_k \frac{\gamma_k^2}{(x - x_{0,k})^2 + \gamma_k^2}

    (``A_k`` peak heights, ``γ_k`` half widths at half maximum.) Default priors:
    ``A ~ LogNormal(0, 1)``, ``gamma ~ HalfNormal(0.1)`` (each of length n),
    ``x0 ~ OrderedUniform(0, 1, n)``, ``c ~ Normal(0, 1)``. The peak hypotheses of structured-GP
    spectroscopy (Ziatdinov, Ghosh, Kalinin, "Physics makes the difference: Bayesian optimization
    and active learning via augmented Gaussian process", Mach. Learn.: Sci. Technol. 3, 015003
    (2022)).

    Example:
        >>> m = lorentzian_peaks(2, c=dist.Normal(0.0, 0.1))
    """
    n = _check_n(n, "lorentzian_peaks")
    defaults = {
        "A": dist.LogNormal(0.0, 1.0).expand([n]),
        "gamma": dist.HalfNormal(0.1).expand([n]),
        "x0": OrderedUniform(0.0, 1.0, n),
        "c": dist.Normal(0.0, 1.0),
    }

    def fn(x, p):
        g2 = p["gamma"] ** 2
        return p["c"] + jnp.sum(p["A"] * g2 / ((x[0] - p["x0"]) ** 2 + g2))

    pri = resolve_priors(defaults, priors, "lorentzian_peaks")
    return ProbModel(fn, pri, dim=1, domain=((0.0, 1.0),), name="lorentzian_peaks")


def gaussian_peaks(n: int = 1, **priors: dist.Distribution) -> ProbModel:
    r"""Sum of ``n`` Gaussian peaks on a constant background.

    .. math::
        f(x) = c + \sum_{k=1}^{n} A_k \exp\!\left(-\frac{(x - x_{0,k})^2}{2\sigma_k^2}\right)

    Default priors: ``A ~ LogNormal(0, 1)``, ``sigma ~ HalfNormal(0.1)`` (length n),
    ``x0 ~ OrderedUniform(0, 1, n)``, ``c ~ Normal(0, 1)`` (as in the peak hypotheses of
    Ziatdinov, Ghosh, Kalinin, Mach. Learn.: Sci. Technol. 3, 015003 (2022)).
    """
    n = _check_n(n, "gaussian_peaks")
    defaults = {
        "A": dist.LogNormal(0.0, 1.0).expand([n]),
        "sigma": dist.HalfNormal(0.1).expand([n]),
        "x0": OrderedUniform(0.0, 1.0, n),
        "c": dist.Normal(0.0, 1.0),
    }

    def fn(x, p):
        z = (x[0] - p["x0"]) / p["sigma"]
        return p["c"] + jnp.sum(p["A"] * jnp.exp(-0.5 * z**2))

    pri = resolve_priors(defaults, priors, "gaussian_peaks")
    return ProbModel(fn, pri, dim=1, domain=((0.0, 1.0),), name="gaussian_peaks")


def minima(n: int = 2, **priors: dist.Distribution) -> ProbModel:
    r"""``n`` inverse-distance minima below a baseline.

    .. math::
        f(x) = y_0 - \sum_{k=1}^{n} \frac{A_k}{\sqrt{(x - x_{0,k})^2 + w_k^2}}

    Default priors: ``A ~ LogNormal(0, 1)``, ``w ~ HalfNormal(0.1)`` (length n),
    ``x0 ~ OrderedUniform(0, 1, n)``, ``y0 ~ Uniform(-10, 10)``. The two-minima structured mean
    of gpax's structured-GP example (Ziatdinov, Ghosh, Kalinin, Mach. Learn.: Sci. Technol. 3,
    015003 (2022); protocol B4 here), with the positions ordered to remove label switching.
    """
    n = _check_n(n, "minima")
    defaults = {
        "A": dist.LogNormal(0.0, 1.0).expand([n]),
        "w": dist.HalfNormal(0.1).expand([n]),
        "x0": OrderedUniform(0.0, 1.0, n),
        "y0": dist.Uniform(-10.0, 10.0),
    }

    def fn(x, p):
        return p["y0"] - jnp.sum(p["A"] / jnp.sqrt((x[0] - p["x0"]) ** 2 + p["w"] ** 2))

    pri = resolve_priors(defaults, priors, "minima")
    return ProbModel(fn, pri, dim=1, domain=((0.0, 1.0),), name="minima")


def two_minima(**priors: dist.Distribution) -> ProbModel:
    """:func:`minima` with ``n = 2``: ``y0 − A_1/√((x−x0_1)²+w_1²) − A_2/√((x−x0_2)²+w_2²)``.

    Parameters ``A``, ``w``, ``x0`` (length 2, ``x0`` ordered) and ``y0``.
    """
    return minima(2, **priors)
