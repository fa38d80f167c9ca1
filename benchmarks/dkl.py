"""Deep-kernel suite: gpax protocol B5 and the DKL campaign on the PFM twin.

Records (``benchmarks/results/dkl.json``; format of ``BENCHMARKS.md``):

* ``gpax_B5_end_to_end`` — 2000 8×8 patches (64 features) of the anchor's synthetic lattice
  image, 500 training steps, predict 5000: jaxscope's :class:`~jaxscope.dkl.DKLGP` (gpax's
  MLP 64-64-2 ReLU, RBF head, 4 members, mini-batch marginal likelihood, Adam) vs gpax ``viDKL`` (its runner:
  ``_peers/gpax_b5.py``, on the very same arrays); RMSE of both.
* ``dkl_campaign_pfm_200_steps`` / ``pfm_top1pct_found_K200`` — the DKL campaign on a 50×50
  PFM twin (16-px windows: 1225 candidates), 3 seed points, EI; jaxscope compiled vs the gpax
  ``viDKL`` loop refit from scratch each step (``_peers/gpax_dkl_loop.py``, timed over its first
  steps and extrapolated); top-1 % loop-area locations found and map RMSE, with random, raster
  and a coordinate GP as baselines, on the same twin and seeds.
* ``real_beps_pto_dkl`` — the same comparison (50 steps, timed in full on both sides) on the
  measured BEPS map of PbTiO3 replayed by :func:`jaxscope.instruments.beps_replay`; skipped
  (recorded as such) when the file is absent (``--data``, or ``$JAXSCOPE_BEPS_PTO``).

usage: python benchmarks/dkl.py [--quick] [--no-peer] [--only b5,campaign,real] [--seeds N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import _common as C  # noqa: N812
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxscope.campaign import campaign_metrics, dkl_config, init, make_config, run
from jaxscope.dkl import DKLGP, MLP, DeepKernelFamily
from jaxscope.gp import Observations
from jaxscope.instruments import Problem, beps_replay, make_simulator

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "_peers")
RESULTS = os.path.join(HERE, "results")
RAW = os.path.join(RESULTS, "peer_raw")
BEPS_PTO = os.environ.get(
    "JAXSCOPE_BEPS_PTO", os.path.join(C.REPO, "..", "shared", "data", "BEPS_PTO_50x50.h5")
)


def peer(script, args, timeout):
    py, _, err = __import__("_venvs").peer_python("gpax")
    if err:
        return {"error": err}
    return C.run_json([py, script, *map(str, args)], cwd=PEERS, timeout=timeout)


# --- B5 ----------------------------------------------------------------------------------------
def b5_image(rs, size=256):
    """The anchor's synthetic 'atomic lattice' (a smooth strain-like distortion, noise)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    img = np.zeros((size, size))
    a = 6.0
    for cx in np.arange(0, size, a):
        for cy in np.arange(0, size, a):
            dx = 1.5 * np.sin(2 * np.pi * cy / 128.0)
            amp = 1.0 + 0.5 * np.cos(2 * np.pi * cx / 200.0)
            img += amp * np.exp(-((xx - cx - dx) ** 2 + (yy - cy) ** 2) / (2 * 1.2**2))
    return img + 0.05 * rs.randn(size, size)


def b5_data(n_train=2000, n_test=5000, p=8):
    """Patches and target exactly as protocol B5 draws them (``RandomState(0)``)."""
    rs = np.random.RandomState(0)
    img = b5_image(rs)
    n = n_train + n_test
    ci = rs.randint(0, img.shape[0] - p, n)
    cj = rs.randint(0, img.shape[1] - p, n)
    P = np.stack([img[i : i + p, j : j + p].ravel() for i, j in zip(ci, cj, strict=True)])
    P = (P - P.mean()) / P.std()
    t = P[:, [27, 28, 35, 36]].mean(1) * P.std(1)
    t = (t - t.mean()) / t.std() + 0.05 * rs.randn(n)
    f = np.float32
    return P[:n_train].astype(f), t[:n_train].astype(f), P[n_train:].astype(f), t[n_train:]


