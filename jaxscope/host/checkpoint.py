"""Checkpoints of campaign states with orbax (``CheckpointManager`` + ``StandardSave``).

A state pytree (an ``eqx.Module`` / NamedTuple of arrays, typed PRNG keys included) is saved as a
flat dict of its leaves, ``{"leaf_0000": ..., ...}``, next to a small JSON item (step, metadata).
Restoring takes a *template* state of the same structure (e.g. a fresh ``init`` of the same
config): its tree structure and dtypes rebuild the exact object, typed keys are re-wrapped with the
template's key implementation. Saved and restored arrays are bit-identical.

Saves are synchronous and atomic (orbax writes a temporary directory and renames it on commit), so
a campaign killed during a save restores the previous complete checkpoint; temporary directories
are cleaned up when the manager opens.

Example:
    >>> with StateCheckpointer("run/checkpoints", max_to_keep=2) as ck:
    ...     ck.save(3, state, meta={"journal_seq": 12})
    ...     step, restored, meta = ck.restore(template=state)
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


def _is_key(leaf: Any) -> bool:
    return isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _flatten(state: Any) -> dict[str, Any]:
    leaves = jax.tree_util.tree_leaves(state)
    out = {}
    for i, leaf in enumerate(leaves):
        if _is_key(leaf):
            leaf = jax.random.key_data(leaf)
        out[f"leaf_{i:04d}"] = np.asarray(leaf)
    return out


def _signature(state: Any) -> list[list]:
    """``[[shape, dtype], ...]`` of the saved leaves (the check that a template fits)."""
    return [[list(a.shape), str(a.dtype)] for a in _flatten(state).values()]


def _unflatten(flat: dict[str, Any], template: Any) -> Any:
    leaves, treedef = jax.tree_util.tree_flatten(template)
    new = []
    for i, tmpl in enumerate(leaves):
        arr = flat[f"leaf_{i:04d}"]
        if _is_key(tmpl):
            impl = jax.random.key_impl(tmpl)
            new.append(jax.random.wrap_key_data(jax.numpy.asarray(arr), impl=impl))
            continue
        new.append(jax.numpy.asarray(arr, dtype=getattr(tmpl, "dtype", None)))
    return jax.tree_util.tree_unflatten(treedef, new)


class StateCheckpointer:
    """Save / restore a campaign state pytree at integer steps in ``directory`` (orbax)."""

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int | None = 3):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            enable_async_checkpointing=False,
            cleanup_tmp_directories=True,
            create=True,
        )
        self.directory = os.path.abspath(os.fspath(directory))
        self._mgr = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, state: Any, meta: dict | None = None) -> None:
        """Write ``state`` (and a JSON ``meta`` dict) as checkpoint ``step``, synchronously."""
        if int(step) in self._mgr.all_steps():  # overwrite: the newer state wins
            self._mgr.delete(int(step))
        self._mgr.save(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_flatten(state)),
                meta=ocp.args.JsonSave({"user": dict(meta or {}), "leaves": _signature(state)}),
            ),
            force=True,
        )
        self._mgr.wait_until_finished()

    def latest_step(self) -> int | None:
        return self._mgr.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._mgr.all_steps())

    def restore(self, template: Any, step: int | None = None) -> tuple[int, Any, dict]:
        """``(step, state, meta)`` of checkpoint ``step`` (default: the latest).

        Raises:
            FileNotFoundError: no checkpoint exists.
        """
        step = self.latest_step() if step is None else int(step)
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        meta = self._mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        saved, want = meta["leaves"], _signature(template)
        if len(saved) != len(want):
            raise ValueError(
                f"checkpoint {step} holds {len(saved)} arrays but the template state has "
                f"{len(want)}: a different campaign configuration?"
            )
        for i, (a, b) in enumerate(zip(saved, want, strict=True)):
            if a != b:
                raise ValueError(
                    f"checkpoint array {i} is {a[1]}{a[0]}, the template's {b[1]}{b[0]}"
                )
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _flatten(template))
        out = self._mgr.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        )
        return step, _unflatten(dict(out["state"]), template), dict(meta["user"])

    def close(self) -> None:
        self._mgr.close()

    def __enter__(self) -> StateCheckpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
