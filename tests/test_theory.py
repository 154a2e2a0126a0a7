"""The proof's unit-matching construction and the gradient-trained comparison (theory chapter)."""
import math

import numpy as np
import pytest

from biaslearn import dynamics, experiments, presets, theory


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


# --- The construction with a perfect partner, and silencing -----------------------------------

def test_a_perfect_match_reproduces_the_small_network_exactly(monkeypatch):
    """If the random network contains the small network's weights, the constructed biases copy it to rounding."""
    w, c, a = theory.small_network()
    rng = np.random.default_rng(0)
    w_in, w_out = rng.uniform(-1, 1, 500), rng.uniform(-1, 1, 500)
    slots = rng.choice(500, len(w), replace=False)
    w_in[slots], w_out[slots] = w, a
    fake = {"W_in": w_in, "W_out": w_out}
    monkeypatch.setattr(theory.nets, "draw", lambda shape, seed, name, *args: __import__("torch").from_numpy(fake[name]))
    out = theory.match(500, 1e-12, seed=0)
    small = np.abs(theory.evaluate(w, c, a) - theory.target(theory.GRID)).max()
    assert out["success"] and out["active"] == len(w)
    assert abs(out["sup_error"] - small) < 1e-9


@pytest.mark.parametrize("act,off,silent", [("relu", -2.0, True), ("step", -2.0, True), ("softplus", -2.0, False),
                                            ("softplus", -40.0, True), ("tanh", -40.0, False)])
def test_which_activations_a_very_negative_bias_silences(act, off, silent):
    rng = np.random.default_rng(1)
    w_in, w_out = rng.uniform(-1, 1, 200), rng.uniform(-1, 1, 200)
    out = theory.evaluate(w_in, np.full(200, off), w_out, act=act)  # every unit "off"
    assert (np.abs(out).max() < 1e-12) == silent


def test_tanh_construction_leaves_an_offset_that_grows_with_width():
    small = [theory.match(n, 0.05, seed=0, act="tanh", off_bias=-30.0) for n in (3000, 30000)]
    relu = theory.match(3000, 0.05, seed=0)
    assert all(o["success"] for o in small + [relu])
    assert small[1]["sup_error"] > small[0]["sup_error"] > 5 * relu["sup_error"]


# --- Gradient-trained regression and the RNN ---------------------------------------------------

def test_bias_only_regression_learns_the_smooth_target():
    """A stated floor: 300 units, 300 Adam steps on the biases bring the mean error on the test grid below 0.03."""
    before = theory.fit(theory.FitConfig(n_hidden=300, steps=0))["metrics"]
    after = theory.fit(theory.FitConfig(n_hidden=300, steps=300))["metrics"]
    assert after["mean_error"] < 0.03 and after["mean_error"] < 0.2 * before["mean_error"]
    assert after["n_trainable"] == 300


@pytest.mark.parametrize("mode,n_trainable", [("bias", 50), ("readout", 50), ("full", 50 * 2 + 50 + 50)])
def test_modes_train_what_they_say(mode, n_trainable):
    out = theory.fit(theory.FitConfig(target="smooth2d", mode=mode, n_hidden=50, steps=20))
    assert out["metrics"]["n_trainable"] == n_trainable
    assert out["arrays"]["f"].shape == (len(theory.points(2, "test")),)


def test_readout_least_squares_is_optimal_for_its_features():
    """No other output weights do better on the training grid than the least-squares ones (a small perturbation is worse)."""
    import torch
    cfg = theory.FitConfig(mode="readout", n_hidden=40)
    x = torch.from_numpy(theory.points(1, "train")).float()
    y = torch.from_numpy(theory.target(x[:, 0].double().numpy())).float()
    net = theory.nets.RandomMLP(1, 40, 1, "readout", seed=0, scale=theory.R)
    with torch.no_grad():
        net.b.copy_(theory.nets.draw((40,), 0, "b0", "uniform", theory.R))
        H = torch.relu(x @ net.W_in.T + net.b).double()
        sol = torch.linalg.lstsq(H, y.double()[:, None], rcond=1e-6, driver="gelsd").solution[:, 0]
        loss = ((H @ sol - y) ** 2).mean()
        worse = ((H @ (sol + 1e-3 * torch.randn(40, dtype=torch.float64)) - y) ** 2).mean()
    assert loss < worse
    assert theory.fit(cfg)["metrics"]["mean_error"] < 0.05


