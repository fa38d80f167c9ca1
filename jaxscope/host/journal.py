"""Append-only, fsync'ed campaign journal (JSON lines).

One line per event; a line is durable (``flush`` + ``os.fsync``) before :meth:`Journal.append`
returns, so a campaign killed at any instant keeps every measurement whose ``append`` returned.
The event kinds are :data:`KINDS` (``start``, ``request``, ``measurement``, ``failure``,
``veto``, ``add``, ``acquisition``, ``commit``, ``stop``, ``note``); their fields and meanings,
one schema for both host drivers (the runner and the agent), are documented once, in the table of
:mod:`jaxscope.host.events`.

Every line carries ``seq`` (0, 1, 2, … in file order) and ``crc`` (CRC-32 of the line's JSON
without ``crc``), so a torn or edited line is detected. A line torn by a kill in the middle of a
write (no trailing newline) was never acknowledged; :func:`read_journal` ignores it and
:class:`Journal` cuts it off before appending, the only time the file is ever shortened.

Floats are written with Python's shortest round-trip ``repr``: a float32 or float64 value read
back is bit-identical to the value written.

Example:
    >>> with Journal("run/journal.jsonl") as j:
    ...     j.append("measurement", step=0, id="s0-0", x=[0.1, 0.2], y=1.5)
    >>> [r["y"] for r in read_journal("run/journal.jsonl") if r["kind"] == "measurement"]
    [1.5]
"""

from __future__ import annotations

import json
import math
import os
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

KINDS = (
    "start",
    "request",
    "measurement",
    "failure",
    "veto",
    "add",
    "acquisition",
    "commit",
    "stop",
    "note",
)


class JournalError(ValueError):
    """A journal line is corrupt (bad JSON, bad checksum, out-of-order sequence number)."""


def _plain(value: Any) -> Any:
    """NumPy / JAX scalars and arrays -> JSON-able Python values (exactly representable)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__array__") and not isinstance(value, str | bytes):
        arr = np.asarray(value)
        return arr.tolist() if arr.ndim else arr.item()
    return value


def _check_finite(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"journal field {where!r} is {value}: NaN/inf is not a measurement")
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, f"{where}[{i}]")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{where}.{k}")


def _encode(record: dict) -> str:
    body = json.dumps(record, sort_keys=True, allow_nan=False, separators=(",", ":"))
    crc = zlib.crc32(body.encode())
    return body[:-1] + f',"crc":{crc}}}'


def _decode(line: str, lineno: int) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise JournalError(f"journal line {lineno} is not valid JSON: {err}") from err
    crc = record.pop("crc", None)
    body = json.dumps(record, sort_keys=True, allow_nan=False, separators=(",", ":"))
    if crc != zlib.crc32(body.encode()):
        raise JournalError(f"journal line {lineno} fails its checksum (edited or corrupt)")
    return record


def _lines(path: Path) -> tuple[list[str], int]:
    """Complete lines of the file and the byte length they span (a torn tail is excluded)."""
    data = path.read_bytes() if path.exists() else b""
    end = data.rfind(b"\n") + 1
    return data[:end].decode().splitlines(), end


def read_journal(path: str | os.PathLike) -> list[dict]:
    """All complete records of a journal, in order (a torn last line is ignored).

    Raises:
        JournalError: a complete line is corrupt or ``seq`` is not 0, 1, 2, ….
    """
    lines, _ = _lines(Path(path))
    records = []
    for i, line in enumerate(lines):
        record = _decode(line, i + 1)
        if record.get("seq") != i:
            raise JournalError(f"journal line {i + 1} has seq {record.get('seq')}, expected {i}")
        records.append(record)
    return records


def iter_kind(records: list[dict], *kinds: str) -> Iterator[dict]:
    """The records of the given kinds, in order."""
    return (r for r in records if r["kind"] in kinds)


class Journal:
    """Append-only JSON-lines journal; each :meth:`append` is on disk when it returns.

    Opening an existing journal validates it, cuts off a torn last line (a write interrupted by a
    kill, never acknowledged), and continues its sequence numbers.
    """

    def __init__(self, path: str | os.PathLike, *, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records = read_journal(self.path)
        _, end = _lines(self.path)
        new = not self.path.exists()
        self._fh = open(self.path, "ab")  # noqa: SIM115 (kept open for the journal's life)
        if self._fh.tell() != end:  # torn tail from a kill mid-write
            self._fh.truncate(end)
            self._fh.seek(end)
        self._fsync = fsync
        self.fsync_count = 0
        if new:
            self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def __len__(self) -> int:
        return len(self.records)

    def append(self, kind: str, **fields: Any) -> dict:
        """Write one record and make it durable; returns the record as written.

        ``time`` (Unix seconds) is added when not given. NaN/inf values are refused with a
        ``ValueError`` (a failed measurement is a ``failure`` record, not a NaN).
        """
        if kind not in KINDS:
            raise ValueError(f"unknown journal record kind {kind!r}; one of {KINDS}")
        if self._fh.closed:
            raise ValueError(f"journal {self.path} is closed")
        record = {k: _plain(v) for k, v in fields.items()}
        _check_finite(record, kind)
        record.setdefault("time", time.time())
        record["kind"] = kind
        record["seq"] = len(self.records)
        self._fh.write((_encode(record) + "\n").encode())
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())
            self.fsync_count += 1
        self.records.append(record)
        return record

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __del__(self) -> None:  # every record is already on disk: closing loses nothing
        fh = getattr(self, "_fh", None)
        if fh is not None and not fh.closed:
            fh.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
