# ruff: noqa: I001  (peer_timer must be imported first: it sets JAX_PLATFORMS and the listeners)
"""gpax peer: successive ExactGP NUTS fits (500/500) as the B1 data grow from 50 points by one.

usage: python gpax_growing.py NUM_FITS (prints JSON). Run with ``peer_timer.py`` beside it
(compile time = union of JAX trace/lower/compile events).
"""

import json
import sys

import numpy as np
from peer_timer import Timer, block

import gpax
import jax.numpy as jnp

NUM_FITS = int(sys.argv[1])


def f1(x):
    return np.sin(4 * np.pi * x) + 0.5 * x


rs = np.random.RandomState(0)
n_max = 50 + NUM_FITS
X = rs.uniform(0, 1, n_max)
y = f1(X) + 0.1 * rs.randn(n_max)
fits = []
with Timer() as total:
    for i in range(NUM_FITS):
        n = 50 + i
        key, _ = gpax.utils.get_keys(i)
        with Timer() as t:
            gp = gpax.ExactGP(1, kernel="RBF")
            gp.fit(
                key,
                jnp.asarray(X[:n], jnp.float32),
                jnp.asarray(y[:n], jnp.float32),
                num_warmup=500,
                num_samples=500,
                progress_bar=False,
                print_summary=False,
            )
            block(gp.get_samples())
        fits.append(
            {
                "n": n,
                "wall_s": round(t.wall, 4),
                "compile_s": round(t.compile, 4),
                "n_xla_compiles": t.n_xla_compiles,
            }
        )
        print(f"fit {i} n={n} {t.wall:.2f}s compile {t.compile:.2f}s", file=sys.stderr, flush=True)
print(
    json.dumps(
        {
            "gpax": gpax.__version__,
            "total_s": round(total.wall, 4),
            "compile_s": round(total.compile, 4),
            "n_xla_compiles": total.n_xla_compiles,
            "fits": fits,
        }
    )
)
