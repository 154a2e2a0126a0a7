"""Seeds and devices: the one place each is decided.

    device(name)                     "cuda" when present, else "cpu" (or as named)
    resolve(dev)                     the device as tensors on it report it ("cuda" -> "cuda:0")
    generator(seed, name)            a CPU random stream for tensor ``name`` of run ``seed``
    sync(dev), clock(dev)            wait for the device's queued work; a timestamp taken after it
    free_bytes(dev)                  free memory on a CUDA device (None elsewhere)
    reset_peak(dev), peak_bytes(dev) the device's peak allocated memory (None off CUDA)
    cache_placement(need, free)      "device" or "host": where a cache of ``need`` bytes goes
    slice_rows(dev, batch)           rows per slice of train.bias_step on that device

Every random number of the book comes from ``generator(seed, name)``: one stream per name,
so adding a tensor never shifts another, and the same numbers on every device (drawn on
the CPU, then moved).

CUDA runs asynchronously: a kernel is queued and the Python line returns at once, so a clock
read straight after it measures the queueing, not the work. Every timing of the package reads
``clock(dev)``, which synchronises first (a no-op on the CPU).
"""
from __future__ import annotations

import hashlib
import time

import torch

CPU_SLICE_ROWS = 32       # train.bias_step on a CPU: slices of (32, n_hidden) stay in its cache
HEADROOM_BYTES = 1 << 30  # cache_placement: device memory left free besides the cache ...
HEADROOM_FRACTION = 0.1   # ... plus this fraction of the cache (batch buffers, evaluation, the allocator's slack)


def device(name: str = "auto") -> torch.device:
    """CUDA when present, else the CPU; or the device named ("cpu", "cuda", "cuda:1")."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def resolve(dev) -> torch.device:
    """``dev`` as its tensors report it: "cuda" is "cuda:<current device>" (``torch.device("cuda")`` is not
    equal to the device of a tensor put there); any other device as it is."""
    dev = torch.device(dev)
    if dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return dev


def generator(seed: int, name: str) -> torch.Generator:
    """A CPU generator for tensor ``name`` of run ``seed``; independent of every other name."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def _cuda(dev) -> bool:
    """A CUDA device on which work may have been queued (CUDA never started: nothing to wait for)."""
    return torch.device(dev).type == "cuda" and torch.cuda.is_initialized()


def sync(dev) -> None:
    """Wait until the work queued on ``dev`` is done: CUDA kernels run asynchronously. No-op on the CPU."""
    if _cuda(dev):
        torch.cuda.synchronize(dev)


def clock(dev) -> float:
    """time.perf_counter() once the work queued on ``dev`` is done: read it before and after what is timed."""
    sync(dev)
    return time.perf_counter()


def free_bytes(dev) -> int | None:
    """Free memory on CUDA device ``dev`` (torch.cuda.mem_get_info), None on any other device."""
    dev = torch.device(dev)
    return torch.cuda.mem_get_info(dev)[0] if dev.type == "cuda" else None


def reset_peak(dev) -> None:
    """Start counting the peak memory allocated on CUDA device ``dev`` afresh (no-op elsewhere)."""
    if _cuda(dev):
        torch.cuda.reset_peak_memory_stats(dev)


def peak_bytes(dev) -> int | None:
    """The most memory allocated at once on CUDA device ``dev`` since ``reset_peak``; None off CUDA."""
    if torch.device(dev).type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(dev) if torch.cuda.is_initialized() else 0


def cache_placement(need: int, free: int, headroom: int = HEADROOM_BYTES,
                    fraction: float = HEADROOM_FRACTION) -> str:
    """Where a cache of ``need`` bytes goes when the device has ``free`` bytes free: "device" if it fits
    with room to spare (``headroom`` bytes plus ``fraction`` of the cache), else "host"."""
    return "device" if need + headroom + fraction * need <= free else "host"


def slice_rows(dev, batch_size: int) -> int:
    """Rows per slice of train.bias_step: CPU_SLICE_ROWS on a CPU (a slice stays in its cache), the whole
    batch on an accelerator (one large kernel beats many small ones; device memory holds the batch)."""
    return CPU_SLICE_ROWS if torch.device(dev).type == "cpu" else batch_size
