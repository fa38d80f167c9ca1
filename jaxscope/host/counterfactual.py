r"""Counterfactual decisions: what another acquisition rule or model would have chosen, step by
step, on the data a recorded campaign actually measured (no instrument).

A journal (:mod:`jaxscope.host.events`) fixes the measured data: the seed values and, for every
committed step :math:`t`, the points chosen and their values. :func:`counterfactual` folds it
with another config :math:`c'` (a different rule, surrogate, penalty, selector) through the
campaign's own pieces:

.. math:: s'_0 = \mathrm{init}_{c'}(X_{\mathrm{seed}}, y_{\mathrm{seed}}), \qquad
          d'_t = \mathrm{decide}_{c'}(s'_t), \qquad
          s'_{t+1} = \mathrm{record}_{c'}(s'_t, d'_t[\mathrm{index}_t], y_t)

so :math:`d'_t` is the decision :math:`c'` makes with exactly the data measured before step
:math:`t` (and the exclusions the host had then: vetoed and failed candidates), while the state
follows the recorded choices :math:`\mathrm{index}_t` and values :math:`y_t`. With
:math:`c' = c` (the recorded config) every :math:`d'_t` is the recorded decision, bit for bit.

Each step is compared with what was chosen: whether :math:`c'` picks the same points, the rank
of the recorded point under :math:`c'`'s scores (1: it would have chosen it too), the score gap
:math:`a'(x'_t) - a'(x_t)` (utility units of :math:`c'`; ``-inf`` scores are excluded
candidates), the model's predicted mean and standard deviation at both points, and their true
values where the problem has a ground truth. Steps where a hook forced points (``add``, with no
acquisition value) are reported and left out of the agreement rate.

The decision is the one made from the state right before each commit: the runner's rule. An
agent's suggestion made several ingests earlier, or with other points pending, is compared with
that decision too (the counterfactual does not fantasise pending points).

Example:
    >>> cf = counterfactual(read_journal("run/journal.jsonl"),
    ...                     make_config(sim.candidates, acquisition="maxvar"), sim)
    >>> cf.summary["agreement"], cf.steps[3]["rank"]
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ..campaign import CampaignConfig, CampaignState
from .events import INIT, HostLog
from .session import commit_state, decide_jit, host_view, initial_state

__all__ = ["Counterfactual", "counterfactual"]


class Counterfactual(NamedTuple):
    """Result of :func:`counterfactual`.

    Attributes:
        steps: one dict per committed step: ``step``, ``recorded`` (indices), ``recorded_acq``
            (journaled, recorded rule), ``chosen`` (indices the other config picks),
            ``chosen_acq`` (its acquisition values), ``agree``, ``forced``, ``rank`` (of each
            recorded point under the other config's scores; None if it excluded the point),
            ``score_recorded`` / ``score_chosen``, ``gap`` (first points), ``mean_*``/``sd_*``
            (its predictive at the first recorded and chosen points), ``truth_*`` (when the
            problem has a ground truth).
        summary: ``steps``, ``agreement`` (fraction of unforced steps whose choice is the
            recorded one), ``first_agreement``, ``mean_rank``, ``median_rank``, ``mean_gap``,
            and ``truth_gain`` (mean true improvement of the other choice, sign-aware).
        state: the other config's state after the last commit (the recorded data).
    """

    steps: list[dict]
    summary: dict
    state: CampaignState | None


def _acq(v: Any) -> float:
    return float(v)  # journaled "nan"/"inf" strings included


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _summary(steps: list[dict], has_truth: bool) -> dict:
    free = [s for s in steps if not s["forced"]]
    ranks = [s["rank"][0] for s in free if s["rank"][0] is not None]
    gaps = [s["gap"] for s in free if s["gap"] is not None]
    out = {
        "steps": len(steps),
        "forced_steps": len(steps) - len(free),
        "agreement": float(np.mean([s["agree"] for s in free])) if free else None,
        "first_agreement": (
            float(np.mean([s["chosen"][0] == s["recorded"][0] for s in free])) if free else None
        ),
        "mean_rank": float(np.mean(ranks)) if ranks else None,
        "median_rank": float(np.median(ranks)) if ranks else None,
        "mean_gap": float(np.mean(gaps)) if gaps else None,
    }
    if has_truth:
        gain = [s["truth_gain"] for s in free]
        out["truth_gain"] = float(np.mean(gain)) if gain else None
    return out


def counterfactual(
    records: list[dict],
    config: CampaignConfig,
    problem: Any,
    *,
    num_steps: int | None = None,
    seed: int | None = None,
    rule: int | None = None,
    retries: int = 1,
) -> Counterfactual:
    """Re-make every recorded decision with ``config`` on the recorded data (module docstring).

    Args:
        records: the journal's records (:func:`~jaxscope.host.journal.read_journal`, or
            :func:`~jaxscope.host.nsid.read_nsid_journal`'s).
        config: the other config; its ``q`` must be the number of points per commit.
        problem: the campaign's problem (a simulator, or its candidates); ``truth`` is used
            for the comparison when it has one.
        num_steps, seed: state capacity and seed; default the journal's settings.
        rule: index of ``config``'s rule to use at every step; None follows the journal's
            active rule (hook switches included: the same config reproduces the record).
        retries: the fold's retry budget for failures journaled without ``exclude``.

    Raises:
        ValueError: the journal has no ``start`` line, its candidates do not match the problem,
            a commit has another number of points than ``config.q``, or ``rule`` is out of
            range.
    """
    view = host_view(problem)
    C = np.asarray(view.candidates)
    starts = [r.get("settings") or {} for r in records if r["kind"] == "start"]
    if not starts:
        raise ValueError("the journal has no start line (not a campaign journal)")
    settings = starts[-1]
    if (settings.get("m"), settings.get("d")) != C.shape:
        raise ValueError(
            f"the journal's campaign had {settings.get('m')} candidates in {settings.get('d')} "
            f"dimensions, the problem has {C.shape}"
        )
    if settings.get("q") != config.q:
        raise ValueError(
            f"the journal's campaign chose q = {settings.get('q')} point(s) per step, the config "
            f"chooses {config.q}"
        )
    if rule is not None and not 0 <= rule < len(config.policy.rules):
        raise ValueError(f"rule {rule} out of range for {len(config.policy.rules)} rule(s)")
    seed = int(settings["seed"] if seed is None else seed)
    num_steps = int(settings.get("num_steps", 0) if num_steps is None else num_steps)
    truth = np.asarray(problem.truth(jnp.asarray(C))) if _has_truth(problem) else None
    sign = 1.0 if view.maximize else -1.0
    log, state, steps = HostLog(len(C), retries), None, []
    for r in records:
        log.apply(r)
        kind = r["kind"]
        if kind == "acquisition" and rule is None and r["policy"] >= len(config.policy.rules):
            policy, _ = config.policy.with_rule(r["name"])  # a hook's switch to a new rule
            draws = max(config.num_draws, int(policy.needs_draws))
            config = dataclasses.replace(config, policy=policy, num_draws=draws)
        if kind != "commit":
            continue
        if r["step"] == INIT:
            state = initial_state(config, view, log, num_steps=num_steps, seed=seed)
            continue
        if state is None or r["step"] != int(state.step):
            at = None if state is None else int(state.step)
            raise ValueError(f"journal line {r['seq'] + 1}: commit for step {r['step']} at {at}")
        if len(r["ids"]) != config.q:
            raise ValueError(
                f"journal line {r['seq'] + 1}: step {r['step']} committed {len(r['ids'])} "
                f"point(s), the config chooses q = {config.q}"
            )
        active = int(r["policy"]) if rule is None else rule
        state = eqx.tree_at(lambda s: s.policy.rule, state, jnp.asarray(active, jnp.int32))
        mask = np.asarray(view.mask) & log.mask
        now = dataclasses.replace(view, mask=jnp.asarray(mask))
        dec = decide_jit(state, config, now)
        steps.append(_compare(r, dec, truth, sign))
        y = [log.values[i] for i in r["ids"]]
        acq = [_acq(a) for a in r["acq"]]
        state = commit_state(state, config, dec, r["index"], acq, y, active, now)
    return Counterfactual(steps, _summary(steps, truth is not None), state)


def _has_truth(problem: Any) -> bool:
    return bool(getattr(problem, "has_truth", False))


def _compare(r: dict, dec, truth: np.ndarray | None, sign: float) -> dict:
    """One step's comparison of the recorded choice with the decision ``dec``."""
    rec = [int(i) for i in r["index"]]
    rec_acq = [_acq(a) for a in r["acq"]]
    chosen = [int(i) for i in np.asarray(dec.index)]
    scores = np.asarray(dec.scores, np.float64)
    mean, var = (np.asarray(v, np.float64) for v in dec.pred.moments())
    sd = np.sqrt(np.maximum(var, 0.0))

    def rank(i: int) -> int | None:
        s = scores[i]
        return int(np.sum(scores > s)) + 1 if np.isfinite(s) else None

    a, b = rec[0], chosen[0]
    gap = scores[b] - scores[a] if np.isfinite(scores[a]) and np.isfinite(scores[b]) else None
    out = {
        "step": int(r["step"]),
        "recorded": rec,
        "recorded_acq": [_finite(v) for v in rec_acq],
        "chosen": chosen,
        "chosen_acq": [_finite(float(v)) for v in np.asarray(dec.acq)],
        "agree": chosen == rec,
        "forced": not all(math.isfinite(v) for v in rec_acq),
        "rank": [rank(i) for i in rec],
        "score_recorded": _finite(float(scores[a])),
        "score_chosen": _finite(float(scores[b])),
        "gap": None if gap is None else float(gap),
        "mean_recorded": float(mean[a]),
        "sd_recorded": float(sd[a]),
        "mean_chosen": float(mean[b]),
        "sd_chosen": float(sd[b]),
    }
    if truth is not None:
        out["truth_recorded"] = float(truth[a])
        out["truth_chosen"] = float(truth[b])
        out["truth_gain"] = float(sign * (truth[b] - truth[a]))
    return out
