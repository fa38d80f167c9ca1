"""Host-side campaign bookkeeping: a fold over journal records, the guarded problem, hooks.

Everything the host runner (:mod:`jaxscope.host`) knows besides the JAX campaign state is a pure
function of the journal: :class:`HostLog` applies records one by one (live, as they are written,
and on resume, as they are read back), so a resumed runner's exclusions, failure counts, queued
points and active acquisition are exactly those of the run that wrote the journal.

Example:
    >>> log = HostLog(num_candidates=64, retries=1)
    >>> for record in read_journal("run/journal.jsonl"):
    ...     log.apply(record)
    >>> log.mask.sum(), len(log.values)
"""

from __future__ import annotations

import numpy as np
from jaxtyping import ArrayLike

INIT = -1  # the ``step`` of seed measurements in the journal


def match_candidates(C: np.ndarray, X: ArrayLike) -> np.ndarray:
    """Index of the candidate equal to each row of ``X``; ``ValueError`` if a row is not one."""
    X = np.atleast_2d(np.asarray(X, C.dtype))
    if X.shape[1] != C.shape[1]:
        raise ValueError(f"points must have {C.shape[1]} coordinates, got shape {X.shape}")
    d2 = ((X[:, None, :] - C[None]) ** 2).sum(-1)
    idx = d2.argmin(1)
    tol = 1e-10 * (1.0 + np.abs(C).max())
    bad = np.flatnonzero(d2[np.arange(len(X)), idx] > tol)
    if bad.size:
        raise ValueError(f"point {X[bad[0]].tolist()} is not one of the campaign's candidates")
    return idx


class HostLog:
    """Exclusions, failure counts, queued points, policy and ids: a fold over journal records.

    Attributes:
        mask: ``(m,)`` candidates that may still be chosen (vetoes and failed points are False).
        failures: ``(m,)`` failed attempts per candidate; more than ``retries`` excludes it.
        queue: points to measure before the model's own choices: added by a hook (``y`` None)
            or measured in a batch that did not complete (``y`` known, not measured again).
        values: measured value of every suggestion id; ``index_of``: candidate of every id.
        init_ids: seed measurements in order; commits: committed steps (``step >= 0``).
        policy: active acquisition index; ``resolved``: answered requests (the next id).
    """

    def __init__(self, num_candidates: int, retries: int):
        self.retries = retries
        self.mask = np.ones(num_candidates, bool)
        self.failures = np.zeros(num_candidates, int)
        self.queue: list[dict] = []
        self.policy, self.resolved, self.adds, self.stopped = 0, 0, 0, None
        self.values: dict[str, float] = {}
        self.index_of: dict[str, int] = {}
        self.init_ids: list[str] = []
        self.commits: list[dict] = []
        self.init_committed = False
        self._acq_of: dict[str, float] = {}

    def _drop(self, index: int) -> None:  # queued, not yet measured points of a candidate
        self.queue = [q for q in self.queue if q["index"] != index or q["y"] is not None]

    def apply(self, r: dict) -> None:
        """Update with one journal record (every kind; unknown fields are ignored)."""
        kind = r["kind"]
        if "id" in r and "index" in r:
            self.index_of[r["id"]] = int(r["index"])
        if kind in ("request", "add"):
            self._acq_of[r["id"]] = float(r.get("acq", "nan"))
            if kind == "add":
                self.adds += 1
                self.queue.append({"id": r["id"], "index": r["index"], "y": None, "acq": np.nan})
        elif kind == "measurement":
            self.resolved += 1
            self.values[r["id"]] = r["y"]
            if r["step"] == INIT:
                self.init_ids.append(r["id"])
                return
            row = next((q for q in self.queue if q["id"] == r["id"]), None)
            if row is None:  # stays queued until its step commits
                acq = self._acq_of.get(r["id"], np.nan)
                self.queue.append({"id": r["id"], "index": r["index"], "y": r["y"], "acq": acq})
            else:
                row["y"] = r["y"]
        elif kind == "failure":
            self.resolved += 1
            i = r["index"]
            self.failures[i] += 1
            if self.failures[i] > self.retries:
                self.mask[i] = False
                self._drop(i)
        elif kind == "veto":
            self.mask[r["index"]] = False
            self._drop(r["index"])
        elif kind == "acquisition":
            self.policy = r["policy"]
        elif kind == "commit":
            done = set(r["ids"])
            self.queue = [q for q in self.queue if q["id"] not in done]
            if r["step"] == INIT:
                self.init_committed = True
            else:
                self.commits.append(r)
        elif kind == "stop":
            self.stopped = r.get("reason", "")