# B5 settings: gpax viDKL's own network (64-64-2, ReLU), 4 independently initialised members
# (vmap), each 500 Adam steps (gpax's step size 5e-3) on mini-batches of 256 rows of the marginal
# likelihood, a unit Normal prior on the weights (gpax's viDKL also puts Normal priors on them).
# Measured on 3 Dec 2026 (init keys 0-2, median test RMSE): one member 0.081, four 0.065, eight
# 0.063; 64-32-2 tanh (four members) 0.076; one full-batch member 0.088 at 20x the time.
B5 = {"hidden": (64, 64), "activation": "relu", "num_members": 4, "batch_size": 256,
      "learning_rate": 5e-3, "weight_prior": 1.0}  # fmt: skip
B5_VARIANTS = {  # recorded next to the default, same data and keys
    "one_member": {"num_members": 1},
    "full_batch": {"num_members": 1, "batch_size": None},  # ~110 s a fit: one repeat
}
B5_VARIANT_REPEATS = {"full_batch": 1}


def _b5_surrogate(steps, cfg):
    net = MLP(hidden=cfg["hidden"], latent=2, activation=cfg["activation"])
    fam = DeepKernelFamily(net, input_shape=(64,), weight_prior=cfg["weight_prior"])
    return DKLGP(fam, num_members=cfg["num_members"], train_steps=steps,
                 learning_rate=cfg["learning_rate"], batch_size=cfg["batch_size"],
                 chunk_size=1000)  # fmt: skip


@eqx.filter_jit
def _b5_fit_predict(sur, obs, Xt, key):  # what a user writes: one program, fit and predict
    st = sur.update(sur.init(key, obs), obs, key)
    return sur.predictive(st, Xt).mean.mean(0)  # the ensemble's mean (one member: itself)


def _b5_runs(sur, X, y, Xt, yt, repeats, tag):
    runs = []
    for r in range(repeats):
        with C.Timer() as t:
            obs = Observations.from_arrays(X, y)
            mean = np.asarray(_b5_fit_predict(sur, obs, jnp.asarray(Xt), jax.random.key(r)))
        runs.append({**t.as_dict(), "rmse": C.r4(float(np.sqrt(np.mean((mean - yt) ** 2))))})
        C.log("b5 jaxscope", tag, r, runs[-1])
    return runs


def run_b5(steps, n_train, repeats, no_peer):
    X, y, Xt, yt = b5_data(n_train)
    path = os.path.join(RAW, "b5_data.npz")
    np.savez(path, X=X, y=y, Xt=Xt, yt=yt.astype(np.float32))
    runs = _b5_runs(_b5_surrogate(steps, B5), X, y, Xt, yt, repeats, "default")
    variants = {}
    for tag, over in B5_VARIANTS.items():
        n = min(repeats, B5_VARIANT_REPEATS.get(tag, repeats))
        vr = _b5_runs(_b5_surrogate(steps, {**B5, **over}), X, y, Xt, yt, n, tag)
        variants[tag] = {"settings": over, "cold_s": vr[0]["wall_s"],
                         "warm_s_median": C.median([r["wall_s"] for r in vr[1:]] or [None]),
                         "rmse_median": C.median([r["rmse"] for r in vr])}  # fmt: skip
    rec = {
        "name": "gpax_B5_end_to_end",
        "what": f"DKL on {n_train} 8x8 patches (64 features), {steps} Adam steps, predict 5000; "
        "MLP 64-64-2 ReLU (gpax viDKL's) + RBF; cold start (compile included) for the first "
        "repeat; "
        f"settings {B5} (mini-batch marginal likelihood, 4 members under vmap)",
        "jaxscope_s": runs[0]["wall_s"], "compile_s": runs[0]["compile_s"],
        "jaxscope_runs": runs, "variants": variants,
        "quality": {"jaxscope_rmse": C.median([r["rmse"] for r in runs])},
    }  # fmt: skip
    if not no_peer:
        g = peer("gpax_b5.py", [path, repeats], 7200)
        if "error" in g:
            rec["peer_error"] = str(g["error"])[-500:]
        else:
            walls = [r["fit"]["wall_s"] + r["predict"]["wall_s"] for r in g["runs"]]
            rec.update(peer="gpax 0.1.9 viDKL", peer_s=C.r4(walls[0]),
                       speedup=C.ratio(walls[0], rec["jaxscope_s"]),
                       peer_runs_s=[C.r4(w) for w in walls])  # fmt: skip
            rec["quality"]["peer_rmse"] = C.r4(g["rmse_median"])
            rec["met"] = bool(rec["speedup"] >= 5 and
                              rec["quality"]["jaxscope_rmse"] <= rec["quality"]["peer_rmse"])  # fmt: skip
    return rec


