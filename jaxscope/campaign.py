r"""Active-learning campaign: a state pytree and one pure ``step``.

A campaign alternates *decide* (fit → predict over the candidates → acquisition + penalties +
batch rule → chosen points) and *record* (store the measured values). :func:`step` is

.. math:: s_{t+1} = \mathrm{record}(s_t, d_t, \mathrm{measure}(d_t.x)),
          \qquad d_t = \mathrm{decide}(s_t)

and is a pure function of ``(state, config, problem)``: it can be ``jit``-ted, run inside
``lax.scan`` (:func:`jaxscope.compiled.run`) and ``vmap``-ped over seeds, problems and strategies.
The point handed to the instrument and the point stored in the buffer and the history are the
same array ``decision.x``: a step cannot measure somewhere other than where it decided to.

Model modes (``config.mode``):

* ``"map"``: MAP refit every step (L-BFGS, warm start from the previous step's parameters).
* ``"nuts"``: NUTS every step (``num_warmup``/``num_samples``, warm start); the acquisition sees
  one predictive per posterior sample.
* ``"fixed"``: hyperparameters held; the predictive over the candidates is a
  :class:`~jaxscope.gp.PredictiveCache` updated by rank-1 extensions, O(N·M) per point.

Targets are standardised explicitly for fitting (a :class:`~jaxscope.observations.Standardizer`
kept in the state; in ``"fixed"`` mode it is frozen at :func:`init` so the rank-1 updates stay
exact) and predictions are returned in the original units. Internally larger is better: for a
problem with ``maximize=False`` the sign is flipped before the acquisition.

Example:
    >>> config = make_config(problem.candidates, acquisition="ucb", acq_kwargs={"beta": 4.0})
    >>> state = init_random(jax.random.key(0), config, problem, num_init=10, num_steps=20)
    >>> state = step(state, config, problem)
"""

# API READY: CampaignState, History, Decision, CampaignConfig, make_config, default_model,
# init, init_random, decide, record, step, predictive are stable.

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from ._campaign_parts import apply_penalties, measure_batch, select_batch
from .campaign_config import MODES, CampaignConfig, default_model, make_config
from .gp import PredictiveCache, map_chunks
from .inference import fit_map, fit_nuts
from .model import Params
from .observations import Observations, Standardizer
from .predictive import Predictive, posterior_draws

__all__ = [
    "MODES",
    "CampaignConfig",
    "default_model",
    "make_config",
    "History",
    "CampaignState",
    "Decision",
    "init",
    "init_random",
    "predictive",
    "decide",
    "record",
    "step",
]


class History(eqx.Module):
    """Per-step record of choices (``T`` steps × ``q`` points per step); unfilled rows are NaN/-1.

    Attributes:
        index: chosen candidate indices.
        x: chosen points (the very values handed to the instrument).
        acq: acquisition value of each chosen point (after penalties).
        y: measured values.
        rmse: RMSE of the predictive mean against ``problem.truth`` over the candidates at decision
            time (NaN where the problem has no ground truth).
        cost: instrument time cost of the step (``problem.cost``; 0 if it has none).
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
        params: point hyperparameters (MAP estimate, held values, or NUTS posterior mean): the
            warm start of the next fit.
        samples: hyperparameter samples with a leading sample axis (``S = 1`` except in NUTS).
        scaler: the target standardisation used by the model.
        cache: ``PredictiveCache`` over the candidates (``"fixed"`` mode) or ``None``.
        measured: ``(m,)`` candidates already measured (excluded unless repeats are allowed).
        position: probe position (the last measured point).
        key: PRNG key.
        step: number of steps taken.
        policy: index into ``config.acquisitions`` (lets a runner switch strategy without
            recompiling; ``vmap``-able for strategy benchmarks).
        history: per-step record.
    """

    obs: Observations
    params: Params
    samples: Params
    scaler: Standardizer
    cache: PredictiveCache | None
    measured: Bool[Array, " m"]
    position: Float[Array, " d"]
    key: PRNGKeyArray
    step: Int[Array, ""]
    policy: Int[Array, ""]
    history: History


class Decision(eqx.Module):
    """One decision: chosen candidate indices, points, their acquisition values, the predictive."""

    index: Int[Array, " q"]
    x: Float[Array, "q d"]
    acq: Float[Array, " q"]
    scores: Float[Array, " m"]
    pred: Predictive
    samples: Params
    params: Params
    scaler: Standardizer


# --------------------------------------------------------------------------------------------
def _sign(problem) -> float:
    return 1.0 if getattr(problem, "maximize", True) else -1.0


def _expand(tree):
    return jax.tree_util.tree_map(lambda a: a[None] if eqx.is_array(a) else a, tree)


