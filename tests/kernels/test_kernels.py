"""Kernels against independent NumPy formulas, in float32 and float64."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_allclose

from jaxscope import kernels as K

D = 3
LS = 0.7
ARD = np.array([0.3, 0.9, 2.0])


def _r(X1, X2, ls):
    """Euclidean distance of scaled inputs, by explicit pairwise differences in float64."""
    diff = (X1[:, None, :] - X2[None, :, :]) / ls
    return np.sqrt(np.sum(diff**2, axis=-1))


def _matern(nu, r):
    if nu == 0.5:
        return np.exp(-r)
    if nu == 1.5:
        return (1 + np.sqrt(3) * r) * np.exp(-np.sqrt(3) * r)
    return (1 + np.sqrt(5) * r + 5 * r**2 / 3) * np.exp(-np.sqrt(5) * r)


def _ref_rbf(X1, X2, ls=LS, var=1.3):
    return var * np.exp(-0.5 * _r(X1, X2, ls) ** 2)


def _ref_periodic(X1, X2):
    s = np.sin(np.pi * np.abs(X1[:, None, :] - X2[None, :, :]) / 0.6) / 0.8
    return 1.1 * np.exp(-2.0 * np.sum(s**2, axis=-1))


def _ref_linear(X1, X2):
    return 0.2 + 0.5 * (X1 - 0.3) @ (X2 - 0.3).T


def _ref_white(X1, X2):
    same = np.all(X1[:, None, :] == X2[None, :, :], axis=-1)
    return 0.4 * same


def _tanh2(x):
    return 2.0 * jnp.tanh(x)


def _laplace(x1, x2, p):
    return p["amp"] * jnp.exp(-jnp.sum(jnp.abs(x1 - x2)) / p["scale"])


# name -> (kernel factory, NumPy reference on float64 inputs)
CASES = {
    "rbf": (lambda: K.RBF(lengthscale=LS, variance=1.3), _ref_rbf),
    "matern12": (
        lambda: K.Matern12(lengthscale=LS, variance=0.8),
        lambda A, B: 0.8 * _matern(0.5, _r(A, B, LS)),
    ),
    "matern32": (
        lambda: K.Matern32(lengthscale=LS, variance=0.8),
        lambda A, B: 0.8 * _matern(1.5, _r(A, B, LS)),
    ),
    "matern52": (
        lambda: K.Matern52(lengthscale=LS, variance=0.8),
        lambda A, B: 0.8 * _matern(2.5, _r(A, B, LS)),
    ),
    "rq": (
        lambda: K.RationalQuadratic(lengthscale=LS, variance=1.5, alpha=0.7),
        lambda A, B: 1.5 * (1 + _r(A, B, LS) ** 2 / (2 * 0.7)) ** (-0.7),
    ),
    "periodic": (lambda: K.Periodic(lengthscale=0.8, period=0.6, variance=1.1), _ref_periodic),
    "linear": (lambda: K.Linear(variance=0.5, bias=0.2, center=0.3), _ref_linear),
    "polynomial": (
        lambda: K.Polynomial(degree=3, variance=0.5, bias=0.7),
        lambda A, B: (0.7 + 0.5 * A @ B.T) ** 3,
    ),
    "constant": (lambda: K.Constant(variance=0.9), lambda A, B: np.full((len(A), len(B)), 0.9)),
    "white": (lambda: K.White(variance=0.4), _ref_white),
    "rbf_ard": (
        lambda: K.RBF(lengthscale=jnp.asarray(ARD), variance=1.0),
        lambda A, B: _ref_rbf(A, B, ARD, 1.0),
    ),
    "matern52_ard": (
        lambda: K.Matern52(lengthscale=jnp.asarray(ARD), variance=2.0),
        lambda A, B: 2.0 * _matern(2.5, _r(A, B, ARD)),
    ),
    "matern12_ard": (
        lambda: K.Matern12(lengthscale=jnp.asarray(ARD), variance=2.0),
        lambda A, B: 2.0 * _matern(0.5, _r(A, B, ARD)),
    ),
    "sum": (
        lambda: K.RBF(lengthscale=LS, variance=1.3) + K.Linear(variance=0.5, bias=0.2, center=0.3),
        lambda A, B: _ref_rbf(A, B) + _ref_linear(A, B),
    ),
    "sum_constant": (
        lambda: K.RBF(lengthscale=LS, variance=1.3) + 0.25,
        lambda A, B: _ref_rbf(A, B) + 0.25,
    ),
    "product": (
        lambda: (
            K.Matern32(lengthscale=LS, variance=0.8)
            * K.Periodic(lengthscale=0.8, period=0.6, variance=1.1)
        ),
        lambda A, B: 0.8 * _matern(1.5, _r(A, B, LS)) * _ref_periodic(A, B),
    ),
    "scaled_left": (
        lambda: 2.5 * K.RBF(lengthscale=LS, variance=1.3),
        lambda A, B: 2.5 * _ref_rbf(A, B),
    ),
    "scaled_right": (
        lambda: K.RBF(lengthscale=LS, variance=1.3) * 0.4,
        lambda A, B: 0.4 * _ref_rbf(A, B),
    ),
    "transformed": (
        lambda: K.Transformed(K.RBF(lengthscale=LS, variance=1.3), _tanh2),
        lambda A, B: _ref_rbf(2 * np.tanh(A), 2 * np.tanh(B)),
    ),
    "function": (
        lambda: K.FunctionKernel(_laplace, {"amp": 1.7, "scale": 0.9}),
        lambda A, B: 1.7 * np.exp(-np.sum(np.abs(A[:, None] - B[None]), -1) / 0.9),
    ),
}

STATIONARY = [
    "rbf",
    "matern12",
    "matern32",
    "matern52",
    "rq",
    "rbf_ard",
    "matern52_ard",
    "matern12_ard",
]


# jitted once per (kernel structure, dtype): one compilation instead of many eager op dispatches
_call = eqx.filter_jit(lambda k, a, b: k(a, b))
_diag = eqx.filter_jit(lambda k, a: k.diag(a))
_vmap_path = eqx.filter_jit(lambda k, a, b: K.Kernel.matrix(k, a, b))


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(0)
    X1 = rng.uniform(-1.0, 1.5, (7, D))
    X2 = np.concatenate([rng.uniform(-1.0, 1.5, (4, D)), X1[2:4]])  # shares two rows with X1
    return X1, X2


def _cast(dtype, *arrays):
    """The arrays in ``dtype`` and, for the reference, those same rounded values in float64."""
    return [jnp.asarray(a, dtype) for a in arrays], [
        np.asarray(a, dtype).astype(np.float64) for a in arrays
    ]


@pytest.mark.parametrize("name", sorted(CASES))
def test_matrix_matches_numpy(name, points, dtype):
    make, ref = CASES[name]
    (X1, X2), (A, B) = _cast(dtype, *points)
    k = make()
    Kx = _call(k, X1, X2)
    assert Kx.shape == (7, 6)
    assert Kx.dtype == dtype
    assert_allclose(Kx, ref(A, B), dtype=dtype, scale=5)
    # the symmetric case K(X, X) (exact zeros of the distance on the diagonal)
    assert_allclose(_call(k, X1, X1), ref(A, A), dtype=dtype, scale=5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_diag_equals_matrix_diagonal(name, points, dtype):
    make, _ = CASES[name]
    (X1,), _ = _cast(dtype, points[0])
    k = make()
    assert_allclose(_diag(k, X1), np.diag(np.asarray(_call(k, X1, X1))), dtype=dtype)


@pytest.mark.parametrize("name", STATIONARY)
def test_stationary_fast_path_equals_vmap_path(name, points, dtype):
    make, _ = CASES[name]
    (X1, X2), _ = _cast(dtype, *points)
    k = make()
    assert isinstance(k, K.Stationary)
    fast = _call(k, X1, X2)
    slow = _vmap_path(k, X1, X2)  # the generic double vmap over evaluate()
    assert_allclose(fast, slow, dtype=dtype, scale=5)


def test_fast_path_exact_far_from_origin():
    # Inputs in pixel units (~100) in float32: the distance of a point to itself must be 0,
    # otherwise the Matérn-1/2 square root turns rounding into errors of order 1e-3 or worse.
    X = jnp.asarray(np.random.default_rng(1).uniform(100.0, 101.0, (20, 2)), jnp.float32)
    for k in (K.Matern12(lengthscale=0.3), K.Matern32(lengthscale=0.3), K.RBF(lengthscale=0.3)):
        Kx = _call(k, X, X)
        np.testing.assert_array_equal(np.diag(np.asarray(Kx)), np.ones(20, np.float32))
        assert_allclose(Kx, _vmap_path(k, X, X), scale=5)


def test_many_dimensions_matmul_path(x64):
    # d > 8 uses the centred |a|² + |b|² - 2a·b expansion
    rng = np.random.default_rng(2)
    X1, X2 = rng.normal(size=(6, 12)) + 5.0, rng.normal(size=(5, 12)) + 5.0
    k = K.Matern52(lengthscale=jnp.linspace(1.0, 3.0, 12), variance=0.7)
    ref = 0.7 * _matern(2.5, _r(X1, X2, np.linspace(1.0, 3.0, 12)))
    assert_allclose(_call(k, jnp.asarray(X1), jnp.asarray(X2)), ref, scale=100)


@pytest.mark.parametrize("cls", [K.Matern12, K.Matern32, K.Matern52, K.RBF])
def test_gradient_finite_at_zero_distance(cls, x64):
    # d/dℓ Σ K(X, X) through the r = 0 diagonal: finite and equal to a central difference
    X = jnp.asarray(np.random.default_rng(3).uniform(size=(5, 2)))

    @jax.jit
    def total(ls):
        return jnp.sum(cls(lengthscale=ls, variance=1.0)(X))

    g = jax.jit(jax.grad(total))(0.4)
    h = 1e-6
    fd = (total(0.4 + h) - total(0.4 - h)) / (2 * h)
    assert np.isfinite(g)
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def test_1d_inputs_are_points():
    x = jnp.linspace(0.0, 1.0, 4)
    k = K.RBF(lengthscale=0.5)
    assert_allclose(
        k(x), _ref_rbf(np.asarray(x)[:, None], np.asarray(x)[:, None], 0.5, 1.0), scale=5
    )


def test_shape_errors_are_clear():
    k = K.RBF(lengthscale=0.5)
    with pytest.raises(ValueError, match=r"\(5, 3\).*\(4, 2\)"):
        k(jnp.zeros((5, 3)), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
        k(jnp.zeros((2, 3, 4)))
    ard = K.Matern52(lengthscale=jnp.ones(2))
    with pytest.raises(ValueError, match=r"lengthscale has shape \(2,\).*3 dimensions"):
        ard(jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"lengthscale has shape \(2,\).*3 dimensions"):
        ard.evaluate(jnp.zeros(3), jnp.ones(3))


def test_by_name():
    assert K.by_name("Matern-52") is K.Matern52
    assert K.by_name("rbf") is K.RBF
    with pytest.raises(ValueError, match="unknown kernel 'cosine'"):
        K.by_name("cosine")
