r"""Exact Gaussian process on a masked, fixed-capacity buffer.

With padding rows ``p`` and real rows ``r`` the buffer's Gram matrix is assembled as

.. math:: \tilde K = \begin{pmatrix} K_{rr} + \sigma^2 I & 0 \\ 0 & I \end{pmatrix},
          \qquad \tilde y = (y_r - m(X_r), 0),

so :math:`\log|\tilde K| = \log|K_{rr}+\sigma^2 I|`, :math:`\tilde y^\top \tilde K^{-1}\tilde y`
is the real quadratic form and the log marginal likelihood equals the unpadded one exactly:

.. math:: \log p(y) = -\tfrac12 \tilde y^\top \tilde K^{-1} \tilde y - \sum_i \log L_{ii}
          - \tfrac{n}{2}\log 2\pi .

Points are always added in slot ``count``, so the Cholesky factor keeps the block form and adding a
point with fixed hyperparameters is a rank-1 extension (:meth:`Posterior.add`, O(N²)).

Example:
    >>> gp = GP(kernel=RBF(lengthscale=0.2), noise=1e-2)
    >>> post = gp.condition(obs)
    >>> mean, var = post.predict(Xnew, chunk_size=4096)
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ..kernels import Kernel, as_points
from .linalg import (
    cholesky,
    default_jitter,
    gaussian_log_density,
    map_chunks,
    mean_values,
    solve_triangular,
)
from .observations import Observations
from .sampling import pathwise_samples


def _leaf(v):
    """Numbers become arrays, so that a GP is a pytree of arrays (``vmap``, ``scan`` carries)."""
    return v if callable(v) or isinstance(v, jax.Array) else jnp.asarray(v)


def check_points_finite(X, name: str) -> None:
    """``ValueError`` naming the first NaN/inf coordinate of concrete points (traced: no check)."""
    if isinstance(X, jax.core.Tracer):
        return
    bad = np.argwhere(~np.isfinite(np.asarray(X)))
    if len(bad):
        r, c = (int(i) for i in bad[0])
        raise ValueError(f"{name}[{r}, {c}] is {np.asarray(X)[r, c]}: points must be finite")


class GP(eqx.Module):
    """A GP prior: kernel, Gaussian noise variance and mean (a constant or ``mean(x)``)."""

    kernel: Kernel
    noise: Any = eqx.field(default=0.0, converter=_leaf)
    mean: Any = eqx.field(default=0.0, converter=_leaf)
    jitter: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        noise = self.noise
        if not isinstance(noise, jax.core.Tracer) and not callable(noise):
            n = np.asarray(noise)
            if n.size and (np.any(n < 0) or not np.all(np.isfinite(n))):
                raise ValueError(f"noise variance must be finite and >= 0, got {noise}")

    def jitter_for(self, dtype) -> float:
        """The diagonal jitter this GP adds in ``dtype`` (its own, or :func:`default_jitter`)."""
        return default_jitter(dtype) if self.jitter is None else self.jitter

    def gram(self, obs: Observations) -> Float[Array, "cap cap"]:
        """The masked Gram matrix ``K̃`` (identity on padding rows and columns)."""
        K = self.kernel.matrix(obs.X, obs.X)
        both = obs.mask[:, None] & obs.mask[None, :]
        K = jnp.where(both, K, 0.0)
        d = jnp.where(obs.mask, self.noise + self.jitter_for(obs.X.dtype), 1.0)
        return K + jnp.diag(d.astype(K.dtype))

    def residual(self, obs: Observations) -> Float[Array, " cap"]:
        return jnp.where(obs.mask, obs.y - mean_values(self.mean, obs.X), 0.0)

    def log_marginal_likelihood(self, obs: Observations) -> Float[Array, ""]:
        """``log p(y | X, θ)`` of the real rows of ``obs``."""
        r = self.residual(obs)
        n = jnp.sum(obs.mask)
        return gaussian_log_density(self.gram(obs), r) - 0.5 * n * jnp.log(2 * jnp.pi).astype(
            r.dtype
        )

    def condition(self, obs: Observations) -> Posterior:
        """The posterior given ``obs`` (one Cholesky factorisation)."""
        L = cholesky(self.gram(obs))
        w = solve_triangular(L, self.residual(obs))
        return Posterior(gp=self, obs=obs, L=L, w=w)

    def prior_sample(self, key: PRNGKeyArray, X: ArrayLike, num_samples: int = 1):
        """Joint draws of ``f`` at ``X`` from the prior (small ``X`` only: forms the matrix)."""
        X = as_points(X)
        K = self.kernel.matrix(X, X) + self.jitter_for(X.dtype) * jnp.eye(X.shape[0], dtype=X.dtype)
        z = jax.random.normal(key, (num_samples, X.shape[0]), X.dtype)
        return mean_values(self.mean, X) + z @ cholesky(K).T


def cross_covariance(gp: GP, obs: Observations, Xs):
    """``K(X, Xs)`` of the buffer's points, zero on padding rows."""
    return jnp.where(obs.mask[:, None], gp.kernel.matrix(obs.X, Xs), 0.0)


