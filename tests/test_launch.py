"""biaslearn.launch without a cluster: the local executor runs a quick sweep end to end (one process per run,
through submitit), and the Slurm executor submits to a fake sbatch (shell scripts on PATH that record their
arguments; sacct and squeue answer from files the tests write): the submitted script's resources and command
line, the pickled runs, the skipped ones, and what status makes of each state."""
import json
import math
import re
import sys
from pathlib import Path

import pytest

from biaslearn import experiments, launch, results, train
from biaslearn.presets import PRESETS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """A results folder and a log folder in tmp_path; nothing reaches the repository's results/ or logs/."""
    monkeypatch.setenv("BIASLEARN_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("BIASLEARN_LOGS", str(tmp_path / "logs"))
    monkeypatch.delenv("BIASLEARN_DATA", raising=False)
    return tmp_path / "results", tmp_path / "logs"


@pytest.fixture
def slurm(tmp_path, monkeypatch):
    """Fake sbatch / srun / sacct / squeue on PATH. sbatch records its arguments and answers job 4242, 4243, ...;
    sacct prints the lines of fake/states (fails if fake/sacct.fail exists); squeue prints fake/queue."""
    fake, bin_ = tmp_path / "fake", tmp_path / "bin"
    fake.mkdir()
    bin_.mkdir()
    scripts = {
        "sbatch": f'echo "$@" >> {fake}/sbatch.args\nn=$(cat {fake}/next 2>/dev/null || echo 4242)\n'
                  f'echo $((n + 1)) > {fake}/next\necho "Submitted batch job $n"\n',
        "srun": "exit 0\n",
        "sacct": f'echo "$@" >> {fake}/sacct.args\n[ -f {fake}/sacct.fail ] && exit 1\necho "JobID|State|NodeList"\n'
                 f"cat {fake}/states 2>/dev/null\nexit 0\n",
        "squeue": f'echo "$@" >> {fake}/squeue.args\ncat {fake}/queue 2>/dev/null\nexit 0\n',
    }
    for name, body in scripts.items():
        (bin_ / name).write_text("#!/bin/sh\n" + body)
        (bin_ / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}:{__import__('os').environ['PATH']}")
    return fake


def _store(cfg, root, wall=1.0):
    results.save(cfg, {"stub": 1.0}, {}, wall, "cpu", root=root)


def _sbatch_lines(script: Path) -> dict:
    return dict(m.groups() for m in re.finditer(r"^#SBATCH --([\w-]+)(?:=(.*))?$", script.read_text(), re.M))


# --- resources ------------------------------------------------------------------------------------------------

def test_every_estimate_names_a_preset_and_its_source():
    assert set(launch.ESTIMATES) <= set(PRESETS)
    for name, e in launch.ESTIMATES.items():
        assert "estimate" in e.source, name  # peak memory is not stored per run: never pass one off as measured
        assert e.cpus >= 2 and e.mem_gb > 0 and (e.like is None or e.like in PRESETS)
    assert "8.3 GB" in launch.ESTIMATES["feedforward"].source  # book/bench.json's fast-path peak
    for name in set(PRESETS) - set(launch.ESTIMATES):  # presets added since: their type's estimate, said so
        assert f"no entry for {name}" in launch.estimate(name).source


def test_memory_estimates_hold_the_cached_projection():
    """A bias-only (or readout, mask) run caches (training + evaluation rows) x width: every estimate of a
    feed-forward preset holds its largest paper-scale run's cache (data sets of 60,000 + 10,000 images)."""
    for name in launch.ESTIMATES:
        cfgs = [c for c in PRESETS[name].configs("paper") if isinstance(c, train.Config) and c.mode != "full"]
        for c in cfgs:
            rows = 60_000 if c.split == "val" else 70_000
            cache = rows * c.n_hidden * (2 if c.cache_dtype == "bfloat16" else 4)
            assert launch.ESTIMATES[name].mem_gb * 2**30 > cache, (name, c)


def test_time_limit_from_the_longest_stored_run(dirs):
    root, _ = dirs
    cfgs = PRESETS["theory_rnn"].configs("quick", [0])
    assert launch.resources("theory_rnn", "quick", root).minutes == launch.QUICK["minutes"]  # nothing stored: estimate
    _store(cfgs[0], root, wall=30.0)
    _store(cfgs[1], root, wall=300.0)
    r = launch.resources("theory_rnn", "quick", root, margin=2.0)
    assert r.minutes == math.ceil(300 * 2 / 60 + launch.TIME_EXTRA_MINUTES) == 20
    assert r.why["time"].startswith("measured: longest of 2 stored runs 5.0 min")
    assert (r.cpus, r.gpus) == (2, 0) and r.why["mem"].startswith("measured: largest peak memory of 2 stored runs")


def test_memory_from_the_measured_peak_of_stored_runs(dirs, monkeypatch):
    """Every new run records its process's peak memory; a preset's jobs ask for the largest, with the margin."""
    root, _ = dirs
    cfgs = PRESETS["theory_rnn"].configs("quick", [0])
    for cfg, mb in zip(cfgs, (1000.0, 3000.0)):
        monkeypatch.setattr(results, "peak_rss_mb", lambda mb=mb: mb)
        _store(cfg, root)
        assert results.read(results.path(cfg, root))["provenance"]["peak_rss_mb"] == mb
    r = launch.resources("theory_rnn", "quick", root)
    assert r.mem_gb == math.ceil(3000 / 1024 * launch.MEM_MARGIN)
    assert r.why["mem"].startswith("measured: largest peak memory of 2 stored runs, 2.9 GB")
    assert launch.resources("theory_rnn", "quick", root, mem_gb=7).mem_gb == math.ceil(7 * launch.MEM_MARGIN)


def test_paper_resources_of_a_gpu_preset():
    r = launch.resources("feedforward", "paper", gpus=1)
    wall, n = launch.longest("feedforward", "paper", [results.results_dir(results.ROOT / "results")])
    assert n > 0 and r.minutes == math.ceil(wall * launch.TIME_MARGIN / 60 + launch.TIME_EXTRA_MINUTES)
    measured, _ = launch.peak("feedforward", "paper", [results.results_dir(results.ROOT / "results")])
    assert r.mem_gb == math.ceil((measured / 1024 if measured else 9.5) * launch.MEM_MARGIN) and r.gpus == 1 and r.cpus == 4
    assert launch.resources("theory_width", "paper", gpus=1).gpus == 0  # too small to gain from a GPU


def test_gpu_estimate_is_arithmetic_at_the_assumed_speeds():
    g = launch.GPU_ASSUMED
    full = PRESETS["feedforward"].configs("paper", [0], datasets=["mnist"], modes=["full"])[0]
    assert launch.gpu_seconds(full) == pytest.approx(20 * (6 * 60_000 + 2 * 10_000) * 794 * 32_000 / g["flops"]
                                                     + g["start_s"])
    bias = full.replace(mode="bias", split="val")
    rows = 60_000  # 50,000 training + 10,000 validation rows cached
    assert launch.gpu_seconds(bias) == pytest.approx(2 * rows * 784 * 32_000 / g["flops"]
                                                     + 20 * rows * 32_000 * 4 / g["bytes_per_s"] + g["start_s"])
    assert launch.gpu_seconds(PRESETS["recurrent"].configs("quick", [0])[0]) is None


# --- the local executor: a quick sweep end to end ------------------------------------------------------------

def test_local_executor_runs_a_quick_sweep_end_to_end(dirs):
    root, logs = dirs
    said = []
    out = launch.submit("theory_rnn", "quick", [0], executor="local", results_dir=root, logs=logs, parallel=2,
                        say=said.append)
    cfgs = PRESETS["theory_rnn"].configs("quick", [0])
    assert len(out["jobs"]) == len(cfgs) == 4 and not out["skipped"]
    assert all(results.path(c, root).exists() for c in cfgs)
    df = experiments.collect("theory_rnn", "quick", [0], root, compute=False)  # the chapters' road reads them
    assert df["stored"].all() and (df["wall_seconds"] > 0).all()
    rows = launch.status("theory_rnn", "quick", [0], root, logs)
    assert [r["state"] for r in rows] == ["done"] * 4 and all(Path(r["log"]).exists() for r in rows)
    log = Path(rows[0]["log"]).with_suffix(".out").read_text()
    assert "biaslearn result:" in log and '"peak_rss_mb"' in log  # each job reports its peak memory
    again = launch.submit("theory_rnn", "quick", [0], executor="local", results_dir=root, logs=logs, say=said.append)
    assert not again["jobs"] and [w for _, w in again["skipped"]] == ["stored"] * 4


def test_a_failed_local_job_is_listed_with_its_log_tail(dirs, capsys):
    root, logs = dirs

    def boom(cfg, results_dir, device, threads):  # pickled by value: runs in the job's process
        print("about to fail", flush=True)
        raise RuntimeError("boom from the test")

    out = launch.submit("theory_matching", "quick", [0], executor="local", results_dir=root, logs=logs, parallel=2,
                        fn=boom, say=lambda *_: None)
    assert len(out["jobs"]) == 2
    rows = launch.status("theory_matching", "quick", [0], root, logs)
    assert [r["state"] for r in rows] == ["failed", "failed"]
    assert rows[0]["detail"] == "raised RuntimeError: boom from the test"
    launch.print_status(rows)
    shown = capsys.readouterr().out
    assert "2 runs: 2 failed" in shown and rows[0]["log"] in shown
    assert "    | RuntimeError: boom from the test" in shown  # the tail of the job's stderr
    todo, _ = launch.plan("theory_matching", "quick", [0], root, logs)
    assert len(todo) == 2  # a failed run is submitted again


# --- the Slurm executor against a fake sbatch -----------------------------------------------------------------

def test_slurm_submission_script_resources_and_command(dirs, slurm, monkeypatch):
    root, logs = dirs
    monkeypatch.setenv("BIASLEARN_DATA", "/data/sets")
    cfgs = PRESETS["theory_rnn"].configs("quick", [0])
    monkeypatch.setattr(results, "peak_rss_mb", lambda: 2000.0)                  # its measured peak: 3 GB asked
    _store(cfgs[0], root)                                                        # stored: skipped
    lock = results.path(cfgs[1], root).with_suffix(".lock")
    assert results._try_lock(lock)                                               # in flight (this process): skipped
    out = launch.submit("theory_rnn", "quick", [0], executor="slurm", results_dir=root, logs=logs, partition="cpu",
                        account="lab", qos="high", setup=["module load python"], array_parallelism=1, gpus=1,
                        say=lambda *_: None)
    assert [w for _, w in out["skipped"]][0] == "stored" and out["skipped"][1][1].startswith("locked by process")
    assert [r["job_id"] for r in out["jobs"]] == ["4242_0", "4242_1"]
    assert (slurm / "sbatch.args").read_text().count("\n") == 1  # one array for the preset
    folder = logs / "theory_rnn"
    script = folder / "4242_submission.sh"
    flags = _sbatch_lines(script)
    assert flags["array"] == "0-1%1" and flags["cpus-per-task"] == "2" and flags["mem"] == "3GB"
    assert flags["time"] == str(math.ceil(1.0 * launch.TIME_MARGIN / 60 + launch.TIME_EXTRA_MINUTES))  # stored: 1 s
    assert (flags["partition"], flags["account"], flags["qos"]) == ("cpu", "lab", "high")
    assert flags["job-name"] == "biaslearn-theory_rnn" and "gpus-per-node" not in flags  # theory: no GPU
    assert flags["output"] == f"{folder}/%A_%a_0_log.out" and flags["error"] == f"{folder}/%A_%a_0_log.err"
    text = script.read_text()
    assert "export OMP_NUM_THREADS=2\nexport BIASLEARN_DATA=/data/sets\nmodule load python\n" in text
    assert (f"srun --unbuffered --output {folder}/%A_%a_%t_log.out --error {folder}/%A_%a_%t_log.err "
            f"{sys.executable} -u -m submitit.core._submit {folder}") in text
    from submitit.core.utils import DelayedSubmission
    subs = [DelayedSubmission.load(folder / f"4242_{i}_submitted.pkl") for i in range(2)]
    assert [s.function for s in subs] == [launch.run_job] * 2
    assert [s.args for s in subs] == [(c, str(root), "auto", 2) for c in cfgs[2:]]  # the two missing runs
    recs = launch._records(logs)
    assert {r["file"] for r in recs.values()} == {str(results.path(c, root).relative_to(root)) for c in cfgs[2:]}
    results._unlock(lock, results._holder(lock)[1])


def test_slurm_gpu_preset_asks_for_a_gpu(dirs, slurm):
    root, logs = dirs
    launch.submit("recurrent", "quick", [0], executor="slurm", results_dir=root, logs=logs, gpus=1,
                  say=lambda *_: None, modes=["bias"], widths=[16, 32])
    flags = _sbatch_lines(logs / "recurrent" / "4242_submission.sh")
    assert flags["gpus-per-node"] == "1" and flags["array"] == "0-1%2" and "partition" not in flags


def test_slurm_status_from_sacct_and_squeue(dirs, slurm, capsys):
    root, logs = dirs
    launch.submit("theory_rnn", "quick", [0], executor="slurm", results_dir=root, logs=logs, say=lambda *_: None)
    (slurm / "states").write_text("4242_0|RUNNING|node1\n4242_[1-3%4]|PENDING|\n")
    assert [r["state"] for r in launch.status("theory_rnn", "quick", [0], root, logs)] == \
        ["running", "queued", "queued", "queued"]
    assert "-j 4242" in (slurm / "sacct.args").read_text()
    todo, skipped = launch.plan("theory_rnn", "quick", [0], root, logs)
    assert not todo
    assert [w for _, w in skipped] == ["running as job 4242_0"] + [f"queued as job 4242_{i}" for i in (1, 2, 3)]
    # one job ran (its pickle, executed here as the node would), one timed out, one failed, one vanished
    from submitit.core.utils import DelayedSubmission
    folder = logs / "theory_rnn"
    DelayedSubmission.load(folder / "4242_0_submitted.pkl").result()
    (folder / "4242_1_0_log.err").write_text("step 10\n"
                                             "slurmstepd: error: *** JOB 4243 CANCELLED DUE TO TIME LIMIT ***\n")
    (slurm / "states").write_text("4242_0|COMPLETED|node1\n4242_1|TIMEOUT|node2\n4242_2|OUT_OF_MEMORY|node2\n")
    rows = launch.status("theory_rnn", "quick", [0], root, logs)
    assert [r["state"] for r in rows] == ["done", "failed", "failed", "missing"]
    assert rows[1]["detail"] == "TIMEOUT" and rows[2]["detail"] == "OUT_OF_MEMORY"
    assert rows[3]["detail"].startswith("job 4242_3 not known to sacct or squeue")
    launch.print_status(rows)
    shown = capsys.readouterr().out
    assert "4 runs: 2 failed, 1 missing, 1 done" in shown
    assert "    | slurmstepd: error: *** JOB 4243 CANCELLED DUE TO TIME LIMIT ***" in shown
    (slurm / "sacct.fail").write_text("")  # no accounting: squeue knows the live jobs
    (slurm / "queue").write_text("4242_3|RUNNING\n")
    assert launch.status("theory_rnn", "quick", [0], root, logs)[3]["state"] == "running"
    (slurm / "queue").write_text("")  # every job ended: wait returns at once, with what each left
    end = launch.wait(list(launch._records(logs).values()), poll=0, say=lambda *_: None)
    assert [r["job_id"] for r in end["done"]] == ["4242_0"] and len(end["failed"]) == 3


def test_experiments_command_line_submits_through_launch(dirs, slurm, capsys):
    root, logs = dirs
    experiments.main(["theory_rnn", "--scale", "quick", "--seeds", "0", "--executor", "slurm", "--qos", "low"])
    printed = capsys.readouterr().out
    assert "theory_rnn (quick): 4 to submit" in printed and "4 jobs submitted" in printed
    assert _sbatch_lines(logs / "theory_rnn" / "4242_submission.sh")["qos"] == "low"
    (slurm / "states").write_text("4242_[0-3%4]|PENDING|\n")
    experiments.main(["theory_rnn", "--scale", "quick", "--seeds", "0", "--executor", "slurm", "--dry-run"])
    assert "0 to submit, 4 skipped (4 queued)" in capsys.readouterr().out
    import argparse
    ap = argparse.ArgumentParser()
    launch.add_arguments(ap)
    assert ap.parse_args([]).executor == "inline"  # the default: experiments.run in this process, as before


def test_launch_command_line(dirs, slurm, capsys):
    root, logs = dirs
    assert launch.main(["submit", "theory_rnn", "--scale", "quick", "--seeds", "0", "--executor", "local",
                        "--dry-run"]) == 0
    assert "would submit theory_rnn/" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        launch.main(["submit", "theory_rnn", "--executor", "inline"])
    with pytest.raises(SystemExit):
        launch.main(["submit", "--all", "--executor", "slurm", "--datasets", "mnist"])
    assert launch.main(["status", "theory_rnn", "--scale", "quick", "--seeds", "0"]) == 0
    assert "4 runs: 4 missing" in capsys.readouterr().out


def test_reproduce_submits_every_preset_once(dirs, slurm):
    root, logs = dirs
    said = []
    subs = launch.submit_all("quick", [0], executor="slurm", results_dir=root, logs=logs, dry_run=True,
                             say=said.append)
    assert set(subs) == set(PRESETS)
    keys = [results.key(c) for s in subs.values() for c in s["todo"]]
    assert len(keys) == len(set(keys))  # a run two presets share is submitted once


def test_chapter_seeded_presets_are_those_the_chapters_collect_with_their_seeds():
    seeded = set()
    for nb in (REPO / "book").glob("*.ipynb"):
        src = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        seeded |= set(re.findall(r'collect\("(\w+)", scale, seeds\b', src))
    assert seeded and {p for p in seeded if p in PRESETS} <= {p for p in PRESETS if launch.seeded(p)}
    assert not launch.seeded("feedforward_selection") and not launch.seeded("theory_matching")


def test_slurm_without_sbatch_is_a_clear_error(dirs, monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SystemExit) as e:
        experiments.main(["theory_rnn", "--scale", "quick", "--seeds", "0", "--executor", "slurm"])
    assert e.value.code == 2 and "no sbatch on PATH" in capsys.readouterr().err
