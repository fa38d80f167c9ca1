"""Loop scalarizers on analytic loops: shoelace area of ellipses and a parallelogram (exact
polygon areas), the combined real/imaginary area, coercive fields of tanh loops in every cycle
order, the quarter-cycle proxy against Liu et al.'s formula and the exact area, gradients, jit
and vmap."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_allclose

from jaxscope import scalarizers

# jitted entry points (one program per shape and dtype; eager calls would build one per op)
loop_area = jax.jit(scalarizers.loop_area)
quarter_loop_area = jax.jit(scalarizers.quarter_loop_area)
coercive_fields = jax.jit(scalarizers.coercive_fields)
coercive_width = jax.jit(scalarizers.coercive_width)
imprint = jax.jit(scalarizers.imprint)
batched = {
    name: jax.jit(jax.vmap(getattr(scalarizers, name)))
    for name in ("loop_area", "quarter_loop_area", "coercive_fields")
}


def ellipse(n, a, b, v0=0.0, r0=0.0, phase=0.0):
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return v0 + a * np.cos(t), r0 + b * np.sin(t + phase)


def polygon_area(n):
    """Area of the regular n-gon inscribed in the unit circle; an ellipse sampled at equal
    parameter steps is its image under a linear map, so its area is this times |det|."""
    return 0.5 * n * np.sin(2 * np.pi / n)


def shoelace_np(x, y):
    """Independent form: the trapezoid rule for -∮ y dx over the closed polygon."""
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    return abs(0.5 * np.sum((x1 - x) * (y1 + y)))


def beps(q, Vmax, Vc, E, w):
    """BEPS triangle 0 → +Vmax → −Vmax → 0 in 4q equal steps, tanh branches switching at
    E ± Vc (up branch at E + Vc, down branch at E − Vc)."""
    dv = Vmax / q
    v = np.concatenate([np.arange(q) * dv, Vmax - np.arange(2 * q) * dv, -Vmax + np.arange(q) * dv])
    down = np.r_[np.zeros(q, bool), np.ones(2 * q, bool), np.zeros(q, bool)]
    r = np.where(down, np.tanh((v + Vc - E) / w), np.tanh((v - Vc - E) / w))
    return v, r


def exact_tanh_area(Vmax, Vc, E, w):
    """∫_{-Vmax}^{Vmax} (r_down - r_up) dv with ∫ tanh((v - c)/w) dv = w log cosh((v - c)/w)."""
    F = lambda x, c: w * np.log(np.cosh((x - c) / w))
    return (F(Vmax, E - Vc) - F(-Vmax, E - Vc)) - (F(Vmax, E + Vc) - F(-Vmax, E + Vc))


def test_ellipse_area_is_the_exact_polygon_area(dtype):
    v, r = ellipse(64, 2.5, 0.8, v0=1.0, r0=-3.0)
    got = loop_area(jnp.asarray(v, dtype), jnp.asarray(r, dtype))
    assert_allclose(got, polygon_area(64) * 2.5 * 0.8, scale=5)
    if dtype == jnp.float64:  # a fine polygon approaches the ellipse, π a b
        v, r = ellipse(501, 2.5, 0.8)
        got = loop_area(jnp.asarray(v), jnp.asarray(r))
        np.testing.assert_allclose(got, polygon_area(501) * 2.0, rtol=1e-12)
        np.testing.assert_allclose(got, np.pi * 2.0, rtol=1e-4)


def test_area_is_orientation_and_start_independent(dtype):
    v, r = ellipse(64, 1.3, 2.0, phase=0.4)
    want = loop_area(jnp.asarray(v, dtype), jnp.asarray(r, dtype))
    for vv, rr in [(v[::-1], r[::-1]), (np.roll(v, 17), np.roll(r, 17)), (-v, r)]:
        assert_allclose(loop_area(jnp.asarray(vv, dtype), jnp.asarray(rr, dtype)), want)
    assert_allclose(want, shoelace_np(v, r))


def test_parallelogram_area_exact():
    """Vertices (0,0), (2,0), (3,1), (1,1): area 2; extra collinear samples on the edges do
    not change it."""
    corners = np.array([[0, 0], [2, 0], [3, 1], [1, 1]], float)
    s = np.linspace(0, 1, 16, endpoint=False)
    pts = np.concatenate(
        [
            c0 + s[:, None] * (c1 - c0)
            for c0, c1 in zip(corners, np.roll(corners, -1, 0), strict=True)
        ]
    )
    assert pts.shape == (64, 2)
    np.testing.assert_allclose(
        loop_area(jnp.asarray(pts[:, 0]), jnp.asarray(pts[:, 1])), 2.0, rtol=1e-6
    )


def test_float32_area_with_large_offsets():
    """A small loop far from the origin: shoelace on raw coordinates would cancel ~1e6-sized
    products in float32; the centred form keeps the area to float32 rounding."""
    v, r = ellipse(64, 0.5, 0.2, v0=1e3, r0=-2e3)
    got = loop_area(jnp.asarray(v, jnp.float32), jnp.asarray(r, jnp.float32))
    np.testing.assert_allclose(got, polygon_area(64) * 0.1, rtol=2e-3)


def test_combined_real_imaginary_area(x64):
    """(a cos t, b sin t) and (a cos t, c sin(t + φ)): linear images of the regular n-gon, with
    areas a·b and a·c·cos φ times the n-gon's; combined as sqrt(A_R² + A_I²)."""
    n, a, b, c, phi = 64, 2.0, 0.7, 1.1, 0.6
    v, r = ellipse(n, a, b)
    _, i = ellipse(n, a, c, phase=phi)
    A_R, A_I = polygon_area(n) * a * b, polygon_area(n) * a * c * np.cos(phi)
    assert_allclose(shoelace_np(v, i), A_I, dtype=np.float64)
    got = loop_area(*map(jnp.asarray, (v, r, i)))
    assert_allclose(got, np.hypot(A_R, A_I), scale=5)
    # a zero imaginary part gives the real area back, with finite gradients at zero area
    assert_allclose(loop_area(jnp.asarray(v), jnp.asarray(r), jnp.zeros(n)), A_R, scale=5)
    g = jax.jit(jax.grad(scalarizers.loop_area, argnums=2))(
        jnp.asarray(v), jnp.zeros(n), jnp.zeros(n)
    )
    assert np.all(np.isfinite(g))