# --- the DKL campaign on the PFM twin ----------------------------------------------------------
class TwinTable(Problem):
    """The twin's candidates with fixed noisy values: measuring candidate ``i`` returns
    ``noisy[i]``, so every loop (ours, gpax's, the baselines) sees the same numbers."""

    candidates: jax.Array
    noisy: jax.Array
    clean: jax.Array
    maximize: bool = eqx.field(static=True, default=True)

    def measure_batch(self, key, X):
        i = jnp.argmin(jnp.sum((self.candidates[None] - X[:, None]) ** 2, -1), axis=1)
        return self.noisy[i]

    @property
    def has_truth(self):
        return True

    def truth(self, X):
        i = jnp.argmin(jnp.sum((self.candidates[None] - X[:, None]) ** 2, -1), axis=1)
        return self.clean[i]


def top_found(order, truth, frac=0.01):
    """Fraction of the true top-``frac`` candidates (ceil(frac·m), ties by index) among the
    measured indices after each measurement (the same formula for every loop)."""
    m = truth.shape[0]
    k = math.ceil(frac * m)
    top = set(np.lexsort((np.arange(m), -truth))[:k].tolist())
    seen, out = set(), []
    for i in order:
        seen.add(int(i))
        out.append(len(seen & top) / k)
    return out


def campaign_data(sim, tag, seeds, steps, train_steps, noise_frac, max_timed, full_seeds=0):
    """The arrays both sides use: normalised patches, noise-free target, per-seed noise and
    seed points; written to ``peer_raw/{tag}_campaign.npz`` for the gpax loop."""
    P = sim.patches(normalize="image")
    clean = np.asarray(sim.truth(sim.candidates), np.float64)
    m = clean.shape[0]
    noise = np.stack([noise_frac * clean.std() * np.random.RandomState(100 + s).randn(m)
                      for s in seeds])  # fmt: skip
    seed_idx = np.stack([np.random.RandomState(s).choice(m, 3, replace=False) for s in seeds])
    path = os.path.join(RAW, f"{tag}_campaign.npz")
    np.savez(path, features=np.asarray(P.patches).reshape(m, -1).astype(np.float32),
             truth=clean, noise=noise, seed_idx=seed_idx, seeds=np.asarray(seeds), steps=steps,
             train_steps=train_steps, step_size=5e-3, z_dim=2, max_steps_timed=max_timed,
             full_seeds=full_seeds)  # fmt: skip
    return P, clean, noise, seed_idx, path


def run_loop(config, prob, idx0, steps, key):
    cands = prob.candidates
    with C.Timer() as t:  # init and the compiled scan, compile included
        st = init(config, prob, cands[idx0], prob.noisy[idx0], num_steps=steps, key=key)
        st = run(st, config, prob)
        jax.block_until_ready(st)
    order = list(idx0) + np.asarray(st.history.index[:, 0]).tolist()
    rmse = np.asarray(campaign_metrics(st, prob)["rmse"])
    return t.as_dict(), order, rmse


