r"""Replay instruments: a measured spectral image played back as a digital twin.

A spectral image (``cube`` of shape ``(H, W, n)``: one spectrum of ``n`` points at every pixel,
e.g. a band-excitation piezoresponse loop per pixel of a BEPS map) becomes an
:class:`~jaxscope.instruments.ImageTwin`: measuring pixel ``x`` returns the spectrum recorded
there (the instrument's own noise is in it; replay adds none), the twin's scalarizer reduces it to
the campaign's target, and ``truth`` is the same scalarizer of every recorded spectrum, so a
campaign on a replay is scored against what the instrument would have returned.

A campaign needs a *structure image* to look patches up in. A BEPS file holds spectra only, so
:func:`zero_bias_image` derives one from them: the piezoresponse at zero DC bias, read at the
cycle's zero crossings — at the start of the triangle (as-grown state) and halfway (after the
positive half-cycle). Those two readouts are what a PFM image at 0 V records; they carry the
domain and wall structure without being the target (the loop area integrates the whole
cycle).

:func:`read_nsid` reads a spectral image from an NSID/HDF5 file (the sidpy/pyNSID layout:
a dataset with ``DIMENSION_LABELS`` and dimension scales); :func:`beps_replay` wires the two for
a BEPS map such as the measured PbTiO3 dataset of the digital-twin DKL demonstrations.
"""

# No ``from __future__ import annotations`` here: equinox cannot parse stringified AbstractVar
# annotations.

import os

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .pfm import SCALARIZERS as LOOP_SCALARIZERS
from .twin import ImageTwin, check_twin_args, twin_grid

__all__ = ["SpectralReplay", "zero_bias_image", "read_nsid", "beps_replay"]


def zero_bias_image(
    cube: Float[ArrayLike, "H W n"], axis: Float[ArrayLike, " n"]
) -> Float[Array, "H W 2"]:
    """The response at zero bias, at the first two zero crossings of ``axis``.

    ``axis`` is the voltage of each step of one cycle; the crossings are the steps where
    ``|V|`` is smallest and the sign of the sweep changes between them (for the BEPS triangle
    ``0 → +V → -V → 0``: step 0 and the step halfway). Channel 0 is the first crossing, channel 1
    the second.
    """
    cube = jnp.asarray(cube, jnp.float32)
    v = np.asarray(axis, np.float64)
    if cube.ndim != 3 or v.shape != (cube.shape[-1],):
        raise ValueError(
            f"zero_bias_image: need a cube (H, W, n) and an axis (n,), got {cube.shape} "
            f"and {v.shape}"
        )
    scale = np.max(np.abs(v))
    if not scale > 0:
        raise ValueError("zero_bias_image: the voltage axis is zero everywhere")
    near = np.flatnonzero(np.abs(v) <= 1e-6 * scale)
    if near.size < 2:  # no exact zeros: take the sign changes of the sweep
        near = np.flatnonzero(np.sign(v[:-1]) != np.sign(v[1:]))
    if near.size < 2:
        raise ValueError("zero_bias_image: the voltage axis crosses zero fewer than twice")
    return jnp.stack([cube[..., near[0]], cube[..., near[1]]], -1)


