"""Acquisition rules against independent references (SciPy closed forms, high-precision logEI,
manual mixture averages, brute-force one-step lookahead)."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from conftest import assert_allclose, count_compilations, tols
from jaxscope.kernels import RBF
from scipy import integrate, special, stats

from jaxscope import GP, GPModel, Observations, predict_mixture
from jaxscope.decide import acquisition as A

# --- references -------------------------------------------------------------------------------


def ref_ei(mean, sd, best, xi=0.0):
    z = (mean - best - xi) / sd
    return (mean - best - xi) * stats.norm.cdf(z) + sd * stats.norm.pdf(z)


def ref_log_h(z: float) -> float:
    """log(φ(z) + zΦ(z)) in high precision: mpmath if present, else an independent quadrature.

    The quadrature uses h(z) = ∫_{-∞}^{z} Φ(t) dt = Φ(z) ∫_0^∞ Φ(z-u)/Φ(z) du with SciPy's
    log_ndtr (no erfcx, no continued fraction: independent of the implementation).
    """
    try:
        import mpmath as mp
    except ImportError:  # pragma: no cover - depends on the environment
        lz = special.log_ndtr(z)
        f = lambda u: math.exp(special.log_ndtr(z - u) - lz)
        val, _ = integrate.quad(f, 0.0, np.inf, epsabs=0.0, epsrel=1e-13, limit=200)
        return float(lz + math.log(val))
    with mp.workdps(60):
        zz = mp.mpf(z)
        phi = mp.exp(-zz * zz / 2) / mp.sqrt(2 * mp.pi)
        return float(mp.log(phi + zz * mp.ncdf(zz)))


def _posterior(dtype, n=5, cap=8, seed=0, lengthscale=0.25, noise=1e-2):
    rs = np.random.RandomState(seed)
    X = rs.rand(n, 1)
    y = np.sin(6 * X[:, 0]) + 0.1 * rs.randn(n)
    obs = Observations.from_arrays(X, y, capacity=cap, dtype=dtype)
    gp = GP(RBF(lengthscale=jnp.asarray(lengthscale, dtype)), noise=jnp.asarray(noise, dtype))
    return gp, obs, gp.condition(obs)


# --- closed forms ------------------------------------------------------------------------------


@pytest.mark.parametrize("maximize", [True, False])
def test_ei_pi_match_scipy(dtype, maximize):
    rs = np.random.RandomState(1)
    mean = rs.uniform(-2, 2, 50)
    sd = rs.uniform(0.2, 2.0, 50)
    best, xi = 0.3, 0.05
    pred = A.from_moments(jnp.asarray(mean, dtype), jnp.asarray(sd**2, dtype))
    m64 = np.asarray(pred.mean[0], np.float64)
    s64 = np.sqrt(np.asarray(pred.var[0], np.float64))
    sign = 1.0 if maximize else -1.0
    want_ei = ref_ei(sign * m64, s64, sign * best, xi)
    want_pi = stats.norm.cdf((sign * m64 - sign * best - xi) / s64)
    ei = A.get("ei")(pred, best=best, xi=xi, maximize=maximize)
    pi = A.get("pi")(pred, best=best, xi=xi, maximize=maximize)
    assert ei.dtype == dtype and ei.shape == (50,)
    assert_allclose(ei, want_ei, scale=10)
    assert_allclose(pi, want_pi, scale=10)
    assert_allclose(
        A.get("logpi")(pred, best=best, xi=xi, maximize=maximize), np.log(want_pi), scale=10
    )
    assert_allclose(
        A.get("logei")(pred, best=best, xi=xi, maximize=maximize), np.log(want_ei), scale=10
    )


TAIL_Z = [
    -1e4,
    -1e3,
    -100.0,
    -40.0,
    -20.0,
    -10.0,
    -5.0,
    -4.0,
    -2.5,
    -1.0,
    -0.5,
    0.0,
    1.0,
    3.0,
    30.0,
]


def test_logei_tail_high_precision(dtype):
    z = np.array(TAIL_Z)
    sd = 0.5
    best = 1.0
    # mean chosen so that z is exact in the working precision: sd and best are powers of two
    pred = A.from_moments(jnp.asarray(best + sd * z, dtype), jnp.full(z.shape, sd**2, dtype))
    got = np.asarray(A.log_expected_improvement(pred, best=best), np.float64)
    want = np.array([ref_log_h(v) for v in z]) + math.log(sd)
    assert np.all(np.isfinite(got)), got
    rtol = 1e-6 if dtype == jnp.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    # EI itself never NaN (it may underflow to 0 deep in the tail)
    ei = np.asarray(A.expected_improvement(pred, best=best))
    assert np.all(np.isfinite(ei)) and np.all(ei >= 0)
    # gradients with respect to the mean are finite and match d/dz log h = Φ(z)/h(z)
    g = jax.grad(
        lambda m: jnp.sum(A.log_expected_improvement(A.from_moments(m, pred.var[0]), best=best))
    )(pred.mean[0])
    g = np.asarray(g, np.float64)
    assert np.all(np.isfinite(g))
    want_g = np.exp(special.log_ndtr(z) - np.array([ref_log_h(v) for v in z])) / sd
    # (the reference subtracts two ~z²/2 logs: good to ~1e-8 relative at z = -1e4)
    np.testing.assert_allclose(g, want_g, rtol=1e-4 if dtype == jnp.float32 else 1e-7)


def test_logei_float32_at_z_minus_40_no_nan():
    with jax.enable_x64(False):
        pred = A.from_moments(jnp.array([-40.0, -40.0]), jnp.array([1.0, 1.0]))
        v = A.get("logei")(pred, best=0.0)
        assert v.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(v), ref_log_h(-40.0), rtol=1e-6)
        # the textbook formula in float32 underflows to 0 here (log: -inf)
        assert np.float32(ref_ei(np.float32(-40.0), np.float32(1.0), 0.0)) == 0.0


def test_ucb_maxvar_weighted_mean_on_mixture_moments(dtype):
    rs = np.random.RandomState(2)
    mean = rs.randn(3, 20)
    var = rs.uniform(0.1, 1.0, (3, 20))
    pred = A.from_moments(jnp.asarray(mean, dtype), jnp.asarray(var, dtype))
    mu = mean.mean(0)
    v = (var + mean**2).mean(0) - mu**2
    assert_allclose(A.get("ucb")(pred, beta=2.5), mu + np.sqrt(2.5) * np.sqrt(v), scale=10)
    assert_allclose(
        A.get("ucb")(pred, beta=2.5, maximize=False), -mu + np.sqrt(2.5) * np.sqrt(v), scale=10
    )
    assert_allclose(A.get("maxvar")(pred), v, scale=10)
    assert_allclose(A.get("weighted")(pred, a=0.3, b=2.0), 0.3 * mu + 2.0 * np.sqrt(v), scale=10)
    assert_allclose(A.get("mean")(pred, maximize=False), -mu, scale=10)


def test_mixture_marginalisation_is_the_average(x64):
    rs = np.random.RandomState(3)
    s, m = 4, 30
    mean = rs.randn(s, m)
    sd = rs.uniform(0.1, 1.5, (s, m))
    pred = A.from_moments(mean, sd**2)
    best = 0.7
    per = np.stack([ref_ei(mean[i], sd[i], best) for i in range(s)])
    assert_allclose(A.get("ei")(pred, best=best), per.mean(0), scale=10)
    assert_allclose(A.get("logei")(pred, best=best), np.log(per.mean(0)), scale=10)
    pis = np.stack([stats.norm.cdf((mean[i] - best) / sd[i]) for i in range(s)])
    assert_allclose(A.get("pi")(pred, best=best), pis.mean(0), scale=10)
    assert_allclose(A.get("logpi")(pred, best=best), np.log(pis.mean(0)), scale=10)
    # one incumbent per sample
    bests = np.array([0.1, 0.2, 0.3, 0.4])
    per_b = np.stack([ref_ei(mean[i], sd[i], bests[i]) for i in range(s)])
    assert_allclose(A.get("ei")(pred, best=bests), per_b.mean(0), scale=10)


def test_predictive_from_samples_matches_predict_mixture(x64):
    gp, obs, _ = _posterior(jnp.float64)
    model = GPModel(
        kernel=lambda p: RBF(lengthscale=p["lengthscale"], variance=p["variance"]),
        priors={k: dist.LogNormal(0.0, 1.0) for k in ("lengthscale", "variance", "noise")},
    )
    samples = {
        "lengthscale": jnp.array([0.1, 0.2, 0.4]),
        "variance": jnp.array([0.5, 1.0, 2.0]),
        "noise": jnp.array([1e-2, 2e-2, 5e-3]),
    }
    Xc = jnp.linspace(0, 1, 9)[:, None]
    pred = A.from_samples(model, samples, obs, Xc)
    assert pred.mean.shape == (3, 9)
    mu, var = jax.jit(lambda s: predict_mixture(model.build, s, obs, Xc))(samples)
    m2, v2 = pred.moments()
    assert_allclose(m2, mu, scale=10)
    assert_allclose(v2, var, scale=10)
    # per-sample row equals the single posterior of that sample
    one = {k: v[1] for k, v in samples.items()}
    single = A.from_model(model, one, obs, Xc)
    assert_allclose(pred.mean[1], single.mean[0], scale=10)
    # the cache gives the same predictive as the posterior
    post = model.build(one).condition(obs)
    assert_allclose(A.from_cache(post.cache(Xc)).var, single.var, scale=10)


# --- Thompson ----------------------------------------------------------------------------------


def test_thompson_draw_statistics(x64):
    _, obs, post = _posterior(jnp.float64)
    Xc = jnp.linspace(0, 1, 6)[:, None]
    n = 4000
    pred = A.from_posterior(post, Xc, key=jax.random.key(0), num_draws=n)
    mean, cov = post.predict(Xc, full_cov=True)
    d = np.asarray(pred.draws)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(d.mean(0) - mean) < 4.5 * sd / np.sqrt(n))
    # covariance: standard error of a sample covariance ≈ sqrt((Σii Σjj + Σij²)/n)
    C = np.asarray(cov)
    se = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / n)
    assert np.all(np.abs(np.cov(d.T) - C) < 4.5 * se + 1e-12)
    # the rule is the draw itself (negated when minimising)
    assert_allclose(A.get("thompson")(pred), d[0])
    assert_allclose(A.get("thompson")(pred, maximize=False), -d[0])


@pytest.mark.parametrize("num_draws", [3000, 1])
def test_thompson_mixture_draws(x64, num_draws):
    _, obs, _ = _posterior(jnp.float64)
    gps = [GP(RBF(lengthscale=ls), noise=1e-2) for ls in (0.08, 0.5)]
    posts = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[g.condition(obs) for g in gps])
    Xc = jnp.linspace(0, 1, 5)[:, None]
    pred = A.from_posterior(posts, Xc, key=jax.random.key(1), num_draws=num_draws)
    assert pred.mean.shape == (2, 5) and pred.draws.shape == (num_draws, 5)
    if num_draws > 1:
        mu, var = pred.moments()
        d = np.asarray(pred.draws)
        assert np.all(np.abs(d.mean(0) - mu) < 4.5 * np.sqrt(var / num_draws))
        # variance of a two-component mixture: sample variance within ~5 standard errors
        assert np.all(np.abs(d.var(0) / var - 1) < 5 * np.sqrt(3.0 / num_draws))


# --- knowledge gradient -------------------------------------------------------------------------


def test_knowledge_gradient_vs_brute_force_lookahead(x64):
    gp, obs, post = _posterior(jnp.float64, n=4, cap=6, noise=2e-2)
    Xc = jnp.linspace(0, 1, 7)[:, None]
    cache = post.cache(Xc)
    pred = A.from_cache(cache)
    kg = np.asarray(A.get("kg")(pred, cache=cache, method="exact"))
    kg_gh = np.asarray(A.get("kg")(pred, cache=cache, method="gauss-hermite", num_fantasies=64))
    # brute force: refit with the fantasy y at a fine grid of z (trapezoid against N(0,1))
    z = np.linspace(-9, 9, 3001)
    wz = stats.norm.pdf(z) * (z[1] - z[0])
    base = float(jnp.max(cache.mean))
    jit = gp.jitter_for(jnp.float64)

    @jax.jit
    def lookahead(j):
        sd_y = jnp.sqrt(cache.var[j] + gp.noise + jit)
        ys = cache.mean[j] + sd_y * jnp.asarray(z)
        refit = lambda y: jnp.max(gp.condition(obs.add(Xc[j], y)).predict(Xc)[0])
        return jax.vmap(refit)(ys)

    want = np.array([np.dot(wz, np.asarray(lookahead(j))) - base for j in range(7)])
    assert want.max() > 1e-2  # a non-trivial problem
    np.testing.assert_allclose(kg, want, rtol=1e-5, atol=1e-9)
    # quadrature over the kinked max converges slowly: a few per cent at 64 nodes
    np.testing.assert_allclose(kg_gh, want, rtol=5e-2, atol=1e-6)
    # minimisation: the same as maximising -f
    neg = eqx.tree_at(lambda c: c.mean, cache, -cache.mean)
    kg_min = A.get("kg")(pred, cache=cache, maximize=False)
    kg_neg = A.get("kg")(pred, cache=neg)
    assert_allclose(kg_min, kg_neg, scale=10)


def test_expected_max_of_lines_vs_quadrature(x64):
    from jaxscope.decide.lookahead import expected_max_of_lines

    rs = np.random.RandomState(5)
    a = rs.randn(9)
    b = np.concatenate([rs.randn(6), [0.3, 0.3, 0.0]])  # includes equal slopes
    a[7] = a[6]  # and an exact duplicate line
    z = np.linspace(-12, 12, 200001)
    want = integrate.trapezoid(np.max(a[:, None] + b[:, None] * z, axis=0) * stats.norm.pdf(z), z)
    got = float(expected_max_of_lines(jnp.asarray(a), jnp.asarray(b)))
    np.testing.assert_allclose(got, want, rtol=1e-8)


def test_knowledge_gradient_averages_samples(x64):
    _, obs, _ = _posterior(jnp.float64)
    Xc = jnp.linspace(0, 1, 6)[:, None]
    caches = [GP(RBF(lengthscale=ls), noise=1e-2).condition(obs).cache(Xc) for ls in (0.1, 0.3)]
    batched = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *caches)
    kg = A.knowledge_gradient(A.from_cache(batched), cache=batched)
    each = [A.knowledge_gradient(A.from_cache(c), cache=c) for c in caches]
    assert_allclose(kg, (each[0] + each[1]) / 2, scale=10)


# --- registry and errors -------------------------------------------------------------------------


def test_registry_and_errors():
    assert A.get() is A.get(A.DEFAULT) is A.expected_improvement  # the campaign default
    assert A.get("log_EI") is A.log_expected_improvement
    assert A.get("UCB") is A.upper_confidence_bound
    user = lambda pred, *, best=None, key=None, **kw: pred.mean[0] * 2
    assert A.get(user) is user
    with pytest.raises(ValueError, match=r"unknown acquisition 'foo'.*logei.*ucb"):
        A.get("foo")
    pred = A.from_moments(jnp.zeros(3), jnp.ones(3))
    with pytest.raises(ValueError, match="needs `best`"):
        A.get("ei")(pred)
    with pytest.raises(ValueError, match="thompson needs joint draws"):
        A.get("thompson")(pred)
    with pytest.raises(ValueError, match="needs cache"):
        A.get("kg")(pred)
    with pytest.raises(ValueError, match="same shape"):
        A.from_moments(jnp.zeros(3), jnp.ones(4))
    assert set(A.names()) >= {
        "ei",
        "logei",
        "pi",
        "logpi",
        "ucb",
        "maxvar",
        "thompson",
        "kg",
        "weighted",
    }


def test_rules_jit_and_vmap_over_samples(dtype):
    """Every analytic rule runs under jit and vmaps over a leading batch (e.g. campaigns)."""
    rs = np.random.RandomState(4)
    mean = jnp.asarray(rs.randn(5, 2, 8), dtype)
    var = jnp.asarray(rs.uniform(0.1, 1, (5, 2, 8)), dtype)
    for name in ["ei", "logei", "pi", "logpi", "ucb", "maxvar", "weighted", "mean"]:
        rule = A.get(name)
        out = jax.jit(jax.vmap(lambda m, v, rule=rule: rule(A.Predictive(m, v), best=0.1)))(
            mean, var
        )
        ref = np.stack([rule(A.Predictive(mean[i], var[i]), best=0.1) for i in range(5)])
        np.testing.assert_allclose(np.asarray(out), ref, **tols(dtype, 10))


def test_new_values_do_not_recompile():
    """A rule called again with new data and a new incumbent (same shapes) compiles nothing."""
    rs = np.random.RandomState(6)
    pred = A.from_moments(jnp.asarray(rs.randn(2, 16)), jnp.asarray(rs.rand(2, 16) + 0.1))
    pred2 = A.from_moments(jnp.asarray(rs.randn(2, 16)), jnp.asarray(rs.rand(2, 16) + 0.1))
    A.log_expected_improvement(pred, best=0.5).block_until_ready()
    with count_compilations() as log:
        A.log_expected_improvement(pred2, best=1.5).block_until_ready()
        A.log_expected_improvement(pred, best=-3.0, xi=0.1).block_until_ready()
    assert len(log) == 0


def test_incumbent():
    obs = Observations.from_arrays(
        np.array([[0.0], [1.0], [2.0]]), np.array([1.0, 3.0, -2.0]), capacity=5
    )
    assert float(A.incumbent(obs)) == 3.0
    assert float(A.incumbent(obs, maximize=False)) == -2.0
