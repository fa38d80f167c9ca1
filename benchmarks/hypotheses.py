"""Hypotheses suite: structured GP (gpax B4), hypothesis learning (gpax B7), which law is found
(combinatorial library, hidden-truth draws), and engine throughput.

Records (``benchmarks/results/hypotheses.json``; format of ``BENCHMARKS.md``):

* ``gpax_B4_end_to_end`` — two-minima structured GP, N=30, NUTS 500/500, fit + predict 1000
  points from a cold start; gpax ``ExactGP(mean_fn=..., mean_fn_prior=...)`` on the same data
  (its runner: ``_peers/gpax_b4.py``); RMSE of both and of a plain GP.
* ``gpax_B7_end_to_end`` — hypothesis learning with three piecewise laws (pw1, pw2, pw3 true),
  100-point grid, 3 warm-up + 12 steps, NUTS 500/500 per fit, eps-greedy 0.4; jaxscope's
  :class:`~jaxscope.decide.HypothesisLearner` with ``fit="selected"`` (the protocol's loop)
  as a compiled campaign; gpax's loop from ``_peers/gpax_b7.py``.
* ``true_law_selected_20_draws`` — 20 hidden-truth draws of the combinatorial library
  (:class:`~jaxscope.instruments.CombiLibrary`), the same seed points and noise for both loops
  (``_peers/gpax_hypo_quality.py`` runs gpax's on the data this script writes): fraction of
  draws whose final choice is the true law, |E[x_c] − x_c| and 90 % interval coverage.
* ``hypotheses_chains_seeds_per_s`` — H × C × seeds fitted per second by one compiled campaign
  ``vmap``-ped over seeds, compile time apart; and the cost of the switch under ``vmap``.

usage: python benchmarks/hypotheses.py [--quick] [--no-peer] [--peer-from DIR] [--only NAMES]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import _common as C  # noqa: N812
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.diagnostics import effective_sample_size

from jaxscope import probmodels
from jaxscope.campaign import hypothesis_config, init, run
from jaxscope.decide import NUTSGP, HypothesisLearner, HypothesisSet
from jaxscope.gp import GPModel, Observations, StructuredFamily, fit_nuts
from jaxscope.instruments import Simulator
from jaxscope.instruments.combi import LAWS, CombiLibrary

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "_peers")
RESULTS = os.path.join(HERE, "results")


class TableProblem(Simulator):
    """A 1-D problem whose measurement at candidate ``i`` is the fixed ``noisy[i]``: both loops
    of the quality comparison see the very same numbers."""

    candidates: jax.Array
    bounds: jax.Array
    noisy: jax.Array
    clean: jax.Array
    maximize: bool = eqx.field(static=True, default=True)
    name: str = eqx.field(static=True, default="table")

    def _index(self, x):
        return jnp.argmin(jnp.abs(self.candidates[:, 0] - x[0]))

    def measure(self, key, x):
        del key
        return self.noisy[self._index(x)]

    def truth(self, X):
        return jax.vmap(lambda x: self.clean[self._index(x)])(X)


def table(grid, clean, noise) -> TableProblem:
    g = jnp.asarray(grid, jnp.float32)[:, None]
    return TableProblem(
        g, jnp.asarray([[float(grid.min()), float(grid.max())]], jnp.float32),
        jnp.asarray(clean + noise, jnp.float32), jnp.asarray(clean, jnp.float32),
    )  # fmt: skip


def peer(script, args, peer_from, name, timeout):
    if peer_from:
        path = os.path.join(peer_from, name)
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
        return {"error": f"no {path}"}
    py, ver, err = __import__("_venvs").peer_python("gpax")
    if err:
        return {"error": err}
    return C.run_json([py, script, *map(str, args)], cwd=PEERS, timeout=timeout)


# --- B4 --------------------------------------------------------------------------------------
B4_TRUE = dict(y0=2.0, A1=0.2, w1=0.05, x01=0.3, A2=0.15, w2=0.06, x02=0.7)


def b4_truth(x):
    p = B4_TRUE
    return (p["y0"] - p["A1"] / np.sqrt((x - p["x01"]) ** 2 + p["w1"] ** 2)
            - p["A2"] / np.sqrt((x - p["x02"]) ** 2 + p["w2"] ** 2))  # fmt: skip


def gpax_priors(lengthscale=None):
    """gpax ExactGP's defaults (original units): LogNormal(0, 1) on lengthscale, scale, noise."""
    return {
        "lengthscale": lengthscale or dist.LogNormal(0.0, 1.0),
        "variance": dist.LogNormal(0.0, 1.0),
        "noise": dist.LogNormal(0.0, 1.0),
    }


