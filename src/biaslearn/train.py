"""Training: one frozen config in, metrics and a training curve out.

    Config             the whole description of one feed-forward run (a frozen dataclass)
    train(config)      trains a RandomMLP and returns metrics, curve, device, arrays
                       (experiments.run memoises it in results/)

Unless the network is fully trained, the input projection W_in x never changes, so it is
computed once per data set and weight draw (``project``) and training runs over the cached
pre-activations. In "bias" mode a hand-written fused step (``bias_step``) streams each
mini-batch through the cache in slices small enough to stay in the CPU cache (whole batches on
a GPU: runtime.slice_rows); "readout" and "mask" use autograd from the cached rows on
(``RandomMLP.head``). The test suite checks both against the plain autograd network (same
loss, same gradients).

On a GPU the cache stays in device memory when it fits (runtime.cache_placement); when it
does not (the paper's width: 70,000 x 32,000 float32 = 9 GB with the evaluation set), it stays
in host memory and each mini-batch's rows are gathered there and copied to the GPU
(``batch_rows``): slower, the same numbers.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import data, kernel, nets, runtime
from .config import Base


@dataclass(frozen=True)
class Config(Base):
    experiment: str = "feedforward"  # folder under results/
    dataset: str = "mnist"           # a name in data.SOURCES, or "synthetic"
    mode: str = "bias"               # "bias" (hidden biases only), "full", "readout", "mask"
    n_hidden: int = 32_000           # hidden width (units)
    init: str = "uniform"            # weight law: "uniform" U[-scale, scale]; "gaussian" N(0, scale^2/fan_in)
    scale: float = 0.1               # see init; the paper: uniform on [-0.1, 0.1]
    out_bias: bool = False           # the paper's networks have no output bias
    seed: int = 0                    # draws the weights and the mini-batch order
    epochs: int = 20                 # passes over the training data
    batch_size: int = 256            # examples per step
    optimizer: str = "adam"          # "adam" or "sgd" (momentum 0.9)
    lr: float = 1e-3                 # learning rate
    split: str = "test"              # "test": train on all training data, score the test set;
                                     # "val": hold out val_size training examples and score those
    val_size: int = 10_000           # examples held out when split == "val"
    n_train: int = 0                 # use only this many training examples (0: all)
    cache_dtype: str = "float32"     # bias mode: dtype of the cached projection ("float32", "bfloat16")
    rerun: int = 0                   # k > 0: the same weights, another initial b (or s) and batch order
    mask_slope: float = 0.0          # mask mode: 0 trains the hard mask [s > 0] straight-through; beta > 1
                                     # trains the soft gate sigmoid(beta_t s), beta_t rising geometrically from
                                     # 1 at the first step to beta at the last; the test always uses [s > 0]
    protocol: str = "standard"       # "standard": the set's own training and test splits; "reduced": the test
                                     # split alone, 80/20 stratified (data.reduced_split, a fixed seed): 8,000
                                     # training and 2,000 test images of 10,000; split "val": 6,400 / 1,600 of the 8,000
    eval_set: str = ""               # "": score the protocol's test images; "dig_mnist": score Dig-MNIST instead
                                     # ("synthetic1": the quick runs' stand-in)
    kernel: str = "torch"            # bias mode: the step over the cache, "torch" (bias_step, any device) or
                                     # "numba" (kernel.bias_step, compiled, CPU only: the same numbers to rounding)
    autocast: str = ""               # full mode: "" (float32) or "bfloat16": the forward pass's matrix products, in
                                     # training and scoring, in bfloat16 under torch.autocast; the weights, the
                                     # optimiser, the bias additions and the loss stay float32

    CHOICES = {"mode": tuple(nets.MODES), "init": nets.INITS, "optimizer": ("adam", "sgd"),
               "split": ("test", "val"), "cache_dtype": ("float32", "bfloat16"),
               "protocol": ("standard", "reduced"), "eval_set": ("", "dig_mnist", "synthetic1"),
               "kernel": ("torch", "numba"), "autocast": ("", "bfloat16")}
    ADDED = {"rerun": 0, "mask_slope": 0.0, "protocol": "standard", "eval_set": "", "kernel": "torch", "autocast": ""}

    def check(self):
        return [(self.n_hidden >= 1, "n_hidden >= 1"), (self.epochs >= 0, "epochs >= 0"),
                (self.batch_size >= 1, "batch_size >= 1"), (self.lr > 0, "lr > 0"),
                (self.val_size >= 1, "val_size >= 1"), (self.n_train >= 0, "n_train >= 0"),
                (self.rerun >= 0, "rerun >= 0"),
                (self.mask_slope == 0 or (self.mask_slope > 1 and self.mode == "mask"),
                 "mask_slope 0, or > 1 with mode 'mask' (the final slope of the soft mask)"),
                (not self.eval_set or self.split == "test",
                 "eval_set only with split 'test' (an out-of-distribution test set scored instead of the test split)"),
                (self.kernel == "torch" or self.mode == "bias",
                 "kernel 'numba' with mode 'bias' (it is the bias step)"),
                (not self.autocast or self.mode == "full",
                 "autocast only with mode 'full' (the cached modes choose cache_dtype instead)")]


def split(cfg: Config):
    """Float tensors (N, 784) in [0, 1] and int64 labels: (x_train, y_train, x_eval, y_eval)."""
    if cfg.protocol == "reduced":
        return _reduced(cfg)
    imgs = data.load(cfg.dataset)
    x = torch.from_numpy(imgs.x_train.reshape(len(imgs.x_train), -1).astype(np.float32) / 255)
    y = torch.from_numpy(imgs.y_train)
    order = torch.randperm(len(x), generator=runtime.generator(cfg.seed, "split"))
    if cfg.split == "val":  # the held-out part of the training data; the test set is not touched
        if cfg.val_size >= len(x):
            raise ValueError(f"val_size={cfg.val_size} leaves no training data ({len(x)} examples)")
        x_ev, y_ev = x[order[:cfg.val_size]], y[order[:cfg.val_size]]
        order = order[cfg.val_size:]
    else:
        x_ev = torch.from_numpy(imgs.x_test.reshape(len(imgs.x_test), -1).astype(np.float32) / 255)
        y_ev = torch.from_numpy(imgs.y_test)
    if cfg.n_train:
        order = order[:cfg.n_train]
    if cfg.eval_set:  # another test set in place of this one's (its test split alone)
        x_ev, y_ev = _tensors(*data.load_test(cfg.eval_set))
    return x[order], y[order], x_ev, y_ev


def _tensors(x: np.ndarray, y: np.ndarray):
    return torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255), torch.from_numpy(y)


def _reduced(cfg: Config):
    """``split`` of the reduced protocol: the stratified parts of the test split (data.reduced_split), the
    inner ones when split == "val"; with ``eval_set``, that set's test images are scored instead."""
    tensors = _tensors
    x_all, y_all = data.load_test(cfg.dataset)
    parts = data.reduced_split(y_all)
    tr, ev = (parts["inner_train"], parts["inner_val"]) if cfg.split == "val" else (parts["train"], parts["test"])
    x, y = tensors(x_all[tr], y_all[tr])
    x_ev, y_ev = tensors(*data.load_test(cfg.eval_set)) if cfg.eval_set else tensors(x_all[ev], y_all[ev])
    order = torch.randperm(len(x), generator=runtime.generator(cfg.seed, "split"))
    if cfg.n_train:
        order = order[:cfg.n_train]
    return x[order], y[order], x_ev, y_ev


