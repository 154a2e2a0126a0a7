"""The multitask chapter: the reduced-data split, the swapped-bias matrix of four tasks, task variance and its
clustering, the "diagonal" ledger rule, and what a run needs on disk."""
import dataclasses

import numpy as np
import pytest
import torch

from biaslearn import claims, data, experiments, presets, taskvar, train
from biaslearn.config import ConfigError
from biaslearn.experiments import run
from biaslearn.multitask import SwapConfig, SplitConfig, swap_matrix
from biaslearn.taskvar import TaskVarConfig

TASKS = ["synthetic", "synthetic1", "synthetic2", "synthetic3"]


# --- the split -------------------------------------------------------------------------------------------

def test_stratified_split_is_disjoint_stratified_and_reproducible_from_its_seed():
    y = np.repeat(np.arange(10), [1000, 1100, 900, 1000, 1000, 1000, 1000, 1000, 1000, 1000])
    np.random.default_rng(5).shuffle(y)
    kept, held = data.stratified_split(y, 0.2, seed=0)
    assert len(np.intersect1d(kept, held)) == 0 and len(kept) + len(held) == len(y)
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(len(y)))
    assert np.bincount(y[held]).tolist() == [200, 220, 180, 200, 200, 200, 200, 200, 200, 200]
    again = data.stratified_split(y, 0.2, seed=0)
    assert np.array_equal(again[1], held) and np.array_equal(again[0], kept)
    assert not np.array_equal(data.stratified_split(y, 0.2, seed=1)[1], held)


def test_reduced_split_is_8000_2000_and_an_inner_6400_1600_within_the_8000():
    y = np.repeat(np.arange(10), 1000)
    p = data.reduced_split(y)
    assert {k: len(v) for k, v in p.items()} == {"train": 8000, "test": 2000, "inner_train": 6400, "inner_val": 1600}
    assert not set(p["train"]) & set(p["test"])
    assert set(p["inner_train"]) | set(p["inner_val"]) == set(p["train"])
    assert not set(p["inner_train"]) & set(p["inner_val"])
    for part, n in (("test", 200), ("inner_val", 160)):
        assert np.bincount(y[p[part]]).tolist() == [n] * 10


def test_reduced_protocol_trains_and_scores_on_disjoint_parts_of_the_test_split(monkeypatch):
    x_all, y_all = data.load_test("synthetic")
    cfg = train.Config(dataset="synthetic", protocol="reduced", n_hidden=16, epochs=1)
    x_tr, y_tr, x_ev, y_ev = train.split(cfg)
    assert len(x_tr) + len(x_ev) == 500 and abs(len(x_ev) - 100) <= 5   # synthetic's 500 test images, 80/20 per class
    rows = lambda x: {tuple(r) for r in (x * 255).round().to(int).tolist()}  # noqa: E731
    assert rows(x_tr) <= rows(torch.from_numpy(x_all.reshape(len(x_all), -1) / 255.0)) and not rows(x_tr) & rows(x_ev)
    x_tr2, _, x_val, _ = train.split(cfg.replace(split="val"))
    assert len(x_tr2) + len(x_val) == len(x_tr) and rows(x_val) <= rows(x_tr)  # the inner split: within the 400
    load = data.load_test  # Dig-MNIST's stand-in: another synthetic set's test split
    monkeypatch.setattr(data, "load_test", lambda name: load("synthetic1" if name == "dig_mnist" else name))
    _, _, x_ood, y_ood = train.split(cfg.replace(eval_set="dig_mnist"))  # another set scored instead
    assert torch.equal(y_ood, torch.from_numpy(load("synthetic1")[1])) and len(x_ood) == 500


def test_a_split_record_stores_the_indices_and_class_counts(tmp_path):
    r = run(SplitConfig(dataset="synthetic"), root=tmp_path)
    n = r["metrics"]["n"]
    assert n["train"] + n["test"] == 500 and n["inner_train"] + n["inner_val"] == n["train"]
    assert sum(r["metrics"]["per_class"]["test"]) == n["test"]
    loaded = run(SplitConfig(dataset="synthetic"), root=tmp_path, compute=False)
    assert np.array_equal(loaded["arrays"]["test"], data.reduced_split(data.load_test("synthetic")[1])["test"])


def test_eval_set_only_with_the_test_split():
    with pytest.raises(ConfigError, match="eval_set only with split 'test'"):
        train.Config(protocol="reduced", split="val", eval_set="dig_mnist")
    with pytest.raises(ConfigError, match="protocol"):
        train.Config(protocol="tiny")


def test_a_reduced_run_says_which_test_split_is_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("BIASLEARN_DATA", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "search_path", lambda: [tmp_path])
    cfg = train.Config(dataset="kmnist", protocol="reduced")
    assert "test split of 'kmnist'" in experiments.ready(cfg) and "download kmnist" in experiments.ready(cfg)
    ood = cfg.replace(dataset="synthetic", eval_set="dig_mnist")
    assert "test split of 'dig_mnist'" in experiments.ready(ood)
    assert experiments.ready(cfg.replace(dataset="synthetic2")) is None


