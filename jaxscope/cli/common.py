"""Options and set-up shared by every ``jaxscope`` subcommand."""

from __future__ import annotations

import argparse

from ..runtime import limit_blas_threads


def add_common(p: argparse.ArgumentParser) -> None:
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


def setup(args: argparse.Namespace) -> None:
    if not args.no_cache:
        from ..runtime import enable_compilation_cache

        enable_compilation_cache()
    if args.blas_threads > 0:
        limit_blas_threads(args.blas_threads)
