r"""Load a scan as it comes from a microscope (a ``.npy`` array, HDF5 / pycroscopy NSID
dataset(s), or scattered measurements) into one host-side NumPy (not jitted) :class:`Scan`:
``C`` channels on an ``H × W`` grid (rectangular is fine), float64, NaN where unmeasured.

Mask rule: a pixel of a channel is measured when its value is finite and, if ``mask`` is
given, the mask is True there (values outside it are ignored: they become NaN).
:attr:`Scan.mask` is ``(H, W)`` when every channel has the same measured pixels, else
``(C, H, W)``, one per channel (:attr:`Scan.common_mask`: ``(H, W)``, measured in every
channel). Each channel needs at least 3 measured pixels.

Coordinates: ``y`` for the rows (the array's first spatial axis), ``x`` for the columns, in
:attr:`Scan.axis_units`; pixel indices (units ``""``) when the source has none. NSID files often
label axis 0 ``"x"``: the array's order is kept (rows = axis 0, whatever its label), each axis
taking the dimension scale attached to it. Several datasets must agree on their coordinates;
the first one's axis units are used.

HDF5 ``dataset=``: a path inside the file, a list of paths (channels of one shape), or None
for the file's only 2-D/3-D dataset. A 3-D dataset with exactly one ``SPECTRAL`` dimension
scale (NSID) is a stack of channels along that axis; other 3-D arrays take ``channel_axis``
(0 or -1), else their only small axis (size ≤ 16). ``channels=`` (index, indices, slice) picks.

Example:
    >>> s = load_scan("pfm.h5", [f"Measurement_000/Channel_{k}/Channel_{k}/Channel_{k}"
    ...                          for k in range(4)])
    >>> s.data.shape, s.units, s.axis_units        # ((4, 256, 256), ('m', ..., 'deg'), ('m', 'm'))
    >>> s = scan_from_points(rc, values, (64, 80))  # pixel indices, duplicates averaged
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from jaxtyping import ArrayLike

SMALL_AXIS = 16  # an axis this small is taken for the channel axis when it is the only one

Channels = int | np.integer | slice | Sequence[int] | np.ndarray | None
Path = str | os.PathLike
Numbers = ArrayLike | Sequence  # arrays, scalars or (nested) lists
Real = int | float | np.number


class Scan(NamedTuple):
    """A loaded scan (host-side NumPy arrays).

    Attributes:
        data: ``(C, H, W)`` float64, NaN where unmeasured.
        mask: ``(H, W)`` bool (True = measured) when all channels share their measured pixels,
            else ``(C, H, W)``, one mask per channel.
        y: ``(H,)`` row coordinates (pixel index when unknown).
        x: ``(W,)`` column coordinates.
        units: per channel (``""`` when unknown).
        quantities: per channel names.
        axis_units: units of ``(y, x)`` (``""`` for pixel indices).
    """

    data: np.ndarray
    mask: np.ndarray
    y: np.ndarray
    x: np.ndarray
    units: tuple[str, ...]
    quantities: tuple[str, ...]
    axis_units: tuple[str, str]

    @property
    def common_mask(self) -> np.ndarray:
        """``(H, W)`` pixels measured in every channel."""
        return self.mask if self.mask.ndim == 2 else self.mask.all(0)


def _text(v: object) -> str:
    """An attribute as a string (h5py gives bytes, numpy bytes or 1-element arrays)."""
    v = (v.reshape(-1)[0] if v.size == 1 else v.tolist()) if isinstance(v, np.ndarray) else v
    if isinstance(v, bytes | np.bytes_):
        return v.decode("utf-8", "replace")
    return "" if v is None else str(v)


def _per_channel(v: str | Sequence[str] | None, C: int, what: str, default: str) -> tuple:
    if v is None:
        return tuple(default.format(k) for k in range(C))
    if isinstance(v, str):
        return (v,) * C
    v = tuple(_text(u) for u in v)
    if len(v) != C:
        raise ValueError(f"{len(v)} {what} for {C} channels")
    return v


def _coords(c: Numbers | None, n: int, name: str) -> np.ndarray:
    c = np.arange(n, dtype=np.float64) if c is None else np.asarray(c, np.float64).reshape(-1)
    if c.shape != (n,):
        raise ValueError(f"{name} has {c.size} coordinates for {n} pixels")
    if not np.all(np.isfinite(c)):
        raise ValueError(f"non-finite {name} coordinates")
    return c


def _as_mask(mask: Numbers | Path, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(mask, str | os.PathLike):
        if not os.path.isfile(mask):
            raise ValueError(f"mask file not found: {os.fspath(mask)!r}")
        mask = np.load(mask, allow_pickle=False)
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        if m.dtype.kind not in "iuf" or not np.isin(m, (0, 1)).all():
            raise ValueError(f"mask must be boolean (True = measured), got dtype {m.dtype}")
        m = m.astype(bool)
    if m.shape != shape[1:] and m.shape != shape:
        raise ValueError(f"mask shape {m.shape} does not match the image shape {shape[1:]}")
    return np.broadcast_to(m, shape)


def _channel_axis(shape: tuple[int, ...], channel_axis: int | None) -> int:
    if channel_axis is not None:
        if channel_axis not in (0, -1, 2):
            raise ValueError(f"channel_axis must be 0 or -1, got {channel_axis}")
        return 0 if channel_axis == 0 else 2
    small = [a for a, n in enumerate(shape) if n <= SMALL_AXIS]
    if len(small) != 1 or small[0] == 1:
        raise ValueError(
            f"cannot tell the channel axis of an array of shape {shape}: pass channel_axis=0 "
            "(C, H, W) or channel_axis=-1 (H, W, C)"
        )
    return small[0]


def _select(data: np.ndarray, channels: Channels) -> np.ndarray:
    idx = np.arange(data.shape[0])
    if channels is None:
        return idx
    try:
        sel = idx[channels] if isinstance(channels, slice) else idx[np.asarray(channels, int)]
    except IndexError as e:
        raise ValueError(f"channels {channels!r} out of range for {data.shape[0]} channels") from e
    sel = np.atleast_1d(sel)
    if sel.size == 0:
        raise ValueError(f"channels {channels!r} selects no channel")
    return sel


def scan_from_array(
    array: Numbers,
    mask: Numbers | Path | None = None,
    *,
    channel_axis: int | None = None,
    y: Numbers | None = None,
    x: Numbers | None = None,
    units: str | Sequence[str] | None = None,
    quantities: str | Sequence[str] | None = None,
    axis_units: tuple[str, str] = ("", ""),
    channels: Channels = None,
) -> Scan:
    """A :class:`Scan` from an ``(H, W)`` image or a 3-D stack (channels on ``channel_axis``:
    0 or -1; by default the only axis of size ≤ 16). NaN / inf pixels are unmeasured; ``mask``
    (bool ``(H, W)`` or ``(C, H, W)``, or a ``.npy`` path) marks the measured pixels."""
    a = np.asarray(array)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"values of dtype {a.dtype}: expected real numbers (complex: pass a part)")
    if a.ndim == 2:
        if channel_axis is not None:
            raise ValueError(f"channel_axis={channel_axis} given for a 2-D (H, W) array")
        a = a[None]
    elif a.ndim == 3:
        a = np.moveaxis(a, _channel_axis(a.shape, channel_axis), 0)
    else:
        raise ValueError(f"expected a 2-D (H, W) or 3-D image, got {a.ndim}-D shape {a.shape}")
    data = np.array(a, dtype=np.float64)
    C, H, W = data.shape
    keep = np.isfinite(data)
    if mask is not None:
        keep &= _as_mask(mask, data.shape)
    sel = _select(data, channels)
    data, keep = data[sel], keep[sel]
    data[~keep] = np.nan
    for k, n in enumerate(keep.reshape(len(sel), -1).sum(1)):
        name = f" in channel {int(sel[k])}" if len(sel) > 1 else ""
        if n == 0:
            raise ValueError(f"no measured pixels{name}")
        if n < 3:
            raise ValueError(f"only {n} measured pixels{name}: at least 3 are needed")
    same = bool((keep == keep[:1]).all())
    return Scan(
        data=data,
        mask=keep[0].copy() if same else keep,
        y=_coords(y, H, "y"),
        x=_coords(x, W, "x"),
        units=tuple(_per_channel(units, C, "units", "")[i] for i in sel),
        quantities=tuple(_per_channel(quantities, C, "quantities", "channel_{}")[i] for i in sel),
        axis_units=(_text(axis_units[0]), _text(axis_units[1])),
    )


def _datasets(f) -> list[str]:
    """Paths of the file's 2-D / 3-D datasets that are not dimension scales."""
    import h5py

    out = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.ndim in (2, 3) and not obj.is_scale:
            out.append(name)

    f.visititems(visit)
    return out


