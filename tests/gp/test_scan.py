"""reconstruct_scan: the structured and exact methods agree, units of any scale, per-axis
lengthscales recovered, channels vmapped like single runs, one compilation per shape,
the non-stationary amplitude points σ at the step, and clear errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import count_compilations

from jaxscope.gp import GP, Observations
from jaxscope.gp.gridded import GridKernel
from jaxscope.gp.gridded_fit import SolverSettings
from jaxscope.gp.scan import (
    polynomial_trend,
    reconstruct_scan,
    scan_lattice,
    scan_metrics,
    standardise,
)
from jaxscope.gp.starts import lengthscale_start, noise_start

pytestmark = pytest.mark.xdist_group("scan")

H, W = 24, 30


def _field(seed, ls=(3.0, 8.0), noise=0.05):
    """A draw of the product-Matérn GP on the grid plus noise (truth, noisy)."""
    rr, cc = np.meshgrid(np.arange(H, dtype=float), np.arange(W, dtype=float), indexing="ij")
    P = np.stack([rr.ravel(), cc.ravel()], 1)
    with jax.enable_x64(True):
        K = np.asarray(GridKernel(jnp.asarray(ls), 1.0).as_kernel().matrix(P, P))
    rng = np.random.default_rng(seed)
    f = np.linalg.cholesky(K + 1e-8 * np.eye(len(P))) @ rng.standard_normal(len(P))
    f = f.reshape(H, W)
    return f, f + noise * rng.standard_normal((H, W)), rng.random((H, W)) < 0.4


@pytest.fixture(scope="module")
def field():
    return _field(0)


def test_exact_matches_an_independent_gp_and_grid_agrees(field, x64):
    f, y, mask = field
    data = np.where(mask, y, np.nan)
    ex = reconstruct_scan(jax.random.key(0), data, method="exact", map_steps=40, trend=0)
    p = ex.params[0]
    # independent: a GP with the reported hyperparameters (user units) on the measurements
    rr, cc = np.nonzero(mask)
    obs = Observations.from_arrays(np.stack([rr, cc], 1).astype(float), y[mask])
    ls = np.asarray(p["lengthscale_px"])
    shift = y[mask].mean()
    gp = GP(kernel=GridKernel(jnp.asarray(ls), p["variance"]).as_kernel(), noise=p["noise"],
            mean=shift)  # fmt: skip
    Pall = np.stack(np.meshgrid(np.arange(H), np.arange(W), indexing="ij"), -1).reshape(-1, 2)
    mu, var = gp.condition(obs).predict(Pall.astype(float))
    np.testing.assert_allclose(ex.mean[0].ravel(), mu, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ex.std[0].ravel() ** 2, var, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(ex.std_y[0] ** 2, ex.std[0] ** 2 + p["noise"], rtol=1e-10)
    # the structured solver on the same data: same hyperparameters, mean, σ (MC tolerance)
    # (no noise floor: the exact GP has none; the floor's effect is the model's, not the solver's)
    gr = reconstruct_scan(jax.random.key(0), data, method="grid", map_steps=40, num_samples=256,
                          trend=0, settings=SolverSettings(noise_floor=0.0))  # fmt: skip
    np.testing.assert_allclose(gr.params[0]["lengthscale_px"], ls, rtol=0.1)
    err = np.sqrt(np.mean((gr.mean - ex.mean) ** 2)) / y.std()
    assert err < 0.02, err
    assert np.median(np.abs(gr.std / ex.std - 1)) < 0.06
    # and both beat predicting the mean, with calibrated predictive σ
    for rec in (ex, gr):
        m = scan_metrics(rec, f[None])[0]
        assert m["rmse"] < 0.5 * f.std() and 0.85 <= m["coverage"] <= 1.0, m


def test_radial_kernel_exact_and_grid_agree(field, x64):
    """kernel="radial:matern32": the exact method is an ARD Matérn-3/2 of the Euclidean
    distance at the reported hyperparameters; the structured method (2-D FFT products, torus
    draws) reaches the same fit, mean and σ."""
    from jaxscope.kernels import Matern32

    f, y, mask = field
    data = np.where(mask, y, np.nan)
    ex = reconstruct_scan(jax.random.key(0), data, method="exact", map_steps=40, trend=0,
                          kernel="radial:matern32")  # fmt: skip
    p = ex.params[0]
    rr, cc = np.nonzero(mask)
    obs = Observations.from_arrays(np.stack([rr, cc], 1).astype(float), y[mask])
    gp = GP(kernel=Matern32(lengthscale=jnp.asarray(p["lengthscale_px"]), variance=p["variance"]),
            noise=p["noise"], mean=y[mask].mean())  # fmt: skip
    Pall = np.stack(np.meshgrid(np.arange(H), np.arange(W), indexing="ij"), -1).reshape(-1, 2)
    mu, var = gp.condition(obs).predict(Pall.astype(float))
    np.testing.assert_allclose(ex.mean[0].ravel(), mu, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ex.std[0].ravel() ** 2, var, rtol=1e-5, atol=1e-8)
    gr = reconstruct_scan(jax.random.key(0), data, method="grid", map_steps=40, num_samples=256,
                          trend=0, kernel="radial:matern32",
                          settings=SolverSettings(noise_floor=0.0))  # fmt: skip
    np.testing.assert_allclose(gr.params[0]["lengthscale_px"], p["lengthscale_px"], rtol=0.1)
    assert np.sqrt(np.mean((gr.mean - ex.mean) ** 2)) / y.std() < 0.02
    assert np.median(np.abs(gr.std / ex.std - 1)) < 0.06


def test_trend_is_a_least_squares_plane_added_back(field, x64):
    """trend=1: the GP models what a least-squares plane leaves, and the plane comes back."""
    f, y, mask = field
    rr, cc = np.meshgrid(np.arange(H, dtype=float), np.arange(W, dtype=float), indexing="ij")
    tilt = 4.0 + 3.0 * rr / H - 6.0 * cc / W  # a tilted sample: 3x the signal's sd
    data = np.where(mask, y + tilt, np.nan)
    rec = reconstruct_scan(jax.random.key(0), data, method="exact", map_steps=30, trend=1)
    p = rec.params[0]
    # independent: the plane by lstsq on the measured pixels, a GP with that plane as its mean
    B = np.stack([np.ones_like(rr), rr, cc], -1)
    coef = np.linalg.lstsq(B[mask], (y + tilt)[mask], rcond=None)[0]
    gp = GP(kernel=GridKernel(jnp.asarray(p["lengthscale_px"]), p["variance"]).as_kernel(),
            noise=p["noise"], mean=lambda X: coef[0] + X @ coef[1:])  # fmt: skip
    rows, cols = np.nonzero(mask)
    obs = Observations.from_arrays(np.stack([rows, cols], 1).astype(float), (y + tilt)[mask])
    Pall = np.stack([rr.ravel(), cc.ravel()], 1)
    mu, var = gp.condition(obs).predict(Pall)
    np.testing.assert_allclose(rec.mean[0].ravel(), mu, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rec.std[0].ravel() ** 2, var, rtol=1e-5, atol=1e-8)
    # a plane added to the data moves the mean by exactly that plane and leaves σ alone
    flat = reconstruct_scan(jax.random.key(0), np.where(mask, y, np.nan), method="exact",
                            map_steps=30, trend=1)  # fmt: skip
    np.testing.assert_allclose(rec.mean[0], flat.mean[0] + tilt, atol=1e-6)
    np.testing.assert_allclose(rec.std, flat.std, rtol=1e-6)
    # known answer: a quadratic surface is its own degree-2 trend, not its degree-1 one
    bowl = (1.0 + 0.5 * rr - 0.2 * cc + 0.03 * rr * cc - 0.01 * rr**2)[None]
    np.testing.assert_allclose(polynomial_trend(bowl, mask[None], 2), bowl, atol=1e-9)
    assert np.abs(polynomial_trend(bowl, mask[None], 1) - bowl).max() > 0.1


def test_noise_guess_cancels_a_smooth_signal():
    """Second differences of measured runs of three cancel a locally linear signal: the start
    is the noise variance (0.01), not noise + slope² as neighbour differences would give."""
    rng = np.random.default_rng(3)
    rr, cc = np.meshgrid(np.arange(96.0), np.arange(96.0), indexing="ij")
    z = 0.4 * rr + 0.3 * cc + 0.1 * rng.standard_normal(rr.shape)  # slopes >> noise
    m = rng.random(rr.shape) < 0.3
    assert 0.008 < noise_start(z, m) < 0.012
    assert noise_start(z, rng.random(rr.shape) < 0.01) == 0.05  # too few neighbours


def test_lengthscale_guess_is_near_the_truth_per_axis():
    """On a draw of the product Matérn-3/2 with ℓ = (12, 4) px, 30 % measured, the start is
    within a factor 1.5 of each true lengthscale (not the fixed 2 × spacing, 3.7 px on both);
    clipped to [lo, hi]; ``lo`` when too few pairs are measured."""
    n = 128
    Lr, Lc = (np.linalg.cholesky(np.asarray(GridKernel(jnp.asarray([v, v])).axis_matrix(n, 0,
              jnp.float32), np.float64) + 1e-6 * np.eye(n)) for v in (12.0, 4.0))  # fmt: skip
    rng = np.random.default_rng(0)
    z = Lr @ rng.standard_normal((n, n)) @ Lc.T
    m = rng.random((n, n)) < 0.3
    g = lengthscale_start(z, m, 2.0, 40.0)
    assert 12 / 1.5 < g[0] < 12 * 1.5 and 4 / 1.5 < g[1] < 4 * 1.5, g
    np.testing.assert_array_equal(lengthscale_start(z, m, 2.0, 6.0), [6.0, g[1]])
    np.testing.assert_array_equal(lengthscale_start(z, rng.random((n, n)) < 0.002, 3.0, 40.0),
                                  [3.0, 3.0])  # fmt: skip
    with pytest.raises(ValueError, match="one \\(H, W\\) image each"):
        lengthscale_start(z, m[:-1], 2.0, 40.0)
    with pytest.raises(ValueError, match="0 < lo <= hi"):
        lengthscale_start(z, m, 5.0, 4.0)


def test_scan_lattice_and_standardise():
    """Known answers: 10 % of 256² measured -> 3.2 px apart -> 6.3 px wanted, 3 inducing pixels
    a length -> 122 a side, capped at 1,600 -> 40 × 40; the densest channel sets it. The
    standardised channel has mean 0 and sd 1 on measured pixels after its plane."""
    rng = np.random.default_rng(0)
    m = np.stack([rng.random((256, 256)) < 0.1, rng.random((256, 256)) < 0.01])
    assert scan_lattice(m, 1600) == (40, 40)
    every16 = np.zeros((1, 256, 256), bool)
    every16[0, ::16, ::16] = True  # 16 px apart -> 32 px wanted -> 256 · 3 / 32 = 24 a side
    assert scan_lattice(every16, 10_000) == (24, 24)
    with pytest.raises(ValueError, match="at least one measured pixel"):
        scan_lattice(np.zeros((1, 8, 8), bool), 100)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        scan_lattice(m[0], 100)
    data = (rng.standard_normal((2, 256, 256)) + 3.0) * 1e-9  # metres, on a 3 nm offset
    z, shift, scale = standardise(data, m, 1)
    for c in range(2):
        np.testing.assert_allclose([z[c][m[c]].mean(), z[c][m[c]].std()], [0, 1], atol=1e-9)
        assert np.all(z[c][~m[c]] == 0)
        rr, cc = np.nonzero(m[c])  # independent: the plane by lstsq on the measured pixels
        B = np.stack([np.ones_like(rr), rr, cc], 1).astype(float)
        res = data[c][m[c]] - B @ np.linalg.lstsq(B, data[c][m[c]], rcond=None)[0]
        np.testing.assert_allclose(scale[c], res.std(), rtol=1e-9)


def test_grid_sigma_y_adds_the_fitted_noise_not_the_solver_floor(field):
    """The solver's floor is jitter: reported, used in the solves, not in σ_y."""
    f, y, mask = field
    st = SolverSettings(noise_floor=0.02)
    rec = reconstruct_scan(jax.random.key(0), np.where(mask, y, np.nan), method="grid",
                           map_steps=5, num_samples=4, settings=st)  # fmt: skip
    p = rec.params[0]
    sd = y[mask].std()  # trend=1 standardises by the plane's residual; the floor is 0.02 of it
    assert 0.02 * 0.5 * sd**2 < p["solver_floor"] < 0.02 * sd**2
    np.testing.assert_allclose(rec.std_y[0] ** 2, rec.std[0] ** 2 + p["noise"], rtol=1e-6)