@jax.jit  # module-level jit: eager calls (init, resume) reuse one compiled program
def _match_candidates(C, X):
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
    params: Params | None = None,
) -> CampaignState:
    """Campaign state holding the seed measurements ``(X0, y0)`` with room for ``num_steps``.

    ``params`` (constrained hyperparameters for the standardised targets) are the first warm
    start; in ``"fixed"`` mode they are held for the whole campaign (default: a MAP fit to the
    seed data, done here once).
    """
    C = jnp.asarray(problem.candidates)
    X0 = jnp.asarray(X0, C.dtype)
    y0 = jnp.asarray(y0, C.dtype)
    if X0.ndim != 2 or X0.shape[1] != C.shape[1] or y0.shape != X0.shape[:1]:
        raise ValueError(f"X0 must be (n, {C.shape[1]}) and y0 (n,); got {X0.shape}, {y0.shape}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be positive, got {num_steps}")
    n0 = X0.shape[0]
    obs = Observations.empty(n0 + num_steps * config.q, C.shape[1], C.dtype).extend(X0, y0)
    scaler = _scaler(config, obs)
    if params is None:
        params = config.model.init_params(C.dtype)
        if config.mode == "fixed":
            params = fit_map(
                config.model,
                scaler.apply(obs),
                params,
                num_steps=config.map_steps,
                tol=config.map_tol,
            )[0]
    params = {k: jnp.asarray(v, C.dtype) for k, v in params.items()}
    samples = _expand(params)
    if config.mode == "nuts":
        samples = jax.tree_util.tree_map(
            lambda a: jnp.repeat(a[None], config.num_samples, axis=0), params
        )
    cache = None
    if config.mode == "fixed":
        cache = config.model.build(params).condition(scaler.apply(obs)).cache(C)
    j = _match_candidates(C, X0)
    measured = (
        jnp.zeros(C.shape[0], bool).at[jnp.where(j >= 0, j, C.shape[0])].set(True, mode="drop")
    )
    return CampaignState(
        obs=obs,
        params=params,
        samples=samples,
        scaler=scaler,
        cache=cache,
        measured=measured,
        position=X0[-1],
        key=key,
        step=jnp.zeros((), jnp.int32),
        policy=jnp.zeros((), jnp.int32),
        history=History.empty(num_steps, config.q, C.shape[1], C.dtype),
    )


def init_random(
    key: PRNGKeyArray,
    config: CampaignConfig,
    problem: Any,
    num_init: int,
    *,
    num_steps: int,
    params: Params | None = None,
) -> CampaignState:
    """Measure ``num_init`` distinct random candidates, then :func:`init` (pure; ``jit``-able)."""
    C = jnp.asarray(problem.candidates)
    if not 1 <= num_init <= C.shape[0]:
        raise ValueError(f"num_init must be in [1, {C.shape[0]}], got {num_init}")
    k_idx, k_meas, k_state = jax.random.split(key, 3)
    idx = jax.random.choice(k_idx, C.shape[0], (num_init,), replace=False)
    X0 = C[idx]
    y0 = measure_batch(problem, k_meas, X0)
    return init(config, problem, X0, y0, num_steps=num_steps, key=k_state, params=params)


def _scaler(config, obs):
    if config.standardize:
        return Standardizer.fit(obs)
    one = jnp.ones((), obs.y.dtype)
    return Standardizer(shift=0.0 * one, scale=one)


def _fit(state: CampaignState, config: CampaignConfig, key):
    """Returns (params, samples, scaler) after this step's fit."""
    if config.mode == "fixed":
        return state.params, state.samples, state.scaler
    scaler = _scaler(config, state.obs)
    obs_s = scaler.apply(state.obs)
    if config.mode == "map":
        params, _ = fit_map(
            config.model, obs_s, state.params, num_steps=config.map_steps, tol=config.map_tol
        )
        return params, _expand(params), scaler
    res = fit_nuts(
        config.model,
        obs_s,
        key,
        num_warmup=config.num_warmup,
        num_samples=config.num_samples,
        init=state.params,
    )
    samples = jax.tree_util.tree_map(lambda a: a[0], res.samples)
    params = jax.tree_util.tree_map(lambda a: jnp.mean(a, axis=0), samples)
    return params, samples, scaler


def _posteriors(config: CampaignConfig, samples: Params, scaler: Standardizer, obs):
    obs_s = scaler.apply(obs)
    return jax.vmap(lambda s: config.model.build(s).condition(obs_s))(samples)


def predictive(
    config: CampaignConfig,
    samples: Params,
    scaler: Standardizer,
    obs: Observations,
    candidates: Float[Array, "m d"],
) -> Predictive:
    """Per-sample predictive mean and variance of ``f`` over the candidates, original units.

    Candidates are processed in chunks of ``config.chunk_size`` (all samples ``vmap``-ped per
    chunk), so memory is O(S·N·chunk).
    """
    return _predict(config, _posteriors(config, samples, scaler, obs), scaler, candidates)


