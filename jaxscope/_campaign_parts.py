"""Glue between the campaign step and the acquisition, penalty, batch and instrument pieces.

Kept private: the public surfaces are :mod:`jaxscope.campaign`, :mod:`jaxscope.acquisition`,
:mod:`jaxscope.penalties`, :mod:`jaxscope.batch` and :mod:`jaxscope.instruments`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .acquisition import get as get_acquisition
from .predictive import Predictive


class PenaltyContext(NamedTuple):
    """What a penalty may look at: candidates, probe position, buffer, step, measured mask."""

    candidates: Float[Array, "m d"]
    position: Float[Array, " d"]
    obs: Any
    step: Array
    measured: Array
    pred: Predictive


def resolve_acquisition(acq: str | Callable, kwargs: dict | None) -> tuple[Callable, bool]:
    """A name or callable (plus bound keyword arguments) -> (``fn(pred, *, best, key)``, needs
    joint draws)."""
    fn = get_acquisition(acq)
    needs_draws = "draws" in getattr(fn, "requires", ())
    return (functools.partial(fn, **kwargs) if kwargs else fn), needs_draws


def apply_penalties(scores, config, state, pred, problem):
    """Exclude measured / masked candidates, then apply ``config.penalties`` in order."""
    C = jnp.asarray(problem.candidates)
    ctx = PenaltyContext(
        candidates=C,
        position=state.position,
        obs=state.obs,
        step=state.step,
        measured=state.measured,
        pred=pred,
    )
    for pen in config.penalties:
        scores = pen(scores, ctx)
    if not config.allow_repeats:
        scores = jnp.where(state.measured, -jnp.inf, scores)
    mask = getattr(problem, "mask", None)
    if mask is not None:
        scores = jnp.where(mask, scores, -jnp.inf)
    return scores


def _lengthscale(params):
    ls = params.get("lengthscale", None) if isinstance(params, dict) else None
    return 0.1 if ls is None else jnp.mean(ls)


def select_batch(scores, C, config, params, pred):
    """Choose ``config.q`` candidates: argmax, then greedy exclusion within a radius."""
    if config.q == 1:
        i = jnp.argmax(scores).astype(jnp.int32)
        return i[None], scores[i][None]
    if config.batch != "exclusion":
        raise ValueError(f"unknown batch rule {config.batch!r}; use 'exclusion'")
    r = config.exclusion_radius if config.exclusion_radius is not None else _lengthscale(params)
    idx, vals = [], []
    s = scores
    for _ in range(config.q):
        i = jnp.argmax(s).astype(jnp.int32)
        idx.append(i)
        vals.append(scores[i])
        d2 = jnp.sum((C - C[i]) ** 2, axis=1)
        s = jnp.where(d2 < r**2, -jnp.inf, s).at[i].set(-jnp.inf)
    return jnp.stack(idx), jnp.stack(vals)


def measure_batch(problem, key, X):
    """Measure the rows of ``X``: ``problem.measure_batch(key, X)`` or ``vmap(problem.measure)``."""
    if hasattr(problem, "measure_batch"):
        return problem.measure_batch(key, X)
    keys = jax.random.split(key, X.shape[0])
    return jax.vmap(problem.measure)(keys, X)
