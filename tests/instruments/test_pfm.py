"""PFM/BEPS twin: loops against an independent erf formula, the phase-field step, unbiased loop
area with the predicted spread, and the physics link (walls switch at lower fields)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

from jaxscope.instruments import PFMTwin
from jaxscope.instruments.pfm import beps_waveform, phase_field_quench


@pytest.fixture(scope="module")
def sim():
    return PFMTwin.create(jax.random.key(0), size=48, window=8, noise=0.05)


def _pixels(sim):
    return np.asarray(sim.candidates).astype(int)


def test_waveform_is_the_beps_triangle():
    v, branch = map(np.asarray, beps_waveform())
    assert v.shape == (64,)
    np.testing.assert_allclose(v[[0, 8, 16, 32, 48, 56]], [0, 0.5, 1, 0, -1, -0.5], atol=1e-7)
    np.testing.assert_allclose(np.abs(np.diff(np.r_[v, v[0]])), 1 / 16, atol=1e-6)
    np.testing.assert_array_equal(branch, (np.arange(64) >= 16) & (np.arange(64) < 48))


def test_loops_match_the_nine_parameter_formula(sim):
    v, branch = map(np.asarray, beps_waveform())
    clean = eqx.filter_jit(lambda s, X: jax.vmap(s.clean_spectrum)(X))
    X = sim.candidates[::300]
    S = np.asarray(clean(sim, X))
    for x, (on, off) in zip(np.asarray(X).astype(int), S, strict=True):
        a0, a1, a2, a3, a4, b0, b1, b2, b3 = np.asarray(sim.loop_params[x[0], x[1]], np.float64)
        vc = np.where(branch == 0, a2, a3)
        lo, hi = np.where(branch == 0, b0, b2), np.where(branch == 0, b1, b3)
        g = 0.5 * (hi - lo) * (erf(1000 * (v - vc)) + 1) + lo
        y = (g * erf((v - vc) / g) + lo) / (lo + hi)
        np.testing.assert_allclose(on, a0 + a1 * y + a4 * v, atol=2e-5)
        np.testing.assert_allclose(off, float(sim.remanence) * (a0 + a1 * y), atol=2e-5)
        assert a2 > a3 and np.isclose(a0, -a1 / 2)


def test_truth_loop_area_is_the_shoelace_of_the_clean_off_field_loop(sim):
    v = np.asarray(sim.axis, np.float64)
    X = sim.candidates[::250]
    off = np.asarray(eqx.filter_jit(lambda s, X: jax.vmap(s.clean_spectrum)(X))(sim, X))[:, 1]
    area = 0.5 * np.abs(np.sum(v * np.roll(off, -1, 1) - np.roll(v, -1) * off, axis=1))
    np.testing.assert_allclose(sim.truth(X), area, rtol=1e-4)


def test_noisy_loop_area_is_unbiased_with_the_predicted_spread(sim):
    x = sim.candidates[500]
    keys = jax.random.split(jax.random.key(9), 3000)
    y = np.asarray(eqx.filter_jit(jax.vmap(lambda s, k: s.measure(k, x), (None, 0)))(sim, keys))
    v = np.asarray(sim.axis, np.float64)
    # shoelace is linear in r: A = sum_k c_k r_k with c_k = (v_{k-1} - v_{k+1}) / 2
    sd = 0.05 * np.sqrt(np.sum((0.5 * (np.roll(v, 1) - np.roll(v, -1))) ** 2))
    t = float(sim.truth(x[None])[0])
    assert abs(y.mean() - t) < 4 * sd / np.sqrt(y.size)
    assert abs(y.std() / sd - 1) < 0.06
    spec = eqx.filter_jit(lambda s, k: s.spectrum(k, x) - s.clean_spectrum(x))(sim, keys[0])
    assert abs(float(jnp.std(spec)) / 0.05 - 1) < 0.3  # the stated per-point noise


def test_walls_switch_at_lower_fields(sim):
    cw = PFMTwin.create(jax.random.key(0), size=48, window=8, scalarizer="coercive_width")
    width = np.asarray(cw.truth(cw.candidates))
    ij = _pixels(sim)
    rho = np.asarray(sim.wall_density)[ij[:, 0], ij[:, 1]]
    walls, inside = width[rho > 0.5], width[rho < 0.1]
    assert walls.size > 20 and inside.size > 20
    assert walls.mean() < 0.75 * inside.mean()
    # the scalarizer recovers the model's coercive width a2 - a3 from the clean loops
    lp = np.asarray(sim.loop_params)[ij[:, 0], ij[:, 1]]
    np.testing.assert_allclose(width, lp[:, 2] - lp[:, 3], atol=5e-3)
    # and saturation drops on walls; imprint follows the wall curvature
    assert lp[rho > 0.5, 1].mean() < lp[rho < 0.1, 1].mean()
    curv = np.asarray(sim.curvature)[ij[:, 0], ij[:, 1]]
    assert np.corrcoef(curv, lp[:, 2] + lp[:, 3])[0, 1] > 0.9


def test_phase_field_step_and_domains(sim):
    key = jax.random.key(2)
    p1 = np.asarray(phase_field_quench(key, 16, steps=1, coupling=0.5), np.float64)
    p0 = 0.1 * np.asarray(jax.random.normal(key, (2, 16, 16), jnp.float32), np.float64)
    k = 2 * np.pi * np.fft.fftfreq(16)
    force = p0 - p0**3 - 0.5 * p0 * p0[::-1] ** 2
    want = np.real(
        np.fft.ifft2(np.fft.fft2(p0 + 0.5 * force) / (1 + 0.5 * (k[:, None] ** 2 + k**2)))
    )
    np.testing.assert_allclose(p1, np.clip(want * np.sqrt(1.5), -1, 1), atol=1e-5)
    P = np.asarray(sim.polarization)
    assert np.mean(np.abs(P) > 0.9) > 0.6  # saturated domains, narrow walls
    variants = {(a, b) for a, b in (np.sign(P[np.all(np.abs(P) > 0.9, -1)])).astype(int).tolist()}
    assert len(variants) >= 3
    grf = PFMTwin.create(jax.random.key(0), size=48, window=8, method="grf")
    assert np.mean(np.abs(np.asarray(grf.polarization)) > 0.9) > 0.6
    with pytest.raises(ValueError, match="unknown method"):
        PFMTwin.create(jax.random.key(0), size=48, method="ising")
    with pytest.raises(ValueError, match="unknown physics"):
        PFMTwin.create(jax.random.key(0), size=48, vc=1.0)
