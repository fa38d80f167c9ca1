"""Dense linear algebra shared by the GP code: chunked maps, jitter, the Gaussian log density.

Every Cholesky-based quantity of :mod:`jaxscope.gp` goes through these few functions, so the
jitter policy, the closed-form derivative of the log density and the batching rule of the
factorisations live in one place.

**Batched factorisations on CPU run one matrix at a time.** jaxlib 0.10's LAPACK kernels split
a *batched* Cholesky or triangular solve (what ``vmap`` makes of one: several MAP starts,
NUTS chains, ensemble members, seeds) across XLA's intra-op thread pool and block until the
pieces are done. When as many batched calls run concurrently as the pool has threads (two
independent ones on a 2-core machine), every thread waits for work queued behind it and the
program deadlocks, silently, at 0 % CPU — a 200-step coordinate-GP campaign hung this way
(``tests/gp/test_linalg_batching.py`` holds the minimal pattern). :func:`cholesky`,
:func:`solve_triangular` and :func:`cho_solve` therefore carry a batching rule: on CPU a
batch is a ``lax.map`` of single-matrix calls (which never touch the pool; LAPACK's batched
kernel is itself a loop over the batch, so little is lost), elsewhere the native batched
call. Their reverse-mode derivatives are written out (custom VJPs built from the same
wrapped calls), since a custom batching rule has no autodiff of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float


def map_chunks(fn: Callable, X: Float[Array, "m d"], chunk_size: int):
    """Apply ``fn`` (rows -> pytree with leading row axis) to ``X`` in chunks with ``lax.map``.

    ``X`` is padded to a multiple of ``chunk_size`` by repeating its last row; the padding is cut
    off the result. Peak temporary memory is that of one chunk.
    """
    m = X.shape[0]
    if chunk_size >= m:
        return fn(X)
    n_chunks = -(-m // chunk_size)
    pad = n_chunks * chunk_size - m
    Xp = jnp.concatenate([X, jnp.repeat(X[-1:], pad, axis=0)]) if pad else X
    out = jax.lax.map(fn, Xp.reshape(n_chunks, chunk_size, X.shape[1]))
    return jax.tree_util.tree_map(
        lambda a: a.reshape((n_chunks * chunk_size,) + a.shape[2:])[:m], out
    )


def mean_values(mean, X):
    """A GP mean at the rows of ``X``: ``mean`` is a constant or a callable on one point."""
    if callable(mean):
        return jax.vmap(mean)(X).astype(X.dtype)
    return jnp.broadcast_to(jnp.asarray(mean, X.dtype), X.shape[:1])


def default_jitter(dtype) -> float:
    """Diagonal jitter added to every Gram matrix: 1e-5 in float32, 1e-8 in float64."""
    return 1e-8 if jnp.dtype(dtype) == jnp.float64 else 1e-5


_SMALL_INVERSE = 512  # up to this size K⁻¹ is formed as L⁻ᵀL⁻¹ (see _gaussian_log_density_jvp)


def _one_at_a_time_on_cpu(fn: Callable, shared_matrix: Callable | None = None) -> Callable:
    """``fn`` (arrays of one problem -> one array) with a batching rule: a ``lax.map`` of
    ``fn`` on CPU (nested ``vmap`` re-enters the rule), the native batched ``fn`` elsewhere.
    ``shared_matrix(wrapped, A, B)``, when given, handles a batch whose first argument is not
    batched (one matrix, many right-hand sides) in a single call."""
    wrapped = jax.custom_batching.custom_vmap(fn)

    # one jitted map per function: called eagerly (outside any jit), a bare lax.map would
    # trace and compile a new scan at every call
    mapped = jax.jit(lambda args: jax.lax.map(lambda xs: wrapped(*xs), args))

    @wrapped.def_vmap
    def _rule(axis_size, in_batched, *args):
        if shared_matrix is not None and not in_batched[0] and all(in_batched[1:]):
            return shared_matrix(wrapped, *args), True
        args = [a if b else jnp.broadcast_to(a, (axis_size, *a.shape))
                for a, b in zip(args, in_batched, strict=True)]  # fmt: skip
        if jax.default_backend() == "cpu":
            return mapped(tuple(args)), True
        return jax.vmap(fn)(*args), True

    return wrapped


_potrf = _one_at_a_time_on_cpu(lambda K: jax.lax.linalg.cholesky(K, symmetrize_input=False))


def _trsm_of(lower: bool, trans: bool) -> Callable:
    def solve(L, B):
        return jax.lax.linalg.triangular_solve(L, B, left_side=True, lower=lower, transpose_a=trans)

    return _one_at_a_time_on_cpu(solve, shared_matrix=_columns_side_by_side)


def _columns_side_by_side(solve, L, B):
    # one L, a batch of right-hand sides (b, n, k): one solve of the (n, b·k) columns, as
    # JAX's own batching rule does, instead of b copies of L
    b, n, k = B.shape
    X = solve(L, jnp.moveaxis(B, 0, 1).reshape(n, b * k))
    return jnp.moveaxis(X.reshape(n, b, k), 1, 0)


_TRSM = {(lo, tr): _trsm_of(lo, tr) for lo in (True, False) for tr in (True, False)}


def _trsm(L, B, lower: bool, trans: bool):
    vec = B.ndim == 1
    X = _TRSM[(lower, trans)](L, B[:, None] if vec else B)
    return X[:, 0] if vec else X


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _solve_triangular(L, B, lower, trans):
    return _trsm(L, B, lower, trans)


def _solve_triangular_fwd(L, B, lower, trans):
    X = _trsm(L, B, lower, trans)
    return X, (L, X)


def _solve_triangular_bwd(lower, trans, res, Xbar):
    # X = op(L)⁻¹B: B̄ = op(L)⁻ᵀX̄; L̄ = -B̄Xᵀ (op = id) or -XB̄ᵀ (op = ᵀ), on L's triangle
    L, X = res
    Bbar = _trsm(L, Xbar, lower, not trans)
    X2, B2 = (X[:, None], Bbar[:, None]) if X.ndim == 1 else (X, Bbar)
    Lbar = -(X2 @ B2.T) if trans else -(B2 @ X2.T)
    return (jnp.tril(Lbar) if lower else jnp.triu(Lbar)), Bbar


_solve_triangular.defvjp(_solve_triangular_fwd, _solve_triangular_bwd)


def solve_triangular(
    L: Float[ArrayLike, " n n"],
    B: Float[ArrayLike, " n *k"],
    *,
    lower: bool = True,
    trans: bool = False,
) -> Float[Array, " n *k"]:
    """``op(L)⁻¹ B`` for a triangular ``L`` (``op(L) = Lᵀ`` when ``trans``); ``B`` a vector or a
    matrix. As :func:`jax.scipy.linalg.solve_triangular`, with the CPU batching rule of this
    module and a closed-form reverse-mode derivative."""
    return _solve_triangular(jnp.asarray(L), jnp.asarray(B), lower, trans)


@jax.custom_vjp
def cholesky(K: Float[ArrayLike, " n n"]) -> Float[Array, " n n"]:
    """Lower Cholesky factor of the symmetric part of ``K`` (NaN where ``K`` is not positive
    definite, as :func:`jax.numpy.linalg.cholesky`), with the CPU batching rule of this
    module and a closed-form reverse-mode derivative."""
    K = jnp.asarray(K)
    return _potrf(0.5 * (K + K.T))


def _cholesky_fwd(K):
    L = cholesky(K)
    return L, L


def _cholesky_bwd(L, Lbar):
    # K̄ = sym(L⁻ᵀ Φ(LᵀL̄) L⁻¹), Φ = lower triangle with the diagonal halved (Murray, 2016)
    P = jnp.tril(L.T @ Lbar)
    P = P - 0.5 * jnp.diag(jnp.diagonal(P))
    Y = _trsm(L, P, True, True)  # L⁻ᵀP
    M = _trsm(L, Y.T, True, True).T  # (L⁻ᵀ Yᵀ)ᵀ = Y L⁻¹
    return (0.5 * (M + M.T),)


cholesky.defvjp(_cholesky_fwd, _cholesky_bwd)


def cho_solve(L: Float[ArrayLike, " n n"], B: Float[ArrayLike, " n *k"]) -> Float[Array, " n *k"]:
    """``K⁻¹B`` from the lower Cholesky factor ``L`` of ``K`` (two triangular solves)."""
    return solve_triangular(L, solve_triangular(L, B), trans=True)


def triangular_inverse(L: Float[Array, "n n"]) -> Float[Array, "n n"]:
    """``L⁻¹`` of a lower-triangular ``L`` (itself lower-triangular)."""
    return solve_triangular(L, jnp.eye(L.shape[0], dtype=L.dtype))


@jax.custom_jvp
def gaussian_log_density(K, r):
    r"""``-½ rᵀK⁻¹r - ½ log|K|`` by one Cholesky factorisation.

    Its derivative is given in closed form, :math:`\mathrm{d}f = \tfrac12
    \operatorname{tr}\big((\alpha\alpha^\top - K^{-1})\,\mathrm{d}K\big) - \alpha^\top
    \mathrm{d}r` with :math:`\alpha = K^{-1} r`: about half the work of differentiating through
    the Cholesky factorisation, in every autodiff mode (a JVP rule, so ``grad``, ``jvp`` and
    higher derivatives all work).
    """
    L = cholesky(K)
    w = solve_triangular(L, r)
    return -0.5 * jnp.sum(w * w) - jnp.sum(jnp.log(jnp.diagonal(L)))


@gaussian_log_density.defjvp
def _gaussian_log_density_jvp(primals, tangents):
    K, r = primals
    dK, dr = tangents
    L = cholesky(K)
    w = solve_triangular(L, r)
    if K.shape[0] <= _SMALL_INVERSE:
        # K⁻¹ = L⁻ᵀL⁻¹ by one triangular solve and one matrix product: 20-30% faster on CPU
        # than two triangular solves against the identity for small matrices (an NUTS step);
        # α = L⁻ᵀw then needs no further solve
        L_inv = triangular_inverse(L)
        K_inv = L_inv.T @ L_inv
        alpha = L_inv.T @ w
    else:
        K_inv = cho_solve(L, jnp.eye(K.shape[0], dtype=K.dtype))
        alpha = solve_triangular(L, w, trans=True)
    value = -0.5 * jnp.sum(w * w) - jnp.sum(jnp.log(jnp.diagonal(L)))
    dK = jnp.broadcast_to(dK, K.shape)  # symbolic-zero tangents arrive instantiated as zeros
    tangent = 0.5 * jnp.sum((alpha[:, None] * alpha[None, :] - K_inv) * dK) - jnp.dot(alpha, dr)
    return value, tangent
