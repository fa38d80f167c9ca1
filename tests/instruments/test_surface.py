"""Synthetic SPM surface: the random field's covariance and spectrum against closed forms (NumPy),
terraces and particles against independent NumPy constructions, determinism, grid layout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_allclose

from jaxscope.instruments.surface import (
    gaussian_random_field,
    grid_points,
    make_surface,
    spectral_density,
    surface_parts,
)

N = 32
NUM_FIELDS = 512


def _fields(spectrum, lengthscale, std=1.0, **kw):
    keys = jax.random.split(jax.random.key(42), NUM_FIELDS)
    f = jax.vmap(
        lambda k: gaussian_random_field(k, N, lengthscale, spectrum=spectrum, std=std, **kw)
    )(keys)
    return np.asarray(f, np.float64)


def test_grid_points_row_major_pixel_centres():
    X = np.asarray(grid_points(5))
    assert X.shape == (25, 2)
    r, c = 3, 1
    np.testing.assert_allclose(X[r * 5 + c], [(r + 0.5) / 5, (c + 0.5) / 5], rtol=1e-6)
    assert X.min() > 0 and X.max() < 1
    # row index varies slowest: image.ravel() order
    img = np.arange(25.0).reshape(5, 5)
    rows = np.floor(X[:, 0] * 5).astype(int)
    cols = np.floor(X[:, 1] * 5).astype(int)
    np.testing.assert_array_equal(img[rows, cols], img.ravel())


@pytest.mark.parametrize("bad", [0, 3, -8])
def test_bad_size_is_refused(bad):
    with pytest.raises(ValueError, match="size"):
        grid_points(bad)


def test_unknown_spectrum_is_refused():
    with pytest.raises(ValueError, match="spectrum"):
        spectral_density(16, spectrum="pink")


def test_gaussian_field_covariance_matches_periodised_squared_exponential():
    ell, std = 0.1, 0.7
    f = _fields("gaussian", ell, std)
    assert np.abs(f.mean()) < 0.05 * std
    n = np.arange(-2, 3)

    def cov(dr, dc):  # σ² Σ_n exp(-|Δ + n|² / 2ℓ²), normalised so that C(0) = σ²
        def c(a, b):
            d2 = (a / N + n[:, None]) ** 2 + (b / N + n[None, :]) ** 2
            return np.exp(-d2 / (2 * ell**2)).sum()

        return std**2 * c(dr, dc) / c(0, 0)

    for dr, dc in [(0, 0), (1, 0), (0, 2), (3, 0), (2, 2), (0, 5), (8, 0)]:
        emp = np.mean(f * np.roll(f, (-dr, -dc), axis=(1, 2)))
        assert abs(emp - cov(dr, dc)) < 0.06 * std**2, (dr, dc, emp, cov(dr, dc))


def test_powerlaw_field_power_spectrum_matches_formula():
    ell, hurst = 0.05, 0.6
    f = _fields("powerlaw", ell, hurst=hurst)
    P = np.mean(np.abs(np.fft.fft2(f)) ** 2, axis=0) / N**2  # E|F_k|² / N² = S_k
    q = np.fft.fftfreq(N, 1.0 / N)
    q2 = q[:, None] ** 2 + q[None, :] ** 2
    S = (1 + (2 * np.pi * ell) ** 2 * q2) ** (-(1 + hurst))
    S = N * N * S / S.sum()  # unit variance
    r = np.rint(np.sqrt(q2)).astype(int)
    for b in range(1, N // 2):  # radial bins; each averages ≥ 4 frequencies × 512 fields
        sel = r == b
        assert abs(P[sel].mean() / S[sel].mean() - 1) < 0.1, b
    # the spectrum falls as a power law q^-(2+2H) above the roll-off
    hi = (r >= 8) & (r <= 15)
    slope = np.polyfit(np.log(np.sqrt(q2[hi])), np.log(P[hi]), 1)[0]
    assert abs(slope + 2 * (1 + hurst)) < 0.35


def test_spectral_density_normalisation(dtype):
    S = spectral_density(16, 0.1, std=2.0, dtype=dtype)
    assert S.dtype == dtype
    assert_allclose(jnp.mean(S), 4.0, scale=10)


def test_deterministic_given_key_and_jittable(dtype):
    k = jax.random.key(3)
    a = make_surface(k, 24, dtype=dtype)
    assert a.shape == (24, 24) and a.dtype == dtype
    np.testing.assert_array_equal(np.asarray(a), np.asarray(make_surface(k, 24, dtype=dtype)))
    b = make_surface(jax.random.key(4), 24, dtype=dtype)
    assert np.abs(np.asarray(a) - np.asarray(b)).max() > 0.1
    jitted = jax.jit(make_surface, static_argnames=("size", "dtype"))(k, 24, dtype=dtype)
    assert_allclose(jitted, a, scale=100)
    assert_allclose(surface_parts(k, 24, dtype=dtype).total, a, scale=100)


def test_terraces_form_a_staircase():
    J, s = 3, 0.8
    p = surface_parts(
        jax.random.key(5), 64, grf_std=0.0, num_particles=0, num_steps=J, step_height=s
    )
    h = np.asarray(p.total)
    assert np.abs(np.asarray(p.field)).max() == 0 and np.abs(np.asarray(p.particles)).max() == 0
    assert abs(h.min()) < 0.01 * s and abs(h.max() - J * s) < 0.01 * J * s
    levels = np.rint(h / s)
    on_terrace = np.abs(h - levels * s) < 0.05 * s
    assert on_terrace.mean() > 0.7  # flat terraces; edges (a few pixels within 5 %) between
    counts = np.bincount(levels[on_terrace].astype(int), minlength=J + 1)
    assert counts.size == J + 1 and np.all(counts > 0.02 * h.size)  # every terrace is there


def test_particles_are_spherical_caps_at_their_centres():
    size, rho, height = 64, 0.06, 1.5
    p = surface_parts(
        jax.random.key(6),
        size,
        grf_std=0.0,
        num_steps=0,
        num_particles=5,
        particle_radius=rho,
        particle_height=height,
    )
    c = np.asarray(p.centres, np.float64)
    assert c.shape == (5, 2) and np.all((c >= rho) & (c <= 1 - rho))
    X = (np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="ij"), -1) + 0.5) / size
    d2 = ((X[:, :, None, :] - c[None, None]) ** 2).sum(-1)
    ref = (height * np.sqrt(np.clip(1 - d2 / rho**2, 0, None))).max(-1)  # upper envelope
    np.testing.assert_allclose(np.asarray(p.particles), ref, atol=1e-4)
    np.testing.assert_allclose(np.asarray(p.total), ref, atol=1e-4)
    rc = np.floor(c * size).astype(int)
    assert np.all(np.asarray(p.particles)[rc[:, 0], rc[:, 1]] > 0.95 * height)
    assert np.all(np.asarray(p.particles)[(d2 >= rho**2).all(-1)] == 0)
