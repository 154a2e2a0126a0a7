"""Recurrent networks on time series: next-step prediction from the previous five values.

    SeqConfig          the whole description of one RNN run (a frozen dataclass)
    train(config)      builds the signal, trains a RandomRNN (or fits the linear baseline), scores a
                       held-out window (experiments.run memoises it in results/; the presets are in presets.py)
    persistence(cfg)   the "no change" predictions x̂_t = x_(t-1) of the window a run scores
    skill(...)         a skill score relative to a reference predictor: 1 - MSE / MSE_reference
    skills(result)     a stored run's skill relative to persistence, from its stored predictions
    selection(df)      the learning-rate grid of a selection preset as a table, the winners marked
                       (what the recurrent and Lorenz chapters show)

Each example is a sequence of ``context`` previous values x_{t-5..t-1} (batch, 5, d) run
through the RNN from h = 0; the readout at the last step predicts x_t (batch, d). The loss
is the mean squared error in normalised units. Modes (see nets.RandomRNN):

    "bias"     only the hidden biases b are learned (Adam)          the paper's networks
    "full"     every weight and bias is learned (Adam)              the usual RNN
    "readout"  only W_out, by ridge regression on the last hidden   an echo-state network
               state, the penalty chosen on the validation window
    "linear"   no network (n_hidden = 0): ridge regression of x_t   a linear autoregression, the
               on the flattened context (context * d inputs) plus    baseline a network must beat
               an intercept, the penalty chosen as for "readout"     (added 2026-12-01, issue 14)

Every run also reports r2_persistence, the R² of predicting "no change" (x̂_t = x_(t-1)) on the
same window: the trivial predictor. ``skill`` puts a score beside it (1 - MSE / MSE_persistence).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from . import dynamics, nets
from .config import Base

MODES = ("bias", "full", "readout", "linear")  # the ways of training, in the order the chapters show them
BASELINE = "linear"                  # the mode that is no network: the linear autoregressive baseline
LABEL = {"linear": "linear autoregression", "persistence": "no change"}  # names of the baselines on pages
COLOUR = {"linear": "C4", "persistence": "grey"}
RIDGE_GRID = tuple(10.0 ** k for k in range(-10, 1))  # readout: penalties relative to mean diag(H^T H / N)
FREE_THRESHOLD = 0.4  # free run: "tracks" while |prediction - truth| / rms|truth| stays below this


@dataclass(frozen=True)
class SeqConfig(Base):
    experiment: str = "recurrent"    # folder under results/
    task: str = "sines"              # "sines", "sines_coarse" (1 coordinate) or "lorenz" (3 coordinates)
    mode: str = "bias"               # "bias" (hidden biases only), "full", "readout" (ridge), "linear" (no network)
    n_hidden: int = 1024             # hidden width (units); 0 for "linear"
    seed: int = 0                    # draws weights, initial biases, signal phases / initial state, noise, batches
    context: int = 5                 # previous values in each input sequence (the paper: 5)
    n_train: int = 2000              # pairs in the training window; the test window has as many
    n_val: int = 1000                # pairs in the validation window (between train and test)
    noise: float = 0.0               # s.d. of N(0, noise^2) added to val and test windows (signal units)
    split: str = "test"              # the window scored: "test", or "val" to choose settings
    steps: int = 2000                # Adam steps ("readout": unused)
    batch_size: int = 64             # pairs per step, drawn without replacement each pass
    lr: float = 1e-3                 # peak learning rate; cosine decay to 0 over the steps
    free_steps: int = 0              # free run after the training window (samples; 0: none)

    CHOICES = {"task": dynamics.TASKS, "mode": MODES, "split": ("test", "val")}

    def check(self):
        return [(self.n_hidden == 0 if self.mode == BASELINE else self.n_hidden >= 1,
                 f"n_hidden == 0 for mode {BASELINE!r} (no network), n_hidden >= 1 for the others"),
                (min(self.context, self.n_train, self.n_val, self.batch_size) >= 1,
                 "context, n_train, n_val, batch_size >= 1"),
                (self.steps >= 0 and self.lr > 0 and self.noise >= 0 and self.free_steps >= 0,
                 "steps >= 0, lr > 0, noise >= 0, free_steps >= 0"),
                (self.free_steps <= self.n_val + self.context,
                 f"free_steps <= n_val + context (the free run stays inside the {self.n_val + self.context} "
                 "samples that follow the training window)")]


def r2(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Coefficient of determination per coordinate: 1 - SS_res / SS_tot, (N, d) -> (d,)."""
    return 1 - ((pred - true) ** 2).sum(0) / ((true - true.mean(0)) ** 2).sum(0)


