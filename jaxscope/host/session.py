r"""What the host runner and the agent share: the host view of the problem, the keys, the agent's
decision rule, the one commit path and the one replay of a journal into a campaign state.

:func:`replay_state` is the resume of both drivers. It folds the journal line by line with
:class:`~jaxscope.host.events.HostLog` (the fold the drivers apply live) and rebuilds the
campaign state from it:

.. math:: s_0 = \mathrm{init}(X_{\mathrm{seed}}, y_{\mathrm{seed}}), \qquad
          s_{k+1} = \mathrm{record}\big(s_k,\ d_{g_k}[\mathrm{index}_k, \mathrm{acq}_k],\ y_k\big)

with the seed values of the ``INIT`` commit, each later commit's journaled ids, indices,
acquisition values and rule, and :math:`d_{g}` the decision of request group :math:`g` (the
commit's ``decision`` field), recomputed *once* from the state as it was when that group was
written: an agent's ``suggest`` may have been several ingests before the point was ingested, so
the replay keeps the state of each such moment and what the fold knew then (exclusions, seed
points, the pending points the agent fantasised). A commit without a group (``decision: null``,
the runner's) takes the decision made from the state right before it. Every agent decision is
recomputed and must choose the journaled points (a ``ValueError`` names the line otherwise), so
a resumed driver is the one that wrote the journal, bit for bit, whichever driver that was.

Example:
    >>> got = replay_state(read_journal("agent.jsonl"), config, host_view(sim),
    ...                    num_steps=50, seed=0)
    >>> got.state.obs.count, list(got.log.pending)
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ..campaign import CampaignConfig, CampaignState, Decision, decide, init, record
from ..decide import Believer
from ..instruments import GuardedProblem, Problem
from ..runtime.jit import jit
from .events import INIT, HostLog, RequestGroup

decide_jit = jit(decide)
record_jit = jit(record)
STATE_KEY = 1 << 30  # fold_in index of the state's key: far from the agent's decision numbers


def host_view(problem: Any) -> GuardedProblem:
    """The problem as both drivers' ``decide``/``record`` see it: candidates, a mask, the inner
    problem's truth and cost. One pytree type for both, so their programs are the same."""
    if isinstance(problem, np.ndarray | jax.Array):
        problem = GuardedProblem(jnp.asarray(problem), jnp.ones(len(problem), bool))
    if not isinstance(problem, Problem):
        raise TypeError(
            f"problem must be a jaxscope.instruments.Problem or an array of candidates, "
            f"got {type(problem).__name__}"
        )
    inner = problem.inner if isinstance(problem, GuardedProblem) else problem
    C = jnp.asarray(np.asarray(problem.candidates))
    mask = problem.candidate_mask()
    mask = jnp.ones(C.shape[0], bool) if mask is None else jnp.asarray(mask, bool)
    return GuardedProblem(C, mask, inner, bool(problem.maximize))


def state_key(seed: int) -> PRNGKeyArray:
    """The campaign state's key for ``seed`` (the same for both drivers)."""
    return jax.random.fold_in(jax.random.key(seed), STATE_KEY)


def decision_key(seed: int, decision: int) -> PRNGKeyArray:
    """The key of the agent's decision number ``decision`` (its random-phase draws)."""
    return jax.random.fold_in(jax.random.key(seed), decision)


def agent_ids(first: int, n: int) -> tuple[str, ...]:
    """The ids of an agent's ``n`` suggestions after ``first`` were issued: ``s000012``, ..."""
    return tuple(f"s{first + j:06d}" for j in range(n))


class DecisionRecord(eqx.Module):
    """Everything one agent decision used and produced; :func:`jaxscope.host.agent.replay`
    recomputes ``index`` from it. ``state`` is ``None`` in the random phase (then ``key`` drives
    the choice)."""

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


