r"""The :class:`Microscope` protocol: what every microscope (simulated, remote, real) implements.

``Instrument`` (:mod:`jaxscope.instruments.base`) is the campaign-facing protocol, one scalar
per point; a microscope says more: what it is (:meth:`~Microscope.describe`: modes, image
channels, coordinate frame, limits), where its probe is, images of a region, raw spectra at a
batch of points, stimuli, status and abort. :class:`MicroscopeInstrument` turns any microscope
into an ``Instrument`` (acquire at the points, scalarise), so every runner can use it: the host
runner, the agent and, through :func:`~jaxscope.instruments.as_callback`, a compiled campaign.

Returned data are :class:`Data`: the values and one :class:`Axis` (name, units, coordinates,
labels) per dimension, plus the quantity and units of the values.

Points are in the microscope's *native* frame (``MicroscopeInfo.frame``): ``"pixel"``
``(row, col)`` for a scanned image (convert with :class:`~jaxscope.instruments.frames.ScanFrame`,
given by ``MicroscopeInfo.scan``) or ``"box"`` for a parameter box. :func:`validate_points` is
the one check of points against the declared limits (finite, inside ``bounds``, at most
``max_batch``); simulated microscopes and the network server both apply it before anything
reaches the instrument.

Example:
    >>> scope = SimulatedMicroscope(PFMTwin.create(jax.random.key(0), size=32))  # doctest: +SKIP
    >>> scope.describe().channels
    ('vertical', 'lateral')
    >>> scope.acquire_spectrum([[10.0, 12.0]], "spectrum").values.shape     # on/off-field loops
    (1, 2, 64)
    >>> MicroscopeInstrument(scope).measure(np.array([[10.0, 12.0]]))         # the loop area
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
from jaxtyping import Array, Real

from .base import Instrument, check_points
from .frames import ScanFrame
from .wire import decode_array, encode_array

# what the protocol accepts: arrays (NumPy or JAX) of the documented shape, or nested lists
PointsLike = Real[np.ndarray, "n d"] | Real[Array, "n d"] | Sequence
PointLike = Real[np.ndarray, " d"] | Real[Array, " d"] | Sequence
WaveformLike = Real[np.ndarray, " t"] | Real[Array, " t"] | Sequence
RegionLike = Real[np.ndarray, "2 2"] | Sequence  # [[r0, r1], [c0, c1]]


class Axis(NamedTuple):
    """One dimension of :class:`Data`: name, units, coordinates (or ``None``) and labels."""

    name: str
    units: str = ""
    values: np.ndarray | None = None
    labels: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        v = None if self.values is None else encode_array(self.values)
        return {"name": self.name, "units": self.units, "values": v, "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, d: dict) -> Axis:
        v = None if d.get("values") is None else decode_array(d["values"])
        return cls(str(d["name"]), str(d.get("units", "")), v, tuple(d.get("labels", ())))


class Data(NamedTuple):
    """Measured values with their axes (one per dimension of ``values``), quantity and units."""

    values: np.ndarray
    axes: tuple[Axis, ...]
    quantity: str = ""
    units: str = ""

    def check(self) -> Data:
        """``ValueError`` unless there is one axis per dimension, each of the right length."""
        if len(self.axes) != self.values.ndim:
            raise ValueError(f"data of shape {self.values.shape} need {self.values.ndim} axes, "
                             f"got {len(self.axes)}")  # fmt: skip
        for n, a in zip(self.values.shape, self.axes, strict=True):
            if a.values is not None and len(a.values) != n:
                raise ValueError(f"axis {a.name!r} has {len(a.values)} values for length {n}")
            if a.labels and len(a.labels) != n:
                raise ValueError(f"axis {a.name!r} has {len(a.labels)} labels for length {n}")
        return self

    def to_dict(self) -> dict:
        return {"values": encode_array(self.values), "axes": [a.to_dict() for a in self.axes],
                "quantity": self.quantity, "units": self.units}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> Data:
        axes = tuple(Axis.from_dict(a) for a in d["axes"])
        return cls(decode_array(d["values"]), axes, str(d["quantity"]), str(d["units"])).check()


@dataclasses.dataclass(frozen=True)
class MicroscopeInfo:
    """What :meth:`Microscope.describe` returns.

    Attributes:
        name: instrument name. dim: coordinates per point.
        modes: spectrum protocols :meth:`Microscope.acquire_spectrum` accepts (``"scalar"``: one
            number per point, the instrument's own scalarizer; ``"spectrum"``: the raw signal).
        channels: image channels of :meth:`Microscope.acquire_image` (empty: no images).
        frame: native frame of points: ``"pixel"`` (``(row, col)``) or ``"box"``.
        units: units of each native coordinate.
        bounds: ``(dim, 2)`` limits of probe positions (native frame).
        max_batch: most points in one call.
        max_amplitude, max_waveform: limits of :meth:`Microscope.apply_stimulus`.
        scan: the :class:`~jaxscope.instruments.frames.ScanFrame` of a pixel frame, else None.
        spectrum: ``{"shape", "quantity", "units", "axes": [[name, units], ...]}`` of one
            spectrum (``shape`` ``[]`` for scalars).
    """

    name: str
    dim: int
    modes: tuple[str, ...]
    channels: tuple[str, ...]
    frame: str
    units: tuple[str, ...]
    bounds: tuple[tuple[float, float], ...]
    max_batch: int = 1024
    max_amplitude: float = 1.0
    max_waveform: int = 4096
    scan: ScanFrame | None = None
    spectrum: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["scan"] = None if self.scan is None else self.scan.to_dict()
        d["bounds"] = [list(b) for b in self.bounds]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> MicroscopeInfo:
        d = dict(d)
        d["scan"] = None if d.get("scan") is None else ScanFrame.from_dict(d["scan"])
        d["bounds"] = tuple(tuple(float(v) for v in b) for b in d["bounds"])
        for k in ("modes", "channels", "units"):
            d[k] = tuple(d[k])
        return cls(**d)


def validate_points(info: MicroscopeInfo, xy: Any, name: str = "xy") -> np.ndarray:
    """Points ``(n, dim)`` checked against the declared limits, as float64.

    Raises:
        ValueError: not ``(n, dim)``, NaN/inf, outside ``bounds`` (naming the coordinate and
            its range), or more than ``max_batch`` points.
    """
    X = np.asarray(xy, dtype=np.float64)
    if X.ndim == 1:
        X = X[None]
    X = check_points(X, np.asarray(info.bounds), dim=info.dim, name=name)
    if X.shape[0] > info.max_batch:
        raise ValueError(f"{name} has {X.shape[0]} points, more than the batch limit "
                         f"{info.max_batch} of {info.name}")  # fmt: skip
    return X


def validate_waveform(info: MicroscopeInfo, waveform: Any) -> np.ndarray:
    """A 1-D finite waveform within ``max_waveform`` samples and ``±max_amplitude``."""
    w = np.asarray(waveform, dtype=np.float64)
    if w.ndim != 1 or not 1 <= w.size <= info.max_waveform:
        raise ValueError(f"waveform must be 1-D with 1..{info.max_waveform} samples, "
                         f"got shape {w.shape}")  # fmt: skip
    if not np.isfinite(w).all():
        raise ValueError("waveform must be finite (got NaN or inf)")
    if np.abs(w).max() > info.max_amplitude:
        raise ValueError(f"waveform amplitude {np.abs(w).max():.6g} exceeds the limit "
                         f"{info.max_amplitude:.6g} of {info.name}")  # fmt: skip
    return w


class Microscope(abc.ABC):
    """A microscope (abstract base). Every method may block and raise; none returns NaN for a
    refused request: bad requests raise ``ValueError`` naming the problem."""

    @abc.abstractmethod
    def describe(self) -> MicroscopeInfo:
        """Modes, channels, coordinate frame and limits."""

    @abc.abstractmethod
    def move_probe(self, xy: PointLike) -> np.ndarray:
        """Move the probe to ``xy`` (native frame); returns the new position ``(d,)``."""

    @abc.abstractmethod
    def position(self) -> np.ndarray:
        """The probe's position ``(d,)``."""

    @abc.abstractmethod
    def acquire_image(
        self,
        region: RegionLike | None = None,
        pixels: Sequence[int] | None = None,
        channels: Sequence[str] | None = None,
    ) -> Data:
        """An image ``(h, w, c)`` of ``region`` ``[[r0, r1], [c0, c1]]`` (native frame, default
        the whole field) sampled on ``pixels`` ``(h, w)``, for ``channels`` (default all)."""

    @abc.abstractmethod
    def acquire_spectrum(
        self,
        xy: PointsLike,
        protocol: str = "scalar",
        *,
        ids: Sequence[str] | None = None,
    ) -> Data:
        """Spectra ``(n, *spectrum)`` at the ``n`` points (one batch), by ``protocol`` (one of
        ``describe().modes``). ``ids`` (the journal's request ids, one per point) let an
        instrument make a repeated request return the same measurement."""

    @abc.abstractmethod
    def apply_stimulus(self, xy: PointLike, waveform: WaveformLike) -> Data:
        """Apply ``waveform`` (e.g. a bias pulse train) at ``xy``; returns what was applied."""

    @abc.abstractmethod
    def status(self) -> dict:
        """JSON-able state: ``state``, ``position``, counters, dose, budget left."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Stop what is in progress and leave the probe where it is."""

    def close(self) -> None:  # noqa: B027 - optional: most microscopes hold nothing to release
        """Release connections (default: nothing to release)."""


class MicroscopeInstrument(Instrument):
    """Any :class:`Microscope` as an :class:`~jaxscope.instruments.Instrument`.

    ``measure(X, ids=None)`` acquires one batch at the rows of ``X`` with ``protocol`` and
    scalarises it: ``scalarize(data) -> (q,)`` when given, else the values of a ``"scalar"``
    acquisition. Microscope errors propagate unchanged (a thin adapter hides nothing); NaN values
    are returned as they are, for the runner to journal as failures, row by row.

    ``accepts_ids = True``: the host runner passes the journal's request ids.

    Raises (from ``measure``):
        ValueError: the microscope's answer is not one value per point.
    """

    accepts_ids = True

    def __init__(
        self,
        microscope: Microscope,
        protocol: str = "scalar",
        scalarize: Callable[[Data], np.ndarray] | None = None,
    ):
        if not isinstance(microscope, Microscope):
            raise TypeError(f"{type(microscope).__name__} is not a jaxscope Microscope")
        info = microscope.describe()
        if protocol not in info.modes:
            raise ValueError(f"{info.name} has no protocol {protocol!r}; modes: {info.modes}")
        if protocol != "scalar" and scalarize is None:
            raise ValueError(f"protocol {protocol!r} returns spectra: give a scalarize function")
        self.microscope, self.protocol, self.scalarize = microscope, protocol, scalarize
        self.info = info
        self.dim = info.dim
        self.bounds = np.asarray(info.bounds, dtype=np.float64)

    def measure(self, X: np.ndarray, ids: Sequence[str] | None = None) -> np.ndarray:
        """One value per row of ``X`` ``(q, d)``."""
        X = np.asarray(X)
        data = self.microscope.acquire_spectrum(X, self.protocol, ids=ids)
        y = np.asarray(data.values if self.scalarize is None else self.scalarize(data))
        if y.shape != (X.shape[0],):
            raise ValueError(f"{self.info.name} gave values of shape {y.shape} for "
                             f"{X.shape[0]} points; expected ({X.shape[0]},)")  # fmt: skip
        return y

    def __repr__(self) -> str:
        return f"MicroscopeInstrument({self.info.name}, protocol={self.protocol!r})"
