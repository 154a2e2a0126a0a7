"""The bias-only step on a CPU as one compiled loop (numba): train.bias_step's numbers, one pass over the cache.

train.bias_step (PyTorch) makes about seven passes over each slice of the batch (gather the rows, add b, relu,
the logits' matmul, sign, the gradient's matmul). Here each row of the cache is read once from memory: the
row's h = relu(P + b) goes into a per-thread buffer while the K logits accumulate; after the softmax the
loop goes back through that buffer (in the CPU's cache):

    d loss / d b_j = (1/B) sum_n [h_nj > 0] sum_k g_nk W_out[k, j],   g = softmax - onehot.

The batch's rows are split over numba's threads, each with its own gradient row (summed at the end in a
fixed order: the same numbers for the same thread count). A bfloat16 cache is read as its 16 bits and
widened in the loop (a bfloat16 is the top half of a float32). The loops over the K outputs are written
out (``_source``) so that each output's sum stays in a register; numba compiles them once per K and cache
dtype, on first use (a few seconds). The sums may be reassociated (vectorised) but NaN and infinity keep their
meaning, so a network that blew up still shows a NaN loss.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}  # LLVM's fast-math flags without "no NaN" / "no infinity"


def _source(K: int) -> str:
    """The forward and backward loops over one row, for K outputs, as Python source for numba."""
    ks = range(K)
    return "\n".join([
        "def forward_row(p, b, h, W, out):",              # h = relu(p + b); out[k] += h . W[k]
        *(f"    w{k} = W[{k}]" for k in ks),
        *(f"    s{k} = np.float32(0)" for k in ks),
        "    for j in range(b.shape[0]):",
        "        v = p[j] + b[j]",
        "        v = np.float32(0) if v <= 0 else v",     # relu that keeps a NaN (as torch's does)
        "        h[j] = v",
        *(f"        s{k} += v * w{k}[j]" for k in ks),
        *(f"    out[{k}] += s{k}" for k in ks),
        "",
        "def backward_row(h, g, W, grad):",               # grad[j] += [h_j > 0] sum_k g[k] W[k, j]
        *(f"    w{k} = W[{k}]" for k in ks),
        *(f"    g{k} = g[{k}]" for k in ks),
        "    for j in range(grad.shape[0]):",
        "        a = " + " + ".join(f"g{k} * w{k}[j]" for k in ks),
        "        grad[j] += a if h[j] > 0 else np.float32(0)",
    ])


@functools.lru_cache(maxsize=None)
def _compiled(K: int):
    """{cache dtype: the batch step for K outputs}, and numba (imported here: a reader without numba keeps
    train.bias_step)."""
    import numba
    from numba import njit, prange

    ns = {"np": np}
    exec(_source(K), ns)
    forward_row = njit(fastmath=FASTMATH, inline="always")(ns["forward_row"])
    backward_row = njit(fastmath=FASTMATH, inline="always")(ns["backward_row"])

    @njit(inline="always")
    def row_f32(P, n, buf):                 # a float32 cache: the row itself
        return P[n]

    @njit(fastmath=FASTMATH, inline="always")
    def row_bf16(P, n, buf):                # a bfloat16 cache, as int16 bits: widened into buf
        bits, row = buf.view(np.int32), P[n]
        for j in range(row.shape[0]):
            bits[j] = np.int32(row[j]) << 16
        return buf

    def make(row):
        @njit(parallel=True, fastmath=FASTMATH)
        def step(P, rows, y, b, W, c, logits, grads):
            B, T = rows.shape[0], grads.shape[0]
            for t in prange(T):
                grad = grads[t]
                grad[:] = 0
                h, buf, g = np.empty_like(b), np.empty_like(b), np.empty(K, np.float32)
                for i in range(t * B // T, (t + 1) * B // T):
                    L = logits[i]
                    L[:] = c
                    forward_row(row(P, rows[i], buf), b, h, W, L)
                    top, z = L.max(), np.float32(0)
                    for k in range(K):
                        g[k] = np.exp(L[k] - top)
                        z += g[k]
                    for k in range(K):
                        g[k] /= z
                    g[y[i]] -= 1
                    backward_row(h, g, W, grad)
        return step

    return {torch.float32: make(row_f32), torch.bfloat16: make(row_bf16)}, numba


def bias_step(P: torch.Tensor, rows: torch.Tensor, y: torch.Tensor, b: torch.Tensor, W_out: torch.Tensor,
              c: torch.Tensor | None = None, work: dict | None = None):
    """train.bias_step on a CPU, compiled: (mean cross-entropy of the batch ``rows`` of the cache P, its gradient
    w.r.t. b). P: float32 or bfloat16 in host memory; ``work`` keeps the per-thread gradient rows between calls."""
    if P.device.type != "cpu" or P.dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"kernel.bias_step takes a float32 or bfloat16 cache in host memory, not {P.dtype} on "
                         f"{P.device}: use train.bias_step there")
    K, H = W_out.shape
    # the compiled loop checks no index: a bad one would read or write outside its arrays, so check here
    if P.dim() != 2 or P.shape[1] != H or b.shape != (H,) or (c is not None and c.shape != (K,)):
        raise ValueError(f"kernel.bias_step: the cache {tuple(P.shape)}, b {tuple(b.shape)} and W_out {(K, H)} "
                         f"disagree on the number of hidden units (or c is not of size {K})")
    if len(y) != len(rows) or (len(rows) and not (0 <= int(rows.min()) and int(rows.max()) < len(P)
                                                   and 0 <= int(y.min()) and int(y.max()) < K)):
        raise ValueError(f"kernel.bias_step: {len(rows)} rows (of a cache of {len(P)}) and {len(y)} labels "
                         f"(of {K} classes): give one label per row, rows in [0, {len(P)}), labels in [0, {K})")
    steps, numba = _compiled(K)
    numba.set_num_threads(min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))  # torch's thread count
    work = {} if work is None else work
    if work.get("grads") is None or work["grads"].shape != (numba.get_num_threads(), H):
        work["grads"] = np.empty((numba.get_num_threads(), H), np.float32)
    logits = np.empty((len(rows), K), np.float32)
    Pn = P.numpy() if P.dtype == torch.float32 else P.view(torch.int16).numpy()
    c = np.zeros(K, np.float32) if c is None else c.detach().numpy()
    steps[P.dtype](Pn, rows.numpy(), y.numpy(), b.detach().numpy(), W_out.detach().numpy(), c, logits, work["grads"])
    return F.cross_entropy(torch.from_numpy(logits), y), torch.from_numpy(work["grads"].sum(0)).div_(len(rows))
