"""``jaxscope serve``: a simulated microscope on the network (Pyro5), for remote campaigns.

Serves :class:`~jaxscope.instruments.SimulatedMicroscope` of a simulator through
:func:`jaxscope.instruments.server.serve` (loopback, a shared-secret token on every call,
limits and budgets checked before the instrument; see that module) until stopped. The token
comes from ``--token``, ``--token-file`` or the ``JAXSCOPE_TOKEN`` environment variable, in that
order; with none, a random one is generated and printed once on stderr. The first line on
stdout, ``serving PYRO:jaxscope.microscope@HOST:PORT``, says the server is ready.

Example:
    $ JAXSCOPE_TOKEN=s3cret jaxscope serve --instrument pfm-twin --port 9100 --size 64
    >>> scope = RemoteMicroscope(port=9100, token="s3cret")      # in the campaign's process
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys

from .common import add_common, setup

HELP = "serve a simulated microscope over the network (Pyro5) for remote campaigns"
TOKEN_ENV = "JAXSCOPE_TOKEN"


def register_serve(sub) -> None:
    """Add the ``serve`` subcommand."""
    from ..instruments import PROBLEMS

    p = sub.add_parser("serve", help=HELP, description=__doc__.split("\n\n")[1])
    names = sorted({*PROBLEMS, *(n.replace("_", "-") for n in PROBLEMS)})
    p.add_argument(
        "--instrument",
        required=True,
        choices=names,
        metavar="NAME",
        help=f"simulator to serve: {', '.join(n.replace('_', '-') for n in PROBLEMS)}",
    )
    p.add_argument("--port", type=int, required=True, help="TCP port (0: chosen by the system)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--token", default=None, help=f"shared secret (or ${TOKEN_ENV})")
    p.add_argument("--token-file", default=None, help="file holding the shared secret")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated specimen")
    p.add_argument("--noise-seed", type=int, default=0, help="seed of the measurement noise")
    p.add_argument("--size", type=int, default=None, help="image side of a digital twin (px)")
    p.add_argument("--window", type=int, default=None, help="patch side of a digital twin (px)")
    p.add_argument("--max-batch", type=int, default=1024, help="points per call (default 1024)")
    p.add_argument("--max-dose", type=int, default=None, help="budget: points + stimuli + pixels")
    p.add_argument("--max-seconds", type=float, default=None, help="budget: instrument seconds")
    add_common(p)
    p.set_defaults(func=run_serve)


def read_token(args: argparse.Namespace) -> str:
    """The token from ``--token``, ``--token-file`` or the environment; a fresh one if none."""
    if args.token:
        return args.token
    if args.token_file:
        with open(args.token_file) as fh:
            token = fh.read().strip()
        if not token:
            raise ValueError(f"token file {args.token_file} is empty")
        return token
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV]
    token = secrets.token_urlsafe(24)
    print(f"token: {token}", file=sys.stderr, flush=True)
    return token


def run_serve(args: argparse.Namespace) -> int:
    setup(args)
    import jax

    from ..instruments import IMAGE_PROBLEMS, SimulatedMicroscope, make_simulator
    from ..instruments.server import serve

    token = read_token(args)
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in [0, 65535], got {args.port}")
    name = args.instrument.replace("-", "_")
    kwargs = {k: getattr(args, k) for k in ("size", "window") if getattr(args, k) is not None}
    if kwargs and name not in IMAGE_PROBLEMS:
        raise ValueError(f"--size and --window apply to the digital twins {IMAGE_PROBLEMS}")
    sim = make_simulator(name, key=jax.random.key(args.seed), **kwargs)
    scope = SimulatedMicroscope(sim, seed=args.noise_seed, max_batch=args.max_batch)
    serve(scope, token=token, host=args.host, port=args.port, max_batch=args.max_batch,
          max_dose=args.max_dose, max_seconds=args.max_seconds)  # fmt: skip
    return 0
