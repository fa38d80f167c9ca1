"""Figures and files of ``jaxscope reconstruct``: PNGs, metrics JSON and the arrays.

Two paths: a synthetic surface (:func:`save_reconstruction`: a 5-panel PNG) and a user's scan
(:func:`save_scan_reconstruction`: a row per channel, a calibration figure with the predictive
σ when the truth is known).

Example:
    >>> rec = reconstruct(jax.random.key(1), h, fraction=0.1)      # jaxscope.gp.reconstruct
    >>> save_reconstruction(rec, "runs/reconstruct")
    >>> rec = reconstruct_scan(jax.random.key(0), scan)             # jaxscope.gp.scan
    >>> save_scan_reconstruction(rec, "runs/pfm", truth=full_image)
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ..gp.reconstruct import Reconstruction


def _to_builtin(v: Any) -> Any:
    a = np.asarray(v)
    return a.item() if a.ndim == 0 else a.tolist()


def synthetic_predictive(rec: Reconstruction, noise_std: float, seed: int) -> dict[str, Any]:
    """Predictive check of a noisy synthetic run: re-measure every pixel once more with fresh
    noise of sd ``noise_std`` (seeded by ``seed``) and score it with the predictive σ
    ``std_y = sqrt(σ² + fitted noise variance)``.

    The synthetic truth is the noise-free surface, so ``metrics["calibration"]`` rightly uses
    the noise-free σ; a new *measurement* carries the noise as well and must be compared with
    ``std_y`` (σ alone under-covers it wherever the noise is comparable to σ).
    """
    truth = np.asarray(rec.truth, np.float64)
    std_y = np.sqrt(np.asarray(rec.std, np.float64) ** 2 + float(np.asarray(rec.params["noise"])))
    rng = np.random.default_rng([int(seed), 1])
    remeasured = truth + noise_std * rng.standard_normal(truth.shape)
    err = np.abs(np.asarray(rec.mean, np.float64) - remeasured)
    return {
        "std_y": std_y,
        "remeasured": remeasured,
        "calibration_predictive": float(np.mean(err <= 2.0 * std_y)),
        "calibration_remeasured_noise_free": float(np.mean(err <= 2.0 * np.asarray(rec.std))),
    }


def plot_reconstruction(
    rec: Reconstruction, path: str, *, predictive: dict[str, Any] | None = None, dpi: int = 100
) -> str:
    """Save a 5-panel PNG (truth, measured pixels, posterior sample, mean, σ); 1500 × 340 px.

    The σ panel's title gives the ±2σ coverage of the (noise-free) truth and, for a noisy run
    (``predictive`` from :func:`synthetic_predictive`), the ±2σ_y coverage of a re-measurement.
    Uses matplotlib's object API with the Agg canvas: no pyplot, no global backend change.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    truth = np.asarray(rec.truth)
    size = truth.shape[0]
    sparse = np.full(size * size, np.nan)
    sparse[np.asarray(rec.indices)] = np.asarray(rec.measured)
    vmin, vmax = float(truth.min()), float(truth.max())
    panels = [
        ("truth", truth, "viridis"),
        (
            f"measured ({100 * len(rec.indices) / size**2:.0f}%)",
            sparse.reshape(size, size),
            "viridis",
        ),
        ("posterior sample", np.asarray(rec.samples[0]), "viridis"),
        (f"mean (RMSE {rec.metrics['rmse']:.3f})", np.asarray(rec.mean), "viridis"),
        (f"σ (cover ±2σ {rec.metrics['calibration']:.3f})", np.asarray(rec.std), "magma"),
    ]
    if predictive is not None:
        cal, calp = rec.metrics["calibration"], predictive["calibration_predictive"]
        panels[-1] = (f"σ (±2σ {cal:.3f}, re-measure ±2σ_y {calp:.3f})", *panels[-1][1:])
    fig = Figure(figsize=(15.0, 3.4), dpi=dpi)
    FigureCanvasAgg(fig)
    for i, (title, img, cmap) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        kw = {} if cmap == "magma" else {"vmin": vmin, "vmax": vmax}
        im = ax.imshow(img, cmap=cmap, origin="upper", interpolation="nearest", **kw)
        if cmap == "magma":
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.subplots_adjust(left=0.01, right=0.97, top=0.88, bottom=0.02, wspace=0.08)
    fig.savefig(path, dpi=dpi)
    return path


