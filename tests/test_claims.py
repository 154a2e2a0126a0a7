"""The claims ledger: the verdict rules on small fake results, and the book's intro page agrees
with what the ledger computes from results/ (so a stale page, or a hand-edited one, fails)."""
import json
import re

import numpy as np

import pytest

from biaslearn import claims, results
from biaslearn.results import ROOT, ResultError
from biaslearn.train import Config


def store(root, experiment, name, config, metrics, seed=0):
    """One fake run file, in the shape results.py writes."""
    folder = root / experiment
    folder.mkdir(parents=True, exist_ok=True)
    prov = {"git_commit": "0123456789abcdef", "device": "cpu", "threads": 1, "wall_seconds": 60.0}
    (folder / f"{name}.json").write_text(json.dumps(
        {"config": {"seed": seed, **config}, "metrics": metrics, "curve": {}, "provenance": prov}))


GAP = {"id": "g", "chapter": "feedforward", "claim": "c", "paper_says": "p", "experiment": "ff",
       "where": {"n_hidden": 10},
       "rule": {"kind": "gap", "metric": "eval_acc", "per": "dataset", "groups": ["a", "b", "c"],
                "field": "mode", "a": "full", "b": "bias", "max": 0.02, "scale": 100, "unit": "pp"}}


def ff(root, dataset, mode, accs, n_hidden=10):
    for s, acc in enumerate(accs):
        store(root, "ff", f"{dataset}-{mode}-{s}-{n_hidden}",
              {"dataset": dataset, "mode": mode, "n_hidden": n_hidden}, {"eval_acc": acc}, seed=s)


def test_gap_holds_within_tolerance_and_counts_only_tasks_with_both(tmp_path):
    ff(tmp_path, "a", "full", [0.97, 0.98])
    ff(tmp_path, "a", "bias", [0.96, 0.97])    # gap 1.0 pp
    ff(tmp_path, "b", "bias", [0.5])           # no full runs: not counted
    v = claims.verdict(GAP, tmp_path)
    assert v["verdict"] == claims.HOLDS
    assert "a: +1.0 pp (n=2+2)" in v["measured"] and "2 of 3 datasets not run here" in v["measured"]
    assert len(v["runs"]) == 4 and "4 runs, seeds [0, 1]" in v["provenance"]


def test_gap_fails_if_any_task_fails(tmp_path):
    ff(tmp_path, "a", "full", [0.98])
    ff(tmp_path, "a", "bias", [0.97])
    ff(tmp_path, "b", "full", [0.90])
    ff(tmp_path, "b", "bias", [0.85])          # gap 5 pp
    assert claims.verdict(GAP, tmp_path)["verdict"] == claims.FAILS


def test_gap_ignores_runs_outside_where(tmp_path):
    ff(tmp_path, "a", "full", [0.99])
    ff(tmp_path, "a", "bias", [0.50], n_hidden=99)  # another width: not this claim's run
    v = claims.verdict(GAP, tmp_path)
    assert v["verdict"] == claims.NOT_RUN and "full runs of a (n=1)" in v["measured"]


TREND = {"id": "t", "chapter": "recurrent", "claim": "c", "paper_says": "p", "experiment": "rnn",
         "where": {"mode": "bias"},
         "rule": {"kind": "trend", "metric": "r2", "x": "n_hidden", "at": [256, 512, 1024],
                  "direction": "increasing"}}


@pytest.mark.parametrize("r2s, expected", [
    ({256: [0.5, 0.6], 512: [0.7], 1024: [0.9]}, claims.HOLDS),
    ({256: [0.5], 512: [0.7], 1024: [0.7]}, claims.FAILS),      # flat is not "rises"
    ({256: [0.5], 512: [0.4], 1024: [0.9]}, claims.FAILS),
    ({256: [0.5], 1024: [0.9]}, claims.NOT_RUN),                # a width missing
])
def test_trend(tmp_path, r2s, expected):
    for n, vals in r2s.items():
        for s, r2 in enumerate(vals):
            store(tmp_path, "rnn", f"{n}-{s}", {"mode": "bias", "n_hidden": n}, {"r2": r2}, seed=s)
    assert claims.verdict(TREND, tmp_path)["verdict"] == expected