def moments_from_solve(gp: GP, w, V, Xs, include_noise: bool):
    """Mean and variance at ``Xs`` from ``V = L⁻¹ K(X, Xs)`` and ``w = L⁻¹ ỹ``."""
    mean = mean_values(gp.mean, Xs) + V.T @ w
    var = jnp.maximum(gp.kernel.diag(Xs) - jnp.sum(V * V, axis=0), 0.0)
    return mean, (var + gp.noise) if include_noise else var


class Posterior(eqx.Module):
    """A GP conditioned on a buffer: Cholesky factor ``L`` of ``K̃`` and ``w = L⁻¹ ỹ``."""

    gp: GP
    obs: Observations
    L: Float[Array, "cap cap"]
    w: Float[Array, " cap"]

    @property
    def alpha(self) -> Float[Array, " cap"]:
        """``K̃⁻¹ ỹ``."""
        return solve_triangular(self.L, self.w, trans=True)

    def cross(self, Xs):
        """``K(X, Xs)`` of the buffer's points, zero on padding rows."""
        return cross_covariance(self.gp, self.obs, Xs)

    def _predict_block(self, Xs, include_noise):
        V = solve_triangular(self.L, self.cross(Xs))
        return moments_from_solve(self.gp, self.w, V, Xs, include_noise)

    def predict(
        self,
        Xnew: ArrayLike,
        *,
        chunk_size: int | None = None,
        include_noise: bool = False,
        full_cov: bool = False,
    ):
        """Predictive mean and diagonal variance of ``f`` (``y`` with ``include_noise``).

        Args:
            Xnew: ``(m, d)`` points.
            chunk_size: predict in chunks of this many points with ``lax.map`` so temporary
                memory is O(N · chunk_size), not O(N · m). ``None`` predicts all at once.
            include_noise: add the observation-noise variance.
            full_cov: also return the ``(m, m)`` joint covariance (small ``m`` only).

        Returns:
            ``(mean, var)``, or ``(mean, cov)`` with ``full_cov=True``.
        """
        Xs = as_points(Xnew, "Xnew").astype(self.obs.X.dtype)
        if Xs.shape[1] != self.obs.dim:
            raise ValueError(f"Xnew has {Xs.shape[1]} input dimensions, the data {self.obs.dim}")
        check_points_finite(Xs, "Xnew")
        if full_cov:
            V = solve_triangular(self.L, self.cross(Xs))
            cov = self.gp.kernel.matrix(Xs, Xs) - V.T @ V
            if include_noise:
                cov = cov + self.gp.noise * jnp.eye(Xs.shape[0], dtype=cov.dtype)
            return mean_values(self.gp.mean, Xs) + V.T @ self.w, cov
        if chunk_size is None or chunk_size >= Xs.shape[0]:
            return self._predict_block(Xs, include_noise)
        return map_chunks(lambda x: self._predict_block(x, include_noise), Xs, chunk_size)

    def add(self, x: ArrayLike, y: ArrayLike) -> Posterior:
        """Posterior with one more observation, by a rank-1 Cholesky extension (O(N²)).

        Hyperparameters stay fixed; equal to ``gp.condition(obs.add(x, y))`` up to rounding.
        """
        obs = self.obs.add(x, y)
        i = self.obs.count
        xi = obs.X[i]
        k = jnp.where(self.obs.mask, self.gp.kernel.matrix(self.obs.X, xi[None])[:, 0], 0.0)
        lrow = solve_triangular(self.L, k)  # zero on padding rows
        kii = self.gp.kernel.diag(xi[None])[0] + self.gp.noise + self.gp.jitter_for(xi.dtype)
        lii = jnp.sqrt(jnp.maximum(kii - jnp.sum(lrow * lrow), self.gp.jitter_for(xi.dtype)))
        row = lrow.at[i].set(lii)
        L = self.L.at[i, :].set(row)
        ri = obs.y[i] - mean_values(self.gp.mean, xi[None])[0]
        wi = (ri - jnp.dot(lrow, self.w)) / lii
        return Posterior(gp=self.gp, obs=obs, L=L, w=self.w.at[i].set(wi))

    def padded(self, extra: int) -> Posterior:
        """The same posterior in a buffer with ``extra`` more empty rows (room to :meth:`add`).

        Padding rows of ``K̃`` are the identity, so ``L`` grows by an identity block."""
        if extra == 0:
            return self
        n = self.L.shape[-1]
        L = jnp.zeros((n + extra, n + extra), self.L.dtype).at[:n, :n].set(self.L)
        L = L.at[n:, n:].set(jnp.eye(extra, dtype=L.dtype))
        w = jnp.concatenate([self.w, jnp.zeros((extra,), self.w.dtype)])
        return Posterior(gp=self.gp, obs=self.obs.padded(extra), L=L, w=w)

    def cache(self, Xc: ArrayLike) -> PredictiveCache:
        """Cached predictive quantities over fixed candidates (see :class:`PredictiveCache`)."""
        Xc = as_points(Xc, "Xc").astype(self.obs.X.dtype)
        V = solve_triangular(self.L, self.cross(Xc))
        mean, var = moments_from_solve(self.gp, self.w, V, Xc, False)
        return PredictiveCache(posterior=self, Xc=Xc, V=V, mean=mean, var=var)

    def sample(
        self,
        key: PRNGKeyArray,
        Xnew: ArrayLike,
        num_samples: int = 1,
        *,
        method: str = "auto",
        num_features: int = 2048,
        chunk_size: int | None = None,
    ) -> Float[Array, "s m"]:
        """Posterior function draws at ``Xnew``.

        ``method="exact"`` forms the ``m × m`` covariance (small ``m``); ``"pathwise"`` uses
        Matheron's rule with random Fourier features of the prior (stationary kernels), memory
        O(m · features); ``"auto"`` picks exact for ``m ≤ 2000``.
        """
        Xs = as_points(Xnew, "Xnew").astype(self.obs.X.dtype)
        if method == "auto":
            method = "exact" if Xs.shape[0] <= 2000 else "pathwise"
        if method == "exact":
            mean, cov = self.predict(Xs, full_cov=True)
            cov = cov + self.gp.jitter_for(Xs.dtype) * jnp.eye(Xs.shape[0], dtype=Xs.dtype)
            z = jax.random.normal(key, (num_samples, Xs.shape[0]), Xs.dtype)
            return mean + z @ cholesky(cov).T
        if method == "pathwise":
            return pathwise_samples(self, key, Xs, num_samples, num_features, chunk_size)
        raise ValueError(f"unknown sampling method {method!r}; use 'auto', 'exact' or 'pathwise'")


