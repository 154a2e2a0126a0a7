"""The presets say what the book claims they say, every preset runs at scale "quick", and every
learning-rate table holds the winners of its committed validation runs."""
import pytest

from biaslearn import presets as ps
from biaslearn import report
from biaslearn.data import PAPER_TASKS
from biaslearn.experiments import collect


def test_feedforward_preset_is_the_papers_experiment():
    cfgs = ps.feedforward("paper")
    assert len(cfgs) == 7 * 2 * 5 and {c.dataset for c in cfgs} == set(PAPER_TASKS)
    for c in cfgs:
        assert (c.n_hidden, c.epochs, c.init, c.scale, c.out_bias) == (32_000, 20, "uniform", 0.1, False)
        assert c.split == "test" and c.n_train == 0 and c.lr == ps.LR[c.mode]


@pytest.mark.parametrize("name", [p for p in ps.PRESETS if p.endswith("selection")])
def test_selection_never_uses_the_test_set(name):
    assert all(c.split == "val" for c in ps.PRESETS[name].configs("paper"))


@pytest.mark.parametrize("sel", ps.SELECTIONS, ids=lambda s: s.preset)
def test_each_learning_rate_table_holds_its_validation_winners(sel):
    """One test for every table: each entry is the winner of a complete stored grid, and every complete
    grid's winner is in the table (a grid still running has no entry yet)."""
    df = collect(sel.preset, "paper", progress=False)
    complete = df.groupby(list(sel.by))["stored"].all()
    done = {k if isinstance(k, tuple) else (k,) for k, ok in complete.items() if ok}
    winners = report.winners(df[[tuple(k) in done for k in df[list(sel.by)].itertuples(index=False, name=None)]],
                             sel.by, sel.metric, sel.tiebreak)
    assert sel.chosen() == winners, f"{sel.preset}: the table must hold exactly the winners of its complete grids"


def test_a_proxy_rate_is_its_5_epoch_grids_interior_winner_and_stands_on_its_claim():
    """presets.LR_PROXY (a 5-epoch winner standing in for a 20-epoch grid; LR_TUNED is built with it): each entry is
    the winner of its data set's complete 5-epoch grid, inside the grid, and the ledger's check of that proxy holds."""
    from biaslearn import claims
    proxy = next(c for c in claims.load() if c["id"] == "feedforward-full-proxy-same-winner")
    if ps.LR_PROXY:
        assert claims.verdict(proxy)["verdict"] == claims.HOLDS
    # the proxy the claim checks is the one the 5-epoch grids use: the score after their last epoch
    assert proxy["rule"]["proxy"] == f"curve.eval_acc.{ps.SELECTION_EPOCHS_FULL - 1}"
    for (d, m), lr in ps.LR_PROXY.items():
        assert m == proxy["where"]["mode"]
        df = collect("feedforward_selection", "paper", progress=False, datasets=(d,), modes=(m,))
        assert df["stored"].all() and set(df["epochs"]) == {ps.SELECTION_EPOCHS_FULL}
        assert report.winners(df, ("mode",), "eval_acc") == {(m,): lr} and not report.on_edge(lr, ps.LR_GRID[m])


def test_winners_pick_the_best_stored_run_per_key():
    import pandas as pd
    df = pd.DataFrame({"mode": ["a", "a", "b", "b"], "lr": [1e-3, 1e-2, 1e-3, 1e-2], "acc": [0.5, 0.7, 0.9, float("nan")],
                       "stored": [True, True, True, False]})
    assert report.winners(df, ("mode",), "acc") == {("a",): 1e-2, ("b",): 1e-3}


def test_a_rate_table_has_a_row_per_data_set_and_a_column_per_mode(monkeypatch):
    shown = []
    monkeypatch.setattr(report, "show", lambda table, caption=None: shown.append((table, caption)))
    report.rates({("mnist", "bias"): 1e-2, ("fashion_mnist", "bias"): 3e-3, ("fashion_mnist", "full"): 3e-5}, "rates")
    table, caption = shown.pop()
    assert caption == "rates" and list(table.columns) == ["data set", "bias-only", "fully trained"]
    assert table.to_dict("records") == [
        {"data set": "MNIST", "bias-only": "0.01", "fully trained": "not chosen yet"},
        {"data set": "Fashion-MNIST", "bias-only": "0.003", "fully trained": "3e-05"}]
    report.rates({"bias": 1e-2, "full": 1e-4}, "rates")
    assert shown.pop()[0].to_dict("records") == [{"data set": "every data set", "bias-only": "0.01", "fully trained": "0.0001"}]


def test_winners_split_ties_by_the_tiebreak_column_only_among_the_tied():
    import pandas as pd
    df = pd.DataFrame({"mode": ["a"] * 3, "lr": [1e-3, 1e-2, 1e-1], "acc": [1.0, 1.0, 0.9], "area": [0.5, 0.8, 0.99],
                       "stored": [True] * 3})
    assert report.winners(df, ("mode",), "acc") == {("a",): 1e-3}                  # first of the tied
    assert report.winners(df, ("mode",), "acc", "area") == {("a",): 1e-2}          # 1e-1 is not tied: never chosen
    df.loc[1, "area"] = float("nan")                                                # a run stored before the metric
    assert report.winners(df, ("mode",), "acc", "area") == {("a",): 1e-3}
    df["area"] = float("nan")
    assert report.winners(df, ("mode",), "acc", "area") == {("a",): 1e-3}          # none has it: the first of the tied


