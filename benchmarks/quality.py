"""Campaign quality against BoTorch's standard loop and random search, and the campaign defaults.

For every simulated problem the package has (``jaxscope.instruments.PROBLEMS``, at the command
line's sizes: 48×48 grids, 1024 candidates of each test function), every seed gets the same
``num_init`` seed points and one standard-normal noise draw per candidate, so jaxscope, BoTorch
(``_peers/botorch_loop.py``: ``SingleTaskGP`` + ``Standardize`` + ``LogExpectedImprovement``
over the same candidates) and random search measure exactly the same noisy values. Noise sd:
``NOISE_FRACTION`` × the standard deviation of the true values. Reported per problem: final
simple regret, share of the top-1 % candidates measured, map RMSE per step, and BoTorch time /
jaxscope time (compile included).

The full run (``--choose``) measures every candidate default of :data:`CHOICES` (acquisition
rule × how MAP refits × priors) on the same seeds, keeps those at least as good as BoTorch on
every problem (within the seeds' standard error) and chooses the one of lowest mean regret
relative to random search: its per-problem records are ``vs_botorch_<problem>``, the whole
table is the ``default_campaign_choice`` record, and the library's defaults
(``jaxscope.campaign.CAMPAIGN_DEFAULTS``, which the command line uses) must equal the choice
(a test reads the record).

    python benchmarks/quality.py --choose         # every problem × 20 seeds × 40 steps
    python benchmarks/quality.py --quick          # 3 problems × 5 seeds × 20 steps, defaults
    python benchmarks/quality.py --acq ucb --no-peer --out q.json   # one variant

Writes ``benchmarks/results/quality.json`` (``quality_quick.json`` for ``--quick``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile

import _common  # noqa: F401  (sets BENCH_ENV before numpy/jax)
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _common import RESULTS, Timer, r4, run_json, versions, write_results
from _venvs import peer_python
from jaxtyping import Array, Float

from jaxscope.campaign import init, make_config, run
from jaxscope.cli.campaign import make_problem
from jaxscope.decide import penalties_by_name
from jaxscope.gp import GPModel
from jaxscope.instruments import HYPOTHESIS_PROBLEMS, IMAGE_PROBLEMS, PROBLEMS, Problem

NOISE_FRACTION = 0.2
NUM_INIT = 10


class TableProblem(Problem):
    """A tabulated problem (maximisation) with one fixed noise draw per candidate."""

    candidates: Float[Array, "m d"]
    values: Float[Array, " m"]
    eps: Float[Array, " m"]
    noise_sd: Float[Array, ""]
    maximize: bool = eqx.field(static=True, default=True)

    def _index(self, X):
        d2 = jnp.sum((X[:, None, :] - self.candidates[None]) ** 2, axis=-1)
        return jnp.argmin(d2, axis=1)

    def measure_batch(self, key, X):
        i = self._index(X)
        return self.values[i] + self.noise_sd * self.eps[i]

    @property
    def has_truth(self) -> bool:
        return True

    def truth(self, X):
        return self.values[self._index(X)]


def table(name: str, num_seeds: int):
    sim = make_problem(name, 0, 48).as_maximization()
    C = np.asarray(sim.candidates, np.float64)
    lo, hi = np.asarray(sim.bounds, np.float64).T
    U = (C - lo) / (hi - lo)  # both libraries work on the unit box
    values = np.asarray(sim.truth(sim.candidates), np.float64)
    noise_sd = NOISE_FRACTION * values.std()
    rs = np.random.RandomState(1234)
    eps = rs.standard_normal((num_seeds, len(U)))
    init_idx = np.stack([rs.choice(len(U), NUM_INIT, replace=False) for _ in range(num_seeds)])
    return U, values, noise_sd, eps, init_idx


def metrics(values, init_idx, picks):
    """Final regret and top-1 % share of one seed's campaign."""
    k = max(1, round(0.01 * len(values)))
    top = set(np.argsort(values)[-k:].tolist())
    measured = list(init_idx) + list(picks)
    return float(values.max() - values[measured].max()), len(top & set(measured)) / k


