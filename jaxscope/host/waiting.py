r"""How the host drivers call an instrument: request ids passed on, transient outages waited out.

A lost connection or a restarting server is not a failed measurement. An instrument signals
it by raising :class:`~jaxscope.instruments.InstrumentUnavailable`; :func:`measure_waiting`
then calls again after a bounded exponential backoff, :math:`d_k = \min(d_0 f^k, d_\max)`,
with the same points and the same request ids, until it answers or ``max_wait`` seconds (wall
clock, from the first refusal) have passed, and then re-raises. Any other exception is the
caller's: a failed measurement at those points.

Instruments that declare ``accepts_ids = True`` (e.g.
:class:`~jaxscope.instruments.MicroscopeInstrument`) get the journal's request ids,
``measure(X, ids=[...])``, so a repeated request can return the same measurement; every other
instrument keeps ``measure(X)``.

Example:
    >>> y = measure_waiting(instrument, X, ["m000007"], WaitPolicy(max_wait=60.0))
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np

from ..instruments import InstrumentUnavailable


@dataclasses.dataclass(frozen=True)
class WaitPolicy:
    """Backoff while an instrument is unavailable.

    Attributes:
        max_wait: seconds an outage may last before :func:`measure_waiting` gives up (>= 0).
        first: first delay (s); ``factor``: growth per try (>= 1); ``longest``: delay cap (s).
    """

    max_wait: float = 600.0
    first: float = 0.05
    factor: float = 2.0
    longest: float = 5.0

    def __post_init__(self):
        if not (self.max_wait >= 0 and self.first > 0 and self.factor >= 1 and self.longest > 0):
            raise ValueError(f"invalid wait policy {self}: need max_wait >= 0, first > 0, "
                             "factor >= 1, longest > 0")  # fmt: skip

    def delay(self, k: int) -> float:
        """The ``k``-th delay (0-based)."""
        return min(self.first * self.factor**k, self.longest)


def measure_once(instrument, X: np.ndarray, ids: Sequence[str]) -> np.ndarray:
    """``instrument.measure(X, ids=ids)`` if it accepts ids, else ``instrument.measure(X)``."""
    if getattr(instrument, "accepts_ids", False):
        return instrument.measure(X, ids=list(ids))
    return instrument.measure(X)


def measure_waiting(
    instrument,
    X: np.ndarray,
    ids: Sequence[str],
    policy: WaitPolicy,
    on_outage: Callable[[Exception], None] | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> np.ndarray:
    """Measure, waiting out :class:`~jaxscope.instruments.InstrumentUnavailable` (module doc).

    ``on_outage(err)`` is called once, at the first refusal.

    Raises:
        InstrumentUnavailable: still unavailable after ``policy.max_wait`` seconds.
    """
    start, k = None, 0
    while True:
        try:
            return measure_once(instrument, X, ids)
        except InstrumentUnavailable as err:
            now = clock()
            if start is None:
                start = now
                if on_outage is not None:
                    on_outage(err)
            left = policy.max_wait - (now - start)
            if left <= 0:
                raise InstrumentUnavailable(
                    f"instrument unavailable for {now - start:.1f} s (max_wait "
                    f"{policy.max_wait:g} s): {err}"
                ) from err
            sleep(min(policy.delay(k), left))
            k += 1