def run_b4(ns, n_test, peer_from, no_peer):
    rs = np.random.RandomState(1)
    X = np.sort(rs.uniform(0, 1, 30))
    y = b4_truth(X) + 0.1 * rs.randn(30)
    Xt = np.linspace(0, 1, n_test)
    obs = Observations.from_arrays(X[:, None].astype(np.float32), y.astype(np.float32))
    out = {}
    for label in ("sGP", "GP"):
        if label == "sGP":
            fam = StructuredFamily(probmodels.two_minima(), kernel="rbf", residual=gpax_priors())
        else:
            fam = GPModel(kernel=lambda p: __import__("jaxscope").kernels.RBF(
                lengthscale=p["lengthscale"], variance=p["variance"]), priors=gpax_priors())  # fmt: skip
        sur = NUTSGP(fam, num_warmup=ns, num_samples=ns, standardize=False, dense_mass=False)

        @eqx.filter_jit
        def fit_predict(sur, obs, Xt):  # what a user writes: one program, fit and predict
            state = sur.update(sur.init(jax.random.key(0), obs), obs, jax.random.key(1))
            return state, sur.predictive(state, Xt).mean.mean(0)

        with C.Timer() as t:
            state, mean = fit_predict(sur, obs, jnp.asarray(Xt[:, None], jnp.float32))
            mean = np.asarray(mean)
        out[label] = {
            **t.as_dict(),
            "rmse": C.r4(float(np.sqrt(np.mean((mean - b4_truth(Xt)) ** 2)))),
        }
        if label == "sGP":
            out[label]["x0_median"] = (
                np.median(np.asarray(state.samples["x0"]), 0).round(4).tolist()
            )
    rec = {
        "name": "gpax_B4_end_to_end",
        "what": f"two-minima structured GP, N=30, NUTS {ns}/{ns}, fit + predict {n_test} points "
        "from a cold start (compile included); RMSE vs the noise-free truth",
        "jaxscope_s": out["sGP"]["wall_s"], "compile_s": out["sGP"]["compile_s"],
        "quality": {"jaxscope_rmse": out["sGP"]["rmse"], "jaxscope_plain_gp_rmse": out["GP"]["rmse"],
                    "x0_median": out["sGP"]["x0_median"], "truth_x0": [0.3, 0.7]},
    }  # fmt: skip
    if not no_peer:
        g = peer("gpax_b4.py", [3, n_test], peer_from, "gpax_b4.json", 3600)
        if "error" in g:
            rec["peer_error"] = g["error"][-500:]
        else:
            runs = g["sGP"]["runs"]
            walls = [r["fit"]["wall_s"] + r["predict"]["wall_s"] for r in runs]
            rec.update(
                peer="gpax 0.1.9",
                peer_s=C.r4(walls[0]),
                speedup=C.ratio(walls[0], rec["jaxscope_s"]),
            )
            rec["peer_runs_s"] = [C.r4(w) for w in walls]
            rec["quality"]["peer_rmse"] = g["sGP"]["rmse_median"]
            rec["quality"]["peer_plain_gp_rmse"] = g["ExactGP"]["rmse_median"]
            same = np.allclose(np.asarray(g["data"]["X"]), X, atol=1e-6)
            rec["same_data"] = bool(same)
    rec["met"] = bool(rec.get("speedup", 0) >= 3 and out["sGP"]["rmse"] < out["GP"]["rmse"])
    return rec


# --- B7 ---------------------------------------------------------------------------------------
# NUTS tree depth of B7's fits. The wrong laws' posteriors (and the true one's on few points)
# fill a depth-8 tree (255 leapfrog steps) on almost every draw; depth 6 gives more effective
# samples per second with the same posterior (``b7_depth_check``: both depths in one run).
B7_DEPTH = 6


