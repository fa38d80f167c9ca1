"""jaxscope: JAX-native probabilistic programming for autonomous microscopy.

Sub-packages, one concept each: :mod:`jaxscope.gp` (GPs, MAP/NUTS, predictive),
:mod:`jaxscope.decide` (surrogates, policies, selectors, units), :mod:`jaxscope.campaign`
(state, step, compiled scan, metrics), :mod:`jaxscope.host` (journal, runner, agent),
:mod:`jaxscope.instruments` (protocols, adapters, simulators), :mod:`jaxscope.kernels`,
:mod:`jaxscope.probmodels`, :mod:`jaxscope.runtime` and the command line, :mod:`jaxscope.cli`.

Importing jaxscope changes no global JAX setting (float64 stays the user's choice).
"""

from . import campaign, decide, gp, host, instruments, kernels, probmodels, runtime
from .campaign import CampaignConfig, make_config
from .decide import MAPGP, NUTSGP, HeldGP, Policy, Surrogate, make_policy
from .gp import (
    GP,
    GPModel,
    MAPInfo,
    NUTSResult,
    Observations,
    Posterior,
    PredictiveCache,
    Standardizer,
    fit_map,
    fit_nuts,
    map_chunks,
    mixture_moments,
    nuts_summary,
    predict_mixture,
    predict_nuts,
    stack_params,
)
from .host import Agent, HostRunner, Journal, read_journal
from .runtime import blas_threads, enable_compilation_cache, limit_blas_threads

__version__ = "0.1.0"

__all__ = [
    "campaign", "decide", "gp", "host", "instruments", "kernels", "probmodels", "runtime",
    "CampaignConfig", "make_config", "MAPGP", "NUTSGP", "HeldGP", "Policy", "Surrogate",
    "make_policy", "GP", "GPModel", "MAPInfo", "NUTSResult", "Observations", "Posterior",
    "PredictiveCache", "Standardizer", "fit_map", "fit_nuts", "map_chunks", "mixture_moments",
    "nuts_summary", "predict_mixture", "predict_nuts", "stack_params", "Agent", "HostRunner",
    "Journal", "read_journal", "blas_threads", "enable_compilation_cache",
    "limit_blas_threads",
]  # fmt: skip
