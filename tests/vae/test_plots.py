"""jaxscope.vae.plots: what the figures draw is the data — the manifold mosaic equals decoding a
hand-built latent grid, traversal rows equal independent decodes (and the angle row at 0 equals
the z = 0 column), map panels are the maps, loss lines are the history — and the written file
is that figure. Tiny untrained networks (8×8 images, 16-unit layers): random weights decode to
non-trivial images, which is all a drawing test needs."""

from __future__ import annotations

import io

import jax
import matplotlib.image as mpimg
import numpy as np
import pytest

from jaxscope.vae import families
from jaxscope.vae.inference import decode
from jaxscope.vae.plots import (
    manifold_grid,
    mosaic,
    plot_atom_latents,
    plot_latent_maps,
    plot_loss_curves,
    plot_manifold,
    plot_traversals,
)

pytestmark = pytest.mark.xdist_group("test_vae_plots")
SMALL = {"encoder_hidden": (16, 16), "decoder_hidden": (16, 16)}


@pytest.fixture(scope="module")
def rvae():
    model = families.RVAE((8, 8), latent_dim=2, invariances=("r", "t"), **SMALL)
    return model, model.init(jax.random.key(0))


@pytest.fixture(scope="module")
def jvae():
    model = families.JVAE((8, 8), discrete=(3,), latent_dim=2, **SMALL)
    return model, model.init(jax.random.key(1))


def _png_of(fig) -> np.ndarray:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    buf.seek(0)
    return mpimg.imread(buf)


def test_manifold_mosaic_is_the_decoded_grid_and_the_file_is_the_figure(rvae, tmp_path):
    model, params = rvae
    d, lo, hi = 4, -1.5, 1.5
    fig = plot_manifold(model, params, tmp_path / "sub" / "manifold.png", d=d, z_range=(lo, hi))
    drawn = np.asarray(fig.axes[0].get_images()[0].get_array())
    # independent: loop over the tiles, z1 along columns, z2 decreasing down the rows
    v = np.linspace(lo, hi, d)
    expect = np.zeros((8 * d, 8 * d))
    for i in range(d):
        for j in range(d):
            img = decode(model, params, np.array([[v[j], v[d - 1 - i]]], np.float32))[0, ..., 0]
            expect[8 * i : 8 * i + 8, 8 * j : 8 * j + 8] = img
    np.testing.assert_allclose(drawn, expect, atol=1e-6)
    assert drawn.std() > 1e-3  # random weights decode to a non-constant mosaic
    assert fig.axes[0].get_images()[0].get_extent() == [lo, hi, lo, hi]
    on_disk = mpimg.imread(tmp_path / "sub" / "manifold.png")
    np.testing.assert_array_equal(on_disk, _png_of(fig))
    z, dec = manifold_grid(model, params, d=d, z_range=(lo, hi))
    assert z[1].tolist() == pytest.approx([v[1], v[-1]])
    np.testing.assert_allclose(mosaic(dec), drawn, atol=0)


