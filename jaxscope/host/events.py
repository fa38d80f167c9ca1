"""The host side's one event schema and its one fold (:class:`HostLog`), shared by both drivers.

Both drivers, :class:`~jaxscope.host.runner.HostRunner` and :class:`~jaxscope.host.agent.Agent`,
write the same kinds with the same fields and meanings, so a journal written by either resumes
in either. Every line also carries ``kind``, ``seq``, ``time`` and ``crc``
(:mod:`~jaxscope.host.journal`). A ``step`` is a campaign step: the number of committed steps of
the state a decision starts from, or :data:`INIT` (``-1``) for the seed phase (the runner's
random seed points, the agent's random phase before ``num_init`` values exist).

===============  ==============================================================================
``kind``         fields and meaning
===============  ==============================================================================
``start``        ``settings``: ``driver`` (``"runner"`` | ``"agent"``), ``seed``, ``num_init``,
                 ``q``, ``m``, ``d``, ``dtype``, ``num_steps`` (the agent's capacity),
                 ``surrogate`` (class name), ``max_pending``, ``meta``. The first line; a driver
                 resuming the other driver's journal checks :data:`SHARED_SETTINGS` and appends
                 its own ``start`` (every later line is the new writer's)
``request``      ``step``, ``id``, ``index``, ``x``, ``acq``, ``decision``, ``batch``: a point a
                 decision proposed. One decision's requests are consecutive lines with the same
                 ``decision`` (a running number); ``batch`` is how many points it proposed (a
                 kill may leave fewer lines: those points were never handed out)
``measurement``  ``step``, ``id``, ``index``, ``x``, ``y`` [, ``duration``]: the value of a
                 requested or added point; ``step`` is the commit it goes to (INIT: a seed)
``failure``      ``step``, ``id``, ``index``, ``x``, ``reason``, ``exclude`` [, ``duration``]: no
                 value; with ``exclude`` the candidate may not be chosen again, without it the
                 candidate stays available (the request is resolved either way)
``veto``         ``step``, ``index``, ``x``, ``reason``: a hook refused a candidate for good
``add``          ``step``, ``id``, ``index``, ``x``: a hook asked for a point to be measured
``acquisition``  ``step``, ``policy``, ``name``: a hook switched the acquisition rule
``commit``       ``step``, ``ids`` [, ``index``, ``acq``, ``policy``, ``decision``]: points
                 recorded as one step. ``step`` INIT: the seed points (``ids`` only), the state
                 is ``init`` from their values. Else ``record`` with these values, the rule
                 ``policy``, and the surrogate state of request group ``decision``'s decision
                 (``null``: of a decision made from the state right before the commit)
``stop``         ``step``, ``reason``
``note``         free-form
===============  ==============================================================================

The runner commits with ``decision: null`` (it decides afresh at every step, from the state right
before the commit); the agent commits each ingested point with the decision of the ``suggest``
that proposed it, possibly several ingests earlier (:func:`jaxscope.host.session.replay_state`
recomputes that decision from the state of that moment).

:class:`HostLog` is the fold: everything host-side (exclusions, failure counts, pending
requests, queued points, values, seed ids, commits, the request groups with what their decision
saw) is a pure function of the journal, applied live as each line is written and on resume as
the lines are read back.

Example:
    >>> log = HostLog(num_candidates=64)
    >>> for record in read_journal("run/journal.jsonl"):
    ...     log.apply(record)
    >>> log.mask.sum(), list(log.pending), len(log.values)
"""

from __future__ import annotations

import dataclasses

import numpy as np
from jaxtyping import ArrayLike

INIT = -1  # the ``step`` of the seed phase in the journal
DRIVERS = ("runner", "agent")
# what the two drivers must agree on to continue each other's journal (a driver resuming its own
# journal checks every key: its shapes and limits are part of its state)
SHARED_SETTINGS = ("seed", "num_init", "q", "m", "d", "dtype", "surrogate", "meta")


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


