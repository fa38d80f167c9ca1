"""Simulators (toy, sparse scan), the host Instrument adapter and the JAX callback adapter."""

from __future__ import annotations

import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import count_compilations

from jaxscope.instruments import (
    Instrument,
    InstrumentError,
    Simulator,
    SimulatorInstrument,
    SparseScanSimulator,
    SyntheticFunction,
    ThreeGaussians,
    as_callback,
    check_points,
    grid_points,
    make_simulator,
    make_surface,
)


# --- three-Gaussian toy -------------------------------------------------------------------------
def _gpim_bump(i, j, x0, y0, fwhm):  # GPim's trial function, in pixel indices
    return np.exp(-4 * np.log(2) * ((i - x0) ** 2 + (j - y0) ** 2) / fwhm**2)


def test_three_gaussians_truth_and_maximum(dtype):
    sim = ThreeGaussians()
    i, j = np.meshgrid(np.arange(25.0), np.arange(25.0), indexing="ij")
    ref = (
        _gpim_bump(i, j, 5, 10, 4.5)
        + 0.8 * _gpim_bump(i, j, 17, 18, 3.5)
        + 0.6 * _gpim_bump(i, j, 18, 5, 5.0)
    )
    img = np.asarray(sim.image())
    assert img.dtype == dtype
    rtol = 2e-5 if dtype == jnp.float32 else 1e-12
    np.testing.assert_allclose(img, ref, rtol=rtol, atol=rtol * 1e-3)
    assert np.unravel_index(img.argmax(), img.shape) == (5, 10)
    np.testing.assert_allclose(float(sim.optimum), ref.max(), rtol=rtol)
    np.testing.assert_allclose(sim.optimizer, [5 / 24, 10 / 24], rtol=rtol)
    # the decoys are local maxima at their pixels
    assert img[17, 18] == img[16:19, 17:20].max() and img[18, 5] == img[17:20, 4:7].max()


def test_three_gaussians_noise_and_cost():
    sim = ThreeGaussians(noise=0.05, dwell=2.0, speed=0.5)
    x = sim.candidates[135]
    y = jax.vmap(sim.measure, in_axes=(0, None))(jax.random.split(jax.random.key(0), 4000), x)
    assert abs(float(y.std()) - 0.05) < 0.003
    assert abs(float(y.mean()) - float(sim.truth(x[None])[0])) < 4 * 0.05 / math.sqrt(4000)
    a, b = jnp.array([0.1, 0.2]), jnp.array([0.4, 0.6])
    np.testing.assert_allclose(sim.cost(a, b), 2.0 + 0.5 / 0.5, rtol=1e-6)


# --- sparse scan ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scan_sim():
    return SparseScanSimulator.create(jax.random.key(3), size=16, noise=0.1, dwell=0.2, speed=2.0)


