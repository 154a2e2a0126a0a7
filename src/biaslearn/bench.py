"""Speed of one training epoch at the paper's shape (60,000 x 784 -> 32,000 -> 10, batch 256),
on synthetic data, for each way of training, beside the machine's own memory bandwidth:

    plain        bias-only, the plain autograd network with frozen weights (the reference)
    fast         bias-only, cached projection + PyTorch fused step (train.project + train.bias_step)
    fast_bf16    the same with a bfloat16 cache
    kernel       bias-only, cached projection + the compiled step (kernel.bias_step, numba; CPU only)
    kernel_bf16  the same with a bfloat16 cache
    full         fully trained, fp32 autograd                   (timed on `--full-batches` batches)
    full_bf16    fully trained, bf16 autocast                    (the same)

The fast variants are timed as the median of FAST_EPOCHS epochs (the projection is reported as setup
time). Each prints its effective bandwidth: the bytes an epoch must read (the cache, once: each row goes
forward and back while it is in the CPU cache) over the epoch's time, and its fraction of the bandwidth a
STREAM-like triad a = b + s c measures in the same run (``triad``: 2 reads + 1 write counted, all threads);
the summary also sets it beside a read-only sum, the like-for-like reference for a loop that only reads.
Each variant's process also times a fixed probe (``probe``) first and last: their spread over the run says how much
the machine's speed differed between those moments (not what it did in between).
Then ``paired`` runs the plain network and the compiled steps, over a float32 and a bfloat16 cache (the PyTorch steps
on a GPU), in one process, in short rounds of alternating order, each beside a triad: the median over rounds of each
step's ratio to the plain network, and of its share of its round's triad, are the comparison a shared machine's
changing speed disturbs least (``paired_stats``). That process holds both caches (1.5 times the float32 one).

Each variant runs in its own process so that its peak resident memory (host RSS, ``peak_mb``) is its
own; ``own_mb`` is the peak less the process's memory just before the cache was built (the fast path's
own memory, to set beside ``cache_mb``). On a GPU each row also holds the peak memory allocated on the
device (``device_peak_mb``; None on a CPU). Clocks are read once the device's queued work is done
(runtime.clock). On a GPU too small for the cache the fast path keeps it in host memory, as train.train
does; the kernel variants are skipped on a GPU.
``python -m biaslearn.bench`` prints a table and writes book/bench.json (read by the
reproducing chapter; it is not a run, so it is kept out of results/).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import kernel, nets, results, runtime, train
from .report import median_iqr  # (bench.report is this module's own)

N, D, H, K, BATCH = 60_000, 784, 32_000, 10, 256
FAST_EPOCHS = 3  # the fast path is timed over this many epochs (median); the plain one over one
VARIANTS = ("plain", "fast", "fast_bf16", "kernel", "kernel_bf16", "full", "full_bf16")
CACHED = ("fast", "fast_bf16", "kernel", "kernel_bf16")  # the bias-only fast paths, over a cached projection
TRIAD_N = 100_000_000      # float32 elements per triad array (400 MB each: far beyond any CPU cache)
PROBE_N, PROBE_REPEATS = 1024, 5  # the probe: a PROBE_N x PROBE_N float32 matrix product, median of 5
PAIRED_ROUNDS = 15          # paired: rounds of the plain network and the fast steps in one process, in alternating
PAIRED_BATCHES = (8, 80)    # order, of this many batches each (about 1.2 and 0.6-0.7 s at the paper's shape on 2 cores)
PAIRED = {"cpu": ("kernel", "kernel_bf16"), "gpu": ("fast", "fast_bf16")}  # what main pairs with the plain network
GOAL = (20.0, 0.30)         # the fast path's goal at the paper's shape: >= 20x the plain network, >= 30% of the triad
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


def rss_mb(peak: bool = False) -> float | None:
    """The process's resident memory now, or its peak since ``reset_peak_rss`` (``peak``), in MB: Linux's
    /proc (VmRSS, VmHWM); elsewhere the peak since the process started, and no current value (None)."""
    try:
        with open("/proc/self/status") as f:
            field = "VmHWM:" if peak else "VmRSS:"
            return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024
    except (OSError, ValueError, StopIteration):
        return results.peak_rss_mb() if peak else None


def reset_peak_rss() -> None:
    """Start the peak (VmHWM) afresh from the current resident memory (Linux; elsewhere nothing)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def triad(n: int = TRIAD_N, repeats: int = 5, device: str = "cpu", arrays=None) -> tuple[float, float]:
    """Memory bandwidth (GB/s) on ``device`` (torch's threads on a CPU), best of ``repeats``, over float32 arrays of n
    elements: a STREAM-like triad a = b + 3 c (3 x 4 n bytes counted, STREAM's convention: the read a write
    makes first is not), and a read-only sum of b (4 n bytes; the fast paths only read their cache). ``arrays``: the
    three arrays (a, b, c) of ``triad_arrays``, to measure again without making them afresh."""
    dev = nets.device(device)
    a, b, c = triad_arrays(n, device) if arrays is None else arrays
    n = a.numel()
    best = {"triad": float("inf"), "read": float("inf")}
    for _ in range(repeats):
        for what, op in (("triad", lambda: torch.add(b, c, alpha=3.0, out=a)), ("read", lambda: b.sum())):
            t0 = runtime.clock(dev)
            op()
            best[what] = min(best[what], runtime.clock(dev) - t0)
    return 3 * 4 * n / best["triad"] / 1e9, 4 * n / best["read"] / 1e9


