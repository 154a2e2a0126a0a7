"""Speed of one training epoch at the paper's shape (60,000 x 784 -> 32,000 -> 10, batch 256),
on synthetic data, for each way of training:

    plain      bias-only, the plain autograd network with frozen weights (the reference)
    fast       bias-only, cached projection + fused step (train.project + train.bias_step),
               median of FAST_EPOCHS epochs; the projection is reported as setup time
    full       fully trained, fp32 autograd                   (timed on `--full-batches` batches)
    full_bf16  fully trained, bf16 autocast                    (the same; CPU bf16 is often slower)

Each variant runs in its own process so that its peak resident memory is its own.
``python -m biaslearn.bench`` prints a table and writes results/bench/bench.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from . import nets, results, train

N, D, H, K, BATCH = 60_000, 784, 32_000, 10, 256
FAST_EPOCHS = 3  # the fast path is timed over this many epochs (median); the plain one over one


def _epoch_plain(model, x, y, opt, batches=None):
    perm = torch.randperm(len(x))
    steps = range(0, len(x), BATCH)
    for i in list(steps)[:batches]:
        r = perm[i:i + BATCH]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[r]), y[r]).backward()
        opt.step()


def variant(name: str, full_batches: int, n: int = N) -> dict:
    dev = nets.device()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, D, generator=g).to(dev), torch.randint(0, K, (n,), generator=g).to(dev)
    mode = "full" if name.startswith("full") else "bias"
    model = nets.RandomMLP(D, H, K, mode).to(dev)
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
    elif name == "full_bf16":
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            _epoch_plain(model, x, y, opt, full_batches)
        epoch = time.perf_counter() - t0
    else:
        raise ValueError(f"unknown variant {name!r}")
    if name.startswith("full"):  # timed on a few batches: scale to a whole epoch
        epoch *= -(-n // BATCH) / full_batches
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": name, "seconds_per_epoch": epoch, "setup_seconds": setup, "peak_mb": peak_mb,
            "extrapolated_from_batches": full_batches if name.startswith("full") else None}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--variants", nargs="*", default=["plain", "fast", "full", "full_bf16"])
    ap.add_argument("--full-batches", type=int, default=20)
    ap.add_argument("--n", type=int, default=N, help="training examples (the paper: 60,000)")
    ap.add_argument("--out", default=str(results.results_dir() / "bench" / "bench.json"))
    a = ap.parse_args(argv)
    if a.variant:  # child process: one variant, one JSON line
        print(json.dumps(variant(a.variant, a.full_batches, a.n)))
        return
    load = os.getloadavg()[0]
    rows = []
    for v in a.variants:
        out = subprocess.run([sys.executable, "-m", "biaslearn.bench", "--variant", v,
                              "--full-batches", str(a.full_batches), "--n", str(a.n)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{v:10s} {r['seconds_per_epoch']:8.2f} s/epoch  setup {r['setup_seconds']:6.1f} s  "
              f"peak {r['peak_mb']:8.0f} MB" + (f"  (from {a.full_batches} batches)" if r["extrapolated_from_batches"] else ""),
              flush=True)
    by = {r["variant"]: r for r in rows}
    report = {"shape": {"n": a.n, "d": D, "hidden": H, "classes": K, "batch": BATCH}, "variants": rows,
              "load_average_at_start": load,
              "machine": {"cpu": results.cpu_name(), "cores": os.cpu_count(),
                          "threads": torch.get_num_threads(), "device": str(nets.device()),
                          "torch": torch.__version__},
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if "plain" in by and "fast" in by:
        report["speedup_fast_vs_plain"] = by["plain"]["seconds_per_epoch"] / by["fast"]["seconds_per_epoch"]
        print(f"fast path is {report['speedup_fast_vs_plain']:.1f}x faster per epoch than the plain "
              f"frozen-weight network (load average at start {load:.1f})")
    if a.out:
        results._atomic_write(__import__("pathlib").Path(a.out), (json.dumps(report, indent=1) + "\n").encode())
        print("written", a.out)


if __name__ == "__main__":
    main()
