r"""A labelled patch dataset for the VAEs: small lattice windows centred on a site whose class,
the lattice's angle and the sub-pixel shift are known.

Sample ``k`` is a ``window × window`` image of :mod:`~jaxscope.vae.lattice`'s model (Gaussian
columns integrated over pixels, Poisson dose noise, Gaussian read noise) with an A site at
pixel ``(window//2, window//2) + shift[k]`` (the convention of
:func:`jaxscope.images.extract`), the lattice rotated by ``angle[k]`` and the centre site of
class ``classes[label[k]]`` (:data:`PATCH_CLASSES`): ``"pristine"``, ``"vacancy"`` (column
removed), ``"dopant"`` / ``"dark_dopant"`` (weight × ``dopant`` / ``dark_dopant``),
``"rotated"`` (the centre and its nearest neighbours turned by ``motif_angle``). Every other
site is pristine. Labels are balanced exactly (``n // len(classes)`` or one more of each),
in a random order.

The angle is identifiable only modulo ``2π / lattice.symmetry``: draw it in
``angle_range=(0, 2π / symmetry)`` or compare ``symmetry · angle`` on the circle.

Example:
    >>> P = lattice_patches(jax.random.key(0), honeycomb(), 6000, window=28, dose=300.0)
    >>> P.patches.shape, np.bincount(P.label)            # (6000, 28, 28), [1500] * 4
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .lattice import (
    ATOM,
    ROTATED,
    Lattice,
    add_noise,
    check_noise,
    lattice_sites,
    render,
    rotation,
    site_weights,
)

PATCH_CLASSES = ("pristine", "vacancy", "dopant", "dark_dopant", "rotated")
DEFAULT_PATCH_CLASSES = ("pristine", "vacancy", "dopant", "rotated")


class LatticePatches(NamedTuple):
    """Labelled patches centred on an A site (leading axis: sample).

    Attributes:
        patches: ``(n, w, w)`` noisy patches.
        clean: ``(n, w, w)`` noise-free patches.
        label: ``(n,)`` index into the ``classes`` the patches were drawn with.
        angle: ``(n,)`` lattice rotation (radians).
        shift: ``(n, 2)`` centre site minus pixel ``(w//2, w//2)``.
        positions: ``(n, K, 2)`` every site of the patch (the centre site is ``centre[k]``).
        site_class: ``(n, K)`` index into :data:`~jaxscope.vae.lattice.SITE_CLASSES`.
        sublattice: ``(n, K)`` basis index.
        weight: ``(n, K)`` integrated column intensity.
        centre: ``(n,)`` index of the centre site along ``K`` (the same for every sample;
            an array so that every field slices alike).
    """

    patches: Float[Array, "n w w"]
    clean: Float[Array, "n w w"]
    label: Int[Array, " n"]
    angle: Float[Array, " n"]
    shift: Float[Array, "n 2"]
    positions: Float[Array, "n K 2"]
    site_class: Int[Array, "n K"]
    sublattice: Int[Array, "n K"]
    weight: Float[Array, "n K"]
    centre: Int[Array, " n"]


def _one_patch(key, label, lattice, window, codes, angle_range, max_shift, params):
    sigma, _, _, background, dopant, dark_dopant, motif_angle = params
    base, sub = lattice_sites(lattice, window / math.sqrt(2.0) + 2.0)
    centre = int(np.argmin(np.linalg.norm(base, axis=1) + sub))  # the A site at the origin
    dtype = jnp.result_type(float)
    k_a, k_s = jax.random.split(key)
    angle = jax.random.uniform(k_a, (), dtype, angle_range[0], angle_range[1])
    shift = jax.random.uniform(k_s, (2,), dtype, -max_shift, max_shift)
    code = jnp.asarray(codes, jnp.int32)[label]
    base = jnp.asarray(base, dtype)
    near = jnp.linalg.norm(base, axis=1) <= 1.1 * lattice.neighbour
    turn = near & (code == ROTATED)
    base = jnp.where(turn[:, None], base @ rotation(motif_angle).T, base)
    o = window // 2
    pos = jnp.asarray([o, o], dtype) + shift + base @ rotation(angle).T
    cls = jnp.where(turn, ROTATED, ATOM).at[centre].set(code)
    sub = jnp.asarray(sub, jnp.int32)
    w = site_weights(lattice, sub, cls, dopant, dark_dopant, dtype)
    clean = render(pos, w, (window, window), sigma, background)
    return clean, angle, shift, pos, cls, sub, w


@jax.jit(static_argnames=("lattice", "n", "window", "codes", "dose_on"))
def _patches(key, lattice, n, window, codes, dose_on, angle_range, max_shift, params):
    k_l, k_p, k_n = jax.random.split(key, 3)
    label = jax.random.permutation(k_l, jnp.arange(n, dtype=jnp.int32) % len(codes))

    def one(args):
        k, lab = args
        return _one_patch(k, lab, lattice, window, codes, angle_range, max_shift, params)

    out = jax.lax.map(one, (jax.random.split(k_p, n), label), batch_size=min(n, 256))
    noisy = add_noise(k_n, out[0], params[1] if dose_on else None, params[2])  # whole stack
    return label, (noisy, *out)


def lattice_patches(
    key: PRNGKeyArray,
    lattice: Lattice,
    n: int,
    *,
    window: int = 28,
    classes: tuple[str, ...] = DEFAULT_PATCH_CLASSES,
    sigma: float = 0.9,
    dose: float | None = None,
    read_noise: float = 0.0,
    background: float = 0.0,
    dopant: float = 1.8,
    dark_dopant: float = 0.4,
    motif_angle: float = math.pi / 6,
    angle_range: tuple[float, float] = (0.0, 2 * math.pi),
    max_shift: float = 1.0,
) -> LatticePatches:
    r"""``n`` labelled patches of ``lattice`` (module docstring): class, angle and shift.

    Args:
        key: PRNG key; the data set is a deterministic function of it.
        lattice: :func:`~jaxscope.vae.lattice.honeycomb`, :func:`~.perovskite`, or any
            :class:`~jaxscope.vae.lattice.Lattice`.
        n: number of samples.
        window: patch side (pixels).
        classes: names from :data:`PATCH_CLASSES`; ``label`` indexes this tuple.
        sigma, dose, read_noise, background, dopant, dark_dopant, motif_angle: the image
            model of :func:`~jaxscope.vae.lattice.lattice_images`.
        angle_range: ``(lo, hi)``: angles are uniform on it (radians).
        max_shift: shifts are uniform on ``[-max_shift, max_shift]²`` (pixels).

    Returns:
        :class:`LatticePatches`.
    """
    if not isinstance(lattice, Lattice):
        raise TypeError(f"lattice must be a Lattice (honeycomb(), perovskite()); got {lattice!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int; got {n!r}")
    if not isinstance(window, int) or window < 4:
        raise ValueError(f"window must be an int >= 4; got {window!r}")
    classes = tuple(classes)
    unknown = [c for c in classes if c not in PATCH_CLASSES]
    if unknown or not classes or len(set(classes)) != len(classes):
        raise ValueError(
            f"classes must be distinct names from {PATCH_CLASSES}; got {classes} "
            f"(unknown: {unknown})"
        )
    check_noise(sigma, dose, read_noise, background, dopant, dark_dopant)
    lo, hi = (float(a) for a in angle_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"angle_range must be finite (lo, hi) with lo <= hi; got {angle_range}")
    if not isinstance(max_shift, int | float) or not 0 <= max_shift <= window / 4:
        raise ValueError(f"max_shift must be in [0, window/4 = {window / 4}]; got {max_shift!r}")
    codes = tuple(PATCH_CLASSES.index(c) for c in classes)  # = the site-class code
    params = (sigma, 1.0 if dose is None else dose, read_noise, background, dopant, dark_dopant,
              motif_angle)  # fmt: skip
    label, out = _patches(
        key, lattice, n, window, codes, dose is not None, (lo, hi), max_shift, params
    )
    base, sub = lattice_sites(lattice, window / math.sqrt(2.0) + 2.0)
    centre = int(np.argmin(np.linalg.norm(base, axis=1) + sub))
    return LatticePatches(out[0], out[1], label, *out[2:], jnp.full((n,), centre, jnp.int32))
