"""A test server that injects faults: run as a script by tests/instruments/test_network.py.

Serves ``SimulatedMicroscope(pfm_twin(), seed=NOISE_SEED)`` (:mod:`netutil`) through
:func:`jaxscope.instruments.server.serve`, wrapped in :class:`FaultyMicroscope`, whose faults
are keyed by request id (deterministic whatever the order of the tests):

* an id starting with ``slow`` (or listed in ``--slow-ids``): the first request sleeps
  ``--slow`` seconds before answering (beyond the client's timeout);
* ``drop`` (``--drop-ids``): the first request closes the client's connection instead of
  answering;
* ``nan`` (``--nan-ids``): the value of that point is NaN, every time;
* ``shape`` (``--shape-ids``): the answer has one value too many, every time;
* ``fail``: raises ``InstrumentError``; ``vendor``: raises a class of this file (``VendorError``).

Usage: ``python fault_server.py --port 0 --token T [--max-batch 16] [--nan-ids m000005,...]``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import numpy as np
from netutil import pfm_twin
from Pyro5.callcontext import current_context

from jaxscope.instruments import InstrumentError, Microscope, SimulatedMicroscope
from jaxscope.instruments.microscope import Data
from jaxscope.instruments.server import serve

NOISE_SEED = 7


class VendorError(Exception):
    """An exception class the client does not know."""


class FaultyMicroscope(Microscope):
    def __init__(self, inner: Microscope, slow: float, faults: dict[str, set[str]]):
        self.inner, self.slow, self.faults = inner, slow, faults
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def _kind(self, sid: str) -> str | None:
        for kind, ids in self.faults.items():
            if sid.startswith(kind) or sid in ids:
                return kind
        return None

    def acquire_spectrum(self, xy, protocol="scalar", *, ids=None):
        kinds = [self._kind(s) for s in ids or []]
        with self.lock:
            first = [s not in self.seen for s in ids or []]
            self.seen.update(ids or [])
        once = {k for k, f in zip(kinds, first, strict=True) if f}
        if "fail" in kinds:
            raise InstrumentError("hardware fault: stage interlock open")
        if "vendor" in kinds:
            raise VendorError("controller error 0x2f")
        if "slow" in once:
            time.sleep(self.slow)
        if "drop" in once:
            current_context.client.close()  # the reply cannot be sent: a dropped connection
        data = self.inner.acquire_spectrum(xy, protocol, ids=ids)
        values = np.array(data.values, copy=True)
        values[[k == "nan" for k in kinds]] = np.nan
        if "shape" in kinds:
            values = np.concatenate([values, values[:1]])
            return Data(values, data.axes[:1], data.quantity, data.units)
        return Data(values, data.axes, data.quantity, data.units)

    def describe(self):
        return self.inner.describe()

    def move_probe(self, xy):
        return self.inner.move_probe(xy)

    def position(self):
        return self.inner.position()

    def acquire_image(self, region=None, pixels=None, channels=None):
        return self.inner.acquire_image(region, pixels, channels)

    def apply_stimulus(self, xy, waveform):
        return self.inner.apply_stimulus(xy, waveform)

    def status(self):
        return self.inner.status()

    def abort(self):
        self.inner.abort()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token", required=True)
    p.add_argument("--slow", type=float, default=1.0)
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--max-dose", type=int, default=None)
    for kind in ("slow", "drop", "nan", "shape", "fail", "vendor"):
        p.add_argument(f"--{kind}-ids", default="")
    a = p.parse_args()
    faults = {k: set(filter(None, getattr(a, f"{k}_ids").split(","))) for k in
              ("slow", "drop", "nan", "shape", "fail", "vendor")}  # fmt: skip
    scope = FaultyMicroscope(SimulatedMicroscope(pfm_twin(), seed=NOISE_SEED), a.slow, faults)
    serve(scope, token=a.token, port=a.port, max_batch=a.max_batch, max_dose=a.max_dose)


if __name__ == "__main__":
    sys.exit(main())
