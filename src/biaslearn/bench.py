"""Speed of one training epoch at the paper's shape (60,000 x 784 -> 32,000 -> 10, batch 256),
on synthetic data, for each way of training:

    plain      bias-only, the plain autograd network with frozen weights (the reference)
    fast       bias-only, cached projection + fused step (train.project + train.bias_step),
               median of FAST_EPOCHS epochs; the projection is reported as setup time
    full       fully trained, fp32 autograd                   (timed on `--full-batches` batches)
    full_bf16  fully trained, bf16 autocast                    (the same; CPU bf16 is often slower)

Each variant runs in its own process so that its peak resident memory (host RSS, ``peak_mb``) is its
own; on a GPU each row also holds the peak memory allocated on the device (``device_peak_mb``, counted
afresh for each variant; None on a CPU). Clocks are read once the device's queued work is done
(runtime.clock). On a GPU too small for the cache the fast path keeps it in host memory, as
train.train does.
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

from . import nets, results, runtime, train

N, D, H, K, BATCH = 60_000, 784, 32_000, 10, 256
FAST_EPOCHS = 3  # the fast path is timed over this many epochs (median); the plain one over one
VARIANTS = ("plain", "fast", "full", "full_bf16")
OUT = Path(__file__).resolve().parents[2] / "book" / "bench.json"  # <repository>/book/bench.json


def _epoch_plain(model, x, y, opt, batches=None):
    perm = torch.randperm(len(x)).to(x.device)
    steps = range(0, len(x), BATCH)
    for i in list(steps)[:batches]:
        r = perm[i:i + BATCH]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[r]), y[r]).backward()
        opt.step()


def per_epoch(seconds: float, batches: int, n: int = N) -> float:
    """Seconds per epoch of ``n`` examples, from ``seconds`` spent on ``batches`` batches."""
    return seconds * -(-n // BATCH) / batches


def variant(name: str, full_batches: int, n: int = N, hidden: int = H, device: str = "auto") -> dict:
    """Time one epoch of variant ``name`` on ``n`` synthetic examples and ``hidden`` units, on ``device``."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}: use one of {VARIANTS}")
    dev = nets.device(device)
    runtime.reset_peak(dev)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, D, generator=g).to(dev), torch.randint(0, K, (n,), generator=g).to(dev)
    mode = "full" if name.startswith("full") else "bias"
    model = nets.RandomMLP(D, hidden, K, mode).to(dev)
    opt = train.optimizer(model.parameters(), "adam", 1e-3, dev)
    t0 = runtime.clock(dev)
    setup = 0.0
    if name == "fast":  # as train.train does it
        P = train.project(x, model.W_in, device=train.cache_devices(n, 0, hidden, torch.float32, dev)[0])
        setup = runtime.clock(dev) - t0
        times, work, slice_rows = [], {}, runtime.slice_rows(dev, BATCH)
        for _ in range(FAST_EPOCHS):  # cheap: time several epochs and keep the median
            t0, perm = runtime.clock(dev), torch.randperm(n)
            perm, perm_P = perm.to(dev), perm.to(P.device)  # indices of the labels, of the cache
            for i in range(0, n, BATCH):
                Pb, r = train.batch_rows(P, perm_P[i:i + BATCH], dev, work)
                opt.zero_grad(set_to_none=True)
                _, model.b.grad = train.bias_step(Pb, r, y[perm[i:i + BATCH]], model.b, model.W_out,
                                                  slice_rows=slice_rows, work=work)
                opt.step()
            times.append(runtime.clock(dev) - t0)
        epoch = sorted(times)[len(times) // 2]
    elif name in ("plain", "full"):
        _epoch_plain(model, x, y, opt, None if name == "plain" else full_batches)
        epoch = runtime.clock(dev) - t0
    else:  # full_bf16
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            _epoch_plain(model, x, y, opt, full_batches)
        epoch = runtime.clock(dev) - t0
    if name.startswith("full"):  # timed on a few batches: scale to a whole epoch
        epoch = per_epoch(epoch, full_batches, n)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    device_peak = runtime.peak_bytes(dev)
    return {"variant": name, "seconds_per_epoch": epoch, "setup_seconds": setup, "peak_mb": peak_mb,
            "device_peak_mb": None if device_peak is None else device_peak / 2**20,
            "extrapolated_from_batches": full_batches if name.startswith("full") else None}


def run_variant(name: str, full_batches: int, n: int = N, hidden: int = H, device: str = "auto") -> dict:
    """``variant`` in a process of its own (so its peak memory is its own); its row."""
    out = subprocess.run([sys.executable, "-m", "biaslearn.bench", "--variant", name, "--device", device,
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
    on_device = f"  device peak {r['device_peak_mb']:8.0f} MB" if r.get("device_peak_mb") is not None else ""
    return (f"{r['variant']:10s} {r['seconds_per_epoch']:8.2f} s/epoch  setup {r['setup_seconds']:6.1f} s  "
            f"peak {r['peak_mb']:8.0f} MB" + on_device + note)


def report(rows: list[dict], n: int = N, hidden: int = H, load: float | None = None,
           device: str = "auto") -> dict:
    """What book/bench.json holds: the shape, one row per variant, the machine, the speed-up."""
    dev = nets.device(device)
    rep = {"shape": {"n": n, "d": D, "hidden": hidden, "classes": K, "batch": BATCH}, "variants": rows,
           "load_average_at_start": os.getloadavg()[0] if load is None else load,
           "machine": {"cpu": results.cpu_name(), "cores": os.cpu_count(),
                       "threads": torch.get_num_threads(), "device": str(dev),
                       "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
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
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 (default: cuda when present, else cpu)")
    ap.add_argument("--out", default=str(OUT), help="where to write the report (default: book/bench.json)")
    a = ap.parse_args(argv)
    if a.variant:  # child process: one variant, one JSON line
        print(json.dumps(variant(a.variant, a.full_batches, a.n, a.hidden, a.device)))
        return
    load = os.getloadavg()[0]
    rows = []
    for v in a.variants:
        rows.append(run_variant(v, a.full_batches, a.n, a.hidden, a.device))
        print(line(rows[-1]), flush=True)
    rep = report(rows, a.n, a.hidden, load, a.device)
    if "speedup_fast_vs_plain" in rep:
        print(f"fast path is {rep['speedup_fast_vs_plain']:.1f}x faster per epoch than the plain "
              f"frozen-weight network (load average at start {load:.1f})")
    if a.out:
        results._atomic_write(Path(a.out), (json.dumps(rep, indent=1) + "\n").encode())
        print("written", a.out)


if __name__ == "__main__":
    main()
