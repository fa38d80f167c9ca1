"""Campaign state and the pure step: decisions against an independent NumPy GP, the
chosen-equals-measured guarantee, held-hyperparameter rank-1 mode, batches, policies, errors."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import count_compilations, tols
from scipy import stats

from jaxscope.campaign import (
    CampaignState,
    decide,
    init,
    init_random,
    make_config,
    record,
    step,
)
from jaxscope.gp import default_jitter
from jaxscope.instruments import CallbackProblem, Problem
from jaxscope.instruments.toy import ThreeGaussians

# its module fixtures are built once: one worker runs the file (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_step")

SIZE, N_INIT, STEPS = 8, 6, 3
decide_jit = eqx.filter_jit(decide)
step_jit = eqx.filter_jit(step)
init_jit = eqx.filter_jit(init_random)


# --- independent reference ---------------------------------------------------------------------
def np_predict(params, X, y, C, jitter):
    """RBF GP on standardised targets (population std), back in original units. float64."""
    y = np.asarray(y, np.float64)
    mu, sd = y.mean(), y.std()
    mean, var = np_gp(params, X, (y - mu) / sd, C, jitter)
    return mean * sd + mu, var * sd**2


FLOOR = 1e-4  # the default family's noise floor (BoTorch's), on standardised targets


def np_gp(params, X, ys, C, jitter):
    """Zero-mean RBF GP posterior mean and variance of f at C (float64, dense solves): one
    lengthscale per dimension (or a shared one), unit signal variance unless given, noise
    variance ``params["noise"]`` above the floor."""
    X, ys, C = (np.asarray(a, np.float64) for a in (X, ys, C))
    ls = np.asarray(params["lengthscale"], np.float64)
    var = float(params["variance"]) if "variance" in params else 1.0
    noise = float(params["noise"]) + (0.0 if "variance" in params else FLOOR)

    def k(A, B):
        d2 = (((A[:, None, :] - B[None, :, :]) / ls) ** 2).sum(-1)
        return var * np.exp(-0.5 * d2)

    Kxx = k(X, X) + (noise + jitter) * np.eye(len(X))
    Ks = k(X, C)
    A = np.linalg.solve(Kxx, Ks)
    mean = A.T @ ys
    v = var - np.sum(Ks * A, axis=0)
    return mean, np.maximum(v, 0)


def np_log_post(theta, X, y, ranges):
    """log p(y_s | θ) + log p(θ) with the default family's priors, θ = (ℓ_1..ℓ_d, noise):
    ℓ_k ~ LogNormal(√2 + ½ log d + log range_k, √3), noise ~ LogNormal(-4, 1), unit variance,
    the GP's noise = noise + FLOOR."""
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    ys = (y - y.mean()) / y.std()
    d = X.shape[1]
    ls, noise = np.asarray(theta[:d]), theta[d]
    d2 = (((X[:, None, :] - X[None, :, :]) / ls) ** 2).sum(-1)
    K = np.exp(-0.5 * d2) + (noise + FLOOR) * np.eye(len(X))
    ll = stats.multivariate_normal(np.zeros(len(X)), K).logpdf(ys)
    loc = np.sqrt(2) + 0.5 * np.log(d) + np.log(ranges)
    lp = np.sum(stats.lognorm(np.sqrt(3), scale=np.exp(loc)).logpdf(ls))
    lp += stats.lognorm(1.0, scale=np.exp(-4.0)).logpdf(noise)
    return ll + lp


def real(state):
    n = int(state.obs.count)
    return np.asarray(state.obs.X[:n]), np.asarray(state.obs.y[:n])


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim():
    return ThreeGaussians(noise=0.05, size=SIZE)


@pytest.fixture(scope="module")
def map_run(sim):
    cfg = make_config(sim.candidates, acquisition="ucb", acq_kwargs={"beta": 4.0}, mode="map")
    s0 = init_jit(jax.random.key(0), cfg, sim, N_INIT, num_steps=STEPS)
    states = [s0]
    for _ in range(STEPS):
        states.append(step_jit(states[-1], cfg, sim))
    return cfg, states


@pytest.fixture(scope="module")
def fixed_cfg(sim):
    return make_config(
        sim.candidates,
        acquisition=["ucb", "maxvar"],
        acq_kwargs=[{"beta": 4.0}, None],
        mode="fixed",
    )


