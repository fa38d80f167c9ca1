"""``jaxscope vae``: train a rotation- and translation-invariant VAE (rVAE) on generated
atomic-lattice patches or on a user's stack, and write its figures, weights and metrics.

The training is :func:`jaxscope.vae.trainer.train` (one jitted epoch program, a tqdm bar over
epochs); figures come from :mod:`jaxscope.vae.plots`, the checkpoint from
:func:`jaxscope.vae.checkpoints.save_checkpoint`, scores from :mod:`jaxscope.vae.metrics`.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from .common import add_common, setup

HELP = "train an rVAE on lattice patches or your own stack; latent manifold, maps, loss curves"
DESCRIPTION = """\
Without --input: generate --samples labelled patches of a synthetic atomic lattice (--lattice,
--window, --dose; Poisson noise, defect classes, random angles and sub-pixel shifts), train an
rVAE, and score it on held-out patches of known angle and class: |circular correlation| of
learned and true angle (modulo the lattice's symmetry) and class separation of the content
latents (k-means with the best permutation, logistic regression). The latent maps are those of
a generated whole image (--map-size pixels; every pixel's window encoded).

With --input: a .npy or HDF5 (--dataset) array: a stack of patches (n, h, w) or (n, h, w, c),
or one image (H, W) whose every --window-sided window is a sample (at most --samples of them,
drawn at random) and whose latent maps are drawn. Values are scaled to [0, 1] by the array's
minimum and maximum (the Bernoulli likelihood's range).

Writes to --out: manifold.png (decoded grid of the content latents), traversals.png,
latent_maps.png, loss.png, checkpoint/ (orbax: weights, Adam state, history), latents.npz
(encodings) and metrics.json (settings, loss history, scores, timings).

Examples:
  jaxscope vae --epochs 20 --out runs/vae
  jaxscope vae --lattice honeycomb --samples 3000 --dose 100 --epochs 10 --out runs/graphene
  jaxscope vae --input patches.npy --epochs 30 --out runs/mine
  jaxscope vae --input scan.h5 --dataset Measurement_000/Channel_0 --window 32 --out runs/scan
"""
LATTICES = ("perovskite", "honeycomb")


def register_vae(sub) -> None:
    p = sub.add_parser("vae", help=HELP, description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    g = p.add_argument_group("a user's data")
    g.add_argument("--input", metavar="PATH", help=".npy or HDF5: a patch stack or one image")
    g.add_argument("--dataset", metavar="PATH", help="dataset inside the HDF5 --input")
    s = p.add_argument_group("generated lattice patches (without --input)")
    s.add_argument("--lattice", choices=LATTICES, default="perovskite")
    s.add_argument("--dose", type=float, default=300.0, help="counts per unit column weight")
    s.add_argument("--map-size", type=int, default=96, help="side of the image for the maps")
    p.add_argument("--samples", type=int, default=6000, help="training samples (default 6000)")
    p.add_argument("--window", type=int, default=28, help="patch side in pixels (default 28)")
    m = p.add_argument_group("model and training")
    m.add_argument("--epochs", type=int, default=20)
    m.add_argument("--batch-size", type=int, default=100)
    m.add_argument("--latent-dim", type=int, default=2, help="content latents (default 2)")
    m.add_argument("--invariances", default="r,t", help="any of r, t, s (default r,t)")
    m.add_argument("--hidden", default="128,128", help="encoder and decoder widths")
    m.add_argument(
        "--symmetry",
        type=int,
        help="n-fold rotational symmetry of the patches: the angle is learned modulo 2π/n "
        "(default: the generated lattice's, 4 or 3; 1 with --input)",
    )
    m.add_argument("--lr", type=float, default=1e-3, help="Adam's step size")
    m.add_argument("--fourier", type=int, default=None,
                   help="Fourier features of the spatial decoder's coordinates (default 64 for "
                   "images: lets it learn atomic lattices; 0: plain coordinates)")  # fmt: skip
    m.add_argument("--pixel-fraction", type=float, default=1.0,
                   help="decode a random fraction of the pixels each training step (an unbiased "
                   "likelihood estimate; 0.25: about 4x shorter epochs, same angle on lattice "
                   "patches; default 1: every pixel)")  # fmt: skip
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--seed", type=int, default=0, help="data, weights and shuffling")
    p.add_argument("--out", default="runs/vae", help="output directory")
    add_common(p)
    p.set_defaults(func=run_vae)


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        out = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"--{name} must be comma-separated integers; got {text!r}") from None
    if not out or min(out) < 1:
        raise ValueError(f"--{name} must list positive integers; got {text!r}")
    return out


def check_options(args: argparse.Namespace) -> dict:
    """Option errors found before anything is loaded or compiled; the parsed settings."""
    inv = tuple(t.strip() for t in args.invariances.split(",") if t.strip())
    bad = [t for t in inv if t not in ("r", "t", "s")]
    if bad or not inv or len(set(inv)) != len(inv):
        raise ValueError(f"--invariances must be distinct names from r, t, s; got {inv}")
    for name in ("epochs", "batch_size", "samples", "latent_dim", "window"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    if args.window < 4:
        raise ValueError(f"--window must be >= 4; got {args.window}")
    if args.symmetry is not None and (args.symmetry < 1 or "r" not in inv):
        raise ValueError(f"--symmetry must be >= 1 and needs the invariance r; got {args.symmetry}")
    if not args.lr > 0:
        raise ValueError(f"--lr must be > 0; got {args.lr}")
    if not 0 < args.pixel_fraction <= 1:
        raise ValueError(f"--pixel-fraction must lie in (0, 1]; got {args.pixel_fraction}")
    if args.fourier is not None and args.fourier < 0:
        raise ValueError(f"--fourier must be >= 0; got {args.fourier}")
    if args.input is None:
        if args.dataset is not None:
            raise ValueError("--dataset needs --input (an HDF5 file)")
        if args.map_size < args.window:
            raise ValueError(f"--map-size {args.map_size} is smaller than --window {args.window}")
        if not args.dose > 0:
            raise ValueError(f"--dose must be > 0; got {args.dose}")
    elif not os.path.isfile(args.input):
        raise ValueError(f"--input file not found: {args.input!r}")
    return {"invariances": inv, "hidden": _ints(args.hidden, "hidden")}


def load_array(path: str, dataset: str | None):
    """The array of a .npy file or of an HDF5 dataset (the file's only one by default)."""
    import numpy as np

    if path.lower().endswith(".npy"):
        if dataset is not None:
            raise ValueError("--dataset is for HDF5 input; a .npy file holds one array")
        return np.load(path, allow_pickle=False)
    import h5py

    if not h5py.is_hdf5(path):
        raise ValueError(f"{path!r} is neither a .npy file nor an HDF5 file")
    with h5py.File(path, "r") as f:
        if dataset is None:
            found = []
            f.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) else None)
            if len(found) != 1:
                raise ValueError(f"{path!r} holds {len(found)} datasets; name one with --dataset "
                                 f"({', '.join(found[:10])})")  # fmt: skip
            dataset = found[0]
        if dataset not in f or not isinstance(f[dataset], h5py.Dataset):
            raise ValueError(f"no dataset {dataset!r} in {path!r}")
        return np.asarray(f[dataset])


def user_data(args: argparse.Namespace):
    """``(train (n, h, w[, c]) in [0, 1], image or None)`` from ``--input``."""
    import numpy as np

    from ..images.patches import extract

    a = np.asarray(load_array(args.input, args.dataset), np.float32)
    if a.ndim not in (2, 3, 4):
        raise ValueError(
            f"--input must be an image (H, W) or a stack (n, h, w[, c]); got {a.shape}"
        )
    if not np.all(np.isfinite(a)):
        raise ValueError("--input holds NaN or inf")
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        raise ValueError("--input is constant: nothing to learn")
    a = (a - lo) / (hi - lo)
    if a.ndim != 2:
        return a, None
    P = np.asarray(extract(a, args.window).patches)
    if len(P) > args.samples:
        P = P[np.random.default_rng(args.seed).choice(len(P), args.samples, replace=False)]
    return P, a


def generated_data(args: argparse.Namespace):
    """Training patches, held-out patches with labels, and a whole image, all scaled by the
    training patches' maximum into [0, 1]."""
    import jax
    import numpy as np

    from ..vae import lattice as L
    from ..vae.lattice_patches import lattice_patches

    lat = getattr(L, args.lattice)()
    key = jax.random.key(args.seed)
    kw = {"window": args.window, "dose": args.dose}
    tr = lattice_patches(jax.random.fold_in(key, 0), lat, args.samples, **kw)
    n_test = max(20, min(1000, args.samples // 4))
    te = lattice_patches(jax.random.fold_in(key, 1), lat, n_test, **kw)
    img = L.lattice_images(jax.random.fold_in(key, 2), lat, 1, shape=args.map_size,
                           dose=args.dose, p_vacancy=0.03, p_dopant=0.03, n_rotated=2)  # fmt: skip
    scale = float(np.max(np.asarray(tr.patches)))
    unit = lambda v: np.clip(np.asarray(v, np.float32) / scale, 0.0, 1.0)
    return unit(tr.patches), (unit(te.patches), te), unit(img.image[0]), lat


def run_vae(args: argparse.Namespace) -> int:
    opts = check_options(args)
    t0 = time.perf_counter()
    setup(args)
    import jax
    import numpy as np

    from ..vae import families, metrics, plots
    from ..vae.checkpoints import save_checkpoint
    from ..vae.inference import encode, latent_map
    from ..vae.trainer import train

    test, lat = None, None
    if args.input is None:
        X, test, image, lat = generated_data(args)
    else:
        X, image = user_data(args)
    shape = tuple(X.shape[1:])
    if len(shape) == 3 and shape[-1] == 1:
        shape = shape[:2]
    if args.batch_size > len(X):
        raise ValueError(f"--batch-size {args.batch_size} exceeds the {len(X)} samples")
    symmetry = args.symmetry or (lat.symmetry if lat is not None and "r" in opts["invariances"]
                                 else 1)  # fmt: skip
    extra = {"symmetry": symmetry} if symmetry > 1 else {}
    if args.fourier is not None:  # else the model's default (64 on images)
        extra["fourier"] = args.fourier
    if args.pixel_fraction != 1.0:
        extra["pixel_fraction"] = args.pixel_fraction
    hid = {"encoder_hidden": opts["hidden"], "decoder_hidden": opts["hidden"]}
    model = families.RVAE(shape, latent_dim=args.latent_dim, invariances=opts["invariances"],
                          **hid, **extra)  # fmt: skip
    t_data = time.perf_counter() - t0
    print(f"vae: {len(X)} samples of {shape}, rVAE latent {args.latent_dim} + "
          f"{','.join(opts['invariances'])}, {args.epochs} epochs")  # fmt: skip
    t1 = time.perf_counter()
    res = train(
        model,
        X,
        epochs=args.epochs,
        batch_size=args.batch_size,
        key=jax.random.key(args.seed),
        lr=args.lr,
        progress=not args.no_progress,
    )
    t_train = time.perf_counter() - t1
    os.makedirs(args.out, exist_ok=True)
    save_checkpoint(os.path.join(os.path.abspath(args.out), "checkpoint"), res)
    t2 = time.perf_counter()
    files = ["checkpoint/"]
    plots.plot_loss_curves(res.history, os.path.join(args.out, "loss.png"))
    files.append("loss.png")
    if args.latent_dim >= 2:
        plots.plot_manifold(model, res.params, os.path.join(args.out, "manifold.png"), d=10)
        files.append("manifold.png")
    plots.plot_traversals(model, res.params, os.path.join(args.out, "traversals.png"))
    files.append("traversals.png")
    if image is not None:
        maps = latent_map(model, res.params, image, args.window, normalize="none")
        maps = {k: v for k, v in maps.items() if k in ("angle", "z", "shift", "scale")}
        plots.plot_latent_maps(maps, os.path.join(args.out, "latent_maps.png"), image=image)
        files.append("latent_maps.png")
    scores = None
    encoded = test[0] if test is not None else X
    enc = encode(model, res.params, encoded)
    if test is not None:
        te = test[1]
        y = np.asarray(te.label)
        scores = {"n_test": len(y), "symmetry": lat.symmetry,
                  "angle_recovery": metrics.angle_recovery(enc.angle, np.asarray(te.angle),
                                                           lat.symmetry) if enc.angle is not None
                  else None,
                  "kmeans_accuracy": metrics.kmeans_accuracy(enc.z, y),
                  "logistic_accuracy": metrics.logistic_accuracy(enc.z, y)}  # fmt: skip
    np.savez(os.path.join(args.out, "latents.npz"),
             **{k: v for k, v in enc._asdict().items() if v is not None})  # fmt: skip
    files.append("latents.npz")
    t_fig = time.perf_counter() - t2
    summary = {
        "command": "jaxscope " + " ".join(getattr(args, "argv", [])),
        "settings": {"input": args.input, "dataset": args.dataset,
                     "lattice": None if args.input else args.lattice,
                     "dose": None if args.input else args.dose, "samples": len(X),
                     "shape": list(shape), "epochs": args.epochs, "batch_size": args.batch_size,
                     "latent_dim": args.latent_dim, "invariances": list(opts["invariances"]),
                     "hidden": list(opts["hidden"]), "symmetry": symmetry, "lr": args.lr,
                     "seed": args.seed, "fourier": model.fourier,
                     "pixel_fraction": model.pixel_fraction},
        "history": {k: np.asarray(v).tolist() for k, v in res.history.items()},
        "final_loss": float(res.history["loss"][-1]),
        "scores": scores,
        "timings": {"data_s": t_data, "train_s": t_train, "figures_s": t_fig,
                    "total_s": time.perf_counter() - t0},
        "backend": jax.default_backend(),
        "files": files + ["metrics.json"],
    }  # fmt: skip
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(summary, f, indent=1)
    h = res.history["loss"]
    print(f"loss {h[0]:.4g} -> {h[-1]:.4g} in {t_train:.1f} s")
    if scores is not None:
        ar = scores["angle_recovery"]
        print(f"held-out ({scores['n_test']}): angle |ρ| "
              f"{'n/a' if ar is None else f'{ar:.3f}'}, k-means accuracy "
              f"{scores['kmeans_accuracy']:.3f}, logistic accuracy "
              f"{scores['logistic_accuracy']:.3f}")  # fmt: skip
    print(f"wrote {', '.join(files)}, metrics.json to {args.out}")
    return 0