def test_step_biases_get_no_gradient_and_do_not_move():
    cfg = theory.FitConfig(activation="step", n_hidden=50, steps=50)
    assert theory.fit(cfg)["metrics"]["sup_error"] == theory.fit(theory.FitConfig(
        activation="step", n_hidden=50, steps=0))["metrics"]["sup_error"]


def test_hopf_is_the_euler_map_and_stays_bounded():
    z = dynamics.hopf(300)
    u, v = z[10]
    r2 = u * u + v * v
    assert np.allclose(z[11], [u + 0.1 * ((1 - r2) * u - 2 * np.pi / 2.5 * v), v + 0.1 * ((1 - r2) * v + 2 * np.pi / 2.5 * u)])
    assert np.all(np.linalg.norm(z, axis=1) < 1.2) and np.linalg.norm(z[-1]) > 0.9


def test_bias_only_rnn_learns_and_keeps_its_weights():
    out0 = theory.fit_rnn(theory.RNNConfig(n_hidden=100, horizon=20, steps=0))
    out = theory.fit_rnn(theory.RNNConfig(n_hidden=100, horizon=20, steps=300))
    assert out["metrics"]["n_trainable"] == 200  # b and the initial state
    assert out["metrics"]["rmse"] < 0.5 * out0["metrics"]["rmse"]


@pytest.mark.parametrize("cls,kwargs,error", [
    (theory.FitConfig, dict(target="cubic"), "target"),
    (theory.FitConfig, dict(mode="weights"), "mode"),
    (theory.FitConfig, dict(activation="gelu"), "activation"),
    (theory.FitConfig, dict(n_hidden=0), "n_hidden"),
    (theory.FitConfig, dict(lr=0.0), "lr"),
    (theory.MatchConfig, dict(activation="sigmoid"), "activation"),
    (theory.MatchConfig, dict(eps=-0.1), "eps"),
    (theory.RNNConfig, dict(mode="readout"), "mode"),
    (theory.RNNConfig, dict(horizon=1), "horizon"),
    (theory.RNNConfig, dict(gain=0.0), "gain"),
])
def test_bad_configs(cls, kwargs, error):
    with pytest.raises(ValueError, match=error):
        cls(**kwargs)


def test_run_dispatches_and_caches(tmp_path):
    cfg = theory.FitConfig(n_hidden=10, steps=5)
    first = experiments.run(cfg, root=tmp_path)
    assert experiments.run(cfg, root=tmp_path, compute=False)["metrics"] == first["metrics"]
    assert experiments.run(theory.RNNConfig(n_hidden=5, steps=1), root=tmp_path, compute=False) is None


THEORY_PRESETS = ["theory_matching", "theory_gradient", "theory_tolerance", "theory_width", "theory_activation",
                  "theory_rnn", "theory_rnn_rates", "theory_bound", "theory_heldout"]


@pytest.mark.parametrize("preset", THEORY_PRESETS)
@pytest.mark.parametrize("seeds", [None, [0, 1, 2]])
def test_presets_have_unique_runs(preset, seeds):
    cfgs = presets.PRESETS[preset].configs("paper", seeds)
    assert len(set(cfgs)) == len(cfgs) > 0
    assert all(type(c) in theory.RUNNERS for c in cfgs)


def test_collect_gives_a_row_per_run_with_its_metrics(tmp_path):
    """The chapter's tables: computed once, then read back with compute off; a failed construction has no error."""
    df = experiments.collect("theory_tolerance", "quick", results_dir=tmp_path, compute=True, progress=False)
    assert len(df) == len(presets.theory_tolerance("quick")) and df["stored"].all()
    assert {"eps", "n_hidden", "success_rate", "median_sup_error", "small_sup_error"} <= set(df.columns)
    assert df.loc[df["success_rate"] == 0, "median_sup_error"].isna().all()
    again = experiments.collect("theory_tolerance", "quick", results_dir=tmp_path)
    assert again["success_rate"].tolist() == df["success_rate"].tolist()


# --- The width bound, the matching it bounds, and the eta -> epsilon relation ---------------------------

CLUSTER = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [-0.5, -0.5]])  # three small units in one place, one apart


