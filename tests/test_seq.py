"""RNN training on time series: the config's checks, what each mode learns, the ridge readout, the
linear baseline (mode "linear") and the skill relative to persistence, the free run, a learning floor
on a tiny problem, runs through experiments.run, the presets (stored keys unchanged), and the
selection table the chapters show. (That the chosen rates are the stored validation winners is
checked in tests/test_presets.py.)"""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from biaslearn import dynamics, experiments, nets, seq
from biaslearn import presets as ps
from biaslearn.seq import SeqConfig

TINY = dict(experiment="t", n_hidden=32, n_train=120, n_val=60, steps=20, batch_size=16)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(task="henon"), ValueError, "task"),
    (dict(mode="weights"), ValueError, "mode"),
    (dict(split="train"), ValueError, "split"),
    (dict(n_hidden=0), ValueError, "n_hidden"),
    (dict(context=0), ValueError, "context"),
    (dict(lr=0.0), ValueError, "lr > 0"),
    (dict(noise=-1.0), ValueError, "noise >= 0"),
    (dict(steps=-1), ValueError, "steps >= 0"),
    (dict(free_steps=5000), ValueError, "free_steps <= n_val"),
    (dict(mode="linear"), ValueError, "n_hidden == 0 for mode 'linear'"),   # the default width: not 0
    (dict(mode="linear", n_hidden=5), ValueError, "n_hidden == 0"),
    (dict(mode="readout", n_hidden=0), ValueError, "n_hidden >= 1"),
    (dict(n_hidden=1.5), TypeError, "n_hidden must be int"),
    (dict(seed=True), TypeError, "seed must be int"),
    (dict(task=3), TypeError, "task must be str"),
])
def test_bad_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        SeqConfig(**kwargs)


def test_config_ints_for_floats_give_the_same_key():
    from biaslearn import results
    assert results.key(SeqConfig(lr=1)) == results.key(SeqConfig(lr=1.0))


def test_r2():
    y = np.random.default_rng(0).normal(size=(50, 2))
    assert np.allclose(seq.r2(y, y), 1) and np.allclose(seq.r2(np.broadcast_to(y.mean(0), y.shape), y), 0)


def _data(task="sines", n=120):
    s = dynamics.series(task, 0, (n, 60, n))
    X, Y = (torch.tensor(a, dtype=torch.float32) for a in dynamics.pairs(s["train"]))
    Xv, Yv = (torch.tensor(a, dtype=torch.float32) for a in dynamics.pairs(s["val"]))
    return X, Y, Xv, Yv


@pytest.mark.parametrize("mode,learned", [("bias", {"b"}), ("full", {"W_in", "W_rec", "b", "W_out", "h0"})])
def test_fit_changes_only_what_the_mode_learns(mode, learned):
    X, Y, _, _ = _data()
    model = nets.RandomRNN(1, 32, 1, mode, seed=1)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    seq.fit(model, X, Y, SeqConfig(mode=mode, **TINY))
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == learned