def test_traversal_rows_are_independent_decodes(rvae, tmp_path):
    model, params = rvae
    steps = 5
    fig = plot_traversals(model, params, tmp_path / "trav.png", steps=steps, z_range=(-2, 2))
    rows = fig.traversals
    assert rows.shape == (3, steps, 8, 8, 1)  # z1, z2, angle
    v = np.linspace(-2, 2, steps)
    for k in range(2):
        for j in range(steps):
            z = np.zeros((1, 2), np.float32)
            z[0, k] = v[j]
            np.testing.assert_allclose(rows[k, j], decode(model, params, z)[0], atol=1e-6)
    angles = np.linspace(0, 2 * np.pi, steps, endpoint=False)
    for j in (1, 3):
        one = decode(model, params, np.zeros((1, 2), np.float32), angle=float(angles[j]))[0]
        np.testing.assert_allclose(rows[2, j], one, atol=1e-5)
    # z = 0 at angle 0 is the middle of every z row and the first of the angle row
    np.testing.assert_allclose(rows[2, 0], rows[0, steps // 2], atol=1e-6)
    np.testing.assert_allclose(rows[1, steps // 2], rows[0, steps // 2], atol=1e-6)
    assert not np.allclose(rows[2, 1], rows[2, 0], atol=1e-4)  # rotation changes the image
    drawn = np.asarray(fig.axes[steps + 2].get_images()[0].get_array())  # row 1, column 2
    np.testing.assert_allclose(drawn, rows[1, 2, ..., 0], atol=0)
    assert (tmp_path / "trav.png").stat().st_size > 1000


def test_manifold_of_a_joint_model_decodes_the_chosen_class(jvae, tmp_path):
    model, params = jvae
    z, dec = manifold_grid(model, params, d=2, classes=2)
    onehot = np.tile(np.eye(3, dtype=np.float32)[2], (4, 1))
    np.testing.assert_allclose(
        dec.reshape(4, 8, 8, 1), decode(model, params, z, classes=onehot), atol=1e-6
    )
    other = decode(model, params, z, classes=np.tile(np.eye(3, dtype=np.float32)[0], (4, 1)))
    assert not np.allclose(dec.reshape(4, 8, 8, 1), other, atol=1e-5)
    with pytest.raises(ValueError, match="classes must be in"):
        manifold_grid(model, params, d=2, classes=3)


def test_latent_map_panels_are_the_maps(tmp_path):
    rng = np.random.default_rng(0)
    maps = {"angle": rng.uniform(-3, 3, (10, 12)), "z": rng.standard_normal((10, 12, 2))}
    maps["angle"][:2] = np.nan  # border pixels without a whole window
    image = rng.random((10, 12))
    fig = plot_latent_maps(maps, tmp_path / "maps.png", image=image)
    arrays = [np.asarray(ax.get_images()[0].get_array()) for ax in fig.axes if ax.get_images()]
    assert len(arrays) == 4
    for got, want in zip(
        arrays, [image, maps["angle"], maps["z"][..., 0], maps["z"][..., 1]], strict=True
    ):
        np.testing.assert_array_equal(
            np.ma.filled(np.ma.masked_invalid(got), -9), np.nan_to_num(want, nan=-9)
        )
    assert fig.axes[0].get_images()[0].get_cmap().name == "gray"
    np.testing.assert_array_equal(mpimg.imread(tmp_path / "maps.png"), _png_of(fig))


def test_atom_latents_points_and_colours(tmp_path):
    rng = np.random.default_rng(1)
    pos = rng.uniform(0, 20, (7, 2))
    vals = {"angle": rng.uniform(0, 6, 7), "z1": rng.standard_normal(7)}
    fig = plot_atom_latents(rng.random((20, 20)), pos, vals, tmp_path / "atoms.pdf")
    for ax, (name, v) in zip(fig.axes[:2], vals.items(), strict=True):
        sc = ax.collections[0]
        np.testing.assert_allclose(sc.get_offsets(), pos[:, ::-1])  # x = column, y = row
        np.testing.assert_allclose(sc.get_array(), v)
        assert ax.get_title() == name
    assert (tmp_path / "atoms.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(ValueError, match="must be \\(7,\\)"):
        plot_atom_latents(np.zeros((4, 4)), pos, {"z": np.zeros(3)}, tmp_path / "x.png")


def test_loss_curves_are_the_history(tmp_path):
    hist = {"loss": np.array([5.0, 3.0, 2.5]), "recon": np.array([4.0, 2.0, 1.9]),
            "kl_disc": np.zeros(3)}  # fmt: skip
    fig = plot_loss_curves(hist, tmp_path / "loss.png")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "recon"]  # all-zero terms left out
    for ax in fig.axes:
        x, y = ax.lines[0].get_data()
        np.testing.assert_array_equal(x, [1, 2, 3])
        np.testing.assert_array_equal(y, hist[ax.get_title()])
    with pytest.raises(ValueError, match="has no"):
        plot_loss_curves(hist, tmp_path / "x.png", names=["nope"])


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"z_range": (1.0, 1.0)}, "low < high"),
        ({"z_range": "ab"}, "pair"),
        ({"dims": (0, 2)}, "dims"),
        ({"d": 0}, "positive int"),
        ({"classes": 1}, "no categorical"),
    ],
)
def test_bad_manifold_options(rvae, tmp_path, kw, match):
    model, params = rvae
    with pytest.raises(ValueError, match=match):
        plot_manifold(model, params, tmp_path / "m.png", **kw)


def test_bad_maps_and_history(tmp_path):
    with pytest.raises(ValueError, match="non-empty"):
        plot_latent_maps({}, tmp_path / "m.png")
    with pytest.raises(ValueError, match="must be \\(H, W\\)"):
        plot_latent_maps({"x": np.zeros(3)}, tmp_path / "m.png")
    with pytest.raises(ValueError, match="non-empty"):
        plot_loss_curves({}, tmp_path / "l.png")
    with pytest.raises(ValueError, match="traversals|steps"):
        plot_traversals(None, None, tmp_path / "t.png", steps=1)