def save_reconstruction(
    rec: Reconstruction,
    out_dir: str,
    *,
    extra: dict[str, Any] | None = None,
    predictive: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Write ``reconstruct.png``, ``metrics.json`` and ``arrays.npz`` into ``out_dir``.

    ``metrics.json`` holds ``metrics``, the MAP ``hyperparameters`` and ``map_info``, plus
    ``extra`` (e.g. the command's settings and timings). ``arrays.npz`` holds truth, indices,
    measured, mean, std and samples so every metric can be recomputed. With ``predictive``
    (:func:`synthetic_predictive`, noisy runs) ``metrics`` gains ``calibration_predictive``
    and the arrays ``std_y`` and ``remeasured``.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "png": os.path.join(out_dir, "reconstruct.png"),
        "json": os.path.join(out_dir, "metrics.json"),
        "npz": os.path.join(out_dir, "arrays.npz"),
    }
    plot_reconstruction(rec, paths["png"], predictive=predictive)
    metrics = dict(rec.metrics)
    if predictive is not None:
        for k in ("calibration_predictive", "calibration_remeasured_noise_free"):
            metrics[k] = predictive[k]
    record = {
        "metrics": metrics,
        "hyperparameters": {k: _to_builtin(v) for k, v in rec.params.items()},
        "map_info": {k: _to_builtin(v) for k, v in rec.info._asdict().items()},
        "size": int(rec.truth.shape[0]),
        "num_measured": int(rec.indices.shape[0]),
        **(extra or {}),
    }
    with open(paths["json"], "w") as f:
        json.dump(record, f, indent=2)
    np.savez_compressed(
        paths["npz"],
        **{
            k: np.asarray(getattr(rec, k))
            for k in ("truth", "indices", "measured", "mean", "std", "samples")
        },
        **(
            {}
            if predictive is None
            else {k: np.asarray(predictive[k]) for k in ("std_y", "remeasured")}
        ),
    )
    return paths


# --- a user's scan (jaxscope.gp.scan.reconstruct_scan) --------------------------------------------
CAL_K = np.round(np.arange(0.5, 3.0001, 0.25), 2)  # half-widths of the calibration curve, in σ


def gaussian_coverage(k: np.ndarray) -> np.ndarray:
    """Fraction of a Gaussian within ±k standard deviations, ``erf(k / √2)``."""
    from scipy.special import erf

    return erf(np.asarray(k, np.float64) / np.sqrt(2.0))


def heldout_mask(rec: Any, truth: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` pixels that were not given to the GP and where the truth is known."""
    return ~np.asarray(rec.mask, bool) & np.isfinite(truth)


def scan_truth_metrics(rec: Any, truth: np.ndarray) -> list[dict[str, Any]]:
    """Per channel on the held-out pixels (unmeasured, truth known): :func:`scan_metrics`'s
    rmse, coverage (±2σ with the predictive ``std_y``), coverage_f (noise-free σ) and
    sigma_error_rank_corr, plus nrmse, mean_z2 (with ``std_y``), ``num_heldout`` and the
    calibration curve: for each k in :data:`CAL_K` the fraction inside ±k·std_y."""
    from ..gp.scan import scan_metrics

    truth = np.asarray(truth, np.float64)
    held = heldout_mask(rec, truth)
    # scan_metrics scores every pixel outside rec.mask: hide those without a truth
    base = scan_metrics(rec._replace(mask=~held), np.where(held, truth, 0.0))
    out = []
    for c, m in enumerate(base):
        h = held[c]
        err = np.abs(rec.mean[c] - truth[c])[h]
        sy, sf = rec.std_y[c][h], rec.std[c][h]
        out.append({
            **m,
            "nrmse": m["rmse"] / float(np.std(truth[c][h])),
            "mean_z2": float(np.mean((err / np.maximum(sy, 1e-300)) ** 2)),
            "num_heldout": int(h.sum()),
            "calibration_k": CAL_K.tolist(),
            "calibration": [float(np.mean(err <= k * sy)) for k in CAL_K],
            "calibration_noise_free": [float(np.mean(err <= k * sf)) for k in CAL_K],
            "calibration_gaussian": gaussian_coverage(CAL_K).tolist(),
        })  # fmt: skip
    return out


def _unit(u: str) -> str:
    return f" [{u}]" if u else ""


def plot_scan_reconstruction(
    rec: Any, path: str, *, truth: np.ndarray | None = None, metrics: list | None = None,
    dpi: int = 100,
) -> str:  # fmt: skip
    """Per channel a row: measured pixels, mean, σ (noise-free) and, with a truth, |mean - truth|
    (held-out pixels only; measured ones blank). Titles carry the channel's units."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scan = rec.scan
    C = rec.mean.shape[0]
    ncol = 4 if truth is not None else 3
    fig = Figure(figsize=(3.6 * ncol, 3.2 * C), dpi=dpi)
    FigureCanvasAgg(fig)
    held = heldout_mask(rec, truth) if truth is not None else None
    for c in range(C):
        u = _unit(scan.units[c])
        ref = truth[c] if truth is not None else scan.data[c]
        vmin, vmax = float(np.nanmin(ref)), float(np.nanmax(ref))
        shown = np.where(rec.mask[c], scan.data[c], np.nan)
        pct = 100.0 * rec.mask[c].mean()
        panels = [
            (f"{scan.quantities[c]}: measured ({pct:.0f}%){u}", shown, "viridis", True),
            (f"mean{u}", rec.mean[c], "viridis", True),
            (f"σ{u}", rec.std[c], "magma", False),
        ]
        if truth is not None:
            err = np.where(held[c], np.abs(rec.mean[c] - truth[c]), np.nan)
            rmse = metrics[c]["rmse"] if metrics else float(np.sqrt(np.nanmean(err**2)))
            panels.append((f"|error|{u} (RMSE {rmse:.3g})", err, "magma", False))
        for j, (title, img, cmap, shared) in enumerate(panels):
            ax = fig.add_subplot(C, ncol, c * ncol + j + 1)
            kw = {"vmin": vmin, "vmax": vmax} if shared else {}
            im = ax.imshow(img, cmap=cmap, origin="upper", interpolation="nearest", **kw)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.subplots_adjust(left=0.02, right=0.95, top=0.92, bottom=0.03, wspace=0.25, hspace=0.3)
    fig.savefig(path, dpi=dpi)
    return path


def plot_calibration(rec: Any, metrics: list[dict[str, Any]], path: str, *, dpi: int = 100) -> str:
    """Fraction of held-out pixels inside ±kσ of the truth vs k, with the predictive σ (noise
    included, solid) and the noise-free σ (dotted, for reference), against the Gaussian
    expectation (dashed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 4.0), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    k = np.asarray(metrics[0]["calibration_k"])
    ax.plot(k, gaussian_coverage(k), "k--", label="Gaussian erf(k/√2)")
    for c, m in enumerate(metrics):
        (line,) = ax.plot(k, m["calibration"], "o-", label=f"{rec.scan.quantities[c]}: σ_y")
        ax.plot(k, m["calibration_noise_free"], ":", color=line.get_color(),
                label=f"{rec.scan.quantities[c]}: noise-free σ")  # fmt: skip
    ax.set_xlabel("k (interval ±k·σ)")
    ax.set_ylabel("fraction of held-out pixels inside")
    ax.set_ylim(0.0, 1.02)
    ax.set_title("calibration (predictive σ_y includes the noise)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return path


def save_scan_reconstruction(
    rec: Any, out_dir: str, *, truth: np.ndarray | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, str], list[dict[str, Any]] | None]:  # fmt: skip
    """Write ``reconstruct.png``, ``metrics.json``, ``arrays.npz`` and, with a ``truth``
    (``(C, H, W)``, NaN where unknown) that has held-out pixels, ``calibration.png``.

    ``metrics.json``: method, per-channel ``params``, ``metrics`` (None without a truth),
    units, quantities, axis units, shape, plus ``extra`` (settings, timings). ``arrays.npz``:
    mean, std, std_y, mask (``(C, H, W)``, True = given to the GP), data (the input with NaN
    where not given), y, x and truth when known. Returns the paths and the metrics.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "png": os.path.join(out_dir, "reconstruct.png"),
        "json": os.path.join(out_dir, "metrics.json"),
        "npz": os.path.join(out_dir, "arrays.npz"),
    }
    metrics = None
    if truth is not None:
        truth = np.asarray(truth, np.float64).reshape(rec.mean.shape)
        if heldout_mask(rec, truth).reshape(len(truth), -1).any(1).all():
            metrics = scan_truth_metrics(rec, truth)
            paths["calibration"] = os.path.join(out_dir, "calibration.png")
            plot_calibration(rec, metrics, paths["calibration"])
    plot_scan_reconstruction(rec, paths["png"], truth=truth, metrics=metrics)
    scan = rec.scan
    record = {
        "method": rec.method,
        "shape": list(rec.mean.shape),
        "units": list(scan.units),
        "quantities": list(scan.quantities),
        "axis_units": list(scan.axis_units),
        "num_measured": [int(n) for n in rec.mask.reshape(len(rec.mask), -1).sum(1)],
        "params": rec.params,
        "metrics": metrics,
        **(extra or {}),
    }
    with open(paths["json"], "w") as f:
        json.dump(record, f, indent=2)
    arrays = {
        "mean": rec.mean,
        "std": rec.std,
        "std_y": rec.std_y,
        "mask": np.asarray(rec.mask, bool),
        "data": np.where(rec.mask, scan.data, np.nan),
        "y": scan.y,
        "x": scan.x,
    }
    if truth is not None:
        arrays["truth"] = truth
    np.savez_compressed(paths["npz"], **arrays)
    return paths, metrics
