r"""Reconstruct a user's own scan: measured pixels in, mean and σ of every pixel out.

:func:`reconstruct_scan` takes a scan as it comes from a microscope (a
:class:`jaxscope.images.Scan` from :func:`~jaxscope.images.load_scan` — ``.npy``, HDF5/NSID —, or
an array with NaN for unmeasured pixels and/or a mask), rectangular, one or several channels,
in physical units of any scale. Each channel loses a least-squares polynomial trend of its
measurements (``trend=1``: a plane, as a microscopist levels a scan and as the thin-plate
spline's own degree-1 term does; ``0``: the mean only; ``2``: quadratic), is standardised
inside (``z = (y - trend) / sd``; jitter and priors act on ``z``, so a signal of variance 1e-18
is as well posed as one of variance 1) and results come back in the channel's units with the
trend added back. The trend is a plug-in estimate: its own uncertainty is not in σ, which is
right while the measurements are dense on the scale of the lengthscale (the GP's mean follows
the data whatever trend was removed; only far from every measurement would a misestimated
trend show). Removing the tilt matters on topography: on a 256² PFM height channel the
stationary kernel otherwise spends its one lengthscale on the tilt (RMSE 1.29e-10 vs 1.09e-10
with the plane removed, 20 Adam steps). No noise is ever added to the data.

Model: a product kernel over rows and columns with one lengthscale per axis (scan lines make
images anisotropic), signal variance and Gaussian noise, MAP hyperparameters by Adam on the
log marginal likelihood of **all** measurements (``fit="all"``) or of a random subset of
``fit_points`` (``fit="subset"``). Methods, chosen by size (``method="auto"``):

* ``"exact"`` (at most ``exact_max`` measurements a channel): Cholesky, exact mean and variance;
* ``"grid"`` (above): the structured solver of :mod:`~jaxscope.gp.gridded` (PCG, SLQ, pathwise
  variance), all channels in one ``vmap``.

``nonstationary=True`` adds the gradient-modulated amplitude of
:mod:`~jaxscope.gp.gridded_fit`: a first, stationary fit gives a mean whose blurred squared
gradient becomes the roughness map, and a second fit learns its weight; σ then grows on
domain walls and steps, where the errors are, not only in the gaps between measurements.
Scattered scans (spiral, Lissajous) that do not sit on a grid go to :func:`jaxscope.gp.svgp.
fit_svgp` instead.

Example:
    >>> scan = load_scan("pfm.h5", "Measurement_000/Channel_3/Channel_3/Channel_3", mask=m)
    >>> rec = reconstruct_scan(jax.random.key(0), scan)
    >>> rec.mean.shape, rec.method, rec.params[0]["lengthscale_px"]
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from ..runtime.jit import jit
from .exact import GP
from .gridded import GridKernel
from .gridded_fit import (
    SolverSettings,
    amplitude_from,
    check_settings,
    fit_adam,
    fit_grid_map,
    solver_floor,
)
from .gridded_posterior import grid_posterior, roughness_map
from .gridded_precond import lattice_for
from .observations import Observations
from .starts import lengthscale_start, noise_start

METHODS = ("auto", "exact", "grid")
TREND_DEGREES = (0, 1, 2)
FITS = ("all", "subset")


class ScanReconstruction(NamedTuple):
    """Result of :func:`reconstruct_scan`; images ``(C, H, W)`` in each channel's units."""

    mean: np.ndarray
    std: np.ndarray  # σ of the noise-free signal
    std_y: np.ndarray  # predictive σ of a new measurement (noise included): use for calibration
    mask: np.ndarray  # (C, H, W) measured pixels
    method: str
    params: list[dict[str, Any]]  # per channel, user units (lengthscales in pixels too); "history":
    # exact: negative log posterior per measurement at each Adam step; grid: CG iterations
    scan: Any  # the input Scan (coordinates, units)


