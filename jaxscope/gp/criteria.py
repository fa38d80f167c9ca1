r"""Model-comparison criteria from posterior samples, in pure JAX (``jit``/``vmap``-able).

Inputs are pointwise log densities ``ll[s, i] = log p(y_i | ·, θ_s)`` over ``S`` posterior samples
and ``n`` observations (a mask marks the real ones): the pointwise log-likelihoods of a model
without a GP, or the leave-one-out conditionals ``log p(y_i | y_{-i}, θ_s)`` of a GP
(:func:`~jaxscope.gp.structured.loo_log_densities`; Vehtari, Mononen, Tolvanen, Sivula & Winther,
JMLR 2016, use them the same way for latent GP models).

* :func:`waic` — Watanabe's widely applicable information criterion (elpd scale:
  ``lppd - p_waic``; multiply by −2 for the deviance scale).
* :func:`psis_loo` — Pareto-smoothed importance-sampling leave-one-out (Vehtari, Gelman & Gabry,
  Statistics and Computing 2017; Vehtari et al., JMLR 2024), with the Pareto shape ``k̂`` per
  point (``k̂ > 0.7``: the estimate of that point is unreliable).
* :func:`split_rhat` — split-chain potential scale reduction (Gelman et al., BDA3 §11.4).
* :func:`pseudo_bma_weights` — model weights ``∝ exp(elpd_loo)`` (Yao et al., Bayesian Analysis
  2018): the posterior model probabilities the hypothesis engine reports.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from jaxtyping import Array, Bool, Float


class LOO(NamedTuple):
    """``elpd`` (sum over real points), ``pointwise`` elpd, ``pareto_k`` per point, ``p_loo``."""

    elpd: Float[Array, ""]
    pointwise: Float[Array, " n"]
    pareto_k: Float[Array, " n"]
    p_loo: Float[Array, ""]


class WAIC(NamedTuple):
    """``elpd`` = lppd − p_waic, ``lppd``, ``p_waic`` and the ``pointwise`` elpd."""

    elpd: Float[Array, ""]
    lppd: Float[Array, ""]
    p_waic: Float[Array, ""]
    pointwise: Float[Array, " n"]


def _mask(ll, mask):
    return jnp.ones(ll.shape[1], bool) if mask is None else mask


def lppd_pointwise(ll: Float[Array, "s n"]) -> Float[Array, " n"]:
    """``log mean_s exp(ll[s, i])``."""
    return logsumexp(ll, axis=0) - jnp.log(ll.shape[0])


def waic(ll: Float[Array, "s n"], mask: Bool[Array, " n"] | None = None) -> WAIC:
    """WAIC on the elpd scale: ``Σ_i lppd_i − Var_s(ll[s, i])``."""
    mask = _mask(ll, mask)
    lppd = lppd_pointwise(ll)
    p = jnp.var(ll, axis=0, ddof=1)
    point = jnp.where(mask, lppd - p, 0.0)
    return WAIC(jnp.sum(point), jnp.sum(jnp.where(mask, lppd, 0.0)), jnp.sum(p * mask), point)


def gpd_fit(x: Float[Array, " m"]) -> tuple[Array, Array]:
    """Generalised Pareto shape and scale ``(k, σ)`` of sorted positive exceedances ``x``
    (ascending); ``k > 0`` is a heavy tail.

    The empirical-Bayes estimator of Zhang & Stephens (Technometrics 2009) with the weakly
    informative prior on ``k`` of Vehtari et al. (2024): ``k ← (m·k + 5) / (m + 10)``.
    """
    m = x.shape[0]
    n_grid = 30 + int(m**0.5)
    j = jnp.arange(1, n_grid + 1, dtype=x.dtype)
    quart = x[int(m / 4 + 0.5) - 1]
    theta = 1.0 / x[-1] + (1.0 - jnp.sqrt(n_grid / (j - 0.5))) / (3.0 * quart)
    k_grid = jnp.mean(jnp.log1p(-theta[:, None] * x[None, :]), axis=1)
    log_lik = m * (jnp.log(-theta / k_grid) - k_grid - 1.0)
    w = jax.nn.softmax(log_lik)
    theta_hat = jnp.sum(w * theta)
    k = jnp.mean(jnp.log1p(-theta_hat * x))
    sigma = -k / theta_hat
    k = (m * k + 10 * 0.5) / (m + 10)
    return k, sigma


def psis_log_weights(log_ratios: Float[Array, " s"]) -> tuple[Array, Array]:
    """Pareto-smoothed, normalised log importance weights and the shape ``k̂``.

    The largest ``M = ⌈min(S/5, 3√S)⌉`` ratios are replaced by the expected order statistics of
    a generalised Pareto fitted to them, truncated at the largest raw ratio.
    """
    S = log_ratios.shape[0]
    M = math.ceil(min(0.2 * S, 3.0 * S**0.5))
    lw = log_ratios - jnp.max(log_ratios)
    order = jnp.argsort(lw)
    srt = lw[order]
    cutoff = srt[S - M - 1]
    tail = jnp.exp(srt[S - M :]) - jnp.exp(cutoff)
    tail = jnp.maximum(tail, jnp.finfo(lw.dtype).tiny)
    k, sigma = gpd_fit(tail)
    p = (jnp.arange(M, dtype=lw.dtype) + 0.5) / M
    k_safe = jnp.where(jnp.abs(k) < 1e-8, 1e-8, k)
    q = sigma * jnp.expm1(k_safe * -jnp.log1p(-p)) / k_safe  # the GPD quantiles
    smooth = jnp.minimum(jnp.log(q + jnp.exp(cutoff)), 0.0)
    smooth = jnp.where(jnp.isfinite(k), smooth, srt[S - M :])
    srt = srt.at[S - M :].set(smooth)
    lw = jnp.zeros_like(lw).at[order].set(srt)
    return lw - logsumexp(lw), k


def psis_loo(ll: Float[Array, "s n"], mask: Bool[Array, " n"] | None = None) -> LOO:
    """PSIS-LOO: ``elpd_i = log Σ_s w̃_s(i) exp(ll[s, i])`` with ``w_s(i) ∝ 1 / p(y_i|θ_s)``
    smoothed by :func:`psis_log_weights`."""
    mask = _mask(ll, mask)
    lw, k = jax.vmap(psis_log_weights, in_axes=1)(-ll)  # (n, s), (n,)
    point = logsumexp(lw + ll.T, axis=1)
    point = jnp.where(mask, point, 0.0)
    p_loo = jnp.sum(jnp.where(mask, lppd_pointwise(ll), 0.0)) - jnp.sum(point)
    return LOO(jnp.sum(point), point, jnp.where(mask, k, 0.0), p_loo)


def split_rhat(x: Float[Array, "c s ..."]) -> Array:
    """Split-R̂ per trailing element of ``x`` (chains, draws, ...): each chain split in halves."""
    c, s = x.shape[:2]
    h = s // 2
    halves = jnp.concatenate([x[:, :h], x[:, s - h :]], axis=0)  # (2c, h, ...)
    means = jnp.mean(halves, axis=1)
    W = jnp.mean(jnp.var(halves, axis=1, ddof=1), axis=0)
    B = h * jnp.var(means, axis=0, ddof=1)
    var_plus = (h - 1) / h * W + B / h
    return jnp.sqrt(var_plus / jnp.maximum(W, jnp.finfo(x.dtype).tiny))


def pseudo_bma_weights(elpd: Float[Array, " h"]) -> Float[Array, " h"]:
    """``softmax(elpd)``: relative weights of models from their expected log predictive
    densities (non-finite elpd gets weight 0)."""
    return jax.nn.softmax(jnp.where(jnp.isfinite(elpd), elpd, -jnp.inf))
