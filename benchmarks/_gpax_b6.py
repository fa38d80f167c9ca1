"""gpax side of protocol B6 (run in the gpax venv; our code, gpax is only imported).

Protocol B6 with a seed argument: 25x25 grid (or
SIDE), 10 random seed points (RandomState(seed)), noise 0.05, STEPS steps of (gpax.ExactGP RBF
fitted by NUTS NS/NS -> gpax.acquisition.UCB(beta=4, maximize=True, noiseless=True) -> argmax
over unmeasured candidates -> measure). Prints one JSON line: loop wall time, per-step times,
chosen indices, best true value found and the RMSE of the final model's predictive mean.

usage: GPAX_X64=1 python _gpax_b6.py SIDE STEPS NS SEED
"""

import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("JAX_PLATFORMS", "cpu")
import gpax  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

X64 = os.environ.get("GPAX_X64") == "1"
if X64:
    jax.config.update("jax_enable_x64", True)
DT = jnp.float64 if X64 else jnp.float32
SIDE, STEPS, NS, SEED = (int(a) for a in sys.argv[1:5])
BETA = 4.0


def f2(X):
    x1, x2 = X[:, 0], X[:, 1]
    return np.sin(3 * x1) * np.cos(3 * x2) + 0.5 * np.exp(
        -((x1 - 0.6) ** 2 + (x2 - 0.4) ** 2) / 0.05
    )


rs = np.random.RandomState(SEED)
g = np.linspace(0, 1, SIDE)
Xc = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
yc = f2(Xc)
idx0 = rs.choice(len(Xc), 10, replace=False)
measured = list(idx0)
y_meas = list(yc[idx0] + 0.05 * rs.randn(10))
Xc_j = jnp.asarray(Xc, DT)
load0 = os.getloadavg()[0]
steps = []
t0 = time.perf_counter()
for s in range(STEPS):
    key, key_acq = gpax.utils.get_keys(1000 * SEED + s)
    X = jnp.asarray(Xc[measured], DT)
    y = jnp.asarray(np.array(y_meas), DT)
    ts = time.perf_counter()
    gp = gpax.ExactGP(2, kernel="RBF")
    gp.fit(key, X, y, num_warmup=NS, num_samples=NS, progress_bar=False, print_summary=False)
    acq = gpax.acquisition.UCB(key_acq, gp, Xc_j, beta=BETA, maximize=True, noiseless=True)
    acq = np.array(acq)
    acq[measured] = -np.inf
    nxt = int(acq.argmax())
    steps.append(time.perf_counter() - ts)
    measured.append(nxt)
    y_meas.append(float(yc[nxt] + 0.05 * rs.randn()))
total = time.perf_counter() - t0
load1 = os.getloadavg()[0]
mean, _ = gp.predict(gpax.utils.get_keys(7)[0], Xc_j, noiseless=True)
rmse = float(np.sqrt(np.mean((np.asarray(mean) - yc) ** 2)))
print(
    json.dumps(
        {
            "seed": SEED,
            "side": SIDE,
            "steps": STEPS,
            "ns": NS,
            "x64": X64,
            "loop_wall_s": total,
            "step_wall_s": steps,
            "chosen": [int(i) for i in measured[10:]],
            "seed_idx": [int(i) for i in idx0],
            "best_true": float(yc[measured].max()),
            "true_max": float(yc.max()),
            "final_map_rmse": rmse,
            "ucb_any_nan": bool(np.isnan(acq).any()),
            "loadavg_1min_start_end": [load0, load1],
            "gpax": gpax.__version__,
            "jax": jax.__version__,
        }
    )
)