def _as_scan(data, mask):
    from ..images.scans import Scan, scan_from_array

    if isinstance(data, Scan):
        if mask is not None:
            raise ValueError("give the mask to load_scan / scan_from_array, not with a Scan")
        return data
    return scan_from_array(np.asarray(data, np.float64), mask)


def polynomial_trend(data, mask, degree: int) -> np.ndarray:
    """``(C, H, W)`` least-squares polynomial of total ``degree`` in the pixel coordinates
    (scaled to [-1, 1]) fitted to each channel's measured pixels (``mask`` True; other pixels
    are not read) and evaluated everywhere."""
    if isinstance(degree, bool) or degree not in TREND_DEGREES:
        raise ValueError(
            f"trend must be one of {TREND_DEGREES} (a polynomial degree), got {degree!r}"
        )
    data, mask = np.asarray(data, np.float64), np.asarray(mask, bool)
    if data.ndim != 3 or mask.shape != data.shape:
        raise ValueError(
            f"data must be (C, H, W) and mask the same shape, got {data.shape} and {mask.shape}"
        )
    C, H, W = data.shape
    r, c = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    terms = [np.ones_like(r)] + [r**i * c ** (d - i) for d in range(1, degree + 1)
                                 for i in range(d + 1)]  # fmt: skip
    B = np.stack(terms, -1)
    out = np.empty((C, H, W))
    for k in range(C):
        coef = np.linalg.lstsq(B[mask[k]], data[k][mask[k]], rcond=None)[0]
        out[k] = B @ coef
    return out


def standardise(data, mask, trend: int = 1):
    """``(z, shift, scale)`` of channels ``(C, H, W)`` as :func:`reconstruct_scan` models them:
    ``shift`` the polynomial trend of degree ``trend`` (:func:`polynomial_trend`), ``scale``
    ``(C,)`` the sd of what the trend leaves on measured pixels (1 for a channel that is exactly
    its trend), ``z = (data - shift) / scale`` there and 0 on unmeasured pixels."""
    shift = polynomial_trend(data, mask, trend)
    m = np.asarray(mask, bool)
    resid = np.where(m, np.asarray(data, np.float64) - shift, 0.0)
    scale = np.array([resid[c][m[c]].std() for c in range(len(resid))])
    scale = np.where(scale == 0, 1.0, scale)
    return resid / scale[:, None, None], shift, scale


def scan_lattice(mask, rank: int) -> tuple[int, int]:
    """The Nyström lattice :func:`reconstruct_scan` gives the structured solver for masks
    ``(C, H, W)``: inducing pixels as fine as twice the smallest mean spacing between
    measurements needs (not the lengthscale start, which may be far longer than the MAP: a
    coarse lattice then leaves CG at its cap), at most ``rank`` of them."""
    m = np.asarray(mask, bool)
    if m.ndim != 3:
        raise ValueError(f"mask must be (C, H, W), got shape {m.shape}")
    counts = m.reshape(len(m), -1).sum(1)
    if counts.min() < 1:
        raise ValueError("every channel needs at least one measured pixel")
    spacing = np.sqrt(m[0].size / counts.max())  # the densest channel
    return lattice_for(m.shape[1:], np.full(2, 2.0 * spacing), rank)


def _exact_lml(p, obs, name, amplitude):
    kern = GridKernel(p["lengthscale"], p["variance"], name).as_kernel(amplitude)
    return GP(kernel=kern, noise=p["noise"]).log_marginal_likelihood(obs)


def _exact_moments(p, obs, name, amplitude, pixels, chunk):
    kern = GridKernel(p["lengthscale"], p["variance"], name).as_kernel(amplitude)
    return GP(kernel=kern, noise=p["noise"]).condition(obs).predict(pixels, chunk_size=chunk)