def triad_arrays(n: int = TRIAD_N, device: str = "cpu"):
    """The triad's three float32 arrays of n elements on ``device``: a (to write), b and c (random)."""
    dev = nets.device(device)
    return torch.empty(n, device=dev), torch.rand(n, device=dev), torch.rand(n, device=dev)


def probe(repeats: int = PROBE_REPEATS, device: str = "cpu") -> float:
    """Milliseconds of one fixed piece of work on ``device`` (a PROBE_N x PROBE_N float32 matrix product, torch's
    threads), median of ``repeats``. Each variant's process runs it first and last: how far its times spread over a
    run says how much the machine's own speed differed between those moments (a shared virtual machine's moves with
    its neighbours' load), a hint of how far the rows' ratios can be trusted."""
    dev = nets.device(device)
    a = torch.rand(PROBE_N, PROBE_N, generator=torch.Generator().manual_seed(0)).to(dev)
    times = []
    for _ in range(repeats):
        t0 = runtime.clock(dev)
        a @ a
        times.append(runtime.clock(dev) - t0)
    return sorted(times)[len(times) // 2] * 1e3


def _cached_batches(name, P, y, model, opt, dev, n, batches=None, work=None):
    """Seconds of ``batches`` batches (all: an epoch) of fast variant ``name`` over the cache P, as train.train runs
    them, from a fresh shuffle."""
    work, slice_rows = {} if work is None else work, runtime.slice_rows(dev, BATCH)
    step = "numba" if name.startswith("kernel") else "torch"
    t0, perm = runtime.clock(dev), torch.randperm(n)
    perm, perm_P = perm.to(dev), perm.to(P.device)  # indices of the labels, of the cache
    for i in list(range(0, n, BATCH))[:batches]:
        opt.zero_grad(set_to_none=True)
        _, model.b.grad = train.fast_step(step, P, perm_P[i:i + BATCH], y[perm[i:i + BATCH]], model, dev, slice_rows,
                                          work)
        opt.step()
    return runtime.clock(dev) - t0


def _setup(name: str, n: int, hidden: int, dev: torch.device):
    """Synthetic data (x, y), the network variant ``name`` trains (bias-only or full) and its optimiser."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, D, generator=g).to(dev), torch.randint(0, K, (n,), generator=g).to(dev)
    model = nets.RandomMLP(D, hidden, K, "full" if name.startswith("full") else "bias").to(dev)
    return x, y, model, train.optimizer(model.parameters(), "adam", 1e-3, dev)


def _dtype(name: str) -> torch.dtype:
    """The cache's dtype of fast variant ``name``."""
    return torch.bfloat16 if name.endswith("_bf16") else torch.float32


def _compile(name: str, hidden: int, model) -> None:
    """A compiled-step variant compiles first (on 2 rows), so that compiling is neither timed nor counted as memory."""
    if name.startswith("kernel"):
        kernel.bias_step(torch.zeros(2, hidden, dtype=_dtype(name)), torch.arange(2), torch.zeros(2, dtype=torch.long),
                         model.b, model.W_out)


def _project(name: str, x, model, dev):
    """The cache of fast variant ``name`` (float32 or bfloat16), where train.train would keep it."""
    dtype = _dtype(name)
    return train.project(x, model.W_in, dtype, device=train.cache_devices(len(x), 0, model.b.shape[0], dtype, dev)[0])


def _mb(P: torch.Tensor) -> float:
    """The size of the cache P in MB (2**20 bytes)."""
    return P.numel() * P.element_size() / 2**20


def _check(name: str, allowed, device: str) -> torch.device:
    """The device for variant ``name``, after checking that it is one of ``allowed`` and can run there."""
    if name not in allowed:
        raise ValueError(f"unknown variant {name!r}: use one of {allowed}")
    dev = nets.device(device)
    if name.startswith("kernel") and dev.type != "cpu":
        raise ValueError(f"variant {name!r} is the CPU kernel: run it with --device cpu")
    return dev


def variant(name: str, full_batches: int, n: int = N, hidden: int = H, device: str = "auto") -> dict:
    """Time one epoch of variant ``name`` on ``n`` synthetic examples and ``hidden`` units, on ``device``."""
    dev = _check(name, VARIANTS, device)
    first = probe(device=device)
    runtime.reset_peak(dev)
    x, y, model, opt = _setup(name, n, hidden, dev)
    setup, cache_mb, own_mb = 0.0, None, None
    if name in CACHED:  # as train.train does it
        _compile(name, hidden, model)
        reset_peak_rss()
        before, t0 = rss_mb(), runtime.clock(dev)
        P = _project(name, x, model, dev)
        setup = runtime.clock(dev) - t0
        work = {}  # the compiled step's gradient rows, kept between batches as train.train keeps them
        epoch = sorted(_cached_batches(name, P, y, model, opt, dev, n, work=work)
                       for _ in range(FAST_EPOCHS))[FAST_EPOCHS // 2]  # the median epoch
        cache_mb = _mb(P)
        peak = rss_mb(peak=True)
        own_mb = None if before is None or peak is None else peak - before  # the cache, its projection, the epochs
    else:
        t0 = runtime.clock(dev)
        if name in ("plain", "full"):
            _epoch_plain(model, x, y, opt, None if name == "plain" else full_batches)
        else:  # full_bf16
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                _epoch_plain(model, x, y, opt, full_batches)
        epoch = runtime.clock(dev) - t0
    if name.startswith("full"):  # timed on a few batches: scale to a whole epoch
        epoch = per_epoch(epoch, full_batches, n)
    peak_mb = rss_mb(peak=True)
    device_peak = runtime.peak_bytes(dev)
    return {"variant": name, "seconds_per_epoch": epoch, "setup_seconds": setup, "peak_mb": peak_mb,
            "cache_mb": cache_mb, "own_mb": own_mb,
            "device_peak_mb": None if device_peak is None else device_peak / 2**20,
            "extrapolated_from_batches": full_batches if name.startswith("full") else None,
            "probe_ms": [first, probe(device=device)]}


def run_variant(name: str, full_batches: int, n: int = N, hidden: int = H, device: str = "auto") -> dict:
    """``variant`` in a process of its own (so its peak memory is its own); its row."""
    out = subprocess.run([sys.executable, "-m", "biaslearn.bench", "--variant", name, "--device", device,
                          "--full-batches", str(full_batches), "--n", str(n), "--hidden", str(hidden)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def paired(names=PAIRED["cpu"], rounds: int = PAIRED_ROUNDS, plain_batches: int = PAIRED_BATCHES[0],
           fast_batches: int = PAIRED_BATCHES[1], n: int = N, hidden: int = H, device: str = "auto",
           triad_n: int = TRIAD_N, progress: bool = True) -> dict:
    """The plain network and the fast variants ``names`` in one process, in ``rounds`` short rounds that alternate
    their order, each beside a triad: a slow spell of a shared machine then falls on every side of the rounds it lasts,
    not on one side of the comparison. Per round, seconds per epoch of each (from its ``plain_batches`` or
    ``fast_batches`` batches) and the triad's and read-only sum's bandwidth (GB/s); ``paired_stats`` gives the ratios."""
    names = list(names)
    if not names:
        raise ValueError(f"paired needs at least one fast variant: some of {CACHED}")
    for name in names:  # fast variants, against the plain network; each checked before any work
        dev = _check(name, CACHED, device)
    x, y, model, opt = _setup(names[0], n, hidden, dev)  # one bias-only network, trained by every step in turn
    for name in names:
        _compile(name, hidden, model)
    arrays = triad_arrays(triad_n, device)  # before the caches, so that where they go counts them (on a GPU)
    caches = {}  # one cache per dtype, shared by the variants that read it
    for name in names:
        if _dtype(name) not in caches:
            caches[_dtype(name)] = _project(name, x, model, dev)
    P = {name: caches[_dtype(name)] for name in names}
    work, out = {name: {} for name in names}, []
    _epoch_plain(model, x, y, opt, 1)  # a first batch of each, not kept (first touches, the allocator's first calls)
    for name in names:
        _cached_batches(name, P[name], y, model, opt, dev, n, 1, work[name])
    order = ["plain", *names, "triad"]
    for r in tqdm(range(rounds), desc=f"paired rounds, plain / {' / '.join(names)}", disable=not progress):
        row = {"fast_s": {}}
        for what in order if r % 2 == 0 else order[::-1]:
            if what == "triad":
                row["triad_gbs"], row["read_gbs"] = triad(repeats=2, device=device, arrays=arrays)
            elif what == "plain":
                t0 = runtime.clock(dev)
                _epoch_plain(model, x, y, opt, plain_batches)
                row["plain_s"] = per_epoch(runtime.clock(dev) - t0, plain_batches, n)
            else:
                row["fast_s"][what] = per_epoch(_cached_batches(what, P[what], y, model, opt, dev, n, fast_batches,
                                                                work[what]), fast_batches, n)
        out.append(row)
    return {"variants": names, "plain_batches": plain_batches, "fast_batches": fast_batches,
            "cache_mb": {name: _mb(P[name]) for name in names},
            "cache_device": {name: str(P[name].device) for name in names}, "rounds": out}


def paired_stats(p: dict) -> dict:
    """Per variant of ``paired`` and per round: its speed-up over the plain network and its share of that round's
    triad (its cache's bytes, read once, over its epoch); their medians and quartiles, and how many rounds meet GOAL."""
    quartiles = lambda v: dict(zip(("median", "q1", "q3"), median_iqr(v)))  # noqa: E731
    stats = {}
    for name in p["variants"]:
        ratio = [r["plain_s"] / r["fast_s"][name] for r in p["rounds"]]
        share = [gbs(p["cache_mb"][name], r["fast_s"][name]) / r["triad_gbs"] for r in p["rounds"]]
        stats[name] = {"ratio": ratio, "fraction_of_triad": share, "ratio_quartiles": quartiles(ratio),
                       "fraction_quartiles": quartiles(share),
                       "rounds_meeting_goal": sum(a >= GOAL[0] and f >= GOAL[1] for a, f in zip(ratio, share))}
    return stats


def speedup(rows: list[dict], name: str = "fast") -> float | None:
    """Seconds per epoch of the plain network over those of variant ``name`` (None without both)."""
    by = {r["variant"]: r for r in rows}
    if "plain" in by and name in by:
        return by["plain"]["seconds_per_epoch"] / by[name]["seconds_per_epoch"]
    return None


def gbs(cache_mb: float, seconds: float) -> float:
    """Effective bandwidth (GB/s) of an epoch of ``seconds`` over a cache of ``cache_mb`` MB, read once."""
    return cache_mb * 2**20 / seconds / 1e9


def bandwidth(r: dict) -> float | None:
    """A fast variant's effective bandwidth (GB/s): its cache's bytes (read once per epoch) over its epoch."""
    return None if r.get("cache_mb") is None else gbs(r["cache_mb"], r["seconds_per_epoch"])


def line(r: dict, rows: list[dict] = (), triad_gbs: float | None = None) -> str:
    """One row of the printed table (with ``rows`` and ``triad_gbs``: its speed-up and share of the bandwidth)."""
    note = f"  (from {r['extrapolated_from_batches']} batches)" if r["extrapolated_from_batches"] else ""
    on_device = f"  device peak {r['device_peak_mb']:8.0f} MB" if r.get("device_peak_mb") is not None else ""
    fast = speedup(list(rows), r["variant"])
    more = f"  {fast:5.1f}x plain" if fast is not None and r["variant"] != "plain" else ""
    if bandwidth(r) is not None:
        more += f"  {bandwidth(r):5.1f} GB/s" + (f" = {bandwidth(r) / triad_gbs:4.0%} of triad" if triad_gbs else "")
        more += f"  cache {r['cache_mb']:6.0f} MB, own peak {r['own_mb']:6.0f} MB"
    if r.get("probe_ms"):
        more += f"  probe {r['probe_ms'][0]:.0f}/{r['probe_ms'][-1]:.0f} ms"
    return (f"{r['variant']:11s} {r['seconds_per_epoch']:8.2f} s/epoch  setup {r['setup_seconds']:6.1f} s  "
            f"peak {r['peak_mb']:8.0f} MB" + on_device + more + note)


def report(rows: list[dict], n: int = N, hidden: int = H, load: float | None = None,
           device: str = "auto", triad_gbs: float | None = None, read_gbs: float | None = None,
           paired_rounds: dict | None = None) -> dict:
    """What book/bench.json holds: the shape, one row per variant (with its speed-up over the plain network
    and, for a fast variant, its effective bandwidth and its fraction of the triad's), ``paired``'s rounds, the
    machine."""
    dev = nets.device(device)
    for r in rows:
        r["speedup_vs_plain"] = speedup(rows, r["variant"])
        r["effective_gbs"] = bandwidth(r)
        r["fraction_of_triad"] = None if bandwidth(r) is None or not triad_gbs else bandwidth(r) / triad_gbs
    rep = {"shape": {"n": n, "d": D, "hidden": hidden, "classes": K, "batch": BATCH}, "variants": rows,
           "triad_gbs": triad_gbs, "read_gbs": read_gbs, "load_average_at_start": os.getloadavg()[0] if load is None else load,
           "machine": {"cpu": results.cpu_name(), "cores": os.cpu_count(),
                       "threads": torch.get_num_threads(), "device": str(dev),
                       "kernel_vectors": kernel.wide_vectors() if any(r["variant"].startswith("kernel") for r in rows)
                       else None,
                       "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
                       "torch": torch.__version__},
           "paired": paired_rounds, "code": results.code_version(),
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if speedup(rows) is not None:
        rep["speedup_fast_vs_plain"] = speedup(rows)
    return rep


WHAT = {"plain": "bias-only, plain frozen-weight network", "fast": "bias-only, cache + PyTorch step",
        "fast_bf16": "bias-only, bfloat16 cache + PyTorch step", "kernel": "bias-only, cache + compiled step",
        "kernel_bf16": "bias-only, bfloat16 cache + compiled step", "full": "fully trained, float32",
        "full_bf16": "fully trained, bfloat16 autocast"}

STEP = {"fast": "PyTorch step (float32 cache)", "fast_bf16": "PyTorch step (bfloat16 cache)",
        "kernel": "compiled step (float32 cache)", "kernel_bf16": "compiled step (bfloat16 cache)"}


def fastest(rep: dict) -> dict | None:
    """The fast variant with the shortest epoch in a report (None if none was timed)."""
    rows = [r for r in rep["variants"] if r["variant"] in CACHED]
    return min(rows, key=lambda r: r["seconds_per_epoch"]) if rows else None


def probe_range(rep: dict) -> tuple[float, float] | None:
    """The shortest and longest probe of a report's processes, in ms (None if none was recorded)."""
    times = [t for r in rep["variants"] for t in r.get("probe_ms") or ()]
    return (min(times), max(times)) if times else None


def summary(rep: dict) -> str:
    """One sentence: the fastest bias-only path against the plain network and the measured bandwidth, and how much
    the machine's speed moved during the run (the probe)."""
    r = fastest(rep)
    if r is None:
        return "no fast path timed"
    s = f"fastest bias-only path: {WHAT[r['variant']]}, {r['seconds_per_epoch']:.2f} s/epoch"
    if r.get("speedup_vs_plain"):
        s += f", {r['speedup_vs_plain']:.1f}x the plain network"
    if r.get("fraction_of_triad"):
        s += f"; {r['effective_gbs']:.1f} GB/s, {r['fraction_of_triad']:.0%} of the triad's {rep['triad_gbs']:.1f} GB/s"
        if rep.get("read_gbs"):
            s += f" ({r['effective_gbs'] / rep['read_gbs']:.0%} of a read-only sum's {rep['read_gbs']:.1f} GB/s)"
    if rep.get("paired"):
        p, n = rep["paired"], len(rep["paired"]["rounds"])
        s += (f"; in {n} alternating rounds in one process ({p['plain_batches']} batches of the plain network, "
              f"{p['fast_batches']} of each step, a triad each), ")
        each = []
        for v, st in paired_stats(p).items():
            a, f = st["ratio_quartiles"], st["fraction_quartiles"]
            each.append(f"the {STEP[v]} ran {a['median']:.1f}x the plain network (median; quartiles {a['q1']:.1f}-"
                        f"{a['q3']:.1f}) at {f['median']:.0%} of the round's triad ({f['q1']:.0%}-{f['q3']:.0%}), "
                        f"{st['rounds_meeting_goal']} of {n} rounds meeting the goal of >= {GOAL[0]:.0f}x and >= "
                        f"{GOAL[1]:.0%}")
        s += "; ".join(each)
    span = probe_range(rep)
    if span:
        lo, hi = span
        s += (f"; a fixed probe ({PROBE_N} x {PROBE_N} matrix product, run first and last in each row's process) took "
              f"{lo:.0f}-{hi:.0f} ms: at those moments the machine's speed varied by {hi / lo:.2f}x")
    return s


def provenance(rep: dict) -> str:
    """The caption line of a figure or table drawn from a report: which run of `make bench`, its code and machine."""
    code, m = rep.get("code") or {}, rep["machine"]
    commit = code["git_commit"][:7] if code.get("git_commit") else "not recorded"
    commit += " with uncommitted changes to src/" if code.get("git_dirty") else ""
    return (f"From make bench (book/bench.json), finished at {rep['when']}; code at commit {commit}; {m['cpu']} CPU, "
            f"{m['threads']} threads, {m['device']}, torch {m['torch']}.")


def table(rep: dict):
    """The report as a DataFrame, a row per variant (what the reproducing chapter shows)."""
    import pandas as pd

    def num(v, fmt):
        return "" if v is None else format(v, fmt)
    return pd.DataFrame([{
        "way of training": WHAT[r["variant"]], "s / epoch": num(r["seconds_per_epoch"], ".2f"),
        "× plain": num(r.get("speedup_vs_plain"), ".1f"), "GB/s read": num(r.get("effective_gbs"), ".1f"),
        "of the triad": num(r.get("fraction_of_triad"), ".0%"),
        "cache (GB)": num(None if r.get("cache_mb") is None else r["cache_mb"] / 1024, ".2f"),
        "own peak (GB)": num(None if r.get("own_mb") is None else r["own_mb"] / 1024, ".2f"),
        "process peak (GB)": num(r["peak_mb"] / 1024, ".2f"), "setup (s)": num(r["setup_seconds"] or None, ".0f"),
        "timed on": f"{r['extrapolated_from_batches']} batches" if r["extrapolated_from_batches"] else
        ("1 epoch" if r["variant"] == "plain" else f"median of {FAST_EPOCHS} epochs"),
        "probe, first / last (ms)": " / ".join(f"{t:.0f}" for t in r.get("probe_ms") or ())} for r in rep["variants"]])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--full-batches", type=int, default=20)
    ap.add_argument("--n", type=int, default=N, help="training examples (the paper: 60,000)")
    ap.add_argument("--hidden", type=int, default=H, help="hidden units (the paper: 32,000)")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 (default: cuda when present, else cpu)")
    ap.add_argument("--out", default=str(OUT), help="where to write the report (default: book/bench.json)")
    ap.add_argument("--paired-rounds", type=int, default=PAIRED_ROUNDS,
                    help="rounds of the plain network against the compiled steps, float32 and bfloat16 caches (the "
                         "PyTorch steps where they cannot run), in one process, which holds both caches (0: none)")
    a = ap.parse_args(argv)
    if a.variant:  # child process: one variant, one JSON line
        print(json.dumps(variant(a.variant, a.full_batches, a.n, a.hidden, a.device)))
        return
    load, dev = os.getloadavg()[0], nets.device(a.device)
    results.code_version()  # taken now, once (cached): the code that runs, not what src/ holds at the end
    variants = [v for v in a.variants if dev.type == "cpu" or not v.startswith("kernel")]  # the kernel: CPU only
    triad_gbs, read_gbs = triad(device=a.device) if any(v in CACHED for v in variants) else (None, None)
    if triad_gbs:
        print(f"bandwidth, {TRIAD_N:,} float32 per array, {torch.get_num_threads()} threads: triad a = b + 3c "
              f"{triad_gbs:.1f} GB/s, read-only sum {read_gbs:.1f} GB/s")
    rows = []
    for v in variants:
        rows.append(run_variant(v, a.full_batches, a.n, a.hidden, a.device))
        print(line(rows[-1], rows, triad_gbs), flush=True)
    pair = [v for v in PAIRED["cpu"] if v in variants] or [v for v in PAIRED["gpu"] if v in variants]
    rounds = (paired(pair, a.paired_rounds, n=a.n, hidden=a.hidden, device=a.device)
              if pair and "plain" in variants and a.paired_rounds > 0 else None)
    rep = report(rows, a.n, a.hidden, load, a.device, triad_gbs, read_gbs, rounds)
    print(f"{summary(rep)} (load average at start {load:.1f})")
    if a.out:
        results._atomic_write(Path(a.out), (json.dumps(rep, indent=1) + "\n").encode())
        print("written", a.out)


if __name__ == "__main__":
    main()
