r"""Preconditioners of the gridded GP's PCG (:mod:`~jaxscope.gp.gridded`): ``P = sI + LLᵀ``
on the measured pixels (identity elsewhere), applied by Woodbury, with a log-determinant for
SLQ and ``N(0, P)`` draws for its probes.

* :func:`kron_nystrom` (the default): ``L = M D (A_r ⊗ A_c)`` with inducing pixels on a
  ``z_r × z_c`` lattice (:func:`lattice_for` picks it);
* :func:`pivoted_cholesky`: a rank-``k`` pivoted Cholesky factor of ``K_mm``.

Any object with ``solve``, ``logdet`` and ``sample`` of the same meaning serves.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .gridded import GridOperator, toeplitz


class Preconditioner(NamedTuple):
    """``P = sI + LᵀL`` on measured pixels (identity elsewhere), ``L`` rank ``k``."""

    L: Float[Array, "k H W"]
    s: Array
    chol: Float[Array, "k k"]  # Cholesky factor of sI_k + L Lᵀ
    mask: Float[Array, "H W"]

    def solve(self, V):
        """``P⁻¹ V`` by Woodbury, for images ``(..., H, W)``."""
        m = self.mask
        Lv = jnp.einsum("khw,...hw->...k", self.L, m * V)
        c = jax.scipy.linalg.cho_solve((self.chol, True), jnp.moveaxis(Lv, -1, 0))
        back = jnp.einsum("khw,k...->...hw", self.L, c)
        return m * (V - back) / self.s + (1.0 - m) * V

    def logdet(self):
        n = jnp.sum(self.mask)
        k = self.L.shape[0]
        return 2.0 * jnp.sum(jnp.log(jnp.diag(self.chol))) + (n - k) * jnp.log(self.s)

    def sample(self, key, batch: int):
        """``(batch, H, W)`` draws of ``N(0, P)`` on measured pixels (zero elsewhere)."""
        k1, k2 = jax.random.split(key)
        dtype = self.L.dtype
        e1 = jax.random.normal(k1, (batch, self.L.shape[0]), dtype)
        e2 = jax.random.normal(k2, (batch, *self.mask.shape), dtype)
        return self.mask * (jnp.einsum("bk,khw->bhw", e1, self.L) + jnp.sqrt(self.s) * e2)


def pivoted_cholesky(op: GridOperator, rank: int) -> Preconditioner:
    """Rank-``rank`` pivoted Cholesky of ``K_mm`` (greedy largest remaining diagonal)."""
    H, W = op.shape
    dtype = op.t_rows.dtype
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"preconditioner rank must be an integer >= 1, got {rank!r}")
    Kr, Kc = toeplitz(op.t_rows), toeplitz(op.t_cols)
    amp, m = op.amplitude, op.mask
    tiny = 1e-10 * op.variance

    def body(j, state):
        L, d = state
        p = jnp.argmax(d)
        i, c = p // W, p % W
        row = op.variance * amp[i, c] * amp * Kr[i][:, None] * Kc[c][None, :] * m
        row = row - jnp.tensordot(L[:, i, c], L, axes=1)
        dp = d[i, c]
        Lj = jnp.where(dp > tiny, row / jnp.sqrt(jnp.maximum(dp, tiny)), 0.0)
        return L.at[j].set(Lj), jnp.maximum(d - Lj * Lj, 0.0)

    L0 = jnp.zeros((rank, H, W), dtype)
    L, _ = jax.lax.fori_loop(0, rank, body, (L0, op.diag() * m))
    s = op.noise + op.jitter
    C = s * jnp.eye(rank, dtype=dtype) + jnp.einsum("ahw,bhw->ab", L, L)
    return Preconditioner(L=L, s=s, chol=jnp.linalg.cholesky(C), mask=m)


def lattice_for(shape, lengthscale=None, max_rank: int = 2304, per_length: float = 3.0):
    """Static ``(z_r, z_c)`` of :func:`kron_nystrom`: ``per_length`` inducing pixels a
    lengthscale along each axis (every pixel when ``lengthscale`` is ``None``), shrunk in
    proportion to at most ``max_rank`` in all."""
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be (H, W) with H, W >= 1, got {shape!r}")
    if max_rank < 1 or per_length <= 0:
        raise ValueError(f"max_rank must be >= 1 and per_length > 0, got {max_rank}, {per_length}")
    if lengthscale is not None and (
        np.shape(lengthscale) != (2,) or not np.all(np.asarray(lengthscale) > 0)
    ):
        raise ValueError(f"lengthscale must be 2 positive values (px), got {lengthscale!r}")
    ls = (0.0, 0.0) if lengthscale is None else [float(v) for v in np.ravel(lengthscale)]
    zr, zc = (
        min(n, max(2, int(np.ceil(n * per_length / max(v, 1e-9)))))
        for n, v in zip(shape, ls, strict=True)
    )
    if zr * zc > max_rank:
        zr = max(1, int(zr * np.sqrt(max_rank / (zr * zc))))
        zc = max(1, min(shape[1], max_rank // zr))
    return zr, zc


class KronNystrom(NamedTuple):
    """``P = sI + LLᵀ`` on measured pixels, ``L = M D (A_r ⊗ A_c)`` (module docstring)."""

    Ar: Float[Array, "H zr"]
    Ac: Float[Array, "W zc"]
    s: Array
    cinv: Float[Array, "k k"]  # (sI_k + LᵀL)⁻¹, k = zr·zc: one matrix product a solve
    logdet_core: Array  # log|sI_k + LᵀL|
    weight: Float[Array, "H W"]  # mask · amplitude (zero on unmeasured pixels)
    mask: Float[Array, "H W"]

    def _Lt(self, V):
        return jnp.einsum("hr,...hw,wc->...rc", self.Ar, self.weight * V, self.Ac)

    def _L(self, C):
        return self.weight * jnp.einsum("hr,...rc,wc->...hw", self.Ar, C, self.Ac)

    def solve(self, V):
        lv = self._Lt(V)
        flat = lv.reshape(-1, lv.shape[-2] * lv.shape[-1])
        c = (flat @ self.cinv).reshape(lv.shape)  # not triangular solves: 2-4× faster on CPU
        m = self.mask
        return m * (V - self._L(c)) / self.s + (1.0 - m) * V

    def logdet(self):
        k = self.cinv.shape[0]
        return self.logdet_core + (jnp.sum(self.mask) - k) * jnp.log(self.s)

    def sample(self, key, batch: int):
        """``(batch, H, W)`` draws of ``N(0, P)`` on measured pixels (zero elsewhere)."""
        k1, k2 = jax.random.split(key)
        dtype = self.Ar.dtype
        e1 = jax.random.normal(k1, (batch, self.Ar.shape[1], self.Ac.shape[1]), dtype)
        e2 = jax.random.normal(k2, (batch, *self.mask.shape), dtype)
        return self._L(e1) + self.mask * jnp.sqrt(self.s) * e2


def _axis_factor(Kfull, n_inducing: int, rel: float = 1e-6):
    """``K[:, Z] K_ZZ^{-1/2}`` for ``n_inducing`` evenly spaced pixels (tiny eigenvalues of
    ``K_ZZ`` dropped, so a dense lattice on a long lengthscale stays well defined)."""
    n = Kfull.shape[0]
    idx = jnp.asarray(np.round(np.linspace(0, n - 1, n_inducing)).astype(np.int32))
    lam, U = jnp.linalg.eigh(Kfull[jnp.ix_(idx, idx)])
    inv = jnp.where(
        lam > rel * lam[-1], jax.lax.rsqrt(jnp.maximum(lam, jnp.finfo(lam.dtype).tiny)), 0.0
    )
    return Kfull[:, idx] @ (U * inv)


def kron_nystrom(op: GridOperator, lattice: tuple[int, int]) -> KronNystrom:
    """Kronecker Nyström preconditioner with a ``lattice = (z_r, z_c)`` of inducing pixels."""
    zr, zc = (int(v) for v in lattice)
    H, W = op.shape
    if not (1 <= zr <= H and 1 <= zc <= W):
        raise ValueError(f"lattice {lattice!r} must lie within 1..{(H, W)} points per axis")
    Ar = jnp.sqrt(op.variance) * _axis_factor(toeplitz(op.t_rows), zr)
    Ac = _axis_factor(toeplitz(op.t_cols), zc)
    w = op.mask * op.amplitude
    T = jnp.einsum("hw,wb,wc->hbc", w * w, Ac, Ac)
    G = jnp.einsum("ha,hd,hbc->abdc", Ar, Ar, T).reshape(zr * zc, zr * zc)
    s = op.noise + op.jitter
    eye = jnp.eye(zr * zc, dtype=G.dtype)
    R = jnp.linalg.cholesky(s * eye + G)
    Rinv = jax.scipy.linalg.solve_triangular(R, eye, lower=True)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diag(R)))
    return KronNystrom(Ar, Ac, s, Rinv.T @ Rinv, logdet, w, op.mask)
