"""The width chapter's analysis: matched widths, fitted laws, their bootstrap, unit overlap."""
import numpy as np
import pandas as pd
import pytest

from biaslearn import scaling


def test_by_width_takes_the_stored_rows_of_a_collected_table():
    runs = pd.DataFrame({"n_hidden": [100, 10, 100, 10, 1000], "seed": [0, 0, 1, 1, 0],
                         "eval_acc": [0.7, 0.5, 0.8, np.nan, np.nan], "wall_seconds": [3.0, 1.0, 4.0, None, None],
                         "stored": [True, True, True, False, False]})
    curve = scaling.by_width(runs)
    assert curve == {10: [0.5], 100: [0.7, 0.8]} and list(curve) == [10, 100]   # ascending, rows in order
    assert all(type(k) is int and all(type(v) is float for v in vs) for k, vs in curve.items())
    assert scaling.by_width(runs, "wall_seconds") == {10: [1.0], 100: [3.0, 4.0]}
    assert scaling.by_width(runs[runs["n_hidden"] == 1000]) == {}                 # not stored: no point
    nothing = pd.DataFrame({"n_hidden": [10], "stored": [False]})                # no run stored: no metric column
    assert scaling.by_width(nothing) == {} and scaling.by_width(nothing.iloc[:0]) == {}


def test_matched_width_interpolates_in_log_width_and_never_extrapolates():
    curve = {10: [0.5, 0.5], 100: [0.7, 0.7], 1000: [0.9]}
    assert scaling.matched_width(curve, 0.7) == pytest.approx(100)
    assert scaling.matched_width(curve, 0.8) == pytest.approx(np.sqrt(100 * 1000))  # halfway in log
    assert scaling.matched_width(curve, 0.95) is None   # beyond the widest run
    assert scaling.matched_width(curve, 0.4) is None    # below the narrowest: not measured
    assert scaling.interpolate(curve, np.sqrt(10 * 100)) == pytest.approx(0.6)
    assert scaling.interpolate(curve, 5) is None and scaling.interpolate(curve, 2000) is None


def test_power_law_recovers_a_known_exponent():
    n = np.array([10, 30, 100, 300])
    fit = scaling.fit_law(n, 3 * n ** 2.0)
    assert fit["alpha"] == pytest.approx(2.0) and fit["C"] == pytest.approx(3.0) and fit["rms_log"] < 1e-9
    assert scaling.fit_law(n, np.exp(0.01 * n), law="exp")["alpha"] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="at least two"):
        scaling.fit_law([10], [5])
    with pytest.raises(ValueError, match="unknown law"):
        scaling.fit_law(n, n, law="cubic")


def test_matched_widths_and_bootstrap_on_a_quadratic_world():
    """Full training at width n reaches acc(n); bias-only reaches the same acc at width n^2."""
    acc = lambda n: 1 - 1 / np.log(n + 1)  # increasing in n
    rng = np.random.default_rng(1)
    full = {n: list(acc(n) + rng.normal(0, 1e-4, 3)) for n in (10, 30, 100)}
    bias = {n: list(acc(np.sqrt(n)) + rng.normal(0, 1e-4, 3)) for n in (10, 100, 1000, 10_000, 100_000)}
    pts = [(n, w) for n, _, w, _ in scaling.matched_widths(bias, full) if w]
    assert len(pts) == 3
    assert scaling.fit_law(*zip(*pts))["alpha"] == pytest.approx(2.0, abs=0.15)
    alphas = scaling.bootstrap_fits(bias, full, draws=50)
    assert len(alphas) == 50 and abs(np.median(alphas) - 2.0) < 0.2


def test_matched_widths_say_why_there_is_no_match():
    bias = {100: [0.5], 1000: [0.8]}
    full = {1: [0.3], 2: [0.6], 3: [0.9]}
    assert [(n, w is not None, why) for n, _, w, why in scaling.matched_widths(bias, full)] == [
        (1, False, scaling.BELOW), (2, True, ""), (3, False, scaling.NOT_REACHED)]


def test_jaccard_and_active_units():
    a, b = np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool)
    assert scaling.jaccard(a, b) == pytest.approx(1 / 3)
    assert scaling.jaccard(a, a) == 1.0 and scaling.jaccard(~a & a, ~a & a) == 1.0
    rng = np.random.default_rng(0)
    x, y = rng.random(200_000) < 0.9, rng.random(200_000) < 0.5
    assert scaling.jaccard(x, y) == pytest.approx(scaling.chance_jaccard(0.9, 0.5), abs=0.005)
    stored = {"arrays": {"active": np.packbits(np.array([1, 0, 1, 1, 0], bool))}}
    assert scaling.active_units(stored, 5).tolist() == [True, False, True, True, False]


def test_unit_variances_and_pearson_on_a_hand_built_case():
    P = np.array([[0.0, 1.0, -5.0], [2.0, 3.0, -5.0]], dtype=np.float32)   # 2 inputs, 3 units
    v = scaling.unit_variances(P, np.zeros(3, np.float32))
    np.testing.assert_allclose(v, [1.0, 1.0, 0.0])                          # relu; the third unit is dead
    np.testing.assert_allclose(scaling.unit_variances(P, np.zeros(3, np.float32), keep=[1, 0, 1]), [1.0, 0, 0])
    assert scaling.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert scaling.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(scaling.pearson([1, 1, 1], [1, 2, 3]))


def test_mask_compare_reads_its_four_runs(tmp_path):
    from biaslearn import experiments, presets
    cfg = presets.width_mask_compare("quick", [0], ["synthetic"])[0]
    assert experiments.ready(cfg, tmp_path) == "4 runs it reads are not stored"
    for c in cfg.runs:
        experiments.run(c, tmp_path, progress=False)
    r = experiments.run(cfg, tmp_path, progress=False)["metrics"]
    assert set(r["r_var"]) == {"bias_mask", "bias_bias", "mask_mask", "bias_untrained", "mask_untrained"}
    assert all(-1 <= x <= 1 for x in r["r_var"].values())
    assert 0 < r["kept"]["mask"] <= 1
    with pytest.raises(Exception, match="runs: bias and mask"):
        scaling.MaskCompareConfig(runs=cfg.runs[:3], seed=0)