def test_dig_mnist_is_a_published_test_only_source():
    src = data.TEST_ONLY["dig_mnist"]
    assert set(src.files) == {"x_test", "y_test"}
    assert all(f.url.startswith("https://github.com/vinayprabhu/Kannada_MNIST/") for f in src.files.values())
    assert data._downloadable("dig_mnist") is src and "dig_mnist" not in data.SOURCES


@pytest.mark.parametrize("name,n", [("kmnist", 10000), ("kannada_mnist", 10000), ("dig_mnist", 10240)])
def test_real_test_splits_load_alone(name, n):
    if not data.available_test(name):
        pytest.skip(f"{name}'s test split not on this machine (searched {[str(p) for p in data.search_path()]}); "
                    "the project's machines have it via ../shared/data")
    x, y = data.load_test(name)
    assert x.shape == (n, 28, 28) and x.dtype == np.uint8 and np.bincount(y).tolist() == [n // 10] * 10
    if n == 10000:
        assert np.bincount(y[data.reduced_split(y)["test"]]).tolist() == [200] * 10


# --- one network, four tasks ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def four_tasks(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    runs = presets.multitask("quick", [0], TASKS, ("bias",))
    own = {c.dataset: run(c, root=root, progress=False)["metrics"]["eval_acc"] for c in runs}
    return root, tuple(runs), own


def test_swap_matrix_diagonal_is_each_tasks_own_accuracy(four_tasks):
    root, runs, own = four_tasks
    (sw,) = presets.multitask_swap("quick", [0], TASKS)
    assert sw.runs == runs
    M = swap_matrix(run(sw, root=root), TASKS)
    assert M.shape == (4, 4)
    for t in TASKS:
        assert abs(M.loc[t, t] - own[t]) < 1e-6
        assert M.loc[t, t] > M[t].drop(t).max() + 0.2   # another task's biases do not serve this task


def test_task_variance_equals_the_variance_of_each_units_activation():
    g = torch.Generator().manual_seed(0)
    P, b = torch.randn(300, 50, generator=g), torch.randn(50, generator=g)
    V = taskvar.task_variance(P, b, chunk=64)
    assert np.allclose(V, torch.relu(P + b).double().var(0, unbiased=False).numpy(), rtol=1e-6, atol=1e-9)


def test_clustering_recovers_hand_built_clusters_and_drops_silent_units():
    """Three groups of units: specific to task 0, specific to task 1, shared by tasks 2 and 3; plus silent units."""
    rng = np.random.default_rng(0)
    profiles = np.array([[1, 0.05, 0.05, 0.05], [0.05, 1, 0.05, 0.05], [0.05, 0.05, 1, 0.9]])
    truth = np.repeat([0, 1, 2], [120, 80, 100])
    V = profiles[truth] * rng.uniform(0.5, 2.0, (len(truth), 1)) + rng.uniform(0, 0.02, (len(truth), 4))
    V = np.vstack([V, np.full((10, 4), 1e-5)])            # silent: summed variance < 1e-3
    c = taskvar.cluster(V)
    assert c["kept"].tolist() == [True] * 300 + [False] * 10 and (c["labels"][300:] == -1).all()
    assert c["k"] == 3
    found = c["labels"][:300]
    for g in range(3):  # each built group is exactly one cluster
        assert len(set(found[truth == g])) == 1
    assert sorted(c["roles"]) == [(0,), (1,), (2, 3)]
    s = taskvar.shares(c)
    assert s["specific_share"] == pytest.approx(200 / 300) and s["shared_share"] == pytest.approx(100 / 300)
    o = taskvar.order(c["labels"], c["centroids"])
    assert sorted(o) == list(range(300)) and (np.diff(c["centroids"][c["labels"][o]].argmax(1)) >= 0).all()


def test_task_variance_of_hand_built_activations_gives_the_known_clusters():
    """Pre-activations built so that units 0-59 vary on task 0 only, 60-119 on task 1 only and 120-179 on tasks 2
    and 3; elsewhere a unit's input is constant (so its activation is): task variance, then the clustering."""
    g = torch.Generator().manual_seed(0)
    serves = {0: (0,), 1: (1,), 2: (2, 3)}
    truth = np.repeat([0, 1, 2], 60)
    b = torch.full((180,), 0.5)
    V = []
    for t in range(4):
        P = torch.zeros(500, 180)
        for grp, ts in serves.items():
            if t in ts:
                cols = torch.from_numpy(np.flatnonzero(truth == grp))
                P[:, cols] = torch.randn(500, len(cols), generator=g) * torch.empty(len(cols)).uniform_(0.5, 2, generator=g)
        V.append(taskvar.task_variance(P, b))
    c = taskvar.cluster(np.stack(V, 1))
    assert c["kept"].all() and c["k"] == 3
    for grp in range(3):
        assert len(set(c["labels"][truth == grp])) == 1
    assert sorted(c["roles"]) == [(0,), (1,), (2, 3)]


def test_permuted_bias_control_shows_the_correlation_mechanics_alone_give():
    """Var(relu(z + b)) rises with b: with identically distributed inputs, any bias vector correlates with the
    variances it produces, so the permuted control comes out as high as the biases themselves; with inputs whose
    scale falls as the bias rises, the given biases correlate negatively and the permuted ones still positively."""
    g = torch.Generator().manual_seed(0)
    b = torch.linspace(-1, 1, 400)
    same = torch.randn(2000, 400, generator=g)
    rho = taskvar.bias_correlation(taskvar.task_variance(same, b)[:, None], b.numpy()[:, None])[0]
    perm = taskvar.permuted_bias_corr(same, b, np.random.default_rng(0))
    assert rho > 0.9 and perm > 0.9
    scaled = same * torch.linspace(3, 0.1, 400)        # large inputs on the units with low biases
    rho = taskvar.bias_correlation(taskvar.task_variance(scaled, b)[:, None], b.numpy()[:, None])[0]
    perm = taskvar.permuted_bias_corr(scaled, b, np.random.default_rng(0))
    assert rho < -0.5 and perm > 0.3


def test_bias_correlation_and_its_shuffled_control():
    rng = np.random.default_rng(1)
    B = rng.normal(size=(2000, 3))
    V = np.exp(B) + rng.uniform(0, 0.1, B.shape)          # variance rises with the bias
    assert (taskvar.bias_correlation(V, B) > 0.9).all()
    S = taskvar.shuffled(V, seed=0)
    assert all(sorted(S[:, t]) == sorted(V[:, t]) for t in range(3))   # each task's distribution kept
    assert (np.abs(taskvar.bias_correlation(S, B)) < 0.1).all()


def test_taskvar_run_of_four_tasks(four_tasks):
    root, runs, _ = four_tasks
    (cfg,) = presets.multitask_taskvar("quick", [0], TASKS)
    r = run(cfg, root=root)
    m, a = r["metrics"], r["arrays"]
    assert a["task_variance"].shape == (256, 4) and a["b"].shape == (256, 4)
    assert m["k"] in taskvar.K_RANGE and set(m["bias_corr"]) == set(TASKS)
    assert set(m["permuted_bias_corr"]) == set(TASKS)
    for t in TASKS:
        assert m["bias_corr_excess"][t] == pytest.approx(m["bias_corr"][t] - m["permuted_bias_corr"][t])
    assert r["curve"]["k"] == list(taskvar.K_RANGE)
    with pytest.raises(ValueError, match="sharing one seed"):
        TaskVarConfig(runs=(runs[0], dataclasses.replace(runs[1], seed=1)), seed=0)


def test_taskvar_reports_its_missing_runs(tmp_path):
    cfg = TaskVarConfig(runs=tuple(presets.multitask("quick", [0], TASKS, ("bias",))), seed=0)
    assert "4 runs it reads are not stored" in experiments.ready(cfg, tmp_path)


# --- the ledger's rule for the swap matrix ---------------------------------------------------------------

def _swap_run(diag, off):
    acc = {f"{a}->{b}": (diag if a == b else off) for a in ("x", "y") for b in ("x", "y")}
    return {"config": {}, "metrics": {"accuracy": acc}, "file": "f.json"}


@pytest.mark.parametrize("diag,off,verdict", [(0.9, 0.1, claims.HOLDS), (0.5, 0.2, claims.FAILS)])
def test_diagonal_rule_reaches_both_verdicts(diag, off, verdict):
    rule = {"kind": "diagonal", "metric": "accuracy", "tasks": ["x", "y"], "margin": 0.5, "scale": 100, "unit": "pp"}
    v, text, used = claims.RULES["diagonal"](rule, [_swap_run(diag, off)])
    assert v == verdict and f"{(diag - off) * 100:+.1f} pp" in text and used


def test_diagonal_rule_without_every_pair_is_not_run():
    rule = {"kind": "diagonal", "metric": "accuracy", "tasks": ["x", "y", "z"], "margin": 0.5}
    assert claims.RULES["diagonal"](rule, [_swap_run(0.9, 0.1)])[0] == claims.NOT_RUN


def test_swap_config_of_four_tasks_rejects_mixed_weights():
    runs = presets.multitask("quick", [0], TASKS, ("bias",))
    with pytest.raises(ValueError, match="sharing one seed"):
        SwapConfig(runs=tuple(runs[:3]) + (runs[3].replace(seed=1),), seed=0)
