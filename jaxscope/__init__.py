"""jaxscope: JAX-native probabilistic programming for autonomous microscopy.

Importing jaxscope changes no global JAX setting (float64 stays the user's choice).
"""

# Higher layers, importable as jaxscope.acquisition, jaxscope.campaign, ... (one module a concept).
from . import (
    acquisition,
    agent,
    batch,
    campaign,
    compiled,
    instruments,
    kernels,
    penalties,
    predictive,
    strategies,
)
from .agent import Agent
from .blas import blas_threads, limit_blas_threads
from .campaign_config import CampaignConfig, make_config
from .gp import GP, Posterior, PredictiveCache, map_chunks, mixture_moments, predict_mixture
from .host import HostRunner
from .inference import MAPInfo, NUTSResult, fit_map, fit_nuts, nuts_summary, predict_nuts
from .journal import Journal, read_journal
from .model import GPModel, stack_params
from .observations import Observations, Standardizer

__version__ = "0.1.0"

__all__ = [
    "kernels",
    "GP",
    "Posterior",
    "PredictiveCache",
    "map_chunks",
    "mixture_moments",
    "predict_mixture",
    "MAPInfo",
    "NUTSResult",
    "fit_map",
    "fit_nuts",
    "nuts_summary",
    "predict_nuts",
    "GPModel",
    "stack_params",
    "Observations",
    "Standardizer",
    "enable_compilation_cache",
    "acquisition",
    "agent",
    "batch",
    "campaign",
    "compiled",
    "instruments",
    "penalties",
    "predictive",
    "strategies",
    "Agent",
    "CampaignConfig",
    "make_config",
    "HostRunner",
    "Journal",
    "read_journal",
    "limit_blas_threads",
    "blas_threads",
]


def enable_compilation_cache(path: str | None = None) -> str:
    """Turn on JAX's persistent compilation cache (opt-in; never done on import).

    A new process then loads compiled NUTS/MAP programs from disk instead of recompiling.
    Default location: ``$JAXSCOPE_CACHE`` or ``~/.cache/jaxscope/xla``.

    It also makes numpyro flatten a distribution's fields in sorted order: numpyro collects them
    in a ``set``, whose order depends on ``PYTHONHASHSEED``, so the arguments of a compiled
    program (a model's priors are traced) came in a different order in about half of new
    processes and the disk cache missed. Sorting changes no value, only that order.
    """
    import os

    import jax

    path = path or os.environ.get("JAXSCOPE_CACHE") or os.path.expanduser("~/.cache/jaxscope/xla")
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    _deterministic_numpyro_flattening()
    return path


def _deterministic_numpyro_flattening() -> None:
    import jax
    from numpyro.distributions import Distribution

    changed = False
    for name in ("gather_pytree_data_fields", "gather_pytree_aux_fields"):
        fn = getattr(Distribution, name).__func__
        if getattr(fn, "_jaxscope_sorted", False):
            continue

        def gather(cls, _fn=fn):
            return tuple(sorted(_fn(cls)))

        gather._jaxscope_sorted = True
        setattr(Distribution, name, classmethod(gather))
        changed = True
    if changed:  # programs traced with the old order must not be reused with the new one
        jax.clear_caches()