def project(x: torch.Tensor, W_in: torch.Tensor, dtype=torch.float32, chunk: int = 2048,
            device: torch.device | None = None) -> torch.Tensor:
    """The cached pre-activations P = x W_in^T, (N, n_hidden), computed in row chunks on W_in's device;
    P is kept on ``device`` (default: W_in's; the host when the GPU cannot hold it, see ``cache_devices``)."""
    P = torch.empty(len(x), W_in.shape[0], dtype=dtype, device=W_in.device if device is None else device)
    for i in range(0, len(x), chunk):
        P[i:i + chunk] = (x[i:i + chunk].to(W_in.device) @ W_in.T).to(dtype)
    return P


@torch.no_grad()
def bias_step(P: torch.Tensor, rows: torch.Tensor, y: torch.Tensor, b: torch.Tensor,
              W_out: torch.Tensor, c: torch.Tensor | None = None, slice_rows: int = 32,
              work: dict | None = None):
    """Mean cross-entropy of the batch ``rows`` of the cache P, and its gradient w.r.t. b.

    The same numbers as autograd through relu(P[rows] + b) W_out^T (+ c), without storing
    the (batch, n_hidden) activations: each slice of rows goes forward and backward while it
    is in the CPU cache, in a preallocated buffer (``work``, reused across calls):
        d loss / d b_j = (1/B) sum_n [h_nj > 0] sum_k g_nk W_out[k, j],  g = softmax - onehot.
    ``slice_rows``: runtime.slice_rows(device, batch size) (32 on a CPU, the whole batch on a GPU).
    Every tensor must be on one device (a host cache: move the batch first, ``batch_rows``).
    """
    if not P.device == rows.device == y.device == b.device == W_out.device:
        raise ValueError(f"bias_step: the cache is on {P.device}, the rows on {rows.device}, the labels on "
                         f"{y.device}, b on {b.device} and W_out on {W_out.device}: put them on one device")
    B, (K, H) = len(rows), W_out.shape
    work = {} if work is None else work
    if work.get("h") is None or work["h"].shape != (slice_rows, H) or work["h"].device != b.device:
        work["h"] = torch.empty(slice_rows, H, device=b.device)
    logits = torch.empty(B, K, device=b.device)
    onehot = F.one_hot(y, K).to(logits.dtype)
    GT = torch.zeros(K, H, device=b.device)                 # (n_out, n_hidden): sum_n g_nk [h_nj > 0]
    for i in range(0, B, slice_rows):
        r = rows[i:i + slice_rows]
        h = work["h"][:len(r)]
        torch.index_select(P, 0, r, out=h) if P.dtype == h.dtype else h.copy_(P[r])
        h.add_(b).relu_()                                   # (slice, n_hidden)
        L = logits[i:i + slice_rows]
        torch.mm(h, W_out.T, out=L)                         # (slice, n_out)
        if c is not None:
            L += c
        g = torch.softmax(L, 1).sub_(onehot[i:i + slice_rows])
        GT.addmm_(g.T, h.sign_())                           # h >= 0, so sign(h) = [h > 0]
    return F.cross_entropy(logits, y), (GT * W_out).sum(0) / B


