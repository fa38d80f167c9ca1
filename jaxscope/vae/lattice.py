r"""Synthetic atomic-resolution images and labelled patches: lattices, defects, dose noise.

A :class:`Lattice` is a 2-D Bravais lattice with a basis of atom columns (``(row, col)``
pixels): :func:`honeycomb` (graphene-like, two equal sublattices, nearest-neighbour distance
``a/√3``) and :func:`perovskite` (square, a bright A column at the cell corner and a weaker B
column at its centre). A site sits at

.. math:: \mathbf{p} = \mathbf{o} + \mathbf{s} + R(\theta)\,(i\,\mathbf{a}_1 + j\,\mathbf{a}_2
          + \mathbf{b}_k), \qquad R(\theta) = \begin{pmatrix}\cos\theta & -\sin\theta \\
          \sin\theta & \cos\theta\end{pmatrix}

acting on ``(row, col)`` vectors (``o`` the image or patch centre, ``s`` the shift label,
``θ`` the angle label): with rows running down the screen, a positive ``θ`` turns the lattice
counter-clockwise as displayed (the pose convention of :mod:`jaxscope.vae.grids`). Each site
has a class, :data:`SITE_CLASSES`: ``"atom"``, ``"vacancy"`` (weight 0, kept in the labels),
``"dopant"`` / ``"dark_dopant"`` (weight times ``dopant`` / ``dark_dopant``) and
``"rotated"`` (the centre and nearest neighbours of a motif turned by ``motif_angle``).

Rendering: a column of weight ``w`` at ``p`` is a Gaussian of width ``σ`` integrated over
each pixel (pixel ``(i, j)`` covers ``[i ± ½] × [j ± ½]``), so the clean image is

.. math:: I_{ij} = b + \sum_k w_k\,\Delta_i(p_{k,0})\,\Delta_j(p_{k,1}), \quad
          \Delta_i(r) = \Phi\big(\tfrac{i + 1/2 - r}{\sigma}\big)
          - \Phi\big(\tfrac{i - 1/2 - r}{\sigma}\big),

and a column integrates to its weight (all of it when it lies well inside). Noise:
``Poisson(dose · I) / dose`` (``dose``: expected counts per unit weight; mean ``I``,
variance ``I / dose``) plus ``N(0, read_noise²)``. Pure JAX, deterministic given the key,
two matrix products per image (separable Gaussians), one compilation per (lattice, ``n``,
shape, ``n_rotated``, dose or none): the numbers (dose, noise, rates, pose) are traced.

Two entry points: :func:`lattice_images` (whole images with many atoms and defects, for atom
finding; :func:`column_mask` gives the U-Net's per-pixel classes) and
:func:`~jaxscope.vae.lattice_patches.lattice_patches` (patches centred on an A site with a
class, angle and shift label, for the VAEs).

Example:
    >>> data = lattice_images(jax.random.key(0), honeycomb(), 4, shape=128, dose=200.0)
    >>> data.image.shape, data.positions.shape          # (4, 128, 128), (4, K, 2)
    >>> atoms = present_atoms(data, 0)                   # (n, 2) columns inside image 0
    >>> P = lattice_patches(jax.random.key(1), perovskite(), 6000, window=28)
    >>> P.patches.shape, P.label.shape, P.angle.shape    # (6000, 28, 28), (6000,), (6000,)
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

SITE_CLASSES = ("atom", "vacancy", "dopant", "dark_dopant", "rotated")
MASK_CLASSES = ("background", "atom", "vacancy", "dopant", "dark_dopant")
ATOM, VACANCY, DOPANT, DARK_DOPANT, ROTATED = range(5)


@dataclasses.dataclass(frozen=True)
class Lattice:
    """A lattice of atom columns (hashable: a static argument of the jitted generators).

    Attributes:
        name: a label.
        vectors: ``((row, col), (row, col))`` primitive vectors in pixels.
        basis: ``(row, col)`` offsets of the basis sites in pixels; site 0 is the A site
            that patches are centred on.
        weights: integrated intensity of each basis column.
        symmetry: rotational order of the A site's surroundings (angles are identifiable
            modulo ``2π / symmetry``).
        neighbour: nearest-neighbour distance from the A site (pixels).
    """

    name: str
    vectors: tuple[tuple[float, float], tuple[float, float]]
    basis: tuple[tuple[float, float], ...]
    weights: tuple[float, ...]
    symmetry: int
    neighbour: float

    def __post_init__(self):
        if len(self.basis) != len(self.weights) or not self.basis:
            raise ValueError("a lattice needs one weight per basis site (at least one site)")
        if any(w <= 0 for w in self.weights):
            raise ValueError(f"column weights must be positive; got {self.weights}")
        if abs(np.linalg.det(np.asarray(self.vectors))) < 1e-6:
            raise ValueError(f"lattice vectors {self.vectors} are parallel")


def honeycomb(a: float = 7.0, weights: tuple[float, float] = (1.0, 1.0)) -> Lattice:
    """Graphene-like honeycomb of lattice constant ``a`` pixels (bond ``a/√3``); unequal
    ``weights`` give an hBN-like lattice."""
    _positive("a", a)
    s3 = math.sqrt(3.0)
    return Lattice(
        "honeycomb",
        ((0.0, a), (a * s3 / 2, a / 2)),
        ((0.0, 0.0), (a * s3 / 6, a / 2)),
        tuple(float(w) for w in weights),
        3,
        a / s3,
    )


def perovskite(a: float = 8.0, weights: tuple[float, float] = (1.0, 0.4)) -> Lattice:
    """Perovskite-like square lattice (ABO₃ along [001], O columns left out): A columns of
    weight ``weights[0]`` at the corners, B columns of ``weights[1]`` at the centres."""
    _positive("a", a)
    return Lattice(
        "perovskite",
        ((0.0, a), (a, 0.0)),
        ((0.0, 0.0), (a / 2, a / 2)),
        tuple(float(w) for w in weights),
        4,
        a / math.sqrt(2.0),
    )


class LatticeImages(NamedTuple):
    """Whole images and their truth (leading axis: image).

    Attributes:
        image: ``(n, H, W)`` noisy images.
        clean: ``(n, H, W)`` noise-free images.
        positions: ``(n, K, 2)`` ``(row, col)`` of every site (inside the image or not).
        site_class: ``(n, K)`` index into :data:`SITE_CLASSES`.
        sublattice: ``(n, K)`` basis index of each site.
        weight: ``(n, K)`` integrated intensity of each column (0 for vacancies).
        inside: ``(n, K)`` the site's centre lies in the image (``0 ≤ p ≤ H-1, W-1``).
        angle: ``(n,)`` lattice rotation (radians).
        shift: ``(n, 2)`` lattice origin minus the image centre (pixels).
    """

    image: Float[Array, "n H W"]
    clean: Float[Array, "n H W"]
    positions: Float[Array, "n K 2"]
    site_class: Int[Array, "n K"]
    sublattice: Int[Array, "n K"]
    weight: Float[Array, "n K"]
    inside: Bool[Array, "n K"]
    angle: Float[Array, " n"]
    shift: Float[Array, "n 2"]


def _positive(name, value):
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")


def _probability(name, value):
    if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1]; got {value!r}")


def check_noise(sigma, dose, read_noise, background, dopant, dark_dopant) -> None:
    """Host-side checks of the image-model arguments (a ``ValueError`` naming the bad one)."""
    _positive("sigma", sigma)
    if dose is not None:
        _positive("dose", dose)
    for name, v in (("read_noise", read_noise), ("background", background)):
        if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite number >= 0; got {v!r}")
    _positive("dopant", dopant)
    _positive("dark_dopant", dark_dopant)


def lattice_sites(lattice: Lattice, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Every site within ``radius`` of the origin (and a few more), unrotated: NumPy ``(K, 2)``
    positions and ``(K,)`` basis indices (static shapes for the jitted generators)."""
    A = np.asarray(lattice.vectors, np.float64)
    height = abs(np.linalg.det(A)) / np.linalg.norm(A, axis=1).max()
    n = int(math.ceil(radius / height)) + 1
    ij = np.stack(np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij"), -1)
    cells = ij.reshape(-1, 2) @ A
    B = np.asarray(lattice.basis, np.float64)
    pos = (cells[:, None, :] + B[None]).reshape(-1, 2)
    sub = np.tile(np.arange(len(B)), len(cells))
    keep = np.linalg.norm(pos, axis=1) <= radius + np.linalg.norm(B, axis=1).max()
    return pos[keep], sub[keep]


def rotation(theta) -> Float[Array, "2 2"]:
    """The matrix ``R(θ)`` of the module docstring (acting on ``(row, col)`` columns)."""
    c, s = jnp.cos(theta), jnp.sin(theta)
    return jnp.stack([jnp.stack([c, -s]), jnp.stack([s, c])])


def _profile(r: Float[Array, " K"], n: int, sigma) -> Float[Array, "K n"]:
    """Pixel-integrated unit Gaussians: ``Δ_i(r_k)`` for pixels ``i = 0 … n-1``."""
    edges = jnp.arange(n + 1, dtype=r.dtype) - 0.5
    cdf = 0.5 * erf((edges[None, :] - r[:, None]) / (sigma * math.sqrt(2.0)))
    return cdf[:, 1:] - cdf[:, :-1]


def render(
    positions: Float[Array, "K 2"],
    weight: Float[Array, " K"],
    shape: tuple[int, int],
    sigma: float | Float[Array, ""] = 0.9,
    background: float | Float[Array, ""] = 0.0,
) -> Float[Array, "H W"]:
    r"""Clean image :math:`b + \sum_k w_k \Delta_i(p_{k,0})\Delta_j(p_{k,1})` (module
    docstring): pixel-integrated Gaussian columns, two matrix products.

    Example:
        >>> render(jnp.array([[3.0, 4.0]]), jnp.array([2.0]), (8, 8)).sum()   # ≈ 2.0
    """
    rows = _profile(positions[:, 0], shape[0], sigma)
    cols = _profile(positions[:, 1], shape[1], sigma)
    return background + (rows * weight[:, None]).T @ cols


def add_noise(key: PRNGKeyArray, clean: Float[Array, "*s"], dose, read_noise) -> Float[Array, "*s"]:
    r"""``Poisson(dose · clean) / dose + N(0, read_noise²)`` (no Poisson part when ``dose``
    is None): mean ``clean``, variance ``clean / dose + read_noise²``."""
    k_p, k_g = jax.random.split(key)
    out = clean
    if dose is not None:
        lam = dose * jnp.maximum(clean, 0.0)
        out = jax.random.poisson(k_p, lam, clean.shape).astype(clean.dtype) / dose
    return out + read_noise * jax.random.normal(k_g, clean.shape, clean.dtype)


def _assign(key, n_sites, p_vacancy, p_dopant, p_dark):
    u = jax.random.uniform(key, (n_sites,))
    cls = jnp.full((n_sites,), ATOM, jnp.int32)
    cls = jnp.where(u < p_vacancy + p_dopant + p_dark, DARK_DOPANT, cls)
    cls = jnp.where(u < p_vacancy + p_dopant, DOPANT, cls)
    return jnp.where(u < p_vacancy, VACANCY, cls)


def _rotate_motifs(pos, cls, centres, radius, motif_angle):
    """Rotate every site within ``radius`` of a motif centre about the nearest centre."""
    d = jnp.linalg.norm(pos[:, None, :] - centres[None], axis=-1)  # (K, M)
    near = jnp.argmin(d, axis=1)
    hit = jnp.min(d, axis=1) <= radius
    c = centres[near]
    moved = c + (pos - c) @ rotation(motif_angle).T
    pos = jnp.where(hit[:, None], moved, pos)
    return pos, jnp.where(hit & (cls == ATOM), ROTATED, cls)


def site_weights(lattice: Lattice, sub, cls, dopant, dark_dopant, dtype) -> Float[Array, " K"]:
    """Integrated intensity of each site: its basis weight times the class factor."""
    w = jnp.asarray(lattice.weights, dtype)[sub]
    factor = jnp.ones_like(w)
    factor = jnp.where(cls == DOPANT, dopant, factor)
    factor = jnp.where(cls == DARK_DOPANT, dark_dopant, factor)
    return jnp.where(cls == VACANCY, 0.0, w * factor)


def _one_image(key, lattice, shape, n_rotated, angle, shift, p, noise):
    sigma, _, _, background, dopant, dark_dopant, motif_angle = noise
    H, W = shape
    radius = 0.5 * math.hypot(H, W) + 2.0 * max(np.linalg.norm(lattice.vectors, axis=1)) + 3.0
    base, sub = lattice_sites(lattice, radius)
    k_a, k_s, k_c, k_m = jax.random.split(key, 4)
    dtype = jnp.result_type(float)
    angle = jnp.where(jnp.isnan(angle), jax.random.uniform(k_a, (), dtype, 0, 2 * math.pi), angle)
    cell = jnp.asarray(lattice.vectors, dtype)
    random_shift = (jax.random.uniform(k_s, (2,), dtype) - 0.5) @ cell
    shift = jnp.where(jnp.isnan(shift), random_shift, shift)
    centre = jnp.asarray([(H - 1) / 2, (W - 1) / 2], dtype)
    pos = centre + shift + jnp.asarray(base, dtype) @ rotation(angle).T
    cls = _assign(k_c, len(sub), *p)
    r_motif = 1.1 * lattice.neighbour
    if n_rotated:
        margin = r_motif + 1.0
        ok = (pos[:, 0] >= margin) & (pos[:, 0] <= H - 1 - margin)
        ok &= (pos[:, 1] >= margin) & (pos[:, 1] <= W - 1 - margin)
        pick = jax.random.choice(k_m, len(sub), (n_rotated,), replace=False, p=ok / ok.sum())
        pos, cls = _rotate_motifs(pos, cls, pos[pick], r_motif, motif_angle)
    sub = jnp.asarray(sub, jnp.int32)
    w = site_weights(lattice, sub, cls, dopant, dark_dopant, dtype)
    clean = render(pos, w, shape, sigma, background)
    inside = (pos[:, 0] >= 0) & (pos[:, 0] <= H - 1) & (pos[:, 1] >= 0) & (pos[:, 1] <= W - 1)
    return LatticeImages(clean, clean, pos, cls, sub, w, inside, angle, shift)


def _shape2(shape) -> tuple[int, int]:
    s = (shape, shape) if isinstance(shape, int) else tuple(shape)
    if len(s) != 2 or not all(isinstance(v, int | np.integer) and v >= 4 for v in s):
        raise ValueError(f"shape must be an int or (H, W) of ints >= 4; got {shape!r}")
    return int(s[0]), int(s[1])


def lattice_images(
    key: PRNGKeyArray,
    lattice: Lattice,
    n: int,
    *,
    shape: int | tuple[int, int] = 128,
    sigma: float = 0.9,
    dose: float | None = None,
    read_noise: float = 0.0,
    background: float = 0.0,
    p_vacancy: float = 0.02,
    p_dopant: float = 0.02,
    p_dark_dopant: float = 0.0,
    n_rotated: int = 0,
    dopant: float = 1.8,
    dark_dopant: float = 0.4,
    motif_angle: float = math.pi / 6,
    angle: float | None = None,
    shift: tuple[float, ...] | None = None,
) -> LatticeImages:
    r"""``n`` images of ``lattice`` at random orientations and offsets, with defects.

    Each site is independently a vacancy (``p_vacancy``), a dopant (``p_dopant``, weight ×
    ``dopant``) or a dark dopant (``p_dark_dopant``, × ``dark_dopant``); ``n_rotated`` motifs
    (a site and its nearest neighbours, within ``1.1 ×`` the neighbour distance) are rotated
    by ``motif_angle`` about their centre. ``angle`` (radians) and ``shift`` (pixels) fix the
    lattice's pose instead of drawing it (uniform angle, uniform offset over a unit cell).

    Args:
        key: PRNG key; the images are a deterministic function of it.
        lattice: :func:`honeycomb`, :func:`perovskite` or any :class:`Lattice`.
        n: number of images.
        shape: side or ``(H, W)`` in pixels.
        sigma: column width (pixels); dose, read_noise, background: noise model (module
            docstring).

    Returns:
        :class:`LatticeImages`.

    Example:
        >>> d = lattice_images(jax.random.key(0), perovskite(), 8, shape=64, dose=50.0)
        >>> d.image.shape, present_atoms(d, 0).shape          # (8, 64, 64), (m, 2)
    """
    if not isinstance(lattice, Lattice):
        raise TypeError(f"lattice must be a Lattice (honeycomb(), perovskite()); got {lattice!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int; got {n!r}")
    shape = _shape2(shape)
    check_noise(sigma, dose, read_noise, background, dopant, dark_dopant)
    p = (p_vacancy, p_dopant, p_dark_dopant)
    for name, v in zip(("p_vacancy", "p_dopant", "p_dark_dopant"), p, strict=True):
        _probability(name, v)
    if p_vacancy + p_dopant + p_dark_dopant > 1:
        raise ValueError("p_vacancy + p_dopant + p_dark_dopant must not exceed 1")
    if not isinstance(n_rotated, int) or n_rotated < 0:
        raise ValueError(f"n_rotated must be an int >= 0; got {n_rotated!r}")
    if shift is not None and (np.shape(shift) != (2,) or not np.all(np.isfinite(shift))):
        raise ValueError(f"shift must be a finite (row, col); got {shift!r}")
    if angle is not None and not math.isfinite(angle):
        raise ValueError(f"angle must be finite (radians); got {angle!r}")
    ang = jnp.asarray(math.nan if angle is None else angle, jnp.result_type(float))  # nan: draw
    sh = jnp.asarray((math.nan,) * 2 if shift is None else shift, jnp.result_type(float))
    noise = (sigma, 1.0 if dose is None else dose, read_noise, background, dopant, dark_dopant,
             motif_angle)  # fmt: skip
    return _images(key, lattice, n, shape, n_rotated, dose is not None, ang, sh, p, noise)


@jax.jit(static_argnames=("lattice", "n", "shape", "n_rotated", "dose_on"))
def _images(key, lattice, n, shape, n_rotated, dose_on, angle, shift, p, noise):
    k_img, k_noise = jax.random.split(key)
    one = lambda k: _one_image(k, lattice, shape, n_rotated, angle, shift, p, noise)
    out = jax.lax.map(one, jax.random.split(k_img, n), batch_size=min(n, 8))
    # the noise of the whole stack in one call: a Poisson sampler inside the map's vmap
    # took most of the compile time
    image = add_noise(k_noise, out.clean, noise[1] if dose_on else None, noise[2])
    return out._replace(image=image)


def present_atoms(data: LatticeImages, index: int = 0, margin: float = 0.0) -> np.ndarray:
    """Host-side: ``(m, 2)`` positions of the columns (every class but vacancies) of image
    ``index`` whose centre lies at most ``margin`` pixels outside it (``margin = 0``: the
    sites flagged ``inside``): the ground truth of atom finding."""
    pos = np.asarray(data.positions[index])
    H, W = data.image.shape[-2:]
    keep = (pos.min(1) >= -margin) & (pos[:, 0] <= H - 1 + margin) & (pos[:, 1] <= W - 1 + margin)
    keep &= np.asarray(data.site_class[index]) != VACANCY
    return pos[keep]


def column_mask(
    positions: Float[Array, "K 2"],
    site_class: Int[Array, " K"],
    shape: tuple[int, int],
    radius: float = 1.0,
) -> Int[Array, "H W"]:
    r"""Per-pixel class (:data:`MASK_CLASSES`: 0 background, 1 atom (rotated included),
    2 vacancy site, 3 dopant, 4 dark dopant) of the pixels within about ``radius`` of a site.

    Per class ``c`` the density :math:`D_c = \sum_{k \in c} e^{-|x - p_k|^2 / 2r^2}` is two
    matrix products (separable); a pixel takes the class of largest density when that
    exceeds :math:`e^{-1/2}` (the nearest column's value at distance ``r``).
    """
    mask_class = jnp.where(site_class == ROTATED, ATOM, site_class) + 1  # 1 … 4
    i = jnp.arange(shape[0], dtype=positions.dtype)
    j = jnp.arange(shape[1], dtype=positions.dtype)
    rows = jnp.exp(-0.5 * ((i[None] - positions[:, :1]) / radius) ** 2)  # (K, H)
    cols = jnp.exp(-0.5 * ((j[None] - positions[:, 1:]) / radius) ** 2)  # (K, W)
    onehot = jax.nn.one_hot(mask_class - 1, 4, dtype=positions.dtype)  # (K, 4)
    D = jnp.einsum("kh,kc,kw->chw", rows, onehot, cols)
    best = jnp.argmax(D, axis=0)
    return jnp.where(jnp.max(D, axis=0) > math.exp(-0.5), best + 1, 0).astype(jnp.int32)
