"""Spectrum scalarizers against NumPy (window sums and trapezoid integrals), the guarded peak
ratio, and peak energies between samples (Gaussian, Lorentzian, an exact parabola on an uneven
grid)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_allclose

from jaxscope import scalarizers

# windows are traced arguments: one program per shape and dtype
window_sum = jax.jit(scalarizers.window_sum)
window_integral = jax.jit(scalarizers.window_integral)
peak_energy = jax.jit(scalarizers.peak_energy)
peak_ratio = jax.jit(scalarizers.peak_ratio)

E = np.arange(64) * 0.25  # exactly representable: window edges fall on samples


def spectra(shape, seed=0):
    return np.random.RandomState(seed).uniform(0.0, 1.0, shape + (E.size,))


def test_window_sum_and_integral_match_numpy(dtype):
    s = spectra((3, 2))
    lo, hi = 2.0, 7.25  # both ends are samples, and both count
    m = (E >= lo) & (E <= hi)
    assert m.sum() == 22
    e_, s_ = jnp.asarray(E, dtype), jnp.asarray(s, dtype)
    got = window_sum(e_, s_, lo, hi)
    assert got.shape == (3, 2)
    assert_allclose(got, s[..., m].sum(-1), scale=10)
    assert_allclose(
        window_integral(e_, s_, lo, hi), np.trapezoid(s[..., m], E[m], axis=-1), scale=10
    )
    # the plain (un-jitted) call, and an empty window
    assert_allclose(scalarizers.window_sum(e_, s_[0, 0], lo, hi), s[0, 0, m].sum(), scale=10)
    assert_allclose(window_sum(e_, s_, 20.0, 30.0), np.zeros((3, 2)))
    assert_allclose(window_integral(e_, s_, 3.0, 3.1), np.zeros((3, 2)))  # one sample: no interval


def test_window_integral_of_a_gaussian_on_an_uneven_grid(x64):
    """∫ N(1.3, 0.1²) over the whole grid is 1; trapezoid on a grid of uneven steps."""
    u = np.linspace(0.0, 1.0, 400)
    e = 3.0 * u**1.5  # ascending, steps from ~1e-4 to ~0.01
    s = np.exp(-0.5 * ((e - 1.3) / 0.1) ** 2) / (0.1 * np.sqrt(2 * np.pi))
    got = window_integral(jnp.asarray(e), jnp.asarray(s), 0.0, 3.0)
    np.testing.assert_allclose(got, np.trapezoid(s, e), rtol=1e-12)
    np.testing.assert_allclose(got, 1.0, rtol=1e-3)


def test_peak_ratio_matches_numpy_and_is_guarded(dtype):
    s = spectra((4,), seed=2)
    wa, wb = (1.0, 3.0), (10.0, 12.5)
    ma, mb = (E >= 1.0) & (E <= 3.0), (E >= 10.0) & (E <= 12.5)
    e_, s_ = jnp.asarray(E, dtype), jnp.asarray(s, dtype)
    assert_allclose(peak_ratio(e_, s_, wa, wb), s[:, ma].sum(-1) / s[:, mb].sum(-1), scale=10)
    # a zero (or sign-changed tiny) denominator gives the documented bound 1/rel_floor, not inf
    z = s.copy()
    z[0, mb] = 0.0
    z[1, mb] = 0.0
    z[1, mb.argmax()] = -1e-9
    z[2, ma | mb] = 0.0  # both windows empty: 0
    got = np.asarray(peak_ratio(e_, jnp.asarray(z, dtype), wa, wb))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got[:3], [1e6, -1e6, 0.0], rtol=1e-4)
    # unchanged by a common scale, including the guarded values
    np.testing.assert_allclose(peak_ratio(e_, jnp.asarray(1e-3 * z, dtype), wa, wb), got, rtol=1e-4)


def test_peak_ratio_gradient(x64):
    """d(a/b)/ds_k = 1/b on window a, -a/b² on window b, 0 elsewhere; finite where the
    denominator is guarded (zero, or both windows empty). Windows as arrays work too."""
    s = spectra((), seed=3)
    wa, wb = jnp.array([1.0, 3.0]), (10.0, 12.5)
    ma, mb = (E >= 1.0) & (E <= 3.0), (E >= 10.0) & (E <= 12.5)
    a, b = s[ma].sum(), s[mb].sum()
    grad = jax.jit(jax.grad(lambda x: scalarizers.peak_ratio(jnp.asarray(E), x, wa, wb)))
    g = grad(jnp.asarray(s))
    np.testing.assert_allclose(
        g, np.where(ma, 1 / b, 0.0) + np.where(mb, -a / b**2, 0.0), rtol=1e-12
    )
    for zero in (mb, ma | mb):
        assert np.all(np.isfinite(grad(jnp.asarray(np.where(zero, 0.0, s)))))


@pytest.mark.parametrize("offset", [0.0, 0.23, 0.45, -0.37])
def test_peak_energy_between_samples(dtype, offset):
    """A Gaussian (σ = 5 steps) and a Lorentzian (γ = 3 steps) centred `offset` steps off a
    sample: found to ≪ the spacing, although the best sample is up to 0.45 steps away."""
    h = 0.01
    e = np.arange(400) * h
    c = 1.5 + offset * h
    gauss = np.exp(-0.5 * ((e - c) / (5 * h)) ** 2)
    lorentz = 1.0 / (1.0 + ((e - c) / (3 * h)) ** 2)
    s = jnp.asarray(np.stack([gauss, lorentz]), dtype)
    got = np.asarray(peak_energy(jnp.asarray(e, dtype), s, 1.0, 2.0))
    np.testing.assert_allclose(got, c, atol=0.02 * h)
    assert abs(e[np.argmax(gauss)] - c) == pytest.approx(abs(offset) * h, abs=1e-9)


def test_peak_energy_of_a_parabola_on_an_uneven_grid(x64):
    """A parabola through three uneven samples has its vertex recovered exactly."""
    e = np.cumsum(np.random.RandomState(4).uniform(0.5, 1.5, 30))
    c = 0.3 * e[12] + 0.7 * e[13]
    s = 5.0 - (e - c) ** 2
    np.testing.assert_allclose(
        peak_energy(jnp.asarray(e), jnp.asarray(s), e[0], e[-1]), c, rtol=1e-12
    )


def test_peak_energy_window_edges(x64):
    """The window decides: a larger peak outside is ignored; a maximum on the window's edge
    (neighbour outside) or at the array's end is the sample itself; an empty window is NaN."""
    e = np.arange(100) * 0.1
    s = np.exp(-0.5 * ((e - 2.03) / 0.3) ** 2) + 3 * np.exp(-0.5 * ((e - 7.0) / 0.3) ** 2)
    e_, s_ = jnp.asarray(e), jnp.asarray(s)
    assert abs(float(peak_energy(e_, s_, 0.0, 5.0)) - 2.03) < 0.002
    np.testing.assert_allclose(peak_energy(e_, s_, 3.0, 5.0), 3.0)  # decreasing: max at lo
    np.testing.assert_allclose(peak_energy(e_, s_, 7.5, 9.9), 7.5)
    np.testing.assert_allclose(peak_energy(e_, -s_, 0.0, 9.9), 9.9)  # last sample, no neighbour
    assert np.isnan(peak_energy(e_, s_, 3.01, 3.09))