def test_per_axis_lengthscales_recovered(x64):
    f, y, mask = _field(1, ls=(2.0, 9.0))
    rec = reconstruct_scan(jax.random.key(1), np.where(mask, y, np.nan), method="exact",
                           map_steps=60)  # fmt: skip
    ls = np.asarray(rec.params[0]["lengthscale_px"])
    assert 2.5 < ls[1] / ls[0] < 9.0, ls  # true ratio 4.5; isotropic would give 1


def test_units_of_any_scale_and_channels_vmapped(field):
    f, y, mask = field
    data = np.stack([np.where(mask, y, np.nan), np.where(mask, 2.0 - y, np.nan)])
    both = reconstruct_scan(jax.random.key(2), data, method="exact", map_steps=20)
    tiny = reconstruct_scan(jax.random.key(2), data * 1e-9, method="exact", map_steps=20)
    np.testing.assert_allclose(tiny.mean, both.mean * 1e-9, rtol=2e-4, atol=1e-9 * 2e-4)
    np.testing.assert_allclose(tiny.std, both.std * 1e-9, rtol=2e-3)
    assert abs(tiny.params[0]["variance"] / both.params[0]["variance"] - 1e-18) < 1e-20
    # the second channel is the mirror image: same hyperparameters, mirrored mean
    np.testing.assert_allclose(both.params[1]["lengthscale_px"], both.params[0]["lengthscale_px"],
                               rtol=1e-3)  # fmt: skip
    np.testing.assert_allclose(both.mean[1], 2.0 - both.mean[0], atol=1e-3 * y.std())


