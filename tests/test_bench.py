"""`make bench`: what it computes and writes, on a tiny shape (no speed is asserted: speed is reported)."""
import json
from pathlib import Path

import pytest

from biaslearn import bench

REPO = Path(__file__).resolve().parents[1]


def _row(variant, seconds, setup=0.0, batches=None):
    return {"variant": variant, "seconds_per_epoch": seconds, "setup_seconds": setup, "peak_mb": 2048.0,
            "extrapolated_from_batches": batches}


ROWS = [_row("plain", 20.0), _row("fast", 2.0, setup=22.4), _row("full", 50.0, batches=20)]


def test_speedup_is_plain_over_fast():
    assert bench.speedup(ROWS) == 10.0
    assert bench.speedup([_row("plain", 3.0), _row("fast", 4.0)]) == 0.75
    assert bench.speedup([_row("plain", 3.0), _row("full", 4.0)]) is None  # no fast path timed


def test_batches_scale_to_a_whole_epoch():
    # 60,000 examples in batches of 256: 235 batches (the last one short)
    assert bench.per_epoch(2.0, 20) == pytest.approx(2.0 * 235 / 20)
    assert bench.per_epoch(1.0, 1, n=512) == 2.0


def test_table_lines():
    assert bench.line(ROWS[0]) == "plain         20.00 s/epoch  setup    0.0 s  peak     2048 MB"
    assert bench.line(ROWS[2]).endswith("MB  (from 20 batches)")
    assert bench.line(ROWS[0] | {"device_peak_mb": None}) == bench.line(ROWS[0])  # a CPU run: no device peak
    assert bench.line(ROWS[2] | {"device_peak_mb": 8200.4}) == (
        "full          50.00 s/epoch  setup    0.0 s  peak     2048 MB  device peak     8200 MB  (from 20 batches)")


def test_report_schema():
    rep = bench.report(ROWS, n=512, hidden=64, load=1.5)
    assert rep["shape"] == {"n": 512, "d": 784, "hidden": 64, "classes": 10, "batch": 256}
    assert rep["variants"] == ROWS and rep["speedup_fast_vs_plain"] == 10.0
    assert rep["load_average_at_start"] == 1.5
    assert set(rep["machine"]) == {"cpu", "cores", "threads", "device", "gpu", "torch"}
    assert bench.report(ROWS, device="cpu")["machine"]["gpu"] is None
    assert "speedup_fast_vs_plain" not in bench.report(ROWS[2:], load=0.0)
    assert bench.report([])["shape"]["hidden"] == 32_000  # the paper's shape by default


def test_default_output_is_in_the_book_not_among_the_runs():
    assert bench.OUT == REPO / "book" / "bench.json"
    assert (REPO / "book" / "bench.json").exists()  # the committed benchmark the reproducing page quotes


@pytest.mark.parametrize("name", ["plain", "fast", "full", "full_bf16"])
def test_variant_row_on_a_tiny_shape(name):
    row = bench.variant(name, full_batches=1, n=512, hidden=64, device="cpu")
    assert set(row) == {"variant", "seconds_per_epoch", "setup_seconds", "peak_mb", "device_peak_mb",
                        "extrapolated_from_batches"}
    assert row["variant"] == name and row["device_peak_mb"] is None  # the device's peak: CUDA only
    assert row["extrapolated_from_batches"] == (1 if name.startswith("full") else None)
    assert (row["setup_seconds"] > 0) == (name == "fast")  # only the fast path has a cache to compute


def test_unknown_variant():
    with pytest.raises(ValueError, match="unknown variant 'fastest'"):
        bench.variant("fastest", 1, n=512, hidden=64)


def test_written_json_is_what_the_reproducing_chapter_reads(tmp_path, monkeypatch, capsys):
    """main() (each variant in-process here) writes a file that the chapter's cell prints from."""
    fake = {"plain": _row("plain", 20.0), "fast": _row("fast", 2.0, setup=22.4)}
    monkeypatch.setattr(bench, "run_variant", lambda v, full_batches, n, hidden, device: fake[v])
    out = tmp_path / "bench.json"
    bench.main(["--variants", "plain", "fast", "--n", "512", "--hidden", "64", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "fast path is 10.0x faster per epoch" in printed and f"written {out}" in printed
    assert json.loads(out.read_text())["shape"]["hidden"] == 64

    nb = json.loads((REPO / "book" / "reproducing.ipynb").read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    [cell] = [c for c in cells if "bench.json" in c and "bench_file" in c]
    monkeypatch.chdir(tmp_path)  # the chapter runs in book/ and reads bench.json there
    exec(cell, {"json": json, "Path": Path})
    printed = capsys.readouterr().out
    assert "No benchmark stored" not in printed
    lines = {ln.split("  ")[0]: ln for ln in printed.splitlines()}
    assert lines["bias-only, cached projection (fast path)"].endswith(
        " 2.0 s/epoch, peak   2.0 GB, plus 22 s once to compute the cache")
    assert " 20.0 s/epoch" in lines["bias-only, plain frozen-weight network"]
    assert "fast path vs plain network: 10.0x faster per epoch" in printed


def test_timings_wait_for_the_device(monkeypatch):
    """Every clock read of a variant goes through runtime.clock (which synchronises CUDA first), on the
    variant's device; the peak device memory is counted afresh for each variant."""
    calls = []
    monkeypatch.setattr(bench.runtime, "sync", lambda dev: calls.append(("sync", str(dev))))
    monkeypatch.setattr(bench.runtime, "reset_peak", lambda dev: calls.append(("reset", str(dev))))
    bench.variant("fast", full_batches=1, n=512, hidden=64, device="cpu")
    assert calls[0] == ("reset", "cpu")
    assert calls[1:] == [("sync", "cpu")] * (2 + 2 * bench.FAST_EPOCHS)  # setup: start, end; each epoch: start, end


def test_run_variant_passes_the_device_to_its_process(monkeypatch):
    seen = {}

    class Done:
        stdout = json.dumps(_row("fast", 1.0)) + "\n"
    monkeypatch.setattr(bench.subprocess, "run", lambda cmd, **kw: seen.setdefault("cmd", cmd) and Done)
    assert bench.run_variant("fast", 3, n=512, hidden=64, device="cuda:1")["variant"] == "fast"
    cmd = seen["cmd"]
    assert cmd[cmd.index("--device") + 1] == "cuda:1" and cmd[cmd.index("--variant") + 1] == "fast"