@torch.no_grad()
def cached_logits(P: torch.Tensor, b: torch.Tensor, W_out: torch.Tensor, c: torch.Tensor | None = None,
                  slice_rows: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, n_out) of every row of the cache P, and which units were ever active (n_hidden,)."""
    h = torch.empty(min(slice_rows, len(P)), W_out.shape[1], device=b.device)
    logits, active = [], torch.zeros(W_out.shape[1], dtype=torch.bool, device=b.device)
    for i in range(0, len(P), slice_rows):
        hi = h[:len(P[i:i + slice_rows])]
        hi.copy_(P[i:i + slice_rows]).add_(b).relu_()      # (slice, n_hidden)
        y = hi @ W_out.T
        logits.append(y + c if c is not None else y)
        active |= (hi > 0).any(0)
    return torch.cat(logits), active


def _logits(model: nets.RandomMLP, x_or_P: torch.Tensor, cached: bool, chunk: int = 2048):
    """Logits of every row, and the units active on some row where the same pass gives them (bias-only
    over the cache), else None."""
    if cached and model.mode == "bias":
        return cached_logits(x_or_P, model.b, model.W_out, getattr(model, "c", None))
    f = (lambda P: model.head(P.float())) if cached else model
    return torch.cat([f(x_or_P[i:i + chunk].to(model.b.device)) for i in range(0, len(x_or_P), chunk)]), None


@torch.no_grad()
def _active(model: nets.RandomMLP, P: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """(n_hidden,) bool: units with a nonzero output on some row of the cache P (and, in mask
    mode, left on by the mask)."""
    on = torch.zeros(model.b.shape[0], dtype=torch.bool, device=model.b.device)
    for i in range(0, len(P), chunk):
        on |= ((P[i:i + chunk].to(model.b.device).float() + model.b) > 0).any(0)
    return on & (model.s > 0) if model.mode == "mask" else on


def optimizer(params, name: str, lr: float, dev: torch.device) -> torch.optim.Optimizer:
    """Adam (fused: one kernel per step instead of a dozen passes over the 25 million weights of a
    fully trained network, a third of its step time on a CPU; the same update, to rounding) or SGD."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, fused=dev.type in ("cpu", "cuda"))
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def cache_devices(n_train: int, n_eval: int, n_hidden: int, dtype: torch.dtype,
                  dev: torch.device) -> tuple[torch.device, torch.device]:
    """Where the cached projections of the training and the evaluation set go (``n_hidden`` columns of
    ``dtype`` each): both on ``dev`` if they fit in its free memory with room to spare
    (runtime.cache_placement; off CUDA, always), else the evaluation one in host memory and the
    training one on ``dev`` if it alone fits, else both in host memory. Anything in host memory is warned of."""
    free = runtime.free_bytes(dev)
    row = n_hidden * dtype.itemsize
    if free is None or runtime.cache_placement((n_train + n_eval) * row, free) == "device":
        return dev, dev
    host = torch.device("cpu")
    on_tr = dev if runtime.cache_placement(n_train * row, free) == "device" else host
    what = (f"the evaluation set's ({n_eval * row / 2**30:.1f} GiB) stays in host memory" if on_tr == dev else
            f"it stays in host memory and each mini-batch's rows are copied to {dev}")
    warnings.warn(f"the cached projection ({(n_train + n_eval) * row / 2**30:.1f} GiB) does not fit in the free "
                  f"memory of {dev} ({free / 2**30:.1f} GiB): {what} (slower, the same numbers)",
                  RuntimeWarning, stacklevel=2)
    return on_tr, host


