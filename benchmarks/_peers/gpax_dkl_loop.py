# ruff: noqa: I001  (peer_timer must be imported first: it sets JAX_PLATFORMS and the listeners)
"""gpax peer of jaxscope's DKL campaign: the active-learning loop a gpax user writes with
``gpax.viDKL``, refitted from scratch every step, on a digital twin's data.

DATA.npz (written by jaxscope's side, so both libraries measure identical numbers):
``features`` (m, f) float32, the flattened normalised image patch of every candidate;
``truth`` (m,) the noise-free property; ``noise`` (S, m), the noise added when candidate i is
measured in seed row s (``y = truth[i] + noise[s, i]``; each candidate is measured at most
once); ``seed_idx`` (S, k) the initial measured indices; ``seeds`` (S,); scalars ``steps``,
``train_steps`` (Adam steps per refit), ``step_size``, ``z_dim``; optional ``max_steps_timed``
(run only that many steps per seed; the JSON says so), ``full_seeds`` (the first that many
seeds run all ``steps`` regardless, for end-of-campaign quality; default 0) and
``standardize_y`` (default 1).

Each step, for seed value ``seed`` and step ``t``: ``key, key_pred =
gpax.utils.get_keys(seed*1000 + t)``; a new ``gpax.viDKL(f, z_dim, kernel="RBF")`` is fitted on
every measured point (``fit(key, X, y, num_steps=train_steps, step_size=step_size)``; y is
z-scored with the measured points' mean and sd when ``standardize_y``); gpax's own
``gpax.acquisition.EI(key_pred, model, features, best_f=max measured y, maximize=True)``
scores every candidate; measured candidates are set to -inf (NaN scores too, counted), and
the argmax is measured. That is the timed step (``wall_s``, ``compile_s``). Outside the timed
step: the map RMSE of this step's predictive mean (``model.predict``, back on the original
scale) vs ``truth`` over all candidates (before the new point is added), and, after the new
point is added, the fraction of the true top-1 % candidates (by ``truth``, ties broken by
index; ceil(0.01 m) of them) measured so far, seed points included.

usage: python gpax_dkl_loop.py DATA.npz OUT.json
OUT.json is rewritten after every step with ``"partial": true`` until the end; the final JSON
is also the last line on stdout. Keys: {"gpax", "benchmark": "dkl_loop", "partial", "config",
"top1_idx", "seeds": [{"seed", "seed_idx", "top1_frac_initial", "chosen", "y", "wall_s",
"compile_s", "n_xla_compiles", "process_cpu_s", "metrics_s", "top1_frac", "rmse",
"ei_nan_count", "final_loss", "best_truth_so_far", "total_wall_s", "total_compile_s",
"median_step_wall_s", "median_step_compile_s"}], "wall_s"}. Progress goes to stderr.
"""

import json
import math
import os
import sys
import time

import numpy as np
from peer_timer import Timer, block

import gpax
import jax.numpy as jnp

DATA, OUT = sys.argv[1], sys.argv[2]
d = np.load(DATA)
features = jnp.asarray(d["features"], jnp.float32)
truth = np.asarray(d["truth"], np.float64)
noise = np.asarray(d["noise"], np.float64)
seed_idx = np.asarray(d["seed_idx"], np.int64)
seeds = [int(s) for s in np.asarray(d["seeds"]).ravel()]
STEPS = int(d["steps"])
TRAIN_STEPS = int(d["train_steps"])
STEP_SIZE = float(d["step_size"])
Z_DIM = int(d["z_dim"])
MAX_STEPS = int(d["max_steps_timed"]) if "max_steps_timed" in d.files else None
STANDARDIZE = bool(int(d["standardize_y"])) if "standardize_y" in d.files else True
STEPS_RUN = min(STEPS, MAX_STEPS) if MAX_STEPS is not None else STEPS
# the first FULL_SEEDS seeds run all STEPS (for quality at the campaign's end) even when the
# others stop at max_steps_timed
FULL_SEEDS = int(d["full_seeds"]) if "full_seeds" in d.files else 0
m, f = features.shape
assert truth.shape == (m,) and noise.shape[1] == m and noise.shape[0] == len(seeds)
assert seed_idx.shape[0] == len(seeds)

n_top = math.ceil(0.01 * m)
top1 = np.lexsort((np.arange(m), -truth))[:n_top]  # largest truth first, ties by lower index
top1_set = set(top1.tolist())


def top1_frac(measured):
    return len(top1_set.intersection(measured)) / n_top


