"""Exact GP: posterior against closed-form NumPy formulas, chunking, rank-1 updates, sampling and
mixtures over hyperparameter samples."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_allclose, tols
from jaxscope.kernels import RBF, Matern52, Periodic

from jaxscope import GP, Observations, mixture_moments, predict_mixture
from jaxscope.gp import default_jitter

N, CAP, M = 12, 20, 30
LS, VAR, NOISE = 0.35, 1.4, 0.02


def _np_matern52(A, B, ls=LS, var=VAR):
    r = np.sqrt(np.sum(((A[:, None, :] - B[None, :, :]) / ls) ** 2, -1))
    return var * (1 + np.sqrt(5) * r + 5 * r**2 / 3) * np.exp(-np.sqrt(5) * r)


def _np_mean_fn(X):
    return 0.5 - 0.3 * X[:, 0]


def _mean_fn(x):
    return 0.5 - 0.3 * x[0]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    X = rng.uniform(0, 1, (N + 3, 2))
    y = np.sin(5 * X[:, 0]) + X[:, 1] ** 2 + 0.1 * rng.normal(size=N + 3)
    Xs = rng.uniform(-0.1, 1.1, (M, 2))
    return X, y, Xs


def _setup(data, dtype, noise=NOISE, mean=0.0, n=N):
    X, y, Xs = data
    obs = Observations.from_arrays(X[:n], y[:n], capacity=CAP)
    # noise as an array: noisy and noiseless GPs share one compiled program
    gp = GP(
        kernel=Matern52(lengthscale=LS, variance=VAR), noise=jnp.asarray(noise, dtype), mean=mean
    )
    # the reference sees exactly the rounded inputs the GP sees
    X64 = np.asarray(jnp.asarray(X, dtype), np.float64)
    y64 = np.asarray(jnp.asarray(y, dtype), np.float64)
    Xs64 = np.asarray(jnp.asarray(Xs, dtype), np.float64)
    return gp, obs, (X64[:n], y64[:n], Xs64), jnp.asarray(Xs, dtype)


def _np_posterior(X, y, Xs, noise, jitter, mean_fn=None):
    """Closed form: μ = m(X*) + K*ᵀ C⁻¹ (y - m(X)), Σ = K** - K*ᵀ C⁻¹ K*, C = K + (σ² + jitter) I."""
    m_x = mean_fn(X) if mean_fn else np.zeros(len(X))
    m_s = mean_fn(Xs) if mean_fn else np.zeros(len(Xs))
    C = _np_matern52(X, X) + (noise + jitter) * np.eye(len(X))
    Ks = _np_matern52(X, Xs)
    mu = m_s + Ks.T @ np.linalg.solve(C, y - m_x)
    cov = _np_matern52(Xs, Xs) - Ks.T @ np.linalg.solve(C, Ks)
    return mu, cov


_predict = eqx.filter_jit(lambda gp, obs, Xs, **kw: gp.condition(obs).predict(Xs, **kw))


@pytest.mark.parametrize("noise", [NOISE, 0.0], ids=["noisy", "noiseless"])
@pytest.mark.parametrize("mean", ["zero", "callable"])
def test_predict_matches_closed_form(data, dtype, noise, mean):
    mean_fn = _mean_fn if mean == "callable" else 0.0
    gp, obs, (X, y, Xs), Xs_j = _setup(data, dtype, noise, mean_fn)
    mu, var = _predict(gp, obs, Xs_j)
    assert mu.shape == (M,) and var.shape == (M,) and mu.dtype == dtype
    ref_mu, ref_cov = _np_posterior(
        X, y, Xs, noise, default_jitter(dtype), _np_mean_fn if mean == "callable" else None
    )
    # noiseless: the Gram matrix's condition number (~1e4) multiplies float32 rounding
    scale = 30 if noise else 300
    assert_allclose(mu, ref_mu, dtype=dtype, scale=scale)
    assert_allclose(var, np.maximum(np.diag(ref_cov), 0), dtype=dtype, scale=scale)
    if noise == 0.0:  # noiseless: the posterior interpolates the data
        mu_x, var_x = _predict(gp, obs, jnp.asarray(X, dtype))
        np.testing.assert_allclose(mu_x, y, atol=1e-2 if dtype == jnp.float32 else 1e-6)
        assert np.max(var_x) < (1e-3 if dtype == jnp.float32 else 1e-7)
    # include_noise adds σ² to every variance
    _, var_y = _predict(gp, obs, Xs_j, include_noise=True)
    assert_allclose(var_y, np.asarray(var, np.float64) + noise, dtype=dtype, scale=2)


def test_full_cov_matches_closed_form(data, dtype):
    gp, obs, (X, y, Xs), Xs_j = _setup(data, dtype)
    mu, cov = _predict(gp, obs, Xs_j, full_cov=True)
    assert cov.shape == (M, M)
    ref_mu, ref_cov = _np_posterior(X, y, Xs, NOISE, default_jitter(dtype))
    assert_allclose(mu, ref_mu, dtype=dtype, scale=30)
    assert_allclose(cov, ref_cov, dtype=dtype, scale=30)
    _, cov_y = _predict(gp, obs, Xs_j, full_cov=True, include_noise=True)
    assert_allclose(cov_y, ref_cov + NOISE * np.eye(M), dtype=dtype, scale=30)


def test_chunked_equals_unchunked(data, dtype):
    gp, obs, _, Xs_j = _setup(data, dtype)
    mu, var = _predict(gp, obs, Xs_j)
    for chunk in (7, 10, 29):  # 30 = 4·7 + 2 (padded last chunk), exact multiple, one short
        mu_c, var_c = _predict(gp, obs, Xs_j, chunk_size=chunk)
        assert mu_c.shape == (M,)
        assert_allclose(mu_c, mu, dtype=dtype, scale=5)
        assert_allclose(var_c, var, dtype=dtype, scale=5)


def test_predict_rejects_wrong_dimension(data):
    gp, obs, _, _ = _setup(data, jnp.float32)
    with pytest.raises(ValueError, match="Xnew has 3 input dimensions, the data 2"):
        _condition(gp, obs).predict(jnp.zeros((4, 3)))


# --- incremental updates ----------------------------------------------------------------------


@eqx.filter_jit
def _add_three(post, Xn, yn):
    for i in range(3):
        post = post.add(Xn[i], yn[i])
    return post


@eqx.filter_jit
def _cache_add_three(cache, Xn, yn):
    for i in range(3):
        cache = cache.add(Xn[i], yn[i])
    return cache


_condition = eqx.filter_jit(lambda gp, obs: gp.condition(obs))
_cache = eqx.filter_jit(lambda post, Xs: post.cache(Xs))
_post_predict = eqx.filter_jit(lambda post, Xs, **kw: post.predict(Xs, **kw))


@pytest.mark.parametrize("mean", ["zero", "callable"])
def test_rank1_add_equals_refactorisation(data, dtype, mean):
    X, y, _ = data
    mean_fn = _mean_fn if mean == "callable" else 0.0
    gp, obs, _, Xs_j = _setup(data, dtype, mean=mean_fn)
    Xn, yn = jnp.asarray(X[N : N + 3], dtype), jnp.asarray(y[N : N + 3], dtype)
    inc = _add_three(_condition(gp, obs), Xn, yn)
    full = _condition(gp, Observations.from_arrays(X[: N + 3], y[: N + 3], capacity=CAP))
    assert int(inc.obs.count) == N + 3
    np.testing.assert_array_equal(np.asarray(inc.obs.X), np.asarray(full.obs.X))
    assert_allclose(inc.L, full.L, dtype=dtype, scale=20)
    assert_allclose(inc.w, full.w, dtype=dtype, scale=50)
    assert_allclose(inc.alpha, full.alpha, dtype=dtype, scale=300)
    (m1, v1), (m2, v2) = _post_predict(inc, Xs_j), _post_predict(full, Xs_j)
    assert_allclose(m1, m2, dtype=dtype, scale=50)
    assert_allclose(v1, v2, dtype=dtype, scale=50)


def test_predictive_cache_add_equals_fresh(data, dtype):
    X, y, _ = data
    gp, obs, _, Xs_j = _setup(data, dtype)
    Xn, yn = jnp.asarray(X[N : N + 3], dtype), jnp.asarray(y[N : N + 3], dtype)
    cache = _cache_add_three(_cache(_condition(gp, obs), Xs_j), Xn, yn)
    full = _condition(gp, Observations.from_arrays(X[: N + 3], y[: N + 3], capacity=CAP))
    fresh = _cache(full, Xs_j)
    mu, var = _post_predict(full, Xs_j)
    assert_allclose(cache.V, fresh.V, dtype=dtype, scale=50)
    for got in (cache, fresh):
        assert_allclose(got.mean, mu, dtype=dtype, scale=50)
        assert_allclose(got.var, var, dtype=dtype, scale=50)


# --- posterior samples --------------------------------------------------------------------------

_sample = eqx.filter_jit(
    lambda post, key, Xs, n, method, chunk=None: post.sample(
        key, Xs, n, method=method, chunk_size=chunk
    )
)


def _z_scores(samples, mu, cov):
    """Standardised errors of the sample mean and covariance (≈ N(0, 1) under the hypothesis)."""
    s = np.asarray(samples, np.float64)
    S = s.shape[0]
    sd = np.sqrt(np.diag(cov))
    z_mean = (s.mean(0) - mu) / (sd / np.sqrt(S))
    emp = np.cov(s, rowvar=False)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / S)
    z_cov = (emp - cov) / se_cov
    return z_mean, z_cov


def test_exact_samples_match_posterior(data, x64):
    gp, obs, _, _ = _setup(data, jnp.float64)
    Xs = jnp.asarray(data[2][:6])
    post = _condition(gp, obs)
    mu, cov = _post_predict(post, Xs, full_cov=True)
    draws = _sample(post, jax.random.key(0), Xs, 20000, "exact")
    assert draws.shape == (20000, 6)
    z_mean, z_cov = _z_scores(draws, np.asarray(mu), np.asarray(cov))
    # 6 means and 36 covariance entries: |z| < 4.5 fails with probability < 1e-3 when correct,
    # and a wrong mean or a covariance off by a few percent fails it
    assert np.max(np.abs(z_mean)) < 4.5, z_mean
    assert np.max(np.abs(z_cov)) < 4.5, z_cov


@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
def test_pathwise_samples_match_posterior(data, kernel, x64):
    X, y, _ = data
    k = (
        RBF(lengthscale=LS, variance=VAR)
        if kernel == "rbf"
        else Matern52(lengthscale=LS, variance=VAR)
    )
    gp = GP(kernel=k, noise=NOISE, mean=0.2)
    post = _condition(gp, Observations.from_arrays(X[:N], y[:N], capacity=CAP))
    Xs = jnp.asarray(data[2])
    mu, var = _post_predict(post, Xs)
    S = 3000
    draws = _sample(post, jax.random.key(1), Xs, S, "pathwise")
    assert draws.shape == (S, M)
    d = np.asarray(draws)
    sd = np.sqrt(np.asarray(var))
    # the mean is unbiased for any feature draw: within 5 standard errors
    z_mean = (d.mean(0) - np.asarray(mu)) / (sd / np.sqrt(S))
    assert np.max(np.abs(z_mean)) < 5.0, z_mean
    # the variance carries the random-feature approximation error (2048 features: a few percent)
    # plus the sampling error sqrt(2/S) ≈ 2%; relative to the prior variance
    np.testing.assert_allclose(d.var(0), np.asarray(var), atol=0.08 * VAR)
    assert np.corrcoef(d.var(0), np.asarray(var))[0, 1] > 0.95
    if kernel == "rbf":  # chunked pathwise sampling is the same function (same features, weights)
        chunked = _sample(post, jax.random.key(1), Xs, S, "pathwise", 7)
        assert_allclose(chunked, draws, scale=1e3)


def test_sampling_errors(data):
    gp, obs, _, Xs_j = _setup(data, jnp.float32)
    post = _condition(gp, obs)
    with pytest.raises(ValueError, match="unknown sampling method 'gibbs'"):
        post.sample(jax.random.key(0), Xs_j, 2, method="gibbs")
    periodic = _condition(GP(kernel=Periodic(), noise=NOISE), obs)
    with pytest.raises(ValueError, match="pathwise sampling needs"):
        periodic.sample(jax.random.key(0), Xs_j, 2, method="pathwise")


# --- mixtures over hyperparameter samples -----------------------------------------------------


def test_mixture_moments_matches_numpy(dtype):
    rng = np.random.default_rng(3)
    means, variances = rng.normal(size=(9, 13)), rng.uniform(0.1, 2.0, (9, 13))
    mean, var = mixture_moments(jnp.asarray(means, dtype), jnp.asarray(variances, dtype))
    m64, v64 = np.asarray(means, dtype).astype(float), np.asarray(variances, dtype).astype(float)
    # law of total variance: E[var] + Var[mean] (population variance over equally weighted samples)
    assert_allclose(mean, m64.mean(0), dtype=dtype, scale=5)
    assert_allclose(var, v64.mean(0) + m64.var(0), dtype=dtype, scale=20)


def test_mixture_moments_precise_when_mean_dominates():
    # float32, |μ| ≈ 100 ≫ σ ≈ 0.03: E[σ² + μ²] - μ̄² would lose every digit of the variance
    rng = np.random.default_rng(4)
    means = 100.0 + 1e-2 * rng.normal(size=(5, 7))
    variances = rng.uniform(5e-4, 2e-3, (5, 7))
    m32, v32 = np.asarray(means, np.float32), np.asarray(variances, np.float32)
    _, var = mixture_moments(jnp.asarray(m32), jnp.asarray(v32))
    m64, v64 = m32.astype(float), v32.astype(float)
    np.testing.assert_allclose(var, v64.mean(0) + m64.var(0), rtol=1e-4)
    # one sample: the variance itself, bit for bit
    _, one = mixture_moments(jnp.asarray(m32[:1]), jnp.asarray(v32[:1]))
    np.testing.assert_array_equal(np.asarray(one), v32[0])


def _build(p):
    return GP(
        kernel=Matern52(lengthscale=p["ls"], variance=p["var"]), noise=p["noise"], mean=p["mean"]
    )


_mixture = eqx.filter_jit(
    lambda samples, obs, Xs, chunk, noise, batch=None: predict_mixture(
        _build, samples, obs, Xs, chunk_size=chunk, include_noise=noise, sample_batch=batch
    )
)


def test_predict_mixture_matches_loop(data, dtype):
    X, y, Xs = data
    obs = Observations.from_arrays(X[:N], y[:N], capacity=CAP)
    rng = np.random.default_rng(5)
    S = 6
    samples = {
        "ls": jnp.asarray(rng.uniform(0.2, 0.6, S), dtype),
        "var": jnp.asarray(rng.uniform(0.5, 2.0, S), dtype),
        "noise": jnp.asarray(rng.uniform(0.01, 0.1, S), dtype),
        "mean": jnp.asarray(rng.normal(size=S), dtype),
    }
    Xs_j = jnp.asarray(Xs, dtype)
    mus, vs = [], []
    for s in range(S):  # the manual loop: one GP per hyperparameter sample
        gp = _build({k: v[s] for k, v in samples.items()})
        mu, var = _predict(gp, obs, Xs_j, include_noise=True)
        mus.append(np.asarray(mu, np.float64))
        vs.append(np.asarray(var, np.float64))
    mus, vs = np.array(mus), np.array(vs)
    ref_mean, ref_var = mus.mean(0), (vs + mus**2).mean(0) - mus.mean(0) ** 2
    # one sample at a time (CPU default), in batches with a remainder (4 into 6), all at once
    for chunk, batch in ((None, None), (8, 1), (8, 4), (None, S)):
        mean, var = _mixture(samples, obs, Xs_j, chunk, True, batch)
        assert mean.shape == (M,)
        np.testing.assert_allclose(mean, ref_mean, **tols(dtype, 20))
        np.testing.assert_allclose(var, ref_var, **tols(dtype, 50))
    with pytest.raises(ValueError, match="sample_batch must be at least 1, got 0"):
        _mixture(samples, obs, Xs_j, None, True, 0)


def test_nan_points_and_negative_noise_are_refused():
    """A NaN test point never looks like a zero distance (Matérn-1/2 and 3/2 took NaN for 0 and
    predicted a confident value); a negative or NaN noise variance is refused at once."""
    from jaxscope import kernels as K

    nan, x = np.array([[np.nan]]), np.array([[0.1]])
    for k in (K.Matern12, K.Matern32, K.Matern52, K.RBF):
        assert np.isnan(np.asarray(k(lengthscale=0.3)(nan, x))).all(), k
    obs = Observations.from_arrays(np.linspace(0, 1, 5)[:, None], np.sin(np.arange(5.0)))
    post = GP(K.Matern32(lengthscale=0.3), noise=0.01).condition(obs)
    with pytest.raises(ValueError, match=r"Xnew\[1, 0\] is nan"):
        post.predict(np.array([[0.2], [np.nan]]))
    for bad in (-1e-3, np.nan):
        with pytest.raises(ValueError, match="noise variance must be finite and >= 0"):
            GP(K.RBF(lengthscale=0.3), noise=bad)
