# ruff: noqa: I001, NPY002  (peer_timer must be imported first: it sets JAX_PLATFORMS and the
# listeners; gpax.hypo's eps-greedy draws from the legacy global np.random, seeded here)
"""gpax peer of protocol B7: hypothesis learning (active model selection) with ``gpax.hypo``.

Three piecewise candidate models (``pw1: x^beta | c·x``, ``pw2: b·x | c·x``,
``pw3: x^beta1 | x^beta2``, the last one the truth's form) wrapped as GP mean functions
(``gpax.hypo.step(gp_wrap=True)``, Matern kernel, k_length ~ U(0,1), k_scale ~ LogNormal(0,1)).
Priors: t ~ U(0.5, 2), beta/b/c/beta1/beta2 ~ Normal(3, 1). Truth ``x^4`` below t=1.6 and
``x^2.5`` above, noise sd 0.2, grid ``linspace(0, 2.5, 100)``, seed indices [0, 33, 66, 99].
Steps 0-2 (warm-up) fit all three models and take the one of smallest median predictive
variance; afterwards ``sample_next(record[:, 1], "eps-greedy", eps=0.4)`` picks one model,
fitted with ``num_restarts=2``, rewarded +1 if its median variance fell below the previous
step's, else -1 (``update_record``). Each step measures the argmax of the variance. Seed ``s``
sets ``np.random.seed(s)`` before the data are drawn (the anchor uses seed 1).

usage: python gpax_b7.py SEEDS TOTAL NS   (SEEDS a comma list, e.g. "1" or "1,2,3"; TOTAL steps
incl. the 3 warm-up steps; NUTS NS/NS). Prints one JSON line: {"gpax", "benchmark": "b7",
"config", "seeds": [{"seed", "total_wall_s", "total_compile_s", "n_fits", "model_choices"
(1-based), "final_rewards", "final_record", "steps": [{"step", "phase", "model", "n_fits",
"median_var", "wall_s", "compile_s", ...}], "seed_idx", "measured_idx" (grid indices in
measurement order, after seed_idx), "measured_x", "measured_y" (all values, seed points
first)}]}. Per-step progress goes to stderr.
"""

import json
import sys
import time

import numpy as np
from peer_timer import Timer, block

import gpax
import gpax.models.gp as gpmod
import gpax.models.spm as spmmod
import jax.numpy as jnp
import numpyro

SEEDS = [int(s) for s in sys.argv[1].split(",")]
TOTAL = int(sys.argv[2])
NS = int(sys.argv[3])
WARMUP_STEPS = 3

# count fit calls (hypo.step refits when r_hat > 1.1 and num_restarts > 1)
_fit_calls = [0]


def _counting(orig):
    def fit(self, *a, **k):
        _fit_calls[0] += 1
        return orig(self, *a, **k)

    return fit


gpmod.ExactGP.fit = _counting(gpmod.ExactGP.fit)
spmmod.sPM.fit = _counting(spmmod.sPM.fit)


def true_fn(x, p):
    return jnp.piecewise(
        x, [x < p["t"], x >= p["t"]], [lambda x: x ** p["beta1"], lambda x: x ** p["beta2"]]
    )


def pw1(x, p):
    return jnp.piecewise(
        x, [x < p["t"], x >= p["t"]], [lambda x: x ** p["beta"], lambda x: p["c"] * x]
    )


def pw2(x, p):
    return jnp.piecewise(x, [x < p["t"], x >= p["t"]], [lambda x: p["b"] * x, lambda x: p["c"] * x])


def pw3(x, p):
    return jnp.piecewise(
        x, [x < p["t"], x >= p["t"]], [lambda x: x ** p["beta1"], lambda x: x ** p["beta2"]]
    )


D = numpyro.distributions


def pw1_prior():
    return {
        "t": numpyro.sample("t", D.Uniform(0.5, 2.0)),
        "beta": numpyro.sample("beta", D.Normal(3, 1)),
        "c": numpyro.sample("c", D.Normal(3, 1)),
    }


def pw2_prior():
    return {
        "t": numpyro.sample("t", D.Uniform(0.5, 2.0)),
        "b": numpyro.sample("b", D.Normal(3, 1)),
        "c": numpyro.sample("c", D.Normal(3, 1)),
    }


def pw3_prior():
    return {
        "t": numpyro.sample("t", D.Uniform(0.5, 2.0)),
        "beta1": numpyro.sample("beta1", D.Normal(3, 1)),
        "beta2": numpyro.sample("beta2", D.Normal(3, 1)),
    }


def kprior():
    return {
        "k_length": numpyro.sample("k_length", D.Uniform(0, 1)),
        "k_scale": numpyro.sample("k_scale", D.LogNormal(0, 1)),
    }


MODELS, PRIORS = [pw1, pw2, pw3], [pw1_prior, pw2_prior, pw3_prior]
P_TRUE = {"t": 1.6, "beta1": 4, "beta2": 2.5}
NOISE = 0.2
SEED_IDX = [0, 33, 66, 99]
COMMON = dict(
    gp_wrap=True, gp_kernel="Matern", gp_kernel_prior=kprior, num_warmup=NS, num_samples=NS,
    print_summary=False,
)  # fmt: skip


