"""SVGP: exactness at Z = X against the exact GP, the bound and its closed-form optimum, the
minibatch estimator, recovery of a known function, units, compilation count and input errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_allclose, count_compilations
from jaxscope.kernels import Matern32

from jaxscope.gp import GP, Observations, Standardizer
from jaxscope.gp.svgp import SVGPPosterior, fit_svgp, grid_inducing, optimal_variational

NOISE = 0.01
JITTER = 1e-10  # float64 only: K_ZZ's jitter perturbs the Z = X identity by O(jitter / noise)


def _data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (n, d))
    if d == 1:  # well separated: near-duplicate 1-D points make K_ZZ nearly singular
        X = (np.arange(n) + rng.uniform(0.3, 0.7, n))[:, None] / n
    y = np.sin(4 * X[:, 0]) + (X[:, 1] ** 2 if d > 1 else 0) + 0.1 * rng.normal(size=n)
    Xs = rng.uniform(-0.1, 1.1, (25, d))
    return X, y, Xs


def _svgp(kernel, Z, X, y, noise=NOISE):
    m, L = optimal_variational(kernel, Z, X, y, noise, jitter=JITTER)
    return SVGPPosterior(
        kernel=kernel,
        Z=jnp.asarray(Z),
        m=m,
        L=L,
        noise=jnp.asarray(noise),
        scaler=Standardizer.identity(jnp.float64),
        losses=jnp.zeros((0,)),
        jitter=JITTER,
    )


def _exact(kernel, X, y, noise=NOISE):
    gp = GP(kernel=kernel, noise=jnp.asarray(noise), jitter=0.0)
    return gp, Observations.from_arrays(X, y)


def _spiral(n, rng):
    t = np.sqrt(rng.uniform(0, 1, n)) * 6 * np.pi
    return 0.5 + 0.45 * (t / (6 * np.pi))[:, None] * np.stack([np.cos(t), np.sin(t)], -1)


def _truth(X):
    return np.sin(5 * X[:, 0]) * np.cos(4 * X[:, 1])


@pytest.mark.parametrize("d", [1, 2])
def test_z_equal_x_is_the_exact_gp(x64, d):
    X, y, Xs = _data(40, d)
    kernel = Matern32(lengthscale=jnp.full((d,), 0.2), variance=1.3)
    post = _svgp(kernel, X, X, y)
    gp, obs = _exact(kernel, X, y)
    mean, var = post.predict(Xs)
    mean_e, var_e = gp.condition(obs).predict(Xs)
    assert_allclose(mean, mean_e, scale=1e5)
    assert_allclose(var, var_e, scale=1e5)
    mean_n, var_n = post.predict(Xs, include_noise=True, chunk_size=7)
    assert_allclose(mean_n, mean_e, scale=1e5)
    assert_allclose(var_n, var_e + NOISE, scale=1e5)
    # the bound's trace term tr(K - K (K + jitter I)⁻¹ K) / 2σ² ≈ n · jitter / 2σ² is all that
    # separates it from log p(y)
    gap = float(gp.log_marginal_likelihood(obs) - post.elbo(X, y))
    assert 0 <= gap < len(X) * JITTER / NOISE, gap


def test_elbo_is_a_bound_maximised_by_the_closed_form(x64):
    X, y, _ = _data(60, 2)
    kernel = Matern32(lengthscale=0.25, variance=1.0)
    gp, obs = _exact(kernel, X, y)
    lml = float(gp.log_marginal_likelihood(obs))
    post = _svgp(kernel, X[::4], X, y)
    best = float(post.elbo(X, y))
    assert best < lml - 1e-3  # strictly below with 15 of 60 points as Z
    rng = np.random.default_rng(1)
    M = post.m.shape[0]
    for _ in range(5):
        dm = 0.05 * rng.normal(size=M)
        dL = np.tril(0.02 * rng.normal(size=(M, M)))
        for m, L in ((post.m + dm, post.L), (post.m, post.L + dL), (post.m + dm, post.L + dL)):
            other = SVGPPosterior(post.kernel, post.Z, m, L, post.noise, post.scaler, post.losses)
            assert float(other.elbo(X, y)) < best


def test_minibatch_estimate_is_unbiased(x64):
    X, y, _ = _data(96, 2)
    post = _svgp(Matern32(lengthscale=0.3), X[:20], X, y)
    post = SVGPPosterior(
        post.kernel, post.Z, post.m + 0.1, post.L * 1.2, post.noise, post.scaler, post.losses
    )
    full = post.elbo(X, y)
    perm = np.random.default_rng(0).permutation(96)
    estimate = jax.jit(lambda p, Xb, yb: p.minibatch_elbo(Xb, yb, 96))
    batches = [estimate(post, X[i], y[i]) for i in perm.reshape(8, 12)]
    assert_allclose(np.mean(batches), full, scale=100)
    assert abs(float(batches[0]) - float(full)) > 1e-3  # a single batch is not the full ELBO


def test_training_recovers_a_function_on_a_spiral():
    rng = np.random.default_rng(3)
    X = _spiral(3000, rng)
    sd = 0.1
    y = _truth(X) + sd * rng.normal(size=3000)
    key = jax.random.key(0)
    kw = dict(num_inducing=144, batch_size=512, learning_rate=0.02)
    post = fit_svgp(key, X, y, num_steps=400, **kw)
    Xt = _spiral(500, np.random.default_rng(4))
    mean, var = post.predict(Xt, chunk_size=128)
    rmse = float(np.sqrt(np.mean((np.asarray(mean) - _truth(Xt)) ** 2)))
    assert rmse < 0.04, rmse
    noise_sd = float(np.sqrt(post.noise) * post.scaler.scale)
    assert sd / 1.5 < noise_sd < sd * 1.5, noise_sd
    assert np.all(np.asarray(var) >= 0) and float(np.sqrt(np.mean(var))) < 0.1
    assert post.losses.shape == (400,) and np.all(np.isfinite(post.losses))
    initial = fit_svgp(key, X, y, num_steps=0, **kw)
    assert float(post.elbo(X, y)) > float(initial.elbo(X, y)) + 1000


def test_predictions_are_in_user_units(x64):
    rng = np.random.default_rng(5)
    X = rng.uniform(0, 1, (200, 2))
    y = 3.0 + _truth(X) + 0.1 * rng.normal(size=200)
    kw = dict(num_inducing=16, inducing="random", batch_size=64, num_steps=50)
    key = jax.random.key(1)
    a = fit_svgp(key, X, y, **kw)
    b = fit_svgp(key, X, 1e-9 * y, **kw)
    Xs = rng.uniform(0, 1, (30, 2))
    (ma, va), (mb, vb) = a.predict(Xs, include_noise=True), b.predict(Xs, include_noise=True)
    assert float(np.mean(ma)) == pytest.approx(3.0, abs=0.5)
    assert_allclose(mb, 1e-9 * ma, scale=1e5)
    assert_allclose(vb, 1e-18 * va, scale=1e5)
    assert_allclose(b.noise, a.noise, scale=1e5)  # standardised units


def test_training_compiles_once():
    rng = np.random.default_rng(6)
    kw = dict(num_inducing=12, inducing="random", batch_size=32, num_steps=20)
    X = rng.uniform(0, 1, (100, 2))
    first = fit_svgp(jax.random.key(0), X, _truth(X), **kw)
    X2 = rng.uniform(0, 2, (100, 2))
    with count_compilations() as log:
        second = fit_svgp(jax.random.key(1), X2, 5 * _truth(X2), **kw)
    assert len(log) == 0, log
    assert not np.allclose(first.losses, second.losses)


def test_learned_inducing_points_move():
    rng = np.random.default_rng(7)
    X = rng.uniform(0, 1, (200, 2))
    kw = dict(num_inducing=16, batch_size=50, num_steps=30, learning_rate=0.02)
    fixed = fit_svgp(jax.random.key(0), X, _truth(X), **kw)
    moved = fit_svgp(jax.random.key(0), X, _truth(X), learn_inducing=True, **kw)
    np.testing.assert_array_equal(fixed.Z, grid_inducing(X.astype(fixed.Z.dtype), 16))
    assert np.abs(np.asarray(moved.Z) - np.asarray(fixed.Z)).max() > 1e-3
    assert np.all(np.isfinite(moved.losses)) and moved.losses[-1] < moved.losses[0]


def test_grid_inducing_covers_the_box():
    X = np.random.default_rng(0).uniform([0, 0], [4, 1], (500, 2))
    Z = grid_inducing(X, 100)
    assert 80 <= len(Z) <= 120
    assert len(np.unique(Z[:, 0])) > 3 * len(np.unique(Z[:, 1]))  # counts follow the aspect
    assert np.all(Z.min(0) >= X.min(0)) and np.all(Z.max(0) <= X.max(0))
    assert grid_inducing(X[:, :1], 30).shape == (30, 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(X=np.zeros(10)), "2-D"),
        (dict(y=np.zeros(9)), r"y must have shape \(10,\)"),
        (dict(X=np.r_[np.zeros((9, 2)), [[np.nan, 0]]]), r"X\[9, 0\] is nan"),
        (dict(y=np.r_[np.zeros(9), np.inf]), r"y\[9\] is inf"),
        (dict(num_inducing=0), "num_inducing must be >= 1"),
        (dict(num_inducing=11, inducing="random"), "exceeds the 10 data points"),
        (dict(batch_size=0), "batch_size must be >= 1"),
        (dict(inducing="kmeans"), "unknown inducing option 'kmeans'"),
        (dict(inducing=np.zeros((5, 3))), r"shape \(M, 2\)"),
        (dict(kernel="gaussian"), "unknown kernel 'gaussian'"),
    ],
)
def test_errors(kwargs, match):
    args = dict(X=np.random.default_rng(0).uniform(size=(10, 2)), y=np.zeros(10))
    args.update(kwargs)
    X, y = args.pop("X"), args.pop("y")
    with pytest.raises(ValueError, match=match):
        fit_svgp(jax.random.key(0), X, y, num_steps=1, **args)