def batch_rows(P: torch.Tensor, rows: torch.Tensor, dev: torch.device, work: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch ``rows`` (indices on P's device) of the cache P, as (cache, indices) on ``dev``: P and rows
    themselves when P is on ``dev``; else the rows gathered on the host into a pinned buffer (``work``, reused)
    and copied to ``dev``, with indices 0..B-1. Either way cache[indices] holds the same numbers."""
    if P.device == runtime.resolve(dev):
        return P, rows
    stage = work.get("stage")
    if stage is None or stage.shape[0] < len(rows) or stage.shape[1:] != P.shape[1:] or stage.dtype != P.dtype:
        pin = dev.type == "cuda" and torch.cuda.is_available()  # page-locked: a faster copy to the GPU
        stage = work["stage"] = torch.empty(len(rows), *P.shape[1:], dtype=P.dtype, pin_memory=pin)
        work["index"] = torch.arange(len(rows), device=dev)
    part = stage[:len(rows)]
    torch.index_select(P, 0, rows, out=part)
    # a blocking copy: the buffer is refilled by the next batch, so the copy must be done before that
    return part.to(dev), work["index"][:len(rows)]


def fast_step(step: str, X: torch.Tensor, rows: torch.Tensor, y: torch.Tensor, model, dev: torch.device,
              slice_rows: int, work: dict):
    """One bias-only step over the cache X (rows: indices on X's device): (loss, gradient w.r.t. model.b), by
    the compiled loop (``step`` "numba", CPU only) or bias_step (``step`` "torch", the batch moved to ``dev``
    first if X is in host memory)."""
    c = getattr(model, "c", None)
    if step == "numba":
        return kernel.bias_step(X, rows, y, model.b, model.W_out, c, work=work)
    P, r = batch_rows(X, rows, dev, work)
    return bias_step(P, r, y, model.b, model.W_out, c, slice_rows=slice_rows, work=work)


def _save_checkpoint(path, cfg: Config, epoch: int, model, opt, order_gen, curve, seconds: float) -> None:
    """Everything a run needs to go on after ``epoch`` as if it had not stopped (written atomically)."""
    import dataclasses
    import os
    tmp = f"{path}.tmp"
    torch.save({"config": dataclasses.asdict(cfg), "epoch": epoch, "model": model.state_dict(),
                "opt": opt.state_dict(), "order": order_gen.get_state(), "curve": curve, "seconds": seconds}, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path, cfg: Config, model, opt, order_gen, curve, dev) -> tuple[int, float]:
    """Restore a run saved by _save_checkpoint: (the first epoch still to train, seconds trained before)."""
    from .results import key

    state = torch.load(path, map_location=dev, weights_only=False)
    try:  # the same run: the same result key (a field added to Config since takes its default, as in results)
        same = key(type(cfg)(**state["config"])) == key(cfg)
    except (TypeError, ValueError):
        same = False
    if not same:
        raise ValueError(f"checkpoint {path} belongs to another config ({state['config']}): delete it to start afresh")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    order_gen.set_state(state["order"])
    curve.update(state["curve"])
    return state["epoch"] + 1, state["seconds"]


def train(cfg: Config, device: str = "auto", progress: bool = True, checkpoint=None) -> dict:
    """Train one network; returns {"metrics", "curve", "device", "arrays"} (see results.save) and
    "prior_seconds". ``checkpoint``: a file path; the run saves itself there after every epoch and, if
    the file exists when it starts, goes on from it (the same numbers as a run never stopped); the file
    is removed at the end."""
    import time
    from pathlib import Path

    from tqdm.auto import tqdm

    # the compiled step runs on the CPU: device "auto" means the CPU for it; a GPU asked for by name is refused
    dev = nets.device("cpu" if cfg.kernel == "numba" and device == "auto" else device)
    if cfg.kernel == "numba" and dev.type != "cpu":
        raise ValueError(f"kernel 'numba' runs on the CPU, and this run was asked to train on {dev}: use kernel "
                         f"'torch' there (the same numbers to rounding), or device 'cpu' or 'auto'")
    bf16 = dev.type == "cpu" or (dev.type == "cuda" and torch.cuda.is_bf16_supported())
    if cfg.autocast and not bf16:
        raise ValueError(f"autocast {cfg.autocast!r} runs on a CPU or a CUDA GPU with bfloat16, and this run was asked "
                         f"to train on {dev}: leave autocast at '' (float32) there")
    x_tr, y_tr, x_ev, y_ev = split(cfg)
    model = nets.RandomMLP(x_tr.shape[1], cfg.n_hidden, 10, cfg.mode, cfg.seed, cfg.init,
                           cfg.scale, cfg.out_bias, cfg.rerun).to(dev)
    y_tr, y_ev = y_tr.to(dev), y_ev.to(dev)
    fast, cached = cfg.mode == "bias", cfg.mode != "full"
    t0 = runtime.clock(dev)
    if cached:  # the input projection never changes: compute it once
        dtype = getattr(torch, cfg.cache_dtype)
        on_tr, on_ev = cache_devices(len(x_tr), len(x_ev), cfg.n_hidden, dtype, dev)  # a GPU too small: host
        X_tr, X_ev = project(x_tr, model.W_in, dtype, device=on_tr), project(x_ev, model.W_in, dtype, device=on_ev)
    else:
        X_tr, X_ev = x_tr.to(dev), x_ev.to(dev)
    setup_seconds = runtime.clock(dev) - t0
    params = list(model.parameters())
    opt = optimizer(params, cfg.optimizer, cfg.lr, dev)
    order_gen = runtime.generator(cfg.seed, f"order/rerun{cfg.rerun}" if cfg.rerun else "order")
    curve = {"epoch": [], "train_loss": [], "eval_acc": [], "eval_loss": [], "seconds": []}

    steps = cfg.epochs * -(-len(x_tr) // cfg.batch_size)  # the slope schedule of a soft mask: beta_t = beta^(t/T)
    start, prior, t_run = 1, 0.0, time.perf_counter()
    if checkpoint is not None and Path(checkpoint).exists():
        start, prior = _load_checkpoint(checkpoint, cfg, model, opt, order_gen, curve, dev)

    def precision():  # the forward pass's: float32, or bfloat16 under autocast (full mode)
        if cfg.autocast == "bfloat16":
            return torch.autocast(dev.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()  # (torch.autocast refuses some devices even when not enabled)

    def evaluate():
        model.slope = 0.0  # the test uses the hard mask
        with torch.no_grad(), precision():
            logits, active = _logits(model, X_ev, cached)
            logits = logits.float()  # bfloat16 under autocast
            return ((logits.argmax(1) == y_ev).float().mean().item(), F.cross_entropy(logits, y_ev).item(),
                    logits.argmax(1), active)

    n, work, slice_rows = len(X_tr), {}, runtime.slice_rows(dev, cfg.batch_size)
    for epoch in tqdm(range(start, cfg.epochs + 1), desc=f"{cfg.dataset} {cfg.mode} n={cfg.n_hidden} seed={cfg.seed}",
                      initial=start - 1, total=cfg.epochs, disable=not progress, leave=False):
        t = runtime.clock(dev)
        perm = torch.randperm(n, generator=order_gen)
        perm, perm_X = perm.to(dev), perm.to(X_tr.device)  # indices of the labels, of the cache (host or device)
        total = 0.0
        for i in range(0, n, cfg.batch_size):
            rows = perm[i:i + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            if cfg.mask_slope:
                step = (epoch - 1) * -(-n // cfg.batch_size) + i // cfg.batch_size
                model.slope = cfg.mask_slope ** (step / max(steps - 1, 1))
            if fast:
                loss, model.b.grad = fast_step(cfg.kernel, X_tr, perm_X[i:i + cfg.batch_size], y_tr[rows], model,
                                               dev, slice_rows, work)
            else:
                if cached:
                    P, r = batch_rows(X_tr, perm_X[i:i + cfg.batch_size], dev, work)
                    out = model.head(P[r].float())
                else:
                    with precision():
                        out = model(X_tr[rows])
                loss = F.cross_entropy(out.float(), y_tr[rows])
                loss.backward()
            opt.step()
            total += loss.item() * len(rows)
        acc, ev_loss, pred, active = evaluate()
        curve["epoch"].append(epoch)
        curve["train_loss"].append(total / n)
        curve["eval_acc"].append(acc)
        curve["eval_loss"].append(ev_loss)
        curve["seconds"].append(runtime.clock(dev) - t)
        if checkpoint is not None and epoch < cfg.epochs:
            _save_checkpoint(checkpoint, cfg, epoch, model, opt, order_gen, curve, prior + time.perf_counter() - t_run)
    if start > cfg.epochs:  # no epoch ran here (none asked, or all done before a stop): evaluate the final state
        acc, ev_loss, pred, active = evaluate()
    metrics = {"eval_acc": acc, "eval_loss": ev_loss, "n_trainable": model.n_trainable(),
               "n_train": n, "n_eval": len(X_ev), "setup_seconds": setup_seconds,
               "seconds_per_epoch": float(np.mean(curve["seconds"])) if curve["seconds"] else 0.0}
    arrays = {"pred": pred.to(torch.uint8).cpu().numpy()}  # the predicted class of every eval example
    if cfg.mode in ("bias", "mask"):  # which units the learned vector leaves on, on the eval set
        if active is None:  # mask mode: its evaluation pass does not count active units
            active = _active(model, X_ev)
        metrics["active_fraction"] = active.float().mean().item()
        arrays |= {"b": model.b.detach().cpu().numpy(), "active": np.packbits(active.cpu().numpy())}
        if cfg.mode == "mask":
            arrays["s"] = model.s.detach().cpu().numpy()
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    return {"metrics": metrics, "curve": curve, "device": str(dev), "arrays": arrays, "prior_seconds": prior}
