r"""Host-driven campaign runner for slow, fallible instruments: journal, checkpoints, resume, hooks.

The runner is a Python loop over the same two halves of :func:`jaxscope.campaign.step` that the
compiled runner scans, ``decide`` and ``record`` (each ``jit``-compiled once):

.. math:: d_t = \mathrm{decide}(s_t), \quad y_t = \mathrm{instrument}(d_t.x),
          \quad s_{t+1} = \mathrm{record}(s_t, d_t, y_t)

Between them it talks to the world, and writes every event to an append-only, fsync'ed journal
(:mod:`jaxscope.host.journal`) *before* the next decision: ``request`` (a point sent to the
instrument, with its id), ``measurement`` (step, id, coordinates, value, duration) or ``failure``
(the instrument raised or returned NaN: registered, never dropped; the failure that exceeds
``retries`` excludes the point, ``exclude: true``, and the step decides again), hook events
(``veto``, ``add``, ``acquisition``, ``stop``) and one ``commit`` per step, the ids, indices and
acquisition values that :func:`record` stores.

Outages are not failures: an instrument raising :class:`~jaxscope.instruments.InstrumentUnavailable`
(a lost connection) is called again with the same points and ids after a bounded backoff, up to
``max_wait`` seconds (:mod:`jaxscope.host.waiting`; one ``note`` line per outage), counting no
failure; instruments with ``accepts_ids`` get the journal's request ids with the points.

The ``num_init`` seed points are random candidates measured by the instrument too (journaled with
step ``INIT = -1``). The journal's schema is the agent's too (:mod:`jaxscope.host.events`): a
runner resumes an agent's journal and the other way round. Resume: everything host-side
(exclusions, failure counts, pending and queued points, active acquisition) is a fold over the
journal (:class:`~jaxscope.host.events.HostLog`), the same function applied live and on replay;
the campaign state is restored from the latest orbax checkpoint
(:mod:`jaxscope.host.checkpoint`) and the committed steps after it are replayed by
:func:`~jaxscope.host.session.replay_state` with the journaled values, so no measurement is
repeated or lost and, for the same seed, a run killed with SIGKILL and resumed ends bit-for-bit in
the state of an uninterrupted run. A request journaled but never answered is measured first,
under its id; a measurement journaled but not yet committed is reused, not measured again.

Hooks ``hook(ctx: HookContext)`` run after every decision and may veto proposed points, add
points to measure now, switch the acquisition (an index into ``config.policy.rules`` or a name),
or stop. Any action makes the step decide again.

Example:
    >>> runner = HostRunner(config, sim, "run/", num_steps=30, num_init=5, seed=0)
    >>> state = runner.run(SimulatorInstrument(sim, seed=1, start=runner.num_measured))
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..campaign import CampaignConfig, CampaignState, Decision
from ..instruments import GuardedProblem, InstrumentUnavailable
from .checkpoint import StateCheckpointer
from .events import INIT, HostLog, check_settings
from .hooks import HookContext
from .journal import Journal
from .session import commit_state, decide_jit, host_view, initial_state, record_jit, replay_state
from .waiting import WaitPolicy, measure_waiting

__all__ = ["HostRunner", "decide_jit", "record_jit"]


def _num(v: Any) -> float | str:
    v = float(v)
    return v if np.isfinite(v) else str(v)


class HostRunner:
    """Journaled, resumable, hookable host loop over ``decide``/``record`` (see module doc).

    Args:
        config: campaign configuration (as for the compiled runner).
        problem: anything with ``candidates`` (a Simulator, or an array of candidates); its
            ``truth``/``cost``, when present, feed the history's RMSE and cost.
        directory: where ``journal.jsonl`` and ``checkpoints/`` live; an existing journal is
            resumed (its settings must match), an agent's too (:class:`~jaxscope.host.agent.
            Agent`, with ``q = 1``): its pending suggestions are measured first.
        num_steps, num_init, seed: campaign length, random seed points, PRNG seed.
        hooks: callables ``hook(ctx: HookContext)``.
        retries: failed attempts at a point before it is excluded.
        checkpoint_every: save the state every this many steps (and at the end).
        progress: show a tqdm progress bar.
        meta: extra JSON settings (problem name, acquisition, ...) a resumed run must match.
        max_wait: seconds an instrument may stay unavailable (``InstrumentUnavailable``: a
            transient outage, waited out with backoff, no failure counted) before ``run`` raises.
    """

    def __init__(
        self,
        config: CampaignConfig,
        problem: Any,
        directory: str | os.PathLike,
        *,
        num_steps: int,
        num_init: int,
        seed: int = 0,
        hooks: Sequence[Callable] = (),
        retries: int = 1,
        checkpoint_every: int = 1,
        progress: bool = True,
        max_attempts: int = 100,
        meta: dict | None = None,
        max_wait: float = 600.0,
    ):
        self.view = host_view(problem)  # TypeError for anything but a problem or candidates
        if isinstance(problem, np.ndarray | jax.Array):
            problem = self.view
        self.C = np.asarray(self.view.candidates)
        if not 1 <= num_init <= len(self.C) or num_steps < 1:
            raise ValueError(f"need 1 <= num_init <= {len(self.C)} and num_steps >= 1")
        self.config, self.problem, self.hooks = config, problem, list(hooks)
        self.num_steps, self.num_init, self.seed = int(num_steps), int(num_init), int(seed)
        self.retries, self.every, self.progress = int(retries), int(checkpoint_every), progress
        self.max_attempts, self.wait = max_attempts, WaitPolicy(max_wait=float(max_wait))
        self.directory = os.fspath(directory)
        self.journal = Journal(os.path.join(self.directory, "journal.jsonl"))
        self.checkpoints = StateCheckpointer(os.path.join(self.directory, "checkpoints"))
        key = jax.random.fold_in(jax.random.key(self.seed), 0)
        self._order = np.asarray(jax.random.permutation(key, len(self.C)))
        self.settings = {
            "driver": "runner",
            "seed": self.seed,
            "num_init": self.num_init,
            "q": config.q,
            "m": len(self.C),
            "d": self.C.shape[1],
            "dtype": str(self.C.dtype),
            "num_steps": self.num_steps,
            "surrogate": type(config.surrogate).__name__,
            "max_pending": config.q,  # a runner has at most one step's points out at once
            "meta": dict(meta or {}),
        }
        self.log = HostLog(len(self.C), self.retries)
        where = f"journal in {self.directory}"
        fresh = check_settings(self.journal.records, self.settings, where)
        for r in self.journal.records:
            self._apply(r)
        if fresh:  # a new journal, or an agent's: what follows is this runner's
            self._emit("start", settings=self.settings)

    # --- host-side state: a fold over journal records (jaxscope.host.events) -----------------
    def _apply(self, r: dict) -> None:
        self.log.apply(r)
        if r["kind"] == "acquisition" and r["policy"] >= len(self.config.policy.rules):
            self._extend_config(r["name"])

    @property
    def mask(self) -> np.ndarray:
        """Candidates that may still be chosen (vetoed and failed ones are False)."""
        return self.log.mask

    def _emit(self, kind: str, **fields) -> dict:
        r = self.journal.append(kind, **fields)
        self._apply(r)
        return r

    def _extend_config(self, name: str) -> None:
        policy, _ = self.config.policy.with_rule(name)
        draws = max(self.config.num_draws, int(policy.needs_draws))
        self.config = dataclasses.replace(self.config, policy=policy, num_draws=draws)

    def _policy_of(self, acquisition: int | str) -> tuple[int, str]:
        if isinstance(acquisition, int | np.integer):
            if not 0 <= acquisition < len(self.config.policy.rules):
                raise ValueError(f"acquisition index {acquisition} out of range")
            return int(acquisition), ""
        _, i = self.config.policy.with_rule(acquisition)  # ValueError for an unknown name
        return i, acquisition

    @property
    def num_measured(self) -> int:
        """Measurements in the journal (a resumed instrument continues its count from here)."""
        return len(self.log.values)

    # --- the loop --------------------------------------------------------------------------------
    def problem_view(self, extra_excluded=()) -> GuardedProblem:
        """The problem as decisions see it now: candidates masked by vetoes and failures."""
        mask = np.asarray(self.view.mask) & self.log.mask
        mask[list(extra_excluded)] = False
        return dataclasses.replace(self.view, mask=jnp.asarray(mask))

    def _measure(self, instrument, step: int, rows: list[dict]) -> bool:
        """Request, measure, journal; returns True when every row has a value."""
        todo = [r for r in rows if r["y"] is None]
        # ids follow the count of ids issued (a function of the journal): a resumed run hands
        # out the ids an uninterrupted one would; a request left unanswered by a kill is
        # pending in the fold and measured under its own id
        fresh = [r for r in todo if "id" not in r]
        decision, first = len(self.log.groups), self.log.issued
        for j, r in enumerate(fresh):
            r["id"] = f"m{first + j:06d}"
            self._emit(
                "request",
                step=step,
                id=r["id"],
                index=r["index"],
                x=self.C[r["index"]],
                acq=_num(r.get("acq", np.nan)),
                decision=decision,
                batch=len(fresh),
            )
        if not todo:
            return True
        X = self.C[[r["index"] for r in todo]].copy()
        X.setflags(write=False)  # the instrument gets exactly the chosen values, read-only
        t0, ids = time.time(), [r["id"] for r in todo]
        note = lambda e: self._emit("note", step=step, ids=ids, text=f"instrument unavailable: {e}")
        try:  # the journal's ids go to instruments that accept them; outages are waited out
            y = np.asarray(measure_waiting(instrument, X, ids, self.wait, note), dtype=float)
            if y.shape != (len(todo),):
                raise ValueError(f"instrument returned shape {y.shape}, expected ({len(todo)},)")
            errors = ["" if np.isfinite(v) else f"non-finite value {v}" for v in y]
        except InstrumentUnavailable:  # longer than max_wait: stop; the requests stay pending
            raise
        except Exception as err:  # noqa: BLE001 - every failure is journaled, none dropped
            y, errors = np.full(len(todo), np.nan), [f"{type(err).__name__}: {err}"] * len(todo)
        dt = time.time() - t0
        for r, v, e in zip(todo, y, errors, strict=True):
            if e:
                self._emit(
                    "failure",
                    step=step,
                    id=r["id"],
                    index=r["index"],
                    x=self.C[r["index"]],
                    reason=e,
                    exclude=bool(self.log.failures[r["index"]] >= self.retries),
                    duration=dt,
                )
            else:
                self._emit(
                    "measurement",
                    step=step,
                    id=r["id"],
                    index=r["index"],
                    x=self.C[r["index"]],
                    y=float(v),
                    duration=dt,
                )
        return not any(errors)

    def _init_state(self, instrument) -> CampaignState:
        log = self.log
        while not log.init_committed and len(log.init_ids) < self.num_init:
            if instrument is None:
                raise RuntimeError("the journal holds no complete seed phase; give an instrument")
            # seed requests journaled but unanswered (a kill, or an agent's random phase) first
            out = [p for p in log.pending.values() if p["step"] == INIT]
            need = self.num_init - len(log.init_ids)
            rows = [{"id": p["id"], "index": p["index"], "y": None} for p in out[:need]]
            taken = {log.index_of[i] for i in log.init_ids} | {p["index"] for p in out}
            free = [int(i) for i in self._order if log.mask[i] and i not in taken]
            if len(free) < need - len(rows):
                raise RuntimeError("not enough measurable candidates for the seed points")
            rows += [{"index": i, "y": None} for i in free[: need - len(rows)]]
            self._measure(instrument, INIT, rows)
        if not log.init_committed:
            self._emit("commit", step=INIT, ids=log.init_ids[: self.num_init])
        return initial_state(self.config, self.view, log, num_steps=self.num_steps, seed=self.seed)

    def _commit(self, state, decision: Decision, rows: list[dict]) -> CampaignState:
        return commit_state(
            state,
            self.config,
            decision,
            [r["index"] for r in rows],
            [float(r["acq"]) for r in rows],
            [self.log.values[r["id"]] for r in rows],
            rows[0]["policy"],
            self.problem_view(),
        )

    def _restore(self, state0) -> CampaignState:
        state = state0
        # the journal is the truth: a checkpoint after its last commit (the commit line was torn
        # by a kill after the checkpoint was written) is passed over for an earlier one
        usable = [t for t in self.checkpoints.all_steps() if t <= len(self.log.commits)]
        if usable:
            _, state, _ = self.checkpoints.restore(template=state0, step=max(usable))
        # the committed steps after the checkpoint, with the journaled values (no measuring)
        return replay_state(
            self.journal.records,
            self.config,
            self.view,
            num_steps=self.num_steps,
            seed=self.seed,
            retries=self.retries,
            state=state,
            where=f"journal in {self.directory}",
        ).state

    def run(self, instrument=None, max_steps: int | None = None) -> CampaignState:
        """Run (or resume) until ``num_steps`` steps, a hook's stop, or ``max_steps`` more steps."""
        from tqdm import tqdm

        state = self._restore(self._init_state(instrument))
        self.log.stopped = None
        if instrument is None and int(state.step) < self.num_steps and max_steps != 0:
            raise ValueError("steps remain to be measured: give an instrument")
        end = (
            self.num_steps
            if max_steps is None
            else min(self.num_steps, int(state.step) + max_steps)
        )
        bar = tqdm(
            total=self.num_steps,
            initial=int(state.step),
            disable=not self.progress,
            desc="campaign",
            unit="step",
        )
        try:
            while int(state.step) < end and self.log.stopped is None:
                before = int(state.step)
                state = self._one_step(state, instrument)
                if int(state.step) == before:  # stopped by a hook or out of candidates
                    break
                bar.update(int(state.step) - bar.n)
                best = np.nanmax(np.asarray(state.obs.y)[: int(state.obs.count)])
                bar.set_postfix(best=f"{best:.4g}", excluded=int((~self.log.mask).sum()))
                t = int(state.step)
                if t % self.every == 0 or t == end:
                    self.checkpoints.save(t, state, meta={"journal_len": len(self.journal)})
        finally:
            bar.close()
        return state

    def _one_step(self, state, instrument) -> CampaignState:
        t, q = int(state.step), self.config.q
        for attempt in range(self.max_attempts):
            forced = self.log.queue[:q]
            state = eqx.tree_at(
                lambda s: s.policy.rule, state, jnp.asarray(self.log.policy, jnp.int32)
            )
            view = self.problem_view([f["index"] for f in forced])
            decision = decide_jit(state, self.config, view)
            scores = np.asarray(decision.scores)
            rows = [dict(f) for f in forced]
            own = np.asarray(decision.index)[: q - len(forced)]
            rows += [
                {"index": int(i), "y": None, "acq": a}
                for i, a in zip(own, np.asarray(decision.acq), strict=False)
            ]
            chosen = [r["index"] for r in rows[len(forced) :]]
            if any(not self.log.mask[i] or not np.isfinite(scores[i]) for i in chosen):
                self._emit("stop", step=t, reason="no measurable candidate left")
                return state
            ctx = HookContext(
                state=state,
                decision=decision,
                index=np.asarray([r["index"] for r in rows]),
                x=self.C[[r["index"] for r in rows]],
                acq=np.asarray([r["acq"] for r in rows]),
                attempt=attempt,
                candidates=self.C,
                records=self.journal.records,
                mask=self.log.mask.copy(),
            )
            for hook in self.hooks:
                hook(ctx)
            if self._hook_actions(t, ctx.actions):
                if self.log.stopped is not None:
                    return state
                continue
            for r in rows:
                r["policy"] = self.log.policy
            if not self._measure(instrument, t, rows):
                continue  # failures journaled; decide again
            self._emit(
                "commit",
                step=t,
                ids=[r["id"] for r in rows],
                index=[r["index"] for r in rows],
                acq=[_num(r["acq"]) for r in rows],
                policy=self.log.policy,
                decision=None,  # this step's own decision, made from the state before it
            )
            return self._commit(state, decision, rows)
        raise RuntimeError(
            f"step {t}: no committed measurement after {self.max_attempts} decisions"
        )

    def _hook_actions(self, t: int, actions: list[tuple]) -> bool:
        for a in actions:
            if a[0] == "veto":
                self._emit("veto", step=t, index=a[1], x=self.C[a[1]], reason=a[2])
            elif a[0] == "add":
                self._emit("add", step=t, id=f"a{self.log.adds:06d}", index=a[1], x=self.C[a[1]])
            elif a[0] == "acquisition":
                policy, name = self._policy_of(a[1])
                self._emit("acquisition", step=t, policy=policy, name=name)
            elif a[0] == "stop":
                self._emit("stop", step=t, reason=a[1])
        return bool(actions)

    def close(self) -> None:
        self.journal.close()
        self.checkpoints.close()

    def __enter__(self) -> HostRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