def agent_decision(
    state: CampaignState | None,
    config: CampaignConfig,
    problem: Any,
    key: PRNGKeyArray,
    *,
    excluded: np.ndarray,
    seeds: list[int],
    pending: list[int],
    n: int,
    max_pending: int,
    ids: tuple[str, ...],
) -> tuple[DecisionRecord, Decision | None]:
    """The agent's ``suggest(n)``, live and on replay (the same inputs give the same bits).

    Random phase (``state`` None): ``n`` uniform picks among the candidates not ``excluded``,
    not seed points, not pending. Model phase: :func:`suggest_batch` with the measured
    candidates excluded too (unless repeats are allowed) and the ``pending`` candidates (padded
    to ``max_pending``: one shape, one program) fantasised first.

    Returns:
        The decision's record and, in the model phase, the :class:`Decision` whose surrogate
        state its points are recorded with.
    """
    P = max_pending
    pend = np.zeros(P, np.int32)
    pend[: len(pending)] = pending
    on = np.arange(P) < len(pending)
    ex = np.array(excluded, bool)
    dec = scores = params = None
    if state is None:
        ex[list(seeds)] = True
        ex[pend[on]] = True
        index, acq = np.asarray(random_choice(key, jnp.asarray(ex), n)), np.full(n, np.nan)
    else:
        ex |= np.asarray(state.measured) & (not config.policy.allow_repeats)
        some = bool(on.any())  # nothing pending: exactly the campaign's decision
        idx, acq, dec = suggest_batch(
            state, config, problem, jnp.asarray(ex),
            jnp.asarray(pend) if some else None, jnp.asarray(on) if some else None, n,
        )  # fmt: skip
        index, acq = np.asarray(idx), np.asarray(acq)
        scores, params = dec.scores, config.surrogate.summary(dec.model)
    rec = DecisionRecord(
        state=state, key=key, excluded=jnp.asarray(ex), pending=jnp.asarray(pend),
        pending_on=jnp.asarray(on), index=jnp.asarray(index), acq=jnp.asarray(acq),
        scores=scores, params=params, ids=tuple(ids),
    )  # fmt: skip
    return rec, dec


def initial_state(
    config: CampaignConfig, problem: Any, log: HostLog, *, num_steps: int, seed: int
) -> CampaignState:
    """``init`` from the seed values ``log.init_ids`` (in order), with the key of ``seed``."""
    C = np.asarray(problem.candidates)
    if not log.init_ids:
        raise RuntimeError("no seed measurement yet: measure (ingest) the seed points first")
    X0 = C[[log.index_of[i] for i in log.init_ids]]
    y0 = np.asarray([log.values[i] for i in log.init_ids], C.dtype)
    return init(config, problem, X0, y0, num_steps=num_steps, key=state_key(seed))


def commit_state(
    state: CampaignState,
    config: CampaignConfig,
    decision: Decision,
    index,
    acq,
    y,
    policy: int,
    problem: Any,
) -> CampaignState:
    """``record`` the values ``y`` of candidates ``index`` (acquisition values ``acq``) under
    rule ``policy``, with ``decision``'s surrogate state: the one commit path of both drivers,
    live and on replay."""
    C = np.asarray(problem.candidates)
    index = np.asarray(index, np.int32)
    dec = eqx.tree_at(
        lambda d: (d.index, d.x, d.acq),
        decision,
        (jnp.asarray(index), jnp.asarray(C[index]), jnp.asarray(np.asarray(acq, C.dtype))),
    )
    state = eqx.tree_at(lambda s: s.policy.rule, state, jnp.asarray(policy, jnp.int32))
    return record_jit(state, config, dec, jnp.asarray(np.asarray(y, C.dtype)), problem)


class Replay(NamedTuple):
    """What :func:`replay_state` rebuilt: the state (None before the seed phase is committed),
    the fold, the agent's decision records and the decisions of groups still to be committed."""

    state: CampaignState | None
    log: HostLog
    records: list[DecisionRecord]
    decisions: dict[int, Decision]


