r"""Every jaxscope :class:`~jaxscope.instruments.Simulator` as a :class:`Microscope`.

:class:`SimulatedMicroscope` wraps any simulator. A digital twin
(:class:`~jaxscope.instruments.ImageTwin`: PFM, EELS, 4D-STEM) gives its structural image
(channels), raw spectra (``protocol="spectrum"``: PFM loops ``(2, 64)``, an EELS spectrum, a
diffraction pattern) and their scalarised values (``"scalar"``, exactly ``sim.measure``); its
native frame is ``"pixel"`` with a :class:`~jaxscope.instruments.frames.ScanFrame`. A plain
simulator gives scalar "spectra" (``"scalar"`` only) in its box frame, and images of a 2-D box
measured on a grid.

Noise is keyed by request: the point with request id ``s`` is measured with the key

.. math:: k = \mathrm{fold\_in}(\mathrm{fold\_in}(\mathrm{key}(\mathrm{seed}), 1),
          \mathrm{crc32}(s)),

so asking again for the same id (a retry after a lost connection, a campaign resumed against a
restarted server) returns the same value, whatever happened in between. Points without ids
take ``fold_in(fold_in(key(seed), 0), n)`` from a running count ``n``, like
:class:`~jaxscope.instruments.SimulatorInstrument`. A stimulus is recorded (count and dose) but
does not change a simulated specimen.

Example:
    >>> scope = SimulatedMicroscope(ThreeGaussians(), seed=1)           # doctest: +SKIP
    >>> a = scope.acquire_spectrum([[0.2, 0.3]], ids=["m000001"]).values
    >>> b = scope.acquire_spectrum([[0.2, 0.3]], ids=["m000001"]).values  # a == b
"""

from __future__ import annotations

import dataclasses
import threading
import zlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..runtime.jit import jit
from .base import Simulator
from .frames import ScanFrame
from .microscope import (
    Axis,
    Data,
    Microscope,
    MicroscopeInfo,
    PointLike,
    PointsLike,
    RegionLike,
    WaveformLike,
    validate_points,
    validate_waveform,
)
from .twin import ImageTwin

CHANNELS = {"pfm_twin": ("vertical", "lateral"), "eels_twin": ("haadf",),
            "stem4d_twin": ("haadf",)}  # fmt: skip
# one spectrum's axes (name, units[, labels]) per twin
SPECTRUM_AXES = {
    "pfm_twin": (("field", "", ("on-field", "off-field")), ("voltage", "V/Vmax")),
    "eels_twin": (("energy", "eV"),),
    "stem4d_twin": (("ky", "detector px"), ("kx", "detector px")),
}
QUANTITY = {"pfm_twin": ("piezoresponse", "a.u."), "eels_twin": ("counts", "a.u."),
            "stem4d_twin": ("intensity", "a.u.")}  # fmt: skip


@jit
def _acquire(sim: Simulator, base, data, X, spectrum: bool):
    keys = jax.vmap(lambda s: jax.random.fold_in(base, s))(data)
    if spectrum:
        return jax.vmap(sim.spectrum)(keys, X)
    return jax.vmap(sim.measure)(keys, X)


def request_keys(ids: Sequence[str]) -> np.ndarray:
    """``crc32`` of each request id (uint32): the noise stream of that request."""
    return np.asarray([zlib.crc32(str(s).encode()) for s in ids], np.uint32)


