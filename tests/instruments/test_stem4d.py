"""4D-STEM twin: the COM of the noise-free pattern is the imposed shift, the shift is the scaled
potential gradient, Poisson COM noise has the predicted spread."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxscope.instruments import DiffractionTwin
from jaxscope.instruments.stem4d import disk_pattern
from jaxscope.scalarizers import com_shift


@pytest.fixture(scope="module")
def sim():
    return DiffractionTwin.create(jax.random.key(2), size=40, window=8, noise=0.02)


def test_com_of_clean_pattern_is_the_imposed_shift(sim):
    X = sim.candidates[::7]
    ij = np.asarray(X).astype(int)
    com = eqx.filter_jit(lambda s, X: jax.vmap(lambda x: com_shift(s.clean_spectrum(x)))(X))
    shift = np.asarray(sim.shift)[ij[:, 0], ij[:, 1]]
    np.testing.assert_allclose(com(sim, X), shift, atol=2e-3)
    np.testing.assert_allclose(sim.truth(X), np.linalg.norm(shift, axis=1), atol=2e-3)
    assert np.linalg.norm(shift, axis=1).max() > 0.5


def test_shift_is_the_scaled_potential_gradient(sim):
    g = np.stack(np.gradient(np.asarray(sim.potential, np.float64)), -1)
    want = 2.0 * g / np.linalg.norm(g, axis=-1).max()
    np.testing.assert_allclose(sim.shift, want, atol=1e-5)
    # the particles' potential pulls the beam towards their centres: the shift points inwards
    P = sim.particles
    c, r = np.asarray(P.centres[0]), float(P.radius[0])
    y = np.round(c + [r, 0]).astype(int)
    assert np.asarray(sim.shift)[y[0], y[1], 0] < 0


def test_poisson_com_noise_has_the_predicted_spread(sim):
    x = sim.candidates[300]
    keys = jax.random.split(jax.random.key(4), 800)
    com = eqx.filter_jit(jax.vmap(lambda s, k: com_shift(s.spectrum(k, x)), (None, 0)))(sim, keys)
    com = np.asarray(com)
    p = np.asarray(sim.clean_spectrum(x), np.float64)
    q = np.arange(32) - 15.5
    mu = np.array([(p.sum(1) * q).sum(), (p.sum(0) * q).sum()])
    var = np.array([(p.sum(1) * (q - mu[0]) ** 2).sum(), (p.sum(0) * (q - mu[1]) ** 2).sum()])
    sd = 0.02 * np.sqrt(var)  # delta method: Var(COM) = <(q - mu)^2> / N, N = 1 / nu^2
    np.testing.assert_allclose(com.mean(0), mu, atol=4 * sd.max() / np.sqrt(800) + 1e-3)
    np.testing.assert_allclose(com.std(0), sd, rtol=0.12)
    np.testing.assert_allclose(sd, 0.02 * 6.0 / 2, rtol=0.1)  # a uniform disk: nu r / 2


def test_disk_pattern_and_errors():
    p = np.asarray(disk_pattern(jnp.array([1.0, -0.5]), 32, 6.0, 0.5))
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-5)
    np.testing.assert_allclose((p > p.max() / 2).sum(), np.pi * 36, rtol=0.05)
    with pytest.raises(ValueError, match="leaves the 16-px detector"):
        DiffractionTwin.create(jax.random.key(0), size=32, detector=16)