def b7_learner(grid, ns, seeds_np, max_tree_depth=B7_DEPTH):
    N3 = dist.Normal(3.0, 1.0)
    t = dist.Uniform(0.5, 2.0)
    phys = {
        "pw1": probmodels.piecewise_power_linear(t=t, beta=N3, c=N3),
        "pw2": probmodels.piecewise_linear_linear(t=t, b=N3, c=N3),
        "pw3": probmodels.piecewise_power_power(t=t, beta1=N3, beta2=N3),
    }
    hs = HypothesisSet.from_physics(
        phys, kernel="matern52", residual=gpax_priors(dist.Uniform(0.0, 1.0))
    )  # fmt: skip
    return HypothesisLearner(
        hs, jnp.asarray(grid[:, None], jnp.float32), fit="selected", num_chains=1,
        num_warmup=ns, num_samples=ns, num_keep=min(ns, 100), num_restarts=2, standardize=False,
        max_steps=16, dense_mass=False, max_tree_depth=max_tree_depth,
    )  # fmt: skip


def b7_depth_check(grid, clean, ns, depths=(8, B7_DEPTH)):
    """NUTS ``ns``/``ns`` (2 chains) of each law on 10 points of the B7 curve at each tree
    depth: warm time, leapfrog steps a draw, the smallest effective sample size over the
    parameters, and the posterior means (they must agree within Monte Carlo error)."""
    idx = np.array([0, 33, 66, 99, 10, 50, 80, 90, 20, 40])
    y = clean + 0.2 * np.random.RandomState(1).randn(100)
    obs = Observations.from_arrays(grid[idx, None].astype(np.float32), y[idx].astype(np.float32))
    out = {}
    for depth in depths:
        lr = b7_learner(grid, ns, [1], depth)
        scaler = lr._scaler(obs)
        fam0 = lr.hypotheses_family(scaler)
        fit = jax.jit(lambda k, fam, d=depth: fit_nuts(  # noqa: E731
            fam, scaler.apply(obs), k, num_warmup=ns, num_samples=ns, num_chains=2,
            dense_mass=False, max_tree_depth=d))  # fmt: skip
        for h, law in enumerate(("pw1", "pw2", "pw3")):
            fam = eqx.tree_at(lambda f: f.h, fam0, jnp.int32(h))
            jax.block_until_ready(fit(jax.random.key(0), fam))
            t0 = time.perf_counter()
            r = jax.block_until_ready(fit(jax.random.key(1), fam))
            wall = time.perf_counter() - t0
            u = np.asarray(r.samples["u"])
            ess = float(np.min(effective_sample_size(u)))
            out[f"{law}_depth{depth}"] = {
                "warm_s": C.r4(wall), "steps_per_draw": C.r4(float(np.mean(r.num_steps))),
                "min_ess": C.r4(ess), "min_ess_per_s": C.r4(ess / wall),
                "mean_u": np.round(u.mean((0, 1)), 3).tolist(),
                "sd_u": np.round(u.std((0, 1)), 3).tolist(),
            }  # fmt: skip
            C.log("b7 depth", law, depth, out[f"{law}_depth{depth}"])
    return out


def _b7_runs(grid, clean, ns, total, seeds, depth):
    seed_idx = np.array([0, 33, 66, 99])
    lr = b7_learner(grid, ns, seeds, depth)
    from jaxscope.campaign import make_config

    config = make_config(surrogate=lr, acquisition="maxvar", track_rmse=False)
    runs = []
    for s in seeds:
        noise = 0.2 * np.random.RandomState(s).randn(100)
        prob = table(grid, clean, noise)
        X0 = prob.candidates[seed_idx]
        with C.Timer() as t:
            st = init(
                config, prob, X0, prob.noisy[seed_idx], num_steps=total - 1, key=jax.random.key(s)
            )
            st = run(st, config, prob)
            jax.block_until_ready(st)
        tr = st.model.trace
        runs.append({**t.as_dict(), "choices": (np.asarray(tr.selected[:total]) + 1).tolist(),
                     "final_rewards": np.asarray(st.model.record[:, 1]).round(3).tolist()})  # fmt: skip
        C.log("b7 seed", s, "depth", depth, runs[-1])
    return runs


