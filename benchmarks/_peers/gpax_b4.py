# ruff: noqa: I001  (peer_timer must be imported first: it sets JAX_PLATFORMS and the listeners)
"""gpax peer of protocol B4: structured-mean GP (``gpax.ExactGP`` with a probabilistic
``mean_fn``, "sGP") vs plain ``gpax.ExactGP``, both RBF, NUTS 500/500.

Truth: ``y0 - A1/sqrt((x-x01)^2+w1^2) - A2/sqrt((x-x02)^2+w2^2)`` (two minima) with
y0=2, A1=0.2, w1=0.05, x01=0.3, A2=0.15, w2=0.06, x02=0.7. N=30 points
``X = sort(U(0,1))``, ``y = truth(X) + 0.1·randn`` from ``RandomState(1)``; test grid
``linspace(0, 1, N_TEST)``. Mean-function priors: A ~ LogNormal(0,1), w ~ HalfNormal(0.1),
x0 ~ Uniform(0,1), y0 ~ Uniform(-10,10). Repeat r uses ``gpax.utils.get_keys(r)``; prediction
is ``predict(noiseless=True)``; rmse is that of the posterior mean vs the noise-free truth.

usage: python gpax_b4.py REPEATS [N_TEST]   (N_TEST default 1000; env PEER_NUTS=n shrinks
NUTS to n/n for smoke tests only)
prints one JSON line: {"gpax", "benchmark": "b4", "config", "data": {"X", "y"},
"sGP": {"runs": [...], "rmse_median"}, "ExactGP": {...}}; each run holds "fit" and "predict"
(peer_timer dicts), "rmse" and "posterior_median" (per site).
"""

import json
import os
import sys

import numpy as np
from peer_timer import Timer, block

import gpax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

REPEATS = int(sys.argv[1])
N_TEST = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
# 500/500; PEER_NUTS for smoke tests only
NUM_WARMUP = NUM_SAMPLES = int(os.environ.get("PEER_NUTS", 500))
N, NOISE = 30, 0.1
TRUE = dict(y0=2.0, A1=0.2, w1=0.05, x01=0.3, A2=0.15, w2=0.06, x02=0.7)


def truth(x):
    p = TRUE
    return (
        p["y0"]
        - p["A1"] / np.sqrt((x - p["x01"]) ** 2 + p["w1"] ** 2)
        - p["A2"] / np.sqrt((x - p["x02"]) ** 2 + p["w2"] ** 2)
    )


def mean_fn(x, params):
    x = x[:, 0] if x.ndim > 1 else x
    return (
        params["y0"]
        - params["A1"] / jnp.sqrt((x - params["x01"]) ** 2 + params["w1"] ** 2)
        - params["A2"] / jnp.sqrt((x - params["x02"]) ** 2 + params["w2"] ** 2)
    )


def mean_fn_prior():
    return {
        "A1": numpyro.sample("A1", dist.LogNormal(0, 1)),
        "A2": numpyro.sample("A2", dist.LogNormal(0, 1)),
        "w1": numpyro.sample("w1", dist.HalfNormal(0.1)),
        "w2": numpyro.sample("w2", dist.HalfNormal(0.1)),
        "x01": numpyro.sample("x01", dist.Uniform(0, 1)),
        "x02": numpyro.sample("x02", dist.Uniform(0, 1)),
        "y0": numpyro.sample("y0", dist.Uniform(-10, 10)),
    }


rs = np.random.RandomState(1)
X_np = np.sort(rs.uniform(0, 1, N))
y_np = truth(X_np) + NOISE * rs.randn(N)
Xt_np = np.linspace(0, 1, N_TEST)
yt = truth(Xt_np)
X, y, Xt = (jnp.asarray(a, jnp.float32) for a in (X_np, y_np, Xt_np))

out = {}
for label in ("sGP", "ExactGP"):
    runs = []
    for r in range(REPEATS):
        key, key_pred = gpax.utils.get_keys(r)
        if label == "sGP":
            gp = gpax.ExactGP(1, kernel="RBF", mean_fn=mean_fn, mean_fn_prior=mean_fn_prior)
        else:
            gp = gpax.ExactGP(1, kernel="RBF")
        with Timer() as fit:
            gp.fit(
                key, X, y, num_warmup=NUM_WARMUP, num_samples=NUM_SAMPLES, progress_bar=False,
                print_summary=False,
            )  # fmt: skip
            block(gp.get_samples())
        with Timer() as pred:
            mean, draws = gp.predict(key_pred, Xt, noiseless=True)
            block((mean, draws))
        rmse = float(np.sqrt(np.mean((np.asarray(mean, np.float64) - yt) ** 2)))
        s = gp.get_samples()
        post = {k: np.round(np.median(np.asarray(v), 0), 5).tolist() for k, v in s.items()}
        runs.append({"fit": fit.as_dict(), "predict": pred.as_dict(), "rmse": rmse,
                     "posterior_median": post})  # fmt: skip
        print(f"[b4 {label}] run {r}: fit {fit.wall:.2f}s (compile {fit.compile:.2f}s) "
              f"predict {pred.wall:.2f}s rmse {rmse:.4f}", file=sys.stderr, flush=True)  # fmt: skip
    out[label] = {"runs": runs, "rmse_median": float(np.median([r["rmse"] for r in runs]))}

print(
    json.dumps(
        {
            "gpax": gpax.__version__,
            "benchmark": "b4",
            "config": {
                "N_train": N,
                "N_test": N_TEST,
                "kernel": "RBF",
                "num_warmup": NUM_WARMUP,
                "num_samples": NUM_SAMPLES,
                "noise_sd": NOISE,
                "truth": TRUE,
                "data_seed": "RandomState(1): X = sort(uniform(0,1,30)); y = truth(X) + 0.1*randn(30)",
                "priors": "A~LogNormal(0,1), w~HalfNormal(0.1), x0~Uniform(0,1), y0~Uniform(-10,10)",
                "repeats": REPEATS,
                "keys": "gpax.utils.get_keys(r)",
                "dtype": "float32 inputs",
            },  # fmt: skip
            "data": {"X": X_np.tolist(), "y": y_np.tolist()},
            **out,
        }
    )
)
