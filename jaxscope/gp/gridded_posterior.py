r"""Posterior of the gridded GP (:mod:`~jaxscope.gp.gridded`, :mod:`~jaxscope.gp.gridded_fit`).

**Posterior.** Mean ``K Mᵀ α`` on every pixel; variance by pathwise conditioning (Matheron's
rule: prior draws on the grid from the per-axis Cholesky factors — for a radial kernel by
circulant embedding on a ``2H × 2W`` torus —, each corrected by one batched
PCG solve), an unbiased Monte-Carlo estimate with relative error ``≈ sqrt(2/S)`` for ``S``
draws.

:func:`roughness_map` turns a first mean into the roughness image of the non-stationary
amplitude (:func:`~jaxscope.gp.gridded_fit.amplitude_from`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .gridded import GridOperator, mbcg, toeplitz
from .gridded_fit import DEFAULT_SETTINGS, SolverSettings, build_operator, make_preconditioner


class GridMoments(NamedTuple):
    mean: Float[Array, "H W"]
    var: Float[Array, "H W"]  # of the latent f (add params["noise"] for y)
    iterations: Array


def _pathwise(op: GridOperator, pre, settings: SolverSettings, draw_tol: float):
    """``key, batch, y -> (deviations, mean, iterations)``: ``batch`` draws of
    ``f - E[f | y]`` by Matheron's rule (prior draws on the grid, each corrected by one PCG
    solve to ``draw_tol``) and, with ``y``, the posterior mean ``K Mᵀ Ã⁻¹y`` (to
    ``settings.tol``) from the same batched solve (one CG loop for both; ``mean`` is ``None``
    without ``y``)."""
    H, W = op.shape
    dt = op.t_rows.dtype
    if op.spectrum is None:
        Lr = jnp.linalg.cholesky(toeplitz(op.t_rows) + op.jitter * jnp.eye(H, dtype=dt))
        Lc = jnp.linalg.cholesky(toeplitz(op.t_cols) + op.jitter * jnp.eye(W, dtype=dt))

        def prior(key, batch):
            E = jax.random.normal(key, (batch, H, W), dt)
            return jnp.einsum("ij,bjk,lk->bil", Lr, E, Lc)
    else:  # radial: circulant embedding on the 2H × 2W torus (negative eigenvalues, small
        # where the kernel has decayed by half the torus, set to zero)
        root = jnp.sqrt(jnp.maximum(op.spectrum, 0.0))

        def prior(key, batch):
            E = jax.random.normal(key, (batch, 2 * H, 2 * W), dt)
            F = jnp.fft.rfft2(E) * root
            return jnp.fft.irfft2(F, s=(2 * H, 2 * W))[:, :H, :W].astype(dt)

    def deviations(key, batch: int, y=None, x0=None):
        k1, k2 = jax.random.split(key)
        f = jnp.sqrt(op.variance) * op.amplitude * prior(k1, batch)
        eps = jnp.sqrt(op.noise) * jax.random.normal(k2, (batch, H, W), dt)
        B = op.mask * (f + eps)
        tol = jnp.full((batch,), draw_tol, dt)
        if y is not None:
            B = jnp.concatenate([(op.mask * y)[None], B])
            tol = jnp.concatenate([jnp.full((1,), settings.tol, dt), tol])
        if x0 is not None:  # warm start of the mean's solve; the draws' start at zero
            x0 = jnp.concatenate([(op.mask * x0)[None], jnp.zeros_like(B[1:])])
        c = mbcg(op, pre, B, tol=tol, max_iter=settings.max_iter, x0=x0)
        KX = op.K(op.mask * c.x)
        if y is None:
            return f - KX, None, c.iterations
        return f - KX[1:], KX[0], c.iterations

    return deviations


def _operator(params, mask, name, roughness, settings):
    op = build_operator(params, mask, roughness, name, settings)
    return op, make_preconditioner(op, settings)


def grid_posterior(
    key, params, y, mask, name, *, roughness=None, num_samples: int = 64,
    sample_batch: int = 16, settings: SolverSettings = DEFAULT_SETTINGS, x0=None,
) -> GridMoments:  # fmt: skip
    """Posterior mean and pathwise-sampled variance of ``f`` on every pixel (model units);
    ``num_samples=0``: the mean only (variance zeros). The mean is solved with the first
    batch of draws (one CG loop; ``num_samples`` is rounded up to whole batches), from ``x0``
    when given (an approximate ``Ã⁻¹y``, e.g. :func:`fit_grid_map`'s last)."""
    op, pre = _operator(params, jnp.asarray(mask, y.dtype), name, roughness, settings)
    if num_samples == 0:  # the mean only
        cg = mbcg(op, pre, (op.mask * y)[None], tol=settings.tol, max_iter=settings.max_iter,
                  x0=None if x0 is None else (op.mask * x0)[None])  # fmt: skip
        mean = op.K(op.mask * cg.x[0])
        return GridMoments(mean, jnp.zeros_like(mean), cg.iterations)
    # draws for a variance estimate: solved to ``sample_tol``
    deviations = _pathwise(op, pre, settings, settings.sample_tol)
    batch = min(sample_batch, num_samples)
    nb = -(-num_samples // batch)
    k0, krest = jax.random.split(key)
    dev, mean, its = deviations(k0, batch, y, x0)
    sq = jnp.sum(dev * dev, axis=0)
    if nb > 1:

        def one_batch(k):
            d, _, it = deviations(k, batch)
            return jnp.sum(d * d, axis=0), it

        sq_rest, its_rest = jax.lax.map(one_batch, jax.random.split(krest, nb - 1))
        sq = sq + jnp.sum(sq_rest, axis=0)
        its = jnp.maximum(its, jnp.max(its_rest))
    return GridMoments(mean, sq / (nb * batch), its)


def grid_draws(
    key, params, y, mask, name, num_draws: int, *, roughness=None,
    settings: SolverSettings = DEFAULT_SETTINGS, mean=None,
) -> Float[Array, "n H W"]:  # fmt: skip
    """``num_draws`` joint posterior draws of ``f`` over every pixel (model units).

    ``mean``: the posterior mean when the caller has it (e.g. from :func:`grid_posterior`);
    otherwise it is solved with the draws (one CG loop)."""
    if not isinstance(num_draws, int) or num_draws < 1:
        raise ValueError(f"num_draws must be an integer >= 1, got {num_draws!r}")
    op, pre = _operator(params, jnp.asarray(mask, y.dtype), name, roughness, settings)
    # joint draws are used one by one (e.g. Thompson sampling): solved to ``tol``, not
    # ``sample_tol``
    dev, solved, _ = _pathwise(op, pre, settings, settings.tol)(
        key, num_draws, None if mean is not None else y
    )
    return (mean if mean is not None else solved) + dev


def roughness_map(mean: Float[Array, "H W"], width: float = 2.0) -> Float[Array, "H W"]:
    """Blurred squared gradient magnitude of ``mean``, normalised to mean 1 (Gaussian blur
    of ``width`` pixels; a constant image gives ones)."""
    gy, gx = jnp.gradient(mean)
    g = gy * gy + gx * gx

    def blur(n):  # row-normalised Gaussian weights: no shift or loss of mass at the edges
        i = jnp.arange(n, dtype=mean.dtype)
        B = jnp.exp(-0.5 * ((i[:, None] - i[None, :]) / width) ** 2)
        return B / jnp.sum(B, axis=1, keepdims=True)

    g = blur(g.shape[0]) @ g @ blur(g.shape[1]).T
    m = jnp.mean(g)
    return jnp.where(m > 0, g / jnp.where(m > 0, m, 1.0), jnp.ones_like(g))