def run_b7(ns, total, seeds, peer_from, no_peer):
    grid = np.linspace(0.0, 2.5, 100)
    clean = np.where(grid < 1.6, grid**4.0, grid**2.5)
    runs = _b7_runs(grid, clean, ns, total, seeds, B7_DEPTH)
    depth8 = _b7_runs(grid, clean, ns, total, seeds, 8)
    rec = {
        "name": "gpax_B7_end_to_end",
        "what": f"hypothesis learning, 3 piecewise laws, 100-point grid, 3 warm-up + {total - 3} "
        f"steps, NUTS {ns}/{ns} per fit (tree depth {B7_DEPTH}), eps-greedy 0.4; per seed, "
        "compile included",
        "jaxscope_s": runs[0]["wall_s"], "jaxscope_runs": runs, "max_tree_depth": B7_DEPTH,
        "depth8_runs": depth8, "depth_check": b7_depth_check(grid, clean, ns),
        "jaxscope_median_s": C.median([r["wall_s"] for r in runs]),
        "compile_s": runs[0]["compile_s"], "seeds": list(seeds),
    }  # fmt: skip
    if not no_peer:
        g = peer(
            "gpax_b7.py",
            [",".join(map(str, seeds[:1])), total, ns],
            peer_from,
            "gpax_b7.json",
            7200,
        )
        b7_peer(rec, g)
    rec["met"] = bool(rec.get("speedup", 0) >= 10)
    return rec


def b7_peer(rec, g):
    if "error" in g:
        rec["peer_error"] = g["error"][-500:]
        return
    pr = g["seeds"]
    walls = [r["total_wall_s"] for r in pr]
    rec.pop("peer_error", None)
    rec.update(
        peer="gpax 0.1.9", peer_s=C.r4(walls[0]), speedup=C.ratio(walls[0], rec["jaxscope_s"])
    )
    rec["peer_seeds_measured"] = len(walls)
    rec["peer_compile_s"] = pr[0].get("total_compile_s")
    rec["peer_n_fits"] = pr[0].get("n_fits")
    rec["peer_choices"] = pr[0].get("model_choices")
    rec["met"] = bool(rec["speedup"] >= 10)


# --- quality ------------------------------------------------------------------------------------
def quality_data(draws, seed_idx):
    grid = np.linspace(0.0, 1.0, 100)
    sims = [CombiLibrary.draw(jax.random.key(d)) for d in range(draws)]
    clean = np.stack([np.asarray(s.truth(jnp.asarray(grid[:, None], jnp.float32))) for s in sims])
    noise = np.stack([0.03 * np.random.RandomState(1000 + d).randn(100) for d in range(draws)])
    laws = np.array([LAWS.index(s.law) for s in sims])
    xc = np.array([float(s.params["xc"]) for s in sims])
    return grid, clean, noise, laws, xc


