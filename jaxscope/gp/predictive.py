r"""The predictive distribution over a candidate set, as seen by acquisition rules.

A :class:`Predictive` holds, for each of ``s`` hyperparameter samples (``s = 1`` for a MAP fit,
``s`` = number of NUTS draws for a fully Bayesian fit), the Gaussian predictive mean and variance
of the latent function at ``m`` candidates, plus optional joint function draws (for Thompson
sampling and Monte Carlo batch rules). The full predictive is the equal-weight mixture

.. math:: p(f(x)\mid\mathcal D) = \frac1s \sum_{i=1}^{s}\mathcal N(\mu_i(x), \sigma_i^2(x)),

which is what every acquisition rule marginalises over (exactly, sample by sample).

Builders: :func:`from_moments` (arrays), :func:`from_posterior` (a :class:`~jaxscope.gp.Posterior`
or a batch of them with a leading sample axis), :func:`from_cache` (a
:class:`~jaxscope.gp.PredictiveCache`, possibly batched), :func:`from_model` (MAP parameters) and
:func:`from_samples` (hyperparameter samples, e.g. from :func:`~jaxscope.gp.fit_nuts`).

The builders are compiled with ``equinox.filter_jit`` (arrays traced, everything else static), so
eager calls in a notebook cost one compilation per shape, not one per primitive.

Example:
    >>> post = gp.condition(obs)
    >>> pred = from_posterior(post, Xc, key=jax.random.key(0), num_draws=1)
    >>> pred.mean.shape, pred.draws.shape
    ((1, m), (1, m))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ..kernels import as_points
from ..runtime.jit import jit
from .exact import Posterior, PredictiveCache, moments_from_solve
from .linalg import map_chunks, triangular_inverse
from .model import stack_params
from .observations import Observations


class Predictive(NamedTuple):
    """Per-sample predictive moments over ``m`` candidates and optional joint draws.

    Attributes:
        mean: ``(s, m)`` predictive means, one row per hyperparameter sample.
        var: ``(s, m)`` predictive variances of the latent ``f`` (not of noisy ``y``).
        draws: ``(n, m)`` joint posterior function draws over the candidates (each row from a
            hyperparameter sample chosen so that the rows follow the mixture), or ``None``.
    """

    mean: Float[Array, "s m"]
    var: Float[Array, "s m"]
    draws: Float[Array, "n m"] | None = None

    @property
    def num_samples(self) -> int:
        return self.mean.shape[0]

    @property
    def num_candidates(self) -> int:
        return self.mean.shape[1]

    def moments(self) -> tuple[Float[Array, " m"], Float[Array, " m"]]:
        """Mean and variance of the mixture (law of total variance)."""
        return mixture_moments(self.mean, self.var)


def _as_2d(a: ArrayLike, name: str) -> Array:
    a = jnp.asarray(a)
    if a.ndim == 1:
        return a[None, :]
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (m,) or (s, m), got {a.shape}")
    return a


def from_moments(mean: ArrayLike, var: ArrayLike, draws: ArrayLike | None = None) -> Predictive:
    """A :class:`Predictive` from arrays; ``(m,)`` inputs become ``(1, m)``.

    Raises:
        ValueError: if the shapes of ``mean``, ``var`` and ``draws`` do not agree.
    """
    mean, var = _as_2d(mean, "mean"), _as_2d(var, "var")
    if mean.shape != var.shape:
        raise ValueError(f"mean {mean.shape} and var {var.shape} must have the same shape")
    if draws is not None:
        draws = _as_2d(draws, "draws")
        if draws.shape[1] != mean.shape[1]:
            raise ValueError(f"draws {draws.shape} must have {mean.shape[1]} columns like mean")
    dtype = jnp.result_type(mean, var)
    return Predictive(
        mean.astype(dtype), var.astype(dtype), None if draws is None else draws.astype(dtype)
    )


def _is_batched_posterior(post: Posterior) -> bool:
    return post.L.ndim == 3


def _take(tree: Any, j) -> Any:
    """Row ``j`` of every array leaf (select one sample of a batched pytree)."""
    return jax.tree_util.tree_map(lambda a: a[j] if eqx.is_array(a) else a, tree)


@jit
def posterior_draws(
    post: Posterior,
    key: PRNGKeyArray,
    Xc: ArrayLike,
    num_draws: int,
    *,
    method: str = "auto",
    num_features: int = 2048,
    chunk_size: int | None = None,
) -> Float[Array, "n m"]:
    r"""Joint function draws at ``Xc`` from a posterior or from the mixture of a batch of them.

    For a batch of ``s`` posteriors (leading axis on every array leaf) the draws follow the
    equal-weight mixture exactly: with ``n ≥ s`` each posterior gives ``⌈n/s⌉`` draws and ``n``
    rows are taken at random from the pooled rows (each row is then marginally a mixture draw; one
    Cholesky per sample); with ``n < s`` each draw comes from its own sample, the ``n`` samples
    chosen without replacement. ``method`` is passed to :meth:`Posterior.sample` (``"exact"``
    forms the ``m × m`` covariance; ``"pathwise"`` uses random Fourier features).
    """
    Xc = as_points(Xc, "Xc")

    def one(p, k, n):
        return p.sample(k, Xc, n, method=method, num_features=num_features, chunk_size=chunk_size)

    if not _is_batched_posterior(post):
        return one(post, key, num_draws)
    s = post.L.shape[0]
    k_perm, k_draw = jax.random.split(key)
    if num_draws >= s:
        per = -(-num_draws // s)
        keys = jax.random.split(k_draw, s)
        pooled = eqx.filter_vmap(lambda p, k: one(p, k, per))(post, keys)  # (s, per, m)
        pooled = pooled.reshape(s * per, -1)
        rows = jax.random.permutation(k_perm, s * per)[:num_draws]
        return pooled[rows]
    idx = jax.random.permutation(k_perm, s)[:num_draws]
    keys = jax.random.split(k_draw, num_draws)
    return jax.vmap(lambda j, k: one(_take(post, j), k, 1)[0])(idx, keys)


@jit
def from_posterior(
    post: Posterior,
    Xc: ArrayLike,
    *,
    chunk_size: int | None = None,
    include_noise: bool = False,
    key: PRNGKeyArray | None = None,
    num_draws: int = 0,
    method: str = "auto",
    num_features: int = 2048,
) -> Predictive:
    """Predictive over candidates ``Xc`` from one posterior (``s = 1``) or a batch of them.

    Args:
        post: a :class:`~jaxscope.gp.Posterior`, or a batch with a leading sample axis on every
            array leaf (e.g. ``eqx.filter_vmap(lambda p: model.build(p).condition(obs))(samples)``).
        Xc: ``(m, d)`` candidates.
        chunk_size: predict in chunks of this many candidates (memory O(N · chunk)).
        include_noise: moments of noisy ``y`` instead of ``f`` (acquisitions normally want ``f``).
        key, num_draws: also draw ``num_draws`` joint samples (see :func:`posterior_draws`).
        method, num_features: sampling method for the draws.
    """
    Xc = as_points(Xc, "Xc")
    mean, var = sample_moments(post, Xc, chunk_size=chunk_size, include_noise=include_noise)
    draws = None
    if num_draws:
        if key is None:
            raise ValueError("num_draws > 0 needs a PRNG key")
        draws = posterior_draws(
            post,
            key,
            Xc,
            num_draws,
            method=method,
            num_features=num_features,
            chunk_size=chunk_size,
        )
    return from_moments(mean, var, draws)


@jit
def from_cache(
    cache: PredictiveCache,
    *,
    key: PRNGKeyArray | None = None,
    num_draws: int = 0,
    method: str = "auto",
    num_features: int = 2048,
) -> Predictive:
    """Predictive from a :class:`~jaxscope.gp.PredictiveCache` (or a batch: leading sample axis).

    The moments are read from the cache (no recomputation); draws, if asked for, come from the
    cache's posterior at the cache's candidates.
    """
    draws = None
    if num_draws:
        if key is None:
            raise ValueError("num_draws > 0 needs a PRNG key")
        Xc = cache.Xc[0] if cache.Xc.ndim == 3 else cache.Xc
        draws = posterior_draws(
            cache.posterior, key, Xc, num_draws, method=method, num_features=num_features
        )
    return from_moments(cache.mean, cache.var, draws)


@jit
def from_model(
    model: Any,
    params: dict,
    obs: Observations,
    Xc: ArrayLike,
    **kw: Any,
) -> Predictive:
    """Predictive of ``model.build(params)`` conditioned on ``obs`` (a MAP fit: ``s = 1``).

    ``kw`` are passed to :func:`from_posterior`.
    """
    return from_posterior(model.build(params).condition(obs), Xc, **kw)


@jit
def from_samples(
    model: Any,
    samples: Any,
    obs: Observations,
    Xc: ArrayLike,
    **kw: Any,
) -> Predictive:
    """Predictive marginalised over hyperparameter samples (one row per sample).

    Args:
        model: a :class:`~jaxscope.gp.GPModel` (anything with ``build(params) -> GP``).
        samples: a dict of arrays with one leading sample axis, or a
            :class:`~jaxscope.gp.NUTSResult` (its ``(chain, draw)`` axes are flattened).
        obs, Xc: data and ``(m, d)`` candidates.
        kw: passed to :func:`from_posterior` (``chunk_size``, ``key``, ``num_draws``, ...).
    """
    if isinstance(samples, tuple) and hasattr(samples, "samples"):  # a NUTSResult
        samples = stack_params(samples.samples)
    posts = eqx.filter_vmap(lambda p: model.build(p).condition(obs))(samples)
    return from_posterior(posts, Xc, **kw)


def incumbent(obs: Observations, *, maximize: bool = True) -> Float[Array, ""]:
    """Best observed target among the real rows of ``obs`` (max, or min with ``maximize=False``).

    An empty buffer gives ``-inf`` (``+inf`` when minimising): every improvement is then infinite,
    so give an improvement-based rule at least one observation.
    """
    if maximize:
        return jnp.max(jnp.where(obs.mask, obs.y, -jnp.inf))
    return jnp.min(jnp.where(obs.mask, obs.y, jnp.inf))


def mixture_moments(means: Float[Array, "s m"], variances: Float[Array, "s m"]):
    r"""Mean and variance of an equal-weight mixture of Gaussians (law of total variance).

    .. math:: \bar\mu = \tfrac1S \sum_s \mu_s, \qquad
              \sigma^2 = \tfrac1S \sum_s \sigma_s^2 + \tfrac1S \sum_s (\mu_s - \bar\mu)^2

    (the centred form: ``E[σ² + μ²] - μ̄²`` would lose all precision in float32 when
    ``|μ| ≫ σ``; with one sample this returns the variance unchanged).
    """
    mean = jnp.mean(means, axis=0)
    var = jnp.mean(variances, axis=0) + jnp.mean((means - mean) ** 2, axis=0)
    return mean, var


def sample_moments(
    post: Posterior,
    Xc: Float[Array, "m d"],
    *,
    chunk_size: int | None = None,
    sample_batch: int | None = None,
    include_noise: bool = False,
    mixture: bool = False,
):
    """Predictive moments at ``Xc`` for each sample of a batch of posteriors, in chunks.

    The one chunked, sample-batched prediction path of jaxscope (campaign decisions, the
    :func:`from_posterior` builders, :func:`predict_mixture` and ``predict_nuts`` all use it).
    One triangular inverse ``L⁻¹`` per sample, then for each chunk of candidates
    ``V = L⁻¹ K(X, X*)`` is one matrix product per sample (on CPU a large matrix product is
    about ten times faster than the equivalent batched triangular solve), ``sample_batch``
    samples at a time. Temporary memory is O(S·N² + sample_batch · N · chunk_size); no
    ``m × m`` matrix is formed.

    Args:
        post: a :class:`~jaxscope.gp.Posterior`, or a batch with a leading sample axis.
        chunk_size: candidates per chunk (default: as many as keep ``sample_batch · N · chunk``
            under 16 M elements).
        sample_batch: samples processed together. ``None``: one at a time on CPU, all at once
            on accelerators.
        mixture: return the moments of the equal-weight mixture, ``(m,)`` each, reduced chunk
            by chunk (never holding ``S × m``); otherwise per-sample ``(S, m)`` moments.
    """
    if not _is_batched_posterior(post):
        post = jax.tree_util.tree_map(lambda a: a[None] if eqx.is_array(a) else a, post)
    S, cap = post.L.shape[0], post.L.shape[1]
    if sample_batch is None:
        sample_batch = 1 if jax.default_backend() == "cpu" else S
    elif int(sample_batch) < 1:
        raise ValueError(f"sample_batch must be at least 1, got {sample_batch}")
    sample_batch = min(int(sample_batch), S)
    if chunk_size is None:
        chunk_size = max(1, min(Xc.shape[0], (1 << 24) // (sample_batch * cap)))
    L_inv = jax.vmap(triangular_inverse)(post.L)
    arrays, static = eqx.partition(post, eqx.is_array)

    def block(X):
        def one(args):
            a, Li = args
            p = eqx.combine(a, static)
            return moments_from_solve(p.gp, p.w, Li @ p.cross(X), X, include_noise)

        batch = sample_batch if sample_batch > 1 else None
        m, v = jax.lax.map(one, (arrays, L_inv), batch_size=batch)
        return mixture_moments(m, v) if mixture else (m.T, v.T)

    out = map_chunks(block, Xc, chunk_size)
    return out if mixture else (out[0].T, out[1].T)


def predict_mixture(
    build: Callable[[Any], Any],
    samples: Any,
    obs: Observations,
    Xnew: ArrayLike,
    *,
    chunk_size: int | None = None,
    include_noise: bool = False,
    sample_batch: int | None = None,
):
    """Predictive mean/variance marginalised over hyperparameter samples (``(m,)`` each).

    ``samples`` is a pytree whose leaves have a leading sample axis; ``build(sample) -> GP``.
    The posteriors are conditioned by ``vmap`` and the moments come from :func:`sample_moments`
    with ``mixture=True`` (see there for chunking and ``sample_batch``).
    """
    Xs = as_points(Xnew, "Xnew").astype(obs.X.dtype)
    if Xs.shape[1] != obs.dim:
        raise ValueError(f"Xnew has {Xs.shape[1]} input dimensions, the data {obs.dim}")
    posts = eqx.filter_vmap(lambda s: build(s).condition(obs))(samples)
    return sample_moments(
        posts,
        Xs,
        chunk_size=chunk_size,
        include_noise=include_noise,
        sample_batch=sample_batch,
        mixture=True,
    )
