"""Batch selection and continuous optimisation against independent references."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_allclose, count_compilations
from jaxscope.kernels import RBF

from jaxscope import GP, Observations
from jaxscope.decide import acquisition as A
from jaxscope.decide import fantasy, joint, select
from jaxscope.decide.continuous import maximize_box, point_acquisition


def _problem(dtype, n=5, cap=10, m=15, seed=0, ls=0.15, noise=1e-2):
    rs = np.random.RandomState(seed)
    X = rs.rand(n, 1)
    y = np.sin(6 * X[:, 0]) + 0.05 * rs.randn(n)
    obs = Observations.from_arrays(X, y, capacity=cap, dtype=dtype)
    gp = GP(RBF(lengthscale=ls), noise=noise)
    Xc = jnp.linspace(0, 1, m, dtype=dtype)[:, None]
    return gp, obs, Xc


# --- non-maximum suppression ---------------------------------------------------------------------


def _nms_reference(scores, X, q, radius):
    s = scores.astype(float).copy()
    out = []
    for _ in range(q):
        if not np.isfinite(s).any():
            break
        i = int(np.argmax(s))
        out.append(i)
        d = np.sqrt(np.sum(((X - X[i]) / radius) ** 2, axis=1))
        s[d <= 1.0] = -np.inf
    return out


@pytest.mark.parametrize("radius", [0.22, np.array([0.3, 0.1])])
def test_nms_respects_radius(dtype, radius):
    rs = np.random.RandomState(1)
    g = np.linspace(0, 1, 8)
    X = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    scores = rs.randn(64)
    mask = rs.rand(64) > 0.2
    q = 5
    idx, vals, ok = jax.jit(
        lambda s, X, m: select.nms(s, X, q, jnp.asarray(radius, dtype), mask=m)
    )(jnp.asarray(scores, dtype), jnp.asarray(X, dtype), jnp.asarray(mask))
    want = _nms_reference(np.where(mask, scores, -np.inf), X, q, radius)
    assert np.asarray(ok).all()
    assert list(np.asarray(idx)) == want
    assert_allclose(vals, scores[want])
    P = X[np.asarray(idx)]
    for a in range(q):
        for b in range(a + 1, q):
            assert np.sum(((P[a] - P[b]) / radius) ** 2) > 1.0


def test_nms_flags_exhaustion():
    X = jnp.linspace(0, 1, 5)[:, None]
    idx, vals, ok = select.nms(jnp.arange(5.0), X, 4, 0.3)
    # x = 1 excludes 0.75, x = 0.5 excludes 0.25, then x = 0 is left, then nothing
    assert list(np.asarray(idx[:3])) == [4, 2, 0]
    assert list(np.asarray(ok)) == [True, True, True, False]
    assert np.isneginf(float(vals[3]))


# --- kriging believer ------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["logei", "ucb"])
def test_kriging_believer_equals_sequential_refit(x64, rule):
    gp, obs, Xc = _problem(jnp.float64)
    best = A.incumbent(obs)
    q = 4
    mask = jnp.ones(Xc.shape[0], bool).at[3].set(False)
    idx, vals = jax.jit(lambda c, b: fantasy.kriging_believer(c, q, rule, best=b, mask=mask))(
        gp.condition(obs).cache(Xc), best
    )
    # reference: refit from scratch with each believed value appended to the data
    o, b, allowed, ref_idx, ref_vals = obs, float(best), np.asarray(mask).copy(), [], []
    for _ in range(q):
        pred = A.from_posterior(gp.condition(o), Xc)
        s = np.where(allowed, np.asarray(A.get(rule)(pred, best=b)), -np.inf)
        i = int(np.argmax(s))
        ref_idx.append(i)
        ref_vals.append(s[i])
        y = float(pred.mean[0, i])
        o = o.add(Xc[i], y)
        b = max(b, y)
        allowed[i] = False
    assert list(np.asarray(idx)) == ref_idx
    assert_allclose(vals, ref_vals, scale=1e3)
    assert len(set(ref_idx)) == q


def test_kriging_believer_compiles_once_for_new_data(x64):
    gp, obs, Xc = _problem(jnp.float64)
    _, obs2, _ = _problem(jnp.float64, seed=3)
    c1, c2 = gp.condition(obs).cache(Xc), gp.condition(obs2).cache(Xc)
    idx1, _ = fantasy.kriging_believer(c1, 3, "logei", best=0.9)
    with count_compilations() as log:
        idx2, _ = fantasy.kriging_believer(c2, 3, "logei", best=0.4)
        idx2.block_until_ready()
    assert len(log) == 0


def test_kriging_believer_over_hyperparameter_samples(x64):
    _, obs, Xc = _problem(jnp.float64)
    gps = [GP(RBF(lengthscale=ls), noise=1e-2) for ls in (0.1, 0.3)]
    stack = lambda xs: jax.tree_util.tree_map(lambda *a: jnp.stack(a), *xs)
    caches = stack([g.condition(obs).cache(Xc) for g in gps])
    idx, _ = fantasy.kriging_believer(caches, 3, "ucb", beta=9.0)
    ref, o = [], obs
    allowed = np.ones(Xc.shape[0], bool)
    for _ in range(3):
        posts = stack([g.condition(o) for g in gps])
        pred = A.from_posterior(posts, Xc)
        s = np.where(allowed, np.asarray(A.get("ucb")(pred, beta=9.0)), -np.inf)
        i = int(np.argmax(s))
        ref.append(i)
        allowed[i] = False
        o = o.add(Xc[i], float(jnp.mean(pred.mean[:, i])))  # the mixture mean is believed
    assert list(np.asarray(idx)) == ref


def test_kriging_believer_errors():
    gp, obs, Xc = _problem(jnp.float32)
    cache = gp.condition(obs).cache(Xc)
    with pytest.raises(ValueError, match="unknown liar"):
        fantasy.kriging_believer(cache, 2, liar="worst")
    with pytest.raises(ValueError, match="unknown acquisition"):
        fantasy.kriging_believer(cache, 2, "nope")


# --- joint Monte Carlo qEI / qUCB ---------------------------------------------------------------


def _numpy_posterior(obs, Xs, ls, noise):
    X, y = obs.arrays()
    k = lambda a, b: np.exp(-0.5 * np.sum((a[:, None] - b[None]) ** 2, -1) / ls**2)
    K = k(X, X) + noise * np.eye(len(X))
    Ks = k(Xs, X)
    mean = Ks @ np.linalg.solve(K, y)
    cov = k(Xs, Xs) - Ks @ np.linalg.solve(K, Ks.T)
    return mean, cov


def test_joint_qei_matches_independent_monte_carlo(x64):
    gp, obs, Xc = _problem(jnp.float64, m=21)
    post = gp.condition(obs)
    best = float(A.incumbent(obs))
    idx, vals = joint.select_joint(
        post, Xc, 3, key=jax.random.key(0), kind="qei", best=best, num_draws=4096, subset=10
    )
    idx = np.asarray(idx)
    assert len(set(idx.tolist())) == 3 and np.all(np.diff(np.asarray(vals)) >= 0)
    # q = 1: the MC value of the first pick is the analytic EI there
    ei = np.asarray(A.expected_improvement(A.from_posterior(post, Xc), best=best))
    assert abs(float(vals[0]) - ei[idx[0]]) < 0.05 * ei[idx[0]]
    # the whole batch: independent NumPy joint posterior and fresh draws
    mean, cov = _numpy_posterior(obs, np.asarray(Xc)[idx], 0.15, 1e-2)
    rs = np.random.RandomState(7)
    f = rs.multivariate_normal(mean, cov + 1e-12 * np.eye(3), size=200_000)
    imp = np.maximum(f.max(1) - best, 0.0)
    se = imp.std() / math.sqrt(4096)
    assert abs(float(vals[-1]) - imp.mean()) < 4 * se
    # the joint value of a batch beats the analytic EI of its best member
    assert float(vals[-1]) > ei[idx].max()


def test_joint_qucb_q1_is_ucb(x64):
    gp, obs, Xc = _problem(jnp.float64, m=21)
    post = gp.condition(obs)
    beta = 4.0
    idx, vals = joint.select_joint(
        post, Xc, 2, key=jax.random.key(3), kind="qucb", beta=beta, num_draws=8192, subset=8
    )
    ucb = np.asarray(A.upper_confidence_bound(A.from_posterior(post, Xc), beta=beta))
    i0 = int(idx[0])
    # E[μ + sqrt(βπ/2)|f - μ|] = μ + sqrt(β) σ
    _, var = post.predict(Xc)
    se = math.sqrt(beta * math.pi / 2) * math.sqrt(float(var[i0]) * (1 - 2 / math.pi) / 8192)
    assert abs(float(vals[0]) - ucb[i0]) < 4 * se
    # the direct batch value of the chosen pair agrees with the greedy value
    draws = A.posterior_draws(post, jax.random.key(5), Xc[idx], 8192)
    direct = joint.q_upper_confidence_bound(draws, post.predict(Xc[idx])[0], beta=beta)
    assert abs(float(direct) - float(vals[1])) < 0.02 * abs(float(vals[1]))
    with pytest.raises(ValueError, match="needs `best`"):
        joint.select_joint(post, Xc, 2, key=jax.random.key(0), kind="qei")
    with pytest.raises(ValueError, match="unknown joint rule"):
        joint.select_joint(post, Xc, 2, key=jax.random.key(0), kind="qpi")


# --- continuous optimisation ---------------------------------------------------------------------


def test_multistart_finds_quadratic_maximum(dtype):
    c = jnp.asarray([0.3, -0.2, 0.7], dtype)
    fn = lambda x: -jnp.sum((x - c) ** 2 * jnp.asarray([1.0, 4.0, 0.5], dtype))
    bounds = jnp.asarray([[-1.0, 1.0], [-1.0, 1.0], [0.0, 2.0]], dtype)
    res = jax.jit(
        lambda k: maximize_box(fn, bounds, k, num_starts=8, num_steps=300, learning_rate=0.02)
    )(jax.random.key(0))
    np.testing.assert_allclose(np.asarray(res.x), np.asarray(c), atol=2e-3)
    # a maximum outside the box lands exactly on its face
    fn2 = lambda x: -jnp.sum((x - jnp.asarray([2.0, 0.0, 1.0], dtype)) ** 2)
    res2 = maximize_box(fn2, bounds, jax.random.key(1), num_starts=4, num_steps=300)
    assert float(res2.x[0]) == 1.0
    assert np.all(np.asarray(res2.X) >= np.asarray(bounds[:, 0]))
    assert np.all(np.asarray(res2.X) <= np.asarray(bounds[:, 1]))


def _branin(X):
    x1 = -5.0 + 15.0 * X[:, 0]
    x2 = 15.0 * X[:, 1]
    b, c, t = 5.1 / (4 * np.pi**2), 5 / np.pi, 1 / (8 * np.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * np.cos(x1) + 10


@pytest.mark.slow
def test_multistart_maximises_gp_ucb_on_branin(x64):
    rs = np.random.RandomState(0)
    X = rs.rand(20, 2)
    y = -_branin(X)
    y = (y - y.mean()) / y.std()
    obs = Observations.from_arrays(X, y, capacity=20)
    post = GP(RBF(lengthscale=0.25), noise=1e-4).condition(obs)
    fn = point_acquisition(post, "ucb", beta=4.0)
    bounds = jnp.array([[0.0, 1.0], [0.0, 1.0]])
    res = jax.jit(
        lambda k: maximize_box(fn, bounds, k, num_starts=32, num_steps=200, learning_rate=0.01)
    )(jax.random.key(0))
    g = np.linspace(0, 1, 201)
    G = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    grid = np.asarray(
        A.upper_confidence_bound(A.from_posterior(post, G, chunk_size=8192), beta=4.0)
    )
    # the continuous optimum is at least as good as the dense grid (up to the grid's resolution)
    assert float(res.value) >= grid.max() - 1e-6
    assert float(res.value) <= grid.max() + 0.05 * abs(grid.max())
    i = int(np.argmax(grid))
    assert np.linalg.norm(np.asarray(res.x) - G[i]) < 0.02
    np.testing.assert_allclose(float(fn(res.x)), float(res.value), rtol=1e-12)
