r"""Sparse-scan reconstruction: a surface from a random fraction of its pixels with an exact GP.

Pipeline (:func:`reconstruct`):

1. measure a uniformly random ``fraction`` of the pixels, :math:`y_i = h(x_i) + \varepsilon_i`,
   :math:`\varepsilon_i \sim N(0, \sigma_n^2)`;
2. MAP hyperparameters of :meth:`GPModel.default` (priors scaled to the data) on a random subset
   of at most ``fit_points`` measurements, at a fraction of the O(N³) cost per step. Keep the
   subset dense: when the kernel's smoothness is misspecified the fitted lengthscale grows as
   the sampling gets sparser (512 of 1638 points gave longer lengthscales and ±2σ coverage
   0.90 instead of 0.92 with Matérn-5/2);
3. condition on *all* measurements and predict mean and σ of the noise-free surface on the full
   grid in chunks (O(N · chunk) memory); draw posterior function samples by pathwise
   conditioning (Matheron's rule with random Fourier features), never forming a grid × grid
   covariance;
4. score against the truth: RMSE and calibration, the fraction of pixels with
   :math:`|h - \mu| \le 2\sigma` (0.954 for a calibrated Gaussian predictive).

Steps 3–4 run as one jitted program; the command line's ``jaxscope.cli.reconstruct`` writes a PNG
(truth, measured pixels, a posterior sample, mean, σ), the metrics as JSON and the arrays as
``.npz``.

Example:
    >>> h = make_surface(jax.random.key(0), 64)
    >>> rec = reconstruct(jax.random.key(1), h, fraction=0.1)
    >>> rec.metrics["rmse"], rec.metrics["calibration"]
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from ..kernels import by_name
from ..runtime.jit import jit
from .grids import grid_points
from .inference import MAPInfo, fit_map
from .model import GPModel
from .observations import Observations


class Reconstruction(NamedTuple):
    """Result of :func:`reconstruct` (images are ``(size, size)``, row-major like the grid)."""

    truth: Float[Array, "size size"]
    indices: Int[Array, " n"]  # flat indices of the measured pixels
    measured: Float[Array, " n"]  # noisy measurements at those pixels
    mean: Float[Array, "size size"]
    std: Float[Array, "size size"]
    samples: Float[Array, "s size size"]
    params: dict[str, Array]
    info: MAPInfo
    metrics: dict[str, float]


def reconstruction_metrics(
    truth: Float[Array, "size size"],
    mean: Float[Array, "size size"],
    std: Float[Array, "size size"],
    measured: Bool[Array, "size size"],
) -> dict[str, Array]:
    r"""RMSE and ±2σ coverage, over all pixels and over the unmeasured ones.

    ``rmse = sqrt(mean((μ - h)²))``; ``calibration = mean(|h - μ| ≤ 2σ)``; ``nrmse`` divides the
    RMSE by the truth's standard deviation; ``mean_z2 = mean(((h - μ)/σ)²)`` is 1 when σ is right
    on average.
    """
    err = mean - truth
    inside = jnp.abs(err) <= 2.0 * std
    unm = ~measured
    n_unm = jnp.maximum(jnp.sum(unm), 1)
    rmse = jnp.sqrt(jnp.mean(err**2))
    return {
        "rmse": rmse,
        "nrmse": rmse / jnp.std(truth),
        "rmse_unmeasured": jnp.sqrt(jnp.sum(jnp.where(unm, err**2, 0.0)) / n_unm),
        "calibration": jnp.mean(inside),
        "calibration_unmeasured": jnp.sum(inside & unm) / n_unm,
        "mean_z2": jnp.mean((err / jnp.maximum(std, 1e-12)) ** 2),
        "mean_std": jnp.mean(std),
        "truth_std": jnp.std(truth),
    }


@jit
def _posterior_maps(model, params, obs, X, key, truth, measured, num_samples, chunk_size):
    post = model.build(params).condition(obs)
    mean, var = post.predict(X, chunk_size=chunk_size)
    samples = post.sample(key, X, num_samples, method="pathwise", chunk_size=chunk_size)
    size = truth.shape[0]
    mean, std = mean.reshape(size, size), jnp.sqrt(var).reshape(size, size)
    metrics = reconstruction_metrics(truth, mean, std, measured)
    return mean, std, samples.reshape(num_samples, size, size), metrics


def reconstruct(
    key: PRNGKeyArray,
    surface: ArrayLike,
    fraction: float = 0.1,
    kernel: str = "matern32",
    *,
    noise_std: float = 0.05,
    num_samples: int = 3,
    fit_points: int = 1024,
    map_steps: int = 100,
    chunk_size: int = 2048,
) -> Reconstruction:
    """Reconstruct ``surface`` from a random ``fraction`` of its pixels with a GP.

    Args:
        key: PRNG key (pixel choice, measurement noise, fit subset, posterior samples).
        surface: ``(size, size)`` ground truth, e.g. from :func:`make_surface`.
        fraction: share of pixels measured, in ``(0, 1]``.
        kernel: stationary kernel name (``"matern32"``, ``"matern52"``, ``"rbf"``, ...). The
            default Matérn-3/2 is calibrated on surfaces with sharp steps and particle rims
            (±2σ coverage ≈ 0.95 at 128², 10 %); the smoother Matérn-5/2 is overconfident at
            the edges (≈ 0.91–0.92) and no more accurate.
        noise_std: standard deviation of the Gaussian measurement noise (surface units).
        num_samples: posterior function draws over the full grid.
        fit_points: the MAP fit uses at most this many of the measurements (random subset).
        map_steps: maximum L-BFGS iterations.
        chunk_size: grid points per prediction chunk.

    Returns:
        A :class:`Reconstruction` with mean, σ, samples, hyperparameters and ``metrics`` (floats).

    Raises:
        ValueError: non-square or non-finite surface, fraction out of range, unknown kernel.
    """
    by_name(kernel)  # unknown names fail here, listing the known ones
    h = jnp.asarray(surface)
    if h.ndim != 2 or h.shape[0] != h.shape[1] or h.shape[0] < 4:
        raise ValueError(f"surface must be a square (size, size) image, size >= 4; got {h.shape}")
    if not jnp.issubdtype(h.dtype, jnp.floating):
        h = h.astype(jnp.result_type(float))
    if not bool(jnp.all(jnp.isfinite(h))):
        raise ValueError("surface contains NaN or inf")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if num_samples < 1 or fit_points < 2 or chunk_size < 1:
        raise ValueError("num_samples, chunk_size must be >= 1 and fit_points >= 2")
    size, dtype = h.shape[0], h.dtype
    m = size * size
    n = max(2, int(round(fraction * m)))

    k_pix, k_noise, k_fit, k_samp = jax.random.split(key, 4)
    X = grid_points(size, dtype)
    idx = jnp.sort(jax.random.permutation(k_pix, m)[:n])
    y = h.ravel()[idx] + noise_std * jax.random.normal(k_noise, (n,), dtype)
    obs = Observations.from_arrays(X[idx], y, dtype=dtype)

    model = GPModel.default(np.asarray(X[idx]), np.asarray(y), kernel)
    sub = jax.random.permutation(k_fit, n)[: min(n, fit_points)]
    params, info = fit_map(
        model, Observations.from_arrays(X[idx][sub], y[sub], dtype=dtype), num_steps=map_steps
    )

    measured = jnp.zeros((m,), bool).at[idx].set(True).reshape(size, size)
    mean, std, samples, metrics = _posterior_maps(
        model, params, obs, X, k_samp, h, measured, num_samples, chunk_size
    )
    return Reconstruction(
        truth=h,
        indices=idx,
        measured=y,
        mean=mean,
        std=std,
        samples=samples,
        params=params,
        info=info,
        metrics={k: float(v) for k, v in metrics.items()},
    )