def test_vmap_matches_plain_calls():
    s = spectra((5,), seed=5)
    e_ = jnp.asarray(E)
    los = jnp.array([0.0, 1.0, 2.5, 4.0, 6.0])
    vm = jax.jit(jax.vmap(scalarizers.window_sum, in_axes=(None, 0, 0, None)))
    got = vm(e_, jnp.asarray(s), los, 9.0)
    want = [(s[k] * ((E >= float(los[k])) & (E <= 9.0))).sum() for k in range(5)]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    vp = jax.jit(jax.vmap(scalarizers.peak_energy, in_axes=(None, 0, None, None)))
    # vmap, and the batch axis of s itself
    np.testing.assert_allclose(
        vp(e_, jnp.asarray(s), 1.0, 9.0), peak_energy(e_, jnp.asarray(s), 1.0, 9.0)
    )


def test_bad_windows_and_shapes_raise():
    e, s = jnp.asarray(E), jnp.asarray(spectra(()))
    with pytest.raises(ValueError, match="lo <= hi"):
        scalarizers.window_sum(e, s, 3.0, 1.0)
    with pytest.raises(ValueError, match="lo <= hi"):
        scalarizers.peak_energy(e, s, np.float64(3.0), 1)
    with pytest.raises(ValueError, match="lo <= hi"):
        scalarizers.peak_ratio(e, s, (0.0, 1.0), (5.0, 4.0))
    with pytest.raises(ValueError, match="pair"):
        scalarizers.peak_ratio(e, s, jnp.zeros(3), (0.0, 1.0))
    with pytest.raises(ValueError, match="scalars"):
        scalarizers.window_integral(e, s, np.zeros(2), 1.0)
    # the explicit check, or the suite's runtime shape checking (jaxtyping) before it
    with pytest.raises((ValueError, TypeError), match="same energies|n="):
        scalarizers.window_sum(e[:-1], s, 0.0, 1.0)
