"""jaxscope inside the user's own JAX code: a user-written kernel works everywhere a built-in one
does, the public functions compose with jit/vmap/grad, and importing changes no global setting."""

from __future__ import annotations

import json
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from conftest import assert_allclose, tols
from jaxscope.kernels import RBF, FunctionKernel, Matern32

from jaxscope import GP, GPModel, Observations, fit_map, fit_nuts, nuts_summary, predict_nuts

# --- a kernel written by the user: Matérn-3/2 with ARD, a function of two points ---------------


def matern32_ard(x1, x2, p):
    """k(x, x') = σ² (1 + √3 r) exp(-√3 r), r = |(x - x') / ℓ| with one ℓ per dimension."""
    d = (x1 - x2) / p["ls"]
    r2 = jnp.sum(d * d)
    r = jnp.where(r2 > 0, jnp.sqrt(jnp.where(r2 > 0, r2, 1.0)), 0.0)  # differentiable at 0
    return p["var"] * (1 + jnp.sqrt(3.0) * r) * jnp.exp(-jnp.sqrt(3.0) * r)


def _priors():
    return {
        "ls": dist.LogNormal(jnp.log(jnp.array([0.3, 0.3])), 1.0),
        "var": dist.LogNormal(0.0, 1.0),
        "noise": dist.LogNormal(jnp.log(0.01), 1.0),
    }


USER = GPModel(
    kernel=lambda p: FunctionKernel(matern32_ard, {"ls": p["ls"], "var": p["var"]}),
    priors=_priors(),
)
BUILTIN = GPModel(
    kernel=lambda p: Matern32(lengthscale=p["ls"], variance=p["var"]), priors=_priors()
)

N, CAP = 30, 32


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 1, (N, 2))
    y = np.sin(4 * X[:, 0]) + 0.3 * np.cos(9 * X[:, 1]) + 0.05 * rng.normal(size=N)
    Xs = rng.uniform(0, 1, (17, 2))
    return X, y, Xs


_lml_grad = eqx.filter_jit(
    jax.value_and_grad(lambda p, model, obs: model.build(p).log_marginal_likelihood(obs))
)


def test_user_kernel_equals_builtin(data, dtype):
    X, y, _ = data
    obs = Observations.from_arrays(X, y, capacity=CAP)
    p = {
        "ls": jnp.asarray([0.25, 0.6], dtype),
        "var": jnp.asarray(1.3, dtype),
        "noise": jnp.asarray(0.02, dtype),
    }
    (l_user, g_user), (l_ref, g_ref) = _lml_grad(p, USER, obs), _lml_grad(p, BUILTIN, obs)
    assert l_user.dtype == dtype
    assert_allclose(l_user, l_ref, dtype=dtype, scale=100)
    for k in p:
        assert_allclose(g_user[k], g_ref[k], dtype=dtype, scale=1000)


def test_user_kernel_with_map_and_predict(data, x64):
    X, y, Xs = data
    obs = Observations.from_arrays(X, y, capacity=CAP)
    params, info = fit_map(USER, obs)
    ref, _ = fit_map(BUILTIN, obs)
    assert float(info.grad_norm) < 1e-3 and int(info.num_steps) < 200
    for k in ref:  # the same optimum as the built-in kernel
        np.testing.assert_allclose(params[k], ref[k], rtol=1e-4, err_msg=k)
    assert params["ls"].shape == (2,)
    predict = eqx.filter_jit(lambda m, p, o, Xs: m.build(p).condition(o).predict(Xs))
    m_user, v_user = predict(USER, params, obs, jnp.asarray(Xs))
    m_ref, v_ref = predict(BUILTIN, params, obs, jnp.asarray(Xs))
    np.testing.assert_allclose(m_user, m_ref, **tols(jnp.float64, 1e3))
    np.testing.assert_allclose(v_user, v_ref, **tols(jnp.float64, 1e3))
    # and the fit is good: in-sample residuals at the noise level
    m_x, _ = predict(USER, params, obs, jnp.asarray(X))
    assert np.sqrt(np.mean((np.asarray(m_x) - y) ** 2)) < 0.1