class _Replayer:
    def __init__(self, config, problem, num_steps, seed, retries, state, where):
        self.config, self.problem, self.where = config, problem, where
        self.num_steps, self.seed, self.state = num_steps, seed, state
        self.log = HostLog(int(problem.candidates.shape[0]), retries)
        self.records: list[DecisionRecord] = []
        self.decisions: dict[int, Decision] = {}

    def group(self, g: RequestGroup) -> None:
        """Recompute an agent's decision from the state of its moment; check its choice."""
        if g.driver != "agent":
            return  # a runner's decisions are remade from the state before each commit
        if g.step == INIT:
            state = None
        elif self.state is not None and int(self.state.step) == g.step:
            state = self.state
        else:
            return  # made before the checkpoint the replay starts from: not needed
        ids = agent_ids(g.first, g.batch)
        rec, dec = agent_decision(
            state, self.config, self.problem, decision_key(self.seed, g.decision),
            excluded=g.excluded, seeds=g.seeds, pending=g.pending, n=g.batch,
            max_pending=int(g.settings.get("max_pending", len(g.pending) + g.batch)), ids=ids,
        )  # fmt: skip
        chosen = np.asarray(rec.index)
        for j, (sid, i) in enumerate(zip(g.ids, g.index, strict=True)):
            if sid != ids[j] or i != int(chosen[j]):
                raise ValueError(
                    f"{self.where}, line {g.seq + 1 + j}: suggestion {sid} was candidate {i}, "
                    f"the replay chose {ids[j]} = {int(chosen[j])} (another configuration, seed "
                    "or problem?)"
                )
        self.records.append(rec)
        if dec is not None:
            self.decisions[g.decision] = dec

    def commit(self, r: dict) -> None:
        log = self.log
        if r["step"] == INIT:
            if self.state is None:
                self.state = initial_state(
                    self.config, self.problem, log, num_steps=self.num_steps, seed=self.seed
                )
            return
        if self.state is None or r["step"] < int(self.state.step):
            return  # inside the checkpoint the replay starts from
        if r["step"] != int(self.state.step):
            t = int(self.state.step)
            raise RuntimeError(f"journal commit for step {r['step']} at step {t}")
        g = r.get("decision")
        if g is None:  # the writer decided from the state right before the commit
            dec = decide_jit(self.state, self.config, self.problem)
        elif g in self.decisions:
            dec = self.decisions[g]
        else:
            raise ValueError(
                f"{self.where}, line {r['seq'] + 1}: step {r['step']} records with decision {g}, "
                "which the replay could not recompute"
            )
        y = [log.values[i] for i in r["ids"]]
        acq = [float(a) for a in r["acq"]]
        self.state = commit_state(
            self.state, self.config, dec, r["index"], acq, y, r["policy"], self.problem
        )
        live = log.live_groups()  # decisions no point needs any more are dropped
        self.decisions = {k: d for k, d in self.decisions.items() if k in live}


def replay_state(
    records: list[dict],
    config: CampaignConfig,
    problem: Any,
    *,
    num_steps: int,
    seed: int,
    retries: int = 1,
    state: CampaignState | None = None,
    where: str = "journal",
) -> Replay:
    """Rebuild the campaign state (and the fold) from a journal written by either driver.

    Args:
        records: the journal's records, in order.
        config, problem: the resuming driver's config and :func:`host_view` of the problem.
        num_steps: capacity of the state (runner: ``num_steps``; agent: ``capacity``).
        seed: the campaign's seed (its state key and the agent's decision keys).
        retries: the fold's retry budget for failures journaled without ``exclude``.
        state: start from this state instead of the seed phase (a runner's checkpoint at step
            ``k``: commits before ``k`` are in it).
        where: the journal's name in error messages.

    Returns:
        :class:`Replay`: state, fold, the agent's decision records, the decisions of groups
        whose points are still pending (an agent records those points with them).

    Raises:
        ValueError: a recomputed agent decision differs from the journaled one (the line is
            named), or a commit names a decision that cannot be recomputed.
    """
    rep = _Replayer(config, problem, num_steps, seed, retries, state, where)
    group = None
    for r in records:
        if group is not None and not (
            r["kind"] == "request" and r.get("decision") == group.decision
        ):
            rep.group(group)  # complete: the state it was decided from is the current one
            group = None
        rep.log.apply(r)
        if r["kind"] == "request":
            group = rep.log.groups[-1]
        elif r["kind"] == "commit":
            rep.commit(r)
    if group is not None:
        rep.group(group)
    live = rep.log.live_groups()
    decisions = {k: d for k, d in rep.decisions.items() if k in live}
    return Replay(rep.state, rep.log, rep.records, decisions)
