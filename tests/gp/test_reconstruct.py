"""Sparse-scan reconstruction: accuracy and ±2σ coverage recomputed in NumPy, the measurement
model, posterior samples consistent with the predictive, no recompilation on a new seed."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import count_compilations

from jaxscope.gp.reconstruct import reconstruct, reconstruction_metrics
from jaxscope.instruments.surface import make_surface

SIZE, FRACTION, NOISE = 32, 0.3, 0.05


@pytest.fixture(scope="module")
def surface():
    return make_surface(jax.random.key(0), SIZE)


@pytest.fixture(scope="module")
def rec(surface):
    return reconstruct(jax.random.key(1), surface, FRACTION, noise_std=NOISE, num_samples=32)


def test_accuracy_and_coverage_recomputed_in_numpy(rec, surface):
    truth = np.asarray(surface, np.float64)
    mean = np.asarray(rec.mean, np.float64)
    std = np.asarray(rec.std, np.float64)
    rmse = np.sqrt(np.mean((mean - truth) ** 2))
    coverage = np.mean(np.abs(truth - mean) <= 2 * std)
    assert rmse < 0.25 * truth.std(), (rmse, truth.std())
    assert 0.8 <= coverage <= 1.0, coverage
    m = rec.metrics
    np.testing.assert_allclose(m["rmse"], rmse, rtol=1e-4)
    np.testing.assert_allclose(m["nrmse"], rmse / truth.std(), rtol=1e-4)
    np.testing.assert_allclose(m["calibration"], coverage, atol=1.5 / truth.size)
    unm = np.ones(truth.size, bool)
    unm[np.asarray(rec.indices)] = False
    unm = unm.reshape(truth.shape)
    np.testing.assert_allclose(
        m["rmse_unmeasured"], np.sqrt(np.mean((mean - truth)[unm] ** 2)), rtol=1e-4
    )
    # σ is neither uselessly wide nor overconfident on average: mean z² near 1
    z2 = np.mean(((mean - truth) / std) ** 2)
    np.testing.assert_allclose(m["mean_z2"], z2, rtol=1e-3)
    assert 0.4 < z2 < 2.5


def test_measurement_model(rec, surface):
    idx = np.asarray(rec.indices)
    n = int(round(FRACTION * SIZE * SIZE))
    assert idx.shape == (n,) and len(np.unique(idx)) == n
    assert idx.min() >= 0 and idx.max() < SIZE * SIZE
    resid = np.asarray(rec.measured) - np.asarray(surface).ravel()[idx]
    assert abs(resid.std() / NOISE - 1) < 0.2  # 307 draws: ±4 % standard error
    assert abs(resid.mean()) < 4 * NOISE / np.sqrt(n)
    # the posterior mean passes within a few noise sds of every measurement
    at = np.asarray(rec.mean).ravel()[idx]
    assert np.sqrt(np.mean((at - np.asarray(rec.measured)) ** 2)) < 2 * NOISE


def test_posterior_samples_match_predictive(rec):
    s = np.asarray(rec.samples, np.float64)  # (32, size, size)
    mean, std = np.asarray(rec.mean, np.float64), np.asarray(rec.std, np.float64)
    assert s.shape == (32, SIZE, SIZE)
    # per-pixel z of the 32-sample mean is ~ N(0, 1); pixels are strongly correlated, so the
    # average of z² over the image scatters widely around 1, but a sample mean that is not the
    # predictive mean (e.g. an unconditioned prior draw) makes it hundreds
    z = (s.mean(0) - mean) / (std / np.sqrt(s.shape[0]))
    assert np.mean(z**2) < 2.5
    ratio = np.mean(s.var(0, ddof=1)) / np.mean(std**2)
    assert 0.8 < ratio < 1.25, ratio


def test_hyperparameters_are_sensible(rec):
    p = {k: float(v) for k, v in rec.params.items()}
    assert 0.02 < p["lengthscale"] < 0.5  # surface features span 2-10 pixels of 1/32
    assert p["noise"] < 0.3**2  # measurement noise 0.05², not the whole signal
    assert np.isfinite(float(rec.info.loss))


def test_new_seed_compiles_nothing(rec, surface):
    other = make_surface(jax.random.key(7), SIZE)
    with count_compilations() as log:
        r2 = reconstruct(jax.random.key(8), other, FRACTION, noise_std=NOISE, num_samples=32)
    assert len(log) == 0, log
    assert not np.array_equal(np.asarray(r2.indices), np.asarray(rec.indices))


def test_float64_surface_gives_float64_reconstruction(x64):
    h = make_surface(jax.random.key(2), 16, dtype=jnp.float64)
    r = reconstruct(jax.random.key(3), h, 0.5, noise_std=0.02, num_samples=2)
    assert r.mean.dtype == r.std.dtype == r.samples.dtype == jnp.float64
    truth, mean, std = (np.asarray(a) for a in (h, r.mean, r.std))
    assert np.sqrt(np.mean((mean - truth) ** 2)) < 0.35 * truth.std()
    assert 0.8 <= np.mean(np.abs(truth - mean) <= 2 * std) <= 1.0


def test_metrics_function_against_hand_computed_case():
    truth = jnp.zeros((4, 4))
    mean = truth.at[0, 0].set(3.0).at[1, 1].set(1.0)
    std = jnp.ones((4, 4))
    measured = jnp.zeros((4, 4), bool).at[0, 0].set(True)
    m = reconstruction_metrics(truth, mean, std, measured)
    np.testing.assert_allclose(float(m["rmse"]), np.sqrt(10 / 16), rtol=1e-6)
    np.testing.assert_allclose(float(m["calibration"]), 15 / 16)
    np.testing.assert_allclose(float(m["calibration_unmeasured"]), 15 / 15)
    np.testing.assert_allclose(float(m["rmse_unmeasured"]), np.sqrt(1 / 15), rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"surface": np.zeros((8, 9))}, "square"),
        ({"surface": np.full((8, 8), np.nan)}, "NaN"),
        ({"fraction": 0.0}, "fraction"),
        ({"fraction": 1.5}, "fraction"),
        ({"kernel": "bessel"}, "kernel"),
    ],
)
def test_bad_input_is_refused(kwargs, match):
    args = {"surface": np.zeros((8, 8)), "fraction": 0.5, "kernel": "matern32"} | kwargs
    with pytest.raises(ValueError, match=match):
        reconstruct(jax.random.key(0), args["surface"], args["fraction"], args["kernel"])