def check_settings(records: list[dict], settings: dict, where: str = "journal") -> bool:
    """Refuse a journal written with other settings; True when ``settings`` must be appended.

    Each ``start`` line is compared with ``settings``: on every key when the same driver wrote
    it, on :data:`SHARED_SETTINGS` when the other one did.

    Returns:
        Whether the resuming driver appends its own ``start`` (an empty journal, or one whose
        latest ``start`` is the other driver's).

    Raises:
        ValueError: naming the journal, both settings and the keys that differ.
    """
    starts = [r.get("settings") or {} for r in records if r["kind"] == "start"]
    for theirs in starts:
        same = theirs.get("driver") == settings["driver"]
        keys = set(theirs) | set(settings) if same else SHARED_SETTINGS
        diff = sorted(k for k in keys if theirs.get(k) != settings.get(k))
        if diff:
            raise ValueError(
                f"{where} was written with settings {theirs}, not {settings} (they differ in "
                f"{diff})"
            )
    return not starts or starts[-1].get("driver") != settings["driver"]


@dataclasses.dataclass
class RequestGroup:
    """One decision's ``request`` lines, and what that decision saw when it was made.

    Attributes:
        decision: its running number; ``step``: the state's step it started from (INIT: seed
            phase); ``batch``: points proposed; ``driver``/``settings``: its writer's.
        seq: journal line (``seq``) of its first request; ``first``: ids issued before it.
        excluded: ``~mask`` before it (host-side exclusions); ``seeds``: candidates of the seed
            values so far (before the seed phase is committed); ``pending``: candidates of the
            requests then unresolved, in request order (the agent fantasises them).
        ids, index, acq: its journaled requests (fewer than ``batch`` after a kill).
    """

    decision: int
    step: int
    batch: int
    driver: str
    settings: dict
    seq: int
    first: int
    excluded: np.ndarray
    seeds: list[int]
    pending: list[int]
    ids: list[str] = dataclasses.field(default_factory=list)
    index: list[int] = dataclasses.field(default_factory=list)
    acq: list[float] = dataclasses.field(default_factory=list)


