r"""A campaign journal as a pycroscopy NSID/HDF5 file: export, read back, import for replay.

NSID is the HDF5 layout of pycroscopy's sidpy/pyNSID (what SciFiReaders and the community's
digital-twin microscopes load): a *main* dataset with the attributes ``quantity``, ``units``,
``data_type``, ``modality``, ``source``, ``main_data_name``, ``title`` and the bookkeeping
markers ``pyNSID_version``/``sidpy_version``/``machine_id``/``platform``/``timestamp``; one
1-D dataset per dimension beside it (attributes ``name``, ``quantity``, ``units``,
``dimension_type``) attached as an HDF5 dimension scale and labelled with its name; and groups
beside it (``metadata``) that sidpy reads into the dataset's dictionaries. :func:`export_nsid`
writes that layout with h5py alone:

=====================================================  ========================================
path                                                   content
=====================================================  ========================================
``Measurement_000/Channel_000/measurement/measurement`` main dataset ``(N,)``: every measured
                                                       value, in journal order; dimension
                                                       ``point`` (``POINT_CLOUD``: measurement
                                                       number); ``metadata``: the campaign's
                                                       settings (``settings`` as JSON too)
``Measurement_000/Channel_001/coordinates/coordinates`` main dataset ``(N, d)``: where each was
                                                       measured; dimensions ``point`` and
                                                       ``axis`` (``CHANNEL``: coordinate)
``jaxscope/measurements/*``                            per measurement: ``id``, ``step``,
                                                       ``index`` (candidate), ``seq`` (journal
                                                       line), ``time``, ``duration``,
                                                       ``request_time`` (NaN where absent)
``jaxscope/failures/*``                                per failure: ``id``, ``step``,
                                                       ``index``, ``seq``, ``time``,
                                                       ``duration``, ``x``, ``reason``,
                                                       ``exclude`` (1, 0, -1: not journaled)
``jaxscope/records``                                   every journal record: UTF-8 JSON lines
                                                       as bytes (Fletcher-32 checksummed)
=====================================================  ========================================

The root carries ``jaxscope_format`` / ``jaxscope_format_version``; ``jaxscope`` carries the
settings of the latest ``start`` line and, when given, a description of the config.

:func:`read_nsid_journal` reads the records back and checks them against the NSID datasets
(a value or coordinate edited in one and not the other is refused, naming the point), so the
file is a campaign: :func:`import_nsid` writes the records into a journal (``journal.jsonl``,
the same lines, byte for byte, as the journal exported) that :class:`~jaxscope.host.HostRunner`
resumes and :func:`~jaxscope.host.replay_state` replays.

Example:
    >>> export_nsid("runs/campaign", "campaign.h5", quantity="height", units="nm")
    >>> got = read_nsid_journal("campaign.h5")
    >>> got.settings["seed"], len(got.records)
    >>> import_nsid("campaign.h5", "runs/restored")    # then HostRunner(..., "runs/restored")
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .journal import Journal, JournalError, read_journal

__all__ = [
    "FORMAT", "FORMAT_VERSION", "NSID_LAYOUT", "MEASUREMENT", "COORDINATES", "NSIDJournal",
    "journal_records", "measurement_table", "export_nsid", "read_nsid_journal", "import_nsid",
]  # fmt: skip

FORMAT, FORMAT_VERSION = "jaxscope-journal", 1
#: the pyNSID / sidpy releases whose writer this layout follows (written as their markers)
NSID_LAYOUT = {"pyNSID_version": "0.0.7.2", "sidpy_version": "0.12.9"}
MEASUREMENT = "Measurement_000/Channel_000/measurement"  # NSID group; main dataset of same name
COORDINATES = "Measurement_000/Channel_001/coordinates"
_RECORDS, _TABLES = "jaxscope/records", "jaxscope"


class NSIDJournal(NamedTuple):
    """What :func:`read_nsid_journal` read: the journal records (in order, as
    :func:`~jaxscope.host.journal.read_journal` returns them), the settings of the latest
    ``start`` line, the config description (``{}`` when none was exported) and the
    per-measurement table (:func:`measurement_table`)."""

    records: list[dict]
    settings: dict
    config: dict
    measurements: dict[str, np.ndarray]


def journal_records(source: str | os.PathLike | list[dict]) -> list[dict]:
    """The records of a journal file, a run folder (its ``journal.jsonl``) or a record list."""
    if isinstance(source, list):
        return source
    path = Path(source)
    if path.is_dir():
        path = path / "journal.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no journal at {os.fspath(path)!r}")
    return read_journal(path)


def _float(v: Any) -> float:
    return float(v) if v is not None else float("nan")


def measurement_table(records: list[dict]) -> dict[str, np.ndarray]:
    """Every ``measurement`` record as columns: ``x (N, d)``, ``y``, ``id``, ``step``,
    ``index``, ``seq``, ``time``, ``duration`` and ``request_time`` (the time of the request
    line of the same id; NaN where the journal has none)."""
    requested = {}
    for r in records:
        if r["kind"] == "request":
            requested.setdefault(r["id"], r.get("time"))
    rows = [r for r in records if r["kind"] == "measurement"]
    d = len(rows[0]["x"]) if rows else 0
    bad = next((r for r in rows if len(r["x"]) != d), None)
    if bad is not None:
        raise ValueError(
            f"journal line {bad['seq'] + 1}: measurement {bad['id']} has {len(bad['x'])} "
            f"coordinates, the first one has {d}"
        )
    return {
        **_event_columns(rows, d),
        "y": np.asarray([r["y"] for r in rows], np.float64),
        "request_time": np.asarray([_float(requested.get(r["id"])) for r in rows]),
    }


def _event_columns(rows: list[dict], d: int) -> dict[str, np.ndarray]:
    """The columns every measurement and failure record has: ``x (N, d)``, ``id``, ``step``,
    ``index``, ``seq``, ``time``, ``duration``."""
    return {
        "x": np.asarray([r["x"] for r in rows], np.float64).reshape(len(rows), d),
        "id": np.asarray([r["id"] for r in rows], dtype=object),
        "step": np.asarray([r["step"] for r in rows], np.int64),
        "index": np.asarray([r["index"] for r in rows], np.int64),
        "seq": np.asarray([r["seq"] for r in rows], np.int64),
        "time": np.asarray([_float(r.get("time")) for r in rows]),
        "duration": np.asarray([_float(r.get("duration")) for r in rows]),
    }


def _failure_table(records: list[dict], d: int) -> dict[str, np.ndarray]:
    rows = [r for r in records if r["kind"] == "failure"]
    flag = {True: 1, False: 0, None: -1}
    return {
        **_event_columns(rows, d),
        "reason": np.asarray([str(r.get("reason", "")) for r in rows], dtype=object),
        "exclude": np.asarray([flag[r.get("exclude")] for r in rows], np.int8),
    }


def _bookkeeping(obj) -> None:
    """sidpy's and pyNSID's bookkeeping attributes (``write_pynsid_book_keeping_attrs``)."""
    obj.attrs.update(
        {
            "machine_id": platform.node(),
            "timestamp": time.strftime("%Y_%m_%d-%H_%M_%S"),
            "platform": platform.platform(),
            **NSID_LAYOUT,
        }
    )


def _attrs(obj, values: dict) -> None:
    """Flat attributes; a nested dict becomes a sub-group (as sidpy writes metadata)."""
    for k, v in values.items():
        if isinstance(v, dict):
            _attrs(obj.require_group(k), v)
        elif v is not None:
            obj.attrs[k] = v if isinstance(v, str | int | float | bool) else json.dumps(v)


def _write_main(parent, name: str, data: np.ndarray, dims: list[tuple], info: dict) -> None:
    """One NSID main dataset ``name`` in its own group ``parent/name`` (pyNSID's layout)."""
    g = parent.create_group(name)
    _bookkeeping(g)
    ds = g.create_dataset(name, data=data)
    scales = []
    for dim_name, values, quantity, units, kind in dims:
        s = g.create_dataset(dim_name, data=values)
        s.attrs.update(name=dim_name, quantity=quantity, units=units, dimension_type=kind)
        scales.append(s)
    ds.attrs.update({k: info[k] for k in ("quantity", "units", "data_type", "modality", "source")})
    ds.attrs.update(main_data_name=info["title"], title=info["title"])
    _bookkeeping(ds)
    for i, s in enumerate(scales):
        s.make_scale(s.attrs["name"])
        ds.dims[i].label = s.attrs["name"]
        ds.dims[i].attach_scale(s)
    _attrs(g.create_group("metadata"), info["metadata"])


def export_nsid(
    journal: str | os.PathLike | list[dict],
    path: str | os.PathLike,
    *,
    quantity: str = "measured value",
    units: str = "a.u.",
    coordinate_names: list[str] | None = None,
    coordinate_units: str | list[str] = "a.u.",
    config: Any = None,
    overwrite: bool = False,
) -> Path:
    """Write a campaign journal to an NSID/HDF5 file (layout in the module docstring).

    Args:
        journal: a ``journal.jsonl``, a run folder holding one, or the records themselves.
        path: the ``.h5`` file to write.
        quantity, units: of the measured values (NSID ``quantity``/``units``).
        coordinate_names, coordinate_units: of the ``d`` coordinates (default ``x0``, ``x1``,
            …; one unit for all or one each).
        config: the campaign's :class:`~jaxscope.campaign.CampaignConfig`, described in the
            file's metadata (surrogate, rules, penalties, selector, q); optional.
        overwrite: replace an existing file (else ``FileExistsError``).

    Returns:
        The path written.

    Raises:
        ValueError: a journal without measurements or ``start`` line, or coordinate names or
            units that do not match ``d``.
    """
    import h5py

    records = journal_records(journal)
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{os.fspath(path)!r} exists; pass overwrite=True to replace it")
    starts = [r for r in records if r["kind"] == "start"]
    table = measurement_table(records)
    if not starts or not len(table["y"]):
        raise ValueError("the journal has no start line or no measurement: nothing to export")
    settings = dict(starts[-1].get("settings") or {})
    N, d = table["x"].shape
    names = [f"x{k}" for k in range(d)] if coordinate_names is None else list(coordinate_names)
    cunits = [coordinate_units] * d if isinstance(coordinate_units, str) else list(coordinate_units)
    if len(names) != d or len(cunits) != d:
        raise ValueError(f"{len(names)} coordinate names and {len(cunits)} units for d = {d}")
    texts = {"quantity": quantity, "units": units, "coordinate_units": cunits,
             "coordinate_names": names}  # fmt: skip
    for what, v in texts.items():  # sidpy refuses empty strings
        if any(not isinstance(t, str) or not t.strip() for t in np.atleast_1d(v)):
            raise ValueError(f"{what} must be non-empty strings, got {v!r}")
    desc = describe_config(config) if config is not None else {}
    problem = str((settings.get("meta") or {}).get("problem", "campaign"))
    metadata = {
        **{k: v for k, v in settings.items() if k != "meta"},
        "meta": settings.get("meta") or {},
        "settings": json.dumps(settings, sort_keys=True),
        "config": json.dumps(desc, sort_keys=True),
        "coordinate_names": json.dumps(names),
        "coordinate_units": json.dumps(cunits),
        "journal_records": len(records),
        "failures": sum(r["kind"] == "failure" for r in records),
    }
    common = {"modality": "autonomous experiment", "source": "jaxscope", "metadata": metadata}
    point = ("point", np.arange(N), "measurement number", "index", "POINT_CLOUD")
    tmp = path.with_name(path.name + ".part")
    with h5py.File(tmp, "w") as f:
        f.attrs.update(jaxscope_format=FORMAT, jaxscope_format_version=FORMAT_VERSION)
        m, c = f.create_group(MEASUREMENT.rsplit("/", 1)[0]), f.require_group("Measurement_000")
        _write_main(m, "measurement", table["y"], [point], {
            **common, "quantity": quantity, "units": units, "data_type": "POINT_CLOUD",
            "title": f"{problem}: measured {quantity}",
        })  # fmt: skip
        axis = ("axis", np.arange(d), "coordinate", "index", "CHANNEL")
        _write_main(c.create_group("Channel_001"), "coordinates", table["x"], [point, axis], {
            **common, "quantity": "coordinates", "units": cunits[0] if len(set(cunits)) == 1
            else "mixed", "data_type": "POINT_CLOUD", "title": f"{problem}: measured points",
        })  # fmt: skip
        g = f.create_group(_TABLES)
        g.attrs.update(settings=metadata["settings"], config=metadata["config"])
        text = h5py.string_dtype()
        for name, cols in (("measurements", table), ("failures", _failure_table(records, d))):
            t = g.create_group(name)
            for k, v in cols.items():
                t.create_dataset(k, data=v, dtype=text if v.dtype == object else v.dtype)
        lines = "\n".join(json.dumps(r, sort_keys=True, allow_nan=False) for r in records)
        g.create_dataset("records", data=np.frombuffer(lines.encode(), np.uint8),
                         fletcher32=True, chunks=True)  # fmt: skip
    os.replace(tmp, path)
    return path


def describe_config(config: Any) -> dict:
    """A JSON description of a campaign config: surrogate, rules (name and bound keywords),
    penalties, selector, ``q``, ``num_draws``."""

    def rule(fn) -> dict:
        base = getattr(fn, "func", fn)
        kw = {k: _plain(v) for k, v in getattr(fn, "keywords", {}).items()}
        return {"name": getattr(base, "__name__", repr(base)), **({"kwargs": kw} if kw else {})}

    policy = config.policy
    return {
        "surrogate": type(config.surrogate).__name__,
        "rules": [rule(f) for f in policy.rules],
        "penalties": [type(p).__name__ for p in policy.penalties],
        "allow_repeats": bool(policy.allow_repeats),
        "selector": type(config.selector).__name__,
        "q": int(config.q),
        "num_draws": int(config.num_draws),
    }


def _plain(v: Any) -> Any:
    a = np.asarray(v)
    return a.tolist() if a.dtype.kind in "biuf" else str(v)


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def read_nsid_journal(path: str | os.PathLike) -> NSIDJournal:
    """Read an exported journal back (see :func:`export_nsid`) and check it.

    Raises:
        ValueError: not a jaxscope journal export, or its records and its NSID datasets
            disagree (a value or a coordinate edited in one of them; the point is named).
        JournalError: the records are not numbered 0, 1, 2, … (lines lost or reordered).
    """
    import h5py

    path = os.fspath(path)
    if not os.path.isfile(path) or not h5py.is_hdf5(path):
        raise ValueError(f"{path!r} is not an HDF5 file")
    with h5py.File(path, "r") as f:
        fmt = _text(f.attrs.get("jaxscope_format", ""))
        if fmt != FORMAT or _RECORDS not in f:
            raise ValueError(f"{path!r} is not a jaxscope journal export (format {fmt!r})")
        version = int(f.attrs["jaxscope_format_version"])
        if version > FORMAT_VERSION:
            raise ValueError(f"{path!r} has format version {version}; this reader knows "
                             f"{FORMAT_VERSION}")  # fmt: skip
        text = f[_RECORDS][()].tobytes().decode()
        records = [json.loads(line) for line in text.split("\n")]
        y = f[f"{MEASUREMENT}/measurement"][()]
        X = f[f"{COORDINATES}/coordinates"][()]
        g = f[_TABLES]
        settings = json.loads(_text(g.attrs["settings"]))
        config = json.loads(_text(g.attrs.get("config", "{}")))
    for i, r in enumerate(records):
        if r.get("seq") != i:
            raise JournalError(f"{path}: record {i} has seq {r.get('seq')}, expected {i}")
    table = measurement_table(records)
    for name, mine, theirs in (("value", table["y"], y), ("coordinates", table["x"], X)):
        if mine.shape != theirs.shape:
            raise ValueError(f"{path}: {len(mine)} measurements in the journal records, "
                             f"{len(theirs)} in the NSID {name} dataset")  # fmt: skip
        diff = np.flatnonzero((mine != theirs).reshape(len(mine), -1).any(1))
        if diff.size:
            k = int(diff[0])
            raise ValueError(
                f"{path}: the {name} of measurement {table['id'][k]} (point {k}) differs "
                f"between the journal records ({mine[k].tolist()}) and the NSID dataset "
                f"({theirs[k].tolist()})"
            )
    return NSIDJournal(records, settings, config, table)


def import_nsid(path: str | os.PathLike, directory: str | os.PathLike) -> Path:
    """Write the records of an exported journal into ``directory/journal.jsonl`` (a run folder
    a :class:`~jaxscope.host.HostRunner` resumes; :meth:`~jaxscope.host.Agent.resume` takes the
    file). The lines are the exported journal's, byte for byte.

    Raises:
        FileExistsError: the folder already holds a non-empty journal.
    """
    got = read_nsid_journal(path)
    target = Path(directory) / "journal.jsonl"
    if target.exists() and target.stat().st_size:
        raise FileExistsError(f"{os.fspath(target)!r} already holds a journal")
    with Journal(target, fsync=False) as j:
        for r in got.records:
            j.append(r["kind"], **{k: v for k, v in r.items() if k not in ("kind", "seq")})
    return target
