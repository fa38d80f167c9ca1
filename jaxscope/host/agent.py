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
candidates are excluded.

Every decision is one :class:`DecisionRecord` (the state, the exclusions, the pending points, the
scores of every pick and the choice); :func:`replay` recomputes the choice from the record alone,
bit for bit. Before ``num_init`` measurements exist, suggestions are uniformly random (a
Gumbel top-``n`` over the allowed candidates, also recorded and replayable).

With ``journal=path`` every event is appended (fsync'ed) to a :mod:`~jaxscope.journal`: a
``start`` line with the agent's settings, then ``request`` (with the batch size),
``measurement`` and ``failure`` lines (:mod:`jaxscope.host.events` describes them). :meth:`Agent.resume` rebuilds the agent from it after a
crash by replaying each call and checking every recomputed choice against the journal.

Example:
    >>> agent = Agent(config, sim, capacity=50, seed=0, num_init=5)
    >>> for s in agent.suggest(2):
    ...     agent.ingest(s.id, instrument.measure(s.x[None])[0])
    >>> agent.best()[0]["y"]
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from ..campaign import CampaignConfig, CampaignState, Decision, decide, init
from ..decide import Believer
from ..instruments import GuardedProblem, Problem
from ..runtime.jit import jit
from .journal import Journal, read_journal
from .runner import record_jit


class Suggestion(NamedTuple):
    """A point to measure: its id, candidate index, coordinates and acquisition value."""

    id: str
    index: int
    x: np.ndarray
    acq: float


class DecisionRecord(eqx.Module):
    """Everything one decision used and produced; :func:`replay` recomputes ``index`` from it.

    ``state`` is ``None`` in the random phase (then ``key`` drives the choice).
    """

    state: CampaignState | None
    key: PRNGKeyArray
    excluded: Bool[Array, " m"]
    pending: Int[Array, " P"]
    pending_on: Bool[Array, " P"]
    index: Int[Array, " n"]
    acq: Float[Array, " n"]
    scores: Float[Array, " m"] | None
    params: Any
    ids: tuple[str, ...] = eqx.field(static=True)


@jit
def random_choice(key: PRNGKeyArray, excluded: Bool[Array, " m"], n: int) -> Int[Array, " n"]:
    """``n`` distinct uniformly random candidates among those not excluded (Gumbel top-n)."""
    g = jax.random.gumbel(key, excluded.shape)
    return jax.lax.top_k(jnp.where(excluded, -jnp.inf, g), n)[1].astype(jnp.int32)


def batch_config(config: CampaignConfig, n: int) -> CampaignConfig:
    """The config of an ``n``-point suggestion: ``q = n`` with the believer selector (the
    config's own if it is one), so that pending points and batches share one fantasy engine."""
    selector = config.selector if isinstance(config.selector, Believer) else Believer()
    return dataclasses.replace(config, q=n, selector=selector)


@jit
def suggest_batch(
    state: CampaignState,
    config: CampaignConfig,
    problem: Any,
    excluded: Bool[Array, " m"],
    pending: Int[Array, " P"] | None,
    pending_on: Bool[Array, " P"] | None,
    n: int,
):
    """``n`` candidates: :func:`~jaxscope.campaign.decide` with ``q = n``, the believer selector
    and the pending points fantasised first (``pending=None``: nothing pending).

    Returns ``(index (n,), acq (n,), decision)``; pure and deterministic. With ``n`` equal to a
    believer config's ``q`` and nothing pending, this is exactly the compiled campaign's
    decision.
    """
    st = eqx.tree_at(lambda s: s.measured, state, excluded)
    pend = None if pending is None else (pending, pending_on)
    d = decide(st, batch_config(config, n), problem, pending=pend)
    return d.index, d.acq, d


def replay(record: DecisionRecord, config: CampaignConfig, problem: Any) -> np.ndarray:
    """Recompute a decision's choice from its record alone (must equal ``record.index``)."""
    problem = _as_problem(problem)
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


def _as_problem(problem):
    if isinstance(problem, np.ndarray | jax.Array):
        return GuardedProblem(jnp.asarray(problem), jnp.ones(len(problem), bool))
    if not isinstance(problem, Problem):
        raise TypeError(
            f"problem must be a jaxscope.instruments.Problem or an array of candidates, "
            f"got {type(problem).__name__}"
        )
    return problem


class Agent:
    """Ask/tell campaign agent (see the module docstring).

    Args:
        config: campaign configuration with ``q = 1`` (``suggest(n)`` sets the batch size).
        problem: a Simulator or anything with ``candidates`` (or a candidate array).
        capacity: maximum number of measurements after the random phase.
        seed: PRNG seed. num_init: random suggestions before the model is used.
        max_pending: most points that may be pending at once (a fixed shape: no recompiles).
        journal: optional path of a journal (:mod:`jaxscope.journal`) of every event.
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
    ):
        if config.q != 1:
            raise ValueError(
                f"the agent needs a config with q=1 (suggest(n) batches), got {config.q}"
            )
        self.config, self.problem = config, _as_problem(problem)
        self.C = np.asarray(self.problem.candidates)
        self.capacity, self.num_init, self.max_pending = capacity, num_init, max_pending
        self.sign = 1.0 if self.problem.maximize else -1.0
        self.key = jax.random.key(seed)
        self.state: CampaignState | None = None
        self.pending: dict[str, dict] = {}
        self.done: dict[str, dict] = {}  # id -> {"index", "x", "y"} or {"failed": reason}
        self.records: list[DecisionRecord] = []
        self.failed = np.zeros(len(self.C), bool)
        self._seed: list[tuple[int, float]] = []
        self._latest: Decision | None = None
        self._counter = 0
        self.journal = Journal(journal) if journal is not None else None
        self._settings = {
            "seed": int(seed),
            "capacity": int(capacity),
            "num_init": int(num_init),
            "max_pending": int(max_pending),
            "candidates": int(len(self.C)),
        }
        if self.journal is not None and len(self.journal) == 0:
            self._log("start", agent=self._settings)

    def _log(self, kind, **fields):
        if self.journal is not None:
            self.journal.append(kind, **fields)

    @classmethod
    def resume(cls, journal, config: CampaignConfig, problem: Any, **kwargs) -> Agent:
        """The agent a journal describes, ready to continue; new events go to the same journal.

        Takes the arguments the original agent was built with (``capacity``, ``seed``, ...). Every
        ``suggest``, ``ingest`` and ``register_failure`` is replayed in journal order; each
        decision is recomputed and must choose the journaled points, so the resumed agent is the
        agent that wrote the journal (same state, ids, pending points and next suggestions).
        Suggestions journaled but never answered stay pending; those of a batch whose ``suggest``
        was interrupted before all its lines were written are dropped (they were never
        returned). A journal written with other settings or another problem is refused with the
        line where it differs.
        """
        kwargs.pop("journal", None)
        events = read_journal(journal)
        agent = cls(config, problem, **kwargs)
        start = next((e for e in events if e["kind"] == "start"), None)
        if start is not None and start.get("agent") != agent._settings:
            raise ValueError(
                f"journal {journal}: written by an agent with settings {start.get('agent')}, "
                f"not {agent._settings}"
            )
        todo = [e for e in events if e["kind"] in ("request", "measurement", "failure")]
        i = 0
        while i < len(todo):
            e = todo[i]
            if e["kind"] == "request":
                group = [e]
                while (
                    i + len(group) < len(todo)
                    and todo[i + len(group)]["kind"] == "request"
                    and todo[i + len(group)]["step"] == e["step"]
                ):
                    group.append(todo[i + len(group)])
                got = agent.suggest(int(e.get("batch", len(group))))
                for s, g in zip(got, group, strict=False):
                    if s.id != g["id"] or s.index != g["index"]:
                        raise ValueError(
                            f"journal {journal}, line {g['seq']}: suggestion {g['id']} was "
                            f"candidate {g['index']}, the replay chose {s.id} = {s.index} "
                            "(another configuration, seed or problem?)"
                        )
                for s in got[len(group) :]:  # written by an interrupted suggest: never returned
                    del agent.pending[s.id]
                i += len(group)
            elif e["kind"] == "measurement":
                agent.ingest(e["id"], e["y"])
                i += 1
            else:
                agent.register_failure(e["id"], e["reason"], exclude=e.get("exclude", True))
                i += 1
        agent.journal = Journal(journal)
        return agent

    def _excluded(self) -> np.ndarray:
        ex = self.failed.copy()
        if self.state is not None:
            ex |= np.asarray(self.state.measured) & (not self.config.policy.allow_repeats)
        else:
            ex[[i for i, _ in self._seed]] = True
        return ex

    def suggest(self, n: int = 1) -> list[Suggestion]:
        """``n`` new points with unique ids, accounting for the pending ones (fantasies)."""
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        if len(self.pending) + n > self.max_pending:
            raise ValueError(
                f"{len(self.pending)} points pending + {n} exceeds max_pending {self.max_pending}"
            )
        excluded = self._excluded()
        key = jax.random.fold_in(self.key, len(self.records))
        P = self.max_pending
        pend = np.zeros(P, np.int32)
        pend[: len(self.pending)] = [p["index"] for p in self.pending.values()]
        on = np.arange(P) < len(self.pending)
        ids = tuple(f"s{self._counter + j:06d}" for j in range(n))
        if self.state is None and len(self._seed) + len(self.pending) < self.num_init:
            ex = excluded.copy()
            ex[pend[on]] = True
            index = np.asarray(random_choice(key, jnp.asarray(ex), n))
            acq, scores, state, params = np.full(n, np.nan), None, None, None
            excluded = ex
        else:
            state = self.state if self.state is not None else self._start()
            repeats = self.config.policy.allow_repeats
            excluded = excluded | (np.asarray(state.measured) & (not repeats))
            any_pending = bool(on.any())  # nothing pending: exactly the campaign's decision
            idx, acq, dec = suggest_batch(
                state,
                self.config,
                self.problem,
                jnp.asarray(excluded),
                jnp.asarray(pend) if any_pending else None,
                jnp.asarray(on) if any_pending else None,
                n,
            )
            self.state, self._latest = state, dec
            index, acq = np.asarray(idx), np.asarray(acq)
            scores, params = dec.scores, self.config.surrogate.summary(dec.model)
            if not np.all(np.isfinite(acq)):
                raise RuntimeError("no candidate left to suggest (all measured, pending or failed)")
        self.records.append(
            DecisionRecord(
                state=state,
                key=key,
                excluded=jnp.asarray(excluded),
                pending=jnp.asarray(pend),
                pending_on=jnp.asarray(on),
                index=jnp.asarray(index),
                acq=jnp.asarray(acq),
                scores=scores,
                params=params,
                ids=ids,
            )
        )
        self._counter += n
        out = []
        for j, i in enumerate(index):
            s = Suggestion(ids[j], int(i), self.C[i].copy(), float(acq[j]))
            self.pending[s.id] = {"index": s.index, "x": s.x, "acq": s.acq}
            self._log(
                "request",
                step=len(self.records) - 1,
                id=s.id,
                index=s.index,
                x=s.x,
                acq=s.acq if math.isfinite(s.acq) else str(s.acq),
                batch=n,
            )
            out.append(s)
        return out

    def _start(self) -> CampaignState:
        if not self._seed:
            raise RuntimeError("no measurement ingested yet: ingest the random-phase points first")
        X0 = self.C[[i for i, _ in self._seed]]
        y0 = np.asarray([y for _, y in self._seed], self.C.dtype)
        return init(
            self.config,
            self.problem,
            X0,
            y0,
            num_steps=self.capacity,
            key=jax.random.fold_in(self.key, 1 << 30),
        )

    def _check_id(self, sid: str) -> dict:
        if sid in self.done:
            what = "registered as failed" if "failed" in self.done[sid] else "already ingested"
            raise ValueError(f"suggestion {sid!r} was {what}; nothing changed")
        if sid not in self.pending:
            raise ValueError(f"unknown suggestion id {sid!r}; pending: {sorted(self.pending)}")
        return self.pending[sid]

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
        if self.state is None:  # random phase: becomes a seed point of the campaign state
            self._seed.append((p["index"], v))
        else:
            dec = eqx.tree_at(
                lambda d: (d.index, d.x, d.acq),
                self._latest,
                (
                    jnp.asarray([p["index"]], jnp.int32),
                    jnp.asarray(p["x"][None]),
                    jnp.asarray([p["acq"]], self.C.dtype),
                ),
            )
            self.state = record_jit(
                self.state, self.config, dec, jnp.asarray([v], self.C.dtype), self.problem
            )
        del self.pending[sid]
        self.done[sid] = {"index": p["index"], "x": p["x"], "y": v}
        self._log("measurement", step=len(self.done) - 1, id=sid, index=p["index"], x=p["x"], y=v)

    def register_failure(self, sid: str, reason: str, *, exclude: bool = True) -> None:
        """Record that ``sid`` could not be measured; its candidate is excluded (``exclude``)."""
        p = self._check_id(sid)
        del self.pending[sid]
        self.done[sid] = {"index": p["index"], "x": p["x"], "failed": str(reason)}
        if exclude:
            self.failed[p["index"]] = True
        self._log(
            "failure",
            step=len(self.done) - 1,
            id=sid,
            index=p["index"],
            x=p["x"],
            reason=str(reason),
            exclude=bool(exclude),
        )

    @property
    def failures(self) -> dict[str, str]:
        return {k: v["failed"] for k, v in self.done.items() if "failed" in v}

    def best(self, k: int = 1) -> list[dict]:
        """The ``k`` best measured points (largest ``y``, or smallest when minimising)."""
        got = [dict(id=i, **v) for i, v in self.done.items() if "y" in v]
        got.sort(key=lambda r: -self.sign * r["y"])
        return got[:k]
