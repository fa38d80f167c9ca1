"""GridGP: the structured GP as a campaign surrogate, against the exact GP at the same
hyperparameters (mean to solver tolerance, σ² within Monte-Carlo error, fantasies), the
candidate-grid checks, and a compiled campaign that compiles once and whose final surrogate
equals the exact GP on the buffer it measured."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import count_compilations

from jaxscope.campaign import make_config, run_campaign
from jaxscope.decide.grid_surrogate import GridGP
from jaxscope.gp import GP, Observations, Standardizer
from jaxscope.gp.gridded import GridKernel
from jaxscope.gp.gridded_fit import SolverSettings
from jaxscope.instruments import GridProblem
from jaxscope.instruments.surface import grid_points

pytestmark = pytest.mark.xdist_group("grid_surrogate")

S = 14
LS, VAR, NOISE = 3.0, 1.2, 0.02
TIGHT = SolverSettings(tol=1e-10, max_iter=500, noise_floor=0.0)


def _surrogate(C, **kw):
    kw = {
        "refit_steps": 0,
        "init_steps": 0,
        "init_lengthscale": LS,
        "init_noise": NOISE,
        "settings": TIGHT,
        **kw,
    }
    return GridGP.for_candidates(C, **kw)


def _exact(sur, obs):
    """The exact GP on pixel coordinates, standardised as the surrogate does, at the held
    hyperparameters (variance 1 is GridGP's start)."""
    sc = Standardizer.fit(obs)
    px = (np.asarray(obs.X) - np.asarray(sur.origin)) / np.asarray(sur.step)
    o = Observations.from_arrays(
        px[: int(obs.count)], np.asarray(sc.apply(obs).y)[: int(obs.count)]
    )
    gp = GP(kernel=GridKernel(jnp.array([LS, LS]), 1.0).as_kernel(), noise=NOISE)
    return gp.condition(o), sc


@pytest.fixture(scope="module")
def data():
    with jax.enable_x64(True):
        C = grid_points(S, jnp.float64)
        rng = np.random.default_rng(0)
        idx = rng.choice(S * S, 50, replace=False)
        X = np.asarray(C)[idx]
        y = np.sin(6 * X[:, 0]) + X[:, 1] ** 2 + 0.1 * rng.standard_normal(50) + 3.0
        obs = Observations.from_arrays(X, y, capacity=60, dtype=jnp.float64)
        return C, obs


def test_predictive_equals_the_exact_gp(data, x64):
    C, obs = data
    sur = _surrogate(C, num_samples=2048)
    state = sur.init(jax.random.key(0), obs)
    pred = sur.predictive(state, C)
    post, sc = _exact(sur, obs)
    px = (np.asarray(C) - np.asarray(sur.origin)) / np.asarray(sur.step)
    mu, var = post.predict(jnp.asarray(px))
    mu, var = sc.unscale(mu, var)
    np.testing.assert_allclose(np.asarray(pred.mean[0]), np.asarray(mu), rtol=1e-7, atol=1e-7)
    rel = np.asarray(pred.var[0]) / np.asarray(var) - 1
    # Monte-Carlo: the relative error of a variance from 2048 draws has sd sqrt(2/2048) = 0.031
    assert abs(rel.mean()) < 0.02 and np.percentile(np.abs(rel), 95) < 2.5 * 0.031
    # joint draws: their mean and spread follow the posterior
    d = sur.predictive(state, C, key=jax.random.key(1), num_draws=512).draws
    assert d.shape == (512, S * S)
    z = (np.asarray(d).mean(0) - np.asarray(mu)) / np.sqrt(np.asarray(var) / 512)
    assert np.abs(z).max() < 5.0


def test_fantasies_equal_the_exact_gp_with_the_points_added(data, x64):
    C, obs = data
    sur = _surrogate(C, num_samples=8)
    state = sur.init(jax.random.key(0), obs)
    X2 = jnp.asarray(C)[jnp.array([3, 77])]
    y2 = jnp.array([4.0, 2.5])
    fant = sur.condition(state, X2, y2)
    # independent formula: the exact GP on the buffer plus the points, same scaler
    post, sc = _exact(sur, obs)
    px = (np.asarray(X2) - np.asarray(sur.origin)) / np.asarray(sur.step)
    for x, y in zip(px, (np.asarray(y2) - sc.shift) / sc.scale, strict=True):
        post = post.padded(1).add(jnp.asarray(x), jnp.asarray(y))
    pxc = (np.asarray(C) - np.asarray(sur.origin)) / np.asarray(sur.step)
    mu = sc.unscale(post.predict(jnp.asarray(pxc))[0])
    got = sur.predictive(fant, C).mean[0]
    np.testing.assert_allclose(np.asarray(got), np.asarray(mu), rtol=1e-7, atol=1e-7)


def test_the_candidates_must_be_a_full_regular_grid():
    C = np.asarray(grid_points(6))
    with pytest.raises(ValueError, match="not a full grid"):
        GridGP.for_candidates(C[:-1])
    bent = C.copy()
    bent[C[:, 0] == C[:, 0].max(), 0] += 0.05
    with pytest.raises(ValueError, match="unevenly spaced along axis 0"):
        GridGP.for_candidates(bent)
    with pytest.raises(ValueError, match=r"\(m, 2\) candidates"):
        GridGP.for_candidates(C[:, :1])
    with pytest.raises(ValueError, match="refit_steps"):
        GridGP.for_candidates(C, refit_steps=-1)
    sur = GridGP.for_candidates(C)
    with pytest.raises(Exception, match="outside the candidate grid"):
        jax.jit(lambda s, X: s.pixels(X))(sur, jnp.asarray([[0.5, 0.5], [1.2, 0.5]]))
    with pytest.raises(ValueError, match=r"points of shape \(n, 2\)"):
        sur.pixels(jnp.zeros((3, 3)))
    np.testing.assert_allclose(np.asarray(sur.step), [1 / 6, 1 / 6])
    r, c = sur.pixels(jnp.asarray(C))
    np.testing.assert_array_equal(np.asarray(r) * 6 + np.asarray(c), np.arange(36))


def test_campaign_compiles_once_and_ends_on_the_exact_posterior(x64):
    C = grid_points(12, jnp.float64)
    x = np.asarray(C)
    v = np.sin(5 * x[:, 0]) * np.cos(4 * x[:, 1])
    prob = GridProblem(candidates=C, values=jnp.asarray(v), noise=jnp.asarray(0.0))
    st_ = SolverSettings(tol=1e-10, max_iter=500)  # default noise floor, tight mean
    sur = _surrogate(C, refit_steps=2, num_samples=16, settings=st_)
    cfg = make_config(C, surrogate=sur, acquisition="ucb", acq_kwargs={"beta": 4.0})
    with count_compilations() as log:
        final = jax.block_until_ready(run_campaign(jax.random.key(0), cfg, prob, 6, 8))
    assert len(log) == 1
    obs = final.obs
    n = int(obs.count)
    assert n == 14
    X = np.asarray(obs.X)[:n]
    assert len(np.unique(X, axis=0)) == n  # no candidate measured twice
    nearest = [int(np.argmin(((x - q) ** 2).sum(1))) for q in X]
    np.testing.assert_allclose(np.asarray(obs.y)[:n], v[nearest], rtol=0, atol=1e-12)
    # the final model state (updated at the last decision, before its point was measured) is
    # the exact GP at the refitted hyperparameters on the first n - 1 measurements
    st = final.model
    n, X = n - 1, X[:-1]
    p = st.params
    sc = st.scaler
    px = (X - np.asarray(sur.origin)) / np.asarray(sur.step)
    o = Observations.from_arrays(px, (np.asarray(obs.y)[:n] - sc.shift) / sc.scale)
    k = GridKernel(p["lengthscale"], p["variance"]).as_kernel()
    noise = p["noise"] + sur.settings.noise_floor
    mu = GP(kernel=k, noise=noise).condition(o).predict(jnp.asarray(x / np.asarray(sur.step)
                                                                     - 0.5))[0]  # fmt: skip
    np.testing.assert_allclose(np.asarray(st.mean).ravel(), np.asarray(mu), rtol=1e-6, atol=1e-6)
    assert not np.allclose(np.asarray(p["lengthscale"]), LS)  # the refit moved them