# --- tests ---------------------------------------------------------------------------------------
def test_map_decision_matches_numpy_gp(sim, map_run):
    cfg, states = map_run
    state = states[2]
    d = decide_jit(state, cfg, sim)
    X, y = real(state)
    mean, var = np_predict(d.model.params, X, y, sim.candidates, default_jitter(jnp.float32))
    np.testing.assert_allclose(d.pred.mean[0], mean, rtol=2e-3, atol=2e-3 * np.ptp(y))
    np.testing.assert_allclose(d.pred.var[0], var, rtol=1e-2, atol=1e-3 * np.var(y))
    ucb = np.where(np.asarray(state.measured), -np.inf, mean + 2.0 * np.sqrt(var))
    assert int(d.index[0]) == int(np.argmax(ucb))
    np.testing.assert_allclose(d.acq[0], ucb.max(), rtol=2e-3, atol=2e-3 * np.ptp(y))
    # the refit is a local maximum of the (independently written) log posterior
    C = np.asarray(sim.candidates, np.float64)
    ranges = C.max(0) - C.min(0)
    theta = np.append(np.asarray(d.model.params["lengthscale"]), float(d.model.params["noise"]))
    best = np_log_post(theta, X, y, ranges)
    rng = np.random.default_rng(0)
    for _ in range(20):
        other = theta * np.exp(0.1 * rng.standard_normal(theta.size))
        assert np_log_post(other, X, y, ranges) <= best + 1e-3
    start = np.append(np.exp(np.sqrt(2) + 0.5 * np.log(2) + np.log(ranges) - 3), np.exp(-5.0))
    assert best > np_log_post(start, X, y, ranges)  # better than the start (the priors' modes)


def test_measured_point_is_chosen_point(sim, map_run):
    """The value stored for step t is sim.measure at exactly history.x[t] (recomputed here)."""
    cfg, states = map_run
    final = states[-1]
    h = final.history
    np.testing.assert_array_equal(np.asarray(h.x[:, 0]), np.asarray(sim.candidates[h.index[:, 0]]))
    np.testing.assert_array_equal(np.asarray(final.obs.X[N_INIT:]), np.asarray(h.x[:, 0]))
    np.testing.assert_array_equal(np.asarray(final.obs.y[N_INIT:]), np.asarray(h.y[:, 0]))
    for t in range(STEPS):
        key_t = states[t].key
        y = sim.measure_batch(jax.random.fold_in(key_t, 3), h.x[t])
        np.testing.assert_allclose(np.asarray(y), np.asarray(h.y[t]), rtol=1e-6, atol=1e-7)
    assert len(set(np.asarray(h.index[:, 0]).tolist())) == STEPS  # never re-measured
    assert not np.any(
        np.isin(np.asarray(h.index[:, 0]), np.flatnonzero(np.asarray(states[0].measured)))
    )
    np.testing.assert_array_equal(np.asarray(final.position), np.asarray(h.x[-1, 0]))


def test_callback_instrument_sees_exactly_the_stored_points(sim):
    """A host instrument records what it was asked; the campaign's history and buffer agree."""
    asked = []
    truth = np.asarray(sim.truth(sim.candidates))
    C = np.asarray(sim.candidates)

    def host(X):
        X = np.asarray(X)
        asked.append(X.copy())
        j = np.argmin(((X[:, None, :] - C[None]) ** 2).sum(-1), axis=1)
        return (truth[j] + 0.01 * np.arange(len(X))).astype(X.dtype)

    def fn(X):
        return jax.pure_callback(host, jax.ShapeDtypeStruct(X.shape[:1], X.dtype), X)

    prob = CallbackProblem(candidates=sim.candidates, fn=fn)
    cfg = make_config(sim.candidates, acquisition="ucb", mode="fixed", q=2, exclusion_radius=0.2)
    s = init_jit(jax.random.key(3), cfg, prob, N_INIT, num_steps=STEPS)
    for _ in range(STEPS):
        s = step_jit(s, cfg, prob)
    asked_steps = np.stack(asked[1:])  # asked[0]: the seed points
    np.testing.assert_array_equal(asked_steps, np.asarray(s.history.x))
    np.testing.assert_array_equal(asked[0], np.asarray(s.obs.X[:N_INIT]))
    np.testing.assert_array_equal(np.asarray(s.obs.X[N_INIT:]).reshape(STEPS, 2, 2), asked_steps)
    j = np.argmin(((asked_steps.reshape(-1, 1, 2) - C[None]) ** 2).sum(-1), axis=1)
    expect = truth[j].reshape(STEPS, 2) + 0.01 * np.arange(2)
    np.testing.assert_allclose(np.asarray(s.history.y), expect, rtol=1e-6)


