"""Safe wire encoding of arrays for the networked microscope (no pickle, ever).

An array travels as a plain dict of strings and integers, ``{"dtype", "shape", "b64"}``: the
dtype's name (one of :data:`DTYPES`), the shape and the base64 of its little-endian C-order
bytes, so any of Pyro5's safe serializers (serpent, json, msgpack) carries it bit-exactly and
decoding can only ever produce a numeric array of the declared size.

Example:
    >>> a = np.arange(6, dtype=np.float32).reshape(2, 3)
    >>> np.array_equal(decode_array(encode_array(a)), a)
    True
"""

from __future__ import annotations

import base64
import math

import numpy as np

DTYPES = ("float32", "float64", "int32", "int64", "uint32", "bool")
MAX_ELEMENTS = 1 << 26  # refuse anything larger before allocating it


def encode_array(a: np.ndarray) -> dict:
    """``{"dtype", "shape", "b64"}`` of a numeric array (little-endian, C order)."""
    a = np.asarray(a)
    if a.dtype.name not in DTYPES:
        raise TypeError(f"cannot send an array of dtype {a.dtype}; allowed: {DTYPES}")
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return {"dtype": a.dtype.name, "shape": list(a.shape),
            "b64": base64.b64encode(a.tobytes()).decode("ascii")}  # fmt: skip


def decode_array(d: dict) -> np.ndarray:
    """The array of :func:`encode_array`'s dict; ``ValueError`` for anything malformed."""
    if not isinstance(d, dict) or set(d) != {"dtype", "shape", "b64"}:
        raise ValueError("an array must be a dict with exactly the keys dtype, shape, b64")
    if d["dtype"] not in DTYPES:
        raise ValueError(f"array dtype {d['dtype']!r} is not allowed; allowed: {DTYPES}")
    shape = d["shape"]
    if not isinstance(shape, list | tuple) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise ValueError(f"array shape must be a list of non-negative integers, got {shape!r}")
    n = math.prod(shape)
    if n > MAX_ELEMENTS:
        raise ValueError(f"array of {n} elements exceeds the limit {MAX_ELEMENTS}")
    if not isinstance(d["b64"], str):
        raise ValueError("array data must be a base64 string")
    raw = base64.b64decode(d["b64"].encode("ascii"), validate=True)
    dtype = np.dtype(d["dtype"]).newbyteorder("<")
    if len(raw) != n * dtype.itemsize:
        raise ValueError(f"array data has {len(raw)} bytes, expected {n * dtype.itemsize} "
                         f"for {d['dtype']} {list(shape)}")  # fmt: skip
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
