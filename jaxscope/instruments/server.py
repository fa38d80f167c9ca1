r"""Any :class:`~jaxscope.instruments.Microscope` on the network, with Pyro5.

:func:`serve` registers a :class:`MicroscopeServer` in a Pyro5 daemon under the object id
:data:`OBJECT_ID`; ``jaxscope serve`` is its command line and
:class:`~jaxscope.instruments.client.RemoteMicroscope` its client. What the server guarantees:

* **Loopback by default.** It binds ``127.0.0.1`` unless told otherwise (traffic is not
  encrypted: use an SSH tunnel, not a public address).
* **A shared secret on every call.** Each exposed method takes the token as its first argument
  and compares it in constant time (:func:`hmac.compare_digest`); a call without it or with a
  wrong one raises ``PermissionError`` and touches nothing.
* **Only the protocol.** Pyro5 exposes only the methods marked ``@expose``: the eight methods of
  the protocol, nothing else (no attributes, no private methods).
* **Safe serialisation.** Pyro5 has no pickle; the server further refuses the ``marshal``
  serializer, so calls arrive as serpent, json or msgpack, and arrays as
  :func:`~jaxscope.instruments.wire.encode_array` dicts (bytes, dtype, shape).
* **Checks before hardware.** Points must be finite, inside the declared ``bounds`` and at most
  ``max_batch`` per call; waveforms within their limits; request ids short strings, one per
  point. A refused request raises ``ValueError`` naming the problem and never reaches the
  microscope.
* **Errors.** Builtin exceptions and :class:`~jaxscope.instruments.InstrumentError` (with
  ``InstrumentUnavailable``) reach the client as themselves; any other class (a vendor's) as
  ``RuntimeError("Class: message")``.
* **Budgets.** Optional: ``max_dose`` (points measured + stimuli + image pixels) and
  ``max_seconds`` (time spent inside the microscope); a request that would exceed one is
  refused with ``RuntimeError`` before it reaches the microscope.
* **A retry is answered, not measured again.** The client repeats a spectrum request with the
  same ids when an answer was lost (a timeout, a dropped connection), possibly while the first
  is still running. The server keeps the last :data:`REPLAY_REQUESTS` answered requests with
  ids (keyed by protocol, ids and points; only answers of one finite value per point) and
  answers a repeat from there: the sample is not exposed twice and the dose is charged once
  (``status()["server"]["replayed"]`` counts them). A repeat of an answer that was not kept (a
  NaN, an error) goes to the microscope again.

Example:
    >>> serve(SimulatedMicroscope(PFMTwin.create(key, size=64)), port=9100, token="s3cret")
    ... # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hmac
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
from Pyro5.api import Daemon, expose
from Pyro5.callcontext import current_context

from .base import InstrumentError
from .microscope import Microscope, validate_points, validate_waveform
from .wire import decode_array, encode_array

OBJECT_ID = "jaxscope.microscope"
SAFE_SERIALIZERS = {1: "serpent", 3: "json", 4: "msgpack"}  # Pyro5 serializer ids; 2 = marshal
MAX_ID_LENGTH = 64
REPLAY_REQUESTS = 1024  # answered spectrum requests kept for retries (most recent)


def _one_finite_per_point(data, n: int) -> bool:
    """An answer worth replaying: ``n`` values (one per point, any spectrum axes), all finite."""
    v = np.asarray(data.values)
    return v.ndim >= 1 and v.shape[0] == n and bool(np.all(np.isfinite(v)))


@expose
class MicroscopeServer:
    """The Pyro5 object in front of a microscope: token, limits and budgets (module doc).

    Args:
        microscope: the microscope served.
        token: the shared secret (a non-empty string).
        max_batch: points per call (default and ceiling: the microscope's own limit).
        max_dose, max_seconds: optional budgets (``None``: unlimited).
    """

    def __init__(
        self,
        microscope: Microscope,
        token: str,
        *,
        max_batch: int | None = None,
        max_dose: int | None = None,
        max_seconds: float | None = None,
    ):
        if not isinstance(token, str) or not token:
            raise ValueError("the server needs a non-empty token")
        info = microscope.describe()
        limit = info.max_batch if max_batch is None else min(int(max_batch), info.max_batch)
        if limit < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._scope, self._token = microscope, token.encode()
        self._info = dataclasses.replace(info, max_batch=limit)
        self._max_dose, self._max_seconds = max_dose, max_seconds
        self._dose, self._seconds, self._calls, self._refused = 0, 0.0, 0, 0
        self._replay: OrderedDict = OrderedDict()
        self._replayed = 0
        self._lock = threading.Lock()

    # --- what every call goes through ----------------------------------------------------------
    def _check(self, token) -> None:
        if current_context.serializer_id not in SAFE_SERIALIZERS and current_context.client:
            raise PermissionError(
                f"serializer refused; use one of {sorted(SAFE_SERIALIZERS.values())}"
            )
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self._token):
            with self._lock:
                self._refused += 1
            raise PermissionError("invalid or missing token: the call was refused")

    def _budget(self, dose: int) -> None:
        if self._max_dose is not None and self._dose + dose > self._max_dose:
            raise RuntimeError(f"dose budget exhausted: {self._dose} of {self._max_dose} used, "
                               f"{dose} more requested")  # fmt: skip
        if self._max_seconds is not None and self._seconds >= self._max_seconds:
            raise RuntimeError(f"time budget exhausted: {self._seconds:.3f} s of "
                               f"{self._max_seconds:g} s used")  # fmt: skip

    def _run(self, dose: int, fn: Callable, replay_key=None, keep: Callable | None = None):
        """``fn()`` on the microscope, one call at a time, within the budgets. An error of a
        class the client cannot rebuild (a vendor's) is sent as ``RuntimeError("Class: msg")``.
        With ``replay_key``: a request answered before is answered again from memory (checked
        under the lock, so a retry that waited for its first attempt finds that answer), and an
        answer ``keep`` accepts is remembered."""
        with self._lock:
            if replay_key is not None and replay_key in self._replay:
                self._replay.move_to_end(replay_key)
                self._replayed += 1
                return self._replay[replay_key]
            out = self._measure(dose, fn)
            if replay_key is not None and keep is not None and keep(out):
                self._replay[replay_key] = out
                while len(self._replay) > REPLAY_REQUESTS:
                    self._replay.popitem(last=False)
            return out

    def _measure(self, dose: int, fn: Callable):
        """``fn()`` within the budgets, counted (the caller holds the lock)."""
        self._budget(dose)
        t0 = time.perf_counter()
        try:
            return fn()
        except Exception as err:
            if type(err).__module__ == "builtins" or isinstance(err, InstrumentError):
                raise
            raise RuntimeError(f"{type(err).__name__}: {err}") from None
        finally:
            self._seconds += time.perf_counter() - t0
            self._dose += dose
            self._calls += 1

    def _points(self, xy, name="xy") -> np.ndarray:
        X = decode_array(xy) if isinstance(xy, dict) else np.asarray(xy, dtype=np.float64)
        if not np.issubdtype(X.dtype, np.number) or X.dtype == bool:
            raise ValueError(f"{name} must be numeric, got dtype {X.dtype}")
        return validate_points(self._info, X, name)

    # --- the protocol ----------------------------------------------------------------------------
    def describe(self, token=None) -> dict:
        self._check(token)
        return self._info.to_dict()

    def move_probe(self, token=None, xy=None) -> dict:
        self._check(token)
        X = self._points(xy, "probe position")
        if X.shape[0] != 1:
            raise ValueError(f"move_probe takes one point, got {X.shape[0]}")
        return encode_array(self._run(0, lambda: np.asarray(self._scope.move_probe(X[0]))))

    def position(self, token=None) -> dict:
        self._check(token)
        return encode_array(np.asarray(self._scope.position()))

    def acquire_spectrum(self, token=None, xy=None, protocol="scalar", ids=None) -> dict:
        self._check(token)
        X = self._points(xy)
        if protocol not in self._info.modes:
            raise ValueError(f"unknown protocol {protocol!r}; modes: {self._info.modes}")
        if ids is not None:
            ok = isinstance(ids, list | tuple) and all(
                isinstance(s, str) and 0 < len(s) <= MAX_ID_LENGTH for s in ids
            )
            if not ok or len(ids) != X.shape[0]:
                raise ValueError(f"ids must be {X.shape[0]} strings of 1..{MAX_ID_LENGTH} "
                                 "characters, one per point")  # fmt: skip
            ids = list(ids)
        key = None if ids is None else (protocol, tuple(ids), X.tobytes())
        data = self._run(X.shape[0], lambda: self._scope.acquire_spectrum(X, protocol, ids=ids),
                         key, lambda d: _one_finite_per_point(d, X.shape[0]))  # fmt: skip
        return data.to_dict()

    def acquire_image(self, token=None, region=None, pixels=None, channels=None) -> dict:
        self._check(token)
        if region is not None:
            R = np.asarray(region, np.float64)
            if R.shape != (2, 2):
                raise ValueError(f"region must be [[r0, r1], [c0, c1]], got shape {R.shape}")
            corners = dataclasses.replace(self._info, max_batch=2)
            validate_points(corners, R.T, "region corner")
        if pixels is None:
            R = np.asarray(self._info.bounds if region is None else region, np.float64)
            pixels = (int(R[0, 1] - R[0, 0]) + 1, int(R[1, 1] - R[1, 0]) + 1)
        if len(pixels) != 2 or not all(isinstance(p, int) and 1 <= p <= 4096 for p in pixels):
            raise ValueError(f"pixels must be two integers in [1, 4096], got {pixels}")
        dose = int(pixels[0]) * int(pixels[1])
        return self._run(
            dose, lambda: self._scope.acquire_image(region, pixels, channels)
        ).to_dict()

    def apply_stimulus(self, token=None, xy=None, waveform=None) -> dict:
        self._check(token)
        X = self._points(xy, "stimulus position")
        if X.shape[0] != 1:
            raise ValueError(f"apply_stimulus takes one point, got {X.shape[0]}")
        w = decode_array(waveform) if isinstance(waveform, dict) else waveform
        w = validate_waveform(self._info, w)
        return self._run(1, lambda: self._scope.apply_stimulus(X[0], w)).to_dict()

    def status(self, token=None) -> dict:
        self._check(token)
        out = dict(self._scope.status())
        out["server"] = {
            "calls": self._calls, "refused": self._refused, "replayed": self._replayed,
            "dose": self._dose,
            "seconds": self._seconds, "max_dose": self._max_dose,
            "max_seconds": self._max_seconds, "max_batch": self._info.max_batch,
        }  # fmt: skip
        return out

    def abort(self, token=None) -> None:
        self._check(token)
        self._scope.abort()  # not behind the lock: it must reach a running acquisition


def serve(
    microscope: Microscope,
    *,
    token: str,
    host: str = "127.0.0.1",
    port: int = 0,
    max_batch: int | None = None,
    max_dose: int | None = None,
    max_seconds: float | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``microscope`` until the process is stopped.

    ``port=0`` lets the system choose; ``ready(uri)`` is called once the daemon listens (by
    default the URI is printed as ``serving PYRO:jaxscope.microscope@host:port``).
    """
    import Pyro5

    Pyro5.config.SERVERTYPE = "thread"
    Pyro5.config.DETAILED_TRACEBACK = False  # no server internals in the client's traceback
    Pyro5.config.MAX_MESSAGE_SIZE = 256 << 20
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {host}: calls are not encrypted", file=sys.stderr, flush=True)
    server = MicroscopeServer(
        microscope, token, max_batch=max_batch, max_dose=max_dose, max_seconds=max_seconds
    )
    with Daemon(host=host, port=port) as daemon:
        uri = str(daemon.register(server, objectId=OBJECT_ID))
        (ready or (lambda u: print(f"serving {u}", flush=True)))(uri)
        daemon.requestLoop()
