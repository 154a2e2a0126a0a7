"""The results cache: keys, atomic writes, loading instead of recomputing, clear errors."""
import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch

from biaslearn import results, train
from biaslearn.experiments import run
from biaslearn.multitask import SwapConfig
from biaslearn.train import Config

QUICK = Config(dataset="synthetic", n_hidden=64, epochs=1, n_train=300, split="test")


def _fake_run(calls):
    def fn(cfg):
        calls.append(cfg)
        return {"metrics": {"eval_acc": 0.5}, "curve": {"epoch": [1]}, "device": "cpu",
                "arrays": {"b": [1.0, 2.0]}}
    return fn


OTHER = {"experiment": "other", "dataset": "mnist", "mode": "full", "n_hidden": 65, "init": "gaussian",
         "scale": 0.2, "out_bias": True, "seed": 1, "epochs": 2, "batch_size": 128, "optimizer": "sgd",
         "lr": 0.01, "split": "val", "val_size": 100, "n_train": 301, "cache_dtype": "bfloat16", "rerun": 1, "protocol": "reduced", "eval_set": "dig_mnist",
         "mask_slope": 200.0, "kernel": "numba", "autocast": "bfloat16"}
NEEDS = {"eval_set": {"protocol": "reduced"}, "mask_slope": {"mode": "mask"},  # fields valid only beside another
         "kernel": {"mode": "bias"}, "autocast": {"mode": "full"}}


def test_key_depends_on_every_field_and_schema(monkeypatch):
    k = results.key(QUICK)
    assert results.key(dataclasses.replace(QUICK)) == k
    assert set(OTHER) == {f.name for f in dataclasses.fields(Config)}
    for name, value in OTHER.items():
        base = dataclasses.replace(QUICK, **NEEDS.get(name, {}))
        assert results.key(dataclasses.replace(base, **{name: value})) != results.key(base), name
    monkeypatch.setattr(results, "SCHEMA", results.SCHEMA + 1)
    assert results.key(QUICK) != k


def test_a_field_added_later_keeps_old_keys_at_its_default():
    """Config.ADDED fields are left out of the key at their default: runs stored before the field
    existed are still found (the key of Figure 1's first run is the one its file was stored under)."""
    assert "rerun" not in results.canonical(QUICK)
    assert results.canonical(dataclasses.replace(QUICK, rerun=2))["rerun"] == 2
    first = Config(dataset="mnist", mode="bias", lr=0.01, seed=0)
    assert results.key(first) == "e41861783c9f11de"
    # nested configs too: the swapped-bias evaluation of seed 0 holds Figure 1's configs
    from biaslearn.presets import feedforward_swap
    assert results.key(feedforward_swap("paper", [0])[0]) == "f92a72e752a57925"


def test_cached_computes_once_then_loads(tmp_path):
    calls = []
    r1 = results.cached(QUICK, _fake_run(calls), tmp_path)
    r2 = results.cached(QUICK, _fake_run(calls), tmp_path)
    assert len(calls) == 1
    assert r1["metrics"] == r2["metrics"] == {"eval_acc": 0.5}
    assert r2["arrays"]["b"].tolist() == [1.0, 2.0]
    stored = json.loads(results.path(QUICK, tmp_path).read_text())
    assert set(stored) == {"config", "metrics", "curve", "provenance"}
    prov = stored["provenance"]
    assert {"git_commit", "torch", "numpy", "device", "wall_seconds"} <= set(prov)
    assert results.path(QUICK, tmp_path).parent.name == "feedforward"


def test_not_computing_returns_none(tmp_path):
    calls = []
    assert results.cached(QUICK, _fake_run(calls), tmp_path, compute=False) is None
    assert calls == []


@pytest.mark.parametrize("content", ["{not json", '{"config": 1}', "[]"])
def test_corrupt_result_names_the_file(tmp_path, content):
    p = results.path(QUICK, tmp_path)
    p.parent.mkdir(parents=True)
    p.write_text(content)
    with pytest.raises(results.ResultError, match=str(p)):
        results.load(QUICK, tmp_path)


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        results.cached(QUICK, _fake_run([]), tmp_path)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == [], leftovers
    assert results.load(QUICK, tmp_path) is None


def test_training_run_end_to_end(tmp_path):
    """The real entry point on tiny synthetic data: learns, and stores its biases."""
    cfg = dataclasses.replace(QUICK, epochs=3, n_hidden=256, lr=1e-2, n_train=2000, batch_size=32)
    r = run(cfg, root=tmp_path, progress=False)
    assert r["metrics"]["eval_acc"] > 0.5  # chance is 0.1
    assert r["metrics"]["n_trainable"] == 256
    assert len(r["curve"]["eval_acc"]) == 3
    assert r["arrays"]["b"].shape == (256,)
    assert run(cfg, root=tmp_path, compute=False)["metrics"] == r["metrics"]


