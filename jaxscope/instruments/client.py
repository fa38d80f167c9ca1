r"""A :class:`~jaxscope.instruments.Microscope` on the other end of a Pyro5 connection.

:class:`RemoteMicroscope` connects to a :func:`~jaxscope.instruments.server.serve` server
(``jaxscope serve``) and implements the protocol by calling it, so
``MicroscopeInstrument(RemoteMicroscope(...))`` serves every runner.

Failure semantics, by cause:

* **Transport** (connection refused or dropped, a call running past ``timeout``): the proxy is
  dropped and the call repeated on a fresh connection after a backoff
  :math:`b\,2^k` (``k = 0 … retries - 1``); when every try failed it raises
  :class:`~jaxscope.instruments.InstrumentUnavailable`, which the host runner waits out
  (:mod:`jaxscope.host.waiting`). A spectrum request carries the journal's ids, so a repeated
  request measures the same thing.
* **Refusal** (``PermissionError``: wrong token; ``ValueError``: out-of-range or non-finite
  points, an oversized batch; ``RuntimeError``: a budget exhausted): raised at once, never
  retried.
* **A bad answer** (values not one per point, a spectrum of the wrong shape): ``ValueError``.

Example:
    >>> scope = RemoteMicroscope(port=9100, token="s3cret", timeout=5.0)   # doctest: +SKIP
    >>> MicroscopeInstrument(scope).measure(np.array([[10.0, 12.0]]), ids=["m000000"])
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import Pyro5.errors
from Pyro5.api import Proxy, register_dict_to_class

from .base import InstrumentError, InstrumentUnavailable
from .microscope import (
    Data,
    Microscope,
    MicroscopeInfo,
    PointLike,
    PointsLike,
    RegionLike,
    WaveformLike,
)
from .server import OBJECT_ID
from .wire import decode_array, encode_array

TRANSIENT = (Pyro5.errors.CommunicationError, ConnectionError, OSError)

# the server's instrument errors arrive as themselves (Pyro5 rebuilds only the classes it knows)
for _cls in (InstrumentError, InstrumentUnavailable):
    register_dict_to_class(
        f"{_cls.__module__}.{_cls.__qualname__}", lambda name, d, c=_cls: c(*d.get("args", ()))
    )


class RemoteMicroscope(Microscope):
    """Client of a microscope server (see the module docstring).

    Args:
        host, port: where the server listens (default host ``127.0.0.1``).
        token: the server's shared secret.
        timeout: seconds for connecting and for each call.
        retries: further tries after a transport failure (so ``retries + 1`` in all).
        backoff: first delay between tries (s), doubled each time.
        serializer: ``"serpent"`` (default), ``"json"`` or ``"msgpack"``.
        connect: call ``describe`` now, so a wrong token or address fails here.

    Attributes:
        connections: connections that answered a call; ``reconnects``: those after the first;
        ``transport_errors``: tries that failed in transport.
    """

    def __init__(
        self,
        *,
        port: int,
        token: str,
        host: str = "127.0.0.1",
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.05,
        serializer: str = "serpent",
        connect: bool = True,
    ):
        if serializer not in ("serpent", "json", "msgpack"):
            raise ValueError(f"serializer must be serpent, json or msgpack, got {serializer!r}")
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise ValueError("need timeout > 0, retries >= 0 and backoff >= 0")
        self.uri = f"PYRO:{OBJECT_ID}@{host}:{int(port)}"
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self._token, self._serializer = str(token), serializer
        self._proxy: Proxy | None = None
        self._lock = threading.RLock()
        self.connections = self.transport_errors = 0
        self._info: MicroscopeInfo | None = None
        if connect:
            self.describe()

    @property
    def reconnects(self) -> int:
        return max(self.connections - 1, 0)

    # --- transport --------------------------------------------------------------------------------
    def _drop(self) -> None:
        if self._proxy is not None:
            try:
                self._proxy._pyroRelease()
            except Exception:  # noqa: BLE001 - the connection is gone either way
                pass
            self._proxy = None

    def _call(self, method: str, *args):
        last: Exception | None = None
        fresh = False
        with self._lock:
            for attempt in range(self.retries + 1):
                try:
                    if self._proxy is None:
                        proxy = Proxy(self.uri)
                        proxy._pyroTimeout = self.timeout
                        proxy._pyroSerializer = self._serializer
                        self._proxy, fresh = proxy, True
                    # a compiled campaign calls from XLA's callback thread: claim the proxy
                    self._proxy._pyroClaimOwnership()
                    out = getattr(self._proxy, method)(self._token, *args)
                    self.connections += fresh
                    return out
                except TRANSIENT as err:
                    if hasattr(err, "_pyroTraceback"):  # raised by the server: a refusal
                        raise
                    last = err
                    self.transport_errors += 1
                    self._drop()
                    if attempt < self.retries:
                        time.sleep(self.backoff * 2**attempt)
        raise InstrumentUnavailable(
            f"microscope server {self.uri} unavailable ({self.retries + 1} tries, "
            f"{method}): {type(last).__name__}: {last}"
        )

    # --- the protocol ----------------------------------------------------------------------------
    def describe(self) -> MicroscopeInfo:
        if self._info is None:
            self._info = MicroscopeInfo.from_dict(self._call("describe"))
        return self._info

    def move_probe(self, xy: PointLike) -> np.ndarray:
        xy = np.asarray(xy, np.float64).reshape(1, -1)
        return decode_array(self._call("move_probe", encode_array(xy)))

    def position(self) -> np.ndarray:
        return decode_array(self._call("position"))

    def acquire_spectrum(
        self,
        xy: PointsLike,
        protocol: str = "scalar",
        *,
        ids: Sequence[str] | None = None,
    ) -> Data:
        X = np.asarray(xy, np.float64)
        X = X[None] if X.ndim == 1 else X
        ids = None if ids is None else [str(s) for s in ids]
        data = Data.from_dict(self._call("acquire_spectrum", encode_array(X), protocol, ids))
        info = self.describe()
        want = (X.shape[0], *(info.spectrum.get("shape", []) if protocol != "scalar" else []))
        if data.values.shape != want:
            raise ValueError(f"the server returned values of shape {data.values.shape} for "
                             f"{X.shape[0]} points ({protocol!r}); expected {want}")  # fmt: skip
        return data

    def acquire_image(
        self,
        region: RegionLike | None = None,
        pixels: Sequence[int] | None = None,
        channels: Sequence[str] | None = None,
    ) -> Data:
        region = None if region is None else np.asarray(region, np.float64).tolist()
        pixels = None if pixels is None else [int(p) for p in pixels]
        channels = None if channels is None else [str(c) for c in channels]
        return Data.from_dict(self._call("acquire_image", region, pixels, channels))

    def apply_stimulus(self, xy: PointLike, waveform: WaveformLike) -> Data:
        xy = np.asarray(xy, np.float64).reshape(1, -1)
        w = encode_array(np.asarray(waveform, np.float64))
        return Data.from_dict(self._call("apply_stimulus", encode_array(xy), w))

    def status(self) -> dict:
        return self._call("status")

    def abort(self) -> None:
        self._call("abort")

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> RemoteMicroscope:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteMicroscope({self.uri})"
