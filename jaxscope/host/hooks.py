"""Human-in-the-loop hooks of the host runner: what a hook sees, and what it may do.

A hook is ``hook(ctx: HookContext)``, called after every decision; it may veto proposed points,
add points to measure now, switch the acquisition rule, or stop. It gets data (the state, the
decision, the journal so far), never the runner.

Example:
    >>> def veto_edges(ctx):
    ...     ctx.veto([r for r, x in enumerate(ctx.x) if x.min() < 0.05])
"""

from __future__ import annotations

from collections.abc import Sequence

from .events import match_candidates


class HookContext:
    """What a hook sees after a decision, and what it may do.

    Hooks receive data, never the runner. Attributes: ``step``, ``attempt`` (0 for a step's
    first decision; any action makes the step decide again with ``attempt + 1``, so a hook that
    adds points should act at ``attempt == 0`` only), ``state``, ``decision``, the proposed rows
    ``index``, ``x``, ``acq`` (queued points first), ``candidates``, ``mask`` (what the host
    still allows) and ``records`` (the journal so far). Actions are journaled and applied after
    all hooks have run.
    """

    def __init__(self, *, state, decision, index, x, acq, attempt, candidates, records, mask):
        self.state, self.decision, self.attempt = state, decision, attempt
        self.step = int(state.step)
        self.index, self.x, self.acq = index, x, acq  # proposed rows (forced points first)
        self.candidates = candidates
        self.records = records  # the journal so far (read-only view)
        self.mask = mask  # candidates the host still allows (vetoed and failed ones are False)
        self.actions: list[tuple] = []

    def veto(self, rows: Sequence[int] | None = None, reason: str = "") -> None:
        """Refuse proposed rows (default all): their candidates are excluded for good."""
        rows = range(len(self.index)) if rows is None else rows
        self.actions += [("veto", int(self.index[r]), reason) for r in rows]

    def add_points(self, X) -> None:
        """Measure these candidate points next (before the model's own choices)."""
        for i in match_candidates(self.candidates, X):
            self.actions.append(("add", int(i)))

    def set_acquisition(self, acquisition: int | str) -> None:
        """Switch to ``config.acquisitions[i]`` or to an acquisition by name."""
        self.actions.append(("acquisition", acquisition))

    def stop(self, reason: str = "") -> None:
        self.actions.append(("stop", reason))