def run_seed(seed: int) -> dict:
    np.random.seed(seed)
    X = jnp.linspace(0.0, 2.5, 100)
    seed_idx = np.array(SEED_IDX)
    Xm = X[seed_idx]
    unmeasured = [i for i in range(100) if i not in SEED_IDX]  # grid indices of Xu, in order
    Xu = jnp.asarray(np.delete(np.asarray(X), seed_idx))
    ym = true_fn(Xm, P_TRUE) + NOISE * np.random.normal(size=len(Xm))
    measured_idx = []
    record = np.zeros((3, 2))
    obj_hist, choices, steps = [], [], []
    fits0 = _fit_calls[0]
    with Timer() as total:
        for s in range(TOTAL):
            c0 = _fit_calls[0]
            with Timer() as t:
                if s < WARMUP_STEPS:
                    meds, objs = [], []
                    for i in range(3):
                        obj, _ = gpax.hypo.step(MODELS[i], PRIORS[i], Xm, ym, Xu, **COMMON)
                        record[i, 0] += 1
                        objs.append(obj)
                        meds.append(float(jnp.nanmedian(obj)))
                    idx = int(np.argmin(meds))
                    record[idx, 1] += 1
                    obj_hist.append(meds[idx])
                    obj = objs[idx]
                    if s == WARMUP_STEPS - 1:
                        record[:, 1] /= WARMUP_STEPS
                else:
                    idx = int(gpax.hypo.sample_next(record[:, 1], method="eps-greedy", eps=0.4))
                    obj, _ = gpax.hypo.step(
                        MODELS[idx], PRIORS[idx], Xm, ym, Xu, num_restarts=2, **COMMON
                    )
                    meds = None
                    obj_hist.append(float(jnp.nanmedian(obj)))
                    r = 1 if obj_hist[-1] < obj_hist[-2] else -1
                    record = gpax.hypo.update_record(record, idx, r)
                nxt = int(jnp.argmax(obj))
                yv = float(true_fn(Xu[nxt], P_TRUE)) + NOISE * np.random.normal()
                Xm, ym, Xu = (
                    jnp.append(Xm, Xu[nxt][None], 0),
                    jnp.append(ym, yv),
                    jnp.delete(Xu, nxt, 0),
                )
                measured_idx.append(unmeasured.pop(nxt))
                block((Xm, ym, Xu))
            choices.append(idx)
            nfits = _fit_calls[0] - c0
            steps.append({
                "step": s, "phase": "warmup" if s < WARMUP_STEPS else "explore", "model": idx + 1,
                "n_fits": nfits, "median_var": obj_hist[-1],
                "median_var_all": meds, **t.as_dict(), "rewards": record[:, 1].round(4).tolist(),
            })  # fmt: skip
            print(f"[b7 seed {seed}] step {s} ({steps[-1]['phase']}) model {idx + 1} fits {nfits}: "
                  f"{t.wall:.2f}s (compile {t.compile:.2f}s) rewards "
                  f"{record[:, 1].round(3).tolist()}", file=sys.stderr, flush=True)  # fmt: skip
    n_fits = _fit_calls[0] - fits0
    walls = [st["wall_s"] for st in steps]
    comps = [st["compile_s"] for st in steps]
    return {
        "seed": seed,
        "total_wall_s": round(total.wall, 4),
        "total_compile_s": round(total.compile, 4),
        "total_process_cpu_s": round(total.cpu, 4),
        "median_step_wall_s": round(float(np.median(walls)), 4),
        "median_step_compile_s": round(float(np.median(comps)), 4),
        "n_fits": n_fits,
        "wall_per_fit_s": round(total.wall / max(n_fits, 1), 4),
        "model_choices": [c + 1 for c in choices],
        "final_rewards": record[:, 1].round(4).tolist(),
        "final_record": record.tolist(),
        "steps": steps,
        "seed_idx": SEED_IDX,
        "measured_idx": measured_idx,
        "measured_x": np.asarray(Xm, np.float64).tolist(),
        "measured_y": np.asarray(ym, np.float64).tolist(),
    }


t_start = time.time()
results = [run_seed(s) for s in SEEDS]
print(
    json.dumps(
        {
            "gpax": gpax.__version__,
            "benchmark": "b7",
            "config": {
                "seeds": SEEDS,
                "total_steps": TOTAL,
                "warmup_steps": WARMUP_STEPS,
                "num_warmup": NS,
                "num_samples": NS,
                "n_grid": 100,
                "grid": "linspace(0, 2.5, 100)",
                "seed_idx": SEED_IDX,
                "truth": P_TRUE,
                "noise_sd": NOISE,
                "candidates": [
                    "pw1: x^beta | c*x",
                    "pw2: b*x | c*x",
                    "pw3 (true): x^beta1 | x^beta2",
                ],
                "priors": "t~U(0.5,2); beta,b,c,beta1,beta2~N(3,1); k_length~U(0,1), k_scale~LogNormal(0,1)",
                "gp_wrap": True,
                "gp_kernel": "Matern",
                "policy": "eps-greedy(0.4)",
                "num_restarts_after_warmup": 2,
            },  # fmt: skip
            "started_unix": round(t_start, 1),
            "seeds": results,
        }
    )
)
