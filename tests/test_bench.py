"""`make bench`: what it computes and writes, on a tiny shape (no speed is asserted: speed is reported)."""
import json
import os
from pathlib import Path

import pytest

from biaslearn import bench, results

REPO = Path(__file__).resolve().parents[1]


def _row(variant, seconds, setup=0.0, batches=None, cache_mb=None):
    return {"variant": variant, "seconds_per_epoch": seconds, "setup_seconds": setup, "peak_mb": 2048.0,
            "cache_mb": cache_mb, "own_mb": None if cache_mb is None else cache_mb + 10,
            "extrapolated_from_batches": batches}


ROWS = [_row("plain", 20.0), _row("fast", 2.0, setup=22.4, cache_mb=1000.0), _row("full", 50.0, batches=20)]


def test_speedup_is_plain_over_fast():
    assert bench.speedup(ROWS) == 10.0 and bench.speedup(ROWS, "full") == 0.4
    assert bench.speedup([_row("plain", 3.0), _row("fast", 4.0)]) == 0.75
    assert bench.speedup([_row("plain", 3.0), _row("full", 4.0)]) is None  # no fast path timed


def test_batches_scale_to_a_whole_epoch():
    # 60,000 examples in batches of 256: 235 batches (the last one short)
    assert bench.per_epoch(2.0, 20) == pytest.approx(2.0 * 235 / 20)
    assert bench.per_epoch(1.0, 1, n=512) == 2.0


def test_bandwidth_is_the_cache_read_once_per_epoch():
    assert bench.bandwidth(ROWS[1]) == pytest.approx(1000 * 2**20 / 2.0 / 1e9)
    assert bench.bandwidth(ROWS[0]) is None  # no cache


def test_triad_and_read_bandwidths_are_measured():
    triad, read = bench.triad(n=1_000_000, repeats=2)
    assert 0 < triad < 10_000 and 0 < read < 10_000


def test_table_lines():
    assert bench.line(ROWS[0]) == "plain          20.00 s/epoch  setup    0.0 s  peak     2048 MB"
    assert bench.line(ROWS[2]).endswith("MB  (from 20 batches)")
    assert bench.line(ROWS[0] | {"device_peak_mb": None}) == bench.line(ROWS[0])  # a CPU run: no device peak
    assert bench.line(ROWS[2] | {"device_peak_mb": 8200.4}) == (
        "full           50.00 s/epoch  setup    0.0 s  peak     2048 MB  device peak     8200 MB  (from 20 batches)")
    fast = bench.line(ROWS[1], ROWS, triad_gbs=2.0)
    assert " 10.0x plain" in fast and "  0.5 GB/s =  26% of triad" in fast and "cache   1000 MB, own peak   1010 MB" in fast


def test_report_schema():
    rep = bench.report([dict(r) for r in ROWS], n=512, hidden=64, load=1.5, triad_gbs=2.0)
    assert rep["shape"] == {"n": 512, "d": 784, "hidden": 64, "classes": 10, "batch": 256}
    assert rep["speedup_fast_vs_plain"] == 10.0 and rep["triad_gbs"] == 2.0
    fast = rep["variants"][1]
    assert fast["speedup_vs_plain"] == 10.0 and fast["fraction_of_triad"] == pytest.approx(bench.bandwidth(fast) / 2)
    assert rep["variants"][2]["effective_gbs"] is None and rep["variants"][2]["speedup_vs_plain"] == 0.4
    assert rep["load_average_at_start"] == 1.5
    assert set(rep["machine"]) == {"cpu", "cores", "threads", "device", "gpu", "torch", "kernel_vectors"}
    assert rep["machine"]["kernel_vectors"] is None  # no compiled-step variant among ROWS
    assert bench.report([], device="cpu")["machine"]["gpu"] is None
    assert "speedup_fast_vs_plain" not in bench.report([dict(r) for r in ROWS[2:]], load=0.0)
    assert bench.report([])["shape"]["hidden"] == 32_000  # the paper's shape by default


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo") or "NUMBA_CPU_FEATURES" in os.environ,
                    reason="reads the CPU's flags from Linux's /proc/cpuinfo; NUMBA_CPU_FEATURES set by hand wins")
def test_report_names_the_compiled_steps_vector_width():
    pytest.importorskip("numba", reason="the compiled step needs numba (requirements.txt)")
    vectors = bench.report([_row("kernel", 1.0, cache_mb=1000.0)])["machine"]["kernel_vectors"]
    assert vectors == ("512-bit" if " avx512f" in open("/proc/cpuinfo").read() else "the CPU's default")