def jaxscope_config(U, opts):
    """jaxscope's campaign for one variant (``opts``: priors, start, refit_from, mode, acq;
    a missing or ``None`` entry is the library's default)."""
    kw = {"priors": opts["priors"]} if opts.get("priors") else {}
    model = GPModel.for_candidates(U, **kw)
    if opts.get("start"):
        model = dataclasses.replace(model, start=opts["start"])
    mode = opts.get("mode") or "map"
    extra = {"num_warmup": 100, "num_samples": 100} if mode == "nuts" else {}
    if mode == "map" and opts.get("refit_from"):
        extra["refit_from"] = opts["refit_from"]
    if opts.get("acq"):
        extra["acquisition"] = opts["acq"]
    if opts.get("penalty"):
        extra["penalties"] = penalties_by_name(opts["penalty"], U)
    return make_config(U.astype(np.float32), model=model, mode=mode, **extra), model


def run_jaxscope(U, values, noise_sd, eps, init_idx, steps, opts):
    cfg, model = jaxscope_config(U, opts)
    C = jnp.asarray(U, jnp.float32)
    out = []

    @eqx.filter_jit
    def campaign(prob, X0, y0, key):
        return run(init(cfg, prob, X0, y0, num_steps=steps, key=key), cfg, prob)

    with Timer() as t:
        for s in range(len(init_idx)):
            prob = TableProblem(
                C, jnp.asarray(values, jnp.float32), jnp.asarray(eps[s], jnp.float32),
                jnp.asarray(noise_sd, jnp.float32),
            )  # fmt: skip
            y0 = values[init_idx[s]] + noise_sd * eps[s, init_idx[s]]
            final = campaign(prob, C[init_idx[s]], jnp.asarray(y0, jnp.float32), jax.random.key(s))
            picks = np.asarray(final.history.index[:, 0]).tolist()
            noise = float(jnp.mean(final.model.params["noise"])) + model.noise_floor
            out.append({"picks": picks, "rmse": np.asarray(final.history.rmse).tolist(),
                        "final_noise_var": noise})  # fmt: skip
    return out, t.wall