class SpectralReplay(ImageTwin):
    """A recorded spectral image as a twin (build it with :meth:`from_cube`).

    ``cube`` ``(H, W, n)`` holds the recorded spectra, ``axis`` ``(n,)`` their abscissa; the
    structure ``image`` is given or derived (:func:`zero_bias_image`).
    """

    image: Float[Array, "H W c"]
    axis: Float[Array, " n"]
    cube: Float[Array, "H W n"]
    candidates: Float[Array, "m 2"]
    bounds: Float[Array, "2 2"]
    dwell: Float[Array, ""]
    speed: Float[Array, ""]
    window: int = eqx.field(static=True)
    scalarizer: str = eqx.field(static=True)
    maximize: bool = eqx.field(static=True)
    name: str = eqx.field(static=True)

    @classmethod
    def from_cube(
        cls,
        cube: Float[ArrayLike, "H W n"],
        axis: Float[ArrayLike, " k"],  # k == n is checked with a message naming both
        window: int = 16,
        scalarizer: str = "loop_area",
        image: Float[ArrayLike, "H W *c"] | None = None,
        *,
        dwell: float = 1.0,
        speed: float = 1.0,
        name: str = "replay",
    ) -> "SpectralReplay":
        """A replay of ``cube`` (rows and columns are its first two dimensions).

        Args:
            cube: ``(H, W, n)`` recorded spectra; must be square and finite (a NaN pixel is
                refused by position: a replay cannot invent a measurement).
            axis: ``(n,)`` the spectra's abscissa (voltage of each loop step).
            window: patch side; the candidates are the pixels with a whole window.
            scalarizer: a loop scalarizer (:data:`jaxscope.instruments.pfm.SCALARIZERS`).
            image: ``(H, W)`` or ``(H, W, c)`` structure image; default
                :func:`zero_bias_image`.
            dwell, speed: cost model (one spectrum; probe speed in image sides per unit).
        """
        cube = np.asarray(cube, np.float64)
        v = np.asarray(axis, np.float64)
        if cube.ndim != 3:
            raise ValueError(f"{name}: the cube must be (H, W, n), got shape {cube.shape}")
        H, W, n = cube.shape
        if H != W:
            raise ValueError(f"{name}: the replay needs a square image, got {H}×{W}")
        if v.shape != (n,):
            raise ValueError(f"{name}: axis has shape {v.shape}, the spectra have {n} points")
        bad = np.argwhere(~np.isfinite(cube).all(-1))
        if bad.size:
            raise ValueError(
                f"{name}: {len(bad)} pixel(s) hold non-finite spectra, first at (row, col) = "
                f"{tuple(int(i) for i in bad[0])}"
            )
        if not np.isfinite(v).all():
            raise ValueError(f"{name}: the axis holds non-finite values")
        check_twin_args(H, window, 0.0, min_size=2, scalarizer=scalarizer,
                        valid=LOOP_SCALARIZERS, twin=name)  # fmt: skip
        img = zero_bias_image(cube, v) if image is None else jnp.asarray(image, jnp.float32)
        if img.shape[:2] != (H, W) or img.ndim not in (2, 3):
            raise ValueError(f"{name}: image has shape {img.shape}, the cube is {H}×{W}")
        if img.ndim == 2:
            img = img[..., None]
        if not bool(jnp.isfinite(img).all()):
            raise ValueError(f"{name}: the structure image holds non-finite values")
        C, bounds = twin_grid(H, window)
        f32 = jnp.float32
        return cls(img, jnp.asarray(v, f32), jnp.asarray(cube, f32), C, bounds, f32(dwell),
                   f32(speed), window, scalarizer, True, name)  # fmt: skip

    def clean_spectrum(self, x: Float[Array, " 2"]) -> Float[Array, " n"]:
        """The spectrum recorded at pixel ``x``."""
        r, c = self.pixel(x)
        return self.cube[r, c]

    def spectrum(self, key: PRNGKeyArray, x: Float[Array, " 2"]) -> Float[Array, " n"]:
        """The recorded spectrum at ``x`` (``key`` unused: the recording holds its noise)."""
        del key
        return self.clean_spectrum(x)

    def scalarize(self, spec: Float[Array, " n"]) -> Float[Array, ""]:
        """The :attr:`scalarizer` of the loop ``spec`` against :attr:`axis`."""
        from .. import scalarizers

        return getattr(scalarizers, self.scalarizer)(self.axis, spec)


def read_nsid(
    path: str | os.PathLike, dataset: str | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Read a spectral image from an NSID/HDF5 file.

    Args:
        path: the ``.h5`` file.
        dataset: path of the main dataset inside it; default: the only dataset that has
            ``DIMENSION_LABELS`` (an error names the candidates when there are several).

    Returns:
        ``(data, axes)``: the dataset as float64 and ``{label: scale}`` for each dimension
        (the attached dimension scale, or ``arange`` when a dimension has none).
    """
    import h5py

    if not os.path.exists(path):
        raise FileNotFoundError(f"read_nsid: no file at {os.fspath(path)!r}")
    with h5py.File(path, "r") as f:
        if dataset is None:
            found = []
            f.visititems(
                lambda n, o: (
                    found.append(n)
                    if isinstance(o, h5py.Dataset) and "DIMENSION_LABELS" in o.attrs
                    else None
                )
            )
            if len(found) != 1:
                raise ValueError(
                    f"read_nsid: {len(found)} datasets with DIMENSION_LABELS in {path!r} "
                    f"({found}); name one with dataset="
                )
            dataset = found[0]
        if dataset not in f:
            raise KeyError(f"read_nsid: no dataset {dataset!r} in {os.fspath(path)!r}")
        ds = f[dataset]
        data = np.asarray(ds[()], np.float64)
        labels = [str(x.decode() if isinstance(x, bytes) else x)
                  for x in ds.attrs.get("DIMENSION_LABELS", [])]  # fmt: skip
        if len(labels) != data.ndim:
            labels = [f"dim_{k}" for k in range(data.ndim)]
        axes = {}
        for k, lab in enumerate(labels):
            scales = ds.dims[k].values()
            axes[lab] = np.asarray(scales[0][()], np.float64) if scales else np.arange(
                data.shape[k], dtype=np.float64)  # fmt: skip
    return data, axes


def beps_replay(
    path: str | os.PathLike,
    window: int = 16,
    scalarizer: str = "loop_area",
    *,
    voltage: str = "Voltage",
    **kwargs,
) -> SpectralReplay:
    """A BEPS map in an NSID file as a :class:`SpectralReplay` (structure image:
    :func:`zero_bias_image`). ``voltage`` names the spectral dimension; the other two are rows
    and columns in file order. ``kwargs`` go to :meth:`SpectralReplay.from_cube`."""
    data, axes = read_nsid(path)
    labels = list(axes)
    if voltage not in axes or data.ndim != 3:
        raise ValueError(
            f"beps_replay: need a 3-D dataset with a {voltage!r} dimension, got dimensions "
            f"{labels} of shape {data.shape}"
        )
    cube = np.moveaxis(data, labels.index(voltage), -1)
    return SpectralReplay.from_cube(cube, axes[voltage], window, scalarizer, name="beps_replay",
                                    **kwargs)  # fmt: skip