def test_trend_last_min_and_nondecreasing(tmp_path):
    rule = dict(TREND["rule"], direction="nondecreasing", last_min=0.95)
    for n, r2 in [(256, 0.9), (512, 0.9), (1024, 0.94)]:
        store(tmp_path, "rnn", str(n), {"mode": "bias", "n_hidden": n}, {"r2": r2})
    assert claims.verdict(dict(TREND, rule=rule), tmp_path)["verdict"] == claims.FAILS  # 0.94 < 0.95
    store(tmp_path, "rnn", "1024", {"mode": "bias", "n_hidden": 1024}, {"r2": 0.96})
    assert claims.verdict(dict(TREND, rule=rule), tmp_path)["verdict"] == claims.HOLDS


MIN = {"id": "m", "chapter": "lorenz", "claim": "c", "paper_says": "p", "experiment": "lz",
       "where": {"n_hidden": 1024}, "rule": {"kind": "min", "metrics": ["r2_x", "r2.y"], "min": 0.5}}


def test_min_with_dotted_metric_and_missing_metric(tmp_path):
    store(tmp_path, "lz", "a", {"n_hidden": 1024}, {"r2_x": 0.8, "r2": {"y": 0.6}})
    assert claims.verdict(MIN, tmp_path)["verdict"] == claims.HOLDS
    store(tmp_path, "lz", "a", {"n_hidden": 1024}, {"r2_x": 0.8, "r2": {"y": 0.4}})
    assert claims.verdict(MIN, tmp_path)["verdict"] == claims.FAILS
    store(tmp_path, "lz", "a", {"n_hidden": 1024}, {"r2_x": 0.8})  # a format without r2.y
    v = claims.verdict(MIN, tmp_path)
    assert v["verdict"] == claims.NOT_RUN and "r2.y" in v["measured"]


def test_missing_experiment_is_not_run_here(tmp_path):
    assert "has not been run" in claims.verdict(MIN, tmp_path)["measured"]
    (tmp_path / "lz").mkdir()
    v = claims.verdict(MIN, tmp_path)
    assert v["verdict"] == claims.NOT_RUN and "n_hidden=1024" in v["measured"]


@pytest.mark.parametrize("content", ["", "{not json", json.dumps({"machine": {}}), json.dumps([1, 2])])
def test_a_file_that_is_not_a_run_is_an_error_naming_it(tmp_path, content):
    store(tmp_path, "lz", "a", {"n_hidden": 1024}, {"r2_x": 0.8, "r2": {"y": 0.6}})
    (tmp_path / "lz" / "broken.json").write_text(content)
    with pytest.raises(ResultError, match="broken.json"):
        claims.verdict(MIN, tmp_path)


def test_the_ledger_is_well_formed():
    ledger = claims.load()
    ids = [c["id"] for c in ledger]
    assert len(ids) == len(set(ids))
    for c in ledger:
        assert {"id", "chapter", "claim", "paper_says", "experiment", "rule", "rests_on"} <= set(c), c["id"]
        assert c["rule"]["kind"] in claims.RULES, c["id"]
        assert (ROOT / "book" / f"{c['chapter']}.ipynb").exists(), c["id"]
    for chapter in ("feedforward", "recurrent", "lorenz", "theory"):
        assert any(c["chapter"] == chapter for c in ledger), chapter


def shown_in_book(page: str) -> dict:
    """claim text -> verdict, as shown in the claims tables of a committed page of the book."""
    nb = json.loads((ROOT / "book" / f"{page}.ipynb").read_text())
    shown = {}
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            md = "".join(out.get("data", {}).get("text/markdown", ""))
            for row in md.splitlines():
                m = re.match(r"\| (.*?)(?: \(\{doc\}`\w+`\))? \|.*\| \*\*(.+)\*\* \|$", row)
                if m and m.group(1) != "claim":
                    shown[m.group(1).replace("\\|", "|")] = m.group(2)
    return shown


def test_the_book_shows_the_verdicts_the_ledger_computes():
    shown = shown_in_book("intro")
    computed = {v["claim"]: v["verdict"] for v in claims.evaluate()}
    assert shown, "the intro page shows no claims table: execute it (make execute)"
    assert shown == computed, ("book/intro.ipynb is stale: re-execute it (make execute) and commit it")


@pytest.mark.parametrize("chapter", sorted({c["chapter"] for c in claims.load()}))
def test_each_chapter_shows_its_own_claims_from_the_ledger(chapter):
    """Every verdict on a chapter comes from the ledger: its claims table lists exactly its claims."""
    computed = {v["claim"]: v["verdict"] for v in claims.evaluate(chapter=chapter)}
    assert shown_in_book(chapter) == computed, (f"book/{chapter}.ipynb does not show its claims from the ledger "
                                                f"(claims.table(chapter={chapter!r})): re-execute it and commit it")


