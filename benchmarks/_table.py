"""Markdown table of a results JSON (BENCHMARKS.md format).

python benchmarks/_table.py benchmarks/results/gp_core.json
"""

from __future__ import annotations

import json
import sys


def _fmt(x, unit=""):
    if x is None:
        return "–"
    if isinstance(x, float):
        x = f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"
    return f"{x}{unit}"


def table(path: str) -> str:
    with open(path) as f:
        data = json.load(f)
    rows = [
        "| record | what | jaxscope | floor / peer | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in data["records"]:
        js = _fmt(r.get("jaxscope_s"), " s")
        if "temp_MB" in r:
            js += f", {r['temp_MB']} MB temp"
        if "compile_s" in r and r["name"].startswith("cached"):
            js = f"compile {_fmt(r['compile_s'], ' s')} (first fit {_fmt(r.get('jaxscope_s'), ' s')})"
        if "compiles" in r and r["name"].startswith("nuts_20"):
            js += f", {r['compiles']} compile"
        if "floor_s" in r:
            other = f"floor {_fmt(r['floor_s'], ' s')}"
            rat = f"{_fmt(r.get('over_floor'))}x floor"
            if "peer_s" in r:
                other += f"; {r['peer']} {_fmt(r['peer_s'], ' s')}"
                rat += f"; {_fmt(r.get('speedup'))}x faster than {r['peer'].split()[0]}"
        elif "peer_s" in r:
            other = f"{r['peer']} {_fmt(r['peer_s'], ' s')}"
            rat = f"{_fmt(r.get('speedup'))}x faster"
        elif "peer_error" in r:
            other = f"{r.get('peer', 'peer')}: not run ({r['peer_error'][:80]})"
            rat = "–"
        else:
            other, rat = "–", "–"
        q = r.get("quality") or {}
        if "jaxscope_rmse" in q:
            rat += f"; RMSE {q['jaxscope_rmse']} vs {q.get('peer_rmse')}"
        if "coverage_2sigma_unobserved" in q:
            rat = (
                f"RMSE {q['rmse_unobserved']} (linear interp. "
                f"{q['baseline_linear_interp_rmse_unobserved']}), ±2σ coverage "
                f"{q['coverage_2sigma_unobserved']}"
            )
        met = {True: "yes", False: "**no**", None: "–"}[r.get("met")]
        what = r.get("what", "").split(";")[0]
        rows.append(
            f"| `{r['name']}` | {what} | {js} | {other} | {rat} | {r.get('target', '–')} | {met} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/gp_core.json"))
