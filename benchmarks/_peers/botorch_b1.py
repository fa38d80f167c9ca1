"""BoTorch peer on protocol B1: FullyBayesianSingleTaskGP, NUTS 500/500 (NumPyro), then the
mixture mean and variance on 1000 points.  usage: python botorch_b1.py SEED (prints JSON)."""

import json
import os
import sys
import time

import numpy as np
import torch
from botorch import __version__ as botorch_version
from botorch.fit import fit_fully_bayesian_model_nuts
from botorch.models.fully_bayesian import FullyBayesianSingleTaskGP

SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 0


def f1(x):
    return np.sin(4 * np.pi * x) + 0.5 * x


rs = np.random.RandomState(0)  # B1 data, as in gpax_b1_b2.py and gp_core.py
X = rs.uniform(0, 1, 50)
y = f1(X) + 0.1 * rs.randn(50)
Xt = np.linspace(0, 1, 1000)
yt = f1(Xt)
tX = torch.tensor(X[:, None], dtype=torch.float64)
tY = torch.tensor(y[:, None], dtype=torch.float64)
tXt = torch.tensor(Xt[:, None], dtype=torch.float64)

t0 = time.perf_counter()
c0 = time.process_time()
gp = FullyBayesianSingleTaskGP(tX, tY)
fit_fully_bayesian_model_nuts(
    gp, warmup_steps=500, num_samples=500, thinning=1, disable_progbar=True, seed=SEED
)
t1 = time.perf_counter()
c1 = time.process_time()
with torch.no_grad():
    post = gp.posterior(tXt)
    mean = post.mixture_mean.squeeze(-1).numpy()
    var = post.mixture_variance.squeeze(-1).numpy()
t2 = time.perf_counter()
c2 = time.process_time()
print(
    json.dumps(
        {
            "botorch": botorch_version,
            "torch": torch.__version__,
            "fit_s": round(t1 - t0, 4),
            "predict_s": round(t2 - t1, 4),
            "total_s": round(t2 - t0, 4),
            "fit_cpu_s": round(c1 - c0, 4),
            "predict_cpu_s": round(c2 - c1, 4),
            "rmse": float(np.sqrt(np.mean((mean - yt) ** 2))),
            "mean_var": float(var.mean()),
            "loadavg": [round(v, 2) for v in os.getloadavg()],
            "model": "FullyBayesianSingleTaskGP (Matern-5/2, dimension-scaled priors), float64",
        }
    )
)