def _predict(config, posts, scaler, candidates):
    def block(X):
        return jax.vmap(lambda p: p._predict_block(X, False))(posts)

    chunk = config.chunk_size or candidates.shape[0]
    if chunk >= candidates.shape[0]:
        m, v = block(candidates)
    else:
        m, v = map_chunks(lambda X: tuple(a.T for a in block(X)), candidates, chunk)
        m, v = m.T, v.T
    return Predictive(mean=m * scaler.scale + scaler.shift, var=v * scaler.scale**2)


def decide(state: CampaignState, config: CampaignConfig, problem: Any) -> Decision:
    """Fit, predict over ``problem.candidates``, score, penalise and choose ``config.q`` points."""
    C = jnp.asarray(problem.candidates)
    k_fit, k_acq = jax.random.split(jax.random.fold_in(state.key, 1))
    params, samples, scaler = _fit(state, config, k_fit)
    if config.mode == "fixed":
        c = state.cache
        posts = _expand(c.posterior)
        pred = Predictive(
            mean=(c.mean * scaler.scale + scaler.shift)[None], var=(c.var * scaler.scale**2)[None]
        )
    else:
        posts = _posteriors(config, samples, scaler, state.obs)
        pred = _predict(config, posts, scaler, C)
    if config.num_draws:
        draws = posterior_draws(
            posts,
            jax.random.fold_in(k_acq, 1),
            C,
            config.num_draws,
            method=config.draw_method,
            num_features=config.draw_features,
            chunk_size=config.chunk_size,
        )
        pred = pred._replace(draws=draws * scaler.scale + scaler.shift)
    sign = _sign(problem)
    pred_up = Predictive(
        mean=sign * pred.mean, var=pred.var, draws=None if pred.draws is None else sign * pred.draws
    )
    best = jnp.max(jnp.where(state.obs.mask, sign * state.obs.y, -jnp.inf))
    fns = [lambda p=p: p(pred_up, best=best, key=k_acq) for p in config.acquisitions]
    scores = fns[0]() if len(fns) == 1 else jax.lax.switch(state.policy, fns)
    scores = apply_penalties(scores, config, state, pred_up, problem)
    ctx = {
        "posts": posts,
        "cache": state.cache,
        "scaler": scaler,
        "sign": sign,
        "best": best,
        "allowed": scores > -jnp.inf,
        "policy": state.policy,
        "key": jax.random.fold_in(k_acq, 2),
    }
    index, acq = select_batch(scores, C, config, params, ctx)
    return Decision(
        index=index,
        x=C[index],
        acq=acq,
        scores=scores,
        pred=pred,
        samples=samples,
        params=params,
        scaler=scaler,
    )


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
    obs = state.obs.extend(x, y)
    cache = state.cache
    if config.mode == "fixed":
        ys = (y - state.scaler.shift) / state.scaler.scale
        for i in range(config.q):
            cache = cache.add(x[i], ys[i])
    t = state.step
    h = state.history
    rmse, cost = jnp.nan * jnp.ones((), x.dtype), jnp.zeros((), x.dtype)
    if problem is not None and config.track_rmse and hasattr(problem, "truth"):
        mean = jnp.mean(decision.pred.mean, axis=0)
        rmse = jnp.sqrt(jnp.mean((mean - problem.truth(jnp.asarray(problem.candidates))) ** 2))
    if problem is not None and hasattr(problem, "cost"):
        prev = jnp.concatenate([state.position[None], x[:-1]])
        cost = jnp.sum(jax.vmap(problem.cost)(x, prev)).astype(x.dtype)
    history = History(
        index=h.index.at[t].set(decision.index),
        x=h.x.at[t].set(x),
        acq=h.acq.at[t].set(decision.acq),
        y=h.y.at[t].set(y),
        rmse=h.rmse.at[t].set(rmse),
        cost=h.cost.at[t].set(cost),
    )
    return CampaignState(
        obs=obs,
        params=decision.params,
        samples=decision.samples,
        scaler=decision.scaler,
        cache=cache,
        measured=state.measured.at[decision.index].set(True),
        position=x[-1],
        key=jax.random.fold_in(state.key, 2),
        step=t + 1,
        policy=state.policy,
        history=history,
    )


def step(state: CampaignState, config: CampaignConfig, problem: Any) -> CampaignState:
    """One campaign step: :func:`decide`, measure ``decision.x`` on ``problem``, :func:`record`.

    ``problem`` needs ``candidates`` and either ``measure(key, x)`` (a pure JAX simulator) or
    ``measure_batch(key, X)`` (e.g. a ``jax.pure_callback`` instrument).
    """
    decision = decide(state, config, problem)
    y = measure_batch(problem, jax.random.fold_in(state.key, 3), decision.x)
    return record(state, config, decision, y, problem)
