r"""Gaussian-process surrogates: MAP refit, NUTS, and held hyperparameters with rank-1 updates.

All three keep one :class:`GPState` (a pytree of fixed shapes):

* ``params``: point hyperparameters (the MAP estimate, the held values, or the NUTS posterior
  mean): the warm start of the next fit;
* ``samples``: hyperparameter samples with a leading axis ``S`` (``S = 1`` except for NUTS);
* ``scaler``: the target standardisation the model was fitted in (model units);
* ``post``: the ``S`` posteriors (model units) conditioned on the buffer (``None`` for the held
  surrogate, whose cache holds them: ``GPState.posterior`` reads either);
* ``cache``: the held surrogate's :class:`~jaxscope.gp.PredictiveCache` over its candidates
  (rank-1 updates, O(N·M) per point), ``None`` otherwise.

Any model family works (:class:`~jaxscope.gp.ModelFamily`: a :class:`~jaxscope.gp.GPModel`, with
a physics mean function or not, or a user's class), so the structured-mean GP is
``NUTSGP(StructuredFamily(physics))`` (physics priors in physical units: the family learns the
surrogate's target scaling, :meth:`GPSurrogate.family`), the structured model without a GP
``NUTSGP(StructuredFamily(physics, kernel=None))``, or ``MAPGP`` of either. Targets are
standardised (``standardize=True``) with a scaler refitted at every update, except by
:class:`HeldGP`, which freezes it at :meth:`~HeldGP.init` so that its rank-1 updates stay exact.

Example:
    >>> surrogate = MAPGP(default_model(C))            # refit every step, warm start
    >>> state = surrogate.init(key, obs)
    >>> state = surrogate.update(state, obs.add(x, y), key)
    >>> pred = surrogate.predictive(state, C)          # original units
"""

from __future__ import annotations

from functools import partial
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..gp import (
    ModelFamily,
    Observations,
    Params,
    Posterior,
    Predictive,
    PredictiveCache,
    Standardizer,
    fit_map,
    fit_nuts,
    from_cache,
    from_posterior,
    posterior_draws,
)
from .surrogate import Belief, Surrogate
from .units import model_to_original, original_to_model, values_to_original


class GPState(eqx.Module):
    """State of a GP surrogate (see the module docstring)."""

    params: Params
    samples: Params
    scaler: Standardizer
    post: Posterior | None
    cache: PredictiveCache | None = None

    @property
    def posterior(self) -> Posterior:
        """The posteriors: the cache's own when there is one (never stored twice)."""
        return self.cache.posterior if self.cache is not None else self.post


def _expand(tree):
    return jax.tree_util.tree_map(lambda a: a[None] if eqx.is_array(a) else a, tree)


class GPSurrogate(Surrogate):
    """What the three GP surrogates share: conditioning, prediction, fantasies, beliefs.

    Keyword-only settings: ``standardize`` the targets (model units), ``chunk_size`` of the
    predictive pass over candidates, ``draw_method`` / ``draw_features`` of joint draws
    (``"auto"``, ``"exact"`` or ``"pathwise"`` with that many random features). Subclasses add
    ``model`` (any :class:`~jaxscope.gp.ModelFamily`) and their own fields.
    """

    standardize: bool = eqx.field(static=True, default=True, kw_only=True)
    chunk_size: int | None = eqx.field(static=True, default=4096, kw_only=True)
    draw_method: str = eqx.field(static=True, default="auto", kw_only=True)
    draw_features: int = eqx.field(static=True, default=2048, kw_only=True)

    def _scaler(self, obs: Observations) -> Standardizer:
        if self.standardize:
            return Standardizer.fit(obs)
        return Standardizer.identity(obs.y.dtype)

    def family(self, scaler: Standardizer) -> ModelFamily:
        """The model family in the units ``scaler`` maps to: a family with a ``scaled`` method
        (a :class:`~jaxscope.gp.StructuredFamily`, whose physics priors are in physical units)
        learns the scaling; any other is used as it is."""
        scaled = getattr(self.model, "scaled", None)
        return scaled(scaler) if callable(scaled) else self.model

    def _condition(self, samples: Params, scaler: Standardizer, obs: Observations) -> Posterior:
        obs_s, fam = scaler.apply(obs), self.family(scaler)
        return eqx.filter_vmap(lambda s: fam.build(s).condition(obs_s))(samples)

    def _start(self, obs: Observations, params: Params | None) -> Params:
        params = self.model.init_params(obs.X.dtype) if params is None else params
        return {k: jnp.asarray(v, obs.X.dtype) for k, v in params.items()}

    def predictive(self, state: GPState, X, *, key=None, num_draws: int = 0) -> Predictive:
        return self.predict_posteriors(
            state.posterior, state.scaler, X, key=key, num_draws=num_draws
        )

    def predict_posteriors(
        self, post: Posterior, scaler: Standardizer, X, *, key=None, num_draws: int = 0
    ) -> Predictive:
        """The predictive of a batch of posteriors (model units) at ``X``, in original units."""
        pred = from_posterior(
            post,
            X,
            chunk_size=self.chunk_size,
            key=key,
            num_draws=num_draws,
            method=self.draw_method,
            num_features=self.draw_features,
        )
        return model_to_original(pred, scaler)

    def condition(self, state: GPState, X, y) -> GPState:
        k = X.shape[0]
        z = original_to_model(y, state.scaler)
        if state.cache is not None:  # the held surrogate: its cache follows the fantasies
            cache = eqx.filter_vmap(lambda c: c.padded(k))(state.cache)
            for i in range(k):
                cache = eqx.filter_vmap(lambda c, i=i: c.add(X[i], z[i]))(cache)
            return eqx.tree_at(lambda s: s.cache, state, cache)
        post = eqx.filter_vmap(lambda p: p.padded(k))(state.post)
        for i in range(k):
            post = eqx.filter_vmap(lambda p, i=i: p.add(X[i], z[i]))(post)
        return eqx.tree_at(lambda s: s.post, state, post)

    def belief(self, state: GPState, candidates, room: int = 0) -> Belief:
        if state.cache is not None:
            if state.cache.Xc.shape[1:] != jnp.shape(candidates):
                raise ValueError(
                    f"the held surrogate caches {state.cache.Xc.shape[1:]} candidates, the "
                    f"problem has {jnp.shape(candidates)}: build HeldGP with the problem's"
                )
            cache = eqx.filter_vmap(lambda c: c.padded(room))(state.cache)
            return CachedGPBelief(cache=cache, scaler=state.scaler)
        post = eqx.filter_vmap(lambda p: p.padded(room))(state.post)
        return GPBelief(surrogate=self, post=post, scaler=state.scaler, candidates=candidates)

    def length_scale(self, state: GPState) -> Array:
        ls = state.params.get("lengthscale") if isinstance(state.params, dict) else None
        if ls is None:
            raise ValueError(
                "the model has no 'lengthscale' parameter: give the exclusion selector a radius"
            )
        return ls

    def summary(self, state: GPState) -> dict:
        return state.params