def test_summary_names_the_fastest_path_its_speedup_and_bandwidth_share():
    rows = [dict(r) for r in ROWS] + [_row("kernel", 1.0, cache_mb=1000.0)]
    s = bench.summary(bench.report(rows, triad_gbs=2.0))
    assert s.startswith("fastest bias-only path: bias-only, cache + compiled step, 1.00 s/epoch, 20.0x the plain")
    assert s.endswith("1.0 GB/s, 52% of the triad's 2.0 GB/s")
    assert bench.summary(bench.report(rows, triad_gbs=2.0, read_gbs=4.0)).endswith("(26% of a read-only sum's 4.0 GB/s)")
    assert bench.summary(bench.report([dict(ROWS[0])])) == "no fast path timed"


def test_the_probe_shows_how_much_the_machines_speed_moved():
    assert bench.probe(repeats=1) > 0
    rows = [dict(r) for r in ROWS]
    assert bench.probe_range(bench.report(rows)) is None and "probe" not in bench.summary(bench.report(rows))
    rows[0]["probe_ms"], rows[1]["probe_ms"] = [30.0, 45.0], [20.0, 22.0]
    rep = bench.report(rows, triad_gbs=2.0)
    assert bench.probe_range(rep) == (20.0, 45.0)
    assert bench.summary(rep).endswith("took 20-45 ms: at those moments the machine's speed varied by 2.25x")
    assert bench.line(rows[0]).endswith("probe 30/45 ms")
    assert list(bench.table(rep)["probe, first / last (ms)"]) == ["30 / 45", "20 / 22", ""]


PAIRED_REPORT = {"variants": ["kernel", "kernel_bf16"], "plain_batches": 8, "fast_batches": 80,
          "cache_mb": {"kernel": 1000.0, "kernel_bf16": 500.0},
          "rounds": [{"plain_s": 30.0, "fast_s": {"kernel": 1.0, "kernel_bf16": 0.5}, "triad_gbs": 2.0, "read_gbs": 3.0},
                     {"plain_s": 20.0, "fast_s": {"kernel": 2.0, "kernel_bf16": 2.0}, "triad_gbs": 1.0,
                      "read_gbs": 3.0}]}


def test_paired_stats_are_per_round_ratios_and_shares_of_that_rounds_triad():
    st = bench.paired_stats(PAIRED_REPORT)
    gb = 1000 * 2**20 / 1e9  # the float32 cache's bytes, read once per epoch
    assert list(st) == ["kernel", "kernel_bf16"]
    f32, bf16 = st["kernel"], st["kernel_bf16"]
    assert f32["ratio"] == [30.0, 10.0] and f32["fraction_of_triad"] == pytest.approx([gb / 1.0 / 2.0, gb / 2.0 / 1.0])
    assert f32["ratio_quartiles"] == {"median": 20.0, "q1": 15.0, "q3": 25.0}
    assert f32["rounds_meeting_goal"] == 1  # 30x at 52%; 10x misses the goal of 20x
    assert bf16["ratio"] == [60.0, 10.0] and bf16["fraction_of_triad"] == pytest.approx([gb / 2.0, gb / 4.0])
    assert bf16["rounds_meeting_goal"] == 1  # 60x at 52% (half the bytes in half the time); 10x at 13%: no
    s = bench.summary(bench.report([dict(r) for r in ROWS], triad_gbs=2.0, paired_rounds=PAIRED_REPORT))
    assert ("in 2 alternating rounds in one process (8 batches of the plain network, 80 of each step, a triad each), "
            "the compiled step (float32 cache) ran "
            "20.0x the plain network (median; quartiles 15.0-25.0) at 52% of the round's triad (52%-52%), 1 of 2 "
            "rounds meeting the goal of >= 20x and >= 30%; the compiled step (bfloat16 cache) ran 35.0x the plain "
            "network (median; quartiles 22.5-47.5) at 39% of the round's triad (33%-46%), 1 of 2 rounds meeting the "
            "goal") in s