def compare_loops(sim, tag, seeds, steps, train_steps, noise_frac, max_timed, full_seeds=0,
                  dkl_options=None, baselines=True):  # fmt: skip
    """DKL and coordinate-GP campaigns (compiled) and the random and raster baselines on the
    same table of values, seed points and seeds; top-1 % found and map RMSE every 10 steps.
    ``dkl_options`` go to :func:`dkl_config`; ``baselines=False`` runs the DKL loop only."""
    P, clean, noise, seed_idx, path = campaign_data(sim, tag, seeds, steps, train_steps,
                                                    noise_frac, max_timed, full_seeds)  # fmt: skip
    m = clean.shape[0]
    dkl = dkl_config(sim, patches=P, train_steps=train_steps, **(dkl_options or {}))
    loops = [("dkl", dkl)]
    if baselines:
        loops.append(("coordinate_gp", make_config(sim.candidates, acquisition="ei")))
    res = {"dkl": [], "coordinate_gp": [], "random": [], "raster": []} if baselines else {"dkl": []}
    for j, s in enumerate(seeds):
        prob = TwinTable(sim.candidates, jnp.asarray(clean + noise[j], jnp.float32),
                         jnp.asarray(clean, jnp.float32))  # fmt: skip
        for name, cfg in loops:
            t, order, rmse = run_loop(cfg, prob, seed_idx[j], steps, jax.random.key(s))
            curve = top_found(order, clean)
            res[name].append({**t, "top1": curve[-1], "top1_curve": curve[2::10],
                              "rmse_final": C.r4(float(rmse[-1])),
                              "rmse_curve": [C.r4(float(r)) for r in rmse[::10]]})  # fmt: skip
            C.log(tag, name, s, {k: v for k, v in res[name][-1].items() if "curve" not in k})
        if not baselines:
            continue
        rest = np.setdiff1d(np.arange(m), seed_idx[j])
        rnd = list(seed_idx[j]) + np.random.RandomState(s).permutation(rest)[:steps].tolist()
        res["random"].append({"top1": top_found(rnd, clean)[-1]})
        start = int(np.searchsorted(rest, seed_idx[j][0]))
        ras = list(seed_idx[j]) + np.roll(rest, -start)[:steps].tolist()  # row-major from a seed
        res["raster"].append({"top1": top_found(ras, clean)[-1]})
    q = {f"{k}_top1_mean": C.r4(float(np.mean([r["top1"] for r in v]))) for k, v in res.items()}
    for k in [n for n, _ in loops]:
        q[f"{k}_rmse_final_mean"] = C.r4(float(np.mean([r["rmse_final"] for r in res[k]])))
    return res, q, m, path


def stored_peer(out, path, steps):
    """The gpax loop's stored result ``out`` when it ran on the inputs of ``path`` (its seed
    points, top-1 % set and campaign length checked against the npz; the gpax loop is
    deterministic given them: keys from ``seed*1000 + step``), else an error dict."""
    if not os.path.exists(out):
        return {"error": f"--reuse-peer: no stored gpax result {out}"}
    with open(out) as f:
        g = json.load(f)
    d = np.load(path)
    k = math.ceil(0.01 * d["truth"].shape[0])
    top = np.lexsort((np.arange(d["truth"].shape[0]), -d["truth"]))[:k]
    row = {int(s): i for i, s in enumerate(d["seeds"])}
    g["seeds"] = [x for x in g["seeds"] if x["seed"] in row]  # the seeds run now
    same = (sorted(g.get("top1_idx", [])) == sorted(top.tolist())
            and g["config"]["steps"] == steps and len(g["seeds"]) == len(row)
            and all(list(x["seed_idx"]) == d["seed_idx"][row[x["seed"]]].tolist()
                    for x in g["seeds"]))  # fmt: skip
    if not same:
        return {"error": f"--reuse-peer: {out} was run on other inputs than {path}"}
    g["reused"] = (f"gpax loop not rerun: its stored result (peer_raw/{os.path.basename(out)}) "
                   "on identical inputs (seed points, top-1 % set and length checked)")  # fmt: skip
    return g