def test_no_chapter_decides_a_verdict_itself():
    """No chapter defines a verdict function or prints a verdict word outside the ledger's table."""
    for nb_path in sorted((ROOT / "book").glob("*.ipynb")):
        code = "".join("".join(c["source"]) for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "code")
        assert "def verdict" not in code and "TOL =" not in code, nb_path.name
        assert '"holds"' not in code and "'holds'" not in code, nb_path.name


def test_within(tmp_path):
    rule = {"kind": "within", "metric": "err", "ref": "ref_err", "factor": 2, "x": "n_hidden"}
    claim = dict(MIN, rule=rule)
    store(tmp_path, "lz", "a", {"n_hidden": 1024}, {"err": 0.5, "ref_err": 0.1})
    assert claims.verdict(claim, tmp_path)["verdict"] == claims.FAILS
    store(tmp_path, "lz", "b", {"n_hidden": 1024}, {"err": 0.1, "ref_err": 0.1}, seed=1)  # mean 0.3 > 0.2
    assert claims.verdict(claim, tmp_path)["verdict"] == claims.FAILS
    store(tmp_path, "lz", "b", {"n_hidden": 1024}, {"err": 0.02, "ref_err": 0.1}, seed=1)  # mean 0.26
    assert claims.verdict(claim, tmp_path)["verdict"] == claims.FAILS
    store(tmp_path, "lz", "a", {"n_hidden": 1024}, {"err": 0.3, "ref_err": 0.1})  # mean 0.16 <= 0.2
    v = claims.verdict(claim, tmp_path)
    assert v["verdict"] == claims.HOLDS, v["measured"]
    store(tmp_path, "lz", "a", {"n_hidden": 1024}, {"err": 0.5})  # a run without ref
    store(tmp_path, "lz", "b", {"n_hidden": 1024}, {"err": 0.5}, seed=1)
    store(tmp_path, "lz", "c", {"n_hidden": 1024}, {"err": 0.5}, seed=2)
    assert claims.verdict(claim, tmp_path)["verdict"] == claims.NOT_RUN


def test_theory_widths_in_the_ledger_are_the_chapters():
    """The ledger's widths must follow the theory chapter's preset, or the claim tests other runs."""
    from biaslearn import presets
    ledger = {c["id"]: c for c in claims.load()}
    assert ledger["theory-matching"]["rule"]["at"] == presets.THEORY_WIDTHS["paper"], (
        "presets.THEORY_WIDTHS changed: update `at` of theory-matching in book/claims.yml")


def test_below(tmp_path):
    rule = {"kind": "below", "metric": "err", "x": "n_hidden", "max": 0.2}
    claim = dict(MIN, rule=rule, where={})
    store(tmp_path, "lz", "a", {"n_hidden": 10}, {"err": 0.5})
    store(tmp_path, "lz", "b", {"n_hidden": 100}, {"err": 0.3})
    assert claims.verdict(claim, tmp_path)["verdict"] == claims.FAILS
    store(tmp_path, "lz", "c", {"n_hidden": 100}, {"err": 0.05}, seed=1)  # mean at 100: 0.175 <= 0.2
    v = claims.verdict(claim, tmp_path)
    assert v["verdict"] == claims.HOLDS and "at n_hidden = 100 (n=2)" in v["measured"]


def test_gradient_threshold_is_twice_the_small_networks_error():
    from biaslearn import theory
    w, c, a = theory.small_network()
    small = float(np.abs(theory.evaluate(w, c, a) - theory.target(theory.GRID)).max())
    rule = {c["id"]: c for c in claims.load()}["theory-gradient-spread"]["rule"]
    assert rule["max"] == pytest.approx(2 * small, abs=5e-4)


def test_beats(tmp_path):
    claim = dict(MIN, rule={"kind": "beats", "metrics": ["r2_x", "r2_y"], "ref": "r2_persistence"})
    store(tmp_path, "lz", "a", {"n_hidden": 1024}, {"r2_x": 0.97, "r2_y": 0.96, "r2_persistence": 0.95})
    assert claims.verdict(claim, tmp_path)["verdict"] == claims.HOLDS
    store(tmp_path, "lz", "b", {"n_hidden": 1024}, {"r2_x": 0.97, "r2_y": 0.90, "r2_persistence": 0.95}, seed=1)
    v = claims.verdict(claim, tmp_path)  # mean r2_y 0.93 < 0.95
    assert v["verdict"] == claims.FAILS and "vs r2_persistence 0.950" in v["measured"]
    store(tmp_path, "lz", "c", {"n_hidden": 1024}, {"r2_x": 0.97}, seed=2)  # ref absent from one run: mean of the others
    assert claims.verdict(claim, tmp_path)["verdict"] == claims.FAILS