def test_area_gradient_matches_finite_differences(x64):
    rs = np.random.RandomState(0)
    v, r = ellipse(64, 1.0, 0.5)
    r = r + 0.05 * rs.standard_normal(64)
    _, i = ellipse(64, 1.0, 0.3, phase=0.9)
    for args, argnum in [((v, r), 1), ((v, r, i), 2)]:
        g = jax.jit(jax.grad(scalarizers.loop_area, argnums=argnum))(*map(jnp.asarray, args))
        eye = 1e-6 * np.eye(64)
        fd = np.zeros(64)
        for k in range(64):
            up = [x + eye[k] if j == argnum else x for j, x in enumerate(args)]
            dn = [x - eye[k] if j == argnum else x for j, x in enumerate(args)]
            fd[k] = (loop_area(*map(jnp.asarray, up)) - loop_area(*map(jnp.asarray, dn))) / 2e-6
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


def test_coercive_fields_of_a_tanh_loop(dtype):
    """Up branch switches at E + Vc, down at E − Vc: the mid-level crossings sit at
    E ± Vc + w·artanh(mid) (mid ≈ 0), recovered to interpolation accuracy, and exactly as
    NumPy's linear interpolation along each branch."""
    q, Vmax, Vc, E, w = 100, 10.0, 3.1, 0.73, 0.5
    v, r = beps(q, Vmax, Vc, E, w)
    mid = 0.5 * (r.max() + r.min())
    want = np.array([E - Vc, E + Vc]) + w * np.arctanh(mid)
    got = coercive_fields(jnp.asarray(v, dtype), jnp.asarray(r, dtype))
    h = Vmax / q  # linear interpolation errs by at most h²/8 · max|r''/r'| near the crossing
    np.testing.assert_allclose(got, want, atol=h**2 / 8 * 2 * np.tanh(h / w) / w)
    up_v, up_r = np.r_[v[3 * q :], v[:q]], np.r_[r[3 * q :], r[:q]]  # -Vmax ... Vmax, ascending
    dn_v, dn_r = v[q : 3 * q][::-1], r[q : 3 * q][::-1]
    ref = [np.interp(mid, dn_r, dn_v), np.interp(mid, up_r, up_v)]
    assert_allclose(got, ref, scale=10)


def test_coercive_fields_in_any_cycle_order():
    """The BEPS triangle, up-then-down sweeps, a rotated cycle, the reversed cycle and an
    inverted response (the other phase convention) all give the same fields; width and
    imprint are 2·Vc and E."""
    Vc, E, w = 2.0, -0.4, 0.3
    v, r = beps(100, 6.0, Vc, E, w)
    want = np.asarray(coercive_fields(jnp.asarray(v), jnp.asarray(r)))
    np.testing.assert_allclose(want, [E - Vc, E + Vc], atol=1e-3)
    np.testing.assert_allclose(coercive_width(jnp.asarray(v), jnp.asarray(r)), 2 * Vc, atol=1e-3)
    np.testing.assert_allclose(imprint(jnp.asarray(v), jnp.asarray(r)), E, atol=1e-3)
    vu = np.linspace(-6.0, 6.0, 200)
    up_down = (
        np.r_[vu, vu[::-1]],
        np.r_[np.tanh((vu - Vc - E) / w), np.tanh((vu[::-1] + Vc - E) / w)],
    )
    reversed_ = (v[::-1], r[::-1])  # the down branch becomes the up branch and vice versa
    for vv, rr in [up_down, (np.roll(v, 57), np.roll(r, 57)), (v, -r)]:
        np.testing.assert_allclose(
            coercive_fields(jnp.asarray(vv), jnp.asarray(rr)), want, atol=2e-3
        )
    np.testing.assert_allclose(
        coercive_fields(*map(jnp.asarray, reversed_)), [E + Vc, E - Vc], atol=1e-3
    )