def test_record_stores_only_the_decision(sim, fixed_cfg):
    """``record`` has no way to take a point: it stores decision.x whatever value it is given."""
    s = init_jit(jax.random.key(1), fixed_cfg, sim, N_INIT, num_steps=STEPS)
    d = decide_jit(s, fixed_cfg, sim)
    s2 = record(s, fixed_cfg, d, jnp.array([0.5]), sim)
    np.testing.assert_array_equal(np.asarray(s2.obs.X[N_INIT]), np.asarray(d.x[0]))
    np.testing.assert_array_equal(np.asarray(s2.history.x[0]), np.asarray(d.x))
    with pytest.raises(ValueError):
        record(s, fixed_cfg, d, jnp.array([0.5, 0.7]), sim)  # more values than chosen points


def test_fixed_mode_rank1_cache_equals_refit(dtype):
    prob = ThreeGaussians(noise=0.05, size=SIZE, dtype=dtype)
    fixed_cfg = make_config(
        prob.candidates, acquisition=["ucb", "maxvar"], acq_kwargs=[{"beta": 4.0}, None],
        mode="fixed",
    )  # fmt: skip
    s0 = init_jit(jax.random.key(2), fixed_cfg, prob, N_INIT, num_steps=STEPS)
    s = s0
    for _ in range(STEPS):
        s = step_jit(s, fixed_cfg, prob)
    for k in s0.model.params:  # hyperparameters held
        np.testing.assert_array_equal(np.asarray(s.model.params[k]), np.asarray(s0.model.params[k]))
    X, y = real(s)
    X0, y0 = real(s0)
    mu, sd = float(s0.model.scaler.shift), float(s0.model.scaler.scale)  # frozen at init
    np.testing.assert_allclose([mu, sd], [y0.mean(), y0.std()], rtol=1e-5)
    # reference: exact posterior on all points with the frozen standardisation
    ys = (y - mu) / sd
    # the state's cache holds the points up to the last decision; one more update adds the
    # last step's measurements
    model = fixed_cfg.surrogate.update(s.model, s.obs, jax.random.key(0))
    ref_mean, ref_var = np_gp(s.model.params, X, ys, prob.candidates, default_jitter(dtype))
    # a Cholesky-based computation on a well-conditioned 9x9 system (tols scale 100 in float32
    # for the O(N) rank-1 extensions against one direct solve; in float64 the difference is
    # rounding only)
    tol = tols(dtype, scale=100.0 if dtype == jnp.float32 else 1e3)
    np.testing.assert_allclose(model.cache.mean[0], ref_mean, **tol)
    np.testing.assert_allclose(model.cache.var[0], ref_var, **tol)


def test_fixed_mode_step_has_no_refactorisation(sim, fixed_cfg, map_run):
    """Held hyperparameters: the step's program contains no Cholesky (rank-1 updates only)."""
    s = init_jit(jax.random.key(1), fixed_cfg, sim, N_INIT, num_steps=STEPS)
    jaxpr_fixed = str(jax.make_jaxpr(lambda st: step(st, fixed_cfg, sim))(s))
    assert "cholesky" not in jaxpr_fixed
    cfg, states = map_run
    jaxpr_map = str(jax.make_jaxpr(lambda st: step(st, cfg, sim))(states[0]))
    assert "cholesky" in jaxpr_map


def test_policy_switches_without_recompiling(sim, fixed_cfg):
    s = init_jit(jax.random.key(4), fixed_cfg, sim, N_INIT, num_steps=STEPS)
    d0 = decide_jit(s, fixed_cfg, sim)
    s1 = eqx.tree_at(lambda t: t.policy.rule, s, jnp.ones((), jnp.int32))
    with count_compilations() as log:
        d1 = decide_jit(s1, fixed_cfg, sim)
    assert len(log) == 0
    var = np.where(np.asarray(s.measured), -np.inf, np.asarray(d1.pred.var[0]))
    assert int(d1.index[0]) == int(np.argmax(var))
    m, v = np.asarray(d0.pred.mean[0]), np.asarray(d0.pred.var[0])
    ucb = np.where(np.asarray(s.measured), -np.inf, m + 2 * np.sqrt(v))
    assert int(d0.index[0]) == int(np.argmax(ucb))


