"""An instrument that journals every measurement before returning it (for compiled campaigns).

A compiled campaign (:func:`jaxscope.campaign.run` over a
:class:`~jaxscope.instruments.CallbackProblem`) keeps its observations inside the XLA program;
when the instrument fails at step ``k`` the program raises and that state is gone. Wrapping the
instrument in :class:`RecordingInstrument` before :func:`~jaxscope.instruments.as_callback`
keeps a durable record on the host: each call appends one ``measurement`` line per point
(``step`` = the call's number, ``id`` = ``c<call>-<row>``, ``x``, ``y``, ``duration``) to an
fsync'ed :class:`~jaxscope.host.journal.Journal` *before* the values return to the program, or
one ``failure`` line per point (``reason``) before the error propagates. A callback sees
coordinates, not candidate indices, so these lines carry no ``index``. Non-finite values are
journaled as failures and returned unchanged (the adapter then raises on them).

Example:
    >>> inst = RecordingInstrument(SimulatorInstrument(sim, seed=1), "run/callback.jsonl")
    >>> problem = CallbackProblem(sim.candidates, as_callback(inst))        # doctest: +SKIP
    >>> run(state, config, problem)          # fails at call k: lines 0 .. k-1 are on disk
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

import numpy as np

from ..instruments import Instrument
from .journal import Journal
from .waiting import measure_once


class RecordingInstrument(Instrument):
    """``inner`` with every call journaled to ``path`` (see the module docstring).

    Args:
        inner: any :class:`~jaxscope.instruments.Instrument`.
        path: the journal file (appended to; created if absent).

    Attributes:
        journal: the open :class:`~jaxscope.host.journal.Journal`; ``calls``: calls so far.
    """

    def __init__(self, inner: Instrument, path: str | os.PathLike):
        if not isinstance(inner, Instrument):
            raise TypeError(f"{type(inner).__name__} is not a jaxscope Instrument")
        self.inner, self.dim, self.bounds = inner, inner.dim, inner.bounds
        self.accepts_ids = bool(getattr(inner, "accepts_ids", False))
        self.journal = Journal(path)
        self.calls = 1 + max((r["step"] for r in self.journal.records), default=-1)
        self._lock = threading.Lock()

    def measure(self, X: np.ndarray, ids: Sequence[str] | None = None) -> np.ndarray:
        X = np.asarray(X)
        with self._lock:
            call, self.calls = self.calls, self.calls + 1
            names = [f"c{call:06d}-{i}" for i in range(len(X))] if ids is None else list(ids)
            t0 = time.time()
            try:
                y = np.asarray(measure_once(self.inner, X, names))
            except Exception as err:
                for i, (x, sid) in enumerate(zip(X, names, strict=True)):
                    self.journal.append("failure", step=call, row=i, id=sid, x=x,
                                        reason=f"{type(err).__name__}: {err}",
                                        duration=time.time() - t0)  # fmt: skip
                raise
            dt = time.time() - t0
            if y.shape != (len(X),):
                raise ValueError(f"instrument returned shape {y.shape} for {len(X)} points")
            for i, (x, v, sid) in enumerate(zip(X, y, names, strict=True)):
                if np.isfinite(v):
                    self.journal.append("measurement", step=call, row=i, id=sid, x=x, y=v,
                                        duration=dt)  # fmt: skip
                else:
                    self.journal.append("failure", step=call, row=i, id=sid, x=x,
                                        reason=f"non-finite value {v}", duration=dt)  # fmt: skip
        return y

    def close(self) -> None:
        self.journal.close()
