r"""Figures of a trained VAE, saved to files: latent manifold, latent traversals, latent maps of
whole images (dense or at found atoms), and loss curves.

Every function draws on a fresh :class:`matplotlib.figure.Figure` (no pyplot state, safe in
scripts and threads), writes it to ``path`` (the format from the suffix: ``.png``, ``.pdf``,
``.svg``), and returns the figure so a notebook can show it and a test can read what was
drawn. The decoded images come from :func:`jaxscope.vae.inference.decode`, the one decoding
path of the package.

* :func:`manifold_grid` / :func:`plot_manifold` — decode a ``d × d`` grid of two content
  latents (the others 0) into a mosaic: column ``j`` has ``z_a = v_j``, row ``i`` has
  ``z_b = v_{d-1-i}`` (larger values on top), ``v`` evenly spaced on ``z_range``.
* :func:`plot_traversals` — one row per content latent (and, for invariant models, one row of
  angles): that latent swept over ``z_range``, the rest 0.
* :func:`plot_latent_maps` — the maps of :func:`~jaxscope.vae.inference.latent_map` (one panel
  per scalar field and per component of vector fields), next to the image.
* :func:`plot_atom_latents` — latents at atom positions (the atoms → patches → latents
  pipeline), as coloured points over the image.
* :func:`plot_loss_curves` — the per-epoch history of :func:`~jaxscope.vae.trainer.train`.

Example:
    >>> fig = plot_manifold(model, res.params, "manifold.png", d=10)
    >>> plot_loss_curves(res.history, "loss.png")
"""

from __future__ import annotations

import math
import os

import numpy as np

from .inference import decode


def _figure(w, h):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h))


def _save(fig, path) -> None:
    path = os.fspath(path)
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    fig.savefig(path, dpi=110)


