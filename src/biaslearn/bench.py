"""Speed of one training epoch at the paper's shape (60,000 x 784 -> 32,000 -> 10, batch 256),
on synthetic data, for each way of training:

    plain      bias-only, the plain autograd network with frozen weights (the reference)
    fast       bias-only, cached projection + fused step (train.project + train.bias_step),
               median of FAST_EPOCHS epochs; the projection is reported as setup time
    full       fully trained, fp32 autograd                   (timed on `--full-batches` batches)
    full_bf16  fully trained, bf16 autocast                    (the same; CPU bf16 is often slower)

Each variant runs in its own process so that its peak resident memory is its own.
``python -m biaslearn.bench`` prints a table and writes book/bench.json (read by the
reproducing chapter; it is not a run, so it is kept out of results/).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import nets, results, train

N, D, H, K, BATCH = 60_000, 784, 32_000, 10, 256
FAST_EPOCHS = 3  # the fast path is timed over this many epochs (median); the plain one over one
VARIANTS = ("plain", "fast", "full", "full_bf16")
OUT = Path(__file__).resolve().parents[2] / "book" / "bench.json"  # <repository>/book/bench.json


def _epoch_plain(model, x, y, opt, batches=None):
    perm = torch.randperm(len(x))
    steps = range(0, len(x), BATCH)
    for i in list(steps)[:batches]:
        r = perm[i:i + BATCH]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[r]), y[r]).backward()
        opt.step()


def per_epoch(seconds: float, batches: int, n: int = N) -> float:
    """Seconds per epoch of ``n`` examples, from ``seconds`` spent on ``batches`` batches."""
    return seconds * -(-n // BATCH) / batches


def variant(name: str, full_batches: int, n: int = N, hidden: int = H) -> dict:
    """Time one epoch of variant ``name`` on ``n`` synthetic examples and ``hidden`` units."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}: use one of {VARIANTS}")
    dev = nets.device()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, D, generator=g).to(dev), torch.randint(0, K, (n,), generator=g).to(dev)
    mode = "full" if name.startswith("full") else "bias"
    model = nets.RandomMLP(D, hidden, K, mode).to(dev)
    opt = train.optimizer(model.parameters(), "adam", 1e-3, dev)
    t0 = time.perf_counter()
    setup = 0.0
    if name == "fast":
        P = train.project(x, model.W_in)
        setup = time.perf_counter() - t0
        times, work = [], {}
        for _ in range(FAST_EPOCHS):  # cheap: time several epochs and keep the median
            t0, perm = time.perf_counter(), torch.randperm(n)
            for i in range(0, n, BATCH):
                r = perm[i:i + BATCH]
                opt.zero_grad(set_to_none=True)
                _, model.b.grad = train.bias_step(P, r, y[r], model.b, model.W_out, work=work)
                opt.step()
            times.append(time.perf_counter() - t0)
        epoch = sorted(times)[len(times) // 2]
    elif name in ("plain", "full"):
        _epoch_plain(model, x, y, opt, None if name == "plain" else full_batches)
        epoch = time.perf_counter() - t0
    else:  # full_bf16
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            _epoch_plain(model, x, y, opt, full_batches)
        epoch = time.perf_counter() - t0
    if name.startswith("full"):  # timed on a few batches: scale to a whole epoch
        epoch = per_epoch(epoch, full_batches, n)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": name, "seconds_per_epoch": epoch, "setup_seconds": setup, "peak_mb": peak_mb,
            "extrapolated_from_batches": full_batches if name.startswith("full") else None}


def run_variant(name: str, full_batches: int, n: int = N, hidden: int = H) -> dict:
    """``variant`` in a process of its own (so its peak memory is its own); its row."""
    out = subprocess.run([sys.executable, "-m", "biaslearn.bench", "--variant", name,
                          "--full-batches", str(full_batches), "--n", str(n), "--hidden", str(hidden)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def speedup(rows: list[dict]) -> float | None:
    """Seconds per epoch of the plain network over those of the fast path (None without both)."""
    by = {r["variant"]: r for r in rows}
    if "plain" in by and "fast" in by:
        return by["plain"]["seconds_per_epoch"] / by["fast"]["seconds_per_epoch"]
    return None


def line(r: dict) -> str:
    """One row of the printed table."""
    note = f"  (from {r['extrapolated_from_batches']} batches)" if r["extrapolated_from_batches"] else ""
    return (f"{r['variant']:10s} {r['seconds_per_epoch']:8.2f} s/epoch  setup {r['setup_seconds']:6.1f} s  "
            f"peak {r['peak_mb']:8.0f} MB" + note)


def report(rows: list[dict], n: int = N, hidden: int = H, load: float | None = None) -> dict:
    """What book/bench.json holds: the shape, one row per variant, the machine, the speed-up."""
    rep = {"shape": {"n": n, "d": D, "hidden": hidden, "classes": K, "batch": BATCH}, "variants": rows,
           "load_average_at_start": os.getloadavg()[0] if load is None else load,
           "machine": {"cpu": results.cpu_name(), "cores": os.cpu_count(),
                       "threads": torch.get_num_threads(), "device": str(nets.device()),
                       "torch": torch.__version__},
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if speedup(rows) is not None:
        rep["speedup_fast_vs_plain"] = speedup(rows)
    return rep


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--full-batches", type=int, default=20)
    ap.add_argument("--n", type=int, default=N, help="training examples (the paper: 60,000)")
    ap.add_argument("--hidden", type=int, default=H, help="hidden units (the paper: 32,000)")
    ap.add_argument("--out", default=str(OUT), help="where to write the report (default: book/bench.json)")
    a = ap.parse_args(argv)
    if a.variant:  # child process: one variant, one JSON line
        print(json.dumps(variant(a.variant, a.full_batches, a.n, a.hidden)))
        return
    load = os.getloadavg()[0]
    rows = []
    for v in a.variants:
        rows.append(run_variant(v, a.full_batches, a.n, a.hidden))
        print(line(rows[-1]), flush=True)
    rep = report(rows, a.n, a.hidden, load)
    if "speedup_fast_vs_plain" in rep:
        print(f"fast path is {rep['speedup_fast_vs_plain']:.1f}x faster per epoch than the plain "
              f"frozen-weight network (load average at start {load:.1f})")
    if a.out:
        results._atomic_write(Path(a.out), (json.dumps(rep, indent=1) + "\n").encode())
        print("written", a.out)


if __name__ == "__main__":
    main()