def _scale(d, axis: int) -> tuple[np.ndarray | None, str, str, str]:
    """``(coordinates or None, units, dimension_type, quantity)`` of an HDF5 dataset's axis: the
    attached dimension scale, else a sibling 1-D dataset named by ``DIMENSION_LABELS``."""
    import h5py

    s = d.dims[axis][0] if len(d.dims[axis]) else None
    labels = d.attrs.get("DIMENSION_LABELS")
    if s is None and labels is not None and len(np.atleast_1d(labels)) == d.ndim:
        cand = d.parent.get(_text(np.atleast_1d(labels)[axis]))
        ok = isinstance(cand, h5py.Dataset) and cand.ndim == 1 and cand.name != d.name
        s = cand if ok and cand.shape[0] == d.shape[axis] else None
    if s is None:
        return None, "", "", ""
    values = np.asarray(s[()], dtype=np.float64).reshape(-1)
    if values.shape != (d.shape[axis],):
        raise ValueError(f"{values.size} coordinates in {s.name!r} for axis {axis} of {d.name!r}")
    return (values, *(_text(s.attrs.get(k, "")) for k in ("units", "dimension_type", "quantity")))


def _read_h5(f, path: str, channel_axis: int | None) -> dict:
    import h5py

    d = f.get(path)
    if not isinstance(d, h5py.Dataset):
        have = ", ".join(f"{p} {f[p].shape}" for p in _datasets(f)[:20]) or "none"
        raise ValueError(f"no dataset {path!r} in {f.filename!r}; 2-D/3-D datasets: {have}")
    if d.ndim not in (2, 3):
        raise ValueError(f"dataset {path!r} is {d.ndim}-D {d.shape}: expected 2-D or 3-D")
    if d.dtype.kind not in "biuf":
        raise ValueError(f"dataset {path!r} has dtype {d.dtype}: expected real numbers")
    a = np.asarray(d[()], dtype=np.float64)
    scales = [_scale(d, i) for i in range(d.ndim)]
    unit = _text(d.attrs.get("units", ""))
    quantity = _text(d.attrs.get("quantity", "")) or path.rstrip("/").rsplit("/", 1)[-1]
    names = [quantity]
    if a.ndim == 3:
        spectral = [i for i, s in enumerate(scales) if s[2].upper() == "SPECTRAL"]
        ax = spectral[0] if len(spectral) == 1 else _channel_axis(a.shape, channel_axis)
        a = np.moveaxis(a, ax, 0)
        values, su, _, sq = scales.pop(ax)
        vs = values if values is not None else range(len(a))
        names = [f"{quantity} #{k} ({sq or 'index'} = {v:g}{' ' + su if su else ''})"
                 for k, v in enumerate(vs)]  # fmt: skip
    else:
        a = a[None]
    (y, yu, *_), (x, xu, *_) = scales
    return dict(data=a, units=[unit] * len(a), quantities=names, path=path, y=y, x=x,
                axis_units=(yu, xu))  # fmt: skip


