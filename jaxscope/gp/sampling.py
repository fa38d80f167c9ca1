r"""Pathwise posterior sampling (Matheron's rule with random Fourier features of the prior).

A draw of the posterior is a prior draw plus a data-driven correction,
:math:`f^*(\cdot) = f(\cdot) + K(\cdot, X)\,\tilde K^{-1}(y - f(X) - \varepsilon)`, with the prior
draw :math:`f` from random Fourier features of a stationary kernel: O(m · features) memory at
``m`` points, no ``m × m`` covariance.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..kernels import Stationary
from ..kernels.base import Scaled, Transformed
from .linalg import cho_solve, map_chunks, mean_values


def _spectral_frequencies(kernel: Stationary, key, num_features: int, dim: int, dtype):
    from ..kernels import RBF, Matern12, Matern32, Matern52

    k1, k2 = jax.random.split(key)
    z = jax.random.normal(k1, (num_features, dim), dtype)
    dof = {Matern12: 1, Matern32: 3, Matern52: 5}.get(type(kernel))
    if dof is not None:  # Student-t spectral density with 2ν degrees of freedom
        # χ²(2ν)/2ν from 2ν squared normals (2ν is an integer here): exact, and much cheaper to
        # compile than jax.random.gamma's rejection sampler
        c = jax.random.normal(k2, (num_features, dof), dtype)
        z = z / jnp.sqrt(jnp.sum(c * c, axis=1, keepdims=True) / dof)
    elif not isinstance(kernel, RBF):
        raise ValueError(
            f"pathwise sampling needs an RBF or Matérn kernel, got {type(kernel).__name__}; "
            "use method='exact'"
        )
    return z / kernel.lengthscale


def pathwise_samples(post, key, Xs, num_samples, num_features, chunk_size):
    kernel, scale = post.gp.kernel, 1.0
    if isinstance(kernel, Scaled):
        kernel, scale = kernel.kernel, kernel.scale
    # a deep kernel k(g(x), g(x')): random features of the base kernel on the features g(x)
    g = kernel.transform if isinstance(kernel, Transformed) else None
    kernel = kernel.kernel if g is not None else kernel
    if not isinstance(kernel, Stationary):
        raise ValueError(
            "pathwise sampling needs a (scaled) stationary kernel, or one on transformed inputs; "
            "use method='exact'"
        )
    dtype = Xs.dtype
    dim = Xs.shape[1] if g is None else jax.eval_shape(g, Xs[0]).shape[0]
    kw, kb, kf, ke = jax.random.split(key, 4)
    omega = _spectral_frequencies(kernel, kf, num_features, dim, dtype)
    b = jax.random.uniform(kb, (num_features,), dtype, 0.0, 2 * jnp.pi)
    amp = jnp.sqrt(2.0 * scale * kernel.variance / num_features)
    weights = jax.random.normal(kw, (num_samples, num_features), dtype)

    def prior_f(X):  # (s, n)
        Z = X if g is None else jax.vmap(g)(X)
        return weights @ (amp * jnp.cos(Z @ omega.T + b)).T

    obs = post.obs
    eps = jnp.sqrt(post.gp.noise) * jax.random.normal(ke, (num_samples, obs.capacity), dtype)
    resid = post.gp.residual(obs)[None, :] - jnp.where(obs.mask, prior_f(obs.X) + eps, 0.0)
    A = cho_solve(post.L, resid.T)  # (cap, s)

    def block(X):
        Kxs = post.cross(X)
        return (mean_values(post.gp.mean, X)[None, :] + prior_f(X) + (Kxs.T @ A).T).T

    if chunk_size is None or chunk_size >= Xs.shape[0]:
        return block(Xs).T
    return map_chunks(block, Xs, chunk_size).T
