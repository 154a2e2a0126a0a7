"""The proof's unit-matching construction and the gradient-trained comparison (theory chapter)."""
import numpy as np
import pytest

from biaslearn import theory


def test_small_network_is_bounded_and_close():
    w, c, a = theory.small_network()
    assert max(abs(w).max(), abs(a).max()) <= theory.GAMMA + 1e-9
    assert np.abs(theory.evaluate(w, c, a) - theory.target(theory.GRID)).max() < 0.05


def test_silenced_units_contribute_nothing():
    w_in, w_out = np.array([1.0, -0.5]), np.array([0.7, 0.3])
    b = np.array([0.2, -2 * theory.R])
    assert np.allclose(theory.evaluate(w_in, b, w_out), 0.7 * np.maximum(theory.GRID + 0.2, 0))


def test_matching_reproduces_the_small_network_within_its_tolerance():
    w, c, a = theory.small_network()
    small_err = np.abs(theory.evaluate(w, c, a) - theory.target(theory.GRID)).max()
    out = theory.match(30_000, 0.05, seed=0)
    assert out["success"] and out["active"] == len(w)
    # each matched weight is within eps: the extra error is at most sum_i eps*(|a_i| + |w_i x + c_i| + eps)
    assert out["sup_error"] < small_err + len(w) * 0.05 * 2.5


def test_matching_fails_when_too_narrow():
    assert not theory.match(20, 0.05, seed=0)["success"]


def test_gradient_bias_learning_fits_on_a_wide_network():
    before = theory.fit_bias(300, seed=1, steps=0, lr=0.01)
    after = theory.fit_bias(300, seed=1, steps=400, lr=0.01)
    assert after["mean_error"] < 0.08 and after["mean_error"] < 0.3 * before["mean_error"]


@pytest.mark.parametrize("kwargs", [dict(method="sgd"), dict(eps=0.0), dict(n_hidden=0), dict(draws=0)])
def test_bad_theory_config(kwargs):
    with pytest.raises(ValueError):
        theory.TheoryConfig(**kwargs)