def test_ridge_readout_recovers_a_linear_readout():
    """Targets made by a known readout of the network's own last hidden state: ridge finds it."""
    X, _, Xv, _ = _data()
    model = nets.RandomRNN(1, 32, 1, "readout", seed=2)
    W_true = torch.randn(1, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        Y, Yv = model.states(X)[:, -1] @ W_true.T, model.states(Xv)[:, -1] @ W_true.T
    alpha = seq.fit_readout(model, X, Y, Xv, Yv)
    assert alpha in seq.RIDGE_GRID
    assert seq.r2(seq.predict(model, Xv).numpy(), Yv.numpy())[0] > 0.999
    # the same penalty solved independently: least squares on [H; sqrt(N lam) I] against [Y; 0]
    H = model.states(X)[:, -1].detach().double().numpy()
    lam = alpha * (H ** 2).sum(0).mean() / len(H)
    A = np.vstack([H, np.sqrt(len(H) * lam) * np.eye(32)])
    W = np.linalg.lstsq(A, np.vstack([Y.double().numpy(), np.zeros((32, 1))]), rcond=None)[0]
    assert np.allclose(model.W_out.detach().numpy(), W.T, rtol=1e-3, atol=1e-4)
    # the hidden weights were not touched: W_in, W_rec, b are buffers of the seed's draw
    assert torch.equal(model.W_rec, nets.RandomRNN(1, 32, 1, "bias", seed=2).W_rec)


def test_free_run_feeds_its_own_predictions_back():
    model = nets.RandomRNN(1, 16, 1, "bias", seed=3)
    start = torch.randn(5, 1, generator=torch.Generator().manual_seed(1))
    out = seq.free_run(model, start, 3)
    window = torch.cat([start[1:], out[:1]])          # the second step saw the first prediction
    assert torch.allclose(out[0], seq.predict(model, start[None])[0])
    assert torch.allclose(out[1], seq.predict(model, window[None])[0])


@pytest.mark.parametrize("err,expected", [([0.1, 0.2, 0.5, 0.1], 2), ([0.1, 0.1], 2), ([0.9], 0)])
def test_tracking_steps(err, expected):
    true = np.ones((len(err), 1))   # rms |true| = 1, so the error is err itself
    assert seq.tracking_steps(true + np.array(err)[:, None], true) == expected


def test_bias_only_learns_the_sines_above_a_floor():
    """Width 128, 300 steps: bias-only reaches R² >= 0.25 on the held-out window, at least 0.2 above
    the untrained network (about 0.06), and the training loss falls (narrow bias-only networks learn
    this slowly: the chapter shows R² rising with width)."""
    cfg = SeqConfig(experiment="t", mode="bias", n_hidden=128, n_train=300, n_val=60, steps=300,
                    batch_size=32, lr=3e-2)
    untrained = seq.train(dataclasses.replace(cfg, steps=0), progress=False)["metrics"]["r2"]
    r = seq.train(cfg, progress=False)
    assert r["metrics"]["r2"] >= max(0.25, untrained + 0.2)
    assert r["curve"]["train_loss"][-1] < 0.9 * r["curve"]["train_loss"][0]


def test_full_training_learns_lorenz_above_a_floor():
    cfg = SeqConfig(experiment="t", task="lorenz", mode="full", n_hidden=32, n_train=300, n_val=60,
                    steps=300, batch_size=32, lr=3e-3, noise=1.0)
    assert seq.train(cfg, progress=False)["metrics"]["r2"] >= 0.9


def test_train_entry_point_on_lorenz_with_free_run(tmp_path, monkeypatch):
    cfg = SeqConfig(task="lorenz", mode="bias", noise=1.0, free_steps=30, **TINY)
    r = experiments.run(cfg, root=tmp_path, progress=False)
    m, a = r["metrics"], r["arrays"]
    assert {"r2", "r2_x", "r2_y", "r2_z", "r2_clean_x", "r2_persistence", "free_lyapunov_times"} <= set(m)
    assert a["pred"].shape == a["target"].shape == (120, 3) and a["free"].shape == (30, 3)
    assert m["n_trainable"] == 32 and a["b"].shape == (32,)
    assert m["free_lyapunov_times"] == pytest.approx(m["free_steps_tracked"] * dynamics.LORENZ_DT * dynamics.LYAPUNOV)
    # the truth of the free run is what follows the training window, without noise
    s = dynamics.series("lorenz", cfg.seed, (120, 60, 120), 5, 1.0)
    assert np.allclose(a["free_true"], s["clean"]["val"][:30])
    # stored: a second call loads it without training
    monkeypatch.setattr(seq, "train", lambda *a, **k: pytest.fail("trained again"))
    assert experiments.run(cfg, root=tmp_path)["metrics"] == m


def test_readout_run_scores_the_test_window(tmp_path):
    r = experiments.run(SeqConfig(mode="readout", **TINY), root=tmp_path, progress=False)
    assert r["metrics"]["ridge_alpha"] in seq.RIDGE_GRID and r["metrics"]["r2"] > 0.9 and r["curve"] == {}


def test_presets_are_the_papers_experiments():
    for c in ps.recurrent("paper", modes=("bias",)) + ps.lorenz("paper", modes=("bias",)):
        assert (c.context, c.split, c.mode, c.n_train) == (5, "test", "bias", 2000)
    assert {(c.n_hidden, c.seed) for c in ps.recurrent("paper", modes=("bias",))} == \
        {(n, s) for n in (256, 512, 1024) for s in range(5)}
    lz = ps.lorenz("paper")
    assert {c.n_hidden for c in lz if c.mode != "linear"} == {1024} and {c.noise for c in lz} == {1.0} and len(lz) == 20
    assert all(c.free_steps <= c.n_val + c.context for c in lz)
    assert [c.mode for c in ps.recurrent("paper", seeds=[0], widths=[256])] == list(seq.MODES)
    # the linear baseline: one run per seed, no width, last (so a table's first row is a network)
    for cfgs in (ps.recurrent("paper"), lz, ps.recurrent_coarse("paper")):
        lin = [c for c in cfgs if c.mode == "linear"]
        assert [c.seed for c in lin] == list(range(5)) and {c.n_hidden for c in lin} == {0} and cfgs[-5:] == lin


def test_adding_the_linear_mode_and_coarse_task_kept_every_stored_key():
    """The paper presets' network runs are all stored under the keys they had (mode "linear" and task
    "sines_coarse" added no config field), and the coarse task has folders of its own."""
    from biaslearn import results
    for cfgs in (ps.recurrent("paper"), ps.lorenz("paper"), ps.recurrent_selection("paper"), ps.lorenz_selection("paper")):
        assert all(results.path(c).exists() for c in cfgs if c.mode != "linear")
    assert {c.experiment for c in ps.recurrent_coarse("paper") + ps.recurrent_coarse_selection("paper")} == \
        {"recurrent_coarse", "recurrent_coarse_selection"}
    assert {c.task for c in ps.recurrent_coarse_selection("paper")} == {"sines_coarse"}


def test_coarse_preset_leaves_out_networks_without_a_chosen_rate(monkeypatch):
    monkeypatch.setattr(ps, "SEQ_LR", {k: v for k, v in ps.SEQ_LR.items() if k[0] != "sines_coarse"})
    assert {c.mode for c in ps.recurrent_coarse("paper")} == {"readout", "linear"}
    monkeypatch.setitem(ps.SEQ_LR, ("sines_coarse", "full", 512), 1e-3)
    full = [c for c in ps.recurrent_coarse("paper") if c.mode == "full"]
    assert {c.n_hidden for c in full} == {512, 1024} and {c.lr for c in full} == {1e-3}   # 1024 uses 512's rate
    assert len(ps.recurrent_coarse("quick")) == len(ps.recurrent("quick"))           # quick: every run


def test_selection_never_scores_the_test_window():
    for c in ps.recurrent_selection("paper") + ps.lorenz_selection("paper"):
        assert c.split == "val" and c.experiment.endswith("_selection")


def test_runs_use_the_rate_chosen_at_their_width():
    """Every trained run takes SEQ_LR at its task, mode and width, or at the width SELECTED_AT names;
    and the selection presets run, at each such width, the whole grid of its mode."""
    grids = {}
    for c in ps.recurrent_selection("paper") + ps.lorenz_selection("paper") + ps.recurrent_coarse_selection("paper"):
        grids.setdefault((c.task, c.mode, c.n_hidden), set()).add(c.lr)
    assert {k: g for k, g in grids.items() if k in ps.SEQ_LR} == {k: set(ps.SEQ_LR_GRID[k[1]]) for k in ps.SEQ_LR}
    assert {k for k in grids if k[0] != "sines_coarse"} <= set(ps.SEQ_LR)   # the coarse grids: chosen once run
    for c in ps.recurrent("paper") + ps.lorenz("paper") + ps.recurrent_coarse("paper"):
        if c.mode not in ("readout", "linear"):
            assert c.lr == ps.SEQ_LR[(c.task, c.mode, ps.SELECTED_AT.get((c.mode, c.n_hidden), c.n_hidden))]


def test_linear_baseline_recovers_a_linear_rule():
    """Targets made by a known linear map of the flattened contexts plus an intercept: the ridge fit finds
    them, and agrees with the same penalty solved independently (least squares on augmented rows)."""
    X, _, Xv, _ = _data("lorenz")
    W_true = torch.randn(3, 15, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    c_true = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    Y, Yv = (Z.reshape(len(Z), -1).double() @ W_true.T + c_true for Z in (X, Xv))
    model = seq.LinearAR(5, 3)
    alpha = seq.fit_linear(model, X, Y.float(), Xv, Yv.float())
    assert alpha in seq.RIDGE_GRID and model.n_trainable() == 3 * 15 + 3
    assert seq.r2(seq.predict(model, Xv).numpy(), Yv.numpy()).min() > 0.9999
    Z = X.reshape(len(X), -1).double().numpy()
    Zc, Yc = Z - Z.mean(0), Y.float().double().numpy() - Y.float().double().numpy().mean(0)
    lam = alpha * (Zc ** 2).sum(0).mean() / len(Z)
    A = np.vstack([Zc, np.sqrt(len(Z) * lam) * np.eye(15)])
    W = np.linalg.lstsq(A, np.vstack([Yc, np.zeros((15, 3))]), rcond=None)[0]
    assert np.allclose(model.W.numpy(), W.T, rtol=1e-3, atol=1e-4)


def test_linear_runs_are_scored_like_the_networks(tmp_path):
    """Mode "linear": the same metrics as a network run (per-coordinate R², clean R², persistence, mse, free
    run), its own count of trained numbers, and no curve."""
    cfg = SeqConfig(task="lorenz", mode="linear", noise=1.0, free_steps=30, **dict(TINY, n_hidden=0))
    net = experiments.run(cfg.replace(mode="readout", n_hidden=32), root=tmp_path, progress=False)
    r = experiments.run(cfg, root=tmp_path, progress=False)
    assert set(r["metrics"]) == set(net["metrics"]) and r["curve"] == {}
    assert r["metrics"]["n_trainable"] == 5 * 3 * 3 + 3 and r["metrics"]["ridge_alpha"] in seq.RIDGE_GRID
    assert r["metrics"]["r2_persistence"] == net["metrics"]["r2_persistence"]
    assert r["arrays"]["free"].shape == (30, 3) and set(r["arrays"]) == set(net["arrays"])


def test_skill_relative_to_persistence(tmp_path):
    """skill = 1 - MSE / MSE_persistence: 0 for persistence itself, 1 for a perfect predictor; from stored
    predictions it equals 1 - (1 - R²) / (1 - R²_persistence) for one coordinate, and per coordinate for Lorenz."""
    y = np.random.default_rng(0).normal(size=(40, 2))
    ref = y + 0.3
    assert seq.skill(ref, y, ref) == 0 and seq.skill(y, y, ref) == 1 and seq.skill(y + 0.6, y, ref) == pytest.approx(-3)
    for task, noise in (("sines", 0.0), ("sines_coarse", 0.0), ("lorenz", 1.0)):
        cfg = SeqConfig(task=task, mode="readout", noise=noise, **TINY)
        r = experiments.run(cfg, root=tmp_path, progress=False)
        m, pers = r["metrics"], seq.persistence(cfg)
        assert np.mean(seq.r2(pers, r["arrays"]["target"])) == pytest.approx(m["r2_persistence"], abs=1e-12)
        sk = seq.skills(r)
        assert sk["skill"] == pytest.approx(1 - m["mse"] / np.mean((pers - r["arrays"]["target"]) ** 2), rel=1e-5)
        if task != "lorenz":
            assert sk["skill"] == pytest.approx(seq.skill_from_r2(m["r2"], m["r2_persistence"]), abs=1e-6)
        else:
            per = seq.r2(pers, r["arrays"]["target"])
            for j, n in enumerate("xyz"):
                assert sk[f"skill_{n}"] == pytest.approx(seq.skill_from_r2(m[f"r2_{n}"], per[j]), abs=1e-6)


def _collected(rows):
    """A table shaped like experiments.collect's: (mode, width, lr, validation R² or None if not stored)."""
    return pd.DataFrame([{"task": "sines", "mode": m, "n_hidden": n, "lr": lr, "r2": r2, "stored": r2 is not None}
                         for m, n, lr, r2 in rows])


def test_selection_table_marks_each_winner_and_the_edges():
    df = _collected([("bias", 16, 1e-2, 0.5), ("bias", 16, 3e-2, 0.7), ("bias", 16, 1e-1, 0.6),
                     ("bias", 32, 1e-2, 0.9), ("bias", 32, 3e-2, 0.8), ("bias", 32, 1e-1, None),
                     ("full", 16, 1e-3, None), ("full", 16, 3e-3, None)])
    t = seq.selection(df)
    assert list(t.columns) == ["width", "mode", "learning rate", "validation R²", "chosen"]
    assert t["chosen"].tolist() == ["", "chosen", "", "chosen, on the edge of the grid", "", "", "", ""]
    assert t["validation R²"].tolist() == ["0.5000", "0.7000", "0.6000", "0.9000", "0.8000", "not run",
                                           "not run", "not run"]
    assert t["learning rate"].tolist()[:3] == ["0.01", "0.03", "0.1"] and t["width"].tolist()[3] == 32


def test_selection_table_with_nothing_stored():
    df = _collected([("bias", 16, 1e-2, None)]).drop(columns="r2")  # collect has no metric columns then
    assert seq.selection(df)["validation R²"].tolist() == ["not run"]
    assert seq.selection(df.iloc[:0]).empty


def test_selection_table_of_a_collected_preset(tmp_path):
    """The quick Lorenz grid, computed through experiments.collect: the winners are report.winners'."""
    from biaslearn import report

    df = experiments.collect("lorenz_selection", "quick", results_dir=tmp_path, compute=True, progress=False)
    assert df["stored"].all() and len(df) == len(ps.lorenz_selection("quick"))
    t = seq.selection(df)
    best = report.winners(df, seq.SELECTED_BY, "r2")
    chosen = {(m, int(n), float(lr)) for m, n, lr, mark in zip(t["mode"], t["width"], t["learning rate"], t["chosen"])
              if mark}
    assert chosen == {(k[1], k[2], lr) for k, lr in best.items()}