@jit
def _exact_channels(key, obs, init, pixels, shape, *, name, steps, nonstationary, chunk):
    """vmapped over channels: MAP on all points of each buffer, then exact moments."""

    def one(k, ob, ini):
        k1, k2 = jax.random.split(k)
        p, hist = fit_adam(k1, lambda _, q: _exact_lml(q, ob, name, None), ini, ob.count,
                           num_steps=steps)  # fmt: skip
        mean, var = _exact_moments(p, ob, name, None, pixels, chunk)
        rough = None
        if nonstationary:
            rough = roughness_map(mean.reshape(shape))
            ini2 = {**p, "warp": jnp.asarray(0.5, mean.dtype)}
            lml = lambda _, q: _exact_lml(q, ob, name, amplitude_from(rough, q["warp"]))  # noqa: E731
            p, h2 = fit_adam(k2, lml, ini2, ob.count, num_steps=max(steps // 2, 1))
            hist = jnp.concatenate([hist, h2])
            amp = amplitude_from(rough, p["warp"])
            mean, var = _exact_moments(p, ob, name, amp, pixels, chunk)
        return p, hist, mean.reshape(shape), var.reshape(shape)

    return jax.vmap(one)(jax.random.split(key, obs.y.shape[0]), obs, init)


#: XLA:CPU at optimisation level 1 compiles the structured program in half the time (1.4 s
#: against 2.6 s of XLA time on 256² here) and runs it as fast: its work is matrix products,
#: LAPACK and FFT calls, not the element-wise code LLVM's expensive passes improve
@jit(compiler_options={"xla_backend_optimization_level": 1})
def _grid_channels(key, z, fit_mask, mask, init, *, name, steps, nonstationary, num_samples,
                   settings, warm):  # fmt: skip
    """vmapped over channels: structured MAP (on ``fit_mask``), then mean and pathwise σ (the
    mean's solve from the fit's last ``Ã⁻¹y`` when ``warm``: the fit used every measurement)."""

    def one(k, y, fm, m, ini):
        k1, k2, k3, k4 = jax.random.split(k, 4)

        def fit(kk, ini, rough, steps):
            return fit_grid_map(kk, y, fm, name, ini, roughness=rough, num_steps=steps,
                                settings=settings, return_solution=True)  # fmt: skip

        p, hist, alpha = fit(k1, ini, None, steps)
        rough = None
        if nonstationary:
            mom = grid_posterior(k2, p, y, m, name, num_samples=0, settings=settings,
                                 x0=alpha if warm else None)  # fmt: skip
            rough = roughness_map(mom.mean)
            ini2 = {**p, "warp": jnp.asarray(0.5, y.dtype)}
            p, h2, alpha = fit(k3, ini2, rough, max(steps // 2, 1))
            hist = jnp.concatenate([hist, h2])
        mom = grid_posterior(k4, p, y, m, name, roughness=rough, num_samples=num_samples,
                             settings=settings, x0=alpha if warm else None)  # fmt: skip
        amp = amplitude_from(rough, p["warp"]) if nonstationary else None
        kern = GridKernel(p["lengthscale"], p["variance"], name)
        floor = solver_floor(kern, m, amp, settings, y.dtype)
        return p, hist, mom.mean, mom.var, mom.iterations, floor

    C = z.shape[0]
    return jax.vmap(one)(jax.random.split(key, C), z, fit_mask, mask, init)


def reconstruct_scan(
    key: PRNGKeyArray,
    data,
    mask=None,
    *,
    method: str = "auto",
    kernel: str = "matern32",
    nonstationary: bool = False,
    trend: int = 1,
    fit: str = "all",
    fit_points: int = 4096,
    map_steps: int = 30,
    exact_max: int = 3000,
    num_samples: int = 32,
    settings: SolverSettings | None = None,
    chunk_size: int = 4096,
) -> ScanReconstruction:
    """Mean and σ of every pixel of a sparse scan (see the module docstring).

    Args:
        key: PRNG key (SLQ probes, pathwise samples, the fit subset).
        data: a :class:`~jaxscope.images.Scan`, or an ``(H, W)`` / ``(C, H, W)`` array with NaN
            where nothing was measured.
        mask: with an array: ``(H, W)`` bool, True where measured.
        method: ``"auto"``, ``"exact"`` or ``"grid"``.
        kernel: the 1-D kernel (``"matern32"``, ``"matern52"``, ``"rbf"``, ...): a product of
            one per axis, or with the prefix ``"radial:"`` (``"radial:matern32"``) a kernel of
            the scaled Euclidean distance (:class:`~jaxscope.gp.gridded.GridKernel`). Choose
            between them by the log marginal likelihood: on the 256² PFM channels it picked
            the product on height and amplitude, radial on deflection (RMSE 0.96× the
            spline's, product 1.05×), and tied on phase.
        nonstationary: learn the gradient-modulated amplitude (σ large on walls and steps).
        trend: degree of the polynomial trend removed first (0 constant, 1 plane, 2 quadratic).
        fit: hyperparameters from ``"all"`` measurements or a random ``"subset"`` of
            ``fit_points`` a channel.
        map_steps: Adam steps (half as many again for the non-stationary weight).
        exact_max: ``"auto"`` uses the exact GP up to this many measurements a channel.
        num_samples: pathwise draws for the structured solver's σ (relative error of σ²
            ≈ sqrt(2 / num_samples)).
        settings: :class:`~jaxscope.gp.gridded_fit.SolverSettings` of the structured solver.
        chunk_size: prediction chunk of the exact GP.

    Raises:
        ValueError: unknown method, fit, trend or kernel, a channel with fewer than 3 measurements,
            a constant channel, bad sizes.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if fit not in FITS:
        raise ValueError(f"unknown fit {fit!r}; choose one of {FITS}")
    GridKernel(jnp.ones(2), 1.0, kernel)  # unknown kernel names fail here
    if map_steps < 1 or num_samples < 1 or fit_points < 3:
        raise ValueError("map_steps and num_samples must be >= 1, fit_points >= 3")
    scan = _as_scan(data, mask)
    C, H, W = scan.data.shape
    m = np.broadcast_to(np.isfinite(scan.data), (C, H, W))
    counts = m.reshape(C, -1).sum(1)
    spread = np.array([scan.data[c][m[c]].std() for c in range(C)])
    if np.any(spread == 0):
        raise ValueError(f"channel(s) {np.flatnonzero(spread == 0).tolist()} are constant")
    z, shift, scale = standardise(scan.data, m, trend)
    if method == "auto":
        method = "exact" if counts.max() <= exact_max else "grid"
    if method == "exact" and fit == "subset":
        raise ValueError("fit='subset' with method='exact': use fit='all' (exact is small)")
    settings = settings or SolverSettings()
    check_settings(settings)
    dtype = jnp.result_type(float)
    k_fit, k_run = jax.random.split(key)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(k_fit)).ravel()[-1].item())
    fm = m.copy()
    if fit == "subset":
        for c in range(C):
            idx = np.flatnonzero(m[c].ravel())
            if len(idx) > fit_points:
                keep = np.zeros(H * W, bool)
                keep[rng.choice(idx, fit_points, replace=False)] = True
                fm[c] = keep.reshape(H, W)
    spacing = np.sqrt(H * W / counts.astype(float))  # mean distance between measurements, px
    init = {
        "lengthscale": jnp.asarray(
            [lengthscale_start(z[c], m[c], 2.0 * spacing[c], 8.0 * spacing[c]) for c in range(C)],
            dtype,
        ),
        "variance": jnp.ones((C,), dtype),
        "noise": jnp.asarray([noise_start(z[c], m[c]) for c in range(C)], dtype),
    }
    if method == "exact":
        rr, cc = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
        pix = np.stack([rr.ravel(), cc.ravel()], 1).astype(np.float64)
        cap = int(fm.reshape(C, -1).sum(1).max())
        bufs = [
            Observations.from_arrays(pix[fm[c].ravel()], z[c].ravel()[fm[c].ravel()], cap, dtype)
            for c in range(C)
        ]
        obs = jax.tree.map(lambda *a: jnp.stack(a), *bufs)
        p, hist, mean, var = _exact_channels(
            k_run, obs, init, jnp.asarray(pix, dtype), (H, W), name=kernel, steps=map_steps,
            nonstationary=nonstationary, chunk=chunk_size,
        )  # fmt: skip
    else:
        if settings.lattice is None:  # static
            settings = settings._replace(lattice=scan_lattice(m, settings.lattice_rank))
        p, hist, mean, var, iters, floor = _grid_channels(
            k_run, jnp.asarray(z, dtype), jnp.asarray(fm, dtype), jnp.asarray(m, dtype), init,
            name=kernel, steps=map_steps, nonstationary=nonstationary,
            num_samples=num_samples, settings=settings, warm=fit == "all",
        )  # fmt: skip
    sc = scale[:, None, None]
    mean = np.asarray(mean, np.float64) * sc + shift
    var = np.maximum(np.asarray(var, np.float64), 0.0)
    noise = np.asarray(p["noise"], np.float64)
    if method == "grid":
        # the solver's floor (SolverSettings.noise_floor / conditioning) is jitter, as in the
        # exact GP: it regularises the solves (mean and σ) but is not measurement noise, so
        # σ_y adds only the fitted noise (with it, σ_y covered 0.99 of a clean height channel)
        floor = np.asarray(floor, np.float64)
        if np.any(np.asarray(iters) >= settings.max_iter):
            warnings.warn(
                f"PCG reached its cap of {settings.max_iter} iterations (channels "
                f"{np.flatnonzero(np.asarray(iters) >= settings.max_iter).tolist()}): the mean "
                "and σ may be inaccurate; raise SolverSettings.max_iter, noise_floor or "
                "conditioning",
                RuntimeWarning,
                stacklevel=2,
            )
    params = []
    for c in range(C):
        ls = np.asarray(p["lengthscale"][c], np.float64)
        step = [np.mean(np.diff(a)) if len(a) > 1 else 1.0 for a in (scan.y, scan.x)]
        params.append({
            "lengthscale_px": ls.tolist(),
            "lengthscale": (ls * np.abs(step)).tolist(),
            "variance": float(p["variance"][c]) * scale[c] ** 2,
            "noise": float(noise[c]) * scale[c] ** 2,
            **({"warp": float(p["warp"][c])} if "warp" in p else {}),
            "history": np.asarray(hist[c]).tolist(),
            "num_measured": int(counts[c]),
            "num_fit": int(fm[c].sum()),
            **({"cg_iterations": int(np.asarray(iters)[c]),
                "solver_floor": float(floor[c]) * scale[c] ** 2} if method == "grid" else {}),
        })  # fmt: skip
    return ScanReconstruction(
        mean=mean,
        std=np.sqrt(var) * sc,
        std_y=np.sqrt(var + noise[:, None, None]) * sc,
        mask=m,
        method=method,
        params=params,
        scan=scan,
    )


def scan_metrics(rec: ScanReconstruction, truth) -> list[dict[str, float]]:
    """Per channel on unmeasured pixels: RMSE, ±2σ coverage of the truth with the predictive
    σ (noise included; the truth of a real scan is itself a noisy measurement), and the
    Spearman rank correlation between σ and |error|."""
    from scipy.stats import spearmanr

    truth = np.asarray(truth, np.float64).reshape(rec.mean.shape)
    out = []
    for c in range(rec.mean.shape[0]):
        unm = ~rec.mask[c]
        err = (rec.mean[c] - truth[c])[unm]
        out.append({
            "rmse": float(np.sqrt(np.mean(err**2))),
            "coverage": float(np.mean(np.abs(err) <= 2.0 * rec.std_y[c][unm])),
            "coverage_f": float(np.mean(np.abs(err) <= 2.0 * rec.std[c][unm])),
            "sigma_error_rank_corr": float(spearmanr(rec.std[c][unm], np.abs(err)).statistic),
        })  # fmt: skip
    return out