def test_user_kernel_with_nuts(data, x64):
    X, y, Xs = data
    obs = Observations.from_arrays(X, y, capacity=CAP)
    kw = dict(num_warmup=200, num_samples=200, num_chains=2)
    res_user = fit_nuts(USER, obs, jax.random.key(0), **kw)
    res_ref = fit_nuts(BUILTIN, obs, jax.random.key(1), **kw)
    s_user, s_ref = nuts_summary(res_user), nuts_summary(res_ref)
    assert s_user["_sampler"]["divergences"] == 0
    for k in ("ls", "var", "noise"):
        assert np.all(np.asarray(s_user[k]["r_hat"]) < 1.1), (k, s_user[k])
        # two independent chains of draws from the same posterior agree within Monte Carlo error
        ess = np.minimum(np.asarray(s_user[k]["ess"]), np.asarray(s_ref[k]["ess"]))
        se = np.asarray(s_ref[k]["sd"]) * np.sqrt(2.0 / ess)
        diff = np.abs(np.asarray(s_user[k]["mean"]) - np.asarray(s_ref[k]["mean"]))
        assert np.all(diff < 5 * se), (k, s_user[k], s_ref[k])
    # the fully Bayesian predictive with the user's kernel equals the built-in one, sample by sample
    m_user, v_user = predict_nuts(USER, res_user, obs, jnp.asarray(Xs))
    m_ref, v_ref = predict_nuts(BUILTIN, res_user, obs, jnp.asarray(Xs))
    np.testing.assert_allclose(m_user, m_ref, **tols(jnp.float64, 1e3))
    np.testing.assert_allclose(v_user, v_ref, **tols(jnp.float64, 1e3))


# --- composition with the user's jit / vmap / grad -------------------------------------------

B, CAP_B = 8, 24


def _lml(theta, obs):
    ls, var, noise = jnp.exp(theta)
    return GP(kernel=RBF(lengthscale=ls, variance=var), noise=noise).log_marginal_likelihood(obs)


@pytest.fixture(scope="module")
def batch():
    """8 datasets with different numbers of points, stacked into one batched buffer."""
    rng = np.random.default_rng(8)
    bufs = []
    with jax.enable_x64(True):
        for b in range(B):
            n = 10 + 2 * b
            X = rng.uniform(0, 1, (n, 1))
            y = np.sin((3 + b) * X[:, 0]) + 0.1 * rng.normal(size=n)
            bufs.append(Observations.from_arrays(X, y, capacity=CAP_B))
        stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *bufs)
    return bufs, stacked


def test_vmap_grad_of_marginal_likelihood(batch, x64):
    bufs, stacked = batch
    theta = jnp.log(jnp.array([0.3, 1.2, 0.05]))

    @jax.jit
    def total(theta, obs):  # the user's own function: vmap over datasets, then sum
        return jnp.sum(jax.vmap(_lml, in_axes=(None, 0))(theta, obs))

    value, grad = jax.value_and_grad(total)(theta, stacked)
    per_dataset = jax.jit(jax.vmap(jax.grad(_lml), in_axes=(None, 0)))(theta, stacked)
    assert per_dataset.shape == (B, 3)
    # against a plain Python loop over the datasets
    loop_val = sum(float(_lml(theta, o)) for o in bufs)
    loop_grad = [np.asarray(jax.grad(_lml)(theta, o)) for o in bufs]
    np.testing.assert_allclose(value, loop_val, rtol=1e-12)
    np.testing.assert_allclose(per_dataset, np.array(loop_grad), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grad, np.sum(loop_grad, axis=0), rtol=1e-10, atol=1e-10)
    # and against central finite differences of the vmapped total
    h = 1e-6
    fd = [
        (total(theta.at[i].add(h), stacked) - total(theta.at[i].add(-h), stacked)) / (2 * h)
        for i in range(3)
    ]
    np.testing.assert_allclose(grad, np.array(fd), rtol=1e-6)