def skill(pred: np.ndarray, target: np.ndarray, reference: np.ndarray, axis=None):
    """Skill score relative to a reference predictor on the same pairs: 1 - MSE(pred) / MSE(reference).
    1: perfect; 0: no better than the reference; below 0: worse. ``axis=None``: the MSE over every pair
    and coordinate (the runs' "mse"); ``axis=0``: per coordinate, (N, d) -> (d,)."""
    return 1 - ((pred - target) ** 2).mean(axis) / ((reference - target) ** 2).mean(axis)


def skill_from_r2(r2_model, r2_reference):
    """The same skill from two R² of ONE coordinate against the same targets: both share the total
    variance, so 1 - MSE / MSE_ref = 1 - (1 - R²) / (1 - R²_ref) exactly. With several coordinates
    a run's r2 and r2_persistence are means over coordinates of different variances: use ``skills``."""
    return 1 - (1 - np.asarray(r2_model)) / (1 - np.asarray(r2_reference))


def persistence(cfg: SeqConfig) -> np.ndarray:
    """The "no change" predictions x̂_t = x_(t-1) of the pairs ``cfg`` scores (its split's window, noise
    included): (N, d). Rebuilt from the signal (deterministic in task and seed), since the stored
    arrays hold the targets but not the inputs; a run's r2_persistence is r2(persistence(cfg), target)."""
    return _persistence(cfg.task, cfg.seed, cfg.n_train, cfg.n_val, cfg.context, cfg.noise, cfg.split)


@functools.lru_cache(maxsize=64)
def _persistence(task, seed, n_train, n_val, context, noise, split):
    s = dynamics.series(task, seed, (n_train, n_val, n_train), context, noise)
    X = dynamics.pairs(s[split], context)[0]
    X.setflags(write=False)
    return X[:, -1]


def skills(result: dict, cfg: SeqConfig | None = None) -> dict:
    """A stored run's skill relative to persistence on its scored window, from its stored predictions
    and targets: {"skill": over every coordinate (1 - mse / MSE_persistence), and for d > 1 "skill_x",
    "skill_y", "skill_z" per coordinate}. ``cfg``: the run's config (default: from the result)."""
    from .experiments import config_of

    cfg = cfg or config_of(result)
    P, Y = result["arrays"]["pred"], result["arrays"]["target"]
    ref = persistence(cfg)
    out = {"skill": float(skill(P, Y, ref))}
    if Y.shape[1] > 1:
        out.update({f"skill_{n}": float(v) for n, v in zip(_names(Y.shape[1]), skill(P, Y, ref, axis=0))})
    return out


def _names(d):
    return ["x", "y", "z"] if d == 3 else [str(k) for k in range(d)]


class LinearAR(torch.nn.Module):
    """The linear baseline: x̂_t = W vec(x_(t-context), ..., x_(t-1)) + c, no network. Called like a
    RandomRNN (contexts (N, context, d) -> (N, 1, d): the prediction as the "last step"), so predict
    and free_run serve both."""

    def __init__(self, context: int, d: int):
        super().__init__()
        self.register_buffer("W", torch.zeros(d, context * d))
        self.register_buffer("c", torch.zeros(d))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return (X.reshape(len(X), -1) @ self.W.T + self.c)[:, None]

    def n_trainable(self) -> int:
        return self.W.numel() + self.c.numel()


@torch.no_grad()
def fit_linear(model: LinearAR, X: torch.Tensor, Y: torch.Tensor, X_val: torch.Tensor, Y_val: torch.Tensor) -> float:
    """Ridge regression of Y on the flattened contexts Z (float64), the intercept unpenalised (Z and Y
    centred on their training means): W = (Zc^T Zc / N + lam I)^-1 Zc^T Yc / N, lam = alpha * mean
    diag(Zc^T Zc / N), alpha from RIDGE_GRID by R² on the validation pairs (as fit_readout).
    Sets model.W and model.c in place; returns the chosen alpha."""
    Z, Zv = X.reshape(len(X), -1).double(), X_val.reshape(len(X_val), -1).double()
    Yd = Y.double()
    zm, ym = Z.mean(0), Yd.mean(0)
    Zc = Z - zm
    G, ZY = Zc.T @ Zc / len(Z), Zc.T @ (Yd - ym) / len(Z)            # (p, p), (p, d)
    scale, eye = G.diagonal().mean().clamp_min(1e-30), torch.eye(len(G), dtype=G.dtype, device=G.device)
    best = (-math.inf, None, None, None)
    for alpha in RIDGE_GRID:
        W = torch.linalg.solve(G + alpha * scale * eye, ZY)             # (p, d)
        c = ym - zm @ W
        score = float(np.mean(r2((Zv @ W + c).cpu().numpy(), Y_val.double().cpu().numpy())))
        if score > best[0]:
            best = (score, alpha, W, c)
    model.W.copy_(best[2].T.to(model.W.dtype))
    model.c.copy_(best[3].to(model.c.dtype))
    return best[1]


