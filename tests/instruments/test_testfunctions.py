"""Test functions: literature optima, independent reference implementations, simulator wrapper."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import rosen

from jaxscope.instruments import FUNCTIONS, SyntheticFunction

# Literature values (Surjanovic & Bingham, Virtual Library of Simulation Experiments; Jamil &
# Yang 2013), typed here independently of the module: (dim, minimum, minimisers, tolerance).
LITERATURE = {
    "branin": (2, 0.397887, [[-math.pi, 12.275], [math.pi, 2.275], [9.42478, 2.475]], 2e-6),
    "hartmann3": (3, -3.86278, [[0.114614, 0.555649, 0.852547]], 1e-5),
    "hartmann6": (
        6,
        -3.32237,
        [[0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]],
        1e-5,
    ),
    "ackley": (2, 0.0, [[0.0, 0.0]], 1e-12),
    "levy": (3, 0.0, [[1.0, 1.0, 1.0]], 1e-12),
    "rosenbrock": (4, 0.0, [[1.0, 1.0, 1.0, 1.0]], 1e-12),
    "shekel": (4, -10.5364, [[4.0, 4.0, 4.0, 4.0]], 2e-3),
}
BOUNDS = {  # literature search domains
    "branin": [[-5, 10], [0, 15]],
    "hartmann3": [[0, 1]] * 3,
    "hartmann6": [[0, 1]] * 6,
    "ackley": [[-32.768, 32.768]] * 2,
    "levy": [[-10, 10]] * 3,
    "rosenbrock": [[-5, 10]] * 4,
    "shekel": [[0, 10]] * 4,
}


def test_every_function_is_covered():
    assert set(LITERATURE) == set(FUNCTIONS)


@pytest.mark.parametrize("name", sorted(LITERATURE))
def test_value_at_literature_optimizer(name, x64):
    dim, fmin, xs, tol = LITERATURE[name]
    fn = jax.jit(FUNCTIONS[name].fn)
    for x in xs:
        np.testing.assert_allclose(float(fn(jnp.asarray(x))), fmin, atol=tol)
    # the module's stated optimum and box agree with the literature
    assert abs(FUNCTIONS[name].optimum - fmin) <= tol
    np.testing.assert_allclose(FUNCTIONS[name].bounds(dim), BOUNDS[name])
    for x in np.asarray(FUNCTIONS[name].optimizers(dim)):
        np.testing.assert_allclose(float(fn(jnp.asarray(x))), FUNCTIONS[name].optimum, atol=1e-9)


@pytest.mark.parametrize("name", sorted(LITERATURE))
def test_optimum_is_a_minimum(name, x64):
    """Optimum <= the function at 4000 random points; the gradient vanishes at the minimiser."""
    dim, fmin, _, _ = LITERATURE[name]
    spec = FUNCTIONS[name]
    b = np.asarray(BOUNDS[name], float)
    X = b[:, 0] + (b[:, 1] - b[:, 0]) * np.random.default_rng(0).random((4000, dim))
    vals = np.asarray(jax.jit(jax.vmap(spec.fn))(jnp.asarray(X)))
    assert vals.min() >= spec.optimum - 1e-9
    grad = jax.grad(spec.fn)(jnp.asarray(spec.optimizers(dim)[0]))
    assert np.abs(np.asarray(grad)).max() < 2e-3


# --- independent reference implementations at random points --------------------------------------
def _ackley_ref(x):
    n = len(x)
    s1 = sum(v * v for v in x) / n
    s2 = sum(math.cos(2 * math.pi * v) for v in x) / n
    return -20 * math.exp(-0.2 * math.sqrt(s1)) - math.exp(s2) + 20 + math.e


def _levy_ref(x):
    w = [1 + (v - 1) / 4 for v in x]
    total = math.sin(math.pi * w[0]) ** 2
    for wi in w[:-1]:
        total += (wi - 1) ** 2 * (1 + 10 * math.sin(math.pi * wi + 1) ** 2)
    return total + (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)


def _branin_ref(x):
    x1, x2 = x
    return (
        (x2 - 5.1 * x1**2 / (4 * math.pi**2) + 5 * x1 / math.pi - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1)
        + 10
    )


@pytest.mark.parametrize(
    "name, ref, dim",
    [
        ("ackley", _ackley_ref, 5),
        ("levy", _levy_ref, 4),
        ("rosenbrock", rosen, 5),
        ("branin", _branin_ref, 2),
    ],
)
def test_against_reference_implementation(name, ref, dim, x64):
    b = np.asarray(FUNCTIONS[name].bounds(dim))
    X = b[:, 0] + (b[:, 1] - b[:, 0]) * np.random.default_rng(1).random((20, dim))
    got = np.asarray(jax.vmap(FUNCTIONS[name].fn)(jnp.asarray(X)))
    np.testing.assert_allclose(
        got, [ref(list(x)) if name != "rosenbrock" else ref(x) for x in X], rtol=1e-12
    )


# --- the Simulator wrapper -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["branin", "hartmann6", "shekel", "levy"])
def test_simulator_candidates_hold_optimum(name, dtype):
    sim = SyntheticFunction(name, n=256, noise=0.0)
    assert sim.candidates.dtype == dtype and not sim.maximize
    truth = sim.truth(sim.candidates)
    rtol = 1e-5 if dtype == jnp.float32 else 1e-9
    np.testing.assert_allclose(
        float(truth.min()), LITERATURE[name][1], atol=LITERATURE[name][3] + rtol * 10
    )
    np.testing.assert_allclose(float(truth.min()), float(sim.optimum), rtol=rtol, atol=rtol)
    b = np.asarray(sim.bounds)
    X = np.asarray(sim.candidates)
    assert np.all((X >= b[:, 0] - 1e-6) & (X <= b[:, 1] + 1e-6))
    mx = sim.as_maximization()
    assert mx.maximize and float(mx.optimum) == -float(sim.optimum)
    np.testing.assert_array_equal(mx.truth(sim.candidates), -truth)
    np.testing.assert_allclose(mx.regret(-truth.min()), 0.0, atol=10 * rtol)
    assert mx.as_maximization() is mx


def test_noise_and_negated_measurements():
    sim = SyntheticFunction("hartmann3", n=64, noise=0.1)
    x = sim.optimizers[0]
    keys = jax.random.split(jax.random.key(0), 4000)
    y = jax.vmap(sim.measure, in_axes=(0, None))(keys, x)
    assert abs(float(jnp.mean(y)) - sim.known_optimum) < 4 * 0.1 / np.sqrt(4000)
    assert abs(float(jnp.std(y)) - 0.1) < 0.005
    neg = jax.vmap(sim.as_maximization().measure, in_axes=(0, None))(keys, x)
    np.testing.assert_array_equal(neg, -y)


def test_grid_candidates_and_errors():
    sim = SyntheticFunction("branin", grid=11, include_optimizer=False)
    assert sim.candidates.shape == (121, 2)
    np.testing.assert_allclose(sim.candidates[-1], [10.0, 15.0])
    with pytest.raises(ValueError, match="unknown test function"):
        SyntheticFunction("booth")
    with pytest.raises(ValueError, match="6-dimensional"):
        SyntheticFunction("hartmann6", dim=3)
    with pytest.raises(ValueError, match="2-D"):
        SyntheticFunction("hartmann3", grid=5)
    assert SyntheticFunction("ackley", n=8, dim=5).candidates.shape == (8, 5)
