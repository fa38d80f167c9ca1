r"""Deep-kernel GP surrogates: network weights and kernel hyperparameters trained jointly on the
exact marginal likelihood (Adam, one ``lax.scan``), warm-started from the previous step.

* :class:`DKLGP` — ``num_members`` networks initialised independently and trained side by side
  under ``vmap`` (``num_members=1``: one deep-kernel GP; more: a deep ensemble). Members are the
  surrogate's sample axis, so the predictive is their equal-weight mixture (mean of means;
  variance = mean of variances + variance of means), exactly as for NUTS samples, and every
  acquisition rule, fantasy and selector of the library works unchanged.
* :class:`DKLNUTS` — the same training, then NUTS over the kernel hyperparameters with the
  trained network held (a Bayesian GP head on learned features).

Shapes never change: the buffer has a fixed capacity, the network and the patches are fixed,
so a campaign of any length compiles its update once. Adam, not L-BFGS, because it runs
unchanged under ``vmap`` (members, seeds, channels) with a fixed number of steps.

The kernel's lengthscale lives in *feature* space: :meth:`DKLGP.length_scale` refuses (give the
exclusion selector a radius in pixels), and pathwise (random-feature) draws use the base kernel's
spectrum on the network's features (:func:`jaxscope.gp.sampling.pathwise_samples`).

Example:
    >>> fam = DeepKernelFamily(CNN(), patches=extract(image, 16))
    >>> sur = DKLGP(fam, train_steps=200, num_members=4)
    >>> state = sur.update(sur.init(key, obs), obs, key)
    >>> sur.embed(state, C)            # (members, m, latent) for latent-space plots
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, ArrayLike, Float

from ..decide.gp_surrogates import GPState, GPSurrogate
from ..gp import Observations, Params, fit_nuts
from ..runtime.jit import jit
from .family import NET, DeepKernelFamily


def _check_batch_size(batch_size) -> None:
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 2):
        raise ValueError(f"batch_size must be an integer of at least 2, or None for all rows; "
                         f"got {batch_size!r}")  # fmt: skip


def _minibatch(obs: Observations, key, size: int) -> tuple[Observations, Array]:
    """``size`` rows drawn without replacement among the real ones (Gumbel top-k on the mask),
    and the factor ``n / m`` (real rows over real rows drawn) that makes the mini-batch's log
    likelihood an estimate on the scale of the whole buffer's."""
    g = jax.random.gumbel(key, (obs.capacity,), obs.y.dtype)
    _, idx = jax.lax.top_k(jnp.where(obs.mask, g, -jnp.inf), size)
    sub = Observations(obs.X[idx], obs.y[idx], obs.mask[idx], jnp.sum(obs.mask[idx]))
    scale = jnp.sum(obs.mask) / jnp.maximum(sub.count, 1)
    return sub, scale.astype(obs.y.dtype)


@jit
def _train(fam: DeepKernelFamily, obs: Observations, u0: Params, steps: int, lr: float,
           batch: int | None = None, key=None):  # fmt: skip
    """Adam on ``-log p(y|θ, w) - log p(θ) - log p(w)`` from ``u0`` (unconstrained); returns the
    final ``u`` and the loss after every step ``(steps,)``. With ``batch`` every step uses the
    log likelihood of ``batch`` random real rows scaled by ``n / batch`` (stochastic
    mini-batch marginal likelihood: Chen, Wang, Zhu, Aravkin, Zhang, "Stochastic gradient
    descent in correlated settings: a study on Gaussian processes", NeurIPS 2020), an
    ``O(batch³)`` step instead of ``O(n³)``."""
    opt = optax.adam(lr)
    use_batch = batch is not None and batch < obs.capacity

    def loss(u, k):
        params = fam.constrain(u)
        if not use_batch:
            return -fam.log_posterior(params, obs)
        sub, scale = _minibatch(obs, k, batch)
        lml = fam.build(params).log_marginal_likelihood(sub)
        return -(scale * lml + fam.log_prior(params))

    def step(carry, k):
        u, s = carry
        value, g = jax.value_and_grad(loss)(u, k)
        upd, s = opt.update(g, s, u)
        return (optax.apply_updates(u, upd), s), value

    keys = jax.random.split(jax.random.key(0) if key is None else key, steps)
    (u, _), losses = jax.lax.scan(step, (u0, opt.init(u0)), keys)
    return u, losses


def train(
    fam: DeepKernelFamily,
    obs: Observations,
    params: Params,
    *,
    steps: int = 200,
    lr: float = 1e-2,
    batch_size: int | None = None,
    key=None,
) -> tuple[Params, Array]:
    """Train one deep-kernel GP from ``params`` (constrained, with ``"net"``) on ``obs`` (model
    units); ``(params, losses)``. ``batch_size``: rows per step (mini-batch marginal
    likelihood, drawn with ``key``; ``None`` or at least the buffer's capacity: all rows, exact).
    Pure: ``vmap`` it over members, seeds or target channels."""
    _check_batch_size(batch_size)
    u, losses = _train(fam, obs, fam.unconstrain(params), steps, lr, batch_size, key)
    return fam.constrain(u), losses