def test_coercive_fields_count_and_average_crossings():
    """Hand-made cycle: three crossings on the increasing edges (0.5, 1.5, 2.5, mean 1.5), one
    on the decreasing ones (2.5); a flat loop has none (NaN)."""
    v = jnp.array([0.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0])
    r = jnp.array([-1.0, 1.0, -1.0, 1.0, 1.0, 1.0, -1.0, -1.0])
    np.testing.assert_allclose(coercive_fields(v, r), [2.5, 1.5])
    assert np.all(np.isnan(coercive_fields(v, jnp.ones(8))))


def test_quarter_loop_area_is_liu_formula_times_the_step(dtype):
    """Liu et al.'s BEPS loop area for one cycle: |Σ middle half − Σ outer quarters|, here in
    NumPy, times the voltage step 4·Vmax/n."""
    q, Vmax = 100, 8.0
    v, r = beps(q, Vmax, 2.5, 0.3, 0.6)
    r = r + 0.03 * np.random.RandomState(1).standard_normal(r.shape)
    liu = abs(np.sum(r[q : 3 * q]) - np.sum(r[:q]) - np.sum(r[3 * q :]))
    got = quarter_loop_area(jnp.asarray(v, dtype), jnp.asarray(r, dtype))
    assert_allclose(got, liu * Vmax / q, scale=20)


def test_quarter_loop_area_converges_to_the_loop_area():
    """Against ∫ (r_down − r_up) dv in closed form: the left Riemann sums of the two branches
    err by dv·(r_max − r_min) together, so the error halves with the step; the shoelace area
    is second-order accurate."""
    Vmax, Vc, E, w = 10.0, 3.0, 0.7, 0.5
    exact = exact_tanh_area(Vmax, Vc, E, w)
    errs = []
    for q in (50, 100):
        v, r = jnp.asarray(beps(q, Vmax, Vc, E, w)[0]), jnp.asarray(beps(q, Vmax, Vc, E, w)[1])
        dv, span = Vmax / q, float(r.max() - r.min())
        errs.append(float(quarter_loop_area(v, r)) - exact)
        assert abs(errs[-1]) <= 1.01 * dv * span
        assert abs(float(loop_area(v, r)) - exact) <= 1e-3 * dv
    np.testing.assert_allclose(errs[1] / errs[0], 0.5, rtol=0.02)


def test_jit_and_vmap_match_plain_calls():
    """vmap over three loops (one program each) equals one call per loop, jitted and plain."""
    loops = [beps(100, 5.0, Vc, E, 0.4) for Vc, E in [(1.0, 0.0), (2.0, 0.5), (1.5, -0.8)]]
    V = jnp.asarray(np.stack([x[0] for x in loops]), jnp.float32)
    R = jnp.asarray(np.stack([x[1] for x in loops]), jnp.float32)
    single = {"loop_area": loop_area, "quarter_loop_area": quarter_loop_area,
              "coercive_fields": coercive_fields}  # fmt: skip
    for name, f in batched.items():
        got = f(V, R)
        np.testing.assert_allclose(
            got, np.stack([single[name](V[k], R[k]) for k in range(3)]), rtol=1e-6, atol=1e-6
        )
        plain = getattr(scalarizers, name)(V[1], R[1])  # eager, op by op
        np.testing.assert_allclose(got[1], plain, rtol=1e-6, atol=1e-6)
    cf = batched["coercive_fields"](V, R)
    np.testing.assert_allclose(cf[:, 1] - cf[:, 0], [2.0, 4.0, 3.0], atol=2e-3)
    np.testing.assert_allclose(cf.mean(1), [0.0, 0.5, -0.8], atol=2e-3)


def test_bad_shapes_raise():
    v = jnp.linspace(-1.0, 1.0, 10)
    # the explicit check, or the suite's runtime shape checking (jaxtyping) before it
    with pytest.raises((ValueError, TypeError), match="one length|n="):
        loop_area(v, v[:-1])
    with pytest.raises((ValueError, TypeError), match="one length|n="):
        loop_area(v, v, v[:-2])
    with pytest.raises(ValueError, match="at least 3 samples"):
        loop_area(v[:2], v[:2])
    with pytest.raises(ValueError, match="multiple of 4"):
        quarter_loop_area(v, v)
    with pytest.raises((ValueError, TypeError), match="1-D|n"):
        coercive_fields(jnp.ones((2, 4)), jnp.ones((2, 4)))
