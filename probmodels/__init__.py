"""Physical / parametric models (installed as ``jaxscope.probmodels``).

A :class:`ProbModel` is a pure mean function ``fn(x, params)`` with a numpyro prior per named
parameter; the factories below build the physics zoo with default priors (any prior can be
overridden by keyword, e.g. ``second_order(xc=dist.Uniform(0.2, 0.8))``).
"""

from .base import RESERVED_NAMES, ProbModel, resolve_priors
from .compose import piecewise, sum_of
from .domains import log_time_growth, nucleation_growth, power_law_growth
from .guards import clamped_reciprocal, positive_log, positive_power
from .hysteresis import hysteresis_loop
from .ising import ising_tanh
from .ordered import OrderedInterval, OrderedUniform, ordered_interval_transform
from .peaks import gaussian_peaks, lorentzian_peaks, minima, two_minima
from .powerlaws import (
    linear_branches,
    piecewise_linear_linear,
    piecewise_power_linear,
    piecewise_power_power,
    power_law,
)
from .transitions import first_order, second_order, smeared

__all__ = [
    "RESERVED_NAMES",
    "OrderedInterval",
    "OrderedUniform",
    "ProbModel",
    "clamped_reciprocal",
    "first_order",
    "gaussian_peaks",
    "hysteresis_loop",
    "ising_tanh",
    "linear_branches",
    "log_time_growth",
    "lorentzian_peaks",
    "minima",
    "nucleation_growth",
    "ordered_interval_transform",
    "piecewise",
    "piecewise_linear_linear",
    "piecewise_power_linear",
    "piecewise_power_power",
    "positive_log",
    "positive_power",
    "power_law",
    "power_law_growth",
    "resolve_priors",
    "second_order",
    "smeared",
    "sum_of",
    "two_minima",
]
