r"""Compiled campaign runner: a whole campaign is one ``lax.scan`` over ``campaign.step``.

:func:`run` compiles once per (config, problem structure, number of steps, shapes) and then runs
every step inside XLA. The instrument is either a pure JAX simulator or a host instrument reached
through ``jax.pure_callback`` (:class:`jaxscope.instruments.CallbackProblem`).

.. math:: s_T = \mathrm{step}^{\circ T}(s_0)

Example:
    >>> config = make_config(sim.candidates, acquisition="ucb", mode="map")
    >>> state = init_random(jax.random.key(0), config, sim, num_init=10, num_steps=50)
    >>> final = run(state, config, sim)          # one XLA program
    >>> metrics = campaign_metrics(final, sim)          # jaxscope.campaign.metrics
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, PRNGKeyArray

from ..runtime.jit import jit
from .config import CampaignConfig
from .state import CampaignState
from .step import init_random, step


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

    Pure in ``key``, ``problem``'s arrays and ``policy`` (the index of the active rule in
    ``config.policy.rules``): ``jax.vmap`` over them runs many seeds, problems and strategies at
    once (see :mod:`jaxscope.campaign.strategies`).
    """
    state = init_random(key, config, problem, num_init, num_steps=num_steps)
    state = eqx.tree_at(lambda s: s.policy.rule, state, jnp.asarray(policy, jnp.int32))

    def body(s, _):
        return step(s, config, problem), None

    return jax.lax.scan(body, state, length=num_steps)[0]
