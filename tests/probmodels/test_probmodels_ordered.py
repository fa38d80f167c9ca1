"""OrderedUniform and its biject_to transform: round trip, Jacobian, density, moments."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxscope.probmodels import OrderedInterval, OrderedUniform
from numpyro.distributions.transforms import biject_to


@pytest.mark.parametrize("low,high,n", [(0.0, 1.0, 2), (-2.0, 3.0, 4)])
def test_transform_round_trip_and_jacobian(x64, low, high, n):
    prior = OrderedUniform(low, high, n)
    t = biject_to(prior.support)
    u = jax.random.normal(jax.random.key(0), (5, n)) * 0.5
    v = t(u)
    assert bool(jnp.all(prior.support(v)))
    assert np.all(np.diff(np.asarray(v), axis=-1) > 0)
    assert np.all((np.asarray(v) > low) & (np.asarray(v) < high))
    np.testing.assert_allclose(t.inv(v), u, rtol=1e-9, atol=1e-9)
    # log|det J| against the determinant of the autodiff Jacobian of one vector
    J = jax.jit(jax.vmap(jax.jacobian(t)))(u)
    _, logdet = np.linalg.slogdet(np.asarray(J))
    np.testing.assert_allclose(t.log_abs_det_jacobian(u, v), logdet, rtol=1e-9)


def test_log_prob_formula_and_support():
    prior = OrderedUniform(-1.0, 3.0, 3)
    expected = math.log(math.factorial(3)) - 3 * math.log(4.0)
    inside = jnp.array([[-0.5, 0.0, 2.9], [0.1, 0.2, 0.3]])
    np.testing.assert_allclose(prior.log_prob(inside), [expected, expected], rtol=1e-6)
    outside = jnp.array([[0.5, 0.0, 2.0], [-1.5, 0.0, 1.0], [0.0, 1.0, 3.5]])
    assert np.all(np.isneginf(np.asarray(prior.log_prob(outside))))
    assert prior.event_shape == (3,) and prior.batch_shape == ()
    assert OrderedInterval(-1.0, 3.0) == prior.support


def test_density_integrates_to_one():
    # Monte Carlo over the box (low, high)^n: the mean of exp(log_prob) is 1 / volume
    prior = OrderedUniform(0.0, 2.0, 3)
    v = jax.random.uniform(jax.random.key(1), (100_000, 3), maxval=2.0)
    integral = float(jnp.mean(jnp.exp(prior.log_prob(v)))) * 2.0**3
    assert abs(integral - 1.0) < 0.03


def test_samples_ordered_with_order_statistic_moments():
    prior = OrderedUniform(1.0, 3.0, 3)
    s = prior.sample(jax.random.key(2), (40_000,))
    assert s.shape == (40_000, 3)
    assert np.all(np.diff(np.asarray(s), axis=-1) >= 0)
    # order statistics of U(1, 3): mean 1 + 2k/4, variance 4 k (4-k) / (16 * 5)
    k = np.arange(1, 4)
    np.testing.assert_allclose(s.mean(0), 1 + 2 * k / 4, atol=0.01)
    np.testing.assert_allclose(s.var(0), 4 * k * (4 - k) / 80, rtol=0.05)
    np.testing.assert_allclose(prior.mean, 1 + 2 * k / 4, rtol=1e-6)
    np.testing.assert_allclose(prior.variance, 4 * k * (4 - k) / 80, rtol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="high > low"):
        OrderedUniform(1.0, 1.0, 2)
    with pytest.raises(ValueError, match="n >= 1"):
        OrderedUniform(0.0, 1.0, 0)


def test_is_a_static_pytree_usable_under_jit():
    prior = OrderedUniform(0.0, 1.0, 2)
    assert jax.tree_util.tree_leaves(prior) == []
    lp = jax.jit(lambda d, v: d.log_prob(v))(prior, jnp.array([0.2, 0.4]))
    np.testing.assert_allclose(lp, math.log(2.0), rtol=1e-6)