@pytest.mark.parametrize("name", sorted(ps.PRESETS))
def test_every_preset_has_a_quick_scale_and_says_what_it_serves(name):
    p = ps.PRESETS[name]
    assert p.configs("quick") and p.figure and p.chapter in {"feedforward", "width", "recurrent", "lorenz", "theory", "generation", "multitask", "tasks"}


def test_preset_options_are_checked_before_any_work():
    with pytest.raises(ValueError, match="takes no option \\['widths'\\]: its options are \\['datasets', 'modes'\\]"):
        ps.PRESETS["feedforward"].configs("paper", widths=[64])
    with pytest.raises(ValueError, match="scale 'huge': use one of"):
        ps.PRESETS["feedforward"].configs("huge")


def test_width_sweep_reuses_figure_1_and_caps_full_training():
    cfgs = ps.width("paper")
    assert {c for c in cfgs if c.experiment == "feedforward"} == set(ps.feedforward("paper", range(3), ("mnist", "fashion_mnist")))
    for r, cap in ps.MAX_WIDTH.items():
        assert max(c.n_hidden for c in cfgs if ps.regime(c) == r) == cap
    assert max(c.n_hidden for c in cfgs if ps.regime(c) == "bias") == max(ps.WIDTHS["paper"])
    assert {c.mode for c in cfgs if c.n_hidden < 10} == {"full"}  # SMALL_FULL: for the matched widths
    assert all(c.cache_dtype == ("bfloat16" if c.n_hidden > 32_000 else "float32") for c in cfgs)
    assert all(c.epochs == 20 and c.split == "test" for c in cfgs)
    gauss = [c for c in cfgs if c.init == "gaussian"]
    assert gauss and all(c.mode == "bias" and c.scale == 1.0 for c in gauss)
    mask = ps.width_mask("paper")
    assert {(c.mode, c.rerun) for c in mask} == {("bias", 0), ("mask", 0), ("bias", 1)}
    assert {c for c in mask if c.mode == "bias" and c.rerun == 0} <= set(cfgs)


def test_collect_computes_missing_runs_then_loads_them(tmp_path):
    df = collect("theory_rnn", "quick", seeds=[0], results_dir=tmp_path, progress=False)
    assert not df["stored"].any() and "compute is off" in report.missing(df)
    df = collect("theory_rnn", "quick", seeds=[0], results_dir=tmp_path, compute=True, progress=False)
    assert df["stored"].all() and report.missing(df) == f"All {len(df)} runs are in results/."
    assert list(df["n_hidden"]) == [20, 50, 20, 50] and (df["sup_error"] > 0).all()
    again = collect("theory_rnn", "quick", seeds=[0], results_dir=tmp_path, progress=False)
    assert again["sup_error"].tolist() == df["sup_error"].tolist()
    assert df.attrs["command"] == f"python -m biaslearn.experiments theory_rnn --scale quick --seeds 0 --results-dir {tmp_path}"


@pytest.fixture
def first_run_busy(monkeypatch):
    """theory_rnn's quick configs, the first held by another live process until this one computes a run; returns
    (configs, the order in which this process computes them)."""
    from biaslearn import experiments, results
    order, real_run = [], experiments.run
    cfgs = ps.PRESETS["theory_rnn"].configs("quick", [0])
    held = {results.key(cfgs[0])}                     # the other process finishes it while this one works
    monkeypatch.setattr(results, "busy", lambda cfg, root=None: results.key(cfg) in held)

    def run(cfg, *args, **kwargs):
        order.append(cfgs.index(cfg))
        held.clear()
        return real_run(cfg, *args, **kwargs)
    monkeypatch.setattr(experiments, "run", run)
    return cfgs, order


def test_collect_leaves_a_run_another_process_is_computing_for_last(tmp_path, first_run_busy):
    """Two sweeps side by side: a run locked by a live process goes to the back of the queue, so this process
    computes the others meanwhile; the table keeps the preset's order."""
    cfgs, order = first_run_busy
    df = collect("theory_rnn", "quick", seeds=[0], results_dir=tmp_path, compute=True, progress=False)
    assert order == list(range(1, len(cfgs))) + [0] and df["stored"].all()
    assert [c for c in df["config"]] == cfgs


def test_the_command_line_also_leaves_a_busy_run_for_last(tmp_path, first_run_busy):
    """The same in `python -m biaslearn.experiments` (inline): a second process started beside the first does
    not wait on the run the first is computing."""
    from biaslearn import experiments, results
    cfgs, order = first_run_busy
    experiments.main(["theory_rnn", "--scale", "quick", "--seeds", "0", "--results-dir", str(tmp_path)])
    assert order == list(range(1, len(cfgs))) + [0]
    assert all(results.path(c, tmp_path).exists() for c in cfgs)