@pytest.mark.parametrize("kwargs,error", [
    (dict(mode="weights"), ValueError), (dict(n_hidden="32000"), TypeError),
    (dict(split="train"), ValueError), (dict(epochs=True), TypeError), (dict(lr=0.0), ValueError),
])
def test_bad_config(kwargs, error):
    with pytest.raises(error):
        Config(**kwargs)


def test_unknown_config_key():
    with pytest.raises(TypeError, match="unknown Config keys"):
        Config.from_dict({"widht": 3})


def test_validation_split_never_touches_test_set(monkeypatch):
    from biaslearn import data
    imgs = data.synthetic()
    seen = []
    monkeypatch.setattr(data, "load", lambda name: seen.append(name) or imgs)
    x_tr, y_tr, x_ev, y_ev = train.split(dataclasses.replace(QUICK, split="val", val_size=500, n_train=0))
    assert len(x_ev) == 500 and len(x_tr) == len(imgs.x_train) - 500
    rows = {tuple(r) for r in (x_tr * 255).round().to(int).tolist()[:50]}
    assert not rows & {tuple(r) for r in (x_ev * 255).round().to(int).tolist()}


def test_swapping_biases_serves_each_task_from_one_network(tmp_path, monkeypatch):
    """Two tasks, one set of frozen weights: each task's biases score its own test set, and the
    swap result matches the accuracy each run measured on its own."""
    from biaslearn import data
    other = data.synthetic(seed=1)  # a second task: different class prototypes
    monkeypatch.setattr(data, "load", lambda name: other if name == "mnist" else data.synthetic())
    runs = tuple(dataclasses.replace(QUICK, dataset=d, epochs=3, n_hidden=256, lr=1e-2, n_train=2000,
                                     batch_size=32) for d in ("synthetic", "mnist"))
    own = {c.dataset: run(c, root=tmp_path, progress=False)["metrics"]["eval_acc"] for c in runs}
    r = run(SwapConfig(runs=runs, seed=0), root=tmp_path)
    acc = r["metrics"]["accuracy"]
    for d in own:
        assert abs(acc[f"{d}->{d}"] - own[d]) < 1e-6
    assert acc["mnist->synthetic"] < own["synthetic"] - 0.2  # the biases carry the task
    assert 0 <= r["metrics"]["silenced_fraction"]["synthetic"] < 1
    assert run(SwapConfig(runs=runs, seed=0), root=tmp_path, compute=False) is not None


def test_swap_config_rejects_mixed_weights():
    with pytest.raises(ValueError, match="sharing one seed"):
        SwapConfig(runs=(QUICK, dataclasses.replace(QUICK, seed=1)), seed=0)


def test_int_and_float_give_the_same_key():
    assert results.key(dataclasses.replace(QUICK, scale=1)) == results.key(dataclasses.replace(QUICK, scale=1.0))


def test_provenance_line_names_runs_seeds_commit_hardware_and_time(tmp_path):
    """The caption line under a figure: from the stored runs, missing runs left out."""
    from biaslearn import report

    calls = []
    pairs = []
    for seed in (2, 0):
        cfg = dataclasses.replace(QUICK, seed=seed)
        pairs.append((cfg, results.cached(cfg, _fake_run(calls), root=tmp_path)))
    pairs.append((dataclasses.replace(QUICK, seed=9), None))  # a missing run
    line = report.provenance([r for _, r in pairs])
    commit = results.code_version()["git_commit"][:7]
    assert line.startswith("2 runs, seeds [0, 2]; code at commit " + commit)
    assert f"; {results.cpu_name()} CPU, {torch.get_num_threads()} threads; " in line
    assert line.endswith("min of training in all.")
    assert report.provenance([None]) == "No runs stored."


def test_every_stored_result_is_found_under_its_own_key():
    """The config base changed nothing a key depends on: every committed result is read back, its
    config rebuilt through its type's from_dict (validated) and its key recomputed, equal to its file name."""
    from biaslearn.experiments import config_of

    stored = results.stored()
    assert len(stored) > 500, "the committed results/ folder is missing"
    for r in stored:
        cfg = config_of(r)
        assert results.canonical(cfg) == r["config"], r["file"]
        assert f"{cfg.experiment}/{results.key(cfg)}.json" == r["file"]


@pytest.mark.parametrize("content, what", [("", "Expecting value"), ("[]", "no JSON object"),
                                           ('{"config": {}}', "'metrics' is missing")])
