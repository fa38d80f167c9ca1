"""``jaxscope reconstruct``: the parser and handlers of the reconstruction command (a user's scan
through :func:`jaxscope.gp.scan.reconstruct_scan`, or a synthetic surface); figures and files
are in :mod:`jaxscope.cli.reconstruct`."""

from __future__ import annotations

import argparse
import os
import time

from .common import add_common, setup

# --- jaxscope reconstruct ------------------------------------------------------------------------
RECONSTRUCT_HELP = "GP reconstruction of a sparse scan: your own (--input) or a synthetic surface"
RECONSTRUCT_DESCRIPTION = """\
With --input: reconstruct a user's scan (.npy, or HDF5 / pycroscopy NSID datasets; one or several
channels, rectangular, any units) from its measured pixels (finite values, and --mask where
given): mean, noise-free σ and predictive σ_y (noise included) of every pixel, per channel in
the channel's units. --subsample keeps a random fraction of a fully measured image and keeps
the rest as the truth: an |error| map, RMSE, ±2σ_y coverage and a calibration figure (coverage
of ±kσ_y vs the Gaussian expectation, with the predictive σ_y: a held-out pixel is itself a
noisy measurement). Writes reconstruct.png, metrics.json, arrays.npz (and calibration.png).

Without --input: measure a random --fraction of the pixels of a generated surface (Gaussian
random field + terraces + particles; --noise adds measurement noise, default none),
reconstruct it with an exact GP (MAP hyperparameters), print RMSE and ±2σ calibration and
write PNG + JSON.

Examples:
  jaxscope reconstruct --input scan.h5 --dataset Measurement_000/Channel_3/Channel_3/Channel_3 \\
      --subsample 0.1 --out runs/pfm
  jaxscope reconstruct --input sparse.npy --mask measured.npy --channels 0,2 --out runs/mine
  jaxscope reconstruct --size 128 --fraction 0.1 --noise 0.05 --out runs/reconstruct
"""