def train_channels(
    fam: DeepKernelFamily, obs: Observations, Y: Float[Array, "n t"], params: Params, **kw
) -> tuple[Params, Array]:
    """One deep-kernel GP per target channel (columns of ``Y``, rows aligned with ``obs``),
    trained side by side under ``vmap``; ``params`` has a leading channel axis."""
    if Y.ndim != 2 or Y.shape[0] != obs.capacity:
        raise ValueError(f"Y must have shape ({obs.capacity}, channels); got {Y.shape}")

    def one(y, p):
        return train(fam, eqx.tree_at(lambda o: o.y, obs, jnp.where(obs.mask, y, 0.0)), p, **kw)

    return jax.vmap(one, in_axes=(1, 0))(Y, params)


REFIT_FROM = ("previous", "init", "shrink-perturb", "previous+init")


class DKLGP(GPSurrogate):
    """Deep-kernel GP (or deep ensemble) refitted by Adam at every update (module docstring).

    Attributes:
        model: a :class:`~jaxscope.dkl.DeepKernelFamily` (its network learns; not held).
        num_members: independently initialised networks trained under ``vmap``.
        train_steps: Adam steps per update.
        learning_rate: Adam's step size.
        refit_from: where each update's training starts: ``"previous"`` (the default: the
            previous step's weights, a warm start) or ``"init"`` (fresh weights drawn from the
            update's key every step: gpax's ``viDKL`` loop, which builds a new model per step;
            the new random features explore more — on the 50×50 PFM twin it found more of the
            top-1 % pixels in 200 steps, ``benchmarks/dkl.py``).
        shrink, perturb: with ``refit_from="shrink-perturb"``, each update starts from
            ``shrink · previous + perturb · fresh`` weights (fresh from the update's key) and
            the previous hyperparameters: a warm start that keeps the features' memory but
            leaves the basin of an early fit (Ash & Adams, "On warm-starting neural network
            training", NeurIPS 2020).
            ``"previous+init"`` (``num_members >= 2``): the first ``ceil(E/2)`` members start
            from their previous weights and the others from fresh weights every update; the
            predictive is their mixture, so the warm members' memory is kept while the fresh
            members' disagreement with them (the mixture's variance of means) keeps sending
            the acquisition to what the warm features have not yet seen.
        batch_size: rows per Adam step (mini-batch marginal likelihood, :func:`train`), or
            ``None`` for every observed row (exact).
    """

    model: DeepKernelFamily
    num_members: int = eqx.field(static=True, default=1)
    train_steps: int = eqx.field(static=True, default=200)
    learning_rate: float = eqx.field(static=True, default=1e-2)
    refit_from: str = eqx.field(static=True, default="previous")
    shrink: float = eqx.field(static=True, default=0.6)
    perturb: float = eqx.field(static=True, default=0.4)
    batch_size: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if not isinstance(self.model, DeepKernelFamily) or self.model.held:
            raise ValueError("DKLGP needs a DeepKernelFamily whose network is not held")
        if self.num_members < 1 or self.train_steps < 1:
            raise ValueError("num_members and train_steps must be positive")
        if self.refit_from not in REFIT_FROM:
            raise ValueError(f"unknown refit_from {self.refit_from!r}; use one of {REFIT_FROM}")
        if self.refit_from == "previous+init" and self.num_members < 2:
            raise ValueError("refit_from='previous+init' needs num_members >= 2 (warm and fresh)")
        _check_batch_size(self.batch_size)
        if not (0.0 <= self.shrink <= 1.0 and self.perturb >= 0.0):  # NaN fails both
            raise ValueError(
                f"shrink must be in [0, 1] and perturb >= 0; got {self.shrink}, {self.perturb}"
            )

    def _members(self, key, dtype) -> Params:
        keys = jax.random.split(key, self.num_members)
        hyper = self.model.init_hyper(dtype)
        return jax.vmap(lambda k: {**hyper, NET: self.model.init_weights(k, dtype)})(keys)

    def _state(self, members: Params, obs: Observations, losses=None, scaler=None) -> GPState:
        scaler = self._scaler(obs) if scaler is None else scaler
        hyper = {k: jnp.mean(members[k], axis=0) for k in self.model.hyper_names}
        # the best member's final training loss (NaN before the first training): always
        # present, so the state's structure never changes between steps
        dt = obs.y.dtype
        hyper["loss"] = jnp.asarray(jnp.nan, dt) if losses is None else jnp.min(losses[:, -1])
        return GPState(hyper, members, scaler, self._condition(members, scaler, obs))

    def init(self, key, obs: Observations) -> GPState:
        """Fresh weights (linen's initialisers; member ``i`` from ``split(key)[i]``),
        hyperparameters at their priors' medians; no training until the first update."""
        return self._state(self._members(key, obs.X.dtype), obs)

    def fit(
        self, members: Params, obs: Observations, scaler=None, key=None
    ) -> tuple[Params, Array]:
        """Train every member from ``members`` on ``obs`` (in the units of ``scaler``, default
        the surrogate's scaling of ``obs``); ``(members, losses (E, steps))``. ``key`` draws
        the mini-batches (with ``batch_size``; member ``i`` from ``split(key)[i]``)."""
        obs_s = (self._scaler(obs) if scaler is None else scaler).apply(obs)
        keys = jax.random.split(jax.random.key(0) if key is None else key, self.num_members)

        def one(p, k):
            return train(self.model, obs_s, p, steps=self.train_steps, lr=self.learning_rate,
                         batch_size=self.batch_size, key=k)  # fmt: skip

        return jax.vmap(one)(members, keys)

    def _start(self, previous: Params, key, dtype) -> Params:
        """Where an update's training starts (``refit_from``): the previous members
        (deterministic), fresh ones from ``key``, or the shrunk previous weights plus scaled
        fresh ones."""
        if self.refit_from == "previous":
            return previous
        fresh = self._members(key, dtype)
        if self.refit_from == "init":
            return fresh
        if self.refit_from == "previous+init":
            warm = jnp.arange(self.num_members) < (self.num_members + 1) // 2
            return jax.tree_util.tree_map(
                lambda a, b: jnp.where(warm.reshape((-1,) + (1,) * (a.ndim - 1)), a, b),
                previous, fresh,
            )  # fmt: skip
        net = jax.tree_util.tree_map(
            lambda a, b: self.shrink * a + self.perturb * b, previous[NET], fresh[NET]
        )
        return {**previous, NET: net}

    def update(self, state: GPState, obs: Observations, key) -> GPState:
        start = self._start(state.samples, key, obs.X.dtype)
        scaler = self._scaler(obs)  # one scaling for training and conditioning
        members, losses = self.fit(start, obs, scaler, jax.random.fold_in(key, 1))
        return self._state(members, obs, losses, scaler)

    def embed(self, state: GPState, X: Float[ArrayLike, "m d"]) -> Float[Array, "e m k"]:
        """Every member's features of the rows of ``X`` (latent-space plots)."""
        return jax.vmap(lambda p: self.model.features(p, X))(state.samples)

    def length_scale(self, state: GPState) -> Array:
        raise ValueError(
            "a deep kernel's lengthscale lives in feature space, not in input space: give the "
            "exclusion selector an explicit radius (pixels)"
        )

    def summary(self, state: GPState) -> dict:
        return state.params  # hyperparameters (member means) and the final loss, no weights


