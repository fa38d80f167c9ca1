"""The campaign's state pytree: observations, surrogate and policy states, history.

Example:
    >>> state = init_random(jax.random.key(0), config, problem, num_init=10, num_steps=20)
    >>> state.obs.count, state.policy.rule, state.history.index.shape
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ..decide import PolicyState
from ..gp import Observations, Predictive


class History(eqx.Module):
    """Per-step record of choices (``T`` steps × ``q`` points per step); unfilled rows are NaN/-1.

    Attributes:
        index: chosen candidate indices.
        x: chosen points (the very values handed to the instrument).
        acq: acquisition value of each chosen point (after penalties).
        y: measured values.
        rmse: RMSE of the predictive mean against the problem's truth over the candidates at
            decision time (NaN where the problem has no ground truth).
        cost: instrument time cost of the step (the problem's ``cost``).
    """

    index: Int[Array, "T q"]
    x: Float[Array, "T q d"]
    acq: Float[Array, "T q"]
    y: Float[Array, "T q"]
    rmse: Float[Array, " T"]
    cost: Float[Array, " T"]

    @classmethod
    def empty(cls, num_steps: int, q: int, dim: int, dtype) -> History:
        def nan(*shape):  # a fresh buffer per field (donation needs distinct buffers)
            return jnp.full(shape, jnp.nan, dtype)

        return cls(
            index=jnp.full((num_steps, q), -1, jnp.int32),
            x=nan(num_steps, q, dim),
            acq=nan(num_steps, q),
            y=nan(num_steps, q),
            rmse=nan(num_steps),
            cost=jnp.zeros((num_steps,), dtype),
        )


class CampaignState(eqx.Module):
    """Everything a campaign carries from one step to the next (a pytree of fixed shapes).

    Attributes:
        obs: observation buffer in the original units (capacity ``n_init + T·q``).
        model: the surrogate's state (e.g. :class:`~jaxscope.decide.GPState`).
        policy: the policy's state: active rule and penalty memories.
        measured: ``(m,)`` candidates already measured (excluded unless repeats are allowed).
        position: probe position (the last measured point).
        key: PRNG key.
        step: number of steps taken.
        history: per-step record.
    """

    obs: Observations
    model: Any
    policy: PolicyState
    measured: Bool[Array, " m"]
    position: Float[Array, " d"]
    key: PRNGKeyArray
    step: Int[Array, ""]
    history: History


class Decision(eqx.Module):
    """One decision: chosen candidate indices and points, their values, every candidate's
    score, the predictive (original units) and the surrogate state it was made with."""

    index: Int[Array, " q"]
    x: Float[Array, "q d"]
    acq: Float[Array, " q"]
    scores: Float[Array, " m"]
    pred: Predictive
    model: Any