def exact_failure(n, p):
    """CLUSTER with boxes of probability p each (disjoint): partners exist iff >= 3 random units in the first box
    and >= 1 in the second (multinomial counts)."""
    from scipy.stats import binom
    from math import comb
    both = sum(comb(n, k) * p ** k * (1 - 2 * p) ** (n - k) for k in range(3))  # <= 2 in the first, none in the second
    return binom.cdf(2, n, p) + (1 - p) ** n - both


def test_on_clustered_units_the_bounds_hold_and_the_first_formula_does_not():
    """2,000 simulated networks per width: the failure rate stays under both bounds (its interval's lower end),
    matches the exact multinomial value, and is far above the first version's formula m (1 - p)^(n - m)."""
    eta, draws, rng = 0.1, 2000, np.random.default_rng(0)
    p = float(theory.unit_probability(CLUSTER, eta)[0])
    assert p == pytest.approx(0.01)
    n_star = np.array([theory.partners(rng.uniform(-1, 1, (1000, 2)), CLUSTER, eta)[0] or np.inf for _ in range(draws)])
    for n in (300, 500, 1000):
        fails = int((n_star > n).sum())
        lo, hi = theory.clopper_pearson(fails, draws)
        assert lo <= exact_failure(n, p) <= hi, n
        assert lo <= theory.group_bound(n, CLUSTER, eta) and lo <= theory.hall_bound(n, CLUSTER, eta), n
    lo, _ = theory.clopper_pearson(int((n_star > 500).sum()), draws)
    assert theory.heuristic(500, CLUSTER, eta) < lo / 3  # 0.027 against a failure rate near 0.13


def test_bounds_fall_with_width_and_their_widths_are_where_they_reach_delta():
    w, c, a = theory.small_network()
    small = np.c_[w, a]
    for bound in (theory.group_bound, theory.hall_bound, theory.heuristic):
        values = bound(np.array([100, 1000, 3000, 10000]), small, 0.05)
        assert np.all(np.diff(values) <= 0)
        n = theory.bound_width(bound, small, 0.05, delta=0.05)
        assert bound(n, small, 0.05) <= 0.05 < bound(n - 1, small, 0.05)
    # the group bound's width is m (R / eta)^nu log(m / delta) to within rounding
    m, p = len(w), (0.05 / theory.R) ** 2
    assert theory.bound_width(theory.group_bound, small, 0.05) == pytest.approx(m * np.log(m / 0.05) / -np.log1p(-p), rel=1e-3)


def test_union_volume_of_boxes():
    assert theory.union_volume(np.array([[0.0, 0.0]]), 0.1) == pytest.approx(0.01)
    assert theory.union_volume(np.array([[0.0, 0.0], [0.1, 0.0]]), 0.1) == pytest.approx(0.3 * 0.2 / 4)
    assert theory.union_volume(np.array([[0.0, 0.0], [0.0, 0.0]]), 0.1) == pytest.approx(0.01)
    assert theory.union_volume(np.array([[1.0, 1.0]]), 0.1) == pytest.approx(0.01 / 4)  # clipped to the cube
    assert theory.unit_probability(np.array([[1.0, 1.0]]), 0.1)[0] == pytest.approx(0.01 / 4)


def test_maximum_matching_finds_partners_the_greedy_search_misses():
    """Small units A = (0, 0) and B = (0.15, 0), eta = 0.1. Random unit u1 = (0.07, 0) is near both, u2 = (-0.09, 0)
    near A only: the nearest-first search gives u1 to A and leaves B without; the matching gives A u2 and B u1."""
    small = np.array([[0.0, 0.0], [0.15, 0.0]])
    u1, u2, far = [0.07, 0.0], [-0.09, 0.0], [0.9, 0.9]
    n, j = theory.partners(np.array([u1, u2]), small, 0.1)
    assert n == 2 and j.tolist() == [1, 0]
    assert theory.partners(np.array([u1, far, u2, far]), small, 0.1)[0] == 3  # the smallest prefix
    assert theory.partners(np.array([u1, far, far]), small, 0.1) == (None, None)