def test_paired_alternates_the_order_of_its_rounds(monkeypatch):
    calls = []
    monkeypatch.setattr(bench, "triad", lambda **kw: calls.append("triad") or (2.0, 3.0))
    monkeypatch.setattr(bench, "_epoch_plain", lambda *a: calls.append("plain"))
    real, projected = bench._cached_batches, []
    real_project = bench._project
    monkeypatch.setattr(bench, "_project", lambda name, *a: projected.append(name) or real_project(name, *a))
    monkeypatch.setattr(bench, "_cached_batches", lambda name, *a: calls.append(name) or real(name, *a))
    p = bench.paired(["fast", "kernel"], rounds=3, plain_batches=1, fast_batches=2, n=512, hidden=64, device="cpu",
                     triad_n=1000, progress=False)
    assert calls == ["plain", "fast", "kernel"] + ["plain", "fast", "kernel", "triad", "triad", "kernel", "fast", "plain",
                                                   "plain", "fast", "kernel", "triad"]
    assert p["cache_mb"] == {"fast": 512 * 64 * 4 / 2**20, "kernel": 512 * 64 * 4 / 2**20} and len(p["rounds"]) == 3
    assert projected == ["fast"]  # one float32 cache, read by both steps
    assert all(set(r) == {"plain_s", "fast_s", "triad_gbs", "read_gbs"} and set(r["fast_s"]) == {"fast", "kernel"}
               and min(r["fast_s"].values()) > 0 for r in p["rounds"])


def test_paired_on_a_tiny_shape_times_both_and_the_bandwidth():
    p = bench.paired(["fast_bf16"], rounds=2, plain_batches=1, fast_batches=1, n=512, hidden=64, device="cpu",
                     triad_n=100_000, progress=False)
    assert p["variants"] == ["fast_bf16"] and p["cache_mb"] == {"fast_bf16": 512 * 64 * 2 / 2**20}
    assert p["cache_device"] == {"fast_bf16": "cpu"}
    assert all(r[k] > 0 for r in p["rounds"] for k in ("plain_s", "triad_gbs", "read_gbs"))
    assert all(r["fast_s"]["fast_bf16"] > 0 for r in p["rounds"])
    with pytest.raises(ValueError, match=r"unknown variant 'full': use one of \('fast', "):  # not a fast path
        bench.paired(["fast", "full"], rounds=1)
    with pytest.raises(ValueError, match="paired needs at least one fast variant"):
        bench.paired([], rounds=1)
    with pytest.raises(ValueError, match="variant 'kernel' is the CPU kernel: run it with --device cpu"):
        bench.paired(["kernel"], rounds=1, device="cuda")  # refused before any work, with or without a GPU here


def test_provenance_names_the_run_its_commit_and_machine():
    rep = bench.report([dict(r) for r in ROWS], device="cpu")
    assert rep["code"] == results.code_version()  # the commit of the code that ran, and whether src/ had changes
    line = bench.provenance(rep | {"code": {"git_commit": "0123456789abcdef", "git_dirty": True}})
    assert line.startswith(f"From make bench (book/bench.json), finished at {rep['when']}; code at commit 0123456 with "
                           "uncommitted changes to src/; ")
    assert f"{rep['machine']['cpu']} CPU, {rep['machine']['threads']} threads, cpu, torch " in line
    assert "code at commit not recorded; " in bench.provenance({k: v for k, v in rep.items() if k != "code"})


def test_default_output_is_in_the_book_not_among_the_runs():
    assert bench.OUT == REPO / "book" / "bench.json"
    assert (REPO / "book" / "bench.json").exists()  # the committed benchmark the reproducing page quotes


@pytest.mark.parametrize("name", bench.VARIANTS)
def test_variant_row_on_a_tiny_shape(name):
    row = bench.variant(name, full_batches=1, n=512, hidden=64, device="cpu")
    assert set(row) == {"variant", "seconds_per_epoch", "setup_seconds", "peak_mb", "device_peak_mb",
                        "extrapolated_from_batches", "cache_mb", "own_mb", "probe_ms"}
    assert len(row["probe_ms"]) == 2 and all(0 < t < 60_000 for t in row["probe_ms"])  # first and last, in ms
    assert row["variant"] == name and row["device_peak_mb"] is None  # the device's peak: CUDA only
    assert row["extrapolated_from_batches"] == (1 if name.startswith("full") else None)
    cached = name in bench.CACHED                        # only the fast paths have a cache to compute
    assert (row["setup_seconds"] > 0) == cached and (row["cache_mb"] is not None) == cached
    if cached:
        assert row["cache_mb"] == 512 * 64 * (2 if name.endswith("bf16") else 4) / 2**20
        assert row["own_mb"] is not None and row["peak_mb"] > row["own_mb"]  # Linux: measured from /proc


