"""Hyperparameter inference: MAP recovers known hyperparameters at a stationary point, warm starts
help, NUTS matches a posterior computed by quadrature, diagnostics are right, nothing recompiles."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.linalg
import scipy.stats
from conftest import count_compilations, tols
from jaxscope.kernels import RBF

from jaxscope import (
    GPModel,
    NUTSResult,
    Observations,
    fit_map,
    fit_nuts,
    nuts_summary,
    predict_nuts,
)
from jaxscope.gp.inference import _neg_log_post

# its module fixtures are built once: one worker runs the file (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_inference")

# --- MAP ----------------------------------------------------------------------------------------

N_MAP, LS_TRUE, VAR_TRUE, NOISE_TRUE = 200, 0.15, 1.0, 0.01


def _rbf(A, B, ls, var):
    return var * np.exp(-0.5 * ((A[:, None] - B[None, :]) / ls) ** 2)


def _draw_gp(seed, n, ls=LS_TRUE, var=VAR_TRUE, noise=NOISE_TRUE):
    """(X, y) with y = f(X) + ε, f ~ GP(0, RBF(ls, var)), ε ~ N(0, noise), drawn with NumPy."""
    rng = np.random.default_rng(seed)
    X = np.sort(rng.uniform(0.0, 1.0, n))
    Kf = _rbf(X, X, ls, var) + 1e-9 * np.eye(n)
    f = np.linalg.cholesky(Kf) @ rng.normal(size=n)
    return X, f + np.sqrt(noise) * rng.normal(size=n)


@pytest.fixture(scope="module")
def map_data():
    X, y = _draw_gp(0, N_MAP)
    with jax.enable_x64(False):  # the same model whichever test asks first
        return X, y, GPModel.default(X, y, "rbf")


def _objective_fd(model, u, obs, h=1e-4):
    """Central finite differences of the MAP objective along each unconstrained coordinate."""
    out = {}
    for k in u:  # (all scalar parameters here)
        up = dict(u, **{k: u[k] + h})
        dn = dict(u, **{k: u[k] - h})
        out[k] = float((_neg_log_post(up, model, obs) - _neg_log_post(dn, model, obs)) / (2 * h))
    return out


def test_map_lbfgs_recovers_hyperparameters_float64(map_data, x64):
    X, y, model = map_data
    obs = Observations.from_arrays(X, y)
    params, info = fit_map(model, obs, optimizer="lbfgs", num_steps=300)
    assert params["lengthscale"].dtype == jnp.float64
    # known truth: ℓ = 0.15, σ² = 0.01 (200 points pin them to ~10%)
    assert abs(np.log(float(params["lengthscale"]) / LS_TRUE)) < 0.2, params
    assert abs(np.log(float(params["noise"]) / NOISE_TRUE)) < 0.3, params
    # a stationary point: the optimiser stopped on the gradient test, well before max steps,
    # and independent central differences of the objective vanish too
    assert int(info.num_steps) < 300
    assert float(info.grad_norm) < 1e-4
    u = model.unconstrain(params)
    fd = _objective_fd(model, u, obs)
    assert max(abs(v) for v in fd.values()) < 1e-3, fd
    start = _objective_fd(model, model.unconstrain(model.init_params(jnp.float64)), obs)
    assert max(abs(v) for v in start.values()) > 1.0  # (the start was not stationary)
    # and a minimum: moving any coordinate by ±0.05 raises the loss
    base = float(_neg_log_post(u, model, obs))
    assert np.isclose(base, float(info.loss), rtol=1e-12)
    for k in u:
        for s in (-0.05, 0.05):
            assert float(_neg_log_post(dict(u, **{k: u[k] + s}), model, obs)) > base


def test_map_lbfgs_float32_stops_at_precision(map_data):
    X, y, model = map_data
    obs = Observations.from_arrays(X, y)
    with jax.enable_x64(True):
        p64, _ = fit_map(model, Observations.from_arrays(X, y), num_steps=300)
    params, info = fit_map(model, obs, optimizer="lbfgs", num_steps=300)
    assert params["lengthscale"].dtype == jnp.float32
    # float32 gradients carry rounding noise of ~1e-2 here: the relative-decrease test stops
    # the loop at float32 precision instead of running to max_steps
    assert int(info.num_steps) < 100
    # the well-identified parameters agree closely; all of them reach the float64 optimum's
    # objective value (evaluated in float64) to within float32 resolution of a loss of ~150
    for k in ("lengthscale", "noise"):
        np.testing.assert_allclose(params[k], p64[k], rtol=5e-3, err_msg=k)
    with jax.enable_x64(True):
        obs64 = Observations.from_arrays(X, y)
        f32 = float(_neg_log_post(model.unconstrain(_to64(params)), model, obs64))
        f64 = float(_neg_log_post(model.unconstrain(p64), model, obs64))
    assert f64 - 1e-6 < f32 < f64 + 1e-3, (f32, f64)


def _to64(params):
    return {k: jnp.asarray(np.asarray(v), jnp.float64) for k, v in params.items()}


def test_map_adam_recovers_hyperparameters(map_data, x64):
    X, y, model = map_data
    obs = Observations.from_arrays(X, y)
    params, info = fit_map(model, obs, optimizer="adam", num_steps=400, learning_rate=0.05)
    ref, _ = fit_map(model, obs, optimizer="lbfgs", num_steps=300)
    assert int(info.num_steps) == 400
    assert abs(np.log(float(params["lengthscale"]) / LS_TRUE)) < 0.2, params
    assert abs(np.log(float(params["noise"]) / NOISE_TRUE)) < 0.3, params
    # Adam reaches the same optimum (gradient small relative to the start)
    for k in ref:
        np.testing.assert_allclose(params[k], ref[k], rtol=1e-3, err_msg=k)
    assert float(info.grad_norm) < 1e-2


def test_map_warm_start_converges_faster(map_data, x64):
    X, y, model = map_data
    obs_early = Observations.from_arrays(X[::2][:90], y[::2][:90], capacity=N_MAP)
    obs_now = Observations.from_arrays(X, y, capacity=N_MAP)
    prev, _ = fit_map(model, obs_early)
    cold, info_cold = fit_map(model, obs_now)
    warm, info_warm = fit_map(model, obs_now, init=prev)
    assert int(info_warm.num_steps) < int(info_cold.num_steps), (info_warm, info_cold)
    for k in cold:
        np.testing.assert_allclose(warm[k], cold[k], rtol=1e-4, err_msg=k)


def test_map_does_not_recompile_on_new_data(x64):
    datasets = [_draw_gp(seed, n) for seed, n in ((1, 50), (2, 53), (3, 58))]
    model = GPModel.default(*datasets[0], "matern52")
    counts, counts_rebuilt = [], []
    for X, y in datasets:
        obs = Observations.from_arrays(X, y, capacity=64)
        with count_compilations() as log:
            jax.block_until_ready(fit_map(model, obs, num_steps=100))
        counts.append(len(log))
        # a model rebuilt from the new data (priors scaled to it) reuses the program too
        rebuilt = GPModel.default(X, y, "matern52")
        with count_compilations() as log:
            jax.block_until_ready(fit_map(rebuilt, obs, num_steps=150))
        counts_rebuilt.append(len(log))
    assert counts[0] >= 1  # (the listener sees compilations at all)
    assert counts[1:] == [0, 0], counts
    assert counts_rebuilt == [0, 0, 0], counts_rebuilt


def test_fit_map_rejects_unknown_optimizer(map_data):
    X, y, model = map_data
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        fit_map(model, Observations.from_arrays(X, y), optimizer="sgd")


# --- NUTS against a posterior computed by quadrature ------------------------------------------

N_NUTS, CAP_NUTS, NOISE_FIXED = 12, 16, 0.05
PRIOR_LOC, PRIOR_SCALE = np.log(0.3), 0.5
WARMUP, SAMPLES, CHAINS = 400, 600, 2


def _ls_model():
    """Only the lengthscale is free (variance 1, noise fixed): its posterior is one-dimensional."""
    return GPModel(
        kernel=lambda p: RBF(lengthscale=p["lengthscale"], variance=1.0),
        priors={"lengthscale": dist.LogNormal(PRIOR_LOC, PRIOR_SCALE)},
        fixed_noise=NOISE_FIXED,
    )


def _quadrature_posterior(X, y):
    """Mean and sd of p(ℓ | y) ∝ N(y | 0, K_ℓ + σ²I) LogNormal(ℓ) on a fine grid in log ℓ."""
    t = np.linspace(np.log(0.005), np.log(20.0), 2000)  # t = log ℓ
    logp = np.empty_like(t)
    for i, ls in enumerate(np.exp(t)):
        C = _rbf(X, X, ls, 1.0) + (NOISE_FIXED + 1e-8) * np.eye(len(X))  # 1e-8: the GP's jitter
        c, low = scipy.linalg.cho_factor(C, lower=True)
        a = scipy.linalg.cho_solve((c, low), y)
        loglik = -0.5 * y @ a - np.sum(np.log(np.diag(c))) - 0.5 * len(X) * np.log(2 * np.pi)
        logp[i] = loglik + scipy.stats.lognorm(PRIOR_SCALE, scale=np.exp(PRIOR_LOC)).logpdf(ls)
    w = np.exp(logp - logp.max()) * np.exp(t)  # density in t: p(ℓ) dℓ/dt
    w /= np.trapezoid(w, t)
    mean = np.trapezoid(np.exp(t) * w, t)
    sd = np.sqrt(np.trapezoid((np.exp(t) - mean) ** 2 * w, t))
    assert w[0] < 1e-8 * w.max() and w[-1] < 1e-8 * w.max()  # the grid covers the posterior
    return mean, sd


@pytest.fixture(scope="module")
def nuts_problem():
    rng = np.random.default_rng(11)
    X = rng.uniform(0, 1, N_NUTS)
    y = np.linalg.cholesky(_rbf(X, X, 0.25, 1.0) + 1e-9 * np.eye(N_NUTS)) @ rng.normal(size=N_NUTS)
    y = y + np.sqrt(NOISE_FIXED) * rng.normal(size=N_NUTS)
    model = _ls_model()
    with jax.enable_x64(True):
        obs = Observations.from_arrays(X, y, capacity=CAP_NUTS)
        result = fit_nuts(
            model, obs, jax.random.key(0), num_warmup=WARMUP, num_samples=SAMPLES, num_chains=CHAINS
        )
        jax.block_until_ready(result)
    return X, y, model, result


def test_nuts_matches_quadrature_posterior(nuts_problem):
    X, y, _, result = nuts_problem
    ls = np.asarray(result.samples["lengthscale"])
    assert ls.shape == (CHAINS, SAMPLES) and ls.dtype == np.float64
    mean, sd = _quadrature_posterior(X, y)
    summary = nuts_summary(result)
    ess = summary["lengthscale"]["ess"]
    # Monte Carlo standard error of the mean is sd/sqrt(ESS); allow 4 of them
    assert abs(ls.mean() - mean) < 4 * sd / np.sqrt(ess), (ls.mean(), mean, sd, ess)
    assert abs(ls.std() / sd - 1) < 0.15, (ls.std(), sd)
    # and the posterior moved away from the prior (the test is about the likelihood, too)
    prior_mean = np.exp(PRIOR_LOC + PRIOR_SCALE**2 / 2)
    assert abs(mean - prior_mean) > 2 * sd / np.sqrt(ess)


def _split_rhat(chains):
    """Split-R̂ (Gelman et al., BDA3 §11.4) in NumPy: chains (c, n) -> scalar."""
    c, n = chains.shape
    half = n // 2
    s = np.concatenate([chains[:, :half], chains[:, half : 2 * half]])
    m, ln = s.shape
    W = s.var(axis=1, ddof=1).mean()
    B = ln * s.mean(axis=1).var(ddof=1)
    return np.sqrt(((ln - 1) / ln * W + B / ln) / W)


def test_nuts_diagnostics(nuts_problem):
    _, _, _, result = nuts_problem
    summary = nuts_summary(result)
    ls = np.asarray(result.samples["lengthscale"])
    r_hat, ess = summary["lengthscale"]["r_hat"], summary["lengthscale"]["ess"]
    assert r_hat == pytest.approx(_split_rhat(ls), rel=1e-8)
    assert r_hat < 1.05
    assert 200 < ess < 4 * CHAINS * SAMPLES
    assert summary["lengthscale"]["mean"] == pytest.approx(ls.mean())
    assert summary["lengthscale"]["sd"] == pytest.approx(ls.std())
    assert summary["_sampler"]["divergences"] == 0
    assert 0.6 < summary["_sampler"]["mean_accept_prob"] < 0.99
    assert np.asarray(result.accept_prob).shape == (CHAINS, SAMPLES)
    # two chains stuck in different places: R̂ says so
    bad = NUTSResult(
        samples={"lengthscale": np.stack([ls[0], ls[1] + 5 * ls.std()])},
        accept_prob=result.accept_prob,
        diverging=result.diverging,
        num_steps=result.num_steps,
    )
    assert nuts_summary(bad)["lengthscale"]["r_hat"] > 1.5
    # vector parameters keep their shape
    vec = bad._replace(samples={"v": np.stack([ls, ls], axis=-1)})
    assert np.shape(nuts_summary(vec)["v"]["r_hat"]) == (2,)
    assert np.shape(nuts_summary(vec)["v"]["ess"]) == (2,)


def test_nuts_does_not_recompile_on_new_data(nuts_problem, x64):
    X, y, model, _ = nuts_problem
    rng = np.random.default_rng(5)
    counts = []
    for n in (13, 15):  # more data in the same capacity-16 buffer
        Xn = np.concatenate([X, rng.uniform(0, 1, n - N_NUTS)])
        yn = np.concatenate([y, rng.normal(size=n - N_NUTS)])
        obs = Observations.from_arrays(Xn, yn, capacity=CAP_NUTS)
        with count_compilations() as log:
            r = fit_nuts(
                model,
                obs,
                jax.random.key(n),
                num_warmup=WARMUP,
                num_samples=SAMPLES,
                num_chains=CHAINS,
            )
            jax.block_until_ready(r)
        counts.append(len(log))
    assert counts == [0, 0], counts


def test_first_fit_compiles_one_program(nuts_problem, x64):
    """Building the buffer, fitting and predicting compile one program each: no eager op
    (starting point, dtype conversion, reshaping the chains) compiles on its own. Uses the
    diagonal mass matrix, so it also checks that variant against the quadrature posterior."""
    X, y, model, _ = nuts_problem
    key = jax.random.key(3)
    with count_compilations() as log:
        obs = Observations.from_arrays(X, y, capacity=CAP_NUTS + 1)  # a shape not seen before
    assert log == []
    with count_compilations() as log:
        r = fit_nuts(model, obs, key, num_warmup=WARMUP, num_samples=SAMPLES, dense_mass=False)
        jax.block_until_ready(r)
    assert len(log) == 1, log
    with count_compilations() as log:
        jax.block_until_ready(predict_nuts(model, r, obs, np.linspace(0, 1, 7)))
    assert len(log) == 1, log
    mean, sd = _quadrature_posterior(X, y)
    ess = nuts_summary(r)["lengthscale"]["ess"]
    assert abs(np.asarray(r.samples["lengthscale"]).mean() - mean) < 4 * sd / np.sqrt(ess)


def test_predict_nuts_is_the_mixture(nuts_problem, x64):
    X, y, model, result = nuts_problem
    obs = Observations.from_arrays(X, y, capacity=CAP_NUTS)
    Xs = jnp.linspace(-0.2, 1.2, 9)
    mean, var = predict_nuts(model, result, obs, Xs)
    # independent: every sample's GP prediction (vmapped), then the law of total variance in NumPy
    flat = {k: v.reshape(-1) for k, v in result.samples.items()}
    mus, vs = jax.jit(jax.vmap(lambda p: model.build(p).condition(obs).predict(Xs)))(flat)
    mus, vs = np.asarray(mus), np.asarray(vs)
    np.testing.assert_allclose(mean, mus.mean(0), **tols(jnp.float64, 100))
    np.testing.assert_allclose(var, vs.mean(0) + mus.var(0), **tols(jnp.float64, 1000))


def test_fit_nuts_rejects_bad_sizes(nuts_problem):
    _, _, model, _ = nuts_problem
    obs = Observations.empty(4, 1)
    with pytest.raises(ValueError, match="must be positive"):
        fit_nuts(model, obs, jax.random.key(0), num_samples=0)
    with pytest.raises(ValueError, match=r"unknown \['ls'\], missing \['lengthscale'\]"):
        fit_nuts(model, obs, jax.random.key(0), init={"ls": 0.3})


# --- a user's model family: typed by the ModelFamily protocol, not by GPModel ------------------


class UserFamily:
    """A model family that is not a GPModel (composition): MAP, NUTS and campaigns accept it."""

    def __init__(self, inner):
        self.inner, self.priors = inner, inner.priors

    names = property(lambda self: self.inner.names)

    def build(self, params):
        return self.inner.build(params)

    def constrain(self, u):
        return self.inner.constrain(u)

    def unconstrain(self, params):
        return self.inner.unconstrain(params)

    def log_posterior(self, params, obs):
        return self.inner.log_posterior(params, obs)

    def log_density_unconstrained(self, u, obs):
        return self.inner.log_density_unconstrained(u, obs)

    def init_params(self, dtype=None):
        return self.inner.init_params(dtype)


def test_user_model_family_passes_the_type_checks():
    from jaxscope.campaign import init_random, make_config, run
    from jaxscope.decide import MAPGP
    from jaxscope.gp import ModelFamily
    from jaxscope.instruments import ThreeGaussians

    X, y = _draw_gp(0, 20)
    obs = Observations.from_arrays(X, y, capacity=24)
    inner = GPModel.default(X, y, "rbf")
    user = UserFamily(inner)
    assert isinstance(user, ModelFamily) and not isinstance(user, GPModel)
    p_user, _ = fit_map(user, obs)
    p_ref, _ = fit_map(inner, obs)
    for k in p_ref:
        np.testing.assert_allclose(p_user[k], p_ref[k], rtol=1e-6)
    # NUTS: the same posterior (a static family is compiled with its priors as constants, so
    # rounding, and with it the chaotic sampler path, differs: compare the posteriors)
    r = fit_nuts(user, obs, jax.random.key(0), num_warmup=150, num_samples=300)
    r_ref = fit_nuts(inner, obs, jax.random.key(1), num_warmup=150, num_samples=300)
    for k in ("lengthscale", "variance"):
        a, b = (
            np.log(np.asarray(r.samples[k]).ravel()),
            np.log(np.asarray(r_ref.samples[k]).ravel()),
        )
        se = np.sqrt(a.var() / 30 + b.var() / 30)  # ESS >= 30 of 300 draws, conservatively
        assert abs(a.mean() - b.mean()) < 4 * se, (k, a.mean(), b.mean(), se)
    sim = ThreeGaussians(noise=0.01, size=6)
    cfg = make_config(
        surrogate=MAPGP(UserFamily(GPModel.for_candidates(sim.candidates)), map_steps=10)
    )
    final = run(init_random(jax.random.key(1), cfg, sim, 4, num_steps=2), cfg, sim)
    assert np.all(np.asarray(final.history.index) >= 0)


def test_candidate_families_wide_and_dim_scaled():
    """The campaign's GP families: BoTorch's dimension-scaled priors, the default (ARD
    lengthscales ~ LogNormal(√2 + ½ log d + log range, √3), unit variance, noise
    LogNormal(-4, 1) above a floor of 1e-4 that MAP cannot go below; fits start at the priors'
    modes exp(μ − σ²)), and the wide priors of before (starting at the medians)."""
    rs = np.random.RandomState(0)
    C = rs.uniform(0, 1, (200, 3)) * np.array([1.0, 2.0, 4.0])
    ranges = C.max(0) - C.min(0)
    wide = GPModel.for_candidates(C, priors="wide")
    assert set(wide.priors) == {"lengthscale", "variance", "noise"} and wide.noise_floor == 0.0
    np.testing.assert_allclose(wide.init_params()["noise"], 1e-2, rtol=1e-6)  # the median
    m = GPModel.for_candidates(C)
    assert m == GPModel.for_candidates(C, priors="dim_scaled")
    assert set(m.priors) == {"lengthscale", "noise"}
    loc = np.sqrt(2) + 0.5 * np.log(3) + np.log(ranges)
    np.testing.assert_allclose(m.priors["lengthscale"].loc, loc, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(m.priors["lengthscale"].scale), np.sqrt(3), rtol=1e-6)
    p = m.init_params(jnp.float32)
    assert p["lengthscale"].shape == (3,)
    np.testing.assert_allclose(p["lengthscale"], np.exp(loc - 3.0), rtol=1e-5)  # the mode
    gp = m.build(p)
    np.testing.assert_allclose(float(gp.noise), float(np.exp(-5.0)) + 1e-4, rtol=1e-5)
    with pytest.raises(ValueError, match="unknown start"):
        dataclasses.replace(m, start="mean")
    assert np.all(np.asarray(gp.kernel.variance) == 1.0)
    # noiseless data: MAP drives the noise parameter down, the GP's noise stays above the floor
    X = rs.uniform(0, 1, (30, 3))
    with jax.enable_x64(True):
        params, _ = fit_map(m, Observations.from_arrays(X, np.sin(X.sum(1)), capacity=32,
                                                        dtype=jnp.float64))  # fmt: skip
        assert float(m.build(params).noise) >= 1e-4
    with pytest.raises(ValueError, match="unknown priors"):
        GPModel.for_candidates(C, priors="tight")