def test_eta_to_epsilon_bound_is_attained_on_a_hand_built_network():
    """One unit relu(x) (w = 1, c = 0, a = 1) copied with w' = a' = 1 + eta: at x = 1 the copy is off by
    (1 + eta)^2 - 1 = eta (S + |a| + eta) with S = sup relu(x) = 1: the bound, exactly."""
    one = (np.array([1.0]), np.array([0.0]), np.array([1.0]))
    for eta in (0.1, 0.05, 0.01):
        gap = theory.sup_gap(np.array([1 + eta]), one[1], np.array([1 + eta]), *one)
        assert gap == pytest.approx(theory.copy_error_bound(*one, eta)) == pytest.approx(eta * (2 + eta))


def test_no_copy_within_eta_breaks_the_bound_and_the_gap_is_exact():
    w, c, a = theory.small_network()
    rng = np.random.default_rng(3)
    for eta in (0.1, 0.02):
        bound = theory.copy_error_bound(w, c, a, eta)
        for _ in range(200):
            w2, a2 = w + rng.uniform(-eta, eta, len(w)), a + rng.choice([-eta, eta], len(a))
            gap = theory.sup_gap(w2, c, a2, w, c, a)
            dense = np.abs(theory.evaluate(w2, c, a2, theory.FINE) - theory.evaluate(w, c, a, theory.FINE)).max()
            assert dense <= gap + 1e-12 and gap <= bound
            assert gap - dense < 2e-3 * bound  # the kinks found the sup the fine grid nearly reaches


def test_bound_run_is_consistent():
    out = theory.evaluate_config(theory.TheoryConfig(method="bound", eps=0.1, draws=40, n_hidden=4000))
    m = out["metrics"]
    assert m["censored"] == 0 and m["width_95_lo"] <= m["width_95"] <= (m["width_95_hi"] or np.inf)
    assert m["max_distance"] <= 0.1 and m["max_copy_error"] <= m["copy_error_bound"]
    assert m["group_covers"] == m["hall_covers"] == 1.0 and m["group_width"] > m["hall_width"]
    n_star = out["arrays"]["n_star"]
    assert np.sort(n_star)[math.ceil(0.95 * 40) - 1] == m["width_95"]
    curve = out["curve"]
    assert curve["fail"][0] == 1.0 and curve["fail"][-1] == 0.0 and len(curve["n"]) == len(curve["hall"])
    # the width-n network of ``match`` is the first n units of the draw: partners there iff n >= n_star
    k = int(np.argmin(n_star))
    assert theory.match(int(n_star[k]), 0.1, seed=k)["active"] >= 1


def test_heldout_scores_only_when_asked():
    """Stored runs keep their metrics: the held-out scores come only with heldout=True (a new key)."""
    from biaslearn import results
    plain = theory.TheoryConfig(method="gradient", n_hidden=50, steps=20)
    assert "heldout" not in results.canonical(plain)
    assert "heldout_sup_error" not in theory.evaluate_config(plain)["metrics"]
    out = theory.evaluate_config(plain.replace(heldout=True))["metrics"]
    assert {"heldout_sup_error", "heldout_mean_error", "small_heldout_sup_error"} <= set(out)
    assert out["sup_error"] == theory.evaluate_config(plain)["metrics"]["sup_error"]
    assert not np.isin(theory.MID, theory.GRID).any()


def test_clipping_is_new_and_changes_only_clipped_runs():
    from biaslearn import results
    cfg = theory.RNNConfig(mode="full", n_hidden=20, horizon=10, steps=20)
    assert "clip" not in results.canonical(cfg) and results.canonical(cfg.replace(clip=1.0))["clip"] == 1.0
    a, b = theory.fit_rnn(cfg), theory.fit_rnn(cfg.replace(clip=1e-3))
    assert a["metrics"]["rmse"] != b["metrics"]["rmse"]


def test_the_rnn_reference_rates_are_the_winners_of_their_grid():
    """THEORY_RNN_LR holds, per width, the rate of lowest rmse over the horizon among the stored grid (seed 0)."""
    df = experiments.collect("theory_rnn_rates", "paper", progress=False)
    from biaslearn import report
    complete = df.groupby("n_hidden")["stored"].all()
    done = df[df["n_hidden"].isin(complete[complete].index)]
    winners = report.winners(done.assign(fit=-done["rmse"]), ("n_hidden",), "fit") if len(done) else {}
    assert {k[0]: lr for k, lr in winners.items()} == presets.THEORY_RNN_LR
