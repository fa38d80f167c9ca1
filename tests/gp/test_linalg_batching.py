"""The factorisations of :mod:`jaxscope.gp.linalg`: same values and reverse-mode derivatives as
JAX's own (an independent implementation) and as finite differences, one matrix at a time
under ``vmap`` on CPU (counted in the jaxpr), and the pattern that deadlocks jaxlib 0.10's
batched LAPACK kernels on a small machine finishing in a subprocess."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest

from jaxscope.gp import linalg as la


@pytest.fixture
def spd():
    rs = np.random.RandomState(0)
    A = rs.randn(4, 6, 6)
    K = A @ A.transpose(0, 2, 1) + 6 * np.eye(6)
    return K, rs.randn(4, 6, 3), rs.randn(4, 6), rs.randn(6, 6)


def test_cholesky_values_and_gradients_match_jax(x64, spd):
    K, _, _, W = spd
    np.testing.assert_allclose(jax.vmap(la.cholesky)(K), np.linalg.cholesky(K), atol=1e-12)
    ours = jax.vmap(jax.grad(lambda K: jnp.sum(W * la.cholesky(K))))(K)
    ref = jax.vmap(jax.grad(lambda K: jnp.sum(W * jnp.linalg.cholesky(K))))(K)
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    # central differences along a symmetric direction
    E = np.random.RandomState(1).randn(6, 6)
    E = E + E.T
    f = lambda K: float(jnp.sum(W * la.cholesky(K)))  # noqa: E731
    h = 1e-6
    fd = (f(K[0] + h * E) - f(K[0] - h * E)) / (2 * h)
    np.testing.assert_allclose(np.sum(ours[0] * E), fd, rtol=1e-6)


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("trans", [False, True])
def test_triangular_solves_and_their_gradients_match_jax(x64, spd, lower, trans):
    K, B, b, _ = spd
    L = np.linalg.cholesky(K)
    L = L if lower else L.transpose(0, 2, 1)
    for rhs in (B, b):
        ours = lambda L, R: jnp.sum(jnp.sin(la.solve_triangular(L, R, lower=lower, trans=trans)))  # noqa: E731
        ref = lambda L, R: jnp.sum(  # noqa: E731
            jnp.sin(jsl.solve_triangular(L, R, lower=lower, trans="T" if trans else 0))
        )
        g1 = jax.vmap(jax.grad(ours, argnums=(0, 1)))(L, rhs)
        g2 = jax.vmap(jax.grad(ref, argnums=(0, 1)))(L, rhs)
        for a, c in zip(g1, g2, strict=True):
            np.testing.assert_allclose(a, c, atol=1e-12)
        x = jax.vmap(lambda L, R: la.solve_triangular(L, R, lower=lower, trans=trans))(L, rhs)
        op = L.transpose(0, 2, 1) if trans else L
        np.testing.assert_allclose(np.einsum("bij,bj...->bi...", op, x), rhs, atol=1e-10)


def test_cho_solve_is_the_inverse(x64, spd):
    K, B, _, _ = spd
    L = jax.vmap(la.cholesky)(K)
    np.testing.assert_allclose(jax.vmap(la.cho_solve)(L, B), np.linalg.solve(K, B), atol=1e-10)


def _eqns(jaxpr):
    for e in jaxpr.eqns:
        yield e
        for v in e.params.values():
            for sub in v if isinstance(v, (list, tuple)) else [v]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _eqns(inner)


def test_vmap_runs_one_matrix_at_a_time_on_cpu(spd):
    K, B, _, _ = spd
    K = jnp.asarray(K, jnp.float32)
    fn = jax.vmap(jax.vmap(lambda K, B: la.cho_solve(la.cholesky(K), B)))
    jaxpr = jax.make_jaxpr(fn)(jnp.stack([K, K]), jnp.stack([B, B]).astype(jnp.float32))
    ops = [e for e in _eqns(jaxpr.jaxpr) if e.primitive.name in ("cholesky", "triangular_solve")]
    assert len(ops) == 3  # one factorisation and two solves, each inside the loops
    assert all(v.aval.ndim == 2 for e in ops for v in e.invars)  # never a batched call
    scans = [e.params["length"] for e in _eqns(jaxpr.jaxpr) if e.primitive.name == "scan"]
    assert sorted(set(scans)) == [2, 4]  # the outer and the inner vmap, each a loop


_DEADLOCK = textwrap.dedent(
    """
    import jax, jax.numpy as jnp
    from jaxscope.gp import linalg as la

    n, b = 300, 4
    def body(i, c):
        A, B = c  # two independent batched factorisations per iteration
        LA, LB = jax.vmap(la.cholesky)(A), jax.vmap(la.cholesky)(B)
        return A + 1e-6 * jnp.sum(LA) * jnp.eye(n), B + 1e-6 * jnp.sum(LB) * jnp.eye(n)
    f = jax.jit(lambda A, B: jax.lax.fori_loop(0, 150, body, (A, B)))
    A = jnp.broadcast_to(2.0 * jnp.eye(n), (b, n, n))
    jax.block_until_ready(f(A, A + 0.1))
    print("done")
    """
)


def test_concurrent_batched_factorisations_do_not_deadlock():
    # with jax's own batched cholesky this program hangs at 0 % CPU on a 2-core machine in most
    # runs (jaxlib 0.10.2: the batch is split across the intra-op pool that runs both calls)
    out = subprocess.run([sys.executable, "-c", _DEADLOCK], capture_output=True, text=True,
                         timeout=240, env={"JAX_PLATFORMS": "cpu", **__import__("os").environ})  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("done")


def test_one_matrix_many_right_hand_sides_is_one_solve(x64, spd):
    K, B, _, _ = spd
    L = np.linalg.cholesky(K[0])
    fn = jax.vmap(lambda R: la.solve_triangular(L, R, trans=True))
    np.testing.assert_allclose(fn(B), np.linalg.solve(L.T[None], B), atol=1e-10)
    jaxpr = jax.make_jaxpr(fn)(B)
    ops = [e for e in _eqns(jaxpr.jaxpr) if e.primitive.name == "triangular_solve"]
    assert len(ops) == 1 and ops[0].invars[1].aval.shape == (6, 4 * 3)  # columns side by side
    assert not [e for e in _eqns(jaxpr.jaxpr) if e.primitive.name == "scan"]
    # and its gradient (the backward solve is batched the same way)
    g = jax.grad(lambda B: jnp.sum(jnp.sin(fn(B))))(B)
    g_ref = jax.grad(lambda B: jnp.sum(jnp.sin(jax.vmap(
        lambda R: jsl.solve_triangular(L, R, lower=True, trans="T"))(B))))(B)  # fmt: skip
    np.testing.assert_allclose(g, g_ref, atol=1e-12)
