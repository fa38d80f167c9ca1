"""Glue between the campaign step and the acquisition, penalty, batch and instrument pieces.

Kept private: the public surfaces are :mod:`jaxscope.campaign`, :mod:`jaxscope.acquisition`,
:mod:`jaxscope.penalties`, :mod:`jaxscope.batch` and :mod:`jaxscope.instruments`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from . import batch
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
    return 0.1 if ls is None else ls


BATCH_RULES = ("exclusion", "believer", "qei", "qucb")


def select_batch(scores, C, config, params, ctx):
    """Choose ``config.q`` candidates with ``config.batch``.

    ``ctx`` holds what the model-based rules need: ``posts`` (batched posteriors, standardised
    units), ``cache`` (a ``PredictiveCache`` in ``"fixed"`` mode), ``scaler``, ``sign``,
    ``allowed`` (mask), ``policy``, ``key``.
    """
    if config.q == 1:
        i = jnp.argmax(scores).astype(jnp.int32)
        return i[None], scores[i][None]
    if config.batch == "exclusion":
        r = config.exclusion_radius if config.exclusion_radius is not None else _lengthscale(params)
        idx, vals, _ = batch.nms(scores, C, config.q, r)
        return idx.astype(jnp.int32), vals
    scaler, sign = ctx["scaler"], ctx["sign"]
    best_s = (ctx["best"] * sign - scaler.shift) / scaler.scale  # incumbent, standardised units
    if config.batch == "believer":
        cache = ctx["cache"]
        if cache is None:
            cache = eqx.filter_vmap(lambda p: p.cache(C))(ctx["posts"])

        def kb(fn):
            return lambda: batch.kriging_believer(
                cache,
                config.q,
                _scaled(fn, scaler),
                best=best_s,
                maximize=sign > 0,
                mask=ctx["allowed"],
                key=ctx["key"],
            )

        branches = [kb(fn) for fn in config.acquisitions]
        idx, vals = branches[0]() if len(branches) == 1 else jax.lax.switch(ctx["policy"], branches)
        return idx.astype(jnp.int32), vals
    if config.batch in ("qei", "qucb"):
        idx, vals = batch.select_joint(
            ctx["posts"],
            C,
            config.q,
            key=ctx["key"],
            kind=config.batch,
            best=best_s,
            maximize=sign > 0,
            mask=ctx["allowed"],
            num_draws=config.joint_draws,
            subset=min(config.joint_subset, C.shape[0]),
            chunk_size=config.chunk_size,
        )
        return idx.astype(jnp.int32), vals
    raise ValueError(f"unknown batch rule {config.batch!r}; use one of {BATCH_RULES}")


def _scaled(fn, scaler):
    """The campaign's acquisition (original units, larger is better) on standardised moments."""

    def wrapped(pred, *, best=None, key=None, maximize=True, **kw):
        sign = 1.0 if maximize else -1.0
        p = Predictive(
            mean=sign * (pred.mean * scaler.scale + scaler.shift), var=pred.var * scaler.scale**2
        )
        b = None if best is None else sign * (best * scaler.scale + scaler.shift)
        return fn(p, best=b, key=key, **kw)

    return wrapped


def measure_batch(problem, key, X):
    """Measure the rows of ``X``: ``problem.measure_batch(key, X)`` or ``vmap(problem.measure)``."""
    if hasattr(problem, "measure_batch"):
        return problem.measure_batch(key, X)
    keys = jax.random.split(key, X.shape[0])
    return jax.vmap(problem.measure)(keys, X)
