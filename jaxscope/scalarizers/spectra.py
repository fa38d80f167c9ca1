r"""Spectrum scalarizers: summed (or integrated) intensity in an energy window, the ratio of two
windows, and the energy of the peak in a window.

A spectrum is ``e`` ``(n,)`` energies in ascending order (any spacing) and ``s`` ``(..., n)``
intensities (an EELS or a Raman spectrum, a spectrum image's pixels along the leading axes). A
window is ``lo <= e <= hi`` (both ends included); ``lo`` and ``hi`` may be traced values. These
are the scalarizers of the plasmonic-EELS and spectral-imaging campaigns (Roccapriore, Kalinin,
Ziatdinov, "Physics discovery in nanoplasmonic systems via autonomous experiments in scanning
transmission electron microscopy", Adv. Sci. 9, 2203422 (2022): a peak's intensity, ratio or
energy as the property a deep-kernel campaign learns from the local structure).

Every function is pure JAX (jit, vmap, grad with respect to ``s``). Bad shapes, and a window with
``lo > hi`` given as plain numbers, raise ``ValueError`` at trace time.

Example:
    >>> e = jnp.linspace(0.0, 4.0, 401)
    >>> s = jnp.exp(-0.5 * ((e - 1.2345) / 0.05) ** 2)
    >>> window_sum(e, s, 1.0, 1.5), peak_energy(e, s, 1.0, 1.5)    # peak_energy ≈ 1.2345
"""

from __future__ import annotations

import numbers

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

Window = tuple[ArrayLike, ArrayLike] | ArrayLike  # (lo, hi); an array of shape (2,)


def _check_spectrum(name: str, e, s):
    e, s = jnp.asarray(e), jnp.asarray(s)
    if e.ndim != 1 or s.ndim < 1 or s.shape[-1] != e.shape[0]:
        raise ValueError(
            f"{name}: e must be (n,) and s (..., n) on the same energies, got shapes {e.shape} "
            f"and {s.shape}"
        )
    return e, s


def _check_window(name: str, lo, hi):
    plain = (numbers.Real, np.ndarray, np.generic)
    if isinstance(lo, plain) and isinstance(hi, plain):
        if np.ndim(lo) or np.ndim(hi):
            raise ValueError(f"{name}: lo and hi must be scalars, got shapes "
                             f"{np.shape(lo)} and {np.shape(hi)}")  # fmt: skip
        if not (float(lo) <= float(hi)):
            raise ValueError(f"{name}: window needs lo <= hi (and no NaN), got ({lo}, {hi})")
    elif jnp.ndim(lo) or jnp.ndim(hi):
        raise ValueError(
            f"{name}: lo and hi must be scalars, got shapes {jnp.shape(lo)} and {jnp.shape(hi)}"
        )
    return lo, hi


def _unpack(name: str, win):
    if isinstance(win, tuple | list):
        if len(win) != 2:
            raise ValueError(f"{name}: a window is a (lo, hi) pair, got {len(win)} values")
        return _check_window(name, win[0], win[1])
    if jnp.shape(win) != (2,):
        raise ValueError(f"{name}: a window is a (lo, hi) pair, got shape {jnp.shape(win)}")
    if isinstance(win, np.ndarray):
        return _check_window(name, win[0], win[1])
    return win[0], win[1]


def _in_window(e, lo, hi):
    return (e >= lo) & (e <= hi)


def window_sum(
    e: Float[Array, " n"], s: Float[Array, "*batch n"], lo: ArrayLike, hi: ArrayLike
) -> Float[Array, "*batch"]:
    r"""Summed intensity in the window: :math:`\sum_{k:\ lo \le e_k \le hi} s_k`.

    The "summed intensity in an energy window" of the issue; it counts samples, so it depends on
    the sampling density (use :func:`window_integral` for an integral in ``e · s`` units). An
    empty window sums to 0.

    Args:
        e: ``(n,)`` energies (ascending).
        s: ``(..., n)`` intensities.
        lo, hi: window bounds (``lo <= hi``).
    """
    e, s = _check_spectrum("window_sum", e, s)
    lo, hi = _check_window("window_sum", lo, hi)
    return jnp.sum(jnp.where(_in_window(e, lo, hi), s, 0.0), axis=-1)


def window_integral(
    e: Float[Array, " n"], s: Float[Array, "*batch n"], lo: ArrayLike, hi: ArrayLike
) -> Float[Array, "*batch"]:
    r"""Trapezoid-rule integral over the samples in the window,
    :math:`\sum_k \tfrac12 (s_k + s_{k+1})(e_{k+1} - e_k)` over the intervals whose two ends lie
    in ``[lo, hi]`` (``np.trapezoid(s[w], e[w])`` for the window's samples ``w``; nothing is
    interpolated at the window's edges). Fewer than two samples in the window integrate to 0.

    Args:
        e: ``(n,)`` energies (ascending).
        s: ``(..., n)`` intensities.
        lo, hi: window bounds (``lo <= hi``).
    """
    e, s = _check_spectrum("window_integral", e, s)
    lo, hi = _check_window("window_integral", lo, hi)
    inside = _in_window(e, lo, hi)
    both = inside[1:] & inside[:-1]
    trap = 0.5 * (s[..., 1:] + s[..., :-1]) * (e[1:] - e[:-1])
    return jnp.sum(jnp.where(both, trap, 0.0), axis=-1)


