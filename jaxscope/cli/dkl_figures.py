"""The deep-kernel campaign's figure: the structural image with the measured points, the
predicted property map and its uncertainty, and the candidates in the network's latent space."""

from __future__ import annotations

import os

import numpy as np


def dkl_figure(out: str, sim, state, decision, config) -> str:
    """Write ``dkl.png`` to ``out`` and return its name."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    C = np.asarray(sim.candidates)
    img = np.asarray(sim.image)
    img = img[..., 0] if img.ndim == 3 else img
    X = np.asarray(state.obs.X[: int(state.obs.count)])
    mean = np.asarray(decision.pred.mean).mean(0)
    sd = np.sqrt(np.asarray(decision.pred.var).mean(0))
    # the first member's features
    Z = np.asarray(config.surrogate.embed(state.model, sim.candidates))[0]
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    axes[0].imshow(img, cmap="gray", origin="lower")
    axes[0].scatter(X[:, 1], X[:, 0], c=np.arange(len(X)), cmap="autumn", s=12,
                    edgecolors="k", linewidths=0.3)  # fmt: skip
    axes[0].set(title="structure image + measured points (by order)")
    lo, hi = C.min(0), C.max(0)
    grid = np.full((int(hi[0] - lo[0]) + 1, int(hi[1] - lo[1]) + 1), np.nan)
    ij = (C - lo).astype(int)
    for ax, v, title in ((axes[1], mean, "predicted property"), (axes[2], sd, "uncertainty σ")):
        grid[ij[:, 0], ij[:, 1]] = v
        im = ax.imshow(grid.copy(), origin="lower", cmap="viridis",
                       extent=(lo[1], hi[1], lo[0], hi[0]))  # fmt: skip
        fig.colorbar(im, ax=ax, shrink=0.85)
        ax.set(title=title)
    sc = axes[3].scatter(Z[:, 0], Z[:, 1 % Z.shape[1]], c=mean, s=4, cmap="viridis")
    idx = np.asarray(state.history.index).ravel()
    idx = idx[idx >= 0]
    axes[3].scatter(Z[idx, 0], Z[idx, 1 % Z.shape[1]], c="r", s=10, marker="x")
    fig.colorbar(sc, ax=axes[3], shrink=0.85)
    axes[3].set(title="latent embedding (colour: prediction; x: chosen)", xlabel="z1", ylabel="z2")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "dkl.png"), dpi=110)
    plt.close(fig)
    return "dkl.png"