class HostLog:
    """Exclusions, failures, pending and queued points, values, commits: a fold over the journal.

    Attributes:
        mask: ``(m,)`` candidates that may still be chosen (vetoed and excluded ones are False).
        failures: ``(m,)`` failed attempts per candidate; a failure without an ``exclude`` field
            (older journals) excludes after more than ``retries``.
        pending: requests not yet resolved (no measurement, failure or veto), in request order:
            ``id -> {"id", "index", "acq", "step", "decision"}``.
        queue: points to measure before a runner's own choices: added by a hook or requested
            for a step and unanswered (``y`` None), or measured for a step not yet committed.
        done: resolved ids in order, ``id -> {"index", "y"}`` or ``{"index", "failed"}``.
        values, index_of: measured value / candidate of every id.
        init_ids: seed values in order (after the INIT commit, its ids); ``commits``: committed
            steps (``step >= 0``); ``init_committed``: the seed phase is committed.
        groups: one :class:`RequestGroup` per decision; ``group_of``: id -> its decision.
        issued: ids handed out so far (the sum of ``batch``; the next id's number).
        policy: active rule; ``resolved``: answered requests; ``adds``: added points.
        settings, driver: of the latest ``start`` (the writer of the lines that follow).
    """

    def __init__(self, num_candidates: int, retries: int = 1):
        self.retries = retries
        self.mask = np.ones(num_candidates, bool)
        self.failures = np.zeros(num_candidates, int)
        self.pending: dict[str, dict] = {}
        self.queue: list[dict] = []
        self.done: dict[str, dict] = {}
        self.values: dict[str, float] = {}
        self.index_of: dict[str, int] = {}
        self.init_ids: list[str] = []
        self.commits: list[dict] = []
        self.init_committed = False
        self.groups: list[RequestGroup] = []
        self.group_of: dict[str, int] = {}
        self.policy, self.resolved, self.adds, self.issued, self.stopped = 0, 0, 0, 0, None
        self.settings: dict = {}
        self.driver = "runner"
        self._excluded: np.ndarray | None = None

    def snapshot(self) -> tuple[np.ndarray, list[int], list[int]]:
        """``(excluded, seeds, pending)`` as a decision made now sees them (see RequestGroup).

        ``excluded`` is read-only and shared by every group until the mask changes (an ``(m,)``
        array per group would grow with the journal; exclusions are rare)."""
        if self._excluded is None:
            self._excluded = ~self.mask
            self._excluded.setflags(write=False)
        seeds = [] if self.init_committed else [self.index_of[i] for i in self.init_ids]
        return self._excluded, seeds, [p["index"] for p in self.pending.values()]

    def _exclude(self, index: int) -> None:
        self.mask[index] = False
        self._excluded = None
        self._drop(index)

    def live_groups(self) -> set[int]:
        """Decisions whose points are still to be committed (pending, or measured and queued)."""
        ids = list(self.pending) + [q["id"] for q in self.queue if q["y"] is not None]
        return {self.group_of[i] for i in ids if i in self.group_of}

    def _enqueue(self, sid: str, index: int, acq: float) -> None:
        if all(q["id"] != sid for q in self.queue):
            self.queue.append({"id": sid, "index": index, "y": None, "acq": acq})

    def _drop(self, index: int) -> None:  # a candidate excluded: its unmeasured points go
        self.queue = [q for q in self.queue if q["index"] != index or q["y"] is not None]
        for sid in [k for k, p in self.pending.items() if p["index"] == index]:
            del self.pending[sid]

    def _request(self, r: dict) -> None:
        d = int(r.get("decision", len(self.groups)))  # (no field: one group per line)
        if not self.groups or self.groups[-1].decision != d:
            excluded, seeds, pending = self.snapshot()
            group = RequestGroup(
                decision=d, step=int(r["step"]), batch=int(r.get("batch", 1)),
                driver=self.driver, settings=self.settings, seq=int(r.get("seq", -1)),
                first=self.issued, excluded=excluded, seeds=seeds, pending=pending,
            )  # fmt: skip
            self.groups.append(group)
            self.issued += group.batch
        group, acq = self.groups[-1], float(r.get("acq", "nan"))
        group.ids.append(r["id"])
        group.index.append(int(r["index"]))
        group.acq.append(acq)
        self.group_of[r["id"]] = d
        self.pending[r["id"]] = {
            "id": r["id"], "index": int(r["index"]), "acq": acq, "step": int(r["step"]),
            "decision": d,
        }  # fmt: skip
        if r["step"] != INIT or self.init_committed:  # a step's point: measured before new ones
            self._enqueue(r["id"], int(r["index"]), acq)

    def apply(self, r: dict) -> None:
        """Update with one journal record (every kind; unknown fields are ignored)."""
        kind = r["kind"]
        if "id" in r and "index" in r:
            self.index_of[r["id"]] = int(r["index"])
        if kind == "start":
            self.settings = dict(r.get("settings") or {})
            self.driver = self.settings.get("driver", "runner")
        elif kind == "request":
            self._request(r)
        elif kind == "add":
            self.adds += 1
            self.queue.append({"id": r["id"], "index": r["index"], "y": None, "acq": np.nan})
        elif kind == "measurement":
            sid = r["id"]
            self.resolved += 1
            self.values[sid] = r["y"]
            req = self.pending.pop(sid, None)
            self.done[sid] = {"index": int(r["index"]), "y": r["y"]}
            if r["step"] == INIT and not self.init_committed:
                self.init_ids.append(sid)
                return
            row = next((q for q in self.queue if q["id"] == sid), None)
            if row is None:  # stays queued until its step commits
                acq = np.nan if req is None else req["acq"]
                self.queue.append({"id": sid, "index": r["index"], "y": r["y"], "acq": acq})
            else:
                row["y"] = r["y"]
        elif kind == "failure":
            sid, i = r["id"], int(r["index"])
            self.resolved += 1
            self.failures[i] += 1
            if self.pending.pop(sid, None) is not None:  # a request is resolved by its failure
                self.queue = [q for q in self.queue if q["id"] != sid]
            self.done[sid] = {"index": i, "failed": str(r.get("reason", ""))}
            exclude = r.get("exclude")
            if exclude is None:  # older journals: the retry budget decides
                exclude = self.failures[i] > self.retries
            if exclude:
                self._exclude(i)
        elif kind == "veto":
            self._exclude(r["index"])
        elif kind == "acquisition":
            self.policy = r["policy"]
        elif kind == "commit":
            done = set(r["ids"])
            self.queue = [q for q in self.queue if q["id"] not in done]
            if r["step"] == INIT:
                self.init_committed, self.init_ids = True, list(r["ids"])
                for p in self.pending.values():  # seed-phase points still out: now steps
                    if p["step"] == INIT:
                        self._enqueue(p["id"], p["index"], p["acq"])
            else:
                self.commits.append(r)
        elif kind == "stop":
            self.stopped = r.get("reason", "")
