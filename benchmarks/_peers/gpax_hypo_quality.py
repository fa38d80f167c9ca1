# ruff: noqa: I001, NPY002  (peer_timer must be imported first: it sets JAX_PLATFORMS and the
# listeners; gpax.hypo's eps-greedy draws from the legacy global np.random, seeded here)
"""gpax's hypothesis-learning loop (``gpax.hypo``) on externally supplied problems, for the
quality comparison with jaxscope on the very same draws.

DATA.npz holds ``X`` (100,) the grid in [0, 1]; ``truth`` (D, 100) the noise-free property of
each draw; ``noise`` (D, 100) the noise added when grid point i is measured in draw d
(``y = truth[d, i] + noise[d, i]``; points are never re-measured); ``seed_idx`` (k,) the
initially measured indices; scalars ``warmup_steps``, ``steps`` (total, incl. warm-up),
``num_warmup``, ``num_samples``, ``gp_wrap`` (0/1) and ``eps``. Optional: ``draws`` (indices
of the draws to run; default all) and ``kernel_prior`` (string; "default" = gpax's
LogNormal(0,1) on k_length and k_scale, "b7" = k_length ~ U(0,1), k_scale ~ LogNormal(0,1)).

Hypotheses (index 0, 1, 2; x = composition):

* ``second_order``: S0·(1 − x/xc)^beta + C for x < xc, C for x ≥ xc;
  xc ~ U(0.3, 0.7), beta ~ U(0.1, 1), S0 ~ LogNormal(0, 0.5), C ~ Normal(0, 1);
* ``first_order``: C + J + S0·(1 − x/xc)^(5/4) for x < xc, C for x ≥ xc;
  xc ~ U(0.3, 0.7), S0 ~ LogNormal(0, 0.5), J ~ LogNormal(log 0.3, 0.5), C ~ Normal(0, 1);
* ``smeared``: C + S0·sigmoid((xc − x)/w);
  xc ~ U(0.3, 0.7), S0 ~ LogNormal(0, 0.5), w ~ HalfNormal(0.05), C ~ Normal(0, 1).

The loop of draw d (``np.random.seed(d)`` first, for eps-greedy) is protocol B7's: warm-up
steps fit all three (``gpax.hypo.step``), take the argmin of the median predictive variance and
count it in ``record[:, 1]`` (divided by ``warmup_steps`` at the end of warm-up); later steps
pick ``sample_next(record[:, 1], "eps-greedy", eps)``, fit it with ``num_restarts=2``, reward
+1 if its median variance fell below the previous step's else −1 (``update_record``). Each
step measures the argmax of the variance over the unmeasured points. Noise prior: ``hypo.step``'s
default (``noise_prior=None``: LogNormal(0, 1) for both ExactGP and sPM). With ``gp_wrap=1``
the models are mean functions of a Matern ``ExactGP``; with 0 they are standalone ``sPM``.

usage: python gpax_hypo_quality.py DATA.npz OUT.json
OUT.json (rewritten after every draw, ``"partial": true`` until the end; the last stdout
line is the same JSON) = {"gpax", "config", "hypotheses", "partial", "draws": [{"draw",
"final_choice" (argmax of record[:, 1]), "final_choice_name", "final_record", "choices"
(per step), "median_var" (per step; warm-up steps also "median_var_all"), "rewards" (per step),
"xc_summary": {"mean", "q05", "q95", "source": "last_step_fit" | "refit_on_all_data",
"n_points"}, "seed_idx", "measured_idx" (grid indices in measurement order), "n_fits",
"wall_s", "compile_s", "step_wall_s"}]}.
"""

import json
import os
import sys
import time

import numpy as np
from peer_timer import Timer, block

import gpax
import gpax.models.gp as gpmod
import gpax.models.spm as spmmod
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

DATA, OUT = sys.argv[1], sys.argv[2]

_fit_calls = [0]


def _counting(orig):
    def fit(self, *a, **k):
        _fit_calls[0] += 1
        return orig(self, *a, **k)

    return fit


gpmod.ExactGP.fit = _counting(gpmod.ExactGP.fit)
spmmod.sPM.fit = _counting(spmmod.sPM.fit)


def _x(x):
    return x[:, 0] if x.ndim > 1 else x


