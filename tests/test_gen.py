"""The generation chapter's code (biaslearn.gen): the van der Pol integrator against scipy, the Jacobian against
autograd, the gain law of the recurrent weights, tau from signals of known autocorrelation, the closed loop, and
small runs of both runners (a learning floor for the generator)."""
import math

import numpy as np
import pytest
import torch

from biaslearn import gen, nets, presets, report, seq
from biaslearn.config import ConfigError


def test_vanderpol_matches_scipy_on_its_grid():
    from scipy.integrate import solve_ivp
    n, dt, mu = 200, 0.25, 1.0
    ours = gen.vanderpol(n, dt, mu, (2.0, 0.0), substeps=10)
    t = dt * np.arange(n)
    ref = solve_ivp(lambda _, s: [s[1], mu * (1 - s[0] ** 2) * s[1] - s[0]], (0, t[-1]), [2.0, 0.0],
                    t_eval=t, method="DOP853", rtol=1e-12, atol=1e-12).y.T
    assert ours.shape == (n, 2) and np.abs(ours - ref).max() < 5e-5
    # fourth order: half the step, about 1/16 of the error
    finer = np.abs(gen.vanderpol(n, dt, mu, (2.0, 0.0), substeps=20) - ref).max()
    assert finer < np.abs(ours - ref).max() / 10


def test_vanderpol_transient_lands_on_the_limit_cycle_of_the_stated_period():
    x = gen.vanderpol(2000, transient=gen.VDP_TRANSIENT)[:, 0]
    up = np.nonzero((x[:-1] < 0) & (x[1:] >= 0))[0]          # upward zero crossings
    frac = up + (-x[up]) / (x[up + 1] - x[up])               # interpolated crossing times (samples)
    assert np.diff(frac).mean() * gen.VDP_DT == pytest.approx(gen.VDP_PERIOD, rel=1e-3)
    assert x.max() == pytest.approx(2.0, abs=0.02)           # amplitude ~2 at mu = 1


def test_jacobian_matches_autograd():
    net = nets.RandomRNN(1, 30, 1, "bias", seed=3, init="gaussian", scale=1.0, gain=1.5)
    h = torch.relu(torch.randn(30, generator=torch.Generator().manual_seed(0)))
    x = torch.tensor([0.7])
    J = gen.jacobian(net, h, x)
    ref = torch.autograd.functional.jacobian(lambda v: torch.relu(net.W_rec @ v + net.W_in @ x + net.b), h)
    assert torch.allclose(J, ref, atol=1e-6)
    assert (J.abs().sum(1) == 0).any() and (J.abs().sum(1) > 0).any()   # some units off, some on: a real test


@pytest.mark.parametrize("g", [0.5, 1.0, 1.5])
def test_recurrent_weights_have_the_stated_gain(g):
    n = 400
    W = nets.RandomRNN(1, n, 1, "bias", seed=1, init="gaussian", scale=1.0, gain=g).W_rec
    # variance g^2/n: its estimate from n^2 entries has relative s.d. sqrt(2 / n^2) = 0.35%; allow 4 s.d.
    assert W.var().item() * n / g ** 2 == pytest.approx(1.0, abs=4 * math.sqrt(2) / n)
    # circular law: the spectral radius tends to g (finite-n fluctuations are a few percent at n = 400)
    assert torch.linalg.eigvals(W).abs().max().item() == pytest.approx(g, rel=0.05)


def test_the_gain_option_leaves_every_default_draw_unchanged():
    a, b = nets.RandomRNN(2, 20, 1, "bias", seed=4), nets.RandomRNN(2, 20, 1, "bias", seed=4, gain=None)
    assert all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("W_in", "W_rec", "b", "W_out"))
    assert torch.equal(a.W_rec, nets.draw((20, 20), 4, "W_rec", "uniform", 0.1))
    c = nets.RandomRNN(2, 20, 1, "bias", seed=4, gain=1.0)
    assert torch.equal(c.W_in, a.W_in) and not torch.equal(c.W_rec, a.W_rec)  # only W_rec follows the gain
    with pytest.raises(ValueError, match="gain -1: give a positive number"):
        nets.RandomRNN(2, 20, 1, gain=-1)


def test_tau_of_signals_with_known_autocorrelation():
    # a cosine of period P: autocorrelation cos(2 pi k / P), first <= 0.5 at k = P / 6
    assert gen.hwhm(np.cos(2 * np.pi * np.arange(6000) / 60)) == 10
    # AR(1) with phi = 0.95: autocorrelation phi^k, half at ln 0.5 / ln 0.95 = 13.5 -> first lag 14
    g = np.random.default_rng(0)
    x = np.zeros(200_000)
    e = g.standard_normal(len(x))
    for t in range(1, len(x)):
        x[t] = 0.95 * x[t - 1] + e[t]
    assert gen.hwhm(x) == 14
    assert gen.autocorrelation(x, 3)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="stays above 0.5"):
        gen.hwhm(np.arange(100.0), 10)


def test_the_forecast_tau_in_presets_is_lorenz_x_hwhm_at_the_books_step():
    assert gen.lorenz_tau() == presets.FORECAST_TAU


def test_ahead_pairs_and_closed_loop():
    s = np.arange(30.0)
    X, Y = gen.ahead_pairs(s, context=3, tau=4)
    assert X.shape == (24, 3, 1) and list(X[0, :, 0]) == [0, 1, 2] and Y[0, 0] == 6 and Y[-1, 0] == 29
    # persistence on a signal of period tau is exact, in closed loop too
    tau = 5
    p = np.sin(2 * np.pi * np.arange(100) / tau)
    F = gen.closed_loop(lambda w: w[:, -1], p, [20, 50], tau, 3, 40)
    assert np.allclose(F, np.stack([p[20:60], p[50:90]]))
    # a step that adds 1 to its input compounds: every tau samples the error grows by 1
    F = gen.closed_loop(lambda w: w[:, -1] + 1, np.zeros(60), [10], tau, 3, 15)
    assert list(F[0, [0, tau, 2 * tau]]) == [1, 2, 3]
    with pytest.raises(ValueError, match="needs 7 true values before it"):
        gen.closed_loop(lambda w: w[:, -1], p, [2], tau, 3, 10)