def botorch_runs(U, values, noise_sd, eps, init_idx, steps, botorch_py):
    """BoTorch's loop on the table, in its own venv: ``(runs, wall_s, version)``."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "problem.npz")
        np.savez(path, candidates=U, values=values, noise_sd=noise_sd, eps=eps, init=init_idx)
        peer = run_json(
            [botorch_py, os.path.join(os.path.dirname(__file__), "_peers", "botorch_loop.py"),
             path, str(steps)], timeout=7200,
        )  # fmt: skip
    if "error" in peer:
        raise RuntimeError(peer["error"])
    return peer["seeds"], peer["wall_s"], f"botorch {peer['botorch']}"


def cached_peer(path, rec):
    """BoTorch's runs of ``rec``'s problem from an earlier result file of the same protocol."""
    with open(path) as f:
        old = {r["name"]: r for r in json.load(f)["records"]}
    r = old.get(rec["name"])
    if r is None or "botorch_picks" not in r:
        raise RuntimeError(f"{path} holds no per-seed BoTorch runs for {rec['name']}")
    for k in ("seeds", "steps", "noise_sd", "candidates", "num_init"):
        if r.get(k) != rec[k]:
            raise RuntimeError(f"{path}: {rec['name']} was run with {k}={r.get(k)}, not {rec[k]}")
    runs = [
        {"picks": p, "final_noise_var": v}
        for p, v in zip(r["botorch_picks"], r["botorch_final_noise_var"], strict=True)
    ]
    runs[0]["rmse_mean"] = r["botorch_rmse_per_step"]
    return runs, r["peer_s"], r["peer"]


def summarise(who, runs, values, init_idx, rec):
    """Add ``who``'s regret, top-1 % share, map RMSE and fitted noise to ``rec``; returns the
    per-seed regrets."""
    m = np.array([metrics(values, init_idx[s], r["picks"]) for s, r in enumerate(runs)])
    rec[f"{who}_regret"] = r4(m[:, 0].mean())
    rec[f"{who}_regret_sem"] = r4(m[:, 0].std(ddof=1) / np.sqrt(len(m)))
    rec[f"{who}_top1"] = r4(m[:, 1].mean())
    rec[f"{who}_regret_per_seed"] = [r4(x) for x in m[:, 0]]
    if "final_noise_var" in runs[0]:
        rec[f"{who}_final_noise_var"] = [r4(r["final_noise_var"]) for r in runs]
    if "rmse" in runs[0]:
        rec[f"{who}_rmse_per_step"] = [r4(x) for x in np.mean([r["rmse"] for r in runs], 0)]
    elif "rmse_mean" in runs[0]:
        rec[f"{who}_rmse_per_step"] = runs[0]["rmse_mean"]
    return m[:, 0]


class Problem1:
    """One problem's table, BoTorch's and random search's runs, shared by every variant."""

    def __init__(self, name, num_seeds, steps, botorch_py=None, peer_from=None):
        self.name, self.steps = name, steps
        self.U, self.values, self.noise_sd, self.eps, self.init_idx = table(name, num_seeds)
        self.base = {"name": f"vs_botorch_{name}", "seeds": num_seeds, "steps": steps,
                     "num_init": NUM_INIT, "noise_sd": r4(self.noise_sd),
                     "candidates": len(self.U)}  # fmt: skip
        self.peer, self.peer_info = None, {}
        try:
            if peer_from:
                self.peer, peer_s, who = cached_peer(peer_from, self.base)
                self.peer_info["peer_from"] = os.path.basename(peer_from)
            elif botorch_py:
                self.peer, peer_s, who = botorch_runs(
                    self.U, self.values, self.noise_sd, self.eps, self.init_idx, steps, botorch_py
                )
            if self.peer is not None:
                self.peer_info.update(peer=who, peer_s=r4(peer_s))
        except (RuntimeError, OSError) as e:
            self.peer_info["peer_error"] = str(e)
        rs = np.random.RandomState(99)
        self.random = [
            {"picks": rs.permutation(np.setdiff1d(np.arange(len(self.U)), ii))[:steps].tolist()}
            for ii in self.init_idx
        ]

    def record(self, opts):
        """jaxscope's campaigns with ``opts`` next to BoTorch and random search."""
        js, js_s = run_jaxscope(
            self.U, self.values, self.noise_sd, self.eps, self.init_idx, self.steps, opts
        )
        rec = {**self.base, "jaxscope_s": r4(js_s), "jaxscope_options": opts, **self.peer_info}
        per_seed = {"jaxscope": summarise("jaxscope", js, self.values, self.init_idx, rec)}
        summarise("random", self.random, self.values, self.init_idx, rec)
        if self.peer is not None:
            per_seed["botorch"] = summarise("botorch", self.peer, self.values, self.init_idx, rec)
            rec["botorch_picks"] = [r["picks"] for r in self.peer]
            rec["speedup"] = r4(rec["peer_s"] / js_s)
            sem = max(rec["jaxscope_regret_sem"], rec["botorch_regret_sem"])
            rec["regret_sem"] = sem
            rec["met"] = bool(rec["jaxscope_regret"] <= rec["botorch_regret"] + sem)
            diff = per_seed["jaxscope"] - per_seed["botorch"]  # same seeds, points and noise
            rec["paired_diff"] = r4(diff.mean())
            rec["paired_diff_sem"] = r4(diff.std(ddof=1) / np.sqrt(len(diff)))
            rec["seeds_better_equal_worse"] = [
                int(np.sum(diff < -1e-9)), int(np.sum(np.abs(diff) <= 1e-9)),
                int(np.sum(diff > 1e-9)),
            ]  # fmt: skip
        rec["what"] = (
            f"{self.steps} steps from {NUM_INIT} shared seed points, noise sd {NOISE_FRACTION} x "
            f"sd(truth), same noise draws for every library; jaxscope ({describe(opts)}) vs "
            "BoTorch's SingleTaskGP + Standardize + LogEI over the same candidates vs random "
            "search; regret and top-1 % share averaged over seeds"
        )
        return rec