CONFIG = {
    "model": "viDKL",
    "refit": "new gpax.viDKL fitted from scratch every step",
    "candidates": m,
    "feature_dim": f,
    "z_dim": Z_DIM,
    "kernel": "RBF",
    "train_steps": TRAIN_STEPS,
    "step_size": STEP_SIZE,
    "guide": "delta (gpax default), Adam(b1=0.5) (gpax default)",
    "steps": STEPS,
    "max_steps_timed": MAX_STEPS,
    "steps_run": STEPS_RUN,
    "truncated": STEPS_RUN < STEPS,
    "full_seeds": FULL_SEEDS,
    "num_init": int(seed_idx.shape[1]),
    "seeds": seeds,
    "y_standardised": STANDARDIZE,
    "acquisition": "gpax.acquisition.EI(key_pred, model, features, best_f=max measured y "
    "(standardised scale), maximize=True, noiseless=False) over all candidates; measured ones "
    "and NaN scores set to -inf; argmax",
    "keys": "key, key_pred = gpax.utils.get_keys(seed*1000 + step)",
    "timed_step": "viDKL construction + fit + EI + argmax + measurement",
    "rmse": "predictive mean of this step's model (before the new point) vs truth, all candidates",
    "top1": f"fraction of the ceil(0.01*m) = {n_top} largest-truth candidates (ties by index) "
    "measured so far, seed points included, after this step's measurement",
    "dtype": "float32",
    "data": os.path.basename(DATA),
}


def write(payload):
    tmp = OUT + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(payload, fh)
    os.replace(tmp, OUT)


def summary(rec):
    w, c = rec["wall_s"], rec["compile_s"]
    rec["total_wall_s"] = round(float(sum(w)), 4)
    rec["total_compile_s"] = round(float(sum(c)), 4)
    rec["median_step_wall_s"] = round(float(np.median(w)), 4) if w else None
    rec["median_step_compile_s"] = round(float(np.median(c)), 4) if c else None


t_start = time.perf_counter()
out = {"gpax": gpax.__version__, "benchmark": "dkl_loop", "partial": True, "config": CONFIG,
       "top1_idx": top1.tolist(), "seeds": []}  # fmt: skip
for s, seed in enumerate(seeds):
    measured = [int(i) for i in seed_idx[s]]
    ys = [float(truth[i] + noise[s, i]) for i in measured]
    rec = {"seed": seed, "seed_idx": list(measured), "top1_frac_initial": top1_frac(measured)}
    for k in ("chosen", "y", "wall_s", "compile_s", "n_xla_compiles", "process_cpu_s",
              "metrics_s", "top1_frac", "rmse", "ei_nan_count", "final_loss",
              "best_truth_so_far"):  # fmt: skip
        rec[k] = []
    out["seeds"].append(rec)
    for t in range(STEPS if s < FULL_SEEDS else STEPS_RUN):
        key, key_pred = gpax.utils.get_keys(seed * 1000 + t)
        y_np = np.asarray(ys)
        mu, sd = (y_np.mean(), y_np.std()) if STANDARDIZE else (0.0, 1.0)
        sd = sd if sd > 0 else 1.0
        with Timer() as step:
            X = features[np.asarray(measured)]
            y = jnp.asarray((y_np - mu) / sd, jnp.float32)
            model = gpax.viDKL(f, z_dim=Z_DIM, kernel="RBF")
            model.fit(
                key, X, y, num_steps=TRAIN_STEPS, step_size=STEP_SIZE, progress_bar=False,
                print_summary=False,
            )  # fmt: skip
            ei = gpax.acquisition.EI(
                key_pred, model, features, best_f=float(y.max()), maximize=True
            )
            ei = np.array(block(ei), np.float64)
            n_nan = int(np.sum(~np.isfinite(ei)))
            ei[~np.isfinite(ei)] = -np.inf
            ei[measured] = -np.inf
            nxt = int(np.argmax(ei))
            if not np.isfinite(ei[nxt]):  # every unmeasured score NaN: first unmeasured one
                nxt = int(np.setdiff1d(np.arange(m), measured)[0])
            y_new = float(truth[nxt] + noise[s, nxt])
        with Timer() as met:
            mean, _ = model.predict(key_pred, features)
            mean = np.asarray(block(mean), np.float64) * sd + mu
            rmse = float(np.sqrt(np.mean((mean - truth) ** 2)))
        measured.append(nxt)
        ys.append(y_new)
        rec["chosen"].append(nxt)
        rec["y"].append(y_new)
        rec["wall_s"].append(round(step.wall, 4))
        rec["compile_s"].append(round(step.compile, 4))
        rec["n_xla_compiles"].append(step.n_xla_compiles)
        rec["process_cpu_s"].append(round(step.cpu, 4))
        rec["metrics_s"].append(round(met.wall, 4))
        rec["top1_frac"].append(top1_frac(measured))
        rec["rmse"].append(rmse)
        rec["ei_nan_count"].append(n_nan)
        rec["final_loss"].append(float(np.asarray(model.loss)[-1]))
        rec["best_truth_so_far"].append(float(truth[measured].max()))
        summary(rec)
        out["wall_s"] = round(time.perf_counter() - t_start, 4)
        write(out)
        print(f"[dkl_loop seed {seed}] step {t}: pick {nxt} in {step.wall:.2f}s (compile "
              f"{step.compile:.2f}s) rmse {rmse:.4f} top1 {rec['top1_frac'][-1]:.3f} "
              f"nan {n_nan}", file=sys.stderr, flush=True)  # fmt: skip

out["partial"] = False
out["wall_s"] = round(time.perf_counter() - t_start, 4)
write(out)
print(json.dumps(out))
