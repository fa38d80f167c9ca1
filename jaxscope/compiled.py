r"""Compiled campaign runner: a whole campaign is one ``lax.scan`` over ``campaign.step``.

:func:`run` compiles once per (config, problem structure, number of steps, shapes) and then runs
every step inside XLA. The instrument is either a pure JAX simulator (anything with
``candidates`` and ``measure(key, x)`` / ``measure_batch(key, X)``) or a host function reached
through ``jax.pure_callback`` wrapped in :class:`CallbackProblem`.

.. math:: s_T = \mathrm{step}^{\circ T}(s_0)

Example:
    >>> config = make_config(sim.candidates, acquisition="ucb", mode="map")
    >>> state = init_random(jax.random.key(0), config, sim, num_init=10, num_steps=50)
    >>> final = run(state, config, sim)          # one XLA program
    >>> metrics = campaign_metrics(final, sim)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ._jit import jit
from .campaign import CampaignConfig, CampaignState, init_random, step


class CallbackProblem(eqx.Module):
    """A host instrument inside a compiled campaign.

    Attributes:
        candidates: ``(m, d)`` measurable points.
        fn: a JAX-callable ``X (q, d) -> y (q,)``, typically
            :func:`jaxscope.instruments.as_callback` of a host instrument (``jax.pure_callback``).
        maximize: whether larger measured values are better.
    """

    candidates: Float[Array, "m d"]
    fn: Callable = eqx.field(static=True)
    maximize: bool = eqx.field(static=True, default=True)

    def measure_batch(self, key: PRNGKeyArray, X: Float[Array, "q d"]) -> Float[Array, " q"]:
        del key  # the host instrument owns its noise
        return self.fn(X)

    def measure(self, key: PRNGKeyArray, x: Float[Array, " d"]) -> Float[Array, ""]:
        return self.measure_batch(key, x[None])[0]


def _remaining(state: CampaignState) -> int:
    return state.history.index.shape[0]


@jit
def _run(state, config, problem, num_steps: int):
    def body(s, _):
        return step(s, config, problem), None

    return jax.lax.scan(body, state, length=num_steps)[0]


def run(
    state: CampaignState, config: CampaignConfig, problem: Any, num_steps: int | None = None
) -> CampaignState:
    """Run ``num_steps`` (default: the history's capacity) steps as one compiled ``lax.scan``."""
    num_steps = _remaining(state) if num_steps is None else num_steps
    if num_steps < 1 or num_steps > _remaining(state):
        raise ValueError(f"num_steps must be in [1, {_remaining(state)}], got {num_steps}")
    return _run(state, config, problem, num_steps)


@jit
def run_campaign(
    key: PRNGKeyArray,
    config: CampaignConfig,
    problem: Any,
    num_init: int,
    num_steps: int,
    policy: int | Int[Array, ""] = 0,
) -> CampaignState:
    """Seed with ``num_init`` random candidates and run ``num_steps`` steps: one program.

    Pure in ``key``, ``problem``'s arrays and ``policy`` (the index into
    ``config.acquisitions``): ``jax.vmap`` over them runs many seeds, problems and strategies at
    once (see :mod:`jaxscope.strategies`).
    """
    state = init_random(key, config, problem, num_init, num_steps=num_steps)
    state = eqx.tree_at(lambda s: s.policy, state, jnp.asarray(policy, jnp.int32))

    def body(s, _):
        return step(s, config, problem), None

    return jax.lax.scan(body, state, length=num_steps)[0]


def campaign_metrics(state: CampaignState, problem: Any, top_fraction: float = 0.01):
    """Metrics per step from a finished campaign and the problem's ground truth.

    Returns a dict of ``(T,)`` arrays: ``best`` (best true value among measured points, seeds
    included, after each step), ``regret`` (``optimum - best`` in the problem's maximisation
    sense), ``top_found`` (fraction of the top-``top_fraction`` candidates measured) and ``rmse``
    (predictive-mean RMSE over the candidates at decision time).
    """
    C = jnp.asarray(problem.candidates)
    sign = 1.0 if getattr(problem, "maximize", True) else -1.0
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


def _chosen_mask(state: CampaignState, m: int):
    idx = state.history.index.reshape(-1)
    return jnp.zeros(m, bool).at[jnp.where(idx >= 0, idx, m)].set(True, mode="drop")