@torch.no_grad()
def predict(model: nets.RandomRNN | LinearAR, X: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Next-step predictions (N, d) for contexts X (N, context, d): the readout at the last step."""
    return torch.cat([model(X[i:i + chunk])[:, -1] for i in range(0, len(X), chunk)])


def fit(model: nets.RandomRNN, X: torch.Tensor, Y: torch.Tensor, cfg: SeqConfig,
        progress: bool = False) -> dict:
    """Adam on the mean squared error of the next step, over ``model.parameters()`` (what its mode
    learns), cosine learning-rate decay; mini-batches from a generator of (seed, "order").
    Returns the curve: mean training loss over each block of steps."""
    from tqdm.auto import tqdm

    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * k / max(cfg.steps, 1))))
    gen, perm, pos = nets.generator(cfg.seed, "order"), None, len(X)
    every = max(cfg.steps // 50, 1)
    curve, block = {"step": [], "train_loss": []}, []
    for step in tqdm(range(1, cfg.steps + 1), desc=f"{cfg.task} {cfg.mode} n={cfg.n_hidden} seed={cfg.seed}",
                     disable=not progress, leave=False):
        if pos + cfg.batch_size > len(X):  # a new pass over the training pairs
            perm, pos = torch.randperm(len(X), generator=gen).to(X.device), 0
        rows = perm[pos:pos + cfg.batch_size]
        pos += cfg.batch_size
        opt.zero_grad(set_to_none=True)
        loss = ((model(X[rows])[:, -1] - Y[rows]) ** 2).mean()
        loss.backward()
        opt.step()
        sched.step()
        block.append(loss.item())
        if step % every == 0 or step == cfg.steps:
            curve["step"].append(step)
            curve["train_loss"].append(float(np.mean(block)))
            block = []
    return curve


@torch.no_grad()
def fit_readout(model: nets.RandomRNN, X: torch.Tensor, Y: torch.Tensor, X_val: torch.Tensor,
                Y_val: torch.Tensor) -> float:
    """Ridge regression of Y on the last hidden state, W_out = Y^T H (H^T H + N lam I)^-1 (float64),
    lam = alpha * mean diag(H^T H / N), alpha from RIDGE_GRID by R² on the validation pairs.
    Sets model.W_out in place; returns the chosen alpha."""
    H = model.states(X)[:, -1].double()                                 # (N, n_hidden)
    Hv = model.states(X_val)[:, -1].double()
    G, HY = H.T @ H / len(H), H.T @ Y.double() / len(H)                 # (n_hidden, n_hidden), (n_hidden, d)
    scale, eye = G.diagonal().mean().clamp_min(1e-30), torch.eye(len(G), dtype=G.dtype, device=G.device)
    best = (-math.inf, None, None)
    for alpha in RIDGE_GRID:
        W = torch.linalg.solve(G + alpha * scale * eye, HY)             # (n_hidden, d)
        score = float(np.mean(r2((Hv @ W).cpu().numpy(), Y_val.double().cpu().numpy())))
        if score > best[0]:
            best = (score, alpha, W)
    model.W_out.copy_(best[2].T.to(model.W_out.dtype))
    return best[1]


@torch.no_grad()
def free_run(model: nets.RandomRNN | LinearAR, start: torch.Tensor, steps: int) -> torch.Tensor:
    """Run the network on its own predictions: start (context, d) true values, then each new
    prediction is appended and the oldest value dropped. Returns (steps, d)."""
    window, out = start.clone(), []
    for _ in range(steps):
        y = model(window[None])[0, -1]                                  # (d,)
        out.append(y)
        window = torch.cat([window[1:], y[None]])
    return torch.stack(out)


def tracking_steps(pred: np.ndarray, true: np.ndarray, threshold: float = FREE_THRESHOLD) -> int:
    """Samples before the error |pred - true| / rms|true| first exceeds ``threshold`` (all if never)."""
    err = np.linalg.norm(pred - true, axis=1) / np.sqrt((true ** 2).sum(1).mean())
    above = np.nonzero(err > threshold)[0]
    return int(above[0]) if len(above) else len(err)


def train(cfg: SeqConfig, device: str = "auto", progress: bool = True) -> dict:
    """Train one network; returns {"metrics", "curve", "device", "arrays"} (see results.save)."""
    dev = nets.device(device)
    s = dynamics.series(cfg.task, cfg.seed, (cfg.n_train, cfg.n_val, cfg.n_train), cfg.context, cfg.noise)
    T = lambda a: torch.as_tensor(a, dtype=torch.float32, device=dev)  # noqa: E731
    X, Y = map(T, dynamics.pairs(s["train"], cfg.context))             # (N, context, d), (N, d)
    X_val, Y_val = map(T, dynamics.pairs(s["val"], cfg.context))
    X_ev, Y_ev = dynamics.pairs(s[cfg.split], cfg.context)             # numpy: the scored window
    Y_clean = dynamics.pairs(s["clean"][cfg.split], cfg.context)[1]
    d = Y.shape[1]
    if cfg.mode == BASELINE:
        model = LinearAR(cfg.context, d).to(dev)
    else:
        model = nets.RandomRNN(d, cfg.n_hidden, d, cfg.mode, cfg.seed).to(dev)
    metrics = {"n_trainable": model.n_trainable(), "n_train": len(X), "n_eval": len(Y_ev)}
    if cfg.mode == "readout":
        metrics["ridge_alpha"] = fit_readout(model, X, Y, X_val, Y_val)
        curve = {}
    elif cfg.mode == BASELINE:
        metrics["ridge_alpha"] = fit_linear(model, X, Y, X_val, Y_val)
        curve = {}
    else:
        curve = fit(model, X, Y, cfg, progress)
    P = predict(model, T(X_ev)).cpu().numpy()                          # (N, d)
    names = _names(d)
    for key, target in (("r2", Y_ev), ("r2_clean", Y_clean)):
        per = r2(P, target)
        metrics[key] = float(per.mean())
        if d > 1:
            metrics.update({f"{key}_{n}": float(v) for n, v in zip(names, per)})
    metrics["r2_persistence"] = float(r2(X_ev[:, -1], Y_ev).mean())   # predict "no change": the floor
    metrics["mse"] = float(((P - Y_ev) ** 2).mean())
    arrays = {"pred": P, "target": Y_ev, "target_clean": Y_clean}
    if cfg.mode == "bias":
        arrays["b"] = model.b.detach().cpu().numpy()
    if cfg.free_steps:  # from the last `context` true samples of the training window, on its own
        free = free_run(model, T(s["train"][-cfg.context:]), cfg.free_steps).cpu().numpy()
        truth = s["clean"]["val"][:cfg.free_steps]  # what follows the training window, without noise
        steps = tracking_steps(free, truth)
        dt = dynamics.TASK_DT[cfg.task]
        metrics.update(free_steps_tracked=steps, free_time_tracked=steps * dt,
                       free_lyapunov_times=steps * dt * dynamics.LYAPUNOV)
        arrays.update(free=free, free_true=truth)
    return {"metrics": metrics, "curve": curve, "device": str(dev), "arrays": arrays}


SELECTED_BY = ("task", "mode", "n_hidden")  # a learning rate is chosen per task, mode and width


def selection(df):
    """The runs of a selection preset (``bl.collect("recurrent_selection" | "lorenz_selection", ...)``)
    as a table to show: a row per run in the preset's order, with width, mode, learning rate and
    validation R² ("not run" if absent); "chosen" marks the winner of each task, mode and width
    (report.winners, by R² on the validation window), and says so when it sits on an edge of the
    grid run for it (a better rate may lie beyond it)."""
    import pandas as pd

    from . import report

    done = df[df["stored"]] if len(df) else df
    best = report.winners(df, SELECTED_BY, "r2") if len(done) and "r2" in df else {}
    grids = df.groupby(list(SELECTED_BY))["lr"].apply(list).to_dict() if len(df) else {}
    rows = []
    for _, r in df.iterrows():
        key = tuple(r[k] for k in SELECTED_BY)
        chosen = bool(r["stored"]) and best.get(key) == r["lr"]
        mark = ("chosen" + (", on the edge of the grid" if report.on_edge(r["lr"], grids[key]) else "")) if chosen else ""
        rows.append({"width": r["n_hidden"], "mode": r["mode"], "learning rate": f"{r['lr']:g}",
                     "validation R²": report.num(r["r2"]) if r["stored"] else "not run", "chosen": mark})
    return pd.DataFrame(rows, columns=["width", "mode", "learning rate", "validation R²", "chosen"])
