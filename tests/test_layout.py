"""The package layout shows the architecture: the import graph (read from the source) has no
cycle, the numerical core imports nothing from the host side, the command line, plotting or the
instruments, no private name is imported across modules, every sub-package is packaged, and a
wheel install (not editable) imports every sub-package and runs ``jaxscope campaign``."""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# source folder -> package name (kernels/ and probmodels/ install as jaxscope.kernels / .probmodels)
SOURCES = {
    ROOT / "jaxscope": "jaxscope",
    ROOT / "kernels": "jaxscope.kernels",
    ROOT / "probmodels": "jaxscope.probmodels",
}
CORE = ("jaxscope.gp", "jaxscope.decide", "jaxscope.campaign", "jaxscope.kernels",
        "jaxscope.probmodels", "jaxscope.runtime")  # fmt: skip
NOT_IN_CORE = ("jaxscope.host", "jaxscope.cli", "jaxscope.instruments", "matplotlib", "tqdm")
MAX_LINES = 420


def modules() -> dict[str, pathlib.Path]:
    out = {}
    for folder, pkg in SOURCES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if folder.name == "jaxscope" and parts and parts[0] in ("kernels", "probmodels"):
                continue
            out[".".join([pkg, *parts])] = path
    return out


MODULES = modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def imports(name: str) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every import in a module, relative ones resolved (any depth:
    imports inside functions count too)."""
    tree = ast.parse(MODULES[name].read_text())
    base = name if _is_package(name) else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = base.split(".")
                pkg = pkg[: len(pkg) - node.level + 1]
                target = ".".join(pkg + ([node.module] if node.module else []))
            else:
                target = node.module
            names = [a.name for a in node.names]
            # `from . import x` imports the sub-module x
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            out += [(s, []) for s in subs] or [(target, names)]
    return out


def graph() -> dict[str, set[str]]:
    g = {}
    for name in MODULES:
        deps = set()
        for target, _ in imports(name):
            while target and target not in MODULES:  # `jaxscope.gp.Observations` -> package
                target = target.rpartition(".")[0]
            if target and target != name:
                deps.add(target)
        g[name] = deps
    return g


def test_import_graph_has_no_cycle():
    g = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(g[n]):
            if state.get(m) == 1:
                cycle = stack[stack.index(m) :] + [m]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(g):
        if n not in state:
            visit(n)
    assert len(g) > 40  # the graph was really read


def test_core_imports_nothing_from_host_cli_plotting_or_instruments():
    bad = []
    for name in MODULES:
        if not name.startswith(CORE):
            continue
        for target, _ in imports(name):
            if target.startswith(NOT_IN_CORE):
                bad.append(f"{name} imports {target}")
    assert not bad, "\n".join(bad)


def test_no_private_names_across_modules():
    bad = []
    for name in MODULES:
        for target, names in imports(name):
            if target.startswith("jaxscope"):
                if any(p.startswith("_") for p in target.split(".")[1:]):
                    bad.append(f"{name} imports private module {target}")
                bad += [f"{name} imports {target}.{n}" for n in names if n.startswith("_")]
    assert not bad, "\n".join(bad)


def test_modules_are_small_and_packaged():
    sizes = {n: len(p.read_text().splitlines()) for n, p in MODULES.items()}
    big = {n: s for n, s in sizes.items() if s > MAX_LINES}
    assert not big, big
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packaged = set(config["tool"]["setuptools"]["packages"])
    packages = {n for n in MODULES if _is_package(n)}
    assert packages == packaged, (packages - packaged, packaged - packages)


@pytest.mark.slow
def test_wheel_install_imports_every_subpackage_and_runs_a_campaign(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(ROOT)],
        check=True,
    )  # fmt: skip
    (wheel,) = dist.glob("jaxscope-*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True,
    )  # fmt: skip
    packages = sorted(n for n in MODULES if _is_package(n))
    code = (
        "import importlib, sys, pathlib\n"
        f"for name in {packages!r}:\n"
        "    mod = importlib.import_module(name)\n"
        f"    assert pathlib.Path(mod.__file__).is_relative_to({str(target)!r}), mod.__file__\n"
        "from jaxscope.cli import main\n"
        "sys.exit(main(['campaign', '--steps', '2', '--size', '16', '--num-init', '4',"
        " '--no-progress', '--no-cache', '--out', sys.argv[1]]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target), "MPLBACKEND": "Agg"}
    out = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-c", code, str(out)], env=env, capture_output=True, text=True,
        cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "metrics.json").is_file() and (out / "journal.jsonl").is_file()