def test_a_dry_run_in_this_process_computes_nothing(tmp_path, capsys):
    """--dry-run without --executor lists the runs left and computes none (it once ran them all)."""
    from biaslearn import experiments, results
    cfgs = ps.PRESETS["theory_rnn"].configs("quick", [0])
    experiments.run(cfgs[0], tmp_path)
    experiments.main(["theory_rnn", "--scale", "quick", "--seeds", "0", "--results-dir", str(tmp_path), "--dry-run"])
    out = capsys.readouterr().out
    assert f"theory_rnn (quick): {len(cfgs) - 1} of {len(cfgs)} runs to compute" in out
    assert out.count("would compute theory_rnn/") == len(cfgs) - 1
    assert [results.path(c, tmp_path).exists() for c in cfgs] == [True] + [False] * (len(cfgs) - 1)


@pytest.mark.parametrize("argv, message", [
    (["width", "--widths", "-5"], "widths [-5] not allowed; use some of [2, 3, 4"),
    (["width", "--widths", "100", "--scale", "quick"], "widths [100] not allowed; use some of [16, 64, 256]"),
    (["feedforward", "--widths", "64"], "takes no option ['widths']"),
    (["feedforward", "--modes", "biass"], "modes ['biass'] not allowed; use some of ['bias', 'full']"),
    (["feedforward", "--seeds"], "--seeds: expected at least one argument"),
    (["feedforward", "--seeds", "-1"], "seeds [-1]: give one or more non-negative integers"),
    (["width", "--datasets", "synthetic", "--modes", "readout", "--widths", "2"], "selects no run"),
    (["nosuch"], "invalid choice: 'nosuch'"),
])
def test_the_command_line_refuses_bad_input_before_any_work(argv, message, capsys):
    from biaslearn import experiments
    with pytest.raises(SystemExit) as e:
        experiments.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("ns, message", [
    ({"seeds": "0"}, "parameter seeds='0': give a non-empty list"),
    ({"seeds": []}, "parameter seeds=[]"),
    ({"scale": "huge"}, "parameter scale='huge': use one of ['paper', 'quick']"),
    ({"seed": 5}, "unknown parameter(s) ['seed']: this chapter takes"),
    ({"compute": "yes"}, "parameter compute='yes'"),
    ({"results_dir": "/no/such/folder"}, "no such folder"),
])
def test_chapter_parameters_are_checked_with_the_allowed_values(ns, message):
    namespace = {"seeds": [0], "scale": "paper", "compute": False, "results_dir": None, **ns}
    with pytest.raises(ValueError) as e:
        report.check_parameters(namespace)
    assert message in str(e.value)


def test_a_bare_int_seed_is_one_seed_and_the_results_folder_is_made_when_computing(tmp_path):
    namespace = {"seeds": 7, "scale": "quick", "compute": True, "results_dir": str(tmp_path / "new"), "datasets": None}
    report.check_parameters(namespace, extra=["datasets"])
    assert namespace["seeds"] == [7] and (tmp_path / "new").is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="parameter results_dir: results folder .* cannot be created or written"):
        report.check_parameters(dict(namespace, results_dir=str(tmp_path / "file" / "sub")), extra=["datasets"])


def test_a_stored_result_missing_a_metric_is_reported_with_its_file(tmp_path):
    import json
    from biaslearn import results
    df = collect("theory_rnn", "quick", seeds=[0], results_dir=tmp_path, compute=True, progress=False)
    path = tmp_path / df["file"].iloc[0]
    stored = json.loads(path.read_text())
    path.write_text(json.dumps(dict(stored, metrics={})))
    with pytest.raises(results.ResultError, match=f"{path}.*lacks the metric"):
        collect("theory_rnn", "quick", seeds=[0], results_dir=tmp_path, progress=False)


def test_every_stored_result_holds_its_types_required_metrics():
    from biaslearn import experiments, results
    for r in results.stored():
        cfg = experiments.config_of(r)
        assert set(experiments.REQUIRED[type(cfg)]) <= set(r["metrics"]), r["file"]


def test_figure_1s_folder_holds_only_figure_1s_rates():
    """Runs at a tuned rate live in results/feedforward_tuned, so Figure 1's claims (and the width chapter's
    point at 32,000) never count them."""
    from biaslearn import experiments, results
    for r in results.stored("feedforward"):
        cfg = experiments.config_of(r)
        assert cfg.lr == ps.LR[cfg.mode], r["file"]
    assert all(c.experiment == ("feedforward" if c.lr == ps.LR[c.mode] else "feedforward_tuned")
               for c in ps.feedforward_tuned("paper"))


def test_a_preset_selecting_no_run_gives_an_empty_table_with_the_usual_columns(monkeypatch):
    """A preset whose rates are not chosen yet selects no run: readers still find "stored", "wall_seconds"..."""
    monkeypatch.setitem(ps.PRESETS, "nothing", ps.Preset("nothing", lambda scale, seeds=(0,): [], "width", "none"))
    df = collect("nothing", "paper", progress=False)
    done = df[df["stored"]]
    assert len(df) == 0 and list(done.columns) == list(df.columns) and done["wall_seconds"].sum() == 0