REFIT_FROM = ("previous", "init", "best")
#: where MAPGP's refits start (see :class:`MAPGP`)
DEFAULT_REFIT = "best"


class MAPGP(GPSurrogate):
    """MAP hyperparameters refitted at every update (L-BFGS or Adam).

    ``refit_from`` says where each refit starts: ``"previous"`` (warm start from the last
    step's values), ``"init"`` (``init_params``, else the model's starting point, every time:
    BoTorch's loop, which builds a new model per step) or ``"best"`` (the default: both, side
    by side under ``vmap``; the higher posterior density wins). A warm start alone can stay in
    the basin of an early, wrong fit (on Levy and Rosenbrock it did); a fresh start alone loses
    what the last fit had found (on Ackley); ``benchmarks/quality.py`` measured all three.
    """

    model: ModelFamily
    init_params: Params | None = None
    map_steps: int = eqx.field(static=True, default=100)
    map_tol: float = eqx.field(static=True, default=1e-4)
    optimizer: str = eqx.field(static=True, default="lbfgs")
    refit_from: str = eqx.field(static=True, default=DEFAULT_REFIT)

    def __check_init__(self):
        if self.refit_from not in REFIT_FROM:
            raise ValueError(f"unknown refit_from {self.refit_from!r}; use one of {REFIT_FROM}")

    def init(self, key, obs: Observations) -> GPState:
        del key
        params = self._start(obs, self.init_params)
        scaler = self._scaler(obs)
        samples = _expand(params)
        return GPState(params, samples, scaler, self._condition(samples, scaler, obs))

    def update(self, state: GPState, obs: Observations, key) -> GPState:
        del key
        scaler = self._scaler(obs)
        obs_s = scaler.apply(obs)
        fit = partial(
            fit_map, self.family(scaler), obs_s, optimizer=self.optimizer, num_steps=self.map_steps,
            tol=self.map_tol,
        )  # fmt: skip
        if self.refit_from == "previous":
            params, _ = fit(state.params)
        elif self.refit_from == "init":
            params, _ = fit(self._start(obs, self.init_params))
        else:
            starts = jax.tree_util.tree_map(
                lambda a, b: jnp.stack([a, b]), state.params, self._start(obs, self.init_params)
            )
            both, info = jax.vmap(fit)(starts)
            best = jnp.argmin(jnp.where(jnp.isfinite(info.loss), info.loss, jnp.inf))
            params = jax.tree_util.tree_map(lambda a: a[best], both)
        samples = _expand(params)
        return GPState(params, samples, scaler, self._condition(samples, scaler, obs))