# candidate defaults: every option explicit, so the table does not move when the defaults do
_CHOSEN_SURROGATE = {"priors": "dim_scaled", "start": None, "refit_from": "best", "mode": "map",
                     "penalty": "none"}  # fmt: skip
CHOICES = {
    "logei": {**_CHOSEN_SURROGATE, "acq": "logei"},
    "ucb": {**_CHOSEN_SURROGATE, "acq": "ucb"},
    "ei": {**_CHOSEN_SURROGATE, "acq": "ei"},
    "logei_memory": {**_CHOSEN_SURROGATE, "acq": "logei", "penalty": "memory"},
    "logei_refit_previous": {**_CHOSEN_SURROGATE, "acq": "logei", "refit_from": "previous"},
    "logei_refit_init": {**_CHOSEN_SURROGATE, "acq": "logei", "refit_from": "init"},
    "logei_wide_priors": {"priors": "wide", "start": None, "refit_from": "previous",
                          "mode": "map", "penalty": "none", "acq": "logei"},  # before issue 8
}  # fmt: skip


def choose(by_choice, problems):
    """The ``default_campaign_choice`` record: among the candidates at least as good as BoTorch
    on every problem, the lowest mean of regret / random search's regret (ties: the first)."""
    tab, score, met_all = {}, {}, {}
    for c, recs in by_choice.items():
        tab[c] = {
            r["name"][len("vs_botorch_"):]: {
                k: r.get(k) for k in ("jaxscope_regret", "jaxscope_regret_sem", "jaxscope_top1",
                                      "met", "jaxscope_s")
            } for r in recs
        }  # fmt: skip
        rel = [r["jaxscope_regret"] / max(r["random_regret"], 1e-12) for r in recs]
        score[c] = r4(float(np.mean(rel)))
        met_all[c] = all(r.get("met", False) for r in recs)
    eligible = [c for c in by_choice if met_all[c]] or list(by_choice)
    chosen = min(eligible, key=lambda c: score[c])
    want = CHOICES[chosen]
    return {
        "name": "default_campaign_choice", "problems": problems, "choices": CHOICES,
        "table": tab, "relative_regret": score, "met_on_every_problem": met_all,
        "chosen": chosen, "chosen_options": want, "budget": {"num_init": NUM_INIT,
        "steps": by_choice[chosen][0]["steps"]},
        "what": "candidate campaign defaults on every problem (same seeds, points and noise as "
        "BoTorch's loop); chosen: met on every problem, then the lowest mean regret relative "
        "to random search",
    }  # fmt: skip


DEFAULT_OPTS = {"priors": None, "start": None, "refit_from": None, "mode": "map", "acq": None,
                "penalty": None}  # fmt: skip


def describe(opts):
    changed = [f"{k}={v}" for k, v in opts.items() if v != DEFAULT_OPTS.get(k)]
    return "the default campaign" + (f" with {', '.join(changed)}" if changed else "")


SHOW = ("name", "jaxscope_s", "speedup", "jaxscope_regret", "jaxscope_regret_sem",
        "botorch_regret", "botorch_regret_sem", "random_regret", "met", "paired_diff",
        "paired_diff_sem", "seeds_better_equal_worse")  # fmt: skip