def run_quality(draws, steps, ns, peer_from, no_peer, out_dir):
    seed_idx = np.array([0, 33, 66, 99])
    grid, clean, noise, laws, xc = quality_data(draws, seed_idx)
    path = os.path.join(out_dir, "combi_draws.npz")
    np.savez(path, X=grid, truth=clean, noise=noise, seed_idx=seed_idx, warmup_steps=3,
             steps=steps, num_warmup=ns, num_samples=ns, gp_wrap=0, eps=0.4)  # fmt: skip
    prob0 = table(grid, clean[0], noise[0])
    config = hypothesis_config(
        prob0, max_steps=steps + 1, num_warmup=ns, num_samples=ns, num_chains=2
    )  # fmt: skip
    lr = config.surrogate
    per = []
    t_all = time.perf_counter()
    for d in range(draws):
        prob = table(grid, clean[d], noise[d])
        st = init(config, prob, prob.candidates[seed_idx], prob.noisy[seed_idx],
                  num_steps=steps, key=jax.random.key(d))  # fmt: skip
        st = run(st, config, prob)
        probs = np.asarray(st.model.scores.probs)
        choice = int(np.argmax(probs))
        by_reward = int(np.argmax(np.asarray(st.model.record[:, 1])))
        s = np.asarray(lr.physics_samples(st.model, choice)["xc"])
        q05, q95 = np.quantile(s, [0.05, 0.95])
        per.append({"law": LAWS[laws[d]], "choice": LAWS[choice], "choice_by_reward": LAWS[by_reward],
                    "probs": probs.round(3).tolist(), "xc": float(xc[d]), "xc_mean": float(s.mean()),
                    "xc_q05": float(q05), "xc_q95": float(q95)})  # fmt: skip
        C.log("quality draw", d, per[-1])
    wall = time.perf_counter() - t_all
    ok = [p["choice"] == p["law"] for p in per]
    err = [abs(p["xc_mean"] - p["xc"]) for p in per]
    cov = [p["xc_q05"] <= p["xc"] <= p["xc_q95"] for p in per]
    rec = {
        "name": "true_law_selected_20_draws",
        "what": f"{draws} hidden-truth draws of the combinatorial library (3 laws), seed points "
        f"{seed_idx.tolist()}, {steps} steps (3 warm-up), NUTS {ns}/{ns}; final choice = the "
        "highest posterior model probability (jaxscope) / the highest running reward (gpax)",
        "draws": draws, "jaxscope_s": C.r4(wall),
        "quality": {"jaxscope_true_law_fraction": float(np.mean(ok)),
                    "jaxscope_true_law_fraction_by_reward": float(np.mean(
                        [p["choice_by_reward"] == p["law"] for p in per])),
                    "jaxscope_xc_abs_error_median": C.r4(float(np.median(err))),
                    "jaxscope_xc_90_coverage": float(np.mean(cov))},
        "per_draw": per,
    }  # fmt: skip
    if not no_peer:
        g = peer("gpax_hypo_quality.py", [path, os.path.join(out_dir, "gpax_quality.json")],
                 peer_from, "gpax_quality.json", 7200)  # fmt: skip
        quality_peer(rec, g, laws, xc, ok)
    return rec


def quality_peer(rec, g, laws, xc, ok):
    if "error" in g and not g.get("draws"):
        rec["peer_error"] = str(g["error"])[-500:]
    else:
        gd = g.get("draws") or []
        idx = [r["draw"] for r in gd]
        g_ok = [r["final_choice"] == laws[r["draw"]] for r in gd]
        g_xc = [r.get("xc_summary", {}) for r in gd]
        rec.pop("peer_error", None)
        rec["peer"] = "gpax 0.1.9"
        rec["peer_partial"] = bool(g.get("partial", False))
        rec["peer_draws_measured"] = len(gd)
        rec["quality"]["peer_true_law_fraction"] = float(np.mean(g_ok)) if gd else None
        rec["quality"]["jaxscope_true_law_fraction_same_draws"] = (
            float(np.mean([ok[i] for i in idx])) if gd else None)  # fmt: skip
        errs = [abs(s["mean"] - xc[i]) for s, i in zip(g_xc, idx, strict=True) if "mean" in s]
        covs = [s["q05"] <= xc[i] <= s["q95"] for s, i in zip(g_xc, idx, strict=True) if "q05" in s]
        rec["quality"]["peer_xc_abs_error_median"] = C.r4(float(np.median(errs))) if errs else None
        rec["quality"]["peer_xc_90_coverage"] = float(np.mean(covs)) if covs else None
        if gd:
            rec["met"] = bool(rec["quality"]["jaxscope_true_law_fraction_same_draws"]
                              >= rec["quality"]["peer_true_law_fraction"])  # fmt: skip


def merge_peers(path, peer_from):
    """Fill the peer fields of an existing results file from the peer runners' JSON (peers that
    ran alongside, and finished after, jaxscope's side of the same run)."""
    with open(path) as f:
        res = json.load(f)
    for rec in res["records"]:
        if rec["name"] == "gpax_B7_end_to_end":
            b7_peer(rec, peer(None, [], peer_from, "gpax_b7.json", 0))
        if rec["name"] == "true_law_selected_20_draws":
            per = rec["per_draw"]
            laws = [LAWS.index(p["law"]) for p in per]
            xc = [p["xc"] for p in per]
            ok = [p["choice"] == p["law"] for p in per]
            quality_peer(rec, peer(None, [], peer_from, "gpax_quality.json", 0), laws, xc, ok)
    res["peers_merged"] = time.strftime("%Y-%m-%d %H:%M")
    with open(path, "w") as f:
        json.dump(res, f, indent=1, default=float)
        f.write("\n")
    print(f"merged peers into {path}")


