"""Compiled runner: one XLA program per campaign, pure simulator and pure_callback instruments,
scan equals the step loop, metrics against NumPy, NUTS mode against an exact mixture."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import count_compilations

from jaxscope.campaign import (
    campaign_metrics,
    decide,
    init_random,
    make_config,
    run,
    run_campaign,
    step,
)
from jaxscope.gp import default_jitter, unit_grid
from jaxscope.instruments import CallbackProblem, GridProblem

# its module fixtures are built once: one worker runs the file (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_compiled")

SIDE, N_INIT, STEPS = 7, 5, 6


def f2(X):
    X = np.asarray(X, np.float64)
    x1, x2 = X[:, 0], X[:, 1]
    return np.sin(3 * x1) * np.cos(3 * x2) + 0.5 * np.exp(
        -((x1 - 0.6) ** 2 + (x2 - 0.4) ** 2) / 0.05
    )


@pytest.fixture(scope="module")
def grid():
    C = unit_grid(SIDE)
    return C, np.asarray(f2(C))


@pytest.fixture(scope="module")
def sim(grid):
    C, v = grid
    return GridProblem(
        candidates=C, values=jnp.asarray(v, C.dtype), noise=jnp.asarray(0.0, C.dtype)
    )


@pytest.fixture(scope="module")
def cfg(sim):
    return make_config(sim.candidates, acquisition="ucb", acq_kwargs={"beta": 4.0}, mode="map")


@pytest.fixture(scope="module")
def pure_run(sim, cfg):
    key = jax.random.key(0)
    with count_compilations() as log:
        final = run_campaign(key, cfg, sim, N_INIT, STEPS)
        jax.block_until_ready(final)
    return final, len(log)


def test_whole_campaign_compiles_once(sim, cfg, pure_run):
    _, n_compiles = pure_run
    assert n_compiles == 1
    sim2 = eqx.tree_at(lambda p: p.values, sim, sim.values * 2.0)  # new data, same shapes
    key = jax.random.key(1)
    with count_compilations() as log:
        jax.block_until_ready(run_campaign(key, cfg, sim2, N_INIT, STEPS))
    assert len(log) == 0


def test_callback_instrument_matches_pure_simulator(grid, sim, cfg, pure_run):
    """A host function behind jax.pure_callback gives the very same campaign as the pure
    simulator of the same (noise-free) function, in one compilation, and was asked exactly the
    stored points."""
    C, v = grid
    Cn = np.asarray(C)
    asked = []

    def host(X):
        X = np.asarray(X)
        asked.append(X.copy())
        j = np.argmin(((X[:, None, :] - Cn[None]) ** 2).sum(-1), axis=1)
        return v[j].astype(X.dtype)

    def fn(X):
        return jax.pure_callback(host, jax.ShapeDtypeStruct(X.shape[:1], X.dtype), X)

    prob = CallbackProblem(candidates=C, fn=fn)
    key = jax.random.key(0)
    with count_compilations() as log:
        final = run_campaign(key, cfg, prob, N_INIT, STEPS)
        jax.block_until_ready(final)
    assert len(log) == 1
    ref = pure_run[0]
    np.testing.assert_array_equal(np.asarray(final.history.index), np.asarray(ref.history.index))
    np.testing.assert_allclose(np.asarray(final.history.y), np.asarray(ref.history.y), rtol=1e-6)
    assert len(asked) == STEPS + 1  # the seed batch, then one call per step
    np.testing.assert_array_equal(np.stack(asked[1:]), np.asarray(final.history.x))
    np.testing.assert_array_equal(np.concatenate(asked), np.asarray(final.obs.X))


def test_scan_equals_step_loop(sim):
    cfg = make_config(sim.candidates, acquisition="logei", mode="fixed", q=2, exclusion_radius=0.2)
    s0 = eqx.filter_jit(init_random)(jax.random.key(2), cfg, sim, N_INIT, num_steps=3)
    with count_compilations() as log:
        scanned = run(s0, cfg, sim)
        jax.block_until_ready(scanned)
    assert len(log) == 1
    s = s0
    step_jit = eqx.filter_jit(step)
    for _ in range(3):
        s = step_jit(s, cfg, sim)
    np.testing.assert_array_equal(np.asarray(scanned.history.index), np.asarray(s.history.index))
    np.testing.assert_allclose(
        np.asarray(scanned.model.cache.mean), np.asarray(s.model.cache.mean), rtol=1e-4, atol=1e-5
    )
    with pytest.raises(ValueError, match="num_steps"):
        run(s0, cfg, sim, num_steps=4)


def test_metrics_against_numpy(grid, pure_run):
    C, v = grid
    final, _ = pure_run
    met = campaign_metrics(final, GridProblem(C, jnp.asarray(v, C.dtype), jnp.zeros((), C.dtype)))
    idx = np.asarray(final.history.index[:, 0])
    seeds = np.setdiff1d(np.flatnonzero(np.asarray(final.measured)), idx)
    assert len(seeds) == N_INIT
    best = np.maximum.accumulate(np.maximum(v[idx], v[seeds].max()))
    np.testing.assert_allclose(met["best"], best, rtol=1e-6)
    np.testing.assert_allclose(met["regret"], v.max() - best, rtol=1e-5, atol=1e-6)
    top = v >= np.sort(v)[-1]  # 1% of 49 points rounds to the single best candidate
    found = [
        np.isin(np.flatnonzero(top), np.concatenate([seeds, idx[: t + 1]])).mean()
        for t in range(STEPS)
    ]
    np.testing.assert_allclose(met["top_found"], found)
    # rmse at each step = RMSE of the decision's predictive mean (recorded in the history)
    assert np.all(np.isfinite(np.asarray(met["rmse"])))


@pytest.mark.slow
def test_nuts_mode_predictive_is_exact_mixture(sim):
    cfg = make_config(sim.candidates, acquisition="ucb", mode="nuts", num_warmup=30, num_samples=20)
    s0 = eqx.filter_jit(init_random)(jax.random.key(3), cfg, sim, N_INIT, num_steps=2)
    d = eqx.filter_jit(decide)(s0, cfg, sim)
    S = d.model.samples["lengthscale"].shape[0]
    assert S == 20 and d.pred.mean.shape == (20, SIDE * SIDE)
    assert float(np.std(np.asarray(d.model.samples["lengthscale"]))) > 0  # a real posterior sample
    n = int(s0.obs.count)
    X, y = np.asarray(s0.obs.X[:n], np.float64), np.asarray(s0.obs.y[:n], np.float64)
    mu, sd = y.mean(), y.std()
    ys = (y - mu) / sd
    C = np.asarray(sim.candidates, np.float64)
    jit = default_jitter(jnp.float32)
    means, varis = [], []
    floor = cfg.surrogate.model.noise_floor  # the default family: ARD, unit variance, floor
    for i in range(S):
        ls = np.asarray(d.model.samples["lengthscale"][i], np.float64)
        var, noise = 1.0, float(d.model.samples["noise"][i]) + floor
        k = lambda A, B: var * np.exp(-0.5 * (((A[:, None] - B[None]) / ls) ** 2).sum(-1))
        A = np.linalg.solve(k(X, X) + (noise + jit) * np.eye(n), k(X, C))
        means.append(A.T @ ys * sd + mu)
        varis.append(np.maximum(var - np.sum(k(X, C) * A, 0), 0) * sd**2)
    np.testing.assert_allclose(d.pred.mean, np.stack(means), rtol=5e-3, atol=5e-3)
    np.testing.assert_allclose(d.pred.var, np.stack(varis), rtol=2e-2, atol=2e-3)
    m = np.mean(means, 0)
    v = np.mean(np.stack(varis) + np.stack(means) ** 2, 0) - m**2
    ucb = np.where(np.asarray(s0.measured), -np.inf, m + 2 * np.sqrt(np.maximum(v, 0)))
    assert int(d.index[0]) == int(np.argmax(ucb))
