r"""One campaign step, a pure function: decide, measure, record.

.. math:: s_{t+1} = \mathrm{record}(s_t, d_t, \mathrm{measure}(d_t.x)),
          \qquad d_t = \mathrm{decide}(s_t)

:func:`decide` runs the three pieces of the config in order: the surrogate's ``update`` (refit
or condition, warm start) and its belief over the candidates, the policy's scores (rule,
penalties, exclusions; utility units), the selector's ``q`` picks (with fantasies where the
selector uses them, and for points still pending in an ask/tell agent). :func:`record` stores
the measurements and advances the policy's state. Adding a model adds a surrogate, never a
branch here.

:func:`step` is a pure function of ``(state, config, problem)``: it can be ``jit``-ted, run
inside ``lax.scan`` (:mod:`jaxscope.campaign.compiled`) and ``vmap``-ped over seeds, problems
and strategies. The point handed to the instrument and the point stored in the buffer and the
history are the same array ``decision.x``: a step cannot measure somewhere other than where it
decided to.

A problem follows the campaign-facing protocol of :mod:`jaxscope.instruments` (``candidates``,
``maximize``, ``mask``, ``measure_batch``, ``has_truth``/``truth``, ``cost``).

Example:
    >>> config = make_config(problem.candidates, acquisition="ucb", acq_kwargs={"beta": 4.0})
    >>> state = init_random(jax.random.key(0), config, problem, num_init=10, num_steps=20)
    >>> state = step(state, config, problem)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Int, PRNGKeyArray

from ..decide import PenaltyContext, SelectContext
from ..decide.fantasy import absorb_pending
from ..decide.units import incumbent_utility, problem_sign
from ..gp import Observations
from .config import CampaignConfig
from .metrics import map_rmse, step_cost
from .state import CampaignState, Decision, History

__all__ = ["init", "init_random", "decide", "record", "step", "match_candidates"]


@jax.jit  # module-level jit: eager calls (init, resume) reuse one compiled program
def match_candidates(C, X):
    """Index of the candidate equal to each row of X (or -1); one row at a time (O(m) memory)."""
    tol = 1e-10 * (1.0 + jnp.max(jnp.abs(C)))

    def one(x):
        d2 = jnp.sum((C - x) ** 2, axis=-1)
        j = jnp.argmin(d2)
        return jnp.where(d2[j] <= tol, j, -1)

    return jax.lax.map(one, X)


def init(
    config: CampaignConfig,
    problem: Any,
    X0: ArrayLike,
    y0: ArrayLike,
    *,
    num_steps: int,
    key: PRNGKeyArray,
) -> CampaignState:
    """Campaign state holding the seed measurements ``(X0, y0)`` with room for ``num_steps``."""
    C = jnp.asarray(problem.candidates)
    X0 = jnp.asarray(X0, C.dtype)
    y0 = jnp.asarray(y0, C.dtype)
    if X0.ndim != 2 or X0.shape[1] != C.shape[1] or y0.shape != X0.shape[:1]:
        raise ValueError(f"X0 must be (n, {C.shape[1]}) and y0 (n,); got {X0.shape}, {y0.shape}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be positive, got {num_steps}")
    obs = Observations.empty(X0.shape[0] + num_steps * config.q, C.shape[1], C.dtype)
    obs = obs.extend(X0, y0)
    j = match_candidates(C, X0)
    measured = (
        jnp.zeros(C.shape[0], bool).at[jnp.where(j >= 0, j, C.shape[0])].set(True, mode="drop")
    )
    return CampaignState(
        obs=obs,
        model=config.surrogate.init(jax.random.fold_in(key, 4), obs),
        policy=config.policy.init(C),
        measured=measured,
        position=X0[-1],
        key=key,
        step=jnp.zeros((), jnp.int32),
        history=History.empty(num_steps, config.q, C.shape[1], C.dtype),
    )


def init_random(
    key: PRNGKeyArray,
    config: CampaignConfig,
    problem: Any,
    num_init: int,
    *,
    num_steps: int,
) -> CampaignState:
    """Measure ``num_init`` distinct random candidates, then :func:`init` (pure; ``jit``-able)."""
    C = jnp.asarray(problem.candidates)
    if not 1 <= num_init <= C.shape[0]:
        raise ValueError(f"num_init must be in [1, {C.shape[0]}], got {num_init}")
    k_idx, k_meas, k_state = jax.random.split(key, 3)
    idx = jax.random.choice(k_idx, C.shape[0], (num_init,), replace=False)
    X0 = C[idx]
    y0 = problem.measure_batch(k_meas, X0)
    return init(config, problem, X0, y0, num_steps=num_steps, key=k_state)


def decide(
    state: CampaignState,
    config: CampaignConfig,
    problem: Any,
    pending: tuple[Int[Array, " P"], Bool[Array, " P"]] | None = None,
) -> Decision:
    """Update the surrogate, score the candidates and choose ``config.q`` of them.

    Args:
        pending: ``(indices, on)`` of candidates being measured but not yet recorded (an ask/tell
            agent's): they are excluded and fantasised (:mod:`jaxscope.decide.fantasy`) before
            scoring, in order, with the selector's liar (the kriging believer by default).
    """
    C = jnp.asarray(problem.candidates)
    sign = problem_sign(problem)
    k_fit, k_acq = jax.random.split(jax.random.fold_in(state.key, 1))
    model = config.surrogate.update(state.model, state.obs, k_fit)
    npend = 0 if pending is None else pending[0].shape[0]
    if npend and jnp.shape(pending[1]) != (npend,):
        raise ValueError(
            f"pending indices {jnp.shape(pending[0])} and flags {jnp.shape(pending[1])} must be "
            "two arrays of one length"
        )
    belief = config.surrogate.belief(model, C, config.selector.room(config.q) + npend)
    if config.selector.fantasises or npend:
        belief = belief.cached()
    best = incumbent_utility(state.obs, sign)
    measured = state.measured
    if npend:
        idx, on = pending
        belief, best = absorb_pending(
            belief, C, idx, on, sign=sign, best=best, liar=config.selector.fantasy_liar()
        )
        measured = measured.at[jnp.where(on, idx, C.shape[0])].set(True, mode="drop")
    pred = belief.predictive(key=jax.random.fold_in(k_acq, 1), num_draws=config.num_draws)
    allowed = config.policy.allowed(measured, problem.candidate_mask())
    ctx = PenaltyContext(C, state.position, state.obs, state.step, measured, pred)

    def score(belief, pred, best, key, allowed):
        return config.policy.scores(
            state.policy, belief, pred, ctx, sign=sign, best=best, key=key, allowed=allowed
        )

    scores = score(belief, pred, best, k_acq, allowed)
    sctx = SelectContext(
        candidates=C,
        pred=pred,
        belief=belief,
        score=score,
        best=best,
        sign=sign,
        allowed=allowed,
        key=jax.random.fold_in(k_acq, 2),
        num_draws=config.num_draws,
        length_scale=lambda: config.surrogate.length_scale(model),
    )
    index, acq = config.selector.select(config.q, scores, sctx)
    return Decision(index=index, x=C[index], acq=acq, scores=scores, pred=pred, model=model)


def record(
    state: CampaignState,
    config: CampaignConfig,
    decision: Decision,
    y: ArrayLike,
    problem: Any = None,
) -> CampaignState:
    """Store the measurements ``y`` of the points ``decision.x`` (and nothing else)."""
    x = decision.x
    y = jnp.asarray(y, state.obs.y.dtype)
    if y.size != config.q:
        raise ValueError(
            f"expected {config.q} measured value(s) for the chosen points, got {y.shape}"
        )
    y = y.reshape(config.q)
    rmse = jnp.full((), jnp.nan, x.dtype)
    cost = jnp.zeros((), x.dtype)
    if problem is not None:
        if config.track_rmse:
            rmse = map_rmse(decision.pred, problem)
        cost = step_cost(problem, state.position, x)
    t, h = state.step, state.history
    history = History(
        index=h.index.at[t].set(decision.index),
        x=h.x.at[t].set(x),
        acq=h.acq.at[t].set(decision.acq),
        y=h.y.at[t].set(y),
        rmse=h.rmse.at[t].set(rmse),
        cost=h.cost.at[t].set(cost),
    )
    return CampaignState(
        obs=state.obs.extend(x, y),
        model=decision.model,
        policy=config.policy.update(state.policy, x),
        measured=state.measured.at[decision.index].set(True),
        position=x[-1],
        key=jax.random.fold_in(state.key, 2),
        step=t + 1,
        history=history,
    )


def step(state: CampaignState, config: CampaignConfig, problem: Any) -> CampaignState:
    """One campaign step: :func:`decide`, measure ``decision.x`` on ``problem``, :func:`record`."""
    decision = decide(state, config, problem)
    y = problem.measure_batch(jax.random.fold_in(state.key, 3), decision.x)
    return record(state, config, decision, y, problem)