def register_reconstruct(sub) -> None:
    p = sub.add_parser(
        "reconstruct",
        help=RECONSTRUCT_HELP,
        description=RECONSTRUCT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("a user's scan")
    g.add_argument("--input", metavar="PATH", help=".npy array or HDF5 file of the scan")
    g.add_argument(
        "--dataset",
        action="append",
        metavar="PATH",
        help="dataset path inside the HDF5 --input; repeat for several channels "
        "(default: the file's only 2-D/3-D dataset)",
    )
    g.add_argument("--channels", help="channels to keep, e.g. 0,2 (default: all)")
    g.add_argument(
        "--channel-axis",
        type=int,
        choices=(0, -1),
        help="axis of the channels of a 3-D array (default: its only axis of size <= 16)",
    )
    g.add_argument("--mask", metavar="PATH", help=".npy bool (H, W) or (C, H, W), True = measured")
    g.add_argument(
        "--subsample",
        type=float,
        metavar="FRACTION",
        help="keep this random fraction of the measured pixels (seeded by --seed) and use the "
        "whole input as the truth: |error| map, metrics, calibration.png",
    )
    g.add_argument(
        "--method",
        choices=("auto", "exact", "grid"),
        default="auto",
        help="exact GP, structured grid solver, or auto by size (default)",
    )
    g.add_argument(
        "--nonstationary",
        action="store_true",
        help="gradient-modulated amplitude: σ grows on steps and domain walls",
    )
    g.add_argument(
        "--trend",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="degree of the polynomial trend removed before the GP (default 1: a plane)",
    )
    g.add_argument(
        "--fit",
        choices=("all", "subset"),
        default="all",
        help="MAP fit on all measurements (default) or a random subset of --fit-points",
    )
    s = p.add_argument_group("a synthetic surface (without --input)")
    s.add_argument("--size", type=int, default=128, help="pixels per side (default 128)")
    s.add_argument("--fraction", type=float, default=0.1, help="share of pixels measured")
    s.add_argument(
        "--noise",
        type=float,
        default=0.0,
        metavar="STD",
        help="simulated measurement noise std (default 0: none)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (surface/subsample, GP)")
    p.add_argument(
        "--kernel",
        default="matern32",
        help="rbf, matern12, matern32 (default: calibrated on sharp steps), matern52, rq; with "
        "--input also radial:NAME (a kernel of the Euclidean distance instead of a product "
        "of one per axis: compare the two by their likelihood)",
    )
    p.add_argument(
        "--samples",
        type=int,
        help="posterior samples (synthetic: draws, default 3; scan: pathwise draws for the grid "
        "solver's σ, default 32)",
    )
    p.add_argument(
        "--fit-points",
        type=int,
        help="measurements used for the MAP fit (synthetic: default 1024; scan with --fit subset: "
        "default 4096)",
    )
    p.add_argument(
        "--map-steps",
        type=int,
        help="optimiser steps of the MAP fit (synthetic L-BFGS: default 100; scan Adam: 30)",
    )
    p.add_argument("--out", default="runs/reconstruct", help="output directory")
    add_common(p)
    p.set_defaults(func=run_reconstruct)


def _parse_channels(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"--channels must be comma-separated integers, got {text!r}") from None
    if not out:
        raise ValueError(f"--channels selects no channel: {text!r}")
    return out


def _check_scan_options(args: argparse.Namespace) -> None:
    """Option errors found before anything is loaded or compiled."""
    if args.input is None:
        given = [
            f"--{k.replace('_', '-')}"
            for k in ("dataset", "channels", "mask", "subsample", "channel_axis")
            if getattr(args, k) is not None
        ]
        given += [
            opt
            for opt, on in (
                ("--method", args.method != "auto"),
                ("--fit", args.fit != "all"),
                ("--nonstationary", args.nonstationary),
            )
            if on
        ]
        if given:
            raise ValueError(f"{', '.join(given)} need(s) --input (a .npy or HDF5 scan)")
        return
    if args.noise != 0:
        raise ValueError("--noise simulates noise on the synthetic surface: not with --input")
    if args.subsample is not None and not 0.0 < args.subsample <= 1.0:
        raise ValueError(f"--subsample must be in (0, 1], got {args.subsample}")
    if not os.path.isfile(args.input):
        raise ValueError(f"--input file not found: {args.input!r}")
    if args.dataset is not None:
        import h5py

        if args.input.lower().endswith(".npy") or not h5py.is_hdf5(args.input):
            raise ValueError(
                f"--dataset needs an HDF5 --input; {args.input!r} is not HDF5 (a .npy file "
                "holds one array: drop --dataset)"
            )
    for name in ("samples", "map_steps"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {v}")


def _subsample(scan, fraction: float, seed: int):
    """Keep a random ``fraction`` of the scan's measured pixels (the same pixels in every
    channel); returns the reduced scan and the truth (the full data, NaN where unmeasured)."""
    import numpy as np

    C, H, W = scan.data.shape
    measured = np.broadcast_to(scan.mask, (C, H, W)).any(0).ravel()
    idx = np.flatnonzero(measured)
    n = max(3, int(round(fraction * len(idx))))
    keep = np.zeros(H * W, bool)
    keep[np.random.default_rng(seed).choice(idx, min(n, len(idx)), replace=False)] = True
    mask = scan.mask & keep.reshape(H, W)
    for c, k in enumerate(np.broadcast_to(mask, (C, H, W)).reshape(C, -1).sum(1)):
        if k < 3:
            raise ValueError(f"--subsample {fraction} leaves {k} pixels in channel {c}: need 3")
    data = np.where(mask, scan.data, np.nan)
    return scan._replace(data=data, mask=mask), scan.data.copy()


def run_reconstruct(args: argparse.Namespace) -> int:
    _check_scan_options(args)
    if args.input is not None:
        return run_reconstruct_scan(args)
    t0 = time.perf_counter()
    setup(args)
    import jax

    from ..gp.reconstruct import reconstruct
    from ..instruments.surface import make_surface
    from ..kernels import by_name
    from .reconstruct import save_reconstruction, synthetic_predictive

    by_name(args.kernel)  # fail fast with the list of kernels
    if args.size < 4:
        raise ValueError(f"--size must be >= 4, got {args.size}")
    if args.noise < 0:
        raise ValueError(f"--noise must be >= 0, got {args.noise}")
    samples = 3 if args.samples is None else args.samples
    fit_points = 1024 if args.fit_points is None else args.fit_points
    map_steps = 100 if args.map_steps is None else args.map_steps
    k_surf, k_rec = jax.random.split(jax.random.key(args.seed))
    surface = make_surface(k_surf, args.size)
    rec = reconstruct(
        k_rec,
        surface,
        args.fraction,
        args.kernel,
        noise_std=args.noise,
        num_samples=samples,
        fit_points=fit_points,
        map_steps=map_steps,
    )
    predictive = synthetic_predictive(rec, args.noise, args.seed) if args.noise > 0 else None
    elapsed = time.perf_counter() - t0
    extra = {
        "command": "jaxscope " + " ".join(args.argv),
        "seed": args.seed,
        "fraction": args.fraction,
        "kernel": args.kernel,
        "noise_std": args.noise,
        "fit_points": fit_points,
        "map_steps": map_steps,
        "samples": samples,
        "wall_s": elapsed,
        "backend": jax.default_backend(),
    }
    paths = save_reconstruction(rec, args.out, extra=extra, predictive=predictive)
    m = rec.metrics
    print(
        f"reconstruct {args.size}x{args.size} from {len(rec.indices)} pixels "
        f"({100 * args.fraction:g}%), kernel {args.kernel}, {elapsed:.1f} s"
    )
    print(f"RMSE {m['rmse']:.6f} (truth std {m['truth_std']:.6f}, NRMSE {m['nrmse']:.4f})")
    print(f"calibration {m['calibration']:.6f} (fraction of truth within ±2σ; ideal 0.954)")
    if predictive is not None:
        print(
            f"predictive calibration {predictive['calibration_predictive']:.6f} (a fresh noisy "
            "re-measurement within ±2σ_y, σ_y including the noise; ideal 0.954)"
        )
    print(f"wrote {paths['png']} and {paths['json']}")
    return 0


def run_reconstruct_scan(args: argparse.Namespace) -> int:
    """``jaxscope reconstruct --input ...``: :func:`jaxscope.gp.scan.reconstruct_scan`."""
    t0 = time.perf_counter()
    setup(args)
    import jax
    import jax.numpy as jnp

    from ..gp.gridded import GridKernel
    from ..gp.scan import reconstruct_scan
    from ..images.scans import load_scan
    from .reconstruct import save_scan_reconstruction

    GridKernel(jnp.ones(2), 1.0, args.kernel)  # fail fast with the list of kernels
    channels = _parse_channels(args.channels)
    dataset = None if args.dataset is None else list(args.dataset)
    scan = load_scan(
        args.input, dataset, channels=channels, mask=args.mask, channel_axis=args.channel_axis
    )
    truth = None
    if args.subsample is not None:
        scan, truth = _subsample(scan, args.subsample, args.seed)
    t_load = time.perf_counter() - t0
    kw = {
        "method": args.method,
        "kernel": args.kernel,
        "nonstationary": args.nonstationary,
        "trend": args.trend,
        "fit": args.fit,
        "fit_points": 4096 if args.fit_points is None else args.fit_points,
        "map_steps": 30 if args.map_steps is None else args.map_steps,
        "num_samples": 32 if args.samples is None else args.samples,
    }
    t1 = time.perf_counter()
    rec = reconstruct_scan(jax.random.key(args.seed), scan, **kw)
    t_fit = time.perf_counter() - t1
    settings = {
        "input": args.input,
        "dataset": dataset,
        "channels": channels,
        "channel_axis": args.channel_axis,
        "mask": args.mask,
        "subsample": args.subsample,
        "seed": args.seed,
        **kw,
    }
    extra = {
        "command": "jaxscope " + " ".join(args.argv),
        "settings": settings,
        "backend": jax.default_backend(),
    }
    # total_s: setup, loading and the reconstruction (compilation included), not the files
    timings = {"load_s": t_load, "reconstruct_s": t_fit, "total_s": time.perf_counter() - t0}
    extra["timings"] = timings
    paths, metrics = save_scan_reconstruction(rec, args.out, truth=truth, extra=extra)
    C, H, W = rec.mean.shape
    print(
        f"reconstruct {args.input}: {C} channel(s) of {H}x{W}, method {rec.method}, "
        f"kernel {args.kernel}, {timings['total_s']:.1f} s"
    )
    for c in range(C):
        u = f" {scan.units[c]}" if scan.units[c] else ""
        p = rec.params[c]
        line = (
            f"  {scan.quantities[c]}: {p['num_measured']} pixels measured, lengthscale "
            f"{p['lengthscale_px'][0]:.3g}x{p['lengthscale_px'][1]:.3g} px, noise sd "
            f"{p['noise'] ** 0.5:.4g}{u}"
        )
        if metrics is not None:
            m = metrics[c]
            line += (
                f"; held-out RMSE {m['rmse']:.4g}{u}, ±2σ_y coverage {m['coverage']:.3f} "
                "(ideal 0.954)"
            )
        print(line)
    if truth is not None and metrics is None:
        print("  (no held-out pixel with a known truth: no metrics)")
    print(f"wrote {', '.join(paths.values())}")
    return 0