class SimulatedMicroscope(Microscope):
    """A :class:`Microscope` backed by a jaxscope simulator (see the module docstring).

    Args:
        sim: any :class:`~jaxscope.instruments.Simulator`.
        seed: seed of the measurement noise.
        max_batch: most points per call.
        pixel_size_m: metres per pixel of a twin's scan frame (default 1 nm).

    Attributes:
        calls, measured, stimuli, aborts: counters; ``dose``: points measured plus stimuli.
    """

    def __init__(self, sim: Simulator, seed: int = 0, *, max_batch: int = 1024, pixel_size_m=1e-9):
        if not isinstance(sim, Simulator):
            raise TypeError(f"sim must be a jaxscope Simulator, got {type(sim).__name__}")
        if int(max_batch) < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.sim, self.seed = sim, int(seed)
        self.twin = isinstance(sim, ImageTwin)
        root = jax.random.key(self.seed)
        self._count_key, self._id_key = jax.random.fold_in(root, 0), jax.random.fold_in(root, 1)
        self._image_key = jax.random.fold_in(root, 2)
        self.dtype = np.asarray(sim.candidates).dtype
        bounds = np.asarray(sim.bounds, np.float64)
        scan, spectrum = None, {"shape": [], "quantity": "value", "units": "", "axes": []}
        if self.twin:
            H, W = sim.image.shape[:2]
            scan = ScanFrame((H, W), ((H - 1) * pixel_size_m, (W - 1) * pixel_size_m))
            shape = list(jax.eval_shape(sim.spectrum, root, sim.candidates[0]).shape)
            q, u = QUANTITY.get(sim.name, ("signal", ""))
            spectrum = {"shape": shape, "quantity": q, "units": u,
                        "axes": [list(a[:2]) for a in self._spectrum_axes(shape)]}  # fmt: skip
        channels = CHANNELS.get(sim.name, ("channel0",)) if self.twin else ()
        if not self.twin and sim.dim == 2:
            channels = ("signal",)
        self.info = MicroscopeInfo(
            name=sim.name, dim=sim.dim, modes=("scalar", "spectrum") if self.twin else ("scalar",),
            channels=channels, frame="pixel" if self.twin else "box",
            units=("px", "px") if self.twin else ("",) * sim.dim,
            bounds=tuple(tuple(b) for b in bounds.tolist()), max_batch=int(max_batch),
            scan=scan, spectrum=spectrum,
        )  # fmt: skip
        self.calls = self.measured = self.stimuli = self.aborts = self._counter = 0
        self._position = bounds.mean(1)
        self._lock = threading.Lock()

    def _spectrum_axes(self, shape) -> list[tuple]:
        named = SPECTRUM_AXES.get(self.sim.name, ())
        if len(named) != len(shape):
            named = tuple((f"k{i}", "") for i in range(len(shape)))
        out = []
        for (name, units, *labels), n in zip(named, shape, strict=True):
            axis = np.asarray(self.sim.axis)
            values = axis if axis.shape == (n,) else np.arange(n, dtype=np.float32)
            out.append((name, units, None if labels else values, tuple(*labels)))
        return out

    # --- the protocol ----------------------------------------------------------------------------
    def describe(self) -> MicroscopeInfo:
        return self.info

    def move_probe(self, xy: PointLike) -> np.ndarray:
        X = validate_points(self.info, np.asarray(xy, np.float64).reshape(1, -1), "probe position")
        with self._lock:
            self._position = X[0].copy()
            return self._position.copy()

    def position(self) -> np.ndarray:
        return self._position.copy()

    def acquire_spectrum(
        self,
        xy: PointsLike,
        protocol: str = "scalar",
        *,
        ids: Sequence[str] | None = None,
    ) -> Data:
        if protocol not in self.info.modes:
            raise ValueError(f"unknown protocol {protocol!r} for {self.info.name}; "
                             f"modes: {self.info.modes}")  # fmt: skip
        X = validate_points(self.info, xy)
        n = X.shape[0]
        if ids is not None and len(ids) != n:
            raise ValueError(f"{len(ids)} request ids for {n} points")
        with self._lock:
            self.calls += 1
            if ids is None:
                base, data = self._count_key, np.arange(self._counter, self._counter + n)
                self._counter += n
            else:
                base, data = self._id_key, request_keys(ids)
            if n:
                Xj = jnp.asarray(X, self.dtype)
                v = _acquire(
                    self.sim, base, jnp.asarray(data, jnp.uint32), Xj, protocol != "scalar"
                )
                values = np.asarray(v)
            else:
                shape = self.info.spectrum["shape"] if protocol != "scalar" else []
                values = np.zeros((0, *shape), self.dtype)
            self.measured += n
            if n:
                self._position = X[-1].copy()
        axes = [Axis("point", "", None, ())]
        if protocol != "scalar":
            axes += [Axis(a, u, v, lab) for a, u, v, lab in self._spectrum_axes(values.shape[1:])]
            q, u = self.info.spectrum["quantity"], self.info.spectrum["units"]
        else:
            q, u = getattr(self.sim, "scalarizer", "value"), ""
        return Data(values, tuple(axes), q, u).check()

    def acquire_image(
        self,
        region: RegionLike | None = None,
        pixels: Sequence[int] | None = None,
        channels: Sequence[str] | None = None,
    ) -> Data:
        info = self.info
        if not info.channels:
            raise ValueError(f"{info.name} has no image channels (a {info.dim}-D instrument)")
        R = np.asarray(info.bounds if region is None else region, np.float64)
        if R.shape != (2, 2) or not (R[:, 1] >= R[:, 0]).all():
            raise ValueError(f"region must be [[r0, r1], [c0, c1]] with r1 >= r0, got {R.tolist()}")
        corners = dataclasses.replace(info, max_batch=max(info.max_batch, 2))
        validate_points(corners, R.T, "region corner")
        if pixels is None:
            pixels = (int(R[0, 1] - R[0, 0]) + 1, int(R[1, 1] - R[1, 0]) + 1)
        h, w = (int(p) for p in pixels)
        if not (1 <= h <= 4096 and 1 <= w <= 4096):
            raise ValueError(f"pixels must be two integers in [1, 4096], got {pixels}")
        names = info.channels if channels is None else tuple(channels)
        unknown = [c for c in names if c not in info.channels]
        if unknown or not names:
            raise ValueError(f"unknown image channel(s) {unknown}; channels: {info.channels}")
        rows, cols = np.linspace(*R[0], h), np.linspace(*R[1], w)
        if self.twin:
            img = np.asarray(self.sim.image).reshape(*self.sim.image.shape[:2], -1)
            ri = np.clip(np.rint(rows).astype(int), 0, img.shape[0] - 1)
            ci = np.clip(np.rint(cols).astype(int), 0, img.shape[1] - 1)
            idx = [info.channels.index(c) for c in names]
            values = img[ri][:, ci][:, :, idx]
        else:  # a 2-D box measured on the grid (noise from the image stream)
            G = np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)
            with self._lock:
                key = jax.random.fold_in(self._image_key, self.calls)
                self.calls += 1
            y = self.sim.measure_batch(key, jnp.asarray(G, self.dtype))
            values = np.asarray(y).reshape(h, w, 1)
        unit = info.units[0]
        axes = (Axis("row", unit, rows), Axis("col", unit, cols), Axis("channel", "", None, names))
        return Data(values, axes, "image", "a.u.").check()

    def apply_stimulus(self, xy: PointLike, waveform: WaveformLike) -> Data:
        self.move_probe(xy)
        w = validate_waveform(self.info, waveform)
        with self._lock:
            self.stimuli += 1
        t = np.arange(w.size, dtype=np.float64)
        return Data(w, (Axis("sample", "", t),), "stimulus", "V/Vmax").check()

    def status(self) -> dict:
        return {"state": "idle", "name": self.info.name, "position": self._position.tolist(),
                "calls": self.calls, "measured": self.measured, "stimuli": self.stimuli,
                "aborts": self.aborts, "dose": self.measured + self.stimuli}  # fmt: skip

    def abort(self) -> None:
        # a simulated acquisition is one vectorised call: nothing is ever left in flight
        with self._lock:
            self.aborts += 1

    def __repr__(self) -> str:
        return f"SimulatedMicroscope({self.info.name}, seed={self.seed})"