def test_beats_runs(tmp_path):
    """The compared runs' mean of each metric against the same metric's mean over the baseline's own runs."""
    claim = dict(MIN, where={"task": "t"}, rule={"kind": "beats_runs", "metrics": ["r2_x", "r2_y"],
                                                  "runs": {"mode": "bias", "n_hidden": 1024}, "ref_where": {"mode": "linear"}})
    for s, (x, y) in enumerate([(0.97, 0.96), (0.95, 0.96)]):
        store(tmp_path, "lz", f"b{s}", {"task": "t", "mode": "bias", "n_hidden": 1024}, {"r2_x": x, "r2_y": y}, seed=s)
    store(tmp_path, "lz", "w", {"task": "t", "mode": "bias", "n_hidden": 16}, {"r2_x": 0.1, "r2_y": 0.1})  # another width
    store(tmp_path, "lz", "o", {"task": "other", "mode": "linear", "n_hidden": 0}, {"r2_x": 0.99, "r2_y": 0.99})  # not where
    v = claims.verdict(claim, tmp_path)
    assert v["verdict"] == claims.NOT_RUN and "r2_x in the runs with mode=linear" in v["measured"], v["measured"]
    store(tmp_path, "lz", "l0", {"task": "t", "mode": "linear", "n_hidden": 0}, {"r2_x": 0.95, "r2_y": 0.95})
    v = claims.verdict(claim, tmp_path)
    assert v["verdict"] == claims.HOLDS, v["measured"]
    assert v["measured"] == "r2_x 0.9600 vs 0.9500, r2_y 0.9600 vs 0.9500 with mode=linear (n=2 vs 1)"
    assert len(v["runs"]) == 3
    store(tmp_path, "lz", "l1", {"task": "t", "mode": "linear", "n_hidden": 0}, {"r2_x": 0.95, "r2_y": 0.99}, seed=1)
    v = claims.verdict(claim, tmp_path)   # baseline r2_y 0.97 > 0.96
    assert v["verdict"] == claims.FAILS and "r2_y 0.9600 vs 0.9700" in v["measured"], v["measured"]
    store(tmp_path, "lz", "l1", {"task": "t", "mode": "linear", "n_hidden": 0}, {"r2_x": 0.97, "r2_y": 0.90}, seed=1)
    v = claims.verdict(claim, tmp_path)   # r2_x ties (0.96 both): a tie is not "beats"
    assert v["verdict"] == claims.FAILS and "r2_x 0.9600 vs 0.9600, r2_y 0.9600 vs 0.9250" in v["measured"], v["measured"]


def typed(root, folder, acc, **fields):
    """A stored run of a real feed-forward Config (its key and its completed defaults are real)."""
    cfg = Config(**fields)
    (root / folder).mkdir(parents=True, exist_ok=True)
    prov = {"git_commit": "0123456789abcdef", "device": "cpu", "threads": 1, "wall_seconds": 1.0}
    results.path(cfg, root).write_text(json.dumps({"config": results.canonical(cfg), "metrics": {"eval_acc": acc},
                                                   "curve": {}, "provenance": prov}))


MATCHED = {"id": "w", "chapter": "width", "claim": "c", "paper_says": "p", "experiment": ["w", "ff"],
           "where": {"rerun": 0, "regime": ["bias", "full"]},
           "exclude": [{"n_hidden": 800, "cache_dtype": "bfloat16"}],
           "rule": {"kind": "matched", "metric": "eval_acc", "per": "dataset", "groups": ["mnist"],
                    "bias": {"regime": "bias"}, "full": {"regime": "full"}, "factor": 100}}


