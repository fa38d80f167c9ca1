"""``ProbModel``: named parameters with numpyro priors and a pure mean function ``f(x, params)``.

A :class:`ProbModel` is the one description of a parametric physics model that every consumer
shares: the structured-mean GP and the hypothesis engine read ``model.fn``, ``model.priors`` and
``model.names``; on its own it gives prior / posterior predictive draws, a numpyro model for NUTS
(:meth:`ProbModel.as_numpyro`) and pointwise log-likelihoods for WAIC / PSIS-LOO.

Conventions: ``fn(x, params)`` takes ONE input point ``x`` of shape ``(dim,)`` and a dict of
parameter values (scalars or small vectors) and returns a scalar; it is pure ``jnp`` and safe
under ``jit`` / ``vmap`` / ``grad`` everywhere in the prior support. Batches of inputs are
``(n, dim)`` arrays (``(n,)`` is accepted when ``dim == 1``).

Example:
    >>> import numpyro.distributions as dist
    >>> line = ProbModel(lambda x, p: p["a"] * x[0] + p["b"],
    ...                  {"a": dist.Normal(0.0, 1.0), "b": dist.Normal(0.0, 1.0)})
    >>> line(jnp.linspace(0, 1, 5), {"a": 2.0, "b": 1.0})   # shape (5,)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

# sample-site names that as_numpyro adds after the physics parameters
RESERVED_NAMES = ("noise", "y")


def resolve_priors(
    defaults: Mapping[str, dist.Distribution],
    overrides: Mapping[str, Any],
    model: str,
) -> dict[str, dist.Distribution]:
    """The default priors of a model factory with keyword overrides applied.

    Raises:
        ValueError: an override names a parameter the model does not have.
        TypeError: an override is not a numpyro distribution.
    """
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(
            f"{model}: unknown prior name(s) {unknown}; the parameters are {sorted(defaults)}"
        )
    for k, v in overrides.items():
        if not isinstance(v, dist.Distribution):
            raise TypeError(
                f"{model}: prior {k!r} must be a numpyro Distribution, got {type(v).__name__}"
            )
    return {**defaults, **overrides}


class ProbModel(eqx.Module):
    """A parametric model of a measurement: ``f(x, params)`` with a prior on each parameter.

    Used as the mean of a structured GP (pass ``mean=model.fn`` and merge ``model.priors`` into a
    :class:`jaxscope.GPModel`) or on its own (:meth:`as_numpyro`, predictive draws).

    Attributes:
        fn: ``fn(x, params) -> scalar`` for one point ``x`` of shape ``(dim,)``.
        priors: parameter name -> numpyro distribution (vector parameters have a batch or
            event shape, e.g. :class:`OrderedUniform`).
        dim: input dimension ``fn`` expects.
        domain: optional ``((lo, hi), ...)`` per input column: the input range the default
            priors are scaled for (documentation and a sensible design range, not enforced).
        name: short model name (used in error messages and by :func:`sum_of`).
    """

    fn: Callable[[Any, Mapping[str, Any]], Any] = eqx.field(static=True)
    priors: dict[str, dist.Distribution]
    dim: int = eqx.field(static=True, default=1)
    domain: tuple[tuple[float, float], ...] | None = eqx.field(static=True, default=None)
    name: str = eqx.field(static=True, default="")

    def __check_init__(self):
        if not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"ProbModel.dim must be a positive int, got {self.dim!r}")
        for k, v in self.priors.items():
            if not isinstance(k, str) or not k:
                raise ValueError(f"prior names must be non-empty strings, got {k!r}")
            if not isinstance(v, dist.Distribution):
                raise TypeError(f"prior {k!r} is not a numpyro Distribution: {type(v).__name__}")
        if self.domain is not None and len(self.domain) != self.dim:
            raise ValueError(f"domain has {len(self.domain)} ranges for dim={self.dim}")

    @property
    def names(self) -> tuple[str, ...]:
        """Sorted parameter names (the order every consumer iterates in)."""
        return tuple(sorted(self.priors))

    def inputs(self, X: Real[ArrayLike, "n d"] | Real[ArrayLike, " n"]) -> Float[Array, "n d"]:
        """``X`` as an ``(n, dim)`` float array (``(n,)`` is read as n points when dim == 1).

        Raises:
            ValueError: ``X`` does not have ``dim`` columns.
        """
        X = jnp.asarray(X)
        if not jnp.issubdtype(X.dtype, jnp.floating):
            X = X.astype(jnp.result_type(float))
        if X.ndim == 1 and self.dim == 1:
            X = X[:, None]
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(
                f"{self.name or 'ProbModel'} expects inputs of shape (n, {self.dim})"
                + (" or (n,)" if self.dim == 1 else "")
                + f", got {X.shape}"
            )
        return X

    def __call__(
        self, X: Real[ArrayLike, "n d"] | Real[ArrayLike, " n"], params: Mapping[str, Any]
    ) -> Float[Array, " n"]:
        """``f(x_i, params)`` at each row of ``X``."""
        Xa = self.inputs(X)
        return jax.vmap(lambda x: self.fn(x, params))(Xa)

    def log_prior(self, params: Mapping[str, Any]) -> Float[Array, ""]:
        """``Σ_k log p_k(params[k])`` (summed over vector parameters)."""
        return sum(jnp.sum(self.priors[k].log_prob(params[k])) for k in self.names)

    def sample_prior(self, key: PRNGKeyArray, num: int) -> dict[str, Array]:
        """``num`` independent draws of every parameter: a dict of arrays with leading axis num."""
        keys = jax.random.split(key, len(self.names))
        pairs = zip(self.names, keys, strict=True)
        return {k: self.priors[k].sample(kk, (num,)) for k, kk in pairs}

    def mean_draws(
        self, samples: Mapping[str, Any], X: Real[ArrayLike, "n d"] | Real[ArrayLike, " n"]
    ) -> Float[Array, "s n"]:
        """``f(X, θ_s)`` for every draw ``θ_s`` of a samples dict with leading sample axis.

        Keys of ``samples`` that are not parameters (e.g. ``"noise"``) are ignored.

        Raises:
            ValueError: a parameter is missing from ``samples``.
        """
        missing = [k for k in self.names if k not in samples]
        if missing:
            raise ValueError(f"samples lack parameter(s) {missing}; the model has {self.names}")
        Xa = self.inputs(X)
        return jax.vmap(lambda p: self(Xa, p))({k: jnp.asarray(samples[k]) for k in self.names})

    def prior_predictive(
        self,
        key: PRNGKeyArray,
        X: Real[ArrayLike, "n d"] | Real[ArrayLike, " n"],
        num: int,
        noise_sd: float | Float[ArrayLike, ""] | None = None,
    ) -> Float[Array, "num n"]:
        """``num`` draws of ``f(X)`` under the prior (plus ``N(0, noise_sd²)`` if given)."""
        kp, kn = jax.random.split(key)
        return self.posterior_predictive(kn, self.sample_prior(kp, num), X, noise_sd)

    def posterior_predictive(
        self,
        key: PRNGKeyArray,
        samples: Mapping[str, Any],
        X: Real[ArrayLike, "n d"] | Real[ArrayLike, " n"],
        noise_sd: float | Float[ArrayLike, ""] | Float[ArrayLike, " s"] | None = None,
    ) -> Float[Array, "s n"]:
        """One draw of ``f(X)`` (plus noise if ``noise_sd`` given) per posterior sample.

        Args:
            key: PRNG key (used only for the noise).
            samples: parameter name -> array with a leading sample axis (e.g. MCMC samples).
            X: inputs.
            noise_sd: None (noise-free ``f``), a scalar, or one sd per sample (e.g.
                ``samples["noise"]``).
        """
        f = self.mean_draws(samples, X)
        if noise_sd is None:
            return f
        sd = jnp.asarray(noise_sd, f.dtype)
        sd = sd[:, None] if sd.ndim == 1 else sd
        return f + sd * jax.random.normal(key, f.shape, f.dtype)

    def pointwise_log_likelihood(
        self,
        params: Mapping[str, Any],
        X: Real[ArrayLike, "n d"] | Real[ArrayLike, " n"],
        y: Float[ArrayLike, " n"],
        noise_sd: float | Float[ArrayLike, ""],
    ) -> Float[Array, " n"]:
        """``log N(y_i; f(x_i, params), noise_sd²)`` for each observation (WAIC, PSIS-LOO)."""
        f = self(X, params)
        return dist.Normal(f, noise_sd).log_prob(jnp.asarray(y, f.dtype))

    def as_numpyro(
        self,
        X: Real[ArrayLike, "n d"] | Real[ArrayLike, " n"],
        y: Float[ArrayLike, " n"] | None = None,
        noise_prior: dist.Distribution | None = None,
    ) -> Callable[..., None]:
        """A numpyro model ``model(X=X, y=y)`` of ``y_i ~ N(f(x_i, θ), noise²)``.

        The model samples every parameter by name (``numpyro.sample(k, priors[k])``, sorted
        order), then ``"noise"`` from ``noise_prior`` (default ``HalfNormal(1.0)``), then
        ``"y"`` (observed when ``y`` is given).

        Example:
            >>> mcmc = MCMC(NUTS(model.as_numpyro(X, y)), num_warmup=300, num_samples=300)
            >>> mcmc.run(key); mcmc.get_samples()["noise"]

        Raises:
            ValueError: a parameter is called ``"noise"`` or ``"y"``.
        """
        clash = sorted(set(self.names) & set(RESERVED_NAMES))
        if clash:
            raise ValueError(f"parameter name(s) {clash} clash with as_numpyro's sites")
        noise_prior = dist.HalfNormal(1.0) if noise_prior is None else noise_prior
        X_default = self.inputs(X)
        y_default = None if y is None else jnp.asarray(y)

        def model(X=X_default, y=y_default):
            params = {k: numpyro.sample(k, self.priors[k]) for k in self.names}
            noise = numpyro.sample("noise", noise_prior)
            f = self(X, params)
            numpyro.sample("y", dist.Normal(f, noise), obs=y)

        return model
