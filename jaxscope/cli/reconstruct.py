"""Figures and files of ``jaxscope reconstruct``: a 5-panel PNG, metrics JSON and the arrays.

Example:
    >>> rec = reconstruct(jax.random.key(1), h, fraction=0.1)      # jaxscope.gp.reconstruct
    >>> save_reconstruction(rec, "runs/reconstruct")
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


def plot_reconstruction(rec: Reconstruction, path: str, *, dpi: int = 100) -> str:
    """Save a 5-panel PNG (truth, measured pixels, posterior sample, mean, σ); 1500 × 340 px.

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
    rec: Reconstruction, out_dir: str, *, extra: dict[str, Any] | None = None
) -> dict[str, str]:
    """Write ``reconstruct.png``, ``metrics.json`` and ``arrays.npz`` into ``out_dir``.

    ``metrics.json`` holds ``metrics``, the MAP ``hyperparameters`` and ``map_info``, plus
    ``extra`` (e.g. the command's settings and timings). ``arrays.npz`` holds truth, indices,
    measured, mean, std and samples so every metric can be recomputed.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "png": os.path.join(out_dir, "reconstruct.png"),
        "json": os.path.join(out_dir, "metrics.json"),
        "npz": os.path.join(out_dir, "arrays.npz"),
    }
    plot_reconstruction(rec, paths["png"])
    record = {
        "metrics": rec.metrics,
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
    )
    return paths