def peak_ratio(
    e: Float[Array, " n"],
    s: Float[Array, "*batch n"],
    win_a: Window,
    win_b: Window,
    *,
    rel_floor: float = 1e-6,
) -> Float[Array, "*batch"]:
    r"""Ratio of the summed intensities of two windows, :math:`S_a / S_b` (:func:`window_sum`).

    The denominator is guarded, not left to give ``inf`` or ``NaN``: where
    :math:`|S_b| < f = \epsilon\,(|S_a| + |S_b|)` (``ε = rel_floor``) it is replaced by
    :math:`\pm f` (its own sign, ``+`` for zero). So the ratio is always finite, bounded by
    :math:`1/\epsilon` in magnitude (``1e6`` by default: a value that large means "no signal in
    window b", not a measurement), unchanged by a common scale of ``s`` (both sums are divided
    by the larger one first), :math:`S_a/S_b` to rounding whenever
    :math:`|S_b| \ge \epsilon\,(|S_a| + |S_b|)`, and 0 when both windows are empty; its
    gradient is finite everywhere.

    Args:
        e: ``(n,)`` energies (ascending).
        s: ``(..., n)`` intensities.
        win_a, win_b: ``(lo, hi)`` windows of the numerator and the denominator.
        rel_floor: ``ε`` above, the smallest ``|S_b / S_a|`` taken at face value.
    """
    e, s = _check_spectrum("peak_ratio", e, s)
    a = window_sum(e, s, *_unpack("peak_ratio (win_a)", win_a))
    b = window_sum(e, s, *_unpack("peak_ratio (win_b)", win_b))
    # the ratio is scale invariant: divide both by the larger magnitude first, so no square of a
    # tiny sum under- or overflows in the gradient
    m = jnp.maximum(jnp.abs(a), jnp.abs(b))
    m = jnp.where(m > 0, m, 1.0)
    a, b = a / m, b / m
    floor = rel_floor * jnp.maximum(jnp.abs(a) + jnp.abs(b), 1.0)
    b_safe = jnp.where(jnp.abs(b) >= floor, b, jnp.where(b < 0, -floor, floor))
    return a / b_safe


def _peak_1d(e, s, inside):
    n = e.shape[0]
    k = jnp.argmax(jnp.where(inside, s, -jnp.inf))
    km, kp = jnp.maximum(k - 1, 0), jnp.minimum(k + 1, n - 1)
    x0, x1, x2 = e[km], e[k], e[kp]
    y0, y1, y2 = s[km], s[k], s[kp]
    a, b = x1 - x0, x1 - x2
    num = a * a * (y1 - y2) - b * b * (y1 - y0)
    den = a * (y1 - y2) - b * (y1 - y0)
    # refine only with both neighbours in the window and a true (concave) vertex
    ok = (k > 0) & (k < n - 1) & inside[km] & inside[kp] & (den > 0)
    x = jnp.clip(x1 - 0.5 * num / jnp.where(ok, den, 1.0), x0, x2)
    return jnp.where(jnp.any(inside), jnp.where(ok, x, x1), jnp.nan)


def peak_energy(
    e: Float[Array, " n"], s: Float[Array, "*batch n"], lo: ArrayLike, hi: ArrayLike
) -> Float[Array, "*batch"]:
    r"""Energy of the maximum of ``s`` in the window, refined by a 3-point parabola.

    With ``k`` the sample of largest intensity in ``[lo, hi]``, the parabola through
    :math:`(e_{k-1}, s_{k-1}), (e_k, s_k), (e_{k+1}, s_{k+1})` has its vertex at

    .. math:: e^* = e_k - \frac12\,
              \frac{(e_k - e_{k-1})^2 (s_k - s_{k+1}) - (e_k - e_{k+1})^2 (s_k - s_{k-1})}
                   {(e_k - e_{k-1})(s_k - s_{k+1}) - (e_k - e_{k+1})(s_k - s_{k-1})}

    (any spacing; for equal steps ``h``:
    :math:`e_k + \tfrac h2 (s_{k-1} - s_{k+1})/(s_{k-1} - 2s_k + s_{k+1})`), clipped to
    :math:`[e_{k-1}, e_{k+1}]`. Where a neighbour is outside the window or the array, or the
    three samples are not concave, the sample energy :math:`e_k` itself is returned; an empty
    window gives ``NaN``. A peak whose centre lies between samples is recovered to a small
    fraction of the spacing when it spans several samples (a parabola is recovered exactly).

    Args:
        e: ``(n,)`` energies (ascending).
        s: ``(..., n)`` intensities.
        lo, hi: window bounds (``lo <= hi``).
    """
    e, s = _check_spectrum("peak_energy", e, s)
    lo, hi = _check_window("peak_energy", lo, hi)
    inside = _in_window(e, lo, hi)
    return jnp.vectorize(lambda row: _peak_1d(e, row, inside), signature="(n)->()")(s)
