"""Gaussian processes: observations, exact GP and posterior, predictive, model families, MAP/NUTS.

One module a concept: :mod:`~jaxscope.gp.observations` (fixed-capacity buffers),
:mod:`~jaxscope.gp.linalg` (jitter, chunked maps, the Gaussian log density),
:mod:`~jaxscope.gp.exact` (:class:`GP`, :class:`Posterior`, :class:`PredictiveCache`),
:mod:`~jaxscope.gp.sampling` (pathwise draws), :mod:`~jaxscope.gp.predictive` (the one chunked,
sample-batched prediction path and :class:`Predictive`), :mod:`~jaxscope.gp.model` (families
with priors), :mod:`~jaxscope.gp.inference` (MAP and NUTS), :mod:`~jaxscope.gp.grids` and
:mod:`~jaxscope.gp.reconstruct` (a surface from sparse pixels), :mod:`~jaxscope.gp.structured`
(physics mean + optional GP residual), :mod:`~jaxscope.gp.criteria` (PSIS-LOO, WAIC, R̂),
:mod:`~jaxscope.gp.gridded` / :mod:`~jaxscope.gp.gridded_fit` (pixel grids with missing pixels:
Kronecker/Toeplitz, PCG, SLQ), :mod:`~jaxscope.gp.scan` (a user's scan in, mean and σ out) and
:mod:`~jaxscope.gp.svgp` (scattered scans of 10⁴–10⁶ points).
"""

from .criteria import LOO, WAIC, gpd_fit, pseudo_bma_weights, psis_loo, split_rhat, waic
from .exact import GP, Posterior, PredictiveCache, cross_covariance, moments_from_solve
from .gridded import GridKernel, GridOperator, mbcg
from .gridded_fit import SolverSettings, fit_grid_map, grid_log_marginal
from .gridded_posterior import grid_posterior
from .gridded_precond import kron_nystrom, lattice_for, pivoted_cholesky
from .grids import grid_points, unit_grid
from .inference import MAPInfo, NUTSResult, fit_map, fit_nuts, nuts_summary, predict_nuts
from .linalg import default_jitter, map_chunks, mean_values, triangular_inverse
from .model import GPModel, ModelFamily, ParametricMean, Params, stack_params
from .observations import Observations, Standardizer
from .predictive import (
    Predictive,
    from_cache,
    from_model,
    from_moments,
    from_posterior,
    from_samples,
    incumbent,
    mixture_moments,
    posterior_draws,
    predict_mixture,
    sample_moments,
)
from .scan import ScanReconstruction, reconstruct_scan, scan_metrics
from .structured import StructuredFamily, loo_log_densities, residual_priors
from .svgp import SVGPPosterior, fit_svgp

__all__ = [
    "GP", "Posterior", "PredictiveCache", "cross_covariance", "moments_from_solve",
    "grid_points", "unit_grid", "MAPInfo", "NUTSResult", "fit_map", "fit_nuts", "nuts_summary",
    "predict_nuts", "default_jitter", "map_chunks", "mean_values", "triangular_inverse",
    "GPModel", "ModelFamily", "ParametricMean", "Params", "stack_params", "Observations",
    "Standardizer", "Predictive", "from_cache", "from_model", "from_moments", "from_posterior",
    "from_samples", "incumbent", "mixture_moments", "posterior_draws", "predict_mixture",
    "sample_moments", "LOO", "WAIC", "gpd_fit", "psis_loo", "pseudo_bma_weights", "split_rhat",
    "waic",
    "StructuredFamily", "loo_log_densities", "residual_priors",
    "GridKernel", "GridOperator", "mbcg", "pivoted_cholesky", "kron_nystrom", "lattice_for",
    "SolverSettings", "fit_grid_map",
    "grid_log_marginal", "grid_posterior", "ScanReconstruction", "reconstruct_scan",
    "scan_metrics", "SVGPPosterior", "fit_svgp",
]  # fmt: skip
