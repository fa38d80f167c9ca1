"""Campaign metrics: per-step map RMSE and cost, and the per-step summary of a finished campaign.

Metrics need a problem's ground truth (:attr:`has_truth`) or cost; they are computed here, never
inside the decision or the record of a step.

Example:
    >>> metrics = campaign_metrics(final_state, problem)
    >>> metrics["regret"][-1], metrics["top_found"][-1]
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..decide.units import problem_sign
from ..gp import Predictive
from .state import CampaignState


def map_rmse(pred: Predictive, problem: Any) -> Float[Array, ""]:
    """RMSE of the predictive (mixture) mean against ``problem.truth`` over its candidates;
    NaN for a problem without ground truth."""
    dtype = pred.mean.dtype
    if not problem.has_truth:
        return jnp.full((), jnp.nan, dtype)
    C = jnp.asarray(problem.candidates)
    mean = jnp.mean(pred.mean, axis=0)
    return jnp.sqrt(jnp.mean((mean - problem.truth(C)) ** 2)).astype(dtype)


def step_cost(problem: Any, position: Float[Array, " d"], x: Float[Array, "q d"]):
    """Instrument time of measuring the rows of ``x`` in order, starting at ``position``."""
    prev = jnp.concatenate([position[None], x[:-1]])
    return jnp.sum(jax.vmap(problem.cost)(x, prev)).astype(x.dtype)


def _chosen_mask(state: CampaignState, m: int):
    idx = state.history.index.reshape(-1)
    return jnp.zeros(m, bool).at[jnp.where(idx >= 0, idx, m)].set(True, mode="drop")


def campaign_metrics(state: CampaignState, problem: Any, top_fraction: float = 0.01):
    """Metrics per step from a finished campaign and the problem's ground truth.

    Returns a dict of ``(T,)`` arrays: ``best`` (best true value among measured points, seeds
    included, after each step), ``regret`` (``optimum - best`` in the problem's maximisation
    sense), ``top_found`` (fraction of the top-``top_fraction`` candidates measured) and ``rmse``
    (predictive-mean RMSE over the candidates at decision time).
    """
    if not problem.has_truth:
        raise ValueError("campaign metrics need a problem with ground truth (has_truth)")
    C = jnp.asarray(problem.candidates)
    sign = problem_sign(problem)
    truth = sign * problem.truth(C)
    m = C.shape[0]
    k = max(1, int(round(top_fraction * m)))
    thresh = jnp.sort(truth)[m - k]
    top = truth >= thresh
    seeds = state.measured & ~_chosen_mask(state, m)
    idx = state.history.index  # (T, q), -1 for unfilled
    valid = idx >= 0
    gained = jnp.where(valid, truth[jnp.where(valid, idx, 0)], -jnp.inf).max(axis=1)
    best0 = jnp.max(jnp.where(seeds, truth, -jnp.inf))
    best = jax.lax.cummax(jnp.maximum(gained, best0))
    found0 = seeds & top

    def hit(carry, row):
        mask = carry.at[jnp.where(row >= 0, row, m)].set(True, mode="drop")
        return mask, jnp.sum(mask & top) / jnp.sum(top)

    _, top_found = jax.lax.scan(hit, found0, idx)
    return {
        "best": sign * best,
        "regret": jnp.max(truth) - best,
        "top_found": top_found,
        "rmse": state.history.rmse,
    }