def _check_range(z_range) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in z_range)
    except (TypeError, ValueError):
        raise ValueError(f"z_range must be a (low, high) pair; got {z_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"z_range must be finite with low < high; got {z_range!r}")
    return lo, hi


def _classes(model, classes, n):
    """One-hot rows for the decoder of a model with categorical latents (class 0 of each
    categorical by default); ``classes`` may be an int (the first categorical's class)."""
    if model.num_discrete == 0:
        if classes is not None:
            raise ValueError("this model has no categorical latent: classes must be None")
        return None
    if classes is None:
        classes = 0
    if isinstance(classes, int | np.integer):
        k0 = model.discrete[0]
        if not 0 <= classes < k0:
            raise ValueError(f"classes must be in [0, {k0}); got {classes}")
        row = np.zeros(model.num_discrete, np.float32)
        row[int(classes)] = 1.0
        pos = k0
        for k in model.discrete[1:]:
            row[pos] = 1.0
            pos += k
        return np.tile(row, (n, 1))
    return np.broadcast_to(np.asarray(classes, np.float32), (n, model.num_discrete))


def _as_images(x: np.ndarray) -> np.ndarray:
    """(n, h, w[, c]) decoder means → (n, h, w) or (n, h, w, 3) for imshow."""
    x = np.asarray(x)
    if x.ndim == 4:
        x = x[..., 0] if x.shape[-1] != 3 else x
    return x


def manifold_grid(
    model, params, *, d: int = 10, z_range=(-2.0, 2.0), dims=(0, 1), angle: float = 0.0,
    classes=None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    r"""The decoded ``d × d`` latent grid: ``(z (d·d, latent_dim), decoded (d, d, *shape))``.

    ``z[i·d + j]`` has ``z[dims[0]] = v_j``, ``z[dims[1]] = v_{d−1−i}``, the other latents 0,
    ``v = linspace(*z_range, d)``; ``decoded[i, j]`` is its decoder mean at ``angle``.

    Example:
        >>> z, imgs = manifold_grid(model, params, d=8)
    """
    if not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be a positive int; got {d!r}")
    lo, hi = _check_range(z_range)
    a, b = (int(i) for i in dims)
    L = model.latent_dim
    if not (0 <= a < L and 0 <= b < L and (a != b or L == 1)):
        raise ValueError(f"dims must be two distinct latents in [0, {L}); got {dims}")
    v = np.linspace(lo, hi, d, dtype=np.float32)
    z = np.zeros((d * d, L), np.float32)
    z[:, a] = np.tile(v, d)
    if b != a:
        z[:, b] = np.repeat(v[::-1], d)
    out = decode(model, params, z, angle=angle, classes=_classes(model, classes, d * d))
    return z, out.reshape(d, d, *out.shape[1:])


def mosaic(decoded: np.ndarray) -> np.ndarray:
    """``(d, d, h, w[, c])`` images → one ``(d·h, d·w[, c])`` array (row-major tiles)."""
    imgs = _as_images(decoded.reshape(-1, *decoded.shape[2:]))
    d0, d1 = decoded.shape[:2]
    h, w = imgs.shape[1:3]
    tiles = imgs.reshape(d0, d1, h, w, *imgs.shape[3:])
    return np.concatenate([np.concatenate(list(row), axis=1) for row in tiles], axis=0)


def plot_manifold(
    model, params, path, *, d: int = 10, z_range=(-2.0, 2.0), dims=(0, 1), angle: float = 0.0,
    classes=None, cmap: str = "viridis",
):  # fmt: skip
    """Draw :func:`manifold_grid` as one mosaic (images) or a grid of curves (spectra), save it
    to ``path`` and return the figure; the mosaic is the figure's first axes' image.

    Example:
        >>> fig = plot_manifold(model, params, "runs/manifold.png", d=12)
    """
    z, dec = manifold_grid(model, params, d=d, z_range=z_range, dims=dims, angle=angle,
                           classes=classes)  # fmt: skip
    lo, hi = _check_range(z_range)
    if model.output_spatial == 1:  # spectra: a d × d grid of small curves
        fig = _figure(1.2 * d, 1.0 * d)
        axs = fig.subplots(d, d, squeeze=False, sharex=True, sharey=True)
        for i in range(d):
            for j in range(d):
                axs[i, j].plot(dec[i, j].reshape(dec.shape[2], -1))
                axs[i, j].set(xticks=[], yticks=[])
        fig.suptitle(f"latent manifold: z{dims[0] + 1} → columns, z{dims[1] + 1} ↑ rows "
                     f"on [{lo:g}, {hi:g}]")  # fmt: skip
    else:
        fig = _figure(7, 6.3)
        ax = fig.add_subplot()
        m = mosaic(dec)
        ax.imshow(m, cmap=cmap, extent=(lo, hi, lo, hi), interpolation="nearest")
        ax.set(xlabel=f"z{dims[0] + 1}", ylabel=f"z{dims[1] + 1}",
               title=f"latent manifold ({d}×{d}, angle {angle:g} rad)")  # fmt: skip
    _save(fig, path)
    return fig


def plot_traversals(
    model, params, path, *, steps: int = 9, z_range=(-2.0, 2.0), classes=None,
    cmap: str = "viridis",
):  # fmt: skip
    """Sweep each content latent over ``z_range`` (the others 0), one row each; invariant
    models get a last row decoded at ``steps`` angles on ``[0, 2π)`` (z = 0). Returns the
    figure; ``fig.traversals`` holds the decoded rows ``(rows, steps, *shape)``.

    Example:
        >>> fig = plot_traversals(model, params, "runs/traversals.png")
    """
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an int >= 2; got {steps!r}")
    lo, hi = _check_range(z_range)
    L = model.latent_dim
    v = np.linspace(lo, hi, steps, dtype=np.float32)
    rows, labels = [], []
    cls = _classes(model, classes, steps)
    for k in range(L):
        z = np.zeros((steps, L), np.float32)
        z[:, k] = v
        rows.append(decode(model, params, z, classes=cls))
        labels.append(f"z{k + 1}")
    if "r" in model.invariances:
        angles = np.linspace(0.0, 2 * np.pi, steps, endpoint=False, dtype=np.float32)
        rows.append(decode(model, params, np.zeros((steps, L), np.float32), angle=angles,
                           classes=cls))  # fmt: skip
        labels.append("angle")
    dec = np.stack(rows)
    lo_v, hi_v = float(dec.min()), float(dec.max())  # one colour scale for every panel
    fig = _figure(1.1 * steps + 0.8, 1.1 * len(rows) + 0.6)
    axs = fig.subplots(len(rows), steps, squeeze=False)
    for i, row in enumerate(dec):
        for j in range(steps):
            ax = axs[i, j]
            if model.output_spatial == 1:
                ax.plot(row[j].reshape(row.shape[1], -1))
            else:
                ax.imshow(_as_images(row[j][None])[0], cmap=cmap, interpolation="nearest",
                          vmin=lo_v, vmax=hi_v)  # fmt: skip
            ax.set(xticks=[], yticks=[])
        axs[i, 0].set_ylabel(labels[i])
    fig.suptitle(f"latent traversals on [{lo:g}, {hi:g}]")
    fig.traversals = dec
    _save(fig, path)
    return fig


def plot_latent_maps(maps: dict, path, *, image=None, cmap: str = "viridis"):
    """One panel per map of :func:`~jaxscope.vae.inference.latent_map` (scalar fields as they
    are, vector fields one component each, ``angle`` with a cyclic colour map), the image
    first when given. Returns the figure; panel ``k``'s image array is the map drawn.

    Example:
        >>> plot_latent_maps(latent_map(model, params, img, 28), "maps.png", image=img)
    """
    if not isinstance(maps, dict) or not maps:
        raise ValueError("maps must be a non-empty dict name -> (H, W[, k]) array")
    panels = [] if image is None else [("image", np.asarray(image), "gray")]
    for name, m in maps.items():
        m = np.asarray(m)
        if m.ndim == 2:
            panels.append((name, m, "twilight" if name == "angle" else cmap))
        elif m.ndim == 3:
            panels += [(f"{name}[{k}]", m[..., k], cmap) for k in range(m.shape[-1])]
        else:
            raise ValueError(f"map {name!r} must be (H, W) or (H, W, k); got {m.shape}")
    ncol = min(4, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig = _figure(4 * ncol, 3.6 * nrow)
    axs = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, (title, m, cm) in zip(axs, panels, strict=False):
        im = ax.imshow(m[..., 0] if m.ndim == 3 and m.shape[-1] not in (3, 4) else m, cmap=cm)
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set(title=title, xticks=[], yticks=[])
    for ax in axs[len(panels) :]:
        ax.set_axis_off()
    fig.tight_layout()
    _save(fig, path)
    return fig


def plot_atom_latents(image, positions, values: dict, path, *, cmap: str = "viridis"):
    """Latents of patches cut at atom ``positions`` (``(n, 2)`` row, col) drawn as coloured
    points over ``image``, one panel per entry of ``values`` (``(n,)`` arrays; ``angle``
    with a cyclic colour map). Returns the figure.

    Example:
        >>> plot_atom_latents(img, atoms, {"angle": enc.angle, "z1": enc.z[:, 0]}, "atoms.png")
    """
    pos = np.asarray(positions, np.float64)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise ValueError(f"positions must be (n, 2) (row, col); got {pos.shape}")
    if not isinstance(values, dict) or not values:
        raise ValueError("values must be a non-empty dict name -> (n,) array")
    for name, v in values.items():
        if np.shape(v) != (len(pos),):
            raise ValueError(f"values[{name!r}] must be ({len(pos)},); got {np.shape(v)}")
    n = len(values)
    fig = _figure(4.5 * n, 4)
    axs = fig.subplots(1, n, squeeze=False)[0]
    for ax, (name, v) in zip(axs, values.items(), strict=True):
        ax.imshow(np.asarray(image), cmap="gray")
        sc = ax.scatter(pos[:, 1], pos[:, 0], c=np.asarray(v), s=14,
                        cmap="twilight" if name == "angle" else cmap)  # fmt: skip
        fig.colorbar(sc, ax=ax, shrink=0.8)
        ax.set(title=name, xticks=[], yticks=[])
    fig.tight_layout()
    _save(fig, path)
    return fig


def plot_loss_curves(history: dict, path, *, names=None):
    """Per-epoch curves of ``history`` (``TrainResult.history``): one panel per term with any
    non-zero value (or the given ``names``). Returns the figure; panel ``k``'s line is the
    history array.

    Example:
        >>> plot_loss_curves(res.history, "runs/loss.png")
    """
    if not isinstance(history, dict) or not history:
        raise ValueError("history must be a non-empty dict name -> (epochs,) array")
    if names is None:
        names = [k for k, v in history.items() if np.size(v) and np.any(np.asarray(v) != 0)]
        names = names or list(history)
    missing = [k for k in names if k not in history]
    if missing:
        raise ValueError(f"history has no {missing}; it has {sorted(history)}")
    fig = _figure(3.6 * len(names), 3.2)
    axs = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, k in zip(axs, names, strict=True):
        h = np.asarray(history[k], np.float64)
        ax.plot(np.arange(1, len(h) + 1), h, marker="o", ms=3)
        ax.set(title=k, xlabel="epoch")
    fig.tight_layout()
    _save(fig, path)
    return fig