def test_matched_reads_regimes_defaults_lists_and_exclusions(tmp_path):
    # full training at width 2 reaches 0.6; bias-only reaches it between widths 100 and 1,000
    typed(tmp_path, "w", 0.6, experiment="w", mode="full", n_hidden=2)
    for n, acc in [(10, 0.3), (100, 0.5), (1000, 0.7)]:
        typed(tmp_path, "w", acc, experiment="w", n_hidden=n)
    typed(tmp_path, "w", 0.99, experiment="w", n_hidden=10, init="gaussian", scale=1.0)  # regime bias_gauss: not counted
    typed(tmp_path, "w", 0.99, experiment="w", n_hidden=10, rerun=1)                     # a rerun: not counted
    v = claims.verdict(MATCHED, tmp_path)
    assert v["verdict"] == claims.HOLDS and "n=2: 158×" in v["measured"], v["measured"]  # 316 units > 100 x 2
    typed(tmp_path, "ff", 0.9, experiment="ff", n_hidden=800, cache_dtype="bfloat16")      # excluded
    assert claims.verdict(MATCHED, tmp_path)["measured"] == v["measured"]
    typed(tmp_path, "ff", 0.65, experiment="ff", n_hidden=150)   # now bias-only matches 0.6 at ~122 units
    v = claims.verdict(dict(MATCHED, rule=dict(MATCHED["rule"], factor=80)), tmp_path)
    assert v["verdict"] == claims.FAILS, v["measured"]
    v = claims.verdict(dict(MATCHED, rule=dict(MATCHED["rule"], groups=["kmnist"])), tmp_path)
    assert v["verdict"] == claims.NOT_RUN


def test_gain(tmp_path):
    claim = dict(MATCHED, rule={"kind": "gain", "metric": "eval_acc", "per": "dataset", "groups": ["mnist"],
                                "runs": {"regime": "bias"}, "at": 100, "min_fraction": 0.5})
    for n, acc in [(10, 0.2), (1000, 0.8)]:
        typed(tmp_path, "w", acc, experiment="w", n_hidden=n)
    typed(tmp_path, "w", 0.5, experiment="w", n_hidden=100)     # exactly half the gain: not "more than half"
    assert claims.verdict(claim, tmp_path)["verdict"] == claims.FAILS
    typed(tmp_path, "w", 0.6, experiment="w", n_hidden=100)
    v = claims.verdict(claim, tmp_path)
    assert v["verdict"] == claims.HOLDS and "67% of the gain" in v["measured"]
    assert claims.verdict(dict(claim, rule=dict(claim["rule"], at=5000)), tmp_path)["verdict"] == claims.NOT_RUN


def test_each(tmp_path):
    """At every x of `at`: the median (or mean) within the bounds; max_spread bounds the largest minus smallest."""
    claim = dict(MIN, where={}, rule={"kind": "each", "metric": "r2", "x": "gain", "at": [0.5, 0.9], "stat": "median",
                                      "max": 0.5})
    for s, (a, b) in enumerate([(0.1, 0.2), (0.2, 0.9), (-1e9, 0.3)]):  # a huge outlier: the median ignores it
        store(tmp_path, "lz", f"a{s}", {"gain": 0.5}, {"r2": a}, seed=s)
        store(tmp_path, "lz", f"b{s}", {"gain": 0.9}, {"r2": b}, seed=s)
    store(tmp_path, "lz", "c", {"gain": 1.5}, {"r2": 0.99})             # not in `at`: not judged
    v = claims.verdict(claim, tmp_path)
    assert v["verdict"] == claims.HOLDS and "median r2 0.1, 0.3 at gain = [0.5, 0.9] (n = [3, 3]" in v["measured"]
    assert claims.verdict(dict(claim, rule=dict(claim["rule"], stat="mean")), tmp_path)["verdict"] == claims.HOLDS
    assert claims.verdict(dict(claim, rule=dict(claim["rule"], max=0.2)), tmp_path)["verdict"] == claims.FAILS
    flat = dict(claim["rule"], max=1.0, min=0.0, max_spread=0.1)           # spread 0.2 > 0.1
    assert claims.verdict(dict(claim, rule=flat), tmp_path)["verdict"] == claims.FAILS
    assert claims.verdict(dict(claim, rule=dict(flat, max_spread=0.25)), tmp_path)["verdict"] == claims.HOLDS
    assert claims.verdict(dict(claim, rule=dict(flat, at=[0.5, 2.0])), tmp_path)["verdict"] == claims.NOT_RUN