def test_batch_exclusion_radius(sim):
    cfg = make_config(sim.candidates, acquisition="ucb", mode="fixed", q=4, exclusion_radius=0.3)
    s = init_jit(jax.random.key(5), cfg, sim, N_INIT, num_steps=1)
    d = decide_jit(s, cfg, sim)
    C = np.asarray(sim.candidates)
    scores = np.asarray(d.scores).copy()
    for i in np.asarray(d.index):  # greedy NumPy replay
        j = int(np.argmax(scores))
        assert i == j
        scores[((C - C[j]) ** 2).sum(1) < 0.3**2] = -np.inf
    P = C[np.asarray(d.index)]
    dist = np.sqrt(((P[:, None] - P[None]) ** 2).sum(-1))
    assert dist[np.triu_indices(4, 1)].min() >= 0.3


def test_minimisation_problem_flips_sign(sim):
    class Valley(Problem):
        candidates: jax.Array
        maximize: bool = eqx.field(static=True, default=False)

        def measure_batch(self, key, X):
            return -jax.vmap(sim.value)(X)

    prob = Valley(sim.candidates)
    cfg = make_config(sim.candidates, acquisition="ucb", mode="fixed")
    s = init_jit(jax.random.key(6), cfg, prob, N_INIT, num_steps=1)
    d = decide_jit(s, cfg, prob)
    m, v = np.asarray(d.pred.mean[0]), np.asarray(d.pred.var[0])
    lcb = np.where(np.asarray(s.measured), -np.inf, -m + 2 * np.sqrt(v))
    assert int(d.index[0]) == int(np.argmax(lcb))
    assert float(np.asarray(d.pred.mean).max()) <= 0.05  # predictions stay in original units


def test_state_is_a_fixed_shape_pytree(map_run):
    _, states = map_run
    shapes = [jax.tree_util.tree_map(jnp.shape, s) for s in states]
    assert all(sh == shapes[0] for sh in shapes)
    assert isinstance(states[-1], CampaignState)
    assert int(states[-1].step) == STEPS and int(states[-1].obs.count) == N_INIT + STEPS


def test_bad_input_is_refused(sim):
    with pytest.raises(ValueError, match="mode"):
        make_config(sim.candidates, mode="bogus")
    with pytest.raises(ValueError, match="unknown campaign option"):
        make_config(sim.candidates, chunksize=10)
    with pytest.raises(ValueError, match="unknown acquisition"):
        make_config(sim.candidates, acquisition="nope")
    with pytest.raises(ValueError, match="q must"):
        make_config(sim.candidates, q=0)
    with pytest.raises(ValueError, match="surrogate or the candidates"):
        make_config()
    cfg = make_config(sim.candidates, mode="map")
    with pytest.raises(ValueError, match="X0"):
        init(cfg, sim, np.zeros((3, 3)), np.zeros(3), num_steps=2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="num_init"):
        init_random(jax.random.key(0), cfg, sim, 0, num_steps=2)
    with pytest.raises(ValueError, match="NaN"):
        init(
            cfg, sim, np.zeros((2, 2)), np.array([0.0, np.nan]), num_steps=2, key=jax.random.key(0)
        )


def test_believer_batch_matches_numpy_fantasy(sim):
    """Kriging believer, q=2: the second pick is the UCB argmax after adding the first pick
    with its predicted mean as a fantasy observation (independent NumPy GP)."""
    cfg = make_config(sim.candidates, acquisition="ucb", mode="fixed", q=2, batch="believer")
    s = init_jit(jax.random.key(7), cfg, sim, N_INIT, num_steps=1)
    d = decide_jit(s, cfg, sim)
    X, y = real(s)
    mu, sd = float(s.model.scaler.shift), float(s.model.scaler.scale)
    ys = (y - mu) / sd
    C = np.asarray(sim.candidates)
    jit = default_jitter(jnp.float32)
    m, v = np_gp(s.model.params, X, ys, C, jit)
    measured = np.asarray(s.measured)
    ucb = np.where(measured, -np.inf, m * sd + mu + 2 * np.sqrt(v) * sd)
    i0 = int(np.argmax(ucb))
    assert int(d.index[0]) == i0
    m2, v2 = np_gp(s.model.params, np.vstack([X, C[i0]]), np.append(ys, m[i0]), C, jit)
    ucb2 = m2 * sd + mu + 2 * np.sqrt(v2) * sd
    ucb2[measured] = -np.inf
    ucb2[i0] = -np.inf
    assert int(d.index[1]) == int(np.argmax(ucb2))
    np.testing.assert_allclose(float(d.acq[1]), ucb2.max(), rtol=1e-3, atol=1e-3)
