r"""Image → atoms → patches → VAE latents → latent map, in one call.

:func:`atoms_to_latents` finds the atom columns of an image with a trained U-Net ensemble
(:func:`~jaxscope.vae.atoms.find_atoms`), rounds each to its pixel, cuts the ``window``-sided
patch around it with :func:`jaxscope.images.extract` (the window of pixel ``(i, j)`` starts
at ``(i - window//2, j - window//2)``, the convention the generator's
:func:`~jaxscope.vae.lattice_patches.lattice_patches` centres its sites on, so an rVAE
trained there sees the same framing), encodes every patch with
:func:`~jaxscope.vae.encode` (content ``z``, angle, shift, class probabilities: whatever the
model has), and paints the per-atom values into ``(H, W)`` maps: each pixel takes the value
of its nearest atom when that lies within ``paint_radius`` (default half the median
nearest-neighbour distance of the found atoms, so each atom gets a disc of its own), NaN
elsewhere. Atoms too close to the edge for a whole window are left out (and counted).

Example:
    >>> out = atoms_to_latents(image, UNet(), fit.params, model, res.params, window=28)
    >>> out.positions.shape, out.encoding.z.shape, out.maps["angle"].shape
    ((m, 2), (m, 2), (H, W))
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import spatial

from ..images.patches import NORMALIZE, extract
from .atoms import find_atoms
from .inference import Encoding, encode
from .unet import UNet


class AtomLatents(NamedTuple):
    """The pipeline's output (NumPy).

    Attributes:
        positions: ``(m, 2)`` sub-pixel column centres (those with a whole window).
        pixels: ``(m, 2)`` the pixel each patch is centred on.
        classes: ``(m,)`` U-Net class (:data:`~jaxscope.vae.lattice.MASK_CLASSES`).
        uncertainty: ``(m,)`` ensemble disagreement (:class:`~jaxscope.vae.atoms.FoundAtoms`).
        patches: ``(m, window, window[, c])`` the encoded patches.
        encoding: the :class:`~jaxscope.vae.Encoding` of the patches, one row per atom.
        maps: name → ``(H, W)`` (``(H, W, k)`` for vector fields) painted maps of every
            encoding field, plus ``"index"`` (the atom each pixel belongs to, -1 none).
        dropped: atoms found but left out (no whole window, or a pixel taken twice).
    """

    positions: np.ndarray
    pixels: np.ndarray
    classes: np.ndarray
    uncertainty: np.ndarray
    patches: np.ndarray
    encoding: Encoding
    maps: dict[str, np.ndarray]
    dropped: int


def paint(
    positions: np.ndarray, values: np.ndarray, shape: tuple[int, int], radius: float
) -> np.ndarray:
    """``(H, W[, k])``: each pixel the value of its nearest point within ``radius``, else
    NaN (``-1`` for integer values)."""
    values = np.asarray(values)
    H, W = shape
    ii, jj = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    fill = -1 if np.issubdtype(values.dtype, np.integer) else np.nan
    out = np.full((H * W, *values.shape[1:]), fill, values.dtype if fill == -1 else np.float32)
    if len(positions):
        d, k = spatial.cKDTree(positions).query(np.stack([ii.ravel(), jj.ravel()], 1))
        near = d <= radius
        out[near] = values[k[near]]
    return out.reshape(H, W, *values.shape[1:])


def atoms_to_latents(
    image,
    net: UNet | None,
    unet_params: dict | None,
    model,
    vae_params: dict,
    *,
    window: int | None = None,
    normalize: str = "minmax",
    threshold: float = 0.5,
    min_size: int = 2,
    paint_radius: float | None = None,
    positions=None,
    batch_size: int = 1000,
) -> AtomLatents:
    """Find the atoms of ``image`` ``(H, W)``, encode the patch around each with a VAE and
    paint latent maps (module docstring).

    Args:
        image: the raw image (the U-Net standardises it itself).
        net, unet_params: the U-Net and its trained ensemble
            (:func:`~jaxscope.vae.unet.train_unet`).
        model, vae_params: a 2-D image VAE of this package (e.g. an rVAE) and its weights.
        window: patch side; default the model's patch side.
        normalize: patch normalisation of :func:`jaxscope.images.extract` (``"minmax"``
            keeps a Bernoulli likelihood's ``[0, 1]``); use what the VAE was trained with.
        threshold, min_size: blob detection of :func:`~jaxscope.vae.atoms.find_atoms`.
        paint_radius: pixels painted around each atom (default: half the median
            nearest-neighbour distance).
        positions: ``(m, 2)`` atoms found otherwise (e.g. by
            :func:`~jaxscope.vae.atoms.peak_finder`): used instead of the U-Net (``net`` and
            ``unet_params`` may then be None; classes are -1, uncertainties NaN).
    """
    img = np.asarray(image, np.float32)
    if img.ndim != 2:
        raise ValueError(f"image must be (H, W); got {img.shape}")
    if model.spatial != 2:
        raise ValueError("atoms_to_latents needs a VAE of 2-D image patches")
    window = model.shape[0] if window is None else window
    if tuple(model.shape[:2]) != (window, window):
        raise ValueError(f"window {window} does not give the model's patch shape {model.shape}")
    if normalize not in NORMALIZE:
        raise ValueError(f"unknown normalize {normalize!r}; use one of {NORMALIZE}")
    H, W = img.shape
    if positions is None:
        found = find_atoms(net, unet_params, img, threshold=threshold, min_size=min_size)
        found_pos, found_cls, found_unc = found.positions, found.classes, found.uncertainty
    else:
        found_pos = np.asarray(positions, np.float64)
        if found_pos.ndim != 2 or found_pos.shape[1] != 2 or not np.all(np.isfinite(found_pos)):
            raise ValueError(f"positions must be finite (m, 2) (row, col); got {found_pos.shape}")
        found_cls = np.full(len(found_pos), -1)
        found_unc = np.full(len(found_pos), np.nan)
    pix = np.round(found_pos).astype(np.int64)
    o = window // 2
    ok = (pix[:, 0] >= o) & (pix[:, 0] <= H - window + o) & (pix[:, 1] >= o)
    ok &= pix[:, 1] <= W - window + o
    _, first = np.unique(pix[:, 0] * W + pix[:, 1], return_index=True)
    unique = np.zeros(len(pix), bool)
    unique[first] = True
    keep = np.flatnonzero(ok & unique)
    pos, pix = found_pos[keep], pix[keep]
    if len(keep) == 0:
        raise ValueError("no atom found with a whole window in the image")
    P = extract(img, window, pix.astype(np.float32), normalize=normalize)
    patches = np.asarray(P.patches)
    enc = encode(model, vae_params, patches, batch_size=batch_size)
    if paint_radius is None:
        nn = spatial.cKDTree(pos).query(pos, k=2)[0][:, 1] if len(pos) > 1 else [window / 4]
        paint_radius = 0.5 * float(np.median(nn))
    maps = {"index": paint(pos, np.arange(len(pos)), (H, W), paint_radius)}
    for name, val in enc._asdict().items():
        if val is not None:
            maps[name] = paint(pos, val, (H, W), paint_radius)
    return AtomLatents(
        pos, pix, found_cls[keep], found_unc[keep], patches, enc, maps, len(found_pos) - len(keep)
    )
