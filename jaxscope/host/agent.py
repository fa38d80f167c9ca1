r"""Ask/tell agent: the campaign engine behind ``suggest`` / ``ingest``, for orchestration.

Queue servers, bluesky-adaptive-style agents and asynchronous instruments ask for points and tell
results back in any order. :class:`Agent` keeps the campaign state (:class:`~jaxscope.campaign.
CampaignState`) and runs the same :func:`~jaxscope.campaign.decide` (fit, predictive,
acquisition, penalties) and :func:`~jaxscope.campaign.record` as the campaign runners.

``suggest(n)`` is :func:`~jaxscope.campaign.decide` with ``q = n`` and the believer selector:
pending points (suggested, not yet measured), then each point already chosen in the same call,
are fantasised by the one fantasy engine of :mod:`jaxscope.decide.fantasy` (the mixture mean
believed for every hyperparameter sample, a rank-1 update each), so the acquisition stops
favouring the neighbourhood of points already being measured, and the agent chooses exactly the
batch a compiled campaign with the same config and state chooses. Pending, measured and failed
candidates are excluded. An ingested point is recorded (:func:`~jaxscope.campaign.record`) with
the surrogate state of the decision that proposed it.

Every decision is one :class:`~jaxscope.host.session.DecisionRecord` (the state, the exclusions,
the pending points, the scores of every pick and the choice); :func:`replay` recomputes the
choice from the record alone, bit for bit. Before ``num_init`` measurements exist, suggestions
are uniformly random (a Gumbel top-``n`` over the allowed candidates, also recorded and
replayable).

The agent's bookkeeping (pending suggestions, values, failures and exclusions, seed points,
commits) is the host runner's fold, :class:`~jaxscope.host.events.HostLog`, applied to every
event as it is written, and its journal (``journal=path``, append-only, fsync'ed) has the
runner's schema (:mod:`jaxscope.host.events`): ``start``, ``request``, ``measurement``,
``failure``, and a ``commit`` when the model phase starts (the seed points) and for every
model-phase ingest. :meth:`Agent.resume` rebuilds the agent from a journal written by an agent or
by a :class:`~jaxscope.host.runner.HostRunner` with :func:`~jaxscope.host.session.replay_state`,
the runner's resume too, which checks every recomputed choice against the journal.

Example:
    >>> agent = Agent(config, sim, capacity=50, seed=0, num_init=5)
    >>> for s in agent.suggest(2):
    ...     agent.ingest(s.id, instrument.measure(s.x[None])[0])
    >>> agent.best()[0]["y"]
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from jaxtyping import ArrayLike

from ..campaign import CampaignConfig, CampaignState, Decision
from .events import INIT, HostLog, check_settings
from .journal import Journal, read_journal
from .session import (
    DecisionRecord,
    agent_decision,
    agent_ids,
    batch_config,
    commit_state,
    decide_jit,
    decision_key,
    host_view,
    initial_state,
    random_choice,
    replay_state,
    suggest_batch,
)

__all__ = [
    "Agent", "DecisionRecord", "Suggestion", "batch_config", "random_choice", "replay",
    "suggest_batch",
]  # fmt: skip


class Suggestion(NamedTuple):
    """A point to measure: its id, candidate index, coordinates and acquisition value."""

    id: str
    index: int
    x: np.ndarray
    acq: float


def replay(record: DecisionRecord, config: CampaignConfig, problem: Any) -> np.ndarray:
    """Recompute a decision's choice from its record alone (must equal ``record.index``)."""
    problem = host_view(problem)
    n = record.index.shape[0]
    if record.state is None:
        return np.asarray(random_choice(record.key, record.excluded, n))
    on = bool(np.asarray(record.pending_on).any())
    idx, *_ = suggest_batch(
        record.state,
        config,
        problem,
        record.excluded,
        record.pending if on else None,
        record.pending_on if on else None,
        n,
    )
    return np.asarray(idx)


