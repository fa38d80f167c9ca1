r"""The ``jaxscope`` command line.

Each subcommand is one ``register_<name>(subparsers)`` function that adds its parser and sets
``func`` (the handler taking the parsed arguments and returning an exit code); adding a
subcommand is writing that function and appending it to :data:`COMMANDS`.

Examples:
    # a user's scan: keep 10 % of its pixels, check the reconstruction on the other 90 %
    $ jaxscope reconstruct --input scan.h5 --dataset Measurement_000/Channel_3/Channel_3/Channel_3 \
        --subsample 0.1 --out runs/pfm
    $ jaxscope reconstruct --input sparse.npy --mask measured.npy --out runs/mine
    $ jaxscope reconstruct --size 128 --fraction 0.1 --seed 0 --out runs/reconstruct  # synthetic
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .common import add_common, setup
from .reconstruct_cmd import register_reconstruct
from .replay_cmd import register_counterfactual, register_export
from .serve_cmd import register_serve
from .vae_cmd import register_vae


# --- jaxscope campaign (implementation and figures: campaign_cli.py) ----------------------------
def register_campaign(sub) -> None:
    from .campaign import DESCRIPTION, HELP, add_arguments

    p = sub.add_parser("campaign", help=HELP, description=DESCRIPTION)
    add_arguments(p)
    add_common(p)
    p.set_defaults(func=run_campaign)


def run_campaign(args: argparse.Namespace) -> int:
    setup(args)
    from .campaign import main

    return main(args)


# --- registry ------------------------------------------------------------------------------------
COMMANDS: list[Callable] = [
    register_reconstruct, register_campaign, register_serve, register_counterfactual,
    register_export, register_vae,
]  # fmt: skip


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