def test_same_winner_reads_a_runs_curve_as_the_proxy(tmp_path):
    """The rate best by the proxy (a point of each run's curve) must be a rate best by the metric; with order: true,
    every rate must be in the same place."""
    claim = dict(MIN, where={}, rule={"kind": "same_winner", "x": "lr", "at": [1e-3, 1e-2, 1e-1], "metric": "acc",
                                      "proxy": "curve.acc.1"})

    def run(name, lr, final, curve):
        store(tmp_path, "lz", name, {"lr": lr}, {"acc": final})
        f = tmp_path / "lz" / f"{name}.json"
        f.write_text(f.read_text().replace('"curve": {}', json.dumps({"curve": {"acc": curve}})[1:-1]))
    run("a", 1e-3, 0.9, [0.5, 0.8, 0.9])
    run("b", 1e-2, 0.8, [0.6, 0.7, 0.8])                   # best at epoch 1 only: the proxy reads epoch 2
    run("c", 1e-1, 0.7, [0.1, 0.75, 0.7])                  # second at epoch 2, last at the end
    v = claims.verdict(claim, tmp_path)
    assert v["verdict"] == claims.HOLDS and "curve.acc.1 0.8000, 0.7000, 0.7500 (best first: 0.001, 0.1, 0.01)" in v["measured"]
    ordered = dict(claim, rule=dict(claim["rule"], order=True))
    assert claims.verdict(ordered, tmp_path)["verdict"] == claims.FAILS           # 0.1 and 0.01 swap places
    assert claims.verdict(dict(ordered, where={"lr": [1e-3, 1e-2]}), tmp_path)["verdict"] == claims.NOT_RUN
    assert claims.verdict(dict(ordered, rule=dict(ordered["rule"], at=[1e-3, 1e-2])), tmp_path)["verdict"] == claims.HOLDS
    early = claims.verdict(dict(claim, rule=dict(claim["rule"], proxy="curve.acc.0")), tmp_path)
    assert early["verdict"] == claims.FAILS and "(best first: 0.01," in early["measured"]
    run("d", 1e-4, 0.9, [0.1, 0.1, 0.9])                   # tied with 1e-3 on the metric: either winner will do
    tied = dict(claim, rule=dict(claim["rule"], at=[1e-4, 1e-3]))
    assert claims.verdict(tied, tmp_path)["verdict"] == claims.HOLDS
    assert claims.verdict(dict(tied, rule=dict(tied["rule"], order=True)), tmp_path)["verdict"] == claims.FAILS


def test_every_rule_kind_is_tested_both_ways():
    """Each kind of rule in claims.RULES has a test above that reaches "holds" and "does not hold"."""
    tested = {"gap", "trend", "min", "within", "below", "beats", "beats_runs", "matched", "gain", "each",
              "diagonal", "same_winner"}  # diagonal: tests/test_multitask.py::test_diagonal_rule_reaches_both_verdicts
    assert set(claims.RULES) == tested, "a new rule kind needs a test of both outcomes here"


def test_every_ledger_claim_says_when_its_rule_was_fixed_if_it_came_from_a_chapter():
    for c in claims.load():
        if c["id"] in ("recurrent-reconstructs", "recurrent-beats-persistence", "lorenz-beats-persistence",
                       "width-equal-parameters", "width-gain-below-5000"):
            assert "commit" in c.get("fixed", ""), c["id"]


def test_gap_at_each_groups_own_rates(tmp_path, monkeypatch):
    from biaslearn import presets
    monkeypatch.setattr(presets, "TUNED_TEST", {("a", "full"): 0.1, ("a", "bias"): 0.2}, raising=False)
    claim = dict(GAP, rule=dict(GAP["rule"], rates="TUNED_TEST"))
    for mode, lr, acc in [("full", 0.1, 0.95), ("bias", 0.2, 0.94), ("full", 0.3, 0.99)]:  # the last: another rate
        store(tmp_path, "ff", f"a-{mode}-{lr}", {"dataset": "a", "mode": mode, "n_hidden": 10, "lr": lr}, {"eval_acc": acc})
    v = claims.verdict(claim, tmp_path)
    assert v["verdict"] == claims.HOLDS and "a: +1.0 pp (n=1+1)" in v["measured"], v["measured"]
    monkeypatch.setattr(presets, "TUNED_TEST", {("a", "full"): 0.3, ("a", "bias"): 0.2})
    assert claims.verdict(claim, tmp_path)["verdict"] == claims.FAILS  # 0.99 - 0.94 = 5 pp
    monkeypatch.setattr(presets, "TUNED_TEST", {("a", "full"): 0.3})
    v = claims.verdict(claim, tmp_path)
    assert v["verdict"] == claims.NOT_RUN and "at the rates of presets.TUNED_TEST" in v["measured"]
