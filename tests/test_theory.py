"""The proof's unit-matching construction and the gradient-trained comparison (theory chapter)."""
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
                  "theory_rnn"]


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
