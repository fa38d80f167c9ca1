# ruff: noqa: I001  (peer_timer must be imported first: it sets JAX_PLATFORMS and the listeners)
"""gpax peer of protocol B5: ``gpax.viDKL(64, z_dim=2, kernel="RBF")`` on 8x8 image patches.

The data come from jaxscope's side (built as the anchor's ``make_image`` recipe does), so both
libraries see identical numbers: DATA.npz holds ``X`` (2000, 64), ``y`` (2000,), ``Xt``
(5000, 64) and ``yt`` (5000,), float32. Repeat r uses ``gpax.utils.get_keys(r)``:
``fit(key, X, y, num_steps=500, step_size=5e-3)`` (SVI, Adam, AutoDelta guide: gpax's defaults),
then ``predict(key_pred, Xt)`` (gpax forms the full 5000x5000 predictive covariance and takes its
diagonal); rmse is that of the predictive mean vs ``yt``.

usage: python gpax_b5.py DATA.npz REPEATS   (env PEER_STEPS=n shrinks num_steps, smoke tests only)
prints one JSON line: {"gpax", "benchmark": "b5", "config", "runs": [{"fit", "predict"
(peer_timer dicts), "rmse", "final_loss"}], "rmse_median"}; progress goes to stderr.
"""

import json
import os
import sys

import numpy as np
from peer_timer import Timer, block

import gpax
import jax.numpy as jnp

DATA, REPEATS = sys.argv[1], int(sys.argv[2])
NUM_STEPS = int(os.environ.get("PEER_STEPS", 500))  # 500; PEER_STEPS for smoke tests only
STEP_SIZE = 5e-3

d = np.load(DATA)
X, y, Xt = (jnp.asarray(d[k], jnp.float32) for k in ("X", "y", "Xt"))
yt = np.asarray(d["yt"], np.float64)

runs = []
for r in range(REPEATS):
    key, key_pred = gpax.utils.get_keys(r)
    m = gpax.viDKL(X.shape[1], z_dim=2, kernel="RBF")
    with Timer() as fit:
        m.fit(
            key, X, y, num_steps=NUM_STEPS, step_size=STEP_SIZE, progress_bar=False,
            print_summary=False,
        )  # fmt: skip
        block(m.get_samples())
    with Timer() as pred:
        mean, var = m.predict(key_pred, Xt)
        block((mean, var))
    rmse = float(np.sqrt(np.mean((np.asarray(mean, np.float64) - yt) ** 2)))
    runs.append({"fit": fit.as_dict(), "predict": pred.as_dict(), "rmse": rmse,
                 "final_loss": float(np.asarray(m.loss)[-1]),
                 "var_finite": bool(np.all(np.isfinite(np.asarray(var))))})  # fmt: skip
    print(f"[b5] run {r}: fit {fit.wall:.2f}s (compile {fit.compile:.2f}s) predict "
          f"{pred.wall:.2f}s (compile {pred.compile:.2f}s) rmse {rmse:.4f}",
          file=sys.stderr, flush=True)  # fmt: skip

print(
    json.dumps(
        {
            "gpax": gpax.__version__,
            "benchmark": "b5",
            "config": {
                "model": "viDKL",
                "N_train": int(X.shape[0]),
                "N_test": int(Xt.shape[0]),
                "feature_dim": int(X.shape[1]),
                "z_dim": 2,
                "kernel": "RBF",
                "num_steps": NUM_STEPS,
                "step_size": STEP_SIZE,
                "guide": "delta (gpax default), Adam(b1=0.5) (gpax default)",
                "predict": "predict(key_pred, Xt): full predictive covariance, then its diagonal",
                "repeats": REPEATS,
                "keys": "gpax.utils.get_keys(r)",
                "dtype": "float32",
                "data": os.path.basename(DATA),
            },
            "runs": runs,
            "rmse_median": float(np.median([r["rmse"] for r in runs])),
        }
    )
)
