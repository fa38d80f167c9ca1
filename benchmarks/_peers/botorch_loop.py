"""BoTorch's standard loop on a discrete candidate set, run with BoTorch's own Python.

Every step: ``SingleTaskGP`` with its default priors and ``Standardize(m=1)``, fitted by
``fit_gpytorch_mll``; ``LogExpectedImprovement(best_f = max observed y)`` over every candidate
not yet measured; the argmax is measured. The problem is a table (candidates, true values, a
noise sd and, per seed, the seed points and one standard-normal draw per candidate), so both
libraries measure exactly the same noisy values.

usage: python botorch_loop.py PROBLEM.npz STEPS   (prints one JSON line)
"""

import json
import sys
import time

import numpy as np
import torch
from botorch import __version__ as botorch_version
from botorch.acquisition.analytic import LogExpectedImprovement
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from gpytorch.mlls import ExactMarginalLogLikelihood

torch.set_default_dtype(torch.float64)
data = np.load(sys.argv[1])
STEPS = int(sys.argv[2])
C = torch.tensor(data["candidates"])
values, noise_sd, eps, init = data["values"], float(data["noise_sd"]), data["eps"], data["init"]
out = {"botorch": botorch_version, "torch": torch.__version__, "seeds": []}
t0 = time.perf_counter()
for s in range(init.shape[0]):
    chosen = [int(i) for i in init[s]]
    y = [values[i] + noise_sd * eps[s, i] for i in chosen]
    rmse, picks = [], []
    for _ in range(STEPS):
        X = C[chosen]
        Y = torch.tensor(y)[:, None]
        gp = SingleTaskGP(X, Y, outcome_transform=Standardize(m=1))
        fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
        with torch.no_grad():
            acq = LogExpectedImprovement(gp, best_f=Y.max())
            scores = torch.cat([acq(C[i : i + 1024][:, None, :]) for i in range(0, len(C), 1024)])
            mean = gp.posterior(C).mean[:, 0].numpy()
        rmse.append(float(np.sqrt(np.mean((mean - values) ** 2))))
        scores[chosen] = -float("inf")
        i = int(torch.argmax(scores))
        chosen.append(i)
        picks.append(i)
        y.append(values[i] + noise_sd * eps[s, i])
    noise = float(gp.likelihood.noise.item())
    out["seeds"].append({"picks": picks, "rmse": rmse, "final_noise_var": noise})
    print(f"seed {s}: {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
out["wall_s"] = time.perf_counter() - t0
print(json.dumps(out))
