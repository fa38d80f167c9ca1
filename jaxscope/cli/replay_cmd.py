"""``jaxscope counterfactual`` and ``jaxscope export``: a recorded campaign re-decided with another
acquisition rule or model, without the instrument; a journal exported to NSID/HDF5.

``counterfactual`` reads a run folder of ``jaxscope campaign`` (its ``journal.jsonl``), a journal
file, or an NSID export of one (:mod:`jaxscope.host.nsid`), rebuilds the campaign's problem and
config from the journal's settings (problem, size, seed, rule, penalty, surrogate), swaps in
``--acquisition`` / ``--mode`` / ``--penalty`` and runs :func:`jaxscope.host.counterfactual.
counterfactual`: at every recorded step, with the data measured up to it, what the other config
chooses and how that compares with what was chosen. Writes ``counterfactual.json`` and
``counterfactual.png`` to ``--out``. (``agent.replay`` recomputes one decision of the same
config; this command asks what *another* config would have done.)

Examples:
    $ jaxscope campaign --problem three_gaussians --acquisition ucb --steps 30 --out run1
    $ jaxscope counterfactual run1 --acquisition maxvar --out run1/cf-maxvar
    $ jaxscope export run1 --out run1.h5 --quantity height --units nm
    $ jaxscope counterfactual run1.h5 --mode fixed
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from .common import add_common, setup

#: surrogate class (the journal's ``settings["surrogate"]``) -> ``jaxscope campaign --mode``
MODE_OF = {"MAPGP": "map", "NUTSGP": "nuts", "HeldGP": "fixed", "GridGP": "grid",
           "HypothesisLearner": "hypotheses", "DKLGP": "dkl", "DKLNUTS": "dkl"}  # fmt: skip
CF_HELP = "re-run a recorded campaign's decisions with another acquisition or model"
EXPORT_HELP = "export a campaign journal to a pycroscopy NSID/HDF5 file"


def register_counterfactual(sub) -> None:
    from ..campaign import MODES
    from ..decide import PENALTY_NAMES

    p = sub.add_parser("counterfactual", help=CF_HELP, description=__doc__.split("\n\n")[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("journal", help="run folder, journal.jsonl or NSID export (.h5) of a campaign")
    p.add_argument("--acquisition", help="the other acquisition rule (default: the recorded one)")
    p.add_argument("--mode", choices=(*MODES, "hypotheses", "dkl"),
                   help="the other model (default: the recorded one)")  # fmt: skip
    p.add_argument("--penalty", choices=PENALTY_NAMES, help="default: the recorded one")
    p.add_argument("--out", help="output folder (default: <run folder>/counterfactual)")
    p.add_argument("--export-nsid", metavar="FILE",
                   help="also export the journal to this .h5 (replaced if it exists)")  # fmt: skip
    add_common(p)
    p.set_defaults(func=run_counterfactual)


def register_export(sub) -> None:
    p = sub.add_parser("export", help=EXPORT_HELP, description=EXPORT_HELP + " (readable back "
                       "by jaxscope and by sidpy/pyNSID)")  # fmt: skip
    p.add_argument("journal", help="run folder or journal.jsonl")
    p.add_argument("--out", required=True, help="the .h5 file to write")
    p.add_argument("--quantity", default="measured value", help="of the measured values")
    p.add_argument("--units", default="a.u.", help="of the measured values")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from ..host.nsid import export_nsid

    records = _records(args.journal)
    try:
        export_nsid(records, args.out, quantity=args.quantity, units=args.units,
                    overwrite=args.overwrite)  # fmt: skip
    except FileExistsError as err:
        raise ValueError(f"{err} (use --overwrite)") from None
    print(f"wrote {args.out}: {len(records)} journal records, "
          f"{sum(r['kind'] == 'measurement' for r in records)} measurements")  # fmt: skip
    return 0


def _records(source: str) -> list[dict]:
    """Records of a run folder, a journal file or an NSID export (ValueError if none)."""
    from ..host.nsid import journal_records, read_nsid_journal

    if not os.path.exists(source):
        raise ValueError(f"no run folder or journal at {source!r}")
    if os.path.isfile(source) and source.lower().endswith((".h5", ".hdf5", ".nsid")):
        return read_nsid_journal(source).records
    try:
        return journal_records(source)
    except FileNotFoundError as err:
        raise ValueError(str(err)) from None


def campaign_setup(settings: dict, *, acquisition=None, mode=None, penalty=None):
    """``(sim, recorded config, other config, description)`` of a ``jaxscope campaign`` journal.

    The configs are built as :func:`jaxscope.cli.campaign.run_campaign` builds them (a test
    checks that the recorded one reproduces every recorded decision)."""
    from .campaign import campaign_config, make_problem

    meta = settings.get("meta") or {}
    if "problem" not in meta or "size" not in meta:
        raise ValueError(
            "the journal was not written by `jaxscope campaign` (no problem/size in its "
            "settings): use jaxscope.host.counterfactual.counterfactual from Python"
        )
    surrogate = settings.get("surrogate")
    if surrogate not in MODE_OF:
        raise ValueError(f"unknown recorded surrogate {surrogate!r}; known: {sorted(MODE_OF)}")
    sim = make_problem(meta["problem"], int(settings["seed"]), int(meta["size"]))
    rec = {"acquisition": meta.get("acquisition"), "mode": MODE_OF[surrogate],
           "penalty": meta.get("penalty", "none")}  # fmt: skip
    other = {"acquisition": acquisition or rec["acquisition"], "mode": mode or rec["mode"],
             "penalty": penalty or rec["penalty"]}  # fmt: skip
    q, steps = int(settings["q"]), int(settings["num_steps"])
    return (sim, campaign_config(sim, q, steps, **rec), campaign_config(sim, q, steps, **other),
            (rec, other))  # fmt: skip


def run_counterfactual(args: argparse.Namespace) -> int:
    setup(args)
    from ..host.counterfactual import counterfactual
    from ..host.nsid import export_nsid

    t0 = time.time()
    records = _records(args.journal)
    starts = [r for r in records if r["kind"] == "start"]
    if not starts:
        raise ValueError(f"{args.journal!r} holds no campaign (no start line)")
    settings = starts[-1]["settings"]
    sim, _, other, (rec, alt) = campaign_setup(
        settings, acquisition=args.acquisition, mode=args.mode, penalty=args.penalty
    )
    base = args.journal if os.path.isdir(args.journal) else os.path.dirname(args.journal)
    out = args.out or os.path.join(base or ".", "counterfactual")
    os.makedirs(out, exist_ok=True)
    # the same rule: follow the journal's active rule (hook switches); another: that rule only
    cf = counterfactual(records, other, sim,
                        rule=None if alt["acquisition"] == rec["acquisition"] else 0)  # fmt: skip
    result = {
        "journal": os.path.abspath(args.journal),
        "problem": settings["meta"]["problem"],
        "recorded": rec,
        "counterfactual": alt,
        "summary": cf.summary,
        "steps": cf.steps,
        "figures": [_figure(out, cf.steps, np.asarray(sim.candidates), rec, alt)],
        "seconds": None,
    }
    if args.export_nsid:
        export_nsid(records, args.export_nsid, config=other, overwrite=True)
        result["nsid"] = os.path.abspath(args.export_nsid)
    result["seconds"] = time.time() - t0
    with open(os.path.join(out, "counterfactual.json"), "w") as fh:
        json.dump(result, fh, indent=1, allow_nan=False)
    s = cf.summary
    print(
        f"{alt['acquisition']}/{alt['mode']} instead of {rec['acquisition']}/{rec['mode']} on "
        f"{s['steps']} recorded steps: same choice at {s['agreement']:.0%} of them, recorded "
        f"choice ranked {s['median_rank']:.0f} (median) under the other rule"
        + (f", true gain {s['truth_gain']:+.4g} per step" if s.get("truth_gain") is not None
           else "")
    )  # fmt: skip
    print(f"wrote {out}/: counterfactual.json, counterfactual.png")
    return 0


def _figure(out: str, steps: list[dict], C: np.ndarray, rec: dict, alt: dict) -> str:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    t = np.asarray([s["step"] for s in steps])
    agree = np.asarray([s["agree"] for s in steps], bool)
    rank = np.asarray([np.nan if s["rank"][0] is None else s["rank"][0] for s in steps])
    two_d = C.shape[1] == 2
    fig, axes = plt.subplots(1, 3 if two_d else 2, figsize=(15 if two_d else 10, 3.8))
    ax = axes[0]
    ax.semilogy(t, rank, "o-", ms=3, lw=0.8, label="rank of the recorded choice")
    ax.semilogy(t[agree], rank[agree], "o", color="g", ms=5, label="same choice")
    ax.set(title=f"recorded choice under {alt['acquisition']}/{alt['mode']}", xlabel="step",
           ylabel="rank (1 = its first choice)")  # fmt: skip
    ax.legend(fontsize=7)
    ax = axes[1]
    for who, c in (("recorded", "C0"), ("chosen", "C1")):
        m = np.asarray([s[f"mean_{who}"] for s in steps])
        sd = np.asarray([s[f"sd_{who}"] for s in steps])
        ax.errorbar(t, m, 2 * sd, fmt="o", ms=3, color=c, lw=0.8, capsize=2,
                    label=f"{who} point: mean ± 2σ")  # fmt: skip
    ax.set(title="the other model's prediction", xlabel="step")
    ax.legend(fontsize=7)
    if two_d:
        ax = axes[2]
        ax.scatter(C[:, 1], C[:, 0], s=2, c="0.85")
        R = C[[s["recorded"][0] for s in steps]]
        A = C[[s["chosen"][0] for s in steps]]
        ax.scatter(R[:, 1], R[:, 0], s=16, marker="o", facecolors="none", edgecolors="C0",
                   label=f"recorded ({rec['acquisition']}/{rec['mode']})")  # fmt: skip
        ax.scatter(A[:, 1], A[:, 0], s=12, marker="x", c="C1",
                   label=f"counterfactual ({alt['acquisition']}/{alt['mode']})")  # fmt: skip
        ax.set(title="first point of each step", xlabel="x[1]", ylabel="x[0]")
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "counterfactual.png"), dpi=110)
    plt.close(fig)
    return "counterfactual.png"