def test_sparse_scan_truth_is_the_surface(scan_sim):
    img = scan_sim.image
    ref = jax.jit(make_surface, static_argnums=1)(jax.random.key(3), 16)
    np.testing.assert_allclose(img, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(scan_sim.candidates, grid_points(16))
    np.testing.assert_array_equal(scan_sim.truth(scan_sim.candidates), img.ravel())
    # any point inside pixel (r, c) reads that pixel
    rng = np.random.default_rng(0)
    rc = rng.integers(0, 16, (50, 2))
    X = (rc + rng.uniform(0.01, 0.99, (50, 2))) / 16
    np.testing.assert_array_equal(
        scan_sim.truth(jnp.asarray(X, img.dtype)), img[rc[:, 0], rc[:, 1]]
    )
    assert float(scan_sim.optimum) == float(img.max())


def test_sparse_scan_noise_and_travel_cost(scan_sim):
    x = scan_sim.candidates[37]
    y = jax.vmap(scan_sim.measure, in_axes=(0, None))(jax.random.split(jax.random.key(1), 4000), x)
    assert abs(float(y.std()) - 0.1) < 0.006
    assert abs(float(y.mean()) - float(scan_sim.image[2, 5])) < 4 * 0.1 / math.sqrt(4000)
    a, b = jnp.array([0.1, 0.1]), jnp.array([0.4, 0.5])
    np.testing.assert_allclose(scan_sim.cost(a, b), 0.2 + 0.5 / 2.0, rtol=1e-6)
    with pytest.raises(ValueError, match="square"):
        SparseScanSimulator(jnp.zeros((8, 9)))
    with pytest.raises(ValueError, match="NaN"):
        SparseScanSimulator(jnp.full((8, 8), jnp.nan))


# --- every simulator: pure, deterministic given a key, vmappable -----------------------------------
SMALL = {
    "three_gaussians": {"noise": 0.1},
    "sparse_scan": {"size": 8, "noise": 0.1},
    "ising": {"L": 4, "n_sweeps": 10, "n_burn": 2, "grid": (3, 2), "truth_chains": 2},
    "branin": {"n": 16, "noise": 0.1},
    "hartmann6": {"n": 16, "noise": 0.1},
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_simulators_are_pure_and_vmappable(name):
    sim = make_simulator(name, **SMALL[name])
    assert isinstance(sim, Simulator) and sim.candidates.shape[1] == sim.dim == sim.bounds.shape[0]
    X = sim.candidates[:4]
    keys = jax.random.split(jax.random.key(7), 3)
    many = eqx.filter_jit(lambda s, ks, X: jax.vmap(lambda k: s.measure_batch(k, X))(ks))
    one = eqx.filter_jit(lambda s, k, x: s.measure(k, x))
    y = many(sim, keys, X)  # vmapped over campaigns' keys and, inside, over points
    loop = [[one(sim, jax.random.fold_in(k, i), X[i]) for i in range(4)] for k in keys[:2]]
    np.testing.assert_allclose(y[:2], loop, rtol=1e-6)
    np.testing.assert_array_equal(many(sim, keys, X), y)  # deterministic given the keys
    assert not np.allclose(y[0], y[1]) and not np.allclose(y[1], y[2])
    c = sim.cost(X[0], X[1])
    assert c.shape == () and float(c) > 0


# --- host-side validation -------------------------------------------------------------------------
def test_check_points_messages():
    b = np.array([[0.0, 1.0], [-2.0, 2.0]])
    np.testing.assert_array_equal(check_points([[0.5, 1.0]], b), [[0.5, 1.0]])
    with pytest.raises(ValueError, match=r"shape \(q, d\)"):
        check_points(np.zeros(3), b)
    with pytest.raises(ValueError, match="2 coordinates"):
        check_points(np.zeros((2, 3)), b)
    with pytest.raises(ValueError, match=r"X\[1, 0\] is nan"):
        check_points([[0.1, 0.0], [np.nan, 0.0]], b)
    with pytest.raises(
        ValueError, match=r"X\[0, 1\] = 2.5 is outside the bounds \[-2, 2\] of coordinate 1"
    ):
        check_points([[0.1, 2.5]], b)
    check_points(np.float32([[1.0 + 1e-7, 2.0]]), b)  # float32 rounding of an edge point passes


# --- SimulatorInstrument ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy():
    return ThreeGaussians(noise=0.1)


def test_simulator_instrument_is_deterministic_and_counts(toy):
    inst = SimulatorInstrument(toy, seed=5)
    assert isinstance(inst, Instrument) and inst.dim == 2
    X = np.asarray(toy.candidates)[[0, 135, 600]]
    y1 = inst.measure(X)
    y2 = inst.measure(X[:2])
    assert (inst.counter, inst.calls) == (5, 2)
    base = jax.random.key(5)
    expect = [
        toy.measure(jax.random.fold_in(base, n), jnp.asarray(x)) for n, x in enumerate([*X, *X[:2]])
    ]
    np.testing.assert_allclose(np.concatenate([y1, y2]), expect, rtol=1e-6)
    assert not np.allclose(y1[:2], y2)  # a repeated point gets fresh noise
    np.testing.assert_allclose(y1, toy.measure_batch(base, jnp.asarray(X)), rtol=1e-6)
    # resuming from the counter reproduces the continuation
    resumed = SimulatorInstrument(toy, seed=5, start=3)
    np.testing.assert_array_equal(resumed.measure(X[:2]), y2)
    assert [h[0].tolist() for h in inst.history] == [X.tolist(), X[:2].tolist()]
    with pytest.raises(ValueError, match="outside the bounds"):
        inst.measure(np.array([[0.5, 1.5]]))
    assert inst.calls == 2  # a rejected request never reached the instrument


def test_failures_are_deterministic_and_retry_is_lossless(toy):
    X = np.asarray(toy.candidates[:6])
    clean = SimulatorInstrument(toy, seed=1)
    want = [clean.measure(X[i : i + 2]) for i in range(0, 6, 2)]
    flaky = SimulatorInstrument(toy, seed=1, fail_calls={1, 2})
    got, failures = [], 0
    for i in range(0, 6, 2):
        while True:
            try:
                got.append(flaky.measure(X[i : i + 2]))
                break
            except InstrumentError as err:
                assert "call" in str(err)
                failures += 1
    assert failures == 2 and flaky.calls == 5 and flaky.counter == 6
    np.testing.assert_array_equal(np.concatenate(got), np.concatenate(want))
    # random failures: reproducible given the seed, at about the requested rate
    outcomes = []
    for _ in range(2):
        inst = SimulatorInstrument(toy, seed=9, fail_prob=0.3, record=False)
        row = []
        for _ in range(200):
            try:
                inst.measure(X[:1])
                row.append(False)
            except InstrumentError:
                row.append(True)
        outcomes.append(row)
    assert outcomes[0] == outcomes[1] and 0.2 < np.mean(outcomes[0]) < 0.4


def test_delay(toy):
    inst = SimulatorInstrument(toy, seed=0, delay=0.05)
    inst.measure(np.asarray(toy.candidates[:1]))  # compile outside the timed call
    t = time.perf_counter()
    inst.measure(np.asarray(toy.candidates[:1]))
    assert time.perf_counter() - t >= 0.05


# --- as_callback ----------------------------------------------------------------------------------
@pytest.mark.parametrize("ordered", [False, True])
def test_callback_in_jit_and_scan_sees_exactly_the_points(toy, ordered):
    inst = SimulatorInstrument(toy, seed=2)
    measure = as_callback(inst, ordered=ordered)
    steps = jnp.asarray(toy.candidates[jnp.array([[3, 140], [600, 7], [135, 135], [42, 500]])])

    @jax.jit
    def campaign(points):
        def body(total, X):
            y = measure(X)
            return total + jnp.sum(y), y

        return jax.lax.scan(body, jnp.zeros(()), points)

    total, ys = campaign(steps)
    steps2 = steps[::-1] + 0.0
    with count_compilations() as log:
        campaign(steps2)
    assert len(log) == 0  # the scan with its host callback was compiled once, for both runs
    assert inst.calls == 8 and len(inst.history) == 8  # one host call per step, two runs
    for s in range(4):
        np.testing.assert_array_equal(inst.history[s][0], np.asarray(steps[s]))
        np.testing.assert_array_equal(inst.history[4 + s][0], np.asarray(steps2[s]))
    direct = SimulatorInstrument(toy, seed=2)
    want = np.stack([direct.measure(np.asarray(X)) for X in steps])
    np.testing.assert_array_equal(np.asarray(ys), want)
    np.testing.assert_allclose(float(total), want.sum(), rtol=1e-6)


def test_callback_dtype_and_vmap(toy):
    inst = SimulatorInstrument(toy, seed=3)
    measure = as_callback(inst)
    with jax.enable_x64(True):
        y = jax.jit(measure)(jnp.asarray(toy.candidates[:3], jnp.float64))
        assert y.dtype == jnp.float64
    batch = jnp.stack([toy.candidates[:2], toy.candidates[10:12], toy.candidates[20:22]])
    ys = jax.jit(jax.vmap(measure))(batch)  # vmap_method="sequential": one host call each
    assert ys.shape == (3, 2) and inst.calls == 4
    for b in range(3):
        np.testing.assert_array_equal(inst.history[1 + b][0], np.asarray(batch[b]))
        np.testing.assert_array_equal(np.asarray(ys[b]), inst.history[1 + b][1])


class _BadInstrument(Instrument):
    def __init__(self, answer):
        self.dim = 2
        self.answer = answer

    def measure(self, X):
        return self.answer(X)


def test_callback_rejects_bad_points_and_answers(toy):
    measure = as_callback(SimulatorInstrument(toy, seed=0))
    with pytest.raises(ValueError, match=r"shape \(q, 2\)"):
        jax.jit(measure)(jnp.zeros((3, 3)))
    with pytest.raises(jax.errors.JaxRuntimeError, match="outside the bounds"):
        jax.jit(measure)(jnp.array([[0.5, 1.7]]))
    nan = as_callback(_BadInstrument(lambda X: np.where(np.arange(len(X)) == 1, np.nan, 0.0)))
    with pytest.raises(jax.errors.JaxRuntimeError, match="NaN or inf"):
        jax.jit(nan)(jnp.zeros((3, 2)))
    short = as_callback(_BadInstrument(lambda X: np.zeros(len(X) - 1)))
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"returned shape \(2,\) for 3 points"):
        jax.jit(short)(jnp.zeros((3, 2)))
    with pytest.raises(TypeError, match="Instrument"):  # ours, or the runtime type checker
        as_callback(object())


def test_negated_wrapper_and_make_simulator():
    sim = SyntheticFunction("branin", n=32, noise=0.0)
    neg = sim.as_maximization()
    assert neg.maximize and neg.name == "-branin" and neg.dim == 2
    np.testing.assert_array_equal(neg.candidates, sim.candidates)
    np.testing.assert_array_equal(neg.optimizers, sim.optimizers)  # attributes pass through
    np.testing.assert_allclose(neg.cost(sim.candidates[0], sim.candidates[1]), 1.0)
    assert jax.tree_util.tree_structure(neg) == jax.tree_util.tree_structure(sim.as_maximization())
    with pytest.raises(ValueError, match="unknown problem"):
        make_simulator("nope")
