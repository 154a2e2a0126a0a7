"""The bias-only step on a CPU as one compiled loop (numba): train.bias_step's numbers, one pass over the cache.

train.bias_step (PyTorch) makes about seven passes over each slice of the batch (gather the rows, add b, relu,
the logits' matmul, sign, the gradient's matmul). Here each row of the cache is read once from memory:

    forward   logits_n = c + sum_j relu(P_nj + b_j) W_out[:, j], keeping the mask [relu(P_nj + b_j) > 0] (a byte);
    backward  d loss / d b_j = (1/B) sum_n [mask_nj] sum_k g_nk W_out[k, j],   g = softmax(logits) - onehot.

The batch's rows are split over numba's threads, each with its own gradient row (summed at the end in a fixed order:
the same numbers for the same thread count). Each thread goes through its rows columns outside, rows inside, so that
the piece of W_out (K x H, 1.3 MB at the paper's shape: more than the 1 MB of L2 of the AMD EPYC below) it needs stays
in the CPU's nearest cache while all its rows go past it:
- forward: pieces of CHUNK columns, each in sub-pieces of SUB (W_out's sub-piece, 20 KB, in L1); R = 2 rows at a time
  (``forward_rows``: 2 rows' 20 sums fit AVX-512's 32 registers with the loop's other values, 4 rows' 40 spill), each
  pair's 16-lane sums carried from sub-piece to sub-piece in memory, so that each sum is that of one pass over the
  piece; while a pair goes through a sub-piece, the next pair's columns are prefetched into L2;
- backward: pieces of BACK columns (W_out's piece in L2). On a CPU with AVX-512, the rows in groups of RB = 4 by table
  lookup (``backward_table``): d loss / d b_j = (1/B) sum_k W_out[k, j] sum_n [mask_nj] g_nk, and a group's inner sum
  at column j depends only on the pattern of its 4 masks there, so a table of 16 lanes per group and output (the sums
  of g over each pattern's rows) and one permute give 16 columns at once: 10 permutes and 10 additions per 4 rows and
  16 columns, where multiplying out makes 40 multiply-adds. Elsewhere (or with BIASLEARN_TABLE_LOOKUP=0), RB = 4 rows
  at a time, so that each element of W_out is loaded once per 4 rows, UB = 4 vectors of 16 columns side by side
  (``backward_rows``), since each column's sum is one chain of multiply-adds (10 per row, row after row) that the core
  can only overlap with other columns' chains. Each thread's last n mod 4 rows go row by row either way.
Only masks are kept between the two (1 byte, not h's 4, per element: 4 MB a thread at the paper's shape, batches of 256
on 2 threads). A call to LLVM's prefetch stops LLVM from vectorising a loop, carrying a sum between calls needs its 16
lanes, and LLVM keeps no more than one column's chain in a loop's body, so those loops are written out in LLVM's IR, in
the order LLVM compiles the generated loops (``_source``) in: the forward sums in 16 lanes, reduced in halves at the end
of a piece, then its last columns one by one; the backward per row, in order, one chain through grad[j], then the row's
mask. So without the table lookup the numbers are those of the generated loops at the paper's shape (checked bit for
bit: float32 and bfloat16, batches of 3 to 256 rows on 1 and 2 threads, pieces of 64 and 2048 columns, against the step
of 2026-12-03 that ran the generated loops row by row); where H is not a multiple of 16 the gradient's last columns add
in another order (within 8e-9 of that step, at H = 300 and 5000). The table lookup adds the gradient's terms in another
order: the loss is unchanged, the gradient within 2e-9 of that step's at the paper's shape (and closer to the PyTorch
step's: 7e-10, where the row-by-row loop gave 2e-9). The loops over the K outputs and R rows are written out
(``_source``) so that each sum stays in a register; numba compiles them once per K and cache dtype, on first use (a few
seconds). A bfloat16 cache is read as its 16 bits and widened in registers (a bfloat16 is the top half of a float32).
The sums may be reassociated (vectorised) but NaN and infinity keep their meaning, so a network that blew up still shows
a NaN loss. On a CPU with AVX-512 the loops use 512-bit vectors (``wide_vectors``): LLVM's default for many Intel models
is 256-bit ones, which took 1.04-1.41 times as long here (8 pairs of runs, median 1.12). The vector width sets the order
of the forward sums, so the last bits of the loss and gradient depend on it (the gradient test in tests/test_nets.py
holds at either).

Measured on that Xeon, in paired runs (scripts not kept; the times are medians over alternating rounds, with the
quartiles): until 2026-12-03 a bfloat16 piece was widened first into a float32 buffer in the CPU's cache, and then
read by the forward loop; that step took 1.21 (1.19-1.32) times as long as this one on 2 threads, 1.24 on one
(bit-identical numbers). With 2 threads the float32 step takes about 3 times as long as a loop that only reads the
same rows (0.47-0.55 s per epoch). Tried there and slower, as multiples of this step's time:
- blocks of 32 rows over 512-column pieces, so that the pieces of W_out stay in L1: 1.05 (1.12 with software prefetch);
- software prefetch of the next two rows during the backward loop, so that memory works while the core computes: 1.27
  on one thread (the backward loop cut into the pieces this needs, without the prefetch: 1.09; backward_ahead (since
  replaced by the present layout), which did it without cutting the loop, came later and was not measured on that Xeon);
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
against the step before it, the same numbers): backward_ahead's prefetch (since replaced), with 2 rows at a time in the
backward loop, float32 0.873 (0.852-0.910) of the time, bfloat16 0.946 (0.904-1.001) (a C copy of the loop, not kept,
had shown it first: 1.02-1.07 to 0.77-0.81 ns per element and row); then RB = 4 rows at a time in the backward loop,
float32 0.850 (0.846-0.866), bfloat16 0.891 (0.876-0.928); RB = 8 took 1.13 (1.09-1.15) of RB = 4's time (8 rounds: its
h, 1 MB, no longer stays in L2). Prefetching each 64-byte line once for a bfloat16 cache, in place of once per 16
columns (twice a line), took 1.07 (1.06-1.09); the forward loop's pieces taken for the 4 rows in turn, so that the
second pair finds each piece of W_out in L2 (bit-identical), float32 1.16 (1.15-1.19), bfloat16 0.98 (0.85-1.08).
Measured again an hour later, the whole change (prefetch and RB = 4) against the step before it, in both orders of
the pair (each order favoured its second member by up to 9% in a check of two steps that run the same code), 10
rounds each: float32 0.95, 1.03, 0.99 and 1.01 (no gain at that moment), bfloat16 0.88 and 0.90. The float32 gain
came and went with the moment on this shared machine; the bfloat16 one held.
Then (the same evening) the present layout, columns outside and rows inside with masks in place of h, against that step
(rows outside: each row forward over all its columns, W_out from L3 for every 2 rows; h kept for 4 rows): 12 paired
rounds of 20 batches in each order, float32 0.73 (0.69-0.76) and 0.66 (0.63-0.68) of the time, bfloat16 0.65
(0.61-0.69) and 0.61 (0.57-0.63); the same numbers at the paper's shape. On its own, with the cache's 16 rows held in
the CPU's cache, the forward loop in sub-pieces of 512 columns took 0.78 of the time it took over whole pieces of 2048
(W_out's piece in L2), and the backward loop with UB = 4 vectors side by side 0.88 of its time with one. Not kept: the
backward in pieces of 512 columns (1.02-1.05), UB = 2 (0.90 where UB = 4 took 0.88), prefetching 2, 4 or 8 pairs
ahead in place of 1 (0.97-0.99, within the rounds' spread), sub-pieces of 256 columns (1.0-1.2), a cache in 2 MB
pages (madvise; the step before this one took 1.11 (1.02-1.13) of its time with them), and each thread's rows in blocks
of 8 to 32, the next block's rows prefetched whole, row after row, while one block goes forward (so that memory sees
long runs; bit-identical): 1.39-1.56 of the time, whichever cache level the prefetch named. What still bounds the
step here: read in sub-pieces of a few KB from random rows, this machine's memory gives one core 11-14 GB/s and two
18-19 GB/s (whole rows: 23 and 32 GB/s), and the forward loop, on its own, runs at about that rate.
Then the backward's table lookup, against the row-by-row backward (10 paired rounds of 20 batches, batches of 256, 2
threads): float32 0.62 (0.57-0.63) of the time with the cache's 16 rows in the CPU's cache, 0.73 (0.63-0.76) with 60,000
in DRAM; bfloat16 0.65 (0.65-0.71) in DRAM. The backward went from about 0.57 of the step's time (0.23 ns per element
and row on a core, the forward 0.18, in the CPU's cache) to about 0.2-0.25. What bounds the forward now: with 4 rows,
held in L2, it still takes about 0.19 ns per element and row (its loop: 58 instructions for 20 multiply-adds, no
spills); without its mask stores, 0.92 of that in L2 and 0.80-0.85 with the cache in DRAM (so masks of a bit, not a
byte, might pay). Not kept: sub-pieces of 1024 or 2048 columns for a bfloat16 cache (1.19-1.26 of the time, in one round
of tests 1.06); a cache laid out in blocks of 16 rows, each block's sub-pieces contiguous, with batches of whole blocks
(so that memory sees runs of 32 KB, not 2 KB): 0.94 (0.89-1.03) of the time, float32, not worth changing which rows
share a batch; 2 MB pages (madvise: this virtual machine gave none).
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}  # LLVM's fast-math flags without "no NaN" / "no infinity"
R = 2          # rows at a time in the forward loop: each pass over W_out (K x H, from the CPU's cache) serves R rows
               # (4 rows' sums spill out of the registers)
RB = 4         # rows at a time in the backward loop: each element of W_out is loaded once per RB rows there; and the
               # rows of a group in the table lookup (``backward_table``: 2**RB patterns, one 16-lane vector)
SUB = 512      # columns at a time in the forward loop's passes over a piece (its W_out, 20 KB, stays in L1); a
               # multiple of 16, since the IR loop goes over whole vectors only
UB = 4         # vectors of 16 columns side by side in the backward loop (4 chains of multiply-adds in flight)
BACK = 2048    # columns at a time in the backward loop; a multiple of 16, since only the last piece's last columns
               # (fewer than 16) go through the generated loop, which runs to the row's end
assert SUB % 16 == 0 and BACK % 16 == 0
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
        f"def forward(m, b, W, out, j0, j1, {ps}):",    # columns j0..j1: h_q = relu(p_q + b) (p_q: those columns
        *(f"    w{k} = W[{k}][j0:j1]" for k in ks),      # only), the mask m[q] = [h_q > 0] and out[q, k] += h_q . W[k];
        *(f"    m{q} = m[{q}][j0:j1]" for q in rs),      # 1-d slices of whole rows, which numba knows contiguous
        "    b = b[j0:j1]",
        *(f"    s{q}_{k} = np.float32(0)" for q in rs for k in ks),
        "    for j in range(b.shape[0]):",
        "        bj = b[j]",
        *(line for q in rs for line in (
            f"        v{q} = el(p{q}[j]) + bj",              # el: the cache's element as a float32
            f"        v{q} = np.float32(0) if v{q} <= 0 else v{q}",   # relu that keeps a NaN (as torch's does)
            f"        m{q}[j] = v{q} > 0")),                  # the mask [h > 0], a byte
        *(line for k in ks for line in (f"        w = w{k}[j]", *(f"        s{q}_{k} += v{q} * w" for q in rs))),
        *(f"    out[{q}, {k}] += s{q}_{k}" for q in rs for k in ks),
        "",
        "def backward(m, g, W, grad, j0):",              # grad[j] += sum_q m[q, j] sum_k g[q, k] W[k, j], j >= j0
        *(f"    w{k} = W[{k}]" for k in ks),
        *(f"    g{q}_{k} = g[{q}, {k}]" for q in rs for k in ks),
        *(f"    m{q} = m[{q}]" for q in rs),
        "    for j in range(j0, grad.shape[0]):",
        *(f"        x{k} = w{k}[j]" for k in ks),
        *(f"        a{q} = " + _tree([f"g{q}_{k} * x{k}" for k in ks]) for q in rs),
        "        grad[j] += " + " + ".join(f"(a{q} if m{q}[j] else np.float32(0))" for q in rs),
        "",
        "def forward_rows(P, rows, j0, j1, b, m, W, out):",  # rows: R indices into the cache P
        "    forward(m, b, W, out, j0, j1, " + ", ".join(f"P[rows[{q}]][j0:j1]" for q in rs) + ")",
    ])


def table_lookup() -> bool:
    """Whether the backward takes its groups of RB rows by table lookup (``backward_table``): where numba compiles for
    AVX-512 (the CPU's features, or the reader's NUMBA_CPU_FEATURES), whose permute looks up 16 lanes at once;
    elsewhere (and with BIASLEARN_TABLE_LOOKUP=0) row by row."""
    import os
    return os.environ.get("BIASLEARN_TABLE_LOOKUP", "1") != "0" and _avx512()


@functools.lru_cache(maxsize=None)
def _avx512() -> bool:
    """Whether numba's code generator targets AVX-512 (asked once, after ``wide_vectors`` has set its features)."""
    from numba.core import registry
    wide_vectors()
    return "+avx512f" in registry.cpu_target.target_context.codegen()._tm_features.split(",")


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
def _compiled(K: int, lookup: bool):
    """{cache dtype: the batch step for K outputs}, and numba (imported here: a reader without numba keeps
    train.bias_step); ``lookup``: the backward's groups of RB rows by table lookup (``table_lookup``)."""
    import numba
    from numba import njit, prange
    from numba.core import cgutils
    from numba.extending import intrinsic
    from llvmlite import ir
    wide_vectors()
    f32, i8, i16, i32, i64 = ir.FloatType(), ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
    vec, i8p = ir.VectorType(f32, 16), i8.as_pointer()
    Array = numba.types.Array

    @njit(inline="always")
    def same(x):                            # a float32 cache's element
        return x

    def widened(builder, bits):             # bfloat16s (their int16 bits, one or a vector of 16) as float32s, exactly:
        wide = isinstance(bits.type, ir.VectorType)   # the bits shifted into the top half, read as float32s
        t32 = ir.VectorType(i32, 16) if wide else i32
        shifted = builder.shl(builder.zext(bits, t32), ir.Constant(t32, [16] * 16 if wide else 16))
        return builder.bitcast(shifted, vec if wide else f32)

    @intrinsic
    def widen(typingctx, bits):             # a bfloat16 cache's element (its int16 bits) as a float32
        if bits != numba.int16:             # (anything else is refused when numba compiles, not cast)
            return None
        return numba.float32(numba.int16), lambda context, builder, sig, args: widened(builder, args[0])

    class Gen:
        """One intrinsic's IR: its arguments (numba's arrays unpacked), pointers to their rows, LLVM's vector ops."""
        def __init__(self, context, builder, sig, args):
            self.b = builder
            self.a = [context.make_array(t)(context, builder, a) if isinstance(t, Array) else a
                      for t, a in zip(sig.args, args)]
            fn = lambda name, t: cgutils.get_or_insert_function(builder.module, t, name)  # noqa: E731
            self.fma = fn("llvm.fma.v16f32", ir.FunctionType(vec, [vec] * 3))
            self.fma1 = fn("llvm.fma.f32", ir.FunctionType(f32, [f32] * 3))
            self.pf = fn("llvm.prefetch.p0", ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]))

        def row(self, i, q):                    # the first byte of row q (an int or an IR value) of argument i
            q = ir.Constant(i64, q) if isinstance(q, int) else q
            a = self.a[i]
            return self.b.gep(self.b.bitcast(a.data, i8p), [self.b.mul(q, cgutils.unpack_tuple(self.b, a.strides)[0])])

        def item(self, i, q):                   # element q of the 1-d int64 argument i
            return self.b.load(self.b.bitcast(self.row(i, q), i64.as_pointer()))

        def load(self, p, j, t=vec, size=4):    # the t at byte p + size j
            return self.b.load(self.b.bitcast(self.b.gep(p, [self.b.mul(j, ir.Constant(i64, size))]), t.as_pointer()),
                               align=size)

        def store(self, x, p, j, size=4):
            self.b.store(x, self.b.bitcast(self.b.gep(p, [self.b.mul(j, ir.Constant(i64, size))]),
                                           x.type.as_pointer()), align=size)

        def whole(self, j0, j1, n=16):          # j0 plus the columns of j0..j1 in whole vectors of n
            return self.b.add(j0, self.b.mul(self.b.udiv(self.b.sub(j1, j0), ir.Constant(i64, n)), ir.Constant(i64, n)))

        def loop(self, start, stop, step):
            return cgutils.for_range_slice(self.b, start, stop, ir.Constant(i64, step), i64)

        def vectors(self, j0, j1, U, columns):  # columns(j, U) over j0..j1 in whole vectors of 16, U side by side,
            n, nU = self.whole(j0, j1), self.whole(j0, j1, 16 * U)     # then one at a time: the column it stopped at
            with self.loop(j0, nU, 16 * U) as (j, _):
                columns(j, U)
            with self.loop(nU, n, 16) as (j, _):
                columns(j, 1)
            return n

        def cache(self, p, j, width, wide):     # the cache's elements j.. (width of them) as float32s
            if not wide:
                return self.load(p, j, vec if width == 16 else f32)
            return widened(self.b, self.load(p, j, ir.VectorType(i16, 16) if width == 16 else i16, 2))

        def relu(self, v):                      # (0 if v <= 0 else v, v > 0): a NaN kept, and not counted active
            zero = ir.Constant(v.type, [0.0] * 16 if v.type == vec else 0.0)
            return self.b.select(self.b.fcmp_ordered("<=", v, zero), zero, v), self.b.fcmp_ordered(">", v, zero)

    def forward_rows(r: int):
        """(cols, finish): the generated forward loop for r rows (``_source``), as LLVM compiles it, written out in two
        parts. cols: columns j0..j1 (whole vectors: j1 - j0 a multiple of 16) of the rows ``rows`` of the cache P into
        their 16-lane sums ``acc`` (r x K x 16, carried from the call before), storing the masks [h > 0] (m), while it
        prefetches the columns from jn of the cache's rows ``nxt`` into L2. finish: each sum reduced in halves (lanes i
        and i + 8, ...), then the piece's last columns jv..j1 one by one (their masks too), added to ``out``. The sums
        are those of one call to the generated loop over j0..j1."""
        def typed(P, rows, b, m, W, acc):
            return (all(isinstance(a, Array) for a in (P, rows, b, m, W, acc)) and P.ndim == 2
                    and all(a.layout == "C" for a in (P, b, m, W, acc))       # rows read as contiguous vectors
                    and P.dtype in (numba.float32, numba.int16) and rows.dtype == numba.int64
                    and m.dtype == numba.boolean and b.dtype == W.dtype == acc.dtype == numba.float32)

        def sums(G, acc):                       # pointers to the 16-lane sums of row q, output k
            return [[G.b.bitcast(G.b.gep(G.b.bitcast(acc.data, i8p), [ir.Constant(i64, 64 * (q * K + k))]),
                                 vec.as_pointer()) for k in range(K)] for q in range(r)]

        @intrinsic
        def cols(typingctx, P, rows, nxt, j0, j1, jn, b, m, W, acc):
            if not (typed(P, rows, b, m, W, acc) and isinstance(nxt, Array) and nxt.dtype == numba.int64):
                return None
            wide, size = P.dtype == numba.int16, 2 if P.dtype == numba.int16 else 4

            def codegen(context, builder, sig, args):
                G = Gen(context, builder, sig, args)
                j0, j1, jn = args[3], args[4], args[5]
                prow, nrow = [G.row(0, G.item(1, q)) for q in range(r)], [G.row(0, G.item(2, q)) for q in range(r)]
                mrow, wrow, bp = [G.row(7, q) for q in range(r)], [G.row(8, k) for k in range(K)], G.row(6, 0)
                at = sums(G, G.a[9])
                s = [[cgutils.alloca_once_value(builder, builder.load(at[q][k], align=4)) for k in range(K)]
                     for q in range(r)]
                with G.loop(j0, j1, 16) as (j, _):
                    bv, v = G.load(bp, j), []
                    for q in range(r):
                        x, on = G.relu(builder.fadd(G.cache(prow[q], j, 16, wide), bv))
                        G.store(builder.zext(on, ir.VectorType(i8, 16)), mrow[q], j, 1)
                        v.append(x)
                    for k in range(K):
                        w = G.load(wrow[k], j)
                        for q in range(r):
                            builder.store(builder.call(G.fma, [v[q], w, builder.load(s[q][k])]), s[q][k])
                    ahead = builder.mul(builder.add(builder.sub(jn, j0), j), ir.Constant(i64, size))
                    for q in range(r):                  # prefetch(address, read, locality 2 (L2), data): past the
                                                        # cache's end for the last pair (a prefetch never faults)
                        builder.call(G.pf, [builder.gep(nrow[q], [ahead]), *(ir.Constant(i32, x) for x in (0, 2, 1))])
                for q in range(r):
                    for k in range(K):
                        builder.store(builder.load(s[q][k]), at[q][k], align=4)
                return context.get_dummy_value()
            return numba.void(P, rows, nxt, j0, j1, jn, b, m, W, acc), codegen

        @intrinsic
        def finish(typingctx, P, rows, jv, j1, b, m, W, acc, out):
            if not (typed(P, rows, b, m, W, acc) and isinstance(out, Array) and out.dtype == numba.float32
                    and out.layout == "C"):
                return None
            wide = P.dtype == numba.int16

            def codegen(context, builder, sig, args):
                G = Gen(context, builder, sig, args)
                jv, j1 = args[2], args[3]
                prow, mrow = [G.row(0, G.item(1, q)) for q in range(r)], [G.row(5, q) for q in range(r)]
                wrow, orow, bp = [G.row(6, k) for k in range(K)], [G.row(8, q) for q in range(r)], G.row(4, 0)
                at = sums(G, G.a[7])

                def reduced(x):                         # lanes 0..n/2 plus lanes n/2..n, down to one
                    for n in (16, 8, 4, 2):
                        half = [builder.shuffle_vector(x, x, ir.Constant(ir.VectorType(i32, n // 2), list(idx)))
                                for idx in (range(n // 2), range(n // 2, n))]
                        x = builder.fadd(*half)
                    return builder.extract_element(x, ir.Constant(i32, 0))
                s = [[cgutils.alloca_once_value(builder, reduced(builder.load(at[q][k], align=4))) for k in range(K)]
                     for q in range(r)]
                with G.loop(jv, j1, 1) as (j, _):      # the last columns, one by one
                    bj = G.load(bp, j, f32)
                    for q in range(r):
                        x, on = G.relu(builder.fadd(G.cache(prow[q], j, 1, wide), bj))
                        G.store(builder.zext(on, i8), mrow[q], j, 1)
                        for k in range(K):
                            builder.store(builder.call(G.fma1, [x, G.load(wrow[k], j, f32), builder.load(s[q][k])]),
                                          s[q][k])
                for q in range(r):
                    for k in range(K):
                        p = builder.bitcast(builder.gep(orow[q], [ir.Constant(i64, 4 * k)]), f32.as_pointer())
                        builder.store(builder.fadd(builder.load(p), builder.load(s[q][k])), p)
                return context.get_dummy_value()
            return numba.void(P, rows, jv, j1, b, m, W, acc, out), codegen
        return cols, finish

    def backward_intrinsic(setup):        # setup(G) -> (U, columns(j, U)): an intrinsic (m, g or tables, W_out, grad,
        @intrinsic                         # j0, j1) running columns over j0..j1: the column it stopped at
        def backward(typingctx, m, x, W, grad, j0, j1):
            if not (all(isinstance(a, Array) and a.layout == "C" for a in (m, x, W, grad))
                    and m.dtype == numba.boolean and x.dtype == W.dtype == grad.dtype == numba.float32):
                return None

            def codegen(context, builder, sig, args):
                G = Gen(context, builder, sig, args)
                return G.vectors(args[4], args[5], *setup(G))
            return numba.int64(m, x, W, grad, j0, j1), codegen
        return backward

    def backward_rows(r: int):
        """The generated backward loop for r rows (``_source``) over columns j0..j1 in whole vectors of 16, as LLVM
        compiles it, written out (per row, in order, one chain of multiply-adds through grad[j], then the row's mask),
        UB vectors side by side; the column it stopped at (the caller sends the last columns, fewer than 16, through
        the generated loop)."""
        def setup(G):
            builder = G.b
            mrow, wrow, gp = [G.row(0, q) for q in range(r)], [G.row(2, k) for k in range(K)], G.row(3, 0)
            mvec = ir.VectorType(i8, 16)

            def columns(j, U):                      # U vectors of 16 columns from column j
                gv = [[builder.shuffle_vector(      # g[q, k] in all 16 lanes (read in the loop: 40 of them held
                                                    # in registers spilled to the stack)
                    builder.insert_element(ir.Constant(vec, ir.Undefined), G.load(G.row(1, q), ir.Constant(
                        i64, k), f32), ir.Constant(i32, 0)), ir.Constant(vec, ir.Undefined),
                    ir.Constant(ir.VectorType(i32, 16), [0] * 16)) for k in range(K)] for q in range(r)]
                js = [builder.add(j, ir.Constant(i64, 16 * u)) for u in range(U)]
                w = [[G.load(wrow[k], x) for k in range(K)] for x in js]
                t = [G.load(gp, x) for x in js]
                for q in range(r):                  # t + sum_k g[q, k] W[k, j], one chain, kept where h > 0
                    a = list(t)
                    for k in range(K):
                        for u in range(U):
                            a[u] = builder.call(G.fma, [w[u][k], gv[q][k], a[u]])
                    for u in range(U):
                        on = builder.icmp_unsigned("!=", G.load(mrow[q], js[u], mvec, 1),
                                                   ir.Constant(mvec, [0] * 16))
                        t[u] = builder.select(on, a[u], t[u])
                for u in range(U):
                    G.store(t[u], gp, js[u])
            return UB, columns
        return backward_intrinsic(setup)

    def backward_table():
        """The backward of groups of RB = 4 rows by table lookup: for columns j0..j1 in whole vectors of 16 (2 side by
        side), grad[j] += sum_k W[k, j] a_k[j], where a_k[j] = sum over the groups i of tab[i K + k][p], p the pattern
        of the group's masks at j (bit q: row RB i + q's). tab[i K + k] holds, for each of the 16 patterns, the sum
        of g[RB i + q, k] over its rows, so that one permute (AVX-512's vpermps) gives 16 columns' sums over the 4
        rows: K permutes and K additions for 4 rows, where the row-by-row loop makes 4 K multiply-adds in chains.
        The column it stopped at."""
        def setup(G):
            builder = G.b
            ivec, mvec = ir.VectorType(i32, 16), ir.VectorType(i8, 16)
            permute = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, ivec]),
                                                     "llvm.x86.avx512.permvar.sf.512")
            groups = builder.udiv(cgutils.unpack_tuple(builder, G.a[1].shape)[0], ir.Constant(i64, K))
            wrow, gp = [G.row(2, k) for k in range(K)], G.row(3, 0)

            def columns(j, U):                      # U vectors of 16 columns from column j
                js = [builder.add(j, ir.Constant(i64, 16 * u)) for u in range(U)]
                a = [[cgutils.alloca_once_value(builder, ir.Constant(vec, [0.0] * 16)) for k in range(K)]
                     for u in range(U)]
                with G.loop(ir.Constant(i64, 0), groups, 1) as (i, _):
                    first, pattern = builder.mul(i, ir.Constant(i64, RB)), []
                    for u in range(U):              # the masks' bytes (0 or 1) of the group's rows as bits
                        bits = [G.load(G.row(0, builder.add(first, ir.Constant(i64, q))), js[u], mvec, 1)
                                for q in range(RB)]
                        x = bits[0]
                        for q in range(1, RB):
                            x = builder.or_(x, builder.shl(bits[q], ir.Constant(mvec, [q] * 16)))
                        pattern.append(builder.zext(x, ivec))
                    for k in range(K):
                        t = builder.load(builder.bitcast(G.row(1, builder.add(builder.mul(i, ir.Constant(
                            i64, K)), ir.Constant(i64, k))), vec.as_pointer()), align=4)
                        for u in range(U):
                            looked_up = builder.call(permute, [t, pattern[u]])
                            builder.store(builder.fadd(builder.load(a[u][k]), looked_up), a[u][k])
                for u in range(U):                  # grad[j] + sum_k W[k, j] a_k[j], one chain
                    t = G.load(gp, js[u])
                    for k in range(K):
                        t = builder.call(G.fma, [G.load(wrow[k], js[u]), builder.load(a[u][k]), t])
                    G.store(t, gp, js[u])
            return 2, columns
        return backward_intrinsic(setup)

    @njit
    def tables(g, groups):                  # tab[i K + k, p]: the sum of g[RB i + q, k] over the bits q of p, in order
        tab = np.zeros((groups * K, 2 ** RB), np.float32)
        for i in range(groups):
            for k in range(K):
                for p in range(2 ** RB):
                    for q in range(RB):
                        if p >> q & 1:
                            tab[i * K + k, p] += g[RB * i + q, k]
        return tab

    def loops(r: int, el):                  # (forward_rows, backward) for r rows at a time, as generated
        ns = {"np": np, "el": el}
        exec(_source(K, r), ns)
        for name in ("forward", "backward", "forward_rows"):  # forward_rows finds forward compiled in ns
            ns[name] = njit(fastmath=FASTMATH, inline="always")(ns[name])
        return ns["forward_rows"], ns["backward"]

    cols_R, finish_R = forward_rows(R)
    back_1, back_R, back_B = backward_rows(1), backward_rows(R), backward_rows(RB)

    def make(el):
        forward_1, backward_1 = loops(1, el)
        backward_R, backward_B = loops(R, el)[1], loops(RB, el)[1]
        if lookup:
            assert 2 ** RB == 16, "a table of 2**RB patterns is one vector of 16 lanes"
            back_T = backward_table()

            @njit(inline="always")
            def grouped(m, g, tab, W, grad, j0, j1):  # the backward of the rows in whole groups: how many rows
                n = tab.shape[0] // K * RB
                if n == 0:                      # fewer than RB rows on this thread
                    return 0
                done = back_T(m[:n], tab, W, grad, j0, j1)
                if done < j1:                   # the last columns (fewer than 16), as generated
                    for i in range(0, n, RB):
                        backward_B(m[i:i + RB], g[i:i + RB], W, grad, done)
                return n
        else:
            @njit(inline="always")
            def grouped(m, g, tab, W, grad, j0, j1):
                return 0

        @njit(parallel=True, fastmath=FASTMATH)
        def step(P, rows, y, b, W, c, logits, grads, masks, chunk):
            B, T, H = rows.shape[0], grads.shape[0], b.shape[0]
            for t in prange(T):                     # the thread's rows i0..end
                grad = grads[t]
                grad[:] = 0
                i0, end = t * B // T, (t + 1) * B // T
                n, pairs = end - i0, (end - i0) // R
                m, g, nxt = masks[i0:end], np.empty((end - i0, K), np.float32), np.empty(R, np.int64)
                acc = np.empty((pairs, R, K, 16), np.float32)
                for q in range(n):
                    logits[i0 + q] = c
                for j0 in range(0, H, chunk):           # forward: pieces of chunk columns, in sub-pieces of SUB
                    j1 = min(j0 + chunk, H)
                    jv = j0 + (j1 - j0) // 16 * 16
                    acc[:] = 0
                    for s0 in range(j0, jv, SUB):
                        s1 = min(s0 + SUB, jv)
                        for p in range(pairs):
                            jn = s0 if p + 1 < pairs else s1    # the next pair (the first, in the next sub-piece)
                            for q in range(R):
                                nxt[q] = rows[i0 + (p + 1) % pairs * R + q]
                            cols_R(P, rows[i0 + p * R:i0 + p * R + R], nxt, s0, s1, jn, b, m[p * R:p * R + R], W,
                                   acc[p])
                    for p in range(pairs):
                        finish_R(P, rows[i0 + p * R:i0 + p * R + R], jv, j1, b, m[p * R:p * R + R], W, acc[p],
                                 logits[i0 + p * R:i0 + p * R + R])
                    if n % R:                           # the last row
                        forward_1(P, rows[end - 1:end], j0, j1, b, m[n - 1:n], W, logits[end - 1:end])
                for q in range(n):                      # the softmax's gradient: g = softmax(L) - onehot(y)
                    L = logits[i0 + q]
                    top, z = L.max(), np.float32(0)
                    for k in range(K):
                        g[q, k] = np.exp(L[k] - top)
                        z += g[q, k]
                    for k in range(K):
                        g[q, k] /= z
                    g[q, y[i0 + q]] -= 1
                tab = tables(g, n // RB if lookup else 0)
                for j0 in range(0, H, BACK):            # backward: pieces of BACK columns (whole vectors)
                    j1 = min(j0 + BACK, H)
                    i = grouped(m, g, tab, W, grad, j0, j1)     # groups of RB rows by table lookup, if it is on
                    while i < n:                        # RB rows at a time, then R, then one
                        r = RB if n - i >= RB else min(R, n - i)
                        mi, gi = m[i:i + r], g[i:i + r]
                        if r == RB:
                            done = back_B(mi, gi, W, grad, j0, j1)
                            if done < j1:               # the last columns (fewer than 16), as generated
                                backward_B(mi, gi, W, grad, done)
                        elif r == R:
                            done = back_R(mi, gi, W, grad, j0, j1)
                            if done < j1:
                                backward_R(mi, gi, W, grad, done)
                        else:
                            done = back_1(mi, gi, W, grad, j0, j1)
                            if done < j1:
                                backward_1(mi, gi, W, grad, done)
                        i += r
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
    if not P.is_contiguous():
        raise ValueError(f"kernel.bias_step reads the cache's rows as contiguous vectors: give a contiguous cache "
                         f"(this one has strides {P.stride()}; P.contiguous() copies it)")
    K, H = W_out.shape
    # the compiled loop checks no index: a bad one would read or write outside its arrays, so check here
    if P.dim() != 2 or P.shape[1] != H or b.shape != (H,) or (c is not None and c.shape != (K,)):
        raise ValueError(f"kernel.bias_step: the cache {tuple(P.shape)}, b {tuple(b.shape)} and W_out {(K, H)} "
                         f"disagree on the number of hidden units (or c is not of size {K})")
    if len(y) != len(rows) or (len(rows) and not (0 <= int(rows.min()) and int(rows.max()) < len(P)
                                                   and 0 <= int(y.min()) and int(y.max()) < K)):
        raise ValueError(f"kernel.bias_step: {len(rows)} rows (of a cache of {len(P)}) and {len(y)} labels "
                         f"(of {K} classes): give one label per row, rows in [0, {len(P)}), labels in [0, {K})")
    steps, numba = _compiled(K, table_lookup())
    threads = torch_threads(numba)
    work = {} if work is None else work
    if work.get("grads") is None or work["grads"].shape != (threads, H):
        work["grads"] = np.empty((threads, H), np.float32)
    logits = np.empty((len(rows), K), np.float32)
    Pn = P.numpy() if P.dtype == torch.float32 else P.view(torch.int16).numpy()
    c = np.zeros(K, np.float32) if c is None else c.detach().numpy()
    W = W_out.detach().contiguous().numpy()  # the IR loops read its rows (and b's) as contiguous vectors
    if work.get("masks") is None or work["masks"].shape[0] < len(rows) or work["masks"].shape[1] != H:
        work["masks"] = np.empty((len(rows), H), np.bool_)
    steps[P.dtype](Pn, rows.numpy().astype(np.int64, copy=False), y.numpy(), b.detach().contiguous().numpy(), W, c,
                   logits, work["grads"], work["masks"], CHUNK)
    return F.cross_entropy(torch.from_numpy(logits), y), torch.from_numpy(work["grads"].sum(0)).div_(len(rows))
