"""`make bench` runs end to end (on a small n; no speed is asserted here: speed is reported)."""
import json

from biaslearn import bench


def test_bench_reports_every_variant(tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench.main(["--variants", "plain", "fast", "--n", "512", "--full-batches", "1", "--out", str(out)])
    report = json.loads(out.read_text())
    assert [v["variant"] for v in report["variants"]] == ["plain", "fast"]
    assert all(v["seconds_per_epoch"] > 0 and v["peak_mb"] > 0 for v in report["variants"])
    assert report["speedup_fast_vs_plain"] > 0 and report["shape"]["hidden"] == 32_000
    assert "faster per epoch" in capsys.readouterr().out