def add_peer(speed, quality, q, res, path, tag, steps, seeds, max_timed, reuse=False):
    """Run the gpax loop on the same npz (or, with ``reuse``, take its stored result on the
    same inputs: :func:`stored_peer`); extrapolate its time when it was timed over fewer
    steps than the campaign; its top-1 % and RMSE next to ours on the same seeds, at
    ``max_timed`` steps (every seed) and at the end (the seeds it ran in full)."""
    out = os.path.join(RAW, f"gpax_{tag}_loop.json")
    g = stored_peer(out, path, steps) if reuse else peer("gpax_dkl_loop.py", [path, out], 4 * 3600)
    if "reused" in g:
        speed["peer_reused"] = quality["peer_reused"] = g["reused"]
    if "error" in g and not g.get("seeds"):
        speed["peer_error"] = quality["peer_error"] = str(g["error"])[-500:]
        return
    per = g["seeds"]
    step_s = C.median([x["median_step_wall_s"] for x in per])
    first = per[0]["total_wall_s"]
    n_timed = len(per[0]["wall_s"])
    proj = first + step_s * (steps - n_timed)
    note = (f"gpax timed over its first {n_timed} steps ({first:.1f} s), extrapolated at its "
            f"median step ({step_s:.2f} s)" if n_timed < steps else
            f"gpax timed over all {steps} steps (seed {per[0]['seed']})")  # fmt: skip
    speed.update(peer="gpax 0.1.9 viDKL loop", peer_s=C.r4(proj),
                 speedup=C.ratio(proj, speed["jaxscope_s"]), peer_note=note,
                 peer_median_step_s=step_s)  # fmt: skip
    ours = {s: r for s, r in zip(seeds, res["dkl"], strict=True)}
    k = min(max_timed, steps)
    q[f"peer_top1_at_{k}_steps"] = C.r4(float(np.mean([x["top1_frac"][k - 1] for x in per])))
    q[f"dkl_top1_at_{k}_steps"] = C.r4(float(np.mean(
        [ours[x["seed"]]["top1_curve"][k // 10] for x in per])))  # fmt: skip
    full = [x for x in per if len(x["top1_frac"]) == steps]
    q["peer_full_seeds"] = [x["seed"] for x in full]
    if full:
        q["peer_top1_final_mean"] = C.r4(float(np.mean([x["top1_frac"][-1] for x in full])))
        q["dkl_top1_final_on_those_seeds"] = C.r4(float(np.mean(
            [ours[x["seed"]]["top1"] for x in full])))  # fmt: skip
        q["peer_rmse_final_mean"] = C.r4(float(np.mean([x["rmse"][-1] for x in full])))
        q["dkl_rmse_final_on_those_seeds"] = C.r4(float(np.mean(
            [ours[x["seed"]]["rmse_final"] for x in full])))  # fmt: skip
        q["peer_top1_curve"] = {  # after 0, 10, 20, ... steps, as the per-seed top1_curve
            x["seed"]: [C.r4(v) for v in [x["top1_frac_initial"], *x["top1_frac"][9::10]]]
            for x in full
        }


def run_campaign_bench(size, seeds, steps, train_steps, no_peer, reuse=False):
    sim = make_simulator("pfm_twin", key=jax.random.key(0), size=size)
    timed = 20
    res, q, m, path = compare_loops(sim, "pfm", seeds, steps, train_steps, 0.05, timed,
                                    full_seeds=min(2, len(seeds)))  # fmt: skip
    speed = {
        "name": "dkl_campaign_pfm_200_steps",
        "what": f"DKL campaign on a {size}x{size} PFM twin ({m} candidates, 16-px windows), 3 seed "
        f"points, {steps} steps, {train_steps} Adam steps per refit, EI; compiled, compile "
        "included; per seed",
        "jaxscope_s": res["dkl"][0]["wall_s"], "compile_s": res["dkl"][0]["compile_s"],
        "jaxscope_median_s": C.median([r["wall_s"] for r in res["dkl"]]), "seeds": list(seeds),
    }  # fmt: skip
    quality = {"name": "pfm_top1pct_found_K200", "what": f"fraction of the true top-1 % "
               f"loop-area candidates (ceil(0.01·{m})) found after {steps} steps; map RMSE",
               "seeds": list(seeds), "quality": q, "per_seed": res}  # fmt: skip
    if not no_peer:
        add_peer(speed, quality, q, res, path, "pfm", steps, seeds, timed, reuse)
        if "speedup" in speed:
            speed["met"] = bool(speed["speedup"] >= 10)
        if "peer_top1_final_mean" in q:
            quality["met"] = bool(
                q["dkl_top1_final_on_those_seeds"] >= q["peer_top1_final_mean"]
                and q["dkl_top1_mean"] > max(q["random_top1_mean"], q["raster_top1_mean"])
            )
    return [speed, quality]


def run_variant(size, seeds, steps, train_steps, **options):
    """The PFM campaign's quality with DKL options changed (jaxscope only, same seeds and
    values as ``pfm_top1pct_found_K200``)."""
    sim = make_simulator("pfm_twin", key=jax.random.key(0), size=size)
    res, q, _, _ = compare_loops(sim, "pfm_variant", seeds, steps, train_steps, 0.05, 20,
                                 dkl_options=options, baselines=False)  # fmt: skip
    q["jaxscope_median_s"] = C.median([r["wall_s"] for r in res["dkl"]])
    tag = "_".join(f"{k}_{v}" for k, v in options.items())
    return {"name": f"pfm_top1pct_found_K200_{tag}",
            "what": f"pfm_top1pct_found_K200 with dkl_config({options}): DKL only, same seeds, "
            "seed points and noisy values", "seeds": list(seeds), "quality": q,
            "per_seed": res["dkl"]}  # fmt: skip


def run_real(path, seeds, steps, train_steps, no_peer, reuse=False):
    """``real_beps_pto_dkl``: the measured PbTiO3 BEPS map replayed (structure image: the
    zero-bias readouts of the loops, :func:`jaxscope.instruments.zero_bias_image`)."""
    name = "real_beps_pto_dkl"
    if not os.path.exists(path):
        return {"name": name, "skipped": f"data file absent: {path}"}
    sim = beps_replay(path, window=16)
    res, q, m, npz = compare_loops(sim, "beps_pto", seeds, steps, train_steps, 0.0, steps,
                                   full_seeds=len(seeds))  # fmt: skip
    rec = {
        "name": name,
        "what": f"DKL campaign on the measured BEPS map of PbTiO3 (50x50 x 64 voltage steps) as "
        f"a replay instrument: {m} candidates (16-px windows), 3 seed points, {steps} steps, EI, "
        f"{train_steps} Adam steps per refit; target = loop area (shoelace on (V, R)); structure "
        "image = the piezoresponse at zero bias at the start of the cycle and halfway (after the "
        "positive half-cycle), 2 channels, normalised over the image; top-1 % = the "
        f"ceil(0.01·{m}) largest loop areas among the candidates",
        "jaxscope_s": res["dkl"][0]["wall_s"], "compile_s": res["dkl"][0]["compile_s"],
        "jaxscope_median_s": C.median([r["wall_s"] for r in res["dkl"]]), "seeds": list(seeds),
        "quality": q, "per_seed": res,
    }  # fmt: skip
    if not no_peer:
        add_peer(rec, rec, q, res, npz, "beps_pto", steps, seeds, steps, reuse)
        if "peer_top1_final_mean" in q:
            rec["met"] = bool(q["dkl_top1_final_on_those_seeds"] >= q["peer_top1_final_mean"])
    return rec


def _options(text):
    """``"a=1,b=x"`` → ``{"a": 1, "b": "x"}`` (numbers parsed, the rest strings)."""
    out = {}
    for item in filter(None, text.split(",")):
        k, _, v = item.partition("=")
        try:
            out[k] = int(v)
        except ValueError:
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--reuse-peer", action="store_true",
                    help="campaign/real: the gpax loop's stored result on identical inputs "
                    "instead of a new run (its 200-step loop takes about an hour)")  # fmt: skip
    ap.add_argument("--only", default="b5")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=None)
    ap.add_argument("--data", default=BEPS_PTO, help="the measured BEPS map (NSID/HDF5)")
    ap.add_argument(
        "--variant",
        default="refit_from=init",
        help="dkl_config options of --only variant, e.g. 'refit_from=init,shrink=0.5'",
    )
    a = ap.parse_args(argv)
    q = a.quick
    os.makedirs(RAW, exist_ok=True)
    records = []
    if "b5" in a.only.split(","):
        records.append(run_b5(50 if q else 500, 300 if q else 2000, 1 if q else a.repeats,
                              a.no_peer or q))  # fmt: skip
        C.log(records[-1])
    if "campaign" in a.only.split(","):
        records += run_campaign_bench(
            34 if q else 50,
            list(range(1 if q else a.seeds)),
            10 if q else 200,
            30 if q else 200,
            a.no_peer or q,
            a.reuse_peer,
        )
        C.log({k: v for k, v in records[-1].items() if k != "per_seed"})
    if "variant" in a.only.split(","):
        records.append(run_variant(34 if q else 50, list(range(1 if q else a.seeds)),
                                   10 if q else 200, 30 if q else 200, **_options(a.variant)))  # fmt: skip
        C.log({k: v for k, v in records[-1].items() if k != "per_seed"})
    if "real" in a.only.split(","):
        records.append(run_real(a.data, list(range(1 if q else a.seeds)), 10 if q else 50,
                                30 if q else 200, a.no_peer or q, a.reuse_peer))  # fmt: skip
        C.log({k: v for k, v in records[-1].items() if k != "per_seed"})
    path = a.out or os.path.join(RESULTS, "dkl_quick.json" if q else "dkl.json")
    cmd = ("python benchmarks/dkl.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    for r in records:
        r.setdefault("command", cmd)
    if not q:  # keep the records of the parts not rerun
        records = C.keep_old_records(path, records)
    C.write_results(path, "dkl", cmd, records, versions=C.versions())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
