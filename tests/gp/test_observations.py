"""The fixed-capacity observation buffer: construction, refusal of bad input, and padding that
contributes exactly nothing (checked against the unpadded GP and against SciPy)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from conftest import assert_allclose
from jaxscope.kernels import Matern52

from jaxscope import GP, Observations, Standardizer

# --- construction -----------------------------------------------------------------------------


def test_add_extend_from_arrays_agree(dtype):
    rng = np.random.default_rng(0)
    X, y = rng.uniform(size=(6, 2)), rng.normal(size=6)
    a = Observations.from_arrays(X, y, capacity=10)
    b = Observations.empty(10, 2)
    for xi, yi in zip(X, y, strict=True):
        b = b.add(xi, yi)
    c = Observations.empty(10, 2).extend(X[:2], y[:2]).extend(X[2:], y[2:])
    for o in (a, b, c):
        assert o.X.dtype == dtype and o.y.dtype == dtype
        assert o.capacity == 10 and o.dim == 2 and int(o.count) == 6
        np.testing.assert_array_equal(np.asarray(o.mask), [True] * 6 + [False] * 4)
        np.testing.assert_array_equal(np.asarray(o.X[:6]), X.astype(dtype))
        np.testing.assert_array_equal(np.asarray(o.y[:6]), y.astype(dtype))
        np.testing.assert_array_equal(np.asarray(o.X[6:]), 0.0)
        Xa, ya = o.arrays()
        np.testing.assert_array_equal(Xa, X.astype(dtype))
        np.testing.assert_array_equal(ya, y.astype(dtype))


def test_from_arrays_defaults_and_1d_inputs():
    o = Observations.from_arrays(np.linspace(0, 1, 5), np.arange(5.0))
    assert o.X.shape == (5, 1) and int(o.count) == 5
    e = Observations.from_arrays(np.zeros((0, 3)), np.zeros(0), capacity=4)
    assert int(e.count) == 0 and e.X.shape == (4, 3)


def test_overflow_is_refused():
    o = Observations.from_arrays(np.zeros((3, 2)), np.zeros(3), capacity=3)
    with pytest.raises(ValueError, match="full.*capacity 3"):
        o.add(np.ones(2), 1.0)
    with pytest.raises(ValueError, match="overflows capacity 4"):
        Observations.empty(4, 2).extend(np.ones((3, 2)), np.ones(3)).extend(
            np.ones((2, 2)), np.ones(2)
        )
    with pytest.raises(ValueError, match="5 points do not fit in a buffer of capacity 4"):
        Observations.from_arrays(np.zeros((5, 2)), np.zeros(5), capacity=4)


def test_nonfinite_input_is_refused_naming_the_entry():
    o = Observations.empty(5, 3)
    with pytest.raises(ValueError, match=r"x\[1\] is nan"):
        o.add(np.array([0.0, np.nan, 1.0]), 1.0)
    with pytest.raises(ValueError, match=r"y is inf"):
        o.add(np.zeros(3), np.inf)
    X = np.zeros((4, 3))
    X[2, 1] = -np.inf
    with pytest.raises(ValueError, match=r"X\[2, 1\] is -inf"):
        o.extend(X, np.zeros(4))
    with pytest.raises(ValueError, match=r"y\[3\] is nan"):
        o.extend(np.zeros((4, 3)), np.array([0.0, 1.0, 2.0, np.nan]))
    with pytest.raises(ValueError, match=r"y\[0\] is nan"):
        Observations.from_arrays(np.zeros((2, 3)), np.array([np.nan, 0.0]))
    # finite in float64 but too large for the buffer's float32: refused, not stored as inf
    big = np.zeros((2, 3))
    big[1, 2] = 1e39
    with pytest.raises(ValueError, match=r"X\[1, 2\] is inf"):
        Observations.from_arrays(big, np.zeros(2), dtype=np.float32)
    with pytest.raises(ValueError, match="capacity and dim must be positive"):
        Observations.from_arrays(np.zeros((0, 3)), np.zeros(0), capacity=0)
    assert int(o.count) == 0  # nothing was added (the buffer is immutable anyway)


def test_wrong_shapes_are_refused():
    o = Observations.empty(5, 3)
    with pytest.raises(ValueError, match=r"x must have shape \(3,\), got \(2,\)"):
        o.add(np.zeros(2), 1.0)
    with pytest.raises(ValueError, match=r"y must be a scalar, got shape \(2,\)"):
        o.add(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match=r"X must have shape \(n, 3\), got \(4, 2\)"):
        o.extend(np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match=r"y must have shape \(4,\), got \(3,\)"):
        o.extend(np.zeros((4, 3)), np.zeros(3))
    with pytest.raises(ValueError, match=r"y must have shape \(4,\) to match X, got \(4, 1\)"):
        Observations.from_arrays(np.zeros((4, 3)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match=r"X must have shape \(n, d\) or \(n,\), got \(2, 2, 2\)"):
        Observations.from_arrays(np.zeros((2, 2, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="capacity and dim must be positive"):
        Observations.empty(0, 2)


@pytest.mark.parametrize("jit", [jax.jit, eqx.filter_jit], ids=["jax.jit", "eqx.filter_jit"])
def test_errors_inside_jit_are_raised_at_runtime(jit):
    add = jit(lambda o, x, y: o.add(x, y))
    extend = jit(lambda o, X, y: o.extend(X, y))
    o = Observations.empty(2, 2).add(np.zeros(2), 0.0)
    # fine: the same compiled function works, then fails on the bad values only
    o2 = add(o, jnp.ones(2), jnp.asarray(1.0))
    assert int(o2.count) == 2
    np.testing.assert_array_equal(np.asarray(o2.X[1]), [1.0, 1.0])
    with pytest.raises(Exception, match="buffer is full"):
        jax.block_until_ready(add(o2, jnp.ones(2), jnp.asarray(1.0)))
    with pytest.raises(Exception, match="NaN or inf"):
        jax.block_until_ready(add(o, jnp.array([jnp.nan, 0.0]), jnp.asarray(1.0)))
    with pytest.raises(Exception, match="NaN or inf"):
        jax.block_until_ready(add(o, jnp.zeros(2), jnp.asarray(jnp.inf)))
    with pytest.raises(Exception, match="buffer is full"):
        jax.block_until_ready(extend(o, jnp.ones((2, 2)), jnp.ones(2)))


def test_standardizer_ignores_padding():
    rng = np.random.default_rng(1)
    y = rng.normal(3.0, 2.0, 9)
    o = Observations.from_arrays(rng.uniform(size=(9, 1)), y, capacity=20)
    o = eqx.tree_at(lambda t: t.y, o, o.y.at[9:].set(100.0))  # garbage in the padding
    s = Standardizer.fit(o)
    assert_allclose(s.shift, y.mean(), scale=5)
    assert_allclose(s.scale, y.std(), scale=5)
    z = Standardizer.apply(s, o)
    assert_allclose(z.y[:9], (y - y.mean()) / y.std(), scale=5)
    np.testing.assert_array_equal(np.asarray(z.y[9:]), 0.0)
    m, v = s.unscale(z.y[:9], jnp.ones(9))
    assert_allclose(m, y, scale=5)
    assert_allclose(v, np.full(9, y.var()), scale=5)


# --- padding contributes exactly nothing -------------------------------------------------------

N, CAP, NOISE, JIT = 37, 500, 0.05, 1e-8


def _padded_with_garbage(X, y, capacity, rng):
    """A buffer whose padding rows hold arbitrary finite values (mask False)."""
    o = Observations.from_arrays(X, y, capacity=capacity)
    pad = capacity - X.shape[0]
    return eqx.tree_at(
        lambda t: (t.X, t.y),
        o,
        (
            o.X.at[X.shape[0] :].set(rng.uniform(-5, 5, (pad, X.shape[1]))),
            o.y.at[X.shape[0] :].set(rng.normal(0, 10, pad)),
        ),
    )


def _gp(theta):
    ls, var, noise, mean = theta
    return GP(kernel=Matern52(lengthscale=ls, variance=var), noise=noise, mean=mean, jitter=JIT)


@eqx.filter_jit
def _lml_and_grad(theta, obs):
    return jax.value_and_grad(lambda t: _gp(t).log_marginal_likelihood(obs))(theta)


@eqx.filter_jit
def _predict(theta, obs, Xs):
    return _gp(theta).condition(obs).predict(Xs)


def _np_matern52(A, B, ls, var):
    r = scipy.spatial.distance.cdist(A / ls, B / ls)
    return var * (1 + np.sqrt(5) * r + 5 * r**2 / 3) * np.exp(-np.sqrt(5) * r)


def _np_lml_and_grad(theta, X, y):
    """log N(y | mean, K + σ²I) with SciPy, and its gradient by the trace formula
    ∂/∂θ log p = ½ tr((αα^T - C^{-1}) ∂C/∂θ), α = C^{-1}(y - mean), all in float64."""
    ls, var, noise, mean = theta
    Kf = _np_matern52(X, X, ls, var)
    C = Kf + (noise + JIT) * np.eye(len(X))
    lml = scipy.stats.multivariate_normal(np.full(len(X), mean), C).logpdf(y)
    cf = scipy.linalg.cho_factor(C, lower=True)
    alpha = scipy.linalg.cho_solve(cf, y - mean)
    Cinv = scipy.linalg.cho_solve(cf, np.eye(len(X)))
    r = scipy.spatial.distance.cdist(X / ls, X / ls)
    # d/dℓ of var (1 + √5 r + 5r²/3) e^{-√5 r} with r ∝ 1/ℓ: (5/3) var r² (1 + √5 r) e^{-√5 r} / ℓ
    dK_dls = var * (5.0 / 3.0) * r**2 * (1 + np.sqrt(5) * r) * np.exp(-np.sqrt(5) * r) / ls
    A = np.outer(alpha, alpha) - Cinv
    grad = [
        0.5 * np.sum(A * dK_dls),
        0.5 * np.sum(A * Kf / var),
        0.5 * np.trace(A),
        np.sum(alpha),
    ]
    return lml, np.array(grad)


def _np_predict(theta, X, y, Xs):
    ls, var, noise, mean = theta
    C = _np_matern52(X, X, ls, var) + (noise + JIT) * np.eye(len(X))
    Ks = _np_matern52(X, Xs, ls, var)
    mu = mean + Ks.T @ np.linalg.solve(C, y - mean)
    v = var - np.sum(Ks * np.linalg.solve(C, Ks), axis=0)
    return mu, v


@pytest.fixture(scope="module")
def padding_problem():
    rng = np.random.default_rng(42)
    X = rng.uniform(0, 1, (N, 2))
    y = np.sin(6 * X[:, 0]) * np.cos(4 * X[:, 1]) + 0.2 * rng.normal(size=N)
    Xs = rng.uniform(0, 1, (23, 2))
    theta = np.array([0.3, 0.8, NOISE, 0.1])
    return X, y, Xs, theta, rng


def test_padding_contributes_nothing(padding_problem, x64):
    X, y, Xs, theta, rng = padding_problem
    small = Observations.from_arrays(X, y)  # exactly N rows, no padding
    big = _padded_with_garbage(X, y, CAP, rng)
    assert small.capacity == N and big.capacity == CAP and int(big.count) == N
    t = jnp.asarray(theta)

    lml_s, g_s = _lml_and_grad(t, small)
    lml_b, g_b = _lml_and_grad(t, big)
    np.testing.assert_allclose(lml_b, lml_s, rtol=1e-12)
    np.testing.assert_allclose(g_b, g_s, rtol=1e-9, atol=1e-9)

    # both equal SciPy's multivariate normal and the analytic gradient
    lml_ref, g_ref = _np_lml_and_grad(theta, X, y)
    np.testing.assert_allclose(lml_b, lml_ref, rtol=1e-10)
    np.testing.assert_allclose(g_b, g_ref, rtol=1e-7, atol=1e-8)

    (m_s, v_s), (m_b, v_b) = _predict(t, small, Xs), _predict(t, big, Xs)
    np.testing.assert_allclose(m_b, m_s, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(v_b, v_s, rtol=1e-9, atol=1e-12)
    m_ref, v_ref = _np_predict(theta, X, y, Xs)
    np.testing.assert_allclose(m_b, m_ref, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(v_b, v_ref, rtol=1e-7, atol=1e-10)


def test_padding_float32(padding_problem):
    # the same invariance in float32, at float32 tolerance
    X, y, Xs, theta, rng = padding_problem
    t = jnp.asarray(theta, jnp.float32)
    small = Observations.from_arrays(X, y)
    big = _padded_with_garbage(X, y, CAP, rng)
    lml_s, g_s = _lml_and_grad(t, small)
    lml_b, g_b = _lml_and_grad(t, big)
    assert lml_b.dtype == jnp.float32
    lml_ref, g_ref = _np_lml_and_grad(theta.astype(np.float32).astype(float), X, y)
    np.testing.assert_allclose(lml_b, lml_s, rtol=1e-5)
    np.testing.assert_allclose(lml_b, lml_ref, rtol=1e-3)  # float32 Cholesky, jitter 1e-8 vs 1e-5
    np.testing.assert_allclose(g_b, g_s, rtol=1e-3, atol=1e-3)
