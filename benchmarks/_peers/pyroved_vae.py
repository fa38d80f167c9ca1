"""pyroVED peer of the vae suite: ``iVAE`` (rVAE) and ``jiVAE`` (jrVAE) on jaxscope's patches.

The data come from jaxscope's side (``benchmarks/vae.py``), so both libraries train on the same
arrays: DATA.npz holds ``X`` (N, 28, 28) training patches and ``Xt`` (M, 28, 28) held-out
patches, float32 in [0, 1] (pyroVED's default Bernoulli decoder needs that range).

* ``--model ivae``: ``iVAE(data_dim=(28, 28), latent_dim=2, invariances=['r', 't'])`` with every
  other argument at pyroVED 0.3.0's default (encoder and decoder 128-128 tanh, the spatial
  decoder ``sDecoderNet``, Bernoulli likelihood, dx_prior 0.1, seed 1), trained by
  ``SVItrainer(model)`` (Adam, lr 1e-3, Trace_ELBO) on ``init_dataloader(X, batch_size=100)``.
* ``--model jivae``: ``jiVAE(..., discrete_dim=K, invariances=['r', 't'])``, trained by
  ``SVItrainer(model, lr=1e-3, enumerate_parallel=True)`` with pyroVED's documented KL schedule
  (``jiVAE``'s docstring): continuous scale 40 for the first 20 % of the epochs (10 of 50), then
  linearly to 3, discrete scale 3; the schedule is stretched to the number of epochs.

Each epoch is timed on its own (the first separately: torch has no compilation, but the first
epoch includes allocator warm-up). After training, the held-out patches are encoded
(``model.encode``): ``z_loc`` (M, 3 + 2) = [angle, dx, dy, z1, z2] and, for jiVAE, the class
probabilities (M, K). They are written to OUT.npz.

usage: python pyroved_vae.py DATA.npz OUT.npz --model ivae|jivae --epochs E --threads T [--K K]
prints one JSON line: {"pyroved", "torch", "pyro", "model", "config", "epoch_s" (list),
"first_epoch_s", "median_epoch_s", "loss" (list per epoch), "encode_s"}.
"""

import argparse
import json
import sys
import time
import types

# pyroVED imports torchvision only for make_grid (plots); the PyPI torchvision wheel is a CUDA
# build that does not load next to the CPU torch, so a stub stands in (never called here)
_tv = types.ModuleType("torchvision")
_tv.utils = types.ModuleType("torchvision.utils")
_tv.utils.make_grid = None
sys.modules.update({"torchvision": _tv, "torchvision.utils": _tv.utils})

import numpy as np  # noqa: E402
import pyro  # noqa: E402
import pyroved  # noqa: E402
import torch  # noqa: E402
from pyroved.models import iVAE, jiVAE  # noqa: E402
from pyroved.trainers import SVItrainer  # noqa: E402
from pyroved.utils import init_dataloader  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("out")
ap.add_argument("--model", choices=("ivae", "jivae"), required=True)
ap.add_argument("--epochs", type=int, required=True)
ap.add_argument("--threads", type=int, required=True)
ap.add_argument("--K", type=int, default=0, help="discrete_dim of jiVAE")
ap.add_argument("--batch", type=int, default=100)
args = ap.parse_args()

torch.set_num_threads(args.threads)
d = np.load(args.data)
X = torch.from_numpy(np.asarray(d["X"], np.float32))
Xt = torch.from_numpy(np.asarray(d["Xt"], np.float32))
data_dim = tuple(X.shape[1:])

if args.model == "ivae":
    model = iVAE(data_dim=data_dim, latent_dim=2, invariances=["r", "t"])
    trainer = SVItrainer(model)
    schedule = None
else:
    if args.K < 2:
        sys.exit("--K (discrete_dim) >= 2 is needed for jivae")
    model = jiVAE(data_dim=data_dim, latent_dim=2, discrete_dim=args.K, invariances=["r", "t"])
    trainer = SVItrainer(model, lr=1e-3, enumerate_parallel=True)
    hold = max(1, round(0.2 * args.epochs))
    ramp = np.linspace(40.0, 3.0, max(1, args.epochs - hold))
    schedule = [40.0] * hold + ramp.tolist()

loader = init_dataloader(X, batch_size=args.batch)
epoch_s = []
for e in range(args.epochs):
    kw = {} if schedule is None else {"scale_factor": [schedule[e], 3.0]}
    t0 = time.perf_counter()
    trainer.step(loader, **kw)
    epoch_s.append(time.perf_counter() - t0)
    print(
        f"[{args.model}] epoch {e + 1}/{args.epochs} {epoch_s[-1]:.2f}s "
        f"loss {trainer.loss_history['training_loss'][-1]:.3f}",
        file=sys.stderr,
        flush=True,
    )

t0 = time.perf_counter()
if args.model == "ivae":
    z_loc, z_scale = model.encode(Xt, batch_size=1000)
    out = {"z_loc": z_loc.numpy(), "z_scale": z_scale.numpy()}
else:
    z_loc, z_scale, probs = model.encode(Xt, logits=True)
    out = {"z_loc": z_loc.numpy(), "z_scale": z_scale.numpy(), "probs": probs.numpy()}
encode_s = time.perf_counter() - t0
np.savez(args.out, **out)

print(
    json.dumps(
        {
            "pyroved": pyroved.__version__,
            "torch": torch.__version__,
            "pyro": pyro.__version__,
            "model": args.model,
            "config": {
                "data_dim": list(data_dim),
                "N_train": int(X.shape[0]),
                "N_test": int(Xt.shape[0]),
                "latent_dim": 2,
                "invariances": ["r", "t"],
                "discrete_dim": args.K if args.model == "jivae" else None,
                "batch_size": args.batch,
                "epochs": args.epochs,
                "threads": args.threads,
                "kl_scale_schedule": schedule,
                "widths": "pyroVED defaults: encoder 128-128 tanh, spatial decoder 128-128 tanh",
            },
            "epoch_s": [round(t, 4) for t in epoch_s],
            "first_epoch_s": round(epoch_s[0], 4),
            "median_epoch_s": round(float(np.median(epoch_s[1:] or epoch_s)), 4),
            "loss": [float(v) for v in trainer.loss_history["training_loss"]],
            "encode_s": round(encode_s, 4),
        }
    )
)