def test_buffers_compose_with_vmap_and_jit(x64):
    # adding points and predicting inside the user's jit + vmap (8 campaigns at once)
    rng = np.random.default_rng(9)
    X = jnp.asarray(rng.uniform(0, 1, (B, 5, 1)))
    y = jnp.sin(4 * X[..., 0])
    Xs = jnp.linspace(0, 1, 11)[:, None]
    gp = GP(kernel=RBF(lengthscale=0.3), noise=1e-3)

    @jax.jit
    def run(X, y):
        def one(Xb, yb):
            obs = Observations.empty(8, 1, jnp.float64)
            for i in range(5):
                obs = obs.add(Xb[i], yb[i])
            return gp.condition(obs).predict(Xs)

        return jax.vmap(one)(X, y)

    mean, var = run(X, y)
    assert mean.shape == (B, 11)
    for b in (0, 5):
        ref_m, ref_v = gp.condition(Observations.from_arrays(X[b], y[b], capacity=8)).predict(Xs)
        np.testing.assert_allclose(mean[b], ref_m, **tols(jnp.float64, 100))
        np.testing.assert_allclose(var[b], ref_v, **tols(jnp.float64, 100))


def test_entry_points_inside_user_jit(x64):
    """The entry points carry compiler options only as top-level programs (JAX refuses them on a
    nested jit): inside the user's jit — with traced data, or with data closed over as constants
    — and under vmap they compile as part of the user's program and give the same result."""
    rng = np.random.default_rng(4)
    X = rng.uniform(0, 1, 20)
    obs = Observations.from_arrays(X, np.sin(5 * X) + 0.05 * rng.normal(size=20))
    model = GPModel.default(X, np.asarray(obs.y), "rbf")
    top, _ = fit_map(model, obs, optimizer="adam", num_steps=50)
    traced, _ = jax.jit(lambda o: fit_map(model, o, optimizer="adam", num_steps=50))(obs)
    const, _ = jax.jit(lambda: fit_map(model, obs, optimizer="adam", num_steps=50))()
    batched = jax.vmap(lambda o: fit_map(model, o, optimizer="adam", num_steps=50)[0])(
        jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), obs)
    )
    for other in (traced, const, {k: v[1] for k, v in batched.items()}):
        for k in top:
            np.testing.assert_allclose(other[k], top[k], **tols(jnp.float64, 1e4))


# --- importing changes no global setting -------------------------------------------------------

_PROBE = r"""
import importlib, json, os, pkgutil, sys
import jax

def snapshot():
    values = {}
    for name in sorted(jax.config.values):
        try:
            values[name] = repr(getattr(jax.config, name))
        except Exception as e:  # a setting that cannot be read is compared by its error
            values[name] = "error: " + type(e).__name__
    return values

before, env_before = snapshot(), dict(os.environ)
x64_before = jax.numpy.zeros(()).dtype.name
import jaxscope
modules = ["jaxscope"]
for name in ("jaxscope", "jaxscope.kernels", "jaxscope.probmodels"):
    pkg = importlib.import_module(name)
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        importlib.import_module(m.name)
        modules.append(m.name)
modules = sorted(set(modules))
after, env_after = snapshot(), dict(os.environ)
changed = {k: (before.get(k), after.get(k)) for k in set(before) | set(after) if before.get(k) != after.get(k)}
env_changed = sorted(k for k in set(env_before) | set(env_after) if env_before.get(k) != env_after.get(k))
print(json.dumps({"changed": changed, "env_changed": env_changed, "modules": modules,
                  "settings": sorted(before), "x64": [x64_before, jax.numpy.zeros(()).dtype.name]}))
"""


def test_import_changes_no_global_jax_setting():
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    # the snapshot really covers jax's settings, the usual suspects included
    assert len(res["settings"]) > 50
    for key in (
        "jax_enable_x64",
        "jax_default_matmul_precision",
        "jax_compilation_cache_dir",
        "jax_platforms",
        "jax_persistent_cache_min_compile_time_secs",
        "jax_debug_nans",
    ):
        assert key in res["settings"], key
    assert res["changed"] == {}, res["changed"]
    assert res["env_changed"] == [], res["env_changed"]
    assert res["x64"] == ["float32", "float32"]
    assert "jaxscope.gp" in res["modules"] and "jaxscope.kernels.stationary" in res["modules"]
