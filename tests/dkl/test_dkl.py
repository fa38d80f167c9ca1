"""Deep kernel learning: the family is a GP on the network's features (checked against a plain
GP on precomputed features), training learns what a coordinate GP cannot, updates warm-start
from the previous weights, members/channels under vmap equal separate fits, one compile per
campaign, feature-space lengthscales refused, pathwise draws on deep kernels."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import count_compilations

from jaxscope import kernels as K
from jaxscope.decide import MAPGP
from jaxscope.dkl import CNN, DKLGP, DKLNUTS, MLP, DeepKernelFamily, train, train_channels
from jaxscope.gp import GP, GPModel, Observations
from jaxscope.images import extract

# its module fixtures are built once: one worker runs the file (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("test_dkl")

N_OBS, CAP = 60, 68


@pytest.fixture(scope="module")
def data():
    """A white-noise image whose property is a nonlinear function of each 5×5 patch's content:
    neighbouring pixels share part of their windows, so coordinates say a little, the patch
    says everything."""
    rs = np.random.RandomState(0)
    img = rs.randn(26, 26).astype(np.float32)
    P = extract(img, 5, normalize="image")
    y = np.tanh(2.0 * np.asarray(P.patches).mean((1, 2))).astype(np.float32)
    idx = rs.choice(P.num, N_OBS, replace=False)
    obs = Observations.from_arrays(np.asarray(P.coords)[idx], y[idx], capacity=CAP)
    return P, y, idx, obs


@pytest.fixture(scope="module")
def fitted(data):
    P, y, idx, obs = data
    fam = DeepKernelFamily(CNN(channels=(4,), dense=8), patches=P, weight_prior=1.0)
    sur = DKLGP(fam, num_members=2, train_steps=300, learning_rate=5e-2)
    step = eqx.filter_jit(lambda st, o: sur.update(st, o, jax.random.key(1)))
    s0 = sur.init(jax.random.key(0), obs)
    s1 = step(s0, obs)
    return sur, s0, s1, step


def test_family_is_a_gp_on_the_features(data):
    P, y, idx, obs = data
    fam = DeepKernelFamily(CNN(channels=(4,), dense=8), patches=P, base="matern52")
    params = fam.init_params(key=jax.random.key(3))
    params["lengthscale"], params["noise"] = jnp.asarray(0.7), jnp.asarray(0.05)
    Z = jax.vmap(lambda x: fam.net.apply(params["net"], x))(P.patches)  # features, by hand
    Zobs = Observations.from_arrays(Z[idx], jnp.asarray(y[idx]), capacity=CAP)
    plain = GP(kernel=K.Matern52(lengthscale=0.7, variance=params["variance"]),
               noise=0.05 + fam.noise_floor, mean=0.0)  # fmt: skip
    np.testing.assert_allclose(
        fam.build(params).log_marginal_likelihood(obs),
        plain.log_marginal_likelihood(Zobs), rtol=1e-5,
    )  # fmt: skip
    np.testing.assert_allclose(
        fam.build(params).condition(obs).predict(P.coords[:50])[0],
        plain.condition(Zobs).predict(Z[:50])[0], rtol=1e-4, atol=1e-5,
    )  # fmt: skip


def test_training_learns_the_patch_map_a_coordinate_gp_cannot(data, fitted):
    P, y, idx, obs = data
    sur, s0, s1, _ = fitted
    held_out = np.setdiff1d(np.arange(P.num), idx)
    m_dkl = np.asarray(sur.predictive(s1, P.coords).mean.mean(0))[held_out]
    coord = MAPGP(GPModel.for_candidates(P.coords))
    c1 = coord.update(coord.init(jax.random.key(0), obs), obs, jax.random.key(1))
    m_gp = np.asarray(coord.predictive(c1, P.coords).mean.mean(0))[held_out]
    rmse = lambda m: float(np.sqrt(np.mean((m - y[held_out]) ** 2)))  # noqa: E731
    # measured over init keys 0-3: 0.09-0.14 against the coordinate GP's 0.22
    assert rmse(m_dkl) < 0.7 * rmse(m_gp), (rmse(m_dkl), rmse(m_gp))
    # training lowered the objective from the untrained start
    fam = sur.model
    obs_s = s1.scaler.apply(obs)
    lp = jax.vmap(lambda p: fam.log_posterior(p, obs_s))
    assert np.all(np.asarray(lp(s1.samples)) > np.asarray(lp(s0.samples)) + 5.0)


def test_members_start_apart_never_from_zeros_and_update_warm_starts(data, fitted):
    P, y, idx, obs = data
    sur, s0, s1, step = fitted
    w0 = jax.tree_util.tree_leaves(s0.samples["net"])
    assert all(float(jnp.abs(a).max()) > 0 for a in w0 if a.ndim == 3)  # kernels, not zeros
    k = [a for a in w0 if a.ndim == 3][0]
    assert not np.allclose(k[0], k[1])  # members initialised independently
    # the second update starts where the first ended: its first loss is the first's final
    # objective, recomputed independently
    _, losses = sur.fit(s1.samples, obs)
    obs_s = s1.scaler.apply(obs)
    start = -jax.vmap(lambda p: sur.model.log_posterior(p, obs_s))(s1.samples)
    np.testing.assert_allclose(losses[:, 0], start, rtol=1e-4)  # float32, other op order


def test_members_under_vmap_equal_separate_fits(data, fitted):
    P, y, idx, obs = data
    sur, s0, s1, _ = fitted
    # a short run: long float32 Adam runs diverge chaotically from reordered reductions
    short = dataclasses.replace(sur, train_steps=20)
    both, _ = short.fit(s0.samples, obs)
    obs_s = s0.scaler.apply(obs)
    for i in range(2):
        p0 = jax.tree_util.tree_map(lambda a, i=i: a[i], s0.samples)
        p1, _ = train(sur.model, obs_s, p0, steps=20, lr=sur.learning_rate)
        for k in ("lengthscale", "noise", "variance"):
            np.testing.assert_allclose(p1[k], both[k][i], rtol=1e-4)


def test_campaign_updates_compile_once(data, fitted):
    P, y, idx, obs = data
    sur, s0, s1, step = fitted
    bufs, o = [], obs
    for j in range(3):  # the buffer grows; shapes do not
        o = o.add(P.coords[j], jnp.asarray(y[j]))
        bufs.append(o)
    jax.block_until_ready(bufs)
    with count_compilations() as log:
        st = s1
        for o in bufs:
            st = step(st, o)
        jax.block_until_ready(st)
    assert len(log) == 0  # the fixture's first call compiled the only program


def test_embeddings_and_feature_space_lengthscale(data, fitted):
    P, y, idx, obs = data
    sur, s0, s1, _ = fitted
    E = sur.embed(s1, P.coords)
    assert E.shape == (2, P.num, 2)
    ref = sur.model.net.apply(jax.tree_util.tree_map(lambda a: a[1], s1.samples["net"]),
                              P.patches[5])  # fmt: skip
    np.testing.assert_allclose(E[1, 5], ref, rtol=1e-5)
    with pytest.raises(ValueError, match="feature space"):
        sur.length_scale(s1)


def test_pathwise_draws_on_a_deep_kernel_match_the_exact_posterior(data, fitted):
    P, y, idx, obs = data
    sur, s0, s1, _ = fitted
    post = jax.tree_util.tree_map(lambda a: a[0], s1.post)
    X = P.coords[:30]
    mean, var = post.predict(X)
    d = post.sample(jax.random.key(5), X, 4000, method="pathwise", num_features=4096)
    np.testing.assert_allclose(d.mean(0), mean, atol=0.06)
    np.testing.assert_allclose(d.var(0), var, atol=0.04, rtol=0.15)


def test_channels_under_vmap_equal_one_fit_each(data):
    P, y, idx, obs = data
    fam = DeepKernelFamily(MLP(hidden=(8,), latent=2), patches=P)
    Y = jnp.stack([obs.y, -2.0 * obs.y + 1.0], 1)
    p0 = fam.init_params(key=jax.random.key(0))
    ps = jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), p0)
    out, _ = train_channels(fam, obs, Y, ps, steps=50)
    for c in range(2):
        o = eqx.tree_at(lambda o: o.y, obs, jnp.where(obs.mask, Y[:, c], 0.0))
        pc, _ = train(fam, o, p0, steps=50)
        np.testing.assert_allclose(out["noise"][c], pc["noise"], rtol=1e-4)
    with pytest.raises(ValueError, match="shape"):
        train_channels(fam, obs, Y[:10], ps)


def test_bayesian_head_holds_the_best_network(data):
    P, y, idx, obs = data
    fam = DeepKernelFamily(MLP(hidden=(16,), latent=2), patches=P)
    sur = DKLNUTS(fam, num_members=2, train_steps=100, num_warmup=60, num_samples=40)
    st = sur.update(sur.init(jax.random.key(0), obs), obs, jax.random.key(2))
    ls = np.asarray(st.gp.samples["lengthscale"])
    assert ls.shape == (40,) and ls.std() > 0  # sampled heads
    net = st.gp.samples["net"]
    first = jax.tree_util.tree_map(lambda a: a[0], net)
    assert all(np.allclose(a, a[:1]) for a in jax.tree_util.tree_leaves(net))  # one network
    obs_s = st.gp.scaler.apply(obs)
    lps = jax.vmap(lambda p: fam.log_posterior(p, obs_s))(st.trained)
    best = jax.tree_util.tree_map(lambda a: a[int(jnp.argmax(lps))], st.trained["net"])
    for a, b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(best),
                    strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)
    assert set(fam.hold(best).names) == {"lengthscale", "noise", "variance"}


def test_bad_settings_are_refused(data):
    P = data[0]
    with pytest.raises(ValueError, match="input_shape"):
        DeepKernelFamily(MLP())
    with pytest.raises(ValueError, match="unknown kernel|rbf"):
        DeepKernelFamily(MLP(), patches=P, base="gaussianish")
    with pytest.raises(ValueError, match="unknown activation"):
        MLP(activation="sigmoidal").init(jax.random.key(0), jnp.zeros(3))
    fam = DeepKernelFamily(MLP(), patches=P)
    with pytest.raises(ValueError, match="not held"):
        DKLGP(fam.hold(fam.init_weights(jax.random.key(0))))


def test_cnn_convolution_is_a_same_convolution():
    # the CNN writes each 3x3 convolution as im2col + dense (fast in XLA:CPU loop bodies); it
    # must be exactly lax's 'SAME' cross-correlation with the kernel (3, 3, c_in, c_out)
    from jaxscope.dkl.networks import shifted_windows

    h = jax.random.normal(jax.random.key(0), (7, 9, 3))
    K = jax.random.normal(jax.random.key(1), (3, 3, 3, 5))
    ref = jax.lax.conv_general_dilated(h[None], K, (1, 1), "SAME",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))[0]  # fmt: skip
    np.testing.assert_allclose(shifted_windows(h) @ K.reshape(-1, 5), ref, rtol=1e-5, atol=1e-5)


def test_refit_from_init_trains_fresh_weights_drawn_from_the_key(data):
    P, y, idx, obs = data
    fam = DeepKernelFamily(MLP(hidden=(8,)), patches=P, weight_prior=1.0)
    warm = DKLGP(fam, train_steps=5, learning_rate=1e-2)
    fresh = DKLGP(fam, train_steps=5, learning_rate=1e-2, refit_from="init")
    s0 = warm.init(jax.random.key(0), obs)
    key = jax.random.key(7)
    f1 = fresh.update(s0, obs, key)
    # the same training as a warm update started from the members the key draws
    start = fresh._members(key, obs.X.dtype)
    members, _ = fresh.fit(start, obs)
    for a, b in zip(jax.tree_util.tree_leaves(f1.samples), jax.tree_util.tree_leaves(members),
                    strict=True):  # fmt: skip
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    w1 = warm.update(s0, obs, key)  # the warm update ignores the key and starts from s0
    assert not np.allclose(w1.samples["net"]["params"]["Dense_0"]["kernel"],
                           f1.samples["net"]["params"]["Dense_0"]["kernel"])  # fmt: skip
    with pytest.raises(ValueError, match="refit_from"):
        DKLGP(fam, refit_from="best")


def test_shrink_perturb_starts_from_shrunk_previous_plus_fresh_weights(data, fitted):
    P, y, idx, obs = data
    sur, s0, s1, _ = fitted
    sp = dataclasses.replace(sur, refit_from="shrink-perturb", shrink=0.5, perturb=0.3,
                             train_steps=3)  # fmt: skip
    key = jax.random.key(11)
    got = sp.update(s1, obs, key)
    fresh = sp._members(key, obs.X.dtype)
    start = {**s1.samples, "net": jax.tree_util.tree_map(lambda a, b: 0.5 * a + 0.3 * b,
                                                          s1.samples["net"], fresh["net"])}  # fmt: skip
    want, _ = sp.fit(start, obs)
    for a, b in zip(jax.tree_util.tree_leaves(got.samples), jax.tree_util.tree_leaves(want),
                    strict=True):  # fmt: skip
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_previous_plus_init_keeps_the_warm_member_and_redraws_the_fresh_one(data, fitted):
    P, y, idx, obs = data
    sur, s0, s1, _ = fitted
    mixed = dataclasses.replace(sur, refit_from="previous+init", train_steps=3)
    key = jax.random.key(12)
    got = mixed.update(s1, obs, key)
    fresh = mixed._members(key, obs.X.dtype)
    # member 0 starts from its previous weights and hyperparameters, member 1 from fresh ones
    start = jax.tree_util.tree_map(lambda a, b: jnp.stack([a[0], b[1]]), s1.samples, fresh)
    want, _ = mixed.fit(start, obs)
    for a, b in zip(jax.tree_util.tree_leaves(got.samples), jax.tree_util.tree_leaves(want),
                    strict=True):  # fmt: skip
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="num_members >= 2"):
        DKLGP(sur.model, refit_from="previous+init")


def test_minibatch_draws_distinct_real_rows_and_scales_to_the_buffer():
    from jaxscope.dkl.surrogate import _minibatch

    obs = Observations.from_arrays(np.arange(10.0)[:, None], np.arange(10.0), capacity=16)
    for s in range(5):
        sub, scale = _minibatch(obs, jax.random.key(s), 4)
        rows = np.asarray(sub.X[:, 0])
        assert bool(sub.mask.all()) and len(set(rows)) == 4 and rows.max() < 10  # real rows only
        np.testing.assert_allclose(np.asarray(sub.y), rows)  # X and y stay paired
        assert float(scale) == pytest.approx(10 / 4)
    sub, scale = _minibatch(obs, jax.random.key(0), 12)  # more asked than real rows: all of them
    assert int(sub.count) == 10 and float(scale) == 1.0
    assert sorted(np.asarray(sub.X[sub.mask, 0])) == list(range(10))


def test_minibatch_training_matches_its_formula_and_the_exact_fit(data):
    from jaxscope.dkl.surrogate import _minibatch, _train

    P, y, idx, obs = data
    fam = DeepKernelFamily(MLP(hidden=(16,)), patches=P, weight_prior=1.0)
    p0 = fam.init_params(key=jax.random.key(3))
    key = jax.random.key(5)
    # the first step's loss is -(n/m) log p(y_batch) - log prior on the batch its key draws
    _, losses = _train(fam, obs, fam.unconstrain(p0), 1, 1e-2, 20, key)
    sub, scale = _minibatch(obs, jax.random.split(key, 1)[0], 20)
    want = -(scale * fam.build(p0).log_marginal_likelihood(sub) + fam.log_prior(p0))
    np.testing.assert_allclose(losses[0], want, rtol=1e-5)
    # a batch as large as the buffer is the exact training, bit for bit
    exact, _ = train(fam, obs, p0, steps=4)
    same, _ = train(fam, obs, p0, steps=4, batch_size=CAP, key=key)
    for a, b in zip(jax.tree_util.tree_leaves(exact), jax.tree_util.tree_leaves(same), strict=True):
        np.testing.assert_array_equal(a, b)
    # half-size batches learn the patch map about as well as the exact likelihood
    test = np.setdiff1d(np.arange(P.num), idx)
    cnn = DeepKernelFamily(CNN(channels=(4,), dense=8), patches=P, weight_prior=1.0)
    rmse = {}
    for b in (None, 30):
        sur = DKLGP(cnn, num_members=1, train_steps=300, learning_rate=5e-2, batch_size=b)
        st = sur.update(sur.init(jax.random.key(0), obs), obs, jax.random.key(1))
        mean = np.asarray(sur.predictive(st, P.coords).mean.mean(0))[test]
        rmse[b] = float(np.sqrt(np.mean((mean - y[test]) ** 2)))
    assert rmse[30] < 1.5 * rmse[None] and rmse[30] < 0.6 * float(np.std(y[test])), rmse
    with pytest.raises(ValueError, match="batch_size"):
        train(fam, obs, p0, batch_size=1)
    with pytest.raises(ValueError, match="batch_size"):
        DKLGP(fam, batch_size=0)
    for bad in ({"shrink": 1.5}, {"perturb": -0.1}, {"shrink": float("nan")}):
        with pytest.raises(ValueError, match="shrink must be"):
            DKLGP(fam, refit_from="shrink-perturb", **bad)