def _pow_below(x, xc, power):
    """``(1 - x/xc)^power`` where x < xc, 1 elsewhere (double where: finite gradients)."""
    below = x < xc
    base = jnp.where(below, 1.0 - x / xc, 1.0)
    return below, base**power


def second_order(x, p):
    x = _x(x)
    below, pw = _pow_below(x, p["xc"], p["beta"])
    return jnp.where(below, p["S0"] * pw + p["C"], p["C"])


def first_order(x, p):
    x = _x(x)
    below, pw = _pow_below(x, p["xc"], 1.25)
    return jnp.where(below, p["C"] + p["J"] + p["S0"] * pw, p["C"])


def smeared(x, p):
    x = _x(x)
    return p["C"] + p["S0"] * jax.nn.sigmoid((p["xc"] - x) / p["w"])


def second_order_prior():
    return {
        "xc": numpyro.sample("xc", dist.Uniform(0.3, 0.7)),
        "beta": numpyro.sample("beta", dist.Uniform(0.1, 1.0)),
        "S0": numpyro.sample("S0", dist.LogNormal(0.0, 0.5)),
        "C": numpyro.sample("C", dist.Normal(0.0, 1.0)),
    }


def first_order_prior():
    return {
        "xc": numpyro.sample("xc", dist.Uniform(0.3, 0.7)),
        "S0": numpyro.sample("S0", dist.LogNormal(0.0, 0.5)),
        "J": numpyro.sample("J", dist.LogNormal(float(np.log(0.3)), 0.5)),
        "C": numpyro.sample("C", dist.Normal(0.0, 1.0)),
    }


def smeared_prior():
    return {
        "xc": numpyro.sample("xc", dist.Uniform(0.3, 0.7)),
        "S0": numpyro.sample("S0", dist.LogNormal(0.0, 0.5)),
        "w": numpyro.sample("w", dist.HalfNormal(0.05)),
        "C": numpyro.sample("C", dist.Normal(0.0, 1.0)),
    }


NAMES = ["second_order", "first_order", "smeared"]
MODELS = [second_order, first_order, smeared]
PRIORS = [second_order_prior, first_order_prior, smeared_prior]


def kprior_b7():
    return {
        "k_length": numpyro.sample("k_length", dist.Uniform(0, 1)),
        "k_scale": numpyro.sample("k_scale", dist.LogNormal(0, 1)),
    }


d = np.load(DATA)
Xgrid = np.asarray(d["X"], np.float64)
TRUTH, NOISE = np.asarray(d["truth"], np.float64), np.asarray(d["noise"], np.float64)
SEED_IDX = [int(i) for i in np.asarray(d["seed_idx"]).ravel()]
WARMUP_STEPS, STEPS = int(d["warmup_steps"]), int(d["steps"])
NW, NSMP = int(d["num_warmup"]), int(d["num_samples"])
GP_WRAP, EPS = bool(int(d["gp_wrap"])), float(d["eps"])
DRAWS = (
    [int(i) for i in np.asarray(d["draws"]).ravel()] if "draws" in d else list(range(len(TRUTH)))
)
KPRIOR = str(d["kernel_prior"]) if "kernel_prior" in d else "default"
COMMON = dict(
    gp_wrap=GP_WRAP, gp_kernel="Matern", gp_kernel_prior=kprior_b7 if KPRIOR == "b7" else None,
    num_warmup=NW, num_samples=NSMP, print_summary=False,
)  # fmt: skip
CONFIG = {
    "data": os.path.abspath(DATA), "n_grid": len(Xgrid), "n_draws_in_file": len(TRUTH),
    "draws": DRAWS, "seed_idx": SEED_IDX, "warmup_steps": WARMUP_STEPS, "steps": STEPS,
    "num_warmup": NW, "num_samples": NSMP, "gp_wrap": GP_WRAP, "gp_kernel": "Matern",
    "kernel_prior": KPRIOR, "eps": EPS, "noise_prior": "hypo.step default (LogNormal(0,1))",
    "num_restarts_after_warmup": 2, "policy": "eps-greedy on record[:,1]",
    "rng": "np.random.seed(draw) before each draw; hypo.step keys get_keys(restart)",
}  # fmt: skip


def xc_summary(model) -> dict:
    xc = np.asarray(model.get_samples()["xc"], np.float64)
    return {
        "mean": float(xc.mean()),
        "q05": float(np.quantile(xc, 0.05)),
        "q95": float(np.quantile(xc, 0.95)),
    }


