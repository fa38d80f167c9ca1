"""BoTorch side of ``botorch_qEI_q4_step`` (run in the botorch venv; BoTorch is only imported).

One BO step on the 2-D Branin function (inputs scaled to [0, 1]^2, maximising -Branin), 20
observations with noise: fit a SingleTaskGP (fit_gpytorch_mll) and choose q = 4 points with
optimize_acqf(qExpectedImprovement, num_restarts=10, raw_samples=512). Times REPS steps (each
with its own random data) and prints one JSON line.

usage: python _botorch_qei.py REPS
"""

import json
import math
import os
import sys
import time
import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore")
import botorch  # noqa: E402
from botorch.acquisition import qExpectedImprovement  # noqa: E402
from botorch.fit import fit_gpytorch_mll  # noqa: E402
from botorch.models import SingleTaskGP  # noqa: E402
from botorch.optim import optimize_acqf  # noqa: E402
from gpytorch.mlls import ExactMarginalLogLikelihood  # noqa: E402

torch.set_default_dtype(torch.float64)
REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 5


def neg_branin(U):
    x1 = U[..., 0] * 15.0 - 5.0
    x2 = U[..., 1] * 15.0
    b, c, t = 5.1 / (4 * math.pi**2), 5.0 / math.pi, 1.0 / (8 * math.pi)
    f = (x2 - b * x1**2 + c * x1 - 6.0) ** 2 + 10.0 * (1 - t) * np.cos(x1) + 10.0
    return -f


bounds = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
times, best_chosen = [], []
load0 = os.getloadavg()[0]
for rep in range(REPS + 1):  # rep 0 warms up torch / BoTorch code paths (not timed)
    rng = np.random.default_rng(rep)
    X = rng.random((20, 2))
    y = neg_branin(X) + 0.5 * rng.standard_normal(20)
    t0 = time.perf_counter()
    Xt, yt = torch.tensor(X), torch.tensor(y)[:, None]
    model = SingleTaskGP(Xt, yt)
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    acq = qExpectedImprovement(model, best_f=yt.max())
    cand, _ = optimize_acqf(acq, bounds=bounds, q=4, num_restarts=10, raw_samples=512)
    dt = time.perf_counter() - t0
    if rep:
        times.append(dt)
        best_chosen.append(float(neg_branin(cand.numpy()).max()))
print(
    json.dumps(
        {
            "step_wall_s": times,
            "median_step_s": float(np.median(times)),
            "best_true_of_batch": best_chosen,
            "botorch": botorch.__version__,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "loadavg_1min_start_end": [load0, os.getloadavg()[0]],
        }
    )
)