def markdown(path):
    """The README's tables from a ``--choose`` result file."""
    with open(path) as f:
        recs = {r["name"]: r for r in json.load(f)["records"]}
    ch = recs["default_campaign_choice"]
    pm = lambda r, w: f"{r[w + '_regret']} ± {r[w + '_regret_sem']} (top-1 % {r[w + '_top1']})"
    rows = [
        "| problem | jaxscope default | BoTorch loop | random | met | paired diff (± SEM) "
        "| seeds better/equal/worse | BoTorch time / jaxscope time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in ch["problems"]:
        r = recs[f"vs_botorch_{n}"]
        rows.append(
            f"| {n} | {pm(r, 'jaxscope')} | {pm(r, 'botorch')} | {pm(r, 'random')} | "
            f"{'yes' if r['met'] else '**no**'} | {r['paired_diff']} ± {r['paired_diff_sem']} | "
            f"{'/'.join(map(str, r['seeds_better_equal_worse']))} | {r['speedup']}× |"
        )
    rows += ["", "| candidate | " + " | ".join(ch["problems"]) + " | met everywhere | "
             "mean regret / random's |", "|---" * (len(ch["problems"]) + 3) + "|"]  # fmt: skip
    for c in ch["choices"]:
        cells = []
        for n in ch["problems"]:
            t = ch["table"][c][n]
            cell = f"{t['jaxscope_regret']} ± {t['jaxscope_regret_sem']}"
            cells.append(cell if t["met"] else f"**{cell}**")
        name = f"**{c}** (chosen)" if c == ch["chosen"] else c
        met = "yes" if ch["met_on_every_problem"][c] else "no"
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {met} | {ch['relative_regret'][c]} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--table", default=None, help="print the README tables of this result file")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--choose", action="store_true", help="measure every candidate default")
    ap.add_argument("--only", default="", help="comma-separated problem names")
    ap.add_argument("--priors", default=None, help="jaxscope's GP priors: dim_scaled, wide")
    ap.add_argument("--start", default=None, help="where MAP starts: median, mode")
    ap.add_argument("--refit-from", default=None, help="MAP refits from: previous, init, best")
    ap.add_argument("--mode", default="map", help="jaxscope's surrogate: map, or nuts (100/100)")
    ap.add_argument("--acq", default=None, help="jaxscope's acquisition rule")
    ap.add_argument("--penalty", default=None, help="jaxscope's penalty: none, memory")
    ap.add_argument("--no-peer", action="store_true", help="jaxscope and random search only")
    ap.add_argument(
        "--peer-from",
        default=None,
        help="reuse BoTorch's per-seed runs from this result file (same protocol)",
    )
    ap.add_argument("--out", default=None, help="result file name (default from the options)")
    args = ap.parse_args()
    if args.table:
        print(markdown(args.table))
        return
    opts = {"priors": args.priors, "start": args.start, "refit_from": args.refit_from,
            "mode": args.mode, "acq": args.acq, "penalty": args.penalty}  # fmt: skip
    if args.quick:
        names, seeds, steps = ["three_gaussians", "branin", "sparse_scan"], 5, 20
    else:
        skip = (*HYPOTHESIS_PROBLEMS, *IMAGE_PROBLEMS)  # law learning; twins have their own
        names, seeds, steps = [p for p in PROBLEMS if p not in skip], 20, 40
    if args.only:
        names = args.only.split(",")
    botorch_py, err = None, None
    if not args.no_peer and not args.peer_from:
        botorch_py, _, err = peer_python("botorch")
    stem = "quality_quick" if args.quick else "quality"
    if not args.choose:
        stem += "".join(f"_{v}" for k, v in opts.items() if v != DEFAULT_OPTS[k])
    path = os.path.join(RESULTS, args.out or stem + ".json")
    command = "python benchmarks/quality.py " + " ".join(sys.argv[1:])
    variants = CHOICES if args.choose else {"run": opts}
    by_choice = {c: [] for c in variants}
    for n in names:
        prob = Problem1(n, seeds, steps, botorch_py, args.peer_from)
        for c, o in variants.items():
            rec = prob.record(o)
            if err:
                rec["peer_error"] = err
            print(c, {k: v for k, v in rec.items() if k in SHOW}, flush=True)
            by_choice[c].append(rec)
        if args.choose:
            choice = choose(by_choice, names[: len(next(iter(by_choice.values())))])
            records = by_choice[choice["chosen"]] + [choice]
        else:
            records = by_choice["run"]
        write_results(path, "quality", command, records, versions=versions())


if __name__ == "__main__":
    main()