class PredictiveCache(eqx.Module):
    r"""Predictive mean/variance over fixed candidates ``Xc``, updatable in O(N·M) per point.

    Holds ``V = L⁻¹ K(X, Xc)``. Adding ``(x, y)`` appends one row
    :math:`v = (k(x, X_c) - l^\top V)/l_{ii}` to ``V``; then ``var -= v²`` and
    ``mean += v · w_i`` — no O(N²·M) recomputation.
    """

    posterior: Posterior
    Xc: Float[Array, "m d"]
    V: Float[Array, "cap m"]
    mean: Float[Array, " m"]
    var: Float[Array, " m"]

    def padded(self, extra: int) -> PredictiveCache:
        """The same cache with room for ``extra`` more points (zero rows of ``V``)."""
        if extra == 0:
            return self
        V = jnp.concatenate([self.V, jnp.zeros((extra, self.V.shape[1]), self.V.dtype)])
        return PredictiveCache(
            posterior=self.posterior.padded(extra), Xc=self.Xc, V=V, mean=self.mean, var=self.var
        )

    def add(self, x: ArrayLike, y: ArrayLike) -> PredictiveCache:
        old = self.posterior
        post = old.add(x, y)
        i = old.obs.count
        lrow = post.L[i]
        lii = lrow[i]
        l_prev = lrow.at[i].set(0.0)
        kx = self.posterior.gp.kernel.matrix(post.obs.X[i][None], self.Xc)[0]
        v = (kx - l_prev @ self.V) / lii
        return PredictiveCache(
            posterior=post,
            Xc=self.Xc,
            V=self.V.at[i].set(v),
            mean=self.mean + v * post.w[i],
            var=jnp.maximum(self.var - v * v, 0.0),
        )
