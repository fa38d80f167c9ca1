"""Campaign quality against BoTorch's standard loop and random search (issue 8; in progress).

For every simulated problem the package has (``jaxscope.instruments.PROBLEMS``, at the command
line's sizes: 48×48 grids, 1024 candidates of each test function), every seed gets the same
``num_init`` seed points and one standard-normal noise draw per candidate, so jaxscope, BoTorch
(``_peers/botorch_loop.py``: ``SingleTaskGP`` + ``Standardize`` + ``LogExpectedImprovement``
over the same candidates) and random search measure exactly the same noisy values. Noise sd:
``NOISE_FRACTION`` × the standard deviation of the true values. Reported per problem: final
simple regret, share of the top-1 % candidates measured, map RMSE per step, and BoTorch time /
jaxscope time (compile included).

    python benchmarks/quality.py --quick          # 3 problems × 5 seeds × 20 steps
    python benchmarks/quality.py                  # every problem × 20 seeds × 40 steps

Writes ``benchmarks/results/quality.json`` (``quality_quick.json`` for ``--quick``).
"""

from __future__ import annotations

import argparse
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
from jaxscope.gp import GPModel
from jaxscope.instruments import PROBLEMS, Problem

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


def run_jaxscope(U, values, noise_sd, eps, init_idx, steps, priors="wide", mode="map"):
    model = GPModel.for_candidates(U, priors=priors)
    opts = {"num_warmup": 100, "num_samples": 100} if mode == "nuts" else {}
    cfg = make_config(U.astype(np.float32), model=model, acquisition="logei", mode=mode, **opts)
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
            noise = float(final.model.params["noise"]) + model.noise_floor  # NUTS: the mean
            out.append({"picks": picks, "rmse": np.asarray(final.history.rmse).tolist(),
                        "final_noise_var": noise})  # fmt: skip
    return out, t.wall


def one_problem(name, num_seeds, steps, botorch_py, priors="wide", mode="map"):
    U, values, noise_sd, eps, init_idx = table(name, num_seeds)
    js, js_s = run_jaxscope(U, values, noise_sd, eps, init_idx, steps, priors, mode)
    rec = {"name": f"vs_botorch_{name}", "seeds": num_seeds, "steps": steps,
           "noise_sd": r4(noise_sd), "candidates": len(U), "jaxscope_s": r4(js_s),
           "jaxscope_priors": priors, "jaxscope_mode": mode}  # fmt: skip
    res = {"jaxscope": js}
    if botorch_py:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "problem.npz")
            np.savez(path, candidates=U, values=values, noise_sd=noise_sd, eps=eps, init=init_idx)
            peer = run_json(
                [botorch_py, os.path.join(os.path.dirname(__file__), "_peers", "botorch_loop.py"),
                 path, str(steps)], timeout=7200,
            )  # fmt: skip
        if "error" in peer:
            rec["peer_error"] = peer["error"]
        else:
            res["botorch"] = peer["seeds"]
            rec["peer"] = f"botorch {peer['botorch']}"
            rec["peer_s"] = r4(peer["wall_s"])
            rec["speedup"] = r4(peer["wall_s"] / js_s)
    rs = np.random.RandomState(99)
    res["random"] = [
        {"picks": rs.permutation(np.setdiff1d(np.arange(len(U)), init_idx[s]))[:steps].tolist()}
        for s in range(num_seeds)
    ]
    for who, runs in res.items():
        m = np.array([metrics(values, init_idx[s], r["picks"]) for s, r in enumerate(runs)])
        rec[f"{who}_regret"] = r4(m[:, 0].mean())
        rec[f"{who}_regret_sem"] = r4(m[:, 0].std(ddof=1) / np.sqrt(len(m)))
        rec[f"{who}_top1"] = r4(m[:, 1].mean())
        if "rmse" in runs[0]:
            rec[f"{who}_rmse_per_step"] = [r4(x) for x in np.mean([r["rmse"] for r in runs], 0)]
            rec[f"{who}_final_noise_var"] = [r4(r["final_noise_var"]) for r in runs]
    if "botorch_regret" in rec:
        sem = max(rec["jaxscope_regret_sem"], rec["botorch_regret_sem"])
        rec["regret_sem"] = sem
        rec["met"] = bool(rec["jaxscope_regret"] <= rec["botorch_regret"] + sem)
    rec["what"] = (
        f"{steps} steps of logEI from {NUM_INIT} shared seed points, noise sd "
        f"{NOISE_FRACTION} x sd(truth), same noise draws for every library; jaxscope's default "
        "campaign (MAP refit, default priors) vs BoTorch's SingleTaskGP + Standardize + LogEI "
        "over the same candidates vs random search; regret and top-1 % share averaged over seeds"
    )
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated problem names")
    ap.add_argument("--priors", default="wide", help="jaxscope's GP priors: wide, dim_scaled")
    ap.add_argument("--no-peer", action="store_true", help="jaxscope and random search only")
    ap.add_argument("--mode", default="map", help="jaxscope's surrogate: map, or nuts (100/100)")
    args = ap.parse_args()
    if args.quick:
        names, seeds, steps = ["three_gaussians", "branin", "sparse_scan"], 5, 20
    else:
        names, seeds, steps = list(PROBLEMS), 20, 40
    if args.only:
        names = args.only.split(",")
    botorch_py, _, err = (None, None, None) if args.no_peer else peer_python("botorch")
    records = []
    stem = "quality_quick" if args.quick else "quality"
    if args.priors != "wide":
        stem += f"_{args.priors}"
    if args.mode != "map":
        stem += f"_{args.mode}"
    path = os.path.join(RESULTS, stem + ".json")
    for n in names:
        rec = one_problem(n, seeds, steps, botorch_py, args.priors, args.mode)
        if err:
            rec["peer_error"] = err
        print({k: v for k, v in rec.items() if "per_step" not in k and k != "what"}, flush=True)
        records.append(rec)
        write_results(
            path, "quality", "python benchmarks/quality.py " + " ".join(sys.argv[1:]),
            records, versions=versions(),
        )  # fmt: skip


if __name__ == "__main__":
    main()