def test_read_names_the_file_and_what_is_wrong(tmp_path, content, what):
    p = tmp_path / "exp" / "abc.json"
    p.parent.mkdir()
    p.write_text(content)
    with pytest.raises(results.ResultError, match=f"{p}.*{what}"):
        results.read(p)
    with pytest.raises(results.ResultError, match="abc.json"):
        results.stored("exp", tmp_path)


def test_differences_within_and_beyond_the_tolerance():
    old = {"r2": 0.9, "acc": {"a->b": 0.5}, "seconds_per_epoch": 3.0, "median": None}
    assert results.differences(old, {"r2": 0.9 * (1 + 1e-4), "acc": {"a->b": 0.5}, "seconds_per_epoch": 9.0,
                                     "median": None}) == []  # timings are not numerics
    diff = results.differences(old, {"r2": 0.91, "acc": {"a->b": 0.5}, "median": 0.1})
    assert diff == ["median: stored None, recomputed 0.1", "r2: stored 0.9, recomputed 0.91"]


def test_stored_results_match_the_code():
    """Stale results are caught: the cheapest stored run of every experiment whose runs take at most a
    few seconds (and whose data are here) is recomputed and must give the stored metrics. A change of
    numerics in src/ (e.g. another weight scale in nets.draw) fails here, not silently in the book."""
    rows = results.verify(sample=1, max_seconds=4.0, progress=False)
    done = [r for r in rows if r["status"] != "skipped"]
    assert {"theory_activation", "theory", "width"} <= {r["experiment"] for r in done}, rows
    # recurrent training is recomputed on the CPU model that stored it, else skipped with that reason
    cpu = results.cpu_name()
    for name in ("recurrent_selection", "theory_rnn"):
        row = next(r for r in rows if r["experiment"] == name)
        stored_here = any(r["provenance"].get("cpu") == cpu for r in results.stored(name))
        assert row["status"] != "skipped" if stored_here else "stored on another CPU" in row["detail"], row
    assert [r for r in done if r["status"] == "differs"] == []


def test_verify_catches_a_changed_weight_scale(monkeypatch):
    """The same check with the weights drawn at half their scale: every recomputed run differs. Recurrent runs
    are recomputed only on the CPU model that stored them (skipped elsewhere, as test_stored_results_match_the_code
    checks), so two theory experiments (no data set needed) are among those checked on any CPU."""
    from biaslearn import nets
    draw = nets.draw
    monkeypatch.setattr(nets, "draw", lambda shape, seed, name, init="uniform", scale=0.1, fan_in=None:
                        draw(shape, seed, name, init, scale / 2, fan_in))
    rows = results.verify(sample=1, max_seconds=4.0, progress=False,
                          experiments=["recurrent_selection", "theory_rnn", "theory", "theory_activation"])
    checked = [r for r in rows if not (r["status"] == "skipped" and "stored on another CPU" in r["detail"])]
    assert {"theory", "theory_activation"} <= {r["experiment"] for r in checked}, rows
    assert [r["status"] for r in checked] == ["differs"] * len(checked), rows


# --- Locks, permissions, the results folder, provenance ---------------------------------------------

def _sweep_process(root, counter, barrier, out):
    """One of two sweeps computing QUICK into the same folder (module level: run in a spawned process).
    Its fn appends this process's PID to ``counter`` and trains for 1.5 s."""
    import time

    results.LOCK_POLL_SECONDS = 0.05

    def fn(cfg):
        with open(counter, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.5)
        return {"metrics": {"pid": os.getpid()}, "curve": {}, "device": "cpu"}

    barrier.wait()  # both look for the result at once: neither finds it
    out.put(results.cached(QUICK, fn, root)["metrics"]["pid"])