class Agent:
    """Ask/tell campaign agent (see the module docstring).

    Args:
        config: campaign configuration with ``q = 1`` (``suggest(n)`` sets the batch size).
        problem: a Simulator or anything with ``candidates`` (or a candidate array).
        capacity: maximum number of measurements after the random phase.
        seed: PRNG seed. num_init: random suggestions before the model is used.
        max_pending: most points that may be pending at once (a fixed shape: no recompiles).
        journal: optional path of a new journal (:mod:`jaxscope.host.journal`) of every event;
            to continue an existing one use :meth:`resume`.
        meta: extra JSON settings (problem name, ...) a resumed driver must match.

    Attributes:
        state: the campaign state (None in the random phase); ``records``: one
            :class:`DecisionRecord` per decision; ``log``: the fold of every event
            (:class:`~jaxscope.host.events.HostLog`); ``pending``, ``done``, ``failures``,
            ``failed``: views of it.
    """

    def __init__(
        self,
        config: CampaignConfig,
        problem: Any,
        *,
        capacity: int,
        seed: int = 0,
        num_init: int = 5,
        max_pending: int = 16,
        journal=None,
        meta: dict | None = None,
    ):
        if config.q != 1:
            raise ValueError(
                f"the agent needs a config with q=1 (suggest(n) batches), got {config.q}"
            )
        self.config, self.problem = config, host_view(problem)
        self.C = np.asarray(self.problem.candidates)
        self.capacity, self.num_init, self.max_pending = capacity, num_init, max_pending
        self.seed = int(seed)
        self.sign = 1.0 if self.problem.maximize else -1.0
        self.state: CampaignState | None = None
        self.records: list[DecisionRecord] = []
        self.log = HostLog(len(self.C))
        # decisions of the groups whose points are still pending: their points record with them
        self._decisions: dict[int, Decision] = {}
        self.settings = {
            "driver": "agent",
            "seed": self.seed,
            "num_init": int(num_init),
            "q": config.q,
            "m": len(self.C),
            "d": self.C.shape[1],
            "dtype": str(self.C.dtype),
            "num_steps": int(capacity),
            "surrogate": type(config.surrogate).__name__,
            "max_pending": int(max_pending),
            "meta": dict(meta or {}),
        }
        self._seq = -1
        self.journal = Journal(journal) if journal is not None else None
        if self.journal is not None and len(self.journal):
            self.journal.close()
            raise ValueError(f"journal {journal} is not empty: continue it with Agent.resume")
        self._write("start", settings=self.settings)

    def _write(self, kind: str, **fields) -> None:
        """Journal one event (when there is a journal) and fold it, as the runner does."""
        if self.journal is not None:
            self.log.apply(self.journal.append(kind, **fields))
        else:  # the same fold without the file (seq: the line it would have been)
            self._seq += 1
            self.log.apply({**fields, "kind": kind, "seq": self._seq})

    @classmethod
    def resume(cls, journal, config: CampaignConfig, problem: Any, **kwargs) -> Agent:
        """The agent a journal describes, ready to continue; new events go to the same journal.

        Takes the arguments the original agent was built with (``capacity``, ``seed``, ...).
        The journal may be an agent's or a :class:`~jaxscope.host.runner.HostRunner`'s (with
        ``q = 1``): :func:`~jaxscope.host.session.replay_state` rebuilds the state, every
        decision of an agent is recomputed and must choose the journaled points, so the resumed
        agent is the agent that wrote the journal (same state, ids, pending points and next
        suggestions). Suggestions journaled but never answered stay pending; those of a batch
        whose ``suggest`` was interrupted before all its lines were written are dropped (never
        returned, their ids are not reused); a value journaled but not committed (a kill inside
        ``ingest``) is committed now. Other settings are refused (``ValueError``).
        """
        kwargs.pop("journal", None)
        agent = cls(config, problem, **kwargs)
        records = read_journal(journal)
        fresh = check_settings(records, agent.settings, f"journal {journal}")
        got = replay_state(
            records,
            config,
            agent.problem,
            num_steps=agent.capacity,
            seed=agent.seed,
            where=f"journal {journal}",
        )
        agent.state, agent.log, agent.records, agent._decisions = got
        agent.journal = Journal(journal)
        if fresh:
            agent._write("start", settings=agent.settings)
        if agent.state is not None:  # values journaled, their commit not (killed in between)
            for row in [q for q in agent.log.queue if q["y"] is not None]:
                agent._record(row["id"], row["index"], row["acq"], row["y"])
        return agent

    # --- views of the fold ---------------------------------------------------------------------
    @property
    def pending(self) -> dict[str, dict]:
        """Suggestions not yet answered, in order: ``id -> {"index", "x", "acq"}``."""
        return {
            k: {"index": p["index"], "x": self.C[p["index"]].copy(), "acq": p["acq"]}
            for k, p in self.log.pending.items()
        }

    @property
    def done(self) -> dict[str, dict]:
        """Answered suggestions, in order: ``id -> {"index", "x", "y"}`` or ``{..., "failed"}``."""
        return {k: {"x": self.C[v["index"]].copy(), **v} for k, v in self.log.done.items()}

    @property
    def failures(self) -> dict[str, str]:
        return {k: v["failed"] for k, v in self.log.done.items() if "failed" in v}

    @property
    def failed(self) -> np.ndarray:
        """``(m,)`` candidates excluded by failures (and by a runner's vetoes)."""
        return ~self.log.mask

    @property
    def _counter(self) -> int:  # ids issued so far (the next id's number)
        return self.log.issued

    # --- ask -------------------------------------------------------------------------------------
    def suggest(self, n: int = 1) -> list[Suggestion]:
        """``n`` new points with unique ids, accounting for the pending ones (fantasies)."""
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        log = self.log
        if len(log.pending) + n > self.max_pending:
            raise ValueError(
                f"{len(log.pending)} points pending + {n} exceeds max_pending {self.max_pending}"
            )
        state = self.state
        if state is None and len(log.init_ids) + len(log.pending) >= self.num_init:
            state = self._start()
        excluded, seeds, pend = log.snapshot()
        number, ids = len(log.groups), agent_ids(log.issued, n)
        rec, dec = agent_decision(
            state, self.config, self.problem, decision_key(self.seed, number),
            excluded=excluded, seeds=seeds, pending=pend, n=n, max_pending=self.max_pending,
            ids=ids,
        )  # fmt: skip
        if dec is not None and not np.all(np.isfinite(np.asarray(rec.acq))):
            raise RuntimeError("no candidate left to suggest (all measured, pending or failed)")
        self.records.append(rec)
        if dec is not None:
            self._decisions[number] = dec
        out = []
        for sid, i, a in zip(ids, np.asarray(rec.index), np.asarray(rec.acq), strict=True):
            s = Suggestion(sid, int(i), self.C[i].copy(), float(a))
            self._write(
                "request",
                step=INIT if state is None else int(state.step),
                id=s.id,
                index=s.index,
                x=s.x,
                acq=s.acq if math.isfinite(s.acq) else str(s.acq),
                decision=number,
                batch=n,
            )
            out.append(s)
        return out

    def _start(self) -> CampaignState:
        """The model phase begins: the seed values so far are committed as the initial state."""
        state = initial_state(
            self.config, self.problem, self.log, num_steps=self.capacity, seed=self.seed
        )
        self._write("commit", step=INIT, ids=list(self.log.init_ids))
        self.state = state
        return state

    # --- tell ------------------------------------------------------------------------------------
    def _check_id(self, sid: str) -> dict:
        if sid in self.log.done:
            what = "registered as failed" if "failed" in self.log.done[sid] else "already ingested"
            raise ValueError(f"suggestion {sid!r} was {what}; nothing changed")
        if sid not in self.log.pending:
            raise ValueError(f"unknown suggestion id {sid!r}; pending: {sorted(self.log.pending)}")
        return self.log.pending[sid]

    def ingest(self, sid: str, value: ArrayLike) -> None:
        """Record the measured ``value`` of suggestion ``sid`` (errors leave everything as is)."""
        p = self._check_id(sid)
        v = np.asarray(value, dtype=float)
        if v.shape != () or not np.isfinite(v):
            raise ValueError(
                f"value for {sid!r} must be a finite scalar, got {value!r}; "
                "use register_failure for a failed measurement"
            )
        v = float(v)
        if self.state is not None and int(self.state.step) >= self.capacity:
            raise ValueError(f"agent capacity {self.capacity} reached; nothing changed")
        x = self.C[p["index"]]
        if self.state is None:  # random phase: a seed point of the campaign state to come
            self._write("measurement", step=INIT, id=sid, index=p["index"], x=x, y=v)
            return
        self._record(sid, p["index"], p["acq"], v, measure=True)

    def _record(self, sid: str, index: int, acq: float, y: float, measure=False) -> None:
        """One model-phase step: ``record`` with the decision that proposed ``sid`` (or, for a
        point without one, a seed-phase suggestion, the decision from the state now)."""
        t, g = int(self.state.step), self.log.group_of.get(sid)
        dec = self._decisions.get(g)
        if dec is None:
            g, dec = None, decide_jit(self.state, self.config, self.problem)
        policy = int(self.state.policy.rule)
        state = commit_state(
            self.state, self.config, dec, [index], [acq], [y], policy, self.problem
        )
        if measure:
            self._write("measurement", step=t, id=sid, index=index, x=self.C[index], y=y)
        a = acq if math.isfinite(acq) else str(acq)
        self._write("commit", step=t, ids=[sid], index=[index], acq=[a], policy=policy, decision=g)
        self.state = state
        self._prune()

    def _prune(self) -> None:
        live = self.log.live_groups()
        self._decisions = {k: d for k, d in self._decisions.items() if k in live}

    def register_failure(self, sid: str, reason: str, *, exclude: bool = True) -> None:
        """Record that ``sid`` could not be measured; its candidate is excluded (``exclude``)."""
        p = self._check_id(sid)
        self._write(
            "failure",
            step=INIT if self.state is None else int(self.state.step),
            id=sid,
            index=p["index"],
            x=self.C[p["index"]],
            reason=str(reason),
            exclude=bool(exclude),
        )
        self._prune()

    def best(self, k: int = 1) -> list[dict]:
        """The ``k`` best measured points (largest ``y``, or smallest when minimising)."""
        got = [dict(id=i, **v) for i, v in self.done.items() if "y" in v]
        got.sort(key=lambda r: -self.sign * r["y"])
        return got[:k]