@pytest.mark.parametrize("bad, message", [
    (dict(mode="mask"), "mode='mask': use one of"), (dict(gain=0.0), "gain > 0"), (dict(horizon=20), "horizon >"),
    (dict(task="sines"), "task='sines'")])
def test_bad_generation_configs_are_refused(bad, message):
    with pytest.raises(ConfigError, match=message):
        gen.GenConfig(**bad)


def test_bad_forecast_configs_are_refused():
    with pytest.raises(ConfigError, match="n_hidden == 0 for mode 'linear'"):
        gen.ForecastConfig(mode="linear", n_hidden=10)
    with pytest.raises(ConfigError, match="closed loop stays inside"):
        gen.ForecastConfig(closed=2000)


def test_a_small_generator_learns_the_cosine_and_the_readout_fits_its_horizon():
    cfg = gen.GenConfig(mode="full", n_hidden=50, steps=300, lr=1e-2, horizon=50, n_val=25, n_test=50)
    r = gen.generate(cfg, "cpu")
    m = r["metrics"]
    assert m["r2_train"] > 0.9 and m["r2"] == m["r2_test"] and abs(m["r2_mean"]) < 0.1
    assert m["n_trainable"] == 50 * 50 + 50 + 50 + 50          # W_rec, W_in, b, W_out: not the fixed h0
    assert r["arrays"]["eig_re"].shape == (len(gen.JAC_AT), gen.JAC_TIMES, 50)
    assert r["curve"]["step"][0] == 0 and r["curve"]["step"][-1] == 300
    ro = gen.generate(cfg.replace(mode="readout"), "cpu")
    assert ro["metrics"]["n_trainable"] == 50 and ro["metrics"]["r2_train"] > ro["metrics"]["r2"]
    b = gen.generate(cfg.replace(mode="bias", steps=5), "cpu")
    assert b["metrics"]["n_trainable"] == 50 and b["arrays"]["b"].shape == (50,)


def test_a_forecast_run_scores_persistence_and_the_closed_loop():
    cfg = gen.ForecastConfig(mode="readout", n_hidden=32, n_train=200, n_val=100, n_test=200, closed=40, tau=13, context=5)
    r = gen.forecast(cfg, "cpu")
    m, a = r["metrics"], r["arrays"]
    from biaslearn import dynamics
    s = dynamics.series("lorenz", 0, (212, 112, 212), 5)
    X, Y = gen.ahead_pairs(s["test"][:, 0], 5, 13)             # the scored window, rebuilt
    assert np.allclose(Y, a["target"]) and a["pred"].shape == (200, 1)
    assert m["r2_persistence"] == pytest.approx(seq.r2(X[:, -1], Y)[0])
    assert m["skill"] == pytest.approx(1 - m["mse"] / np.mean((X[:, -1] - Y) ** 2), rel=1e-5)
    assert m["r2"] > m["r2_persistence"]
    assert a["closed_err"].shape == (40,) and a["closed"].shape == a["closed_true"].shape == (cfg.starts, 40)
    # for leads up to tau the closed loop sees true inputs only: its error is of the true-input forecast's size
    assert m["closed_err_tau"] < 1 and m["closed_err_3tau"] == pytest.approx(float(a["closed_err"][38]))
    lin = gen.forecast(cfg.replace(mode="linear", n_hidden=0), "cpu")
    assert lin["metrics"]["n_trainable"] == cfg.context + 1


def test_median_iqr_and_by_value():
    import pandas as pd
    assert report.median_iqr([1.0, 2.0, 3.0, 4.0, float("nan"), None]) == (2.5, 1.75, 3.25, 4)
    assert report.median_iqr([])[3] == 0
    assert gen.fmt_median([1.0, 2.0, 3.0, -4e37], 2) == "1.50 [-1.0e+37, 2.25] (n=4)" and gen.fmt_median([]) == "-"
    df = pd.DataFrame({"mode": ["bias"] * 3 + ["full"], "gain": [0.5, 0.5, 1.5, 0.5], "r2": [0.1, -1e9, 0.9, 0.99],
                       "stored": [True, True, True, False]})
    t = gen.by_value(df, "gain", "r2")
    assert list(zip(t["mode"], t["gain"], t["n"])) == [("bias", 0.5, 2), ("bias", 1.5, 1)]  # the unstored run left out
    assert t["median"].iloc[1] == 0.9


def test_eigenvalues_of_a_stored_result_are_those_of_its_jacobian():
    cfg = gen.GenConfig(mode="readout", n_hidden=20, horizon=50, n_val=10, n_test=10)
    r = gen.generate(cfg, "cpu")
    ev = gen.eigenvalues(r)
    assert ev.shape == (1, gen.JAC_TIMES, 20) and np.iscomplexobj(ev)
    assert np.abs(ev).max(2).mean() == pytest.approx(r["metrics"]["radius_init"])


def test_scores_print_short_even_when_a_network_blew_up():
    from biaslearn import report
    assert report.num(0.123456) == "0.1235" and report.num(-0.5, 3) == "-0.500"
    assert report.num(-1.5735e73) == "-1.6e+73" and report.num(2e3) == "2.0e+03"
