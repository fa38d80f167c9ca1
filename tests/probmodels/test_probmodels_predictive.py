"""Prior / posterior predictive draws, pointwise log-likelihoods, the numpyro model and
composition: shapes and statistics against independent computations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer.util import log_density
from scipy.special import expit

from jaxscope import probmodels as pm

X = jnp.linspace(0.0, 1.0, 9)


@pytest.fixture(scope="module")
def model():
    return pm.smeared()


def test_prior_predictive_matches_mean_of_f_over_prior_samples(model):
    key = jax.random.key(0)
    f = model.prior_predictive(key, X, 4000)
    assert f.shape == (4000, 9)
    # independent: draw each prior by hand with the same keys and evaluate the NumPy formula
    kp, _ = jax.random.split(key)
    keys = jax.random.split(kp, 4)
    s = {
        k: np.asarray(model.priors[k].sample(kk, (4000,)))
        for k, kk in zip(model.names, keys, strict=True)
    }
    z = (s["xc"][:, None] - np.asarray(X)[None]) / s["w"][:, None]
    ref = s["C"][:, None] + s["S0"][:, None] * expit(z)
    np.testing.assert_allclose(f, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(f.mean(0), ref.mean(0), rtol=1e-5, atol=1e-5)
    # and the statistics against the prior's own moments: E f(1) = E C + E S0 · E σ(...) ≈ 0
    np.testing.assert_allclose(f.mean(0)[0], np.exp(0.125), atol=0.1)  # E S0 at x = 0 (σ ≈ 1)
    assert abs(float(f.mean(0)[-1])) < 0.1  # E C at x = 1 (σ ≈ 0)


def test_prior_predictive_noise_adds_the_right_variance(model):
    key = jax.random.key(1)
    f = model.prior_predictive(key, X, 4000)
    fy = model.prior_predictive(key, X, 4000, noise_sd=0.5)
    resid = np.asarray(fy - f)
    np.testing.assert_allclose(resid.std(), 0.5, rtol=0.03)
    assert abs(resid.mean()) < 0.02


def test_posterior_predictive_shapes_and_per_sample_noise(model):
    samples = {"C": jnp.array([0.0, 1.0]), "S0": jnp.array([1.0, 2.0]),
               "xc": jnp.array([0.5, 0.5]), "w": jnp.array([0.1, 0.1]),
               "noise": jnp.array([0.0, 0.0])}  # fmt: skip
    f = model.posterior_predictive(jax.random.key(0), samples, X)
    assert f.shape == (2, 9)
    np.testing.assert_allclose(f[1], 1.0 + 2.0 * jax.nn.sigmoid((0.5 - X) / 0.1), rtol=1e-6)
    # one noise sd per sample: the first row stays exact, the second does not
    fy = model.posterior_predictive(jax.random.key(0), samples, X, jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(fy[0], f[0], rtol=1e-6)
    assert float(jnp.max(jnp.abs(fy[1] - f[1]))) > 0.1
    with pytest.raises(ValueError, match="lack parameter"):
        model.posterior_predictive(jax.random.key(0), {"C": samples["C"]}, X)


def test_pointwise_log_likelihood_is_the_gaussian_log_density(model):
    p = {"C": 0.1, "S0": 1.2, "xc": 0.4, "w": 0.05}
    y = jnp.linspace(-1.0, 2.0, 9)
    ll = model.pointwise_log_likelihood(p, X, y, 0.3)
    f = np.asarray(model(X, p))
    ref = -0.5 * np.log(2 * np.pi * 0.09) - (np.asarray(y) - f) ** 2 / (2 * 0.09)
    assert ll.shape == (9,)
    np.testing.assert_allclose(ll, ref, rtol=1e-5)


def test_as_numpyro_sites_and_joint_log_density(model):
    y = jnp.linspace(0.0, 1.0, 9)
    nm = model.as_numpyro(X, y, noise_prior=dist.LogNormal(-2.0, 1.0))
    p = {"C": 0.1, "S0": 1.2, "xc": 0.4, "w": 0.05, "noise": 0.2}
    tr = numpyro.handlers.trace(numpyro.handlers.substitute(nm, p)).get_trace()
    assert list(tr) == [*model.names, "noise", "y"]
    assert tr["y"]["is_observed"]
    ld, _ = log_density(nm, (), {}, p)
    ref = (
        model.log_prior(p)
        + dist.LogNormal(-2.0, 1.0).log_prob(0.2)
        + jnp.sum(model.pointwise_log_likelihood(p, X, y, 0.2))
    )
    np.testing.assert_allclose(ld, ref, rtol=1e-5)
    # without y, "y" is sampled: a prior predictive draw of shape (n,)
    tr = numpyro.handlers.trace(numpyro.handlers.seed(model.as_numpyro(X), 0)).get_trace()
    assert tr["y"]["value"].shape == (9,) and not tr["y"]["is_observed"]


def test_as_numpyro_refuses_reserved_names():
    bad = pm.ProbModel(lambda x, p: p["noise"] * x[0], {"noise": dist.Normal(0.0, 1.0)})
    with pytest.raises(ValueError, match="clash"):
        bad.as_numpyro(X)


def test_sum_of_names_values_and_errors():
    a, b = pm.gaussian_peaks(1), pm.power_law(offset=False)
    m = pm.sum_of(a, b, prefixes=("peak", "bg"))
    assert m.names == ("bg_a", "bg_b", "peak_A", "peak_c", "peak_sigma", "peak_x0")
    pa = {"A": jnp.array([1.0]), "c": 0.2, "sigma": jnp.array([0.1]), "x0": jnp.array([0.5])}
    pb = {"a": 2.0, "b": 1.5}
    p = {**{f"peak_{k}": v for k, v in pa.items()}, **{f"bg_{k}": v for k, v in pb.items()}}
    np.testing.assert_allclose(m(X, p), a(X, pa) + b(X, pb), rtol=1e-6)
    # two copies of the same model: default prefixes m0_, m1_
    assert pm.sum_of(pm.smeared(), pm.smeared()).names[:4] == ("m0_C", "m0_S0", "m0_w", "m0_xc")
    with pytest.raises(ValueError, match="different input dims"):
        pm.sum_of(pm.smeared(), pm.ising_tanh())
    with pytest.raises(ValueError, match="distinct"):
        pm.sum_of(a, b, prefixes=("p", "p"))
    with pytest.raises(ValueError, match="at least one"):
        pm.sum_of()


def test_piecewise_names_and_switch():
    left, right = pm.power_law(offset=False), pm.linear_branches()
    m = pm.piecewise(left, right, dist.Uniform(0.2, 0.6))
    assert m.names == ("left_a", "left_b", "right_s1", "right_s2", "right_t", "right_yt", "t")
    pl, pr = {"a": 2.0, "b": 1.5}, {"s1": 0.5, "s2": -1.0, "t": 0.7, "yt": 1.0}
    p = {**{f"left_{k}": v for k, v in pl.items()}, **{f"right_{k}": v for k, v in pr.items()}}
    p["t"] = 0.4
    want = jnp.where(X < 0.4, left(X, pl), right(X, pr))
    np.testing.assert_allclose(m(X, p), want, rtol=1e-6)
    g = jax.grad(lambda q: jnp.sum(m(X, q)))(p)
    assert all(bool(jnp.isfinite(v)) for v in g.values())
    with pytest.raises(ValueError, match="column"):
        pm.piecewise(left, right, dist.Uniform(0.2, 0.6), column=1)


def test_model_is_a_pytree_usable_under_jit(model):
    p = {"C": 0.1, "S0": 1.2, "xc": 0.4, "w": 0.05}
    f = jax.jit(lambda m, p: m(X, p))(model, p)
    np.testing.assert_allclose(f, model(X, p), rtol=1e-6)
    np.testing.assert_allclose(jax.jit(lambda m, p: m.log_prior(p))(model, p), model.log_prior(p))
