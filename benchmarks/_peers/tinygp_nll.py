"""tinygp peer: NLL + gradient wrt (lengthscale, variance, noise), RBF and Matern-5/2, float64.

usage: python tinygp_nll.py N REPS   (prints one JSON line)
Data and parameters are generated exactly as in benchmarks/gp_core.py (nll_data).
"""

import json
import statistics
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import tinygp  # noqa: E402
from tinygp import kernels  # noqa: E402
from tinygp.kernels.distance import L2Distance  # noqa: E402

N, REPS = int(sys.argv[1]), int(sys.argv[2])
JITTER = 1e-8


def nll_data(n):
    rs = np.random.RandomState(n)
    X = rs.uniform(0, 1, (n, 2))
    y = np.sin(6 * X[:, 0]) * np.cos(4 * X[:, 1]) + 0.1 * rs.randn(n)
    return X, y


X, y = (jnp.asarray(a) for a in nll_data(N))
params = {"ls": jnp.float64(0.2), "var": jnp.float64(1.0), "noise": jnp.float64(0.01)}
# Euclidean distance for both (tinygp's Matern kernels default to the L1 distance)
BASE = {
    "rbf": lambda scale: kernels.ExpSquared(scale=scale),
    "matern52": lambda scale: kernels.Matern52(scale=scale, distance=L2Distance()),
}
out = {"tinygp": tinygp.__version__, "jax": jax.__version__, "N": N, "kernels": {}}
for name, cls in BASE.items():

    def nll(p, X, y, cls=cls):
        gp = tinygp.GaussianProcess(p["var"] * cls(scale=p["ls"]), X, diag=p["noise"] + JITTER)
        return -gp.log_probability(y)

    f = jax.jit(jax.value_and_grad(nll))
    t0 = time.perf_counter()
    v, g = jax.block_until_ready(f(params, X, y))
    first = time.perf_counter() - t0
    times = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        jax.block_until_ready(f(params, X, y))
        times.append(time.perf_counter() - t0)
    out["kernels"][name] = {
        "first_call_s": round(first, 4),
        "times_s": [round(t, 4) for t in times],
        "median_s": round(statistics.median(times), 4),
        "nll": float(v),
        "grad": {k: float(a) for k, a in g.items()},
    }
print(json.dumps(out))
