"""Structured models (physics mean in physical units ± GP residual) and the LOO/WAIC criteria.

Each check compares against an independent answer: exact leave-one-out of a conjugate model,
leave-one-out by refitting, the generalised Pareto shape of simulated data, a recovered parameter.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from jaxscope.probmodels import ProbModel

from jaxscope import kernels as K
from jaxscope.decide import NUTSGP
from jaxscope.gp import (
    GP,
    Observations,
    StructuredFamily,
    gpd_fit,
    loo_log_densities,
    psis_loo,
    split_rhat,
    waic,
)


def _conjugate(seed=0, n=25, S=4000):
    """Bayesian linear regression with known noise: exact posterior draws and exact LOO."""
    rs = np.random.RandomState(seed)
    X = np.c_[np.ones(n), rs.uniform(-1, 1, n)]
    sigma, tau = 0.3, 1.0
    y = X @ np.array([0.5, -1.0]) + sigma * rs.randn(n)
    prec = X.T @ X / sigma**2 + np.eye(2) / tau**2
    cov = np.linalg.inv(prec)
    mu = cov @ X.T @ y / sigma**2
    beta = rs.multivariate_normal(mu, cov, S)
    f = beta @ X.T
    ll = -0.5 * np.log(2 * np.pi * sigma**2) - 0.5 * (y - f) ** 2 / sigma**2
    exact = []
    for i in range(n):
        keep = np.arange(n) != i
        p_i = X[keep].T @ X[keep] / sigma**2 + np.eye(2) / tau**2
        c_i = np.linalg.inv(p_i)
        m_i = c_i @ X[keep].T @ y[keep] / sigma**2
        v = sigma**2 + X[i] @ c_i @ X[i]
        exact.append(-0.5 * np.log(2 * np.pi * v) - 0.5 * (y[i] - X[i] @ m_i) ** 2 / v)
    return ll, np.array(exact)


def test_psis_loo_matches_exact_loo_of_a_conjugate_model():
    ll, exact = _conjugate()
    with jax.enable_x64(True):
        loo = psis_loo(jnp.asarray(ll))
        w = waic(jnp.asarray(ll))
    np.testing.assert_allclose(np.asarray(loo.pointwise), exact, atol=0.03)
    assert abs(float(loo.elpd) - exact.sum()) < 0.15
    assert abs(float(w.elpd) - exact.sum()) < 0.3
    assert float(loo.p_loo) == pytest.approx(2.0, abs=0.5)  # two parameters
    assert np.all(np.asarray(loo.pareto_k) < 0.5)
    # the mask drops points from every sum
    mask = jnp.arange(ll.shape[1]) < 10
    with jax.enable_x64(True):
        assert float(psis_loo(jnp.asarray(ll), mask).elpd) == pytest.approx(
            exact[:10].sum(), abs=0.1
        )


@pytest.mark.parametrize("k_true", [0.2, 0.7])
def test_gpd_fit_recovers_the_shape(k_true):
    rs = np.random.RandomState(1)
    u = rs.uniform(size=2000)
    x = np.sort(0.5 * ((1 - u) ** (-k_true) - 1) / k_true)
    with jax.enable_x64(True):
        k, sigma = gpd_fit(jnp.asarray(x))
    assert float(k) == pytest.approx(k_true, abs=0.08)
    assert float(sigma) == pytest.approx(0.5, rel=0.15)


def test_split_rhat_flags_a_chain_elsewhere():
    rs = np.random.RandomState(2)
    same = rs.randn(4, 500)
    assert float(split_rhat(jnp.asarray(same))) == pytest.approx(1.0, abs=0.01)
    moved = same.copy()
    moved[0] += 2.0
    assert float(split_rhat(jnp.asarray(moved))) > 1.1


def test_loo_log_densities_equal_refitting_without_each_point():
    rs = np.random.RandomState(3)
    n = 12
    X = rs.uniform(0, 1, (n, 1))
    y = np.sin(6 * X[:, 0]) + 0.1 * rs.randn(n)
    with jax.enable_x64(True):
        gp = GP(kernel=K.Matern52(lengthscale=0.3, variance=1.0), noise=0.02, mean=0.1)
        obs = Observations.empty(n + 3, 1).extend(X, y)  # padding rows too
        ll = np.asarray(loo_log_densities(gp.condition(obs)))
        for i in range(n):
            keep = np.arange(n) != i
            post = gp.condition(Observations.from_arrays(X[keep], y[keep]))
            m, v = post.predict(X[i : i + 1], include_noise=True)
            ref = -0.5 * np.log(2 * np.pi * v[0]) - 0.5 * (y[i] - m[0]) ** 2 / v[0]
            assert ll[i] == pytest.approx(float(ref), abs=1e-6)  # the jitter (1e-8) differs
        assert np.all(ll[n:] == 0.0)


def _line(lo, hi):
    return ProbModel(
        lambda x, p: p["a"] + p["b"] * x[0],
        {"a": dist.Uniform(lo, hi), "b": dist.Normal(0.0, 5.0)},
    )


@pytest.mark.parametrize("kernel", [None, "matern52"])
def test_priors_act_in_physical_units(kernel):
    """a ~ U(5, 15) means 5–15 in the data's units, although the surrogate standardises."""
    rs = np.random.RandomState(4)
    X = np.linspace(0, 1, 20)[:, None]
    y = 10.0 - 3.0 * X[:, 0] + 0.05 * rs.randn(20)
    fam = StructuredFamily(_line(5.0, 15.0), kernel=kernel)
    sur = NUTSGP(fam, num_warmup=200, num_samples=200)
    obs = Observations.from_arrays(X, y)
    state = sur.update(sur.init(jax.random.key(0), obs), obs, jax.random.key(1))
    a, b = np.asarray(state.samples["a"]), np.asarray(state.samples["b"])
    assert np.median(a) == pytest.approx(10.0, abs=0.1)
    assert np.median(b) == pytest.approx(-3.0, abs=0.2)
    pred = sur.predictive(state, jnp.asarray([[0.5]]))
    assert float(pred.mean.mean()) == pytest.approx(8.5, abs=0.05)  # original units


def test_structured_family_refuses_bad_names():
    clash = ProbModel(lambda x, p: p["noise"] * x[0], {"noise": dist.Normal(0.0, 1.0)})
    with pytest.raises(ValueError, match="clash"):
        StructuredFamily(clash)
    with pytest.raises(ValueError, match="unknown kernel"):
        StructuredFamily(_line(0.0, 1.0), kernel="nope")
    with pytest.raises(ValueError, match="residual priors"):
        StructuredFamily(_line(0.0, 1.0), kernel=None, residual={"variance": dist.HalfNormal(1.0)})
