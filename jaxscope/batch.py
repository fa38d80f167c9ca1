r"""Batch selection: choose ``q`` candidates at once (fixed shapes, jittable, one ``lax.scan``).

* :func:`nms` — lengthscale exclusion (non-maximum suppression, as GPim's batch update): take the
  argmax, forbid every candidate within ``radius`` of it (scalar or per-dimension, e.g. the ARD
  lengthscales: :math:`\sum_k ((x_k - x^*_k)/r_k)^2 \le 1`), repeat.
* :func:`kriging_believer` — sequential greedy selection with fantasies: after each choice the
  believed value (the predictive mean, or a constant liar) is added to the
  :class:`~jaxscope.gp.PredictiveCache` by a rank-1 update (O(N·M)), which shrinks the variance
  around the chosen point, and the acquisition is recomputed. Equal to refitting with the believed
  values (hyperparameters held).
* :func:`select_joint` — joint qEI / qUCB by Monte Carlo over joint posterior draws on a subset
  of the best candidates (by a marginal score), built greedily with common random numbers:

  .. math:: \mathrm{qEI}(B) = \mathbb E\big[(\max_{j\in B} f_j - f^*)_+\big], \qquad
            \mathrm{qUCB}(B) = \mathbb E\big[\max_{j\in B} \mu_j +
            \sqrt{\beta\pi/2}\,|f_j - \mu_j|\big]

  (qUCB as in Wilson et al. 2017; for ``q = 1`` both reduce to EI and UCB).

Example:
    >>> idx, vals, ok = nms(scores, Xc, q=4, radius=lengthscale)
    >>> idx, vals = kriging_believer(post.cache(Xc), 4, "logei", best=incumbent(obs))
    >>> idx, vals = select_joint(post, Xc, 4, key=key, kind="qei", best=incumbent(obs))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from ._jit import jit
from .acquisition import get, log_expected_improvement, upper_confidence_bound
from .gp import Posterior, PredictiveCache
from .kernels import as_points
from .predictive import from_cache, from_posterior, posterior_draws


def _scaled_within(Xc, x, radius):
    r = jnp.broadcast_to(jnp.asarray(radius, Xc.dtype), (Xc.shape[1],))
    return jnp.sum(((Xc - x) / r) ** 2, axis=1) <= 1.0


def nms(
    scores: Float[Array, " m"],
    Xc: Float[Array, "m d"],
    q: int,
    radius: ArrayLike,
    *,
    mask: Bool[Array, " m"] | None = None,
) -> tuple[Int[Array, " q"], Float[Array, " q"], Bool[Array, " q"]]:
    """Greedy non-maximum suppression: ``q`` argmaxes at least ``radius`` apart.

    Returns:
        ``(indices, values, valid)``; ``valid[k]`` is ``False`` when nothing allowed was left at
        pick ``k`` (its index then repeats an earlier, invalid pick and must be ignored).
    """
    Xc = as_points(Xc, "Xc")
    s0 = scores if mask is None else jnp.where(mask, scores, -jnp.inf)

    def body(s, _):
        i = jnp.argmax(s)
        v = s[i]
        s = jnp.where(_scaled_within(Xc, Xc[i], radius), -jnp.inf, s).at[i].set(-jnp.inf)
        return s, (i, v, v > -jnp.inf)

    _, (idx, vals, ok) = jax.lax.scan(body, s0, length=q)
    return idx, vals, ok


def _cache_add(cache: PredictiveCache, x, y) -> PredictiveCache:
    if cache.mean.ndim == 2:  # one cache per hyperparameter sample, same fantasy for all
        return eqx.filter_vmap(lambda c: c.add(x, y))(cache)
    return cache.add(x, y)


def kriging_believer(
    cache: PredictiveCache,
    q: int,
    acquisition: str | Callable = "logei",
    *,
    best: ArrayLike | None = None,
    maximize: bool = True,
    mask: Bool[Array, " m"] | None = None,
    liar: str | float = "mean",
    key: PRNGKeyArray | None = None,
    **acq_kw: Any,
) -> tuple[Int[Array, " q"], Float[Array, " q"]]:
    """Greedy batch with fantasised observations (kriging believer / constant liar).

    Args:
        cache: predictive cache over the candidates (a batch of caches for hyperparameter
            samples is fine); its buffer needs ``q`` free slots.
        q: batch size.
        acquisition: a rule name or callable (``fn(pred, *, best, key, maximize, **acq_kw)``).
        best: incumbent; updated with each believed value (improvement rules need it).
        mask: allowed candidates (chosen ones are excluded automatically).
        liar: ``"mean"`` (kriging believer: the mixture mean at the chosen point), ``"best"``
            (constant liar at the incumbent), or a number.
        key: split across the ``q`` picks and passed to the rule.

    Returns:
        ``(indices, values)``: the chosen candidates and their acquisition values when chosen.
    """
    fn = get(acquisition)
    if isinstance(liar, str) and liar not in ("mean", "best"):
        raise ValueError(f"unknown liar {liar!r}; use 'mean', 'best' or a number")
    if liar == "best" and best is None:
        raise ValueError("liar='best' needs `best` (the incumbent)")
    Xc = cache.Xc[0] if cache.Xc.ndim == 3 else cache.Xc
    dtype = Xc.dtype
    allowed = jnp.ones(Xc.shape[:1], bool) if mask is None else jnp.asarray(mask, bool)
    best0 = jnp.asarray(jnp.nan if best is None else best, dtype)
    kind = liar if isinstance(liar, str) else "value"
    value = jnp.asarray(0.0 if isinstance(liar, str) else liar, dtype)
    keys = jax.random.split(jax.random.key(0) if key is None else key, q)
    return _kriging_believer(
        cache, fn, best0, best is None, maximize, allowed, kind, value, keys, acq_kw
    )


@jit
def _kriging_believer(cache, fn, best0, no_best, maximize, allowed, liar, value, keys, acq_kw):
    Xc = cache.Xc[0] if cache.Xc.ndim == 3 else cache.Xc

    def body(carry, k):
        cache, allowed, best = carry
        pred = from_cache(cache)
        s = fn(pred, best=None if no_best else best, key=k, maximize=maximize, **acq_kw)
        s = jnp.where(allowed, s, -jnp.inf)
        i = jnp.argmax(s)
        if liar == "mean":
            y = jnp.mean(jnp.atleast_2d(cache.mean)[:, i])
        elif liar == "best":
            y = best
        else:
            y = value
        cache = _cache_add(cache, Xc[i], y)
        best = jnp.maximum(best, y) if maximize else jnp.minimum(best, y)
        return (cache, allowed.at[i].set(False), best), (i, s[i])

    _, (idx, vals) = jax.lax.scan(body, (cache, allowed, best0), keys)
    return idx, vals


def q_expected_improvement(
    draws: Float[Array, "n q"], best: ArrayLike, *, maximize: bool = True
) -> Float[Array, ""]:
    """Monte Carlo qEI of a batch from joint draws ``(n, q)`` of ``f`` at its points."""
    f = draws if maximize else -draws
    b = jnp.asarray(best, draws.dtype) * (1.0 if maximize else -1.0)
    return jnp.mean(jnp.maximum(jnp.max(f, axis=1) - b, 0.0))


def q_upper_confidence_bound(
    draws: Float[Array, "n q"],
    mean: Float[Array, " q"],
    *,
    beta: ArrayLike = 4.0,
    maximize: bool = True,
) -> Float[Array, ""]:
    r"""Monte Carlo qUCB: :math:`\mathbb E[\max_j \pm\mu_j + \sqrt{\beta\pi/2}\,|f_j - \mu_j|]`."""
    sign = 1.0 if maximize else -1.0
    g = sign * mean[None, :] + jnp.sqrt(beta * math.pi / 2.0) * jnp.abs(draws - mean[None, :])
    return jnp.mean(jnp.max(g, axis=1))


def select_joint(
    post: Posterior,
    Xc: Float[Array, "m d"],
    q: int,
    *,
    key: PRNGKeyArray,
    kind: str = "qei",
    best: ArrayLike | None = None,
    maximize: bool = True,
    beta: ArrayLike = 4.0,
    num_draws: int = 512,
    subset: int = 64,
    scores: Float[Array, " m"] | None = None,
    mask: Bool[Array, " m"] | None = None,
    method: str = "exact",
    chunk_size: int | None = None,
) -> tuple[Int[Array, " q"], Float[Array, " q"]]:
    """Greedy joint qEI / qUCB over the ``subset`` best candidates (Monte Carlo, fixed draws).

    Args:
        post: a posterior, or a batch of them (hyperparameter samples): the draws then follow the
            mixture (:func:`~jaxscope.predictive.posterior_draws`).
        Xc: ``(m, d)`` candidates.
        kind: ``"qei"`` (needs ``best``) or ``"qucb"``.
        num_draws: joint draws over the subset (the same draws score every candidate batch).
        subset: how many candidates, ranked by ``scores`` (default: marginal logEI for qEI, UCB
            for qUCB), enter the joint problem; ``subset ≥ q``.
        mask: allowed candidates.

    Returns:
        ``(indices, values)``: chosen candidate indices and the joint value of the batch after
        each addition (non-decreasing; ``values[-1]`` is the MC estimate for the whole batch).
    """
    if kind not in ("qei", "qucb"):
        raise ValueError(f"unknown joint rule {kind!r}; use 'qei' or 'qucb'")
    if kind == "qei" and best is None:
        raise ValueError("qei needs `best` (the incumbent)")
    Xc = as_points(Xc, "Xc")
    m = Xc.shape[0]
    subset = min(subset, m)
    if not q <= subset:
        raise ValueError(f"q = {q} must not exceed subset = {subset}")
    best = None if best is None else jnp.asarray(best, Xc.dtype)
    beta = jnp.asarray(beta, Xc.dtype)
    return _select_joint(
        post,
        Xc,
        q,
        key,
        kind,
        best,
        maximize,
        beta,
        num_draws,
        subset,
        scores,
        mask,
        method,
        chunk_size,
    )


@jit
def _select_joint(
    post,
    Xc,
    q,
    key,
    kind,
    best,
    maximize,
    beta,
    num_draws,
    subset,
    scores,
    mask,
    method,
    chunk_size,
):
    pred = from_posterior(post, Xc, chunk_size=chunk_size)
    if scores is None:
        if kind == "qei":
            scores = log_expected_improvement(pred, best=best, maximize=maximize)
        else:
            scores = upper_confidence_bound(pred, beta=beta, maximize=maximize)
    if mask is not None:
        scores = jnp.where(mask, scores, -jnp.inf)
    top_vals, top = jax.lax.top_k(scores, subset)
    Xs = Xc[top]
    f = posterior_draws(post, key, Xs, num_draws, method=method)  # (n, subset)
    sign = 1.0 if maximize else -1.0
    if kind == "qei":
        g = sign * f
        floor = sign * jnp.asarray(best, f.dtype)
    else:
        mu = jnp.mean(pred.mean[:, top], axis=0)
        g = sign * mu[None, :] + jnp.sqrt(beta * math.pi / 2.0) * jnp.abs(f - mu[None, :])
        floor = jnp.asarray(-jnp.inf, f.dtype)
    avail0 = top_vals > -jnp.inf

    def body(carry, _):
        cur, avail = carry
        run = jnp.maximum(cur[:, None], g)  # (n, subset)
        if kind == "qei":
            value = jnp.mean(jnp.maximum(run - floor, 0.0), axis=0)
        else:
            value = jnp.mean(run, axis=0)
        value = jnp.where(avail, value, -jnp.inf)
        j = jnp.argmax(value)
        return (run[:, j], avail.at[j].set(False)), (top[j], value[j])

    cur0 = jnp.full((f.shape[0],), -jnp.inf, f.dtype)
    _, (idx, vals) = jax.lax.scan(body, (cur0, avail0), length=q)
    return idx, vals