def test_unknown_variant():
    with pytest.raises(ValueError, match="unknown variant 'fastest'"):
        bench.variant("fastest", 1, n=512, hidden=64)


def test_written_json_is_what_the_reproducing_chapter_reads(tmp_path, monkeypatch, capsys):
    """main() (each variant in-process here) writes a file that the chapter's table is built from."""
    fake = {"plain": _row("plain", 20.0), "fast": _row("fast", 2.0, setup=22.4, cache_mb=1000.0)}
    monkeypatch.setattr(bench, "run_variant", lambda v, full_batches, n, hidden, device: fake[v])
    monkeypatch.setattr(bench, "triad", lambda device: (2.0, 3.0))
    asked = []
    monkeypatch.setattr(bench, "paired", lambda names, rounds, **kw: asked.append((names, rounds, kw)) or PAIRED_REPORT)
    out = tmp_path / "bench.json"
    bench.main(["--variants", "plain", "fast", "--n", "512", "--hidden", "64", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "fastest bias-only path: bias-only, cache + PyTorch step, 2.00 s/epoch, 10.0x the plain" in printed
    assert "triad" in printed and f"written {out}" in printed and "in 2 alternating rounds" in printed
    assert asked == [(["fast"], bench.PAIRED_ROUNDS, {"n": 512, "hidden": 64, "device": "auto"})]  # no kernel timed
    rep = json.loads(out.read_text())
    assert rep["shape"]["hidden"] == 64 and rep["triad_gbs"] == 2.0 and rep["read_gbs"] == 3.0
    assert rep["paired"] == PAIRED_REPORT
    bench.main(["--variants", "fast", "--n", "512", "--hidden", "64", "--out", str(out)])
    bench.main(["--variants", "plain", "fast", "--paired-rounds", "0", "--n", "512", "--hidden", "64",
                "--out", str(out)])
    assert len(asked) == 1 and json.loads(out.read_text())["paired"] is None  # no plain network, or 0 rounds: none
    fake |= {"kernel": _row("kernel", 1.0, cache_mb=1000.0), "kernel_bf16": _row("kernel_bf16", 0.8, cache_mb=500.0)}
    for variants, asks in ((["kernel", "kernel_bf16"], ["kernel", "kernel_bf16"]), (["kernel_bf16"], ["kernel_bf16"])):
        bench.main(["--variants", "plain", "fast", *variants, "--n", "512", "--hidden", "64", "--out", str(out),
                    "--device", "cpu"])
        assert asked[-1][0] == asks  # the compiled steps where they were timed, not the PyTorch ones
    t = bench.table(rep)
    assert list(t["way of training"]) == [bench.WHAT["plain"], bench.WHAT["fast"]]
    assert t.loc[1, "× plain"] == "10.0" and t.loc[1, "of the triad"] == "26%" and t.loc[0, "GB/s read"] == ""

    nb = json.loads((REPO / "book" / "reproducing.ipynb").read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert any("bench.table(" in c and "bench.json" in c for c in cells)  # the chapter shows this table


def test_timings_wait_for_the_device(monkeypatch):
    """Every clock read of a variant goes through runtime.clock (which synchronises CUDA first), on the
    variant's device; the peak device memory is counted afresh for each variant."""
    calls = []
    monkeypatch.setattr(bench.runtime, "sync", lambda dev: calls.append(("sync", str(dev))))
    monkeypatch.setattr(bench.runtime, "reset_peak", lambda dev: calls.append(("reset", str(dev))))
    bench.variant("fast", full_batches=1, n=512, hidden=64, device="cpu")
    probe = [("sync", "cpu")] * 2 * bench.PROBE_REPEATS  # the probe, first and last: each repeat's start, end
    # setup: start, end; each epoch: start, end
    assert calls == probe + [("reset", "cpu")] + [("sync", "cpu")] * (2 + 2 * bench.FAST_EPOCHS) + probe


def test_run_variant_passes_the_device_to_its_process(monkeypatch):
    seen = {}

    class Done:
        stdout = json.dumps(_row("fast", 1.0)) + "\n"
    monkeypatch.setattr(bench.subprocess, "run", lambda cmd, **kw: seen.setdefault("cmd", cmd) and Done)
    assert bench.run_variant("fast", 3, n=512, hidden=64, device="cuda:1")["variant"] == "fast"
    cmd = seen["cmd"]
    assert cmd[cmd.index("--device") + 1] == "cuda:1" and cmd[cmd.index("--variant") + 1] == "fast"