def test_concurrent_sweeps_train_a_run_once(tmp_path, capfd):
    """Two processes ask for the same missing run at the same moment: one trains it, the other waits
    (saying so once) and loads what the first stored."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    counter, barrier, out = tmp_path / "trained", ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_sweep_process, args=(tmp_path, counter, barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    pids = sorted(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    trained = counter.read_text().split()
    assert len(trained) == 1, trained
    assert pids == [int(trained[0])] * 2  # the waiter got the result of the one that trained
    assert capfd.readouterr().err.count("waiting for") == 1
    assert not results.path(QUICK, tmp_path).with_suffix(".lock").exists()


def _dead_pid() -> int:
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()  # exited and reaped
    return p.pid


@pytest.mark.parametrize("case", ["dead process", "older than the default age", "older than a set age",
                                  "unreadable"])
def test_a_stale_lock_is_taken_over(tmp_path, monkeypatch, capsys, case):
    import socket
    import time

    now = time.time()
    pid, started = {"dead process": (_dead_pid(), now), "older than the default age": (os.getpid(), now - 49 * 3600),
                    "older than a set age": (os.getpid(), now - 2 * 3600), "unreadable": (None, None)}[case]
    if case == "older than a set age":
        monkeypatch.setenv("BIASLEARN_LOCK_MAX_AGE_HOURS", "1")
    lock = results.path(QUICK, tmp_path).with_suffix(".lock")
    lock.parent.mkdir(parents=True)
    if pid is None:  # a process died between creating the lock and writing it, 2 minutes ago
        lock.write_text("")
        os.utime(lock, (now - 120, now - 120))
    else:
        lock.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": started}))
    calls = []
    r = results.cached(QUICK, _fake_run(calls), tmp_path)
    assert len(calls) == 1 and r["metrics"] == {"eval_acc": 0.5}
    assert "taking over the stale lock" in capsys.readouterr().err
    assert sorted(p.name for p in lock.parent.iterdir()) == [f"{results.key(QUICK)}.{x}" for x in ("json", "npz")]


def test_busy_means_a_live_process_holds_the_runs_lock(tmp_path):
    import socket
    import time

    lock = results.path(QUICK, tmp_path).with_suffix(".lock")
    assert not results.busy(QUICK, tmp_path)                      # no lock
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}))
    assert results.busy(QUICK, tmp_path)
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "started": time.time()}))
    assert not results.busy(QUICK, tmp_path)                      # its process is gone: stale


def test_a_live_lock_is_not_stale():
    import socket
    import time

    here, now = socket.gethostname(), time.time()
    assert results._stale({"pid": os.getpid(), "host": here, "started": now - 3600}) is None
    assert results._stale({"pid": _dead_pid(), "host": here + "-elsewhere", "started": now}) is None  # can't tell
    assert results._stale({"unreadable": True, "started": now - 1}) is None  # being written


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)], ids=["umask 022", "umask 002"])
def test_result_files_get_the_umasks_permissions(tmp_path, umask, mode):
    import stat

    old = os.umask(umask)
    try:
        results.cached(QUICK, _fake_run([]), tmp_path)
    finally:
        os.umask(old)
    p = results.path(QUICK, tmp_path)
    for f in (p, p.with_suffix(".npz")):
        assert stat.S_IMODE(f.stat().st_mode) == mode, f


@pytest.mark.parametrize("case", ["under a file", "read-only"])
def test_an_unwritable_results_folder_fails_before_training(tmp_path, case):
    import re

    root = tmp_path / "root"
    if case == "under a file":
        root.write_text("")
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        root.mkdir(mode=0o555)
    calls = []
    with pytest.raises(results.ResultError, match=f"results folder {re.escape(str(root / 'feedforward'))}"):
        results.cached(QUICK, _fake_run(calls), root)
    assert calls == []


def test_provenance_records_versions_threads_and_determinism(tmp_path):
    prov = results.cached(QUICK, _fake_run([]), tmp_path)["provenance"]
    assert prov == json.loads(results.path(QUICK, tmp_path).read_text())["provenance"]
    assert {"git_commit", "git_dirty", "python", "torch", "numpy", "device", "cpu", "gpu", "threads",
            "wall_seconds", "finished"} <= set(prov)  # the keys stored before
    assert prov["torch"] == torch.__version__ and prov["device"] == "cpu" and prov["gpu"] is None
    assert prov["cuda"] == torch.version.cuda
    assert prov["cudnn"] == (torch.backends.cudnn.version() if torch.version.cuda else None)
    assert prov["threads"] == torch.get_num_threads()
    assert prov["cpu_model"] == results.cpu_model()
    info = Path("/proc/cpuinfo").read_text().split("\n\n")[0] if Path("/proc/cpuinfo").exists() else ""
    family = [line.split(":")[1].strip() for line in info.splitlines() if line.startswith("cpu family")]
    assert (f"family {family[0]} model " in prov["cpu_model"]) if family else prov["cpu_model"] is None
    assert prov["deterministic_algorithms"] is torch.are_deterministic_algorithms_enabled()
    assert prov["cudnn_benchmark"] is torch.backends.cudnn.benchmark
    assert prov["cudnn_deterministic"] is torch.backends.cudnn.deterministic
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(not before)
    try:
        prov = results.cached(dataclasses.replace(QUICK, seed=1), _fake_run([]), tmp_path)["provenance"]
    finally:
        torch.use_deterministic_algorithms(before)
    assert prov["deterministic_algorithms"] is (not before)
