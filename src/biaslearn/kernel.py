"""The bias-only step on a CPU as one compiled loop (numba): train.bias_step's numbers, one pass over the cache.

train.bias_step (PyTorch) makes about seven passes over each slice of the batch (gather the rows, add b, relu,
the logits' matmul, sign, the gradient's matmul). Here each row of the cache is read once from memory: the
row's h = relu(P + b) goes into a per-thread buffer while the K logits accumulate; after the softmax the
loop goes back through that buffer (in the CPU's cache):

    d loss / d b_j = (1/B) sum_n [h_nj > 0] sum_k g_nk W_out[k, j],   g = softmax - onehot.

W_out (K x H, 1.3 MB at the paper's shape) is what the loop reads most, from the CPU's cache: R = 2 rows go through
the forward loop together, so each of its elements is loaded once per 2 rows there (4 in the backward loop, below).
On the Intel Xeon of the first book/bench.json runs the loop was bound by the core, not by memory (as fast on a cache
in L3 as on one in DRAM), so R is what keeps the sums in registers: 2 rows' 20 sums fit AVX-512's 32 registers with
the loop's other values, 4 rows' 40 spill to the stack (4 runs side by side in one process: R = 2 took 0.82-1.02 of
R = 4's time; R = 3 between).
The backward loop takes RB = 4 rows at a time (two forward passes of R rows each), so that each element of W_out is
loaded once per 4 rows there; while it goes through them it prefetches the same columns of the next 4 rows of the cache
into L2 (``backward_ahead``), so that memory works while the core computes: on the AMD EPYC below one core alone reads
memory at only about half the triad's rate, and the forward loop waits on it. A call to LLVM's prefetch stops LLVM
from vectorising a loop, so that loop is written out in LLVM's IR, in whole vectors of 16 columns and in the order
LLVM gives the generated backward loop (per row, in order, one chain of multiply-adds through grad[j]; then the row's
mask). So the numbers are those of the step with neither at the paper's shape (checked bit for bit: float32 and
bfloat16, batches of 33 to 256 rows on 1 and 2 threads, pieces of 64 and 2048 columns); where H is not a multiple of
16, its last columns go through the generated loop, whose own remainder loop adds in another order (gradients within
4e-9 of the step without them, at H = 300 and 5000).
The forward loop runs over pieces of CHUNK columns; it slices whole rows into 1-d pieces, which numba knows are
contiguous and vectorises (a 2-d slice it cannot). The batch's rows are split over numba's threads, each with its own
gradient row (summed at the end in a fixed order: the same numbers for the same thread count). A bfloat16 cache is
read as its 16 bits and widened in the loop, in registers (``widen``: a bfloat16 is the top half of a float32). The
loops over the K outputs and R rows are written out (``_source``) so that each sum stays in a register; numba compiles
them once per K and cache dtype, on first use (a few seconds). The sums may be reassociated (vectorised) but NaN and
infinity keep their meaning, so a network that blew up still shows a NaN loss.
On a CPU with AVX-512 the loops use 512-bit vectors (``wide_vectors``): LLVM's default for many Intel models is 256-bit
ones, which took 1.04-1.41 times as long here (8 pairs of runs, median 1.12). The vector width sets the order of the
forward sums, so the last bits of the loss and gradient depend on it (the gradient test in tests/test_nets.py holds at
either).

Measured on that Xeon, in paired runs (scripts not kept; the times are medians over alternating rounds, with the
quartiles): until 2026-12-03 a bfloat16 piece was widened first into a float32 buffer in the CPU's cache, and then
read by the forward loop; that step took 1.21 (1.19-1.32) times as long as this one on 2 threads, 1.24 on one
(bit-identical numbers). With 2 threads the float32 step takes about 3 times as long as a loop that only reads the
same rows (0.47-0.55 s per epoch). Tried there and slower, as multiples of this step's time:
- blocks of 32 rows over 512-column pieces, so that the pieces of W_out stay in L1: 1.05 (1.12 with software prefetch);
- software prefetch of the next two rows during the backward loop, so that memory works while the core computes: 1.27
  on one thread (the backward loop cut into the pieces this needs, without the prefetch: 1.09; backward_ahead, which
  does it without cutting the loop, came later and was not measured on that Xeon);
- AVX512-BF16 dot products (vdpbf16ps on bfloat16 h, W_out and g, through inline assembly): 1.15-1.26; its dot loops
  took as long as the float32 ones;
- the backward loop written with explicit vectors (numba intrinsics over LLVM's fma), each row's sum in two chains of 5
  in place of the one chain of 20 multiply-adds through grad[j] that LLVM makes of it: 0.98 on one thread, no gain
  worth the change (presumably the core already overlaps the chains of successive columns);
- the forward and the previous R rows' backward in one loop, so that each element of W_out is loaded once for both:
  1.01 (IQR 0.83-1.12) on 2 threads, 1.02 on one (bit-identical);
- no h buffer: the forward stores nothing and the backward takes its mask from the cache's rows, [p + b > 0] (still in
  the CPU's cache): the forward loop alone ran 1.3 times as fast, the whole step 0.98 of this one's time on 2 threads
  and 1.09 on one (bit-identical); with a bfloat16 cache widened in registers, 1.11 (1.05-1.16) on 2 threads;
- the batch's loss and the sum of the threads' gradient rows computed in the compiled loop, in place of F.cross_entropy
  and numpy's sum (about 0.5 of the 1.3 ms per batch that a whole training step spends outside the loop): 1.02
  (0.99-1.05) of this step's time, with fused Adam, on 2 threads (gradient bit-identical);
- software prefetch of the next piece of the rows (float32, 2 threads): its first 2 lines of each 4 KB page into L2,
  1.04 (1.02-1.07); 8 lines of each page into L1, 1.10 (1.09-1.11); every line of the piece into L2, 1.29 (1.27-1.31).

Measured on an AMD EPYC (Zen 5, AVX-512 with BF16, 1 MB of L2 per core, 2 cores; 2026-12-03), float32, 2 threads, the
loop alone, batches of 100 rows, in paired rounds of 60 batches: 0.75-0.9 s per epoch, about as fast on 150 rows held
in L3 as on 60,000 in DRAM; the forward loop alone takes about 0.6 of that. Yet a C copy of the loop (gcc, one thread;
not kept) ran its forward loop 3 times as fast with the rows in L1 (0.12 against 0.35-0.41 ns per element and row):
one core waits on its reads of the cache, from L3 as from DRAM, and W_out, which no longer fits this CPU's L2, costs
the forward and the backward loop about 0.2 ns each. The whole training step (Adam, the loss, the gradient rows' sum)
takes 1.13 times the loop's time (10 paired rounds, 0.99-1.30). Tried there and no faster:
- the columns outside and the rows inside (each piece of W_out, 80 KB, stays in L2 while the thread's 50 rows go past
  it; h kept for all 50 rows; bit-identical numbers), because W_out (1.28 MB) no longer fits this CPU's L2 and so
  comes from L3 for every 2 rows: 1.03 (1.01-1.08) with the cache in DRAM, 0.97 (0.95-1.04) in L3; with 512-column
  pieces (W_out's piece in L1; other sums' order) 1.09-1.19;
- the backward loop compiled without "reassoc", so that LLVM keeps the tree of each row's 10 products in place of the
  one chain of 20 multiply-adds through grad[j] it makes of them (other last bits): 1.00 (0.94-1.03).
What helped there (the whole step over a cache in DRAM, batches of 256, 10 paired rounds of 30 batches, each change
against the step before it, the same numbers): backward_ahead's prefetch, with 2 rows at a time in the backward loop,
float32 0.873 (0.852-0.910) of the time, bfloat16 0.946 (0.904-1.001) (a C copy of the loop, not kept, had shown it
first: 1.02-1.07 to 0.77-0.81 ns per element and row); then RB = 4 rows at a time in the backward loop, float32 0.850
(0.846-0.866), bfloat16 0.891 (0.876-0.928); RB = 8 took 1.13 (1.09-1.15) of RB = 4's time (8 rounds: its h, 1 MB,
no longer stays in L2). Prefetching each 64-byte line once for a bfloat16 cache, in place of once per 16 columns
(twice a line), took 1.07 (1.06-1.09); the forward loop's pieces taken for the 4 rows in turn, so that the second pair
finds each piece of W_out in L2 (bit-identical), float32 1.16 (1.15-1.19), bfloat16 0.98 (0.85-1.08).
Measured again an hour later, the whole change (prefetch and RB = 4) against the step before it, in both orders of
the pair (each order favoured its second member by up to 9% in a check of two steps that run the same code), 10
rounds each: float32 0.95, 1.03, 0.99 and 1.01 (no gain at that moment), bfloat16 0.88 and 0.90. The float32 gain
came and went with the moment on this shared machine; the bfloat16 one held.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}  # LLVM's fast-math flags without "no NaN" / "no infinity"
R = 2          # rows at a time in the forward loop: each pass over W_out (K x H, from the CPU's cache) serves R rows
               # (4 rows' sums spill out of the registers)
RB = 4         # rows at a time in the backward loop (2 forward passes of R rows)
CHUNK = 2048   # columns at a time in the forward loop: the logits' sums are added up piece by piece, so the pieces set
               # the last bits of the loss and gradient (the stored feedforward_kernel runs used 2048)


def _tree(terms: list[str]) -> str:
    """The sum of ``terms`` as a balanced tree, "((a + b) + (c + d))": additions that wait on each other log2(n)
    deep, not n deep (under fast-math LLVM may reorder it: what it compiles to is what results/feedforward_kernel's
    runs used)."""
    while len(terms) > 1:
        terms = [f"({terms[i]} + {terms[i + 1]})" if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


def _source(K: int, R: int) -> str:
    """The forward loop over one piece of R rows and the backward loop over R whole rows, for K outputs, and the
    call that feeds the forward loop columns j0..j1 of R rows of the cache, as Python source for numba (each sum in a
    register)."""
    ks, rs = range(K), range(R)
    ps = ", ".join(f"p{q}" for q in rs)
    return "\n".join([
        f"def forward(h, b, W, out, j0, j1, {ps}):",    # columns j0..j1 of h[q] = relu(p_q + b) (p_q: those
        *(f"    w{k} = W[{k}][j0:j1]" for k in ks),      # columns only) and out[q, k] += h[q] . W[k] over them;
        *(f"    h{q} = h[{q}][j0:j1]" for q in rs),      # 1-d slices of whole rows, which numba knows contiguous
        "    b = b[j0:j1]",
        *(f"    s{q}_{k} = np.float32(0)" for q in rs for k in ks),
        "    for j in range(b.shape[0]):",
        "        bj = b[j]",
        *(line for q in rs for line in (
            f"        v{q} = el(p{q}[j]) + bj",              # el: the cache's element as a float32
            f"        v{q} = np.float32(0) if v{q} <= 0 else v{q}",   # relu that keeps a NaN (as torch's does)
            f"        h{q}[j] = v{q}")),
        *(line for k in ks for line in (f"        w = w{k}[j]", *(f"        s{q}_{k} += v{q} * w" for q in rs))),
        *(f"    out[{q}, {k}] += s{q}_{k}" for q in rs for k in ks),
        "",
        "def backward(h, g, W, grad, j0):",              # grad[j] += sum_q [h[q, j] > 0] sum_k g[q, k] W[k, j], j >= j0
        *(f"    w{k} = W[{k}]" for k in ks),
        *(f"    g{q}_{k} = g[{q}, {k}]" for q in rs for k in ks),
        *(f"    h{q} = h[{q}]" for q in rs),
        "    for j in range(j0, grad.shape[0]):",
        *(f"        x{k} = w{k}[j]" for k in ks),
        *(f"        a{q} = " + _tree([f"g{q}_{k} * x{k}" for k in ks]) for q in rs),
        "        grad[j] += " + " + ".join(f"(a{q} if h{q}[j] > 0 else np.float32(0))" for q in rs),
        "",
        "def forward_rows(P, rows, j0, j1, b, h, W, out):",  # rows: R indices into the cache P
        "    forward(h, b, W, out, j0, j1, " + ", ".join(f"P[rows[{q}]][j0:j1]" for q in rs) + ")",
    ])


def wide_vectors() -> str:
    """Ask numba for 512-bit vectors on a CPU with AVX-512 (before its first compilation in this process; a
    NUMBA_CPU_FEATURES of the reader's own is kept), and say which its code uses: "512-bit" or "the CPU's default"."""
    import llvmlite.binding as ll
    from numba.core import config, registry
    host = ll.get_host_cpu_features().flatten()
    if config.CPU_FEATURES is None and "+avx512f" in host.split(","):
        config.CPU_FEATURES = host + ",-prefer-256-bit"  # read when numba's CPU code generator starts
    used = registry.cpu_target.target_context.codegen()._tm_features  # that generator's features, now started
    return "512-bit" if "-prefer-256-bit" in used else "the CPU's default"


@functools.lru_cache(maxsize=None)
def _compiled(K: int):
    """{cache dtype: the batch step for K outputs}, and numba (imported here: a reader without numba keeps
    train.bias_step)."""
    import numba
    from numba import njit, prange
    from numba.core import cgutils
    from numba.extending import intrinsic
    from llvmlite import ir
    wide_vectors()

    @njit(inline="always")
    def same(x):                            # a float32 cache's element
        return x

    @intrinsic
    def widen(typingctx, bits):             # a bfloat16 cache's element (its int16 bits) as a float32, exactly:
        if bits != numba.int16:             # (anything else is refused when numba compiles, not cast)
            return None

        def codegen(context, builder, sig, args):  # the bits shifted into the top half, read as a float32
            i32 = ir.IntType(32)
            return builder.bitcast(builder.shl(builder.zext(args[0], i32), ir.Constant(i32, 16)), ir.FloatType())
        return numba.float32(numba.int16), codegen

    @intrinsic
    def backward_ahead(typingctx, h, g, W, grad, P, nxt):
        """The generated backward loop for RB rows over the columns in whole vectors of 16, as LLVM compiles it there,
        written out (per row, in order, one chain of multiply-adds through grad[j], then the row's mask), while it
        prefetches the same columns of the cache's rows ``nxt`` (the next RB rows) into L2; the columns it did."""
        if not (all(isinstance(a, numba.types.Array) for a in (h, g, W, grad, P, nxt))  # it reads h, g, W, grad
                and all(a.layout == "C" and a.dtype == numba.float32 for a in (h, g, W, grad))  # as C float32 arrays
                and nxt.layout == "C" and nxt.dtype == numba.int64):
            return None

        def codegen(context, builder, sig, args):
            f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
            vec, i8p = ir.VectorType(f32, 16), ir.IntType(8).as_pointer()
            ha, ga, Wa, gra, Pa, na = (context.make_array(t)(context, builder, a) for t, a in zip(sig.args, args))
            H = cgutils.unpack_tuple(builder, gra.shape)[0]
            n = builder.mul(builder.udiv(H, ir.Constant(i64, 16)), ir.Constant(i64, 16))  # whole vectors' columns

            def ptr(a, q):                               # the first byte of row q (an int or an IR value) of array a
                q = ir.Constant(i64, q) if isinstance(q, int) else q
                stride = cgutils.unpack_tuple(builder, a.strides)[0]
                return builder.gep(builder.bitcast(a.data, i8p), [builder.mul(q, stride)])
            isz = ir.Constant(i64, context.get_abi_sizeof(context.get_data_type(sig.args[4].dtype)))
            hrow = [ptr(ha, q) for q in range(RB)]
            wrow = [ptr(Wa, k) for k in range(K)]
            nrow = [ptr(Pa, builder.load(builder.gep(na.data, [ir.Constant(i64, q)]))) for q in range(RB)]
            gvec = [[builder.shuffle_vector(                 # g[q, k] in all 16 lanes
                        builder.insert_element(ir.Constant(vec, ir.Undefined), builder.load(builder.gep(
                            ga.data, [ir.Constant(i64, q * K + k)])), ir.Constant(i32, 0)),
                        ir.Constant(vec, ir.Undefined), ir.Constant(ir.VectorType(i32, 16), [0] * 16))
                     for k in range(K)] for q in range(RB)]
            pf = cgutils.get_or_insert_function(     # prefetch(address, read, locality 2 (L2), data)
                builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0")
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), "llvm.fma.v16f32")
            zero = ir.Constant(vec, [0.0] * 16)
            vp = vec.as_pointer()
            load = lambda p: builder.load(builder.bitcast(p, vp), align=4)  # noqa: E731
            with cgutils.for_range_slice(builder, ir.Constant(i64, 0), n, ir.Constant(i64, 16), i64) as (j, _):
                off = builder.mul(j, ir.Constant(i64, 4))
                w = [load(builder.gep(wrow[k], [off])) for k in range(K)]
                gp = builder.gep(builder.bitcast(gra.data, i8p), [off])
                t = load(gp)
                for q in range(RB):                     # t + sum_k g[q, k] W[k, j], one chain, kept where h > 0
                    u = t                               # (a NaN h: not kept, as in the generated loop)
                    for k in range(K):
                        u = builder.call(fma, [w[k], gvec[q][k], u])
                    m = builder.fcmp_ordered(">", load(builder.gep(hrow[q], [off])), zero)
                    t = builder.select(m, u, t)
                builder.store(t, builder.bitcast(gp, vp), align=4)
                for q in range(RB):
                    builder.call(pf, [builder.gep(nrow[q], [builder.mul(j, isz)]), ir.Constant(i32, 0),
                                      ir.Constant(i32, 2), ir.Constant(i32, 1)])
            return n
        return numba.int64(h, g, W, grad, P, nxt), codegen

    def loops(r: int, el):                  # (forward_rows, backward) for r rows at a time
        ns = {"np": np, "el": el}
        exec(_source(K, r), ns)
        for name in ("forward", "backward", "forward_rows"):  # forward_rows finds forward compiled in ns
            ns[name] = njit(fastmath=FASTMATH, inline="always")(ns[name])
        return ns["forward_rows"], ns["backward"]

    def make(el):
        (forward_R, backward_R), (forward_1, backward_1) = loops(R, el), loops(1, el)
        backward_B = loops(RB, el)[1]

        @njit(parallel=True, fastmath=FASTMATH)
        def step(P, rows, y, b, W, c, logits, grads, chunk):
            B, T, H = rows.shape[0], grads.shape[0], b.shape[0]
            for t in prange(T):
                grad = grads[t]
                grad[:] = 0
                h3 = np.empty((RB // R, R, H), np.float32)     # RB rows' h, R rows at a time
                h, g, nxt = h3.reshape((RB, H)), np.empty((RB, K), np.float32), np.empty(RB, np.int64)
                i, end = t * B // T, (t + 1) * B // T
                while i < end:
                    n = RB if end - i >= RB else min(R, end - i)   # RB rows at a time, then R, then one by one
                    for i2 in range(0, n, R):
                        r = min(R, n - i2)
                        L = logits[i + i2:i + i2 + r]
                        for q in range(r):
                            L[q] = c
                        for j0 in range(0, H, chunk):
                            j1 = min(j0 + chunk, H)
                            if r == R:
                                forward_R(P, rows[i + i2:i + i2 + R], j0, j1, b, h3[i2 // R], W, L)
                            else:                       # n = 1: the last row
                                forward_1(P, rows[i:i + 1], j0, j1, b, h[:1], W, L)
                    for q in range(n):                  # the softmax's gradient: g = softmax(L) - onehot(y)
                        L = logits[i + q]
                        top, z = L.max(), np.float32(0)
                        for k in range(K):
                            g[q, k] = np.exp(L[k] - top)
                            z += g[q, k]
                        for k in range(K):
                            g[q, k] /= z
                        g[q, y[i + q]] -= 1
                    if n == RB:
                        for q in range(RB):             # the next RB rows, to prefetch (the last RB: these again)
                            nxt[q] = rows[i + RB + q] if i + 2 * RB <= end else rows[i + q]
                        done = backward_ahead(h, g, W, grad, P, nxt)
                        backward_B(h, g, W, grad, done)  # the last columns, fewer than 16
                    elif n == R:                        # the last pair (h3[0], g's first R rows)
                        backward_R(h3[0], g, W, grad, 0)
                    else:
                        backward_1(h[:1], g, W, grad, 0)
                    i += n
        return step

    return {torch.float32: make(same), torch.bfloat16: make(widen)}, numba


def torch_threads(numba) -> int:
    """Give numba's loops torch's thread count (at most NUMBA_NUM_THREADS), and leave torch's count as it was; the
    count numba uses. Starting numba's OpenMP pool can set the count the process's OpenMP runtime reports, which is
    the one torch reads: with torch set to 1 thread, torch then read 2, and every later step ran on 2 threads."""
    threads = torch.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return numba.get_num_threads()


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
    threads = torch_threads(numba)
    work = {} if work is None else work
    if work.get("grads") is None or work["grads"].shape != (threads, H):
        work["grads"] = np.empty((threads, H), np.float32)
    logits = np.empty((len(rows), K), np.float32)
    Pn = P.numpy() if P.dtype == torch.float32 else P.view(torch.int16).numpy()
    c = np.zeros(K, np.float32) if c is None else c.detach().numpy()
    W = W_out.detach().contiguous().numpy()  # backward_ahead reads its rows as contiguous vectors
    steps[P.dtype](Pn, rows.numpy(), y.numpy(), b.detach().numpy(), W, c, logits, work["grads"], CHUNK)
    return F.cross_entropy(torch.from_numpy(logits), y), torch.from_numpy(work["grads"].sum(0)).div_(len(rows))