def run_draw(dr: int) -> dict:
    np.random.seed(dr)
    X = jnp.asarray(Xgrid, jnp.float32)
    y_all = TRUTH[dr] + NOISE[dr]
    measured = list(SEED_IDX)
    unmeasured = [i for i in range(len(Xgrid)) if i not in SEED_IDX]
    record = np.zeros((3, 2))
    obj_hist, choices, meds_hist, rewards, step_walls = [], [], [], [], []
    last_fit = {}  # hypothesis -> (step, fitted model, n points)
    fits0 = _fit_calls[0]
    with Timer() as total:
        for s in range(STEPS):
            with Timer() as t:
                Xm = X[np.array(measured)]
                ym = jnp.asarray(y_all[np.array(measured)], jnp.float32)
                Xu = X[np.array(unmeasured)]
                if s < WARMUP_STEPS:
                    meds, objs = [], []
                    for i in range(3):
                        obj, m = gpax.hypo.step(MODELS[i], PRIORS[i], Xm, ym, Xu, **COMMON)
                        last_fit[i] = (s, m, len(measured))
                        record[i, 0] += 1
                        objs.append(obj)
                        meds.append(float(jnp.nanmedian(obj)))
                    idx = int(np.argmin(meds))
                    record[idx, 1] += 1
                    obj_hist.append(meds[idx])
                    obj = objs[idx]
                    meds_hist.append(meds)
                    if s == WARMUP_STEPS - 1:
                        record[:, 1] /= WARMUP_STEPS
                    rewards.append(None)
                else:
                    idx = int(gpax.hypo.sample_next(record[:, 1], method="eps-greedy", eps=EPS))
                    obj, m = gpax.hypo.step(
                        MODELS[idx], PRIORS[idx], Xm, ym, Xu, num_restarts=2, **COMMON
                    )
                    last_fit[idx] = (s, m, len(measured))
                    obj_hist.append(float(jnp.nanmedian(obj)))
                    meds_hist.append(obj_hist[-1])
                    r = 1 if obj_hist[-1] < obj_hist[-2] else -1
                    record = gpax.hypo.update_record(record, idx, r)
                    rewards.append(r)
                nxt = int(jnp.argmax(jnp.asarray(obj)))
                measured.append(unmeasured.pop(nxt))
                block(obj)
            choices.append(idx)
            step_walls.append(round(t.wall, 3))
            print(f"[hypo draw {dr}] step {s} model {NAMES[idx]} median var {obj_hist[-1]:.4g} "
                  f"{t.wall:.1f}s rewards {record[:, 1].round(3).tolist()}",
                  file=sys.stderr, flush=True)  # fmt: skip
        final = int(np.argmax(record[:, 1]))
        fs = last_fit.get(final)
        if fs is not None and fs[0] == STEPS - 1:
            summ = {**xc_summary(fs[1]), "source": "last_step_fit", "n_points": fs[2]}
        else:  # the last step fitted another hypothesis: refit the final choice on all data
            Xm = X[np.array(measured)]
            ym = jnp.asarray(y_all[np.array(measured)], jnp.float32)
            _, m = gpax.hypo.step(
                MODELS[final], PRIORS[final], Xm, ym, None, num_restarts=2, **COMMON
            )
            summ = {**xc_summary(m), "source": "refit_on_all_data", "n_points": len(measured)}
    return {
        "draw": dr,
        "final_choice": final,
        "final_choice_name": NAMES[final],
        "final_record": record.tolist(),
        "choices": choices,
        "median_var": meds_hist,
        "rewards": rewards,
        "xc_summary": summ,
        "seed_idx": SEED_IDX,
        "measured_idx": measured[len(SEED_IDX) :],
        "n_fits": _fit_calls[0] - fits0,
        "wall_s": round(total.wall, 3),
        "compile_s": round(total.compile, 3),
        "step_wall_s": step_walls,
    }


def dump(draws: list, partial: bool) -> str:
    payload = {
        "gpax": gpax.__version__, "config": CONFIG, "hypotheses": NAMES, "partial": partial,
        "updated_unix": round(time.time(), 1), "draws": draws,
    }  # fmt: skip
    text = json.dumps(payload)
    tmp = OUT + ".tmp"
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, OUT)
    return text


results = []
for dr in DRAWS:
    results.append(run_draw(dr))
    dump(results, partial=True)
print(dump(results, partial=False))
