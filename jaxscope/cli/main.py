"""The ``jaxscope`` command line.

Each subcommand is one ``register_<name>(subparsers)`` function that adds its parser and sets
``func`` (the handler taking the parsed arguments and returning an exit code); adding a
subcommand is writing that function and appending it to :data:`COMMANDS`.

Example:
    $ jaxscope reconstruct --size 128 --fraction 0.1 --seed 0 --out runs/reconstruct
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from ..runtime import limit_blas_threads


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="do not use JAX's persistent compilation cache (default: ~/.cache/jaxscope/xla)",
    )
    p.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="OpenBLAS threads for LAPACK calls (default 1; 0 leaves OpenBLAS's own setting)",
    )


def _setup(args: argparse.Namespace) -> None:
    if not args.no_cache:
        from ..runtime import enable_compilation_cache

        enable_compilation_cache()
    if args.blas_threads > 0:
        limit_blas_threads(args.blas_threads)


# --- jaxscope reconstruct ------------------------------------------------------------------------
def register_reconstruct(sub) -> None:
    p = sub.add_parser(
        "reconstruct",
        help="sparse-scan reconstruction of a synthetic surface with a GP",
        description="Measure a random fraction of the pixels of a generated surface (Gaussian "
        "random field + terraces + particles), reconstruct it with an exact GP (MAP "
        "hyperparameters), print RMSE and ±2σ calibration and write PNG + JSON.",
    )
    p.add_argument("--size", type=int, default=128, help="pixels per side (default 128)")
    p.add_argument("--fraction", type=float, default=0.1, help="share of pixels measured")
    p.add_argument("--seed", type=int, default=0, help="random seed (surface and measurements)")
    p.add_argument(
        "--kernel",
        default="matern32",
        help="rbf, matern12, matern32 (default: calibrated on sharp steps), matern52, rq",
    )
    p.add_argument("--noise", type=float, default=0.05, help="measurement noise std")
    p.add_argument("--samples", type=int, default=3, help="posterior samples to draw")
    p.add_argument("--fit-points", type=int, default=1024, help="measurements used for the MAP fit")
    p.add_argument("--out", default="runs/reconstruct", help="output directory")
    _add_common(p)
    p.set_defaults(func=run_reconstruct)


def run_reconstruct(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    _setup(args)
    import jax

    from ..gp.reconstruct import reconstruct
    from ..instruments.surface import make_surface
    from ..kernels import by_name
    from .reconstruct import save_reconstruction

    by_name(args.kernel)  # fail fast with the list of kernels
    if args.size < 4:
        raise ValueError(f"--size must be >= 4, got {args.size}")
    k_surf, k_rec = jax.random.split(jax.random.key(args.seed))
    surface = make_surface(k_surf, args.size)
    rec = reconstruct(
        k_rec,
        surface,
        args.fraction,
        args.kernel,
        noise_std=args.noise,
        num_samples=args.samples,
        fit_points=args.fit_points,
    )
    elapsed = time.perf_counter() - t0
    extra = {
        "command": "jaxscope " + " ".join(args.argv),
        "seed": args.seed,
        "fraction": args.fraction,
        "kernel": args.kernel,
        "noise_std": args.noise,
        "fit_points": args.fit_points,
        "wall_s": elapsed,
        "backend": jax.default_backend(),
    }
    paths = save_reconstruction(rec, args.out, extra=extra)
    m = rec.metrics
    print(
        f"reconstruct {args.size}x{args.size} from {len(rec.indices)} pixels "
        f"({100 * args.fraction:g}%), kernel {args.kernel}, {elapsed:.1f} s"
    )
    print(f"RMSE {m['rmse']:.6f} (truth std {m['truth_std']:.6f}, NRMSE {m['nrmse']:.4f})")
    print(f"calibration {m['calibration']:.6f} (fraction of truth within ±2σ; ideal 0.954)")
    print(f"wrote {paths['png']} and {paths['json']}")
    return 0


# --- jaxscope campaign (implementation and figures: campaign_cli.py) ----------------------------
def register_campaign(sub) -> None:
    from .campaign import DESCRIPTION, HELP, add_arguments

    p = sub.add_parser("campaign", help=HELP, description=DESCRIPTION)
    add_arguments(p)
    _add_common(p)
    p.set_defaults(func=run_campaign)


def run_campaign(args: argparse.Namespace) -> int:
    _setup(args)
    from .campaign import main

    return main(args)


# --- registry ------------------------------------------------------------------------------------
COMMANDS: list[Callable] = [register_reconstruct, register_campaign]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxscope", description="JAX-native autonomous microscopy."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxscope`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except ValueError as e:
        parser.error(str(e))  # exits with status 2 and the message
    return 2


if __name__ == "__main__":
    sys.exit(main())