# --- scale ----------------------------------------------------------------------------------------
def run_scale(num_seeds, ns, steps):
    grid = np.linspace(0.0, 1.0, 100)
    _, clean, noise, _, _ = quality_data(num_seeds, None)
    seed_idx = np.array([0, 33, 66, 99])
    out = {}
    for lanes in ("map", "vmap"):
        prob0 = table(grid, clean[0], noise[0])
        config = hypothesis_config(prob0, max_steps=steps + 1, num_warmup=ns, num_samples=ns,
                                   num_chains=2, lanes=lanes)  # fmt: skip

        @jax.jit
        def many(clean, noise, keys, config=config):
            def one(c, n, k):
                prob = table_j(grid, c, n)
                st = init(config, prob, prob.candidates[seed_idx], prob.noisy[seed_idx],
                          num_steps=steps, key=k)  # fmt: skip
                return run(st, config, prob).model.scores.probs

            return jax.vmap(one)(clean, noise, keys)

        keys = jax.random.split(jax.random.key(0), num_seeds)
        with C.Timer() as t1:
            jax.block_until_ready(many(clean, noise, keys))
        with C.Timer() as t2:
            jax.block_until_ready(
                many(clean, noise, jax.random.split(jax.random.key(1), num_seeds))
            )
        fits = 3 * 2 * num_seeds * (steps + 1)
        out[lanes] = {"first_s": C.r4(t1.wall), "compile_s": C.r4(t1.compile), "run_s": C.r4(t2.wall),
                      "hypothesis_chain_fits_per_s": C.r4(fits / t2.wall)}  # fmt: skip
        C.log("scale", lanes, out[lanes])
    return {
        "name": "hypotheses_chains_seeds_per_s",
        "what": f"3 hypotheses × 2 chains × {num_seeds} seeds, {steps + 1} NUTS {ns}/{ns} fits each, "
        "one compiled campaign vmapped over seeds; (hypothesis, chain) lanes by lax.map or by vmap "
        "(under vmap the switch over hypotheses runs every branch)",
        "jaxscope_s": out["map"]["run_s"], "compile_s": out["map"]["compile_s"], "lanes": out,
    }  # fmt: skip


def table_j(grid, clean, noise):
    g = jnp.asarray(grid, jnp.float32)[:, None]
    return TableProblem(g, jnp.asarray([[0.0, 1.0]], jnp.float32), clean + noise, clean)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--peer-from", default=None, help="folder with the peer runners' JSON")
    ap.add_argument("--only", default="b4,b7,quality,scale")
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--out", default=None)
    ap.add_argument("--merge-peers", action="store_true", help="only fill peer fields of --out")
    a = ap.parse_args(argv)
    if a.merge_peers:
        return merge_peers(a.out or os.path.join(RESULTS, "hypotheses.json"), a.peer_from)
    only = a.only.split(",")
    q = a.quick
    out_dir = os.path.join(RESULTS, "peer_raw")
    os.makedirs(out_dir, exist_ok=True)
    records = []
    if "b4" in only:
        records.append(run_b4(50 if q else 500, 200 if q else 1000, a.peer_from, a.no_peer or q))
        C.log(records[-1])
    if "b7" in only:
        records.append(run_b7(50 if q else 500, 6 if q else 15, [1],
                              a.peer_from, a.no_peer or q))  # fmt: skip
        C.log({k: v for k, v in records[-1].items() if k != "jaxscope_runs"})
    if "quality" in only:
        records.append(run_quality(2 if q else a.draws, 6 if q else 12, 50 if q else 200,
                                   a.peer_from, a.no_peer or q, out_dir))  # fmt: skip
        C.log({k: v for k, v in records[-1].items() if k != "per_draw"})
    if "scale" in only:
        records.append(run_scale(2 if q else 8, 50 if q else 200, 3 if q else 6))
        C.log(records[-1])
    path = a.out or os.path.join(RESULTS, "hypotheses_quick.json" if q else "hypotheses.json")
    cmd = "python benchmarks/hypotheses.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for r in records:
        r.setdefault("command", cmd.strip())
    if not q:  # keep the records of the parts not rerun
        records = C.keep_old_records(path, records)
    C.write_results(path, "hypotheses", cmd.strip(), records, versions=C.versions())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
