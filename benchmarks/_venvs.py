"""Peer virtual environments (gpax, tinygp, botorch), each with its own Python.

Peers never share jaxscope's environment: gpax 0.1.9 needs old pins (jax 0.6.2, numpyro 0.19),
BoTorch brings torch. :func:`peer_python` returns the interpreter of a working venv, looked up in
this order and created under ``benchmarks/.venvs/<name>`` (gitignored) when missing:

1. ``$JAXSCOPE_PEER_VENVS/<name>`` (ready-made venvs, e.g. ``JAXSCOPE_PEER_VENVS=/work/venvs``);
2. ``benchmarks/.venvs/<name>``;
3. a new venv there, installed with the recipe below (log in ``benchmarks/.venvs/<name>.log``).

Recipes: pyroved: ``torch==2.13.0``, ``pyro-ppl==1.9.2`` and ``pyroved==0.3.0`` without its
torchvision (see ``RECIPES``); gpax from ``_peers/gpax-requirements.txt`` (its pins: jax 0.6.2, numpyro 0.19); tinygp with ``jax[cpu]==0.10.2``;
botorch with ``torch==2.13.0`` first, then ``botorch[fully-bayesian]`` (its NUTS runs on
NumPyro). A venv whose probe import fails is reported as an error string, never silently used.
"""

from __future__ import annotations

import os
import subprocess
import sys

from _common import HERE

GPAX_FREEZE = os.path.join(HERE, "_peers", "gpax-requirements.txt")

RECIPES: dict[str, list[list[str]]] = {
    "gpax": [["-r", GPAX_FREEZE]],
    "tinygp": [["jax[cpu]==0.10.2", "tinygp"]],
    # pip 23 does not normalise "fully_bayesian"; the extra is spelt "fully-bayesian"
    "botorch": [["torch==2.13.0"], ["torch==2.13.0", "botorch[fully-bayesian]"]],
    # pyroVED's only use of torchvision is make_grid in its plotting module, and the PyPI
    # torchvision wheel is a CUDA build whose ops do not load with the CPU torch: pyroved goes in
    # without dependencies and its runner (and the probe) put a stub torchvision.utils in place
    "pyroved": [
        ["torch==2.13.0"],
        ["torch==2.13.0", "pyro-ppl==1.9.2", "matplotlib"],
        ["--no-deps", "pyroved==0.3.0"],
    ],
}
PROBES = {
    "gpax": "import gpax, numpyro, jax; print(gpax.__version__)",
    "tinygp": "import tinygp, jax; print(tinygp.__version__)",
    "botorch": (
        "import botorch, numpyro, jax, torch; "
        "from botorch.models.fully_bayesian import FullyBayesianSingleTaskGP; "
        "print(botorch.__version__)"
    ),
    "pyroved": (
        "import sys, types; tv = types.ModuleType('torchvision'); "
        "tv.utils = types.ModuleType('torchvision.utils'); tv.utils.make_grid = None; "
        "sys.modules.update({'torchvision': tv, 'torchvision.utils': tv.utils}); "
        "import pyroved, pyro, torch; from pyroved.models import iVAE, jiVAE; "
        "print(pyroved.__version__)"
    ),
}


def _python(venv: str) -> str:
    return os.path.join(venv, "bin", "python")


def probe(name: str, python: str) -> tuple[str | None, str | None]:
    """``(version, None)`` if the peer imports in ``python``, else ``(None, error)``."""
    try:
        p = subprocess.run(
            [python, "-c", PROBES[name]],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "JAX_PLATFORMS": "cpu"},
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{name} probe failed: {e}"
    if p.returncode != 0:
        return None, f"{name} does not import in {python}: {p.stderr.strip()[-600:]}"
    return p.stdout.strip().splitlines()[-1], None


def create(name: str, venv: str) -> str | None:
    """Create ``venv`` with the recipe for ``name``; returns an error string or ``None``."""
    if name == "gpax" and not os.path.exists(GPAX_FREEZE):
        return f"gpax pins not found at {GPAX_FREEZE}"
    os.makedirs(os.path.dirname(venv), exist_ok=True)
    logpath = venv + ".log"
    with open(logpath, "w") as logf:
        steps = [[sys.executable, "-m", "venv", venv]]
        steps += [[_python(venv), "-m", "pip", "install", *args] for args in RECIPES[name]]
        for cmd in steps:
            print("$", " ".join(cmd), file=logf, flush=True)
            rc = subprocess.call(cmd, stdout=logf, stderr=subprocess.STDOUT)
            if rc != 0:
                return f"creating the {name} venv failed (exit {rc}); see {logpath}"
    return None


def peer_python(
    name: str, *, allow_create: bool = True
) -> tuple[str | None, str | None, str | None]:
    """``(python, version, error)`` for peer ``name``; exactly one of python/error is None."""
    candidates = []
    root = os.environ.get("JAXSCOPE_PEER_VENVS")
    if root:
        candidates.append(os.path.join(root, name))
    local = os.path.join(HERE, ".venvs", name)
    candidates.append(local)
    errors = []
    for venv in candidates:
        if os.path.exists(_python(venv)):
            version, err = probe(name, _python(venv))
            if err is None:
                return _python(venv), version, None
            errors.append(err)
    if not allow_create:
        return None, None, "; ".join(errors) or f"no {name} venv (creation disabled)"
    if os.path.exists(_python(local)):
        return None, None, "; ".join(errors)
    err = create(name, local)
    if err is not None:
        return None, None, err
    version, err = probe(name, _python(local))
    return (_python(local), version, None) if err is None else (None, None, err)


if __name__ == "__main__":  # python benchmarks/_venvs.py gpax tinygp botorch
    for n in sys.argv[1:] or list(RECIPES):
        print(n, peer_python(n))