class NUTSGP(GPSurrogate):
    """Hyperparameters sampled by NUTS at every update (warm start from the previous mean); the
    predictive has one row per posterior sample."""

    model: ModelFamily
    init_params: Params | None = None
    num_warmup: int = eqx.field(static=True, default=200)
    num_samples: int = eqx.field(static=True, default=200)
    dense_mass: bool = eqx.field(static=True, default=True)

    def init(self, key, obs: Observations) -> GPState:
        del key
        params = self._start(obs, self.init_params)
        scaler = self._scaler(obs)
        samples = jax.tree_util.tree_map(
            lambda a: jnp.repeat(a[None], self.num_samples, axis=0), params
        )
        return GPState(params, samples, scaler, self._condition(samples, scaler, obs))

    def update(self, state: GPState, obs: Observations, key) -> GPState:
        scaler = self._scaler(obs)
        res = fit_nuts(
            self.family(scaler),
            scaler.apply(obs),
            key,
            num_warmup=self.num_warmup,
            num_samples=self.num_samples,
            dense_mass=self.dense_mass,
            init=state.params,
        )
        samples = jax.tree_util.tree_map(lambda a: a[0], res.samples)
        params = jax.tree_util.tree_map(lambda a: jnp.mean(a, axis=0), samples)
        return GPState(params, samples, scaler, self._condition(samples, scaler, obs))


class HeldGP(GPSurrogate):
    """Hyperparameters held; the predictive over ``candidates`` is a
    :class:`~jaxscope.gp.PredictiveCache` updated by rank-1 extensions (O(N·M) per point).

    ``params`` are the held values (model units); ``None`` fits them by MAP to the seed data
    once, at :meth:`init`. The scaler is frozen at :meth:`init` too, so the updates are exact.
    """

    model: ModelFamily
    candidates: Float[Array, "m d"]
    params: Params | None = None
    map_steps: int = eqx.field(static=True, default=100)
    map_tol: float = eqx.field(static=True, default=1e-4)

    def init(self, key, obs: Observations) -> GPState:
        del key
        scaler = self._scaler(obs)
        params = self._start(obs, self.params)
        if self.params is None:
            params = fit_map(
                self.family(scaler),
                scaler.apply(obs),
                params,
                num_steps=self.map_steps,
                tol=self.map_tol,
            )[0]
        samples = _expand(params)
        post = self._condition(samples, scaler, obs)
        C = jnp.asarray(self.candidates, obs.X.dtype)
        cache = eqx.filter_vmap(lambda p: p.cache(C))(post)
        return GPState(params, samples, scaler, None, cache)

    def update(self, state: GPState, obs: Observations, key) -> GPState:
        """Add the rows of ``obs`` past those already conditioned on (rank-1 each)."""
        del key
        z = state.scaler.apply(obs).y
        start = state.cache.posterior.obs.count[0]

        arrays, static = eqx.partition(state.cache, eqx.is_array)  # a loop carries arrays only

        def body(i, arrays):
            cache = eqx.combine(arrays, static)
            cache = eqx.filter_vmap(lambda c: c.add(obs.X[i], z[i]))(cache)
            return eqx.filter(cache, eqx.is_array)

        cache = eqx.combine(jax.lax.fori_loop(start, obs.count, body, arrays), static)
        return GPState(state.params, state.samples, state.scaler, None, cache)


class GPBelief(Belief):
    """A GP surrogate's posteriors over candidates; fantasies are rank-1 Cholesky extensions
    (O(N²) each) and every :meth:`predictive` is a chunked pass (O(N²·M)): memory O(N·chunk).
    :meth:`cached` trades memory (O(S·N·M)) for O(N·M) fantasies."""

    surrogate: GPSurrogate
    post: Posterior
    scaler: Standardizer
    candidates: Float[Array, "m d"]

    def predictive(self, key=None, num_draws: int = 0) -> Predictive:
        return self.surrogate.predict_posteriors(
            self.post, self.scaler, self.candidates, key=key, num_draws=num_draws
        )

    def add(self, x, y) -> GPBelief:
        z = original_to_model(y, self.scaler)
        post = eqx.filter_vmap(lambda p: p.add(x, z))(self.post)
        return eqx.tree_at(lambda b: b.post, self, post)

    def draws(self, key, X, num_draws: int):
        f = posterior_draws(self.post, key, X, num_draws, method=self.surrogate.draw_method)
        return values_to_original(f, self.scaler)

    def cached(self) -> CachedGPBelief:
        C = self.candidates
        return CachedGPBelief(eqx.filter_vmap(lambda p: p.cache(C))(self.post), self.scaler)

    def lookahead(self):
        return self.cached().lookahead()


class CachedGPBelief(Belief):
    """GP belief over candidates with the cached ``V = L⁻¹K(X, C)``: O(N·M) per fantasy."""

    cache: PredictiveCache
    scaler: Standardizer

    def predictive(self, key=None, num_draws: int = 0) -> Predictive:
        pred = from_cache(self.cache, key=key, num_draws=num_draws)
        return model_to_original(pred, self.scaler)

    def add(self, x, y) -> CachedGPBelief:
        z = original_to_model(y, self.scaler)
        return eqx.tree_at(
            lambda b: b.cache, self, eqx.filter_vmap(lambda c: c.add(x, z))(self.cache)
        )

    def draws(self, key, X, num_draws: int):
        f = posterior_draws(self.cache.posterior, key, X, num_draws)
        return values_to_original(f, self.scaler)

    def lookahead(self) -> tuple[Any, Array]:
        return self.cache, self.scaler.scale