def test_one_compilation_per_shape(field):
    f, y, mask = field
    reconstruct_scan(jax.random.key(3), np.where(mask, y, np.nan), method="grid", map_steps=3,
                     num_samples=4)  # fmt: skip
    with count_compilations() as log:
        reconstruct_scan(jax.random.key(4), np.where(mask, 1 - y, np.nan), method="grid",
                         map_steps=3, num_samples=4)  # fmt: skip
    assert len(log) == 0


def test_nonstationary_sigma_points_at_the_step():
    rr, cc = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    truth = np.where(cc + 0.3 * rr < 15, 0.0, 1.0)  # two domains, one slanted wall
    rng = np.random.default_rng(5)
    mask = rng.random((H, W)) < 0.3
    y = truth + 0.02 * rng.standard_normal((H, W))
    data = np.where(mask, y, np.nan)
    corr = {}
    for ns in (False, True):
        # trend=0: a plane would take up part of the step; this checks the amplitude alone
        rec = reconstruct_scan(jax.random.key(5), data, method="exact", nonstationary=ns,
                               map_steps=40, trend=0)  # fmt: skip
        corr[ns] = scan_metrics(rec, truth[None])[0]["sigma_error_rank_corr"]
        if ns:
            assert rec.params[0]["warp"] > 0.5  # the data ask for the modulation
    assert corr[True] > corr[False] + 0.1, corr
    assert corr[True] > 0.5, corr


def test_errors():
    y = np.random.default_rng(0).random((8, 9))
    with pytest.raises(ValueError, match="unknown method"):
        reconstruct_scan(jax.random.key(0), y, method="kron")
    with pytest.raises(ValueError, match="unknown fit"):
        reconstruct_scan(jax.random.key(0), y, fit="some")
    with pytest.raises(ValueError, match="unknown kernel"):
        reconstruct_scan(jax.random.key(0), y, kernel="matern99")
    with pytest.raises(ValueError, match="max_iter must be >= 1"):
        reconstruct_scan(jax.random.key(0), y, settings=SolverSettings(max_iter=0))
    with pytest.raises(ValueError, match="with method='exact'"):
        reconstruct_scan(jax.random.key(0), y, method="exact", fit="subset")
    with pytest.raises(ValueError, match="trend must be one of"):
        reconstruct_scan(jax.random.key(0), y, trend=3)
    with pytest.raises(ValueError, match="mask the same shape"):
        polynomial_trend(y, y > 0.5, 1)  # (H, W), not (C, H, W)
    with pytest.raises(ValueError, match="constant"):
        reconstruct_scan(jax.random.key(0), np.ones((8, 9)))