class DKLNUTS(DKLGP):
    """:class:`DKLGP` training (one member by default), then NUTS over the kernel
    hyperparameters with the trained network held: ``num_samples`` GP heads on one feature
    map (weights broadcast along the sample axis, so the surrogate's paths are shared)."""

    num_warmup: int = eqx.field(static=True, default=200)
    num_samples: int = eqx.field(static=True, default=100)

    def _held(self, members: Params, obs_s: Observations, key) -> tuple[Params, Params]:
        best = jnp.argmax(jax.vmap(lambda p: self.model.log_posterior(p, obs_s))(members))
        w = jax.tree_util.tree_map(lambda a: a[best], members[NET])
        fam = self.model.hold(w)
        res = fit_nuts(
            fam, obs_s, key, num_warmup=self.num_warmup,
            num_samples=self.num_samples, dense_mass=True,
            init={k: members[k][best] for k in self.model.hyper_names},
        )  # fmt: skip
        hyper = jax.tree_util.tree_map(lambda a: a[0], res.samples)
        net = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (self.num_samples, *a.shape)), w)
        return {**hyper, NET: net}, members

    def init(self, key, obs: Observations):
        members = self._members(key, obs.X.dtype)
        first = jax.tree_util.tree_map(lambda a: a[:1], members)
        samples = jax.tree_util.tree_map(lambda a: jnp.repeat(a, self.num_samples, axis=0), first)
        return _NUTSState(self._state(samples, obs), members)

    def update(self, state, obs: Observations, key):
        scaler = self._scaler(obs)
        members, losses = self.fit(state.trained, obs, scaler, jax.random.fold_in(key, 1))
        samples, members = self._held(members, scaler.apply(obs), key)
        return _NUTSState(self._state(samples, obs, losses, scaler), members)

    def embed(self, state, X):
        return super().embed(state.gp, X)[:1]

    def summary(self, state) -> dict:
        return state.gp.params

    # the GP paths read the GPState inside
    def predictive(self, state, X, *, key=None, num_draws: int = 0):
        return super().predictive(state.gp, X, key=key, num_draws=num_draws)

    def condition(self, state, X, y):
        return eqx.tree_at(lambda s: s.gp, state, super().condition(state.gp, X, y))

    def belief(self, state, candidates, room: int = 0):
        return super().belief(state.gp, candidates, room)


class _NUTSState(eqx.Module):
    gp: GPState
    trained: Params  # the trained members (warm start of the next update)
