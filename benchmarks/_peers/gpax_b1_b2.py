# ruff: noqa: I001  (peer_timer must be imported first: it sets JAX_PLATFORMS and the listeners)
"""gpax peer of protocols B1 and B2: fully Bayesian ``gpax.ExactGP`` (RBF), NUTS 500/500.

B1: 1-D, N=50 noisy points of ``sin(4πx) + x/2`` (noise sd 0.1), predict 1000 points with
``predict``. B2: 2-D, N=200 points of ``sin(3x₁)cos(3x₂) + ½exp(-|x - (0.6, 0.4)|²/0.05)``
(noise sd 0.05), predict a 50×50 grid with ``predict_in_batches(batch_size=100)`` (plain
``predict`` would form 500 × 2500 × 2500 covariances). Data from ``RandomState(0)``, the same
generator as ``benchmarks/gp_core.py``'s. Each repeat r uses ``gpax.utils.get_keys(r)``.

usage: python gpax_b1_b2.py b1|b2 REPEATS   (prints one JSON line: {"gpax", "runs": [...]})
"""

import json
import sys

import numpy as np
from peer_timer import Timer, block

import gpax
import jax.numpy as jnp

WHICH, REPEATS = sys.argv[1], int(sys.argv[2])
NUM_WARMUP = NUM_SAMPLES = 500


def data(which: str):
    rs = np.random.RandomState(0)
    if which == "b1":
        f = lambda x: np.sin(4 * np.pi * x) + 0.5 * x
        X = rs.uniform(0, 1, 50)
        y = f(X) + 0.1 * rs.randn(50)
        Xt = np.linspace(0, 1, 1000)
        return X, y, Xt, f(Xt), 1
    x1x2 = lambda X: (X[:, 0], X[:, 1])
    f = lambda X: (
        np.sin(3 * x1x2(X)[0]) * np.cos(3 * x1x2(X)[1])
        + 0.5 * np.exp(-((X[:, 0] - 0.6) ** 2 + (X[:, 1] - 0.4) ** 2) / 0.05)
    )
    X = rs.uniform(0, 1, (200, 2))
    y = f(X) + 0.05 * rs.randn(200)
    g = np.linspace(0, 1, 50)
    Xt = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    return X, y, Xt, f(Xt), 2


X, y, Xt, yt, dim = data(WHICH)
X, y, Xt = (jnp.asarray(a, jnp.float32) for a in (X, y, Xt))
runs = []
for r in range(REPEATS):
    key, key_pred = gpax.utils.get_keys(r)
    gp = gpax.ExactGP(dim, kernel="RBF")
    with Timer() as fit:
        gp.fit(
            key, X, y, num_warmup=NUM_WARMUP, num_samples=NUM_SAMPLES, progress_bar=False,
            print_summary=False,
        )  # fmt: skip
        block(gp.get_samples())
    with Timer() as pred:
        if WHICH == "b1":
            mean, draws = gp.predict(key_pred, Xt, noiseless=True)
        else:
            mean, draws = gp.predict_in_batches(key_pred, Xt, batch_size=100, noiseless=True)
        block((mean, draws))
    rmse = float(np.sqrt(np.mean((np.asarray(mean) - yt) ** 2)))
    runs.append({"fit": fit.as_dict(), "predict": pred.as_dict(), "rmse": rmse})
    print(f"[{WHICH}] run {r}: fit {fit.wall:.2f}s predict {pred.wall:.2f}s rmse {rmse:.4f}",
          file=sys.stderr, flush=True)  # fmt: skip
print(json.dumps({"gpax": gpax.__version__, "runs": runs}))