def _agree(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    same = a is None or b is None or np.allclose(a, b, rtol=1e-6, atol=1e-9 * np.abs(b).max())
    return bool(same) and (a is None) == (b is None)


def load_scan(
    path: Path,
    dataset: str | Sequence[str] | None = None,
    *,
    channels: Channels = None,
    mask: Numbers | Path | None = None,
    channel_axis: int | None = None,
) -> Scan:
    """Load a ``.npy`` array or HDF5 dataset(s) into a :class:`Scan` (see the module docstring
    for the rules on channels, masks and coordinates)."""
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise ValueError(f"file not found: {p!r}")
    if p.lower().endswith(".npy"):
        if dataset is not None:
            raise ValueError(f"dataset={dataset!r} given for a .npy file, which holds one array")
        try:
            a = np.load(p, allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"cannot read {p!r} as a .npy array: {e}") from e
        return scan_from_array(a, mask, channel_axis=channel_axis, channels=channels)
    import h5py

    if not h5py.is_hdf5(p):
        raise ValueError(f"{p!r} is neither a .npy file nor an HDF5 file")
    with h5py.File(p, "r") as f:
        if dataset is None:
            found = _datasets(f)
            if len(found) != 1:
                have = ", ".join(f"{q} {f[q].shape}" for q in found[:20]) or "none"
                raise ValueError(
                    f"{p!r} has {len(found)} 2-D/3-D datasets, pass dataset= (a path or a list "
                    f"of paths): {have}"
                )
            paths = found
        else:
            paths = [dataset] if isinstance(dataset, str) else list(dataset)
            if not paths:
                raise ValueError("dataset= is an empty list")
        parts = [_read_h5(f, q, channel_axis) for q in paths]
    first = parts[0]
    for q in parts[1:]:
        what = f"datasets {first['path']!r} and {q['path']!r}"
        if (s0 := first["data"].shape[1:]) != (s1 := q["data"].shape[1:]):
            raise ValueError(f"{what} have different image shapes {s0} and {s1}")
        for ax in ("y", "x"):
            if not _agree(q[ax], first[ax]):
                raise ValueError(f"{what} differ in their {ax} coordinates")
    units, names = ([v for q in parts for v in q[k]] for k in ("units", "quantities"))
    data = np.concatenate([q["data"] for q in parts])
    kw = dict(y=first["y"], x=first["x"], axis_units=first["axis_units"], channels=channels)
    return scan_from_array(data, mask, channel_axis=0, units=units, quantities=names, **kw)


def _grid(c: np.ndarray, n: int | None, lo: float | None, hi: float | None, step: float | None):
    """``(origin, step, size)`` of one axis of the grid of :func:`scan_from_points`."""
    if lo is None and step is None:  # pixel indices
        return 0.0, 1.0, n if n is not None else int(np.rint(c.max())) + 1
    if step is not None:
        if not (np.isfinite(step) and step > 0):
            raise ValueError(f"pixel size must be positive, got {step}")
        origin = c.min() if lo is None else lo
        size = int(np.rint(((c.max() if hi is None else hi) - origin) / step)) + 1
        if n is not None and lo is not None and n != size:
            raise ValueError(f"shape {n} does not match extent and pixel ({size} pixels)")
        return origin, step, n if n is not None else size
    if n is None:
        raise ValueError("extent= needs shape= or pixel= to define the grid")
    if n < 2 or not hi > lo:
        raise ValueError(f"extent ({lo}, {hi}) over {n} pixels: need hi > lo and 2+ pixels")
    return lo, (hi - lo) / (n - 1), n


def scan_from_points(
    coords: Numbers,
    values: Numbers,
    shape: Sequence[int | np.integer] | None = None,
    *,
    extent: Sequence[Real] | np.ndarray | None = None,
    pixel: Real | Sequence[Real] | np.ndarray | None = None,
    units: str | Sequence[str] | None = None,
    quantities: str | Sequence[str] | None = None,
    axis_units: tuple[str, str] = ("", ""),
) -> Scan:
    """Snap scattered ``(n, 2)`` ``(row, col)`` — or physical ``(y, x)`` — measurements with
    ``(n,)`` or ``(n, C)`` values onto a grid; each point goes to its nearest pixel centre and
    the finite values that land on one pixel are averaged (NaN values are skipped).

    The grid: ``extent = (y0, y1, x0, x1)`` are the first and last pixel centres, with
    ``shape = (H, W)`` or a ``pixel`` size (scalar or ``(dy, dx)``). Without ``extent``:
    ``pixel`` alone starts the grid at the points' smallest coordinates; with neither
    ``extent`` nor ``pixel`` the coordinates are pixel indices (centres at integers, shape from
    ``shape`` or the largest index). A point more than half a pixel outside the grid is an
    error.
    """
    c = np.asarray(coords, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 2:
        raise ValueError(f"coords must be (n, 2) (row, col), got shape {c.shape}")
    v = np.asarray(values, dtype=np.float64)
    v = v[:, None] if v.ndim == 1 else v
    if v.ndim != 2 or v.shape[0] != c.shape[0]:
        raise ValueError(f"values of shape {v.shape} for {c.shape[0]} coordinates")
    if c.shape[0] == 0:
        raise ValueError("no measured pixels: coords is empty")
    if not np.all(np.isfinite(c)):
        raise ValueError(f"non-finite coordinates in {int((~np.isfinite(c)).any(1).sum())} rows")
    if shape is not None and (len(shape) != 2 or min(shape) < 1):
        raise ValueError(f"shape must be (H, W) with H, W >= 1, got {shape}")
    if extent is not None and (len(extent) != 4 or not np.all(np.isfinite(extent))):
        raise ValueError(f"extent must be 4 finite numbers (y0, y1, x0, x1), got {extent}")
    extent = None if extent is None else [float(e) for e in extent]
    steps = (None, None) if pixel is None else tuple(np.broadcast_to(np.asarray(pixel, float), 2))
    lo, hi = ([None] * 2, [None] * 2) if extent is None else (extent[0::2], extent[1::2])
    n = [None] * 2 if shape is None else [int(k) for k in shape]
    grids = [_grid(c[:, a], n[a], lo[a], hi[a], steps[a]) for a in (0, 1)]
    (H, W) = (grids[0][2], grids[1][2])
    idx = np.stack([(c[:, a] - g[0]) / g[1] for a, g in enumerate(grids)], 1)
    out = (idx < -0.5 - 1e-9) | (idx > np.array([H, W]) - 0.5 + 1e-9)
    if out.any():
        k = int(np.argmax(out.any(1)))
        raise ValueError(
            f"{int(out.any(1).sum())} coordinates outside the extent of the {H}×{W} grid "
            f"(first: {tuple(c[k])}); pass extent= / pixel= for physical coordinates"
        )
    r = np.clip(np.rint(idx).astype(np.int64), 0, np.array([H, W]) - 1)
    lin = r[:, 0] * W + r[:, 1]
    data = np.full((v.shape[1], H * W), np.nan)
    for k in range(v.shape[1]):
        ok = np.isfinite(v[:, k])
        s = np.bincount(lin[ok], weights=v[ok, k], minlength=H * W)
        n = np.bincount(lin[ok], minlength=H * W)
        np.divide(s, n, out=data[k], where=n > 0)
    y, x = (g[0] + g[1] * np.arange(g[2]) for g in grids)
    return scan_from_array(data.reshape(-1, H, W), channel_axis=0, y=y, x=x, units=units,
                           quantities=quantities, axis_units=axis_units)  # fmt: skip
