"""Recurrent networks that generate and forecast: the long version's Figure 3 and its Lorenz forecast.

    GenConfig          one autonomous generation run: a cosine of period 25 or a van der Pol oscillator
    generate(cfg)      trains a RandomRNN that gets no input to produce the target from a fixed initial
                       state, runs it on past the training horizon, records its Jacobian during training
    ForecastConfig     one Lorenz forecast run: a coordinate tau samples ahead from its last `context` values
    forecast(cfg)      trains (or fits) it, scores R² with true inputs and the closed loop (own outputs)
    vanderpol(n, ...)  the van der Pol oscillator by classical RK4 on an exact grid
    jacobian(net, h)   d h_{t+1} / d h_t of a ReLU RNN at a state: diag(relu'(W_rec h + W_in x + b)) W_rec
    autocorrelation(x), hwhm(x)   the autocorrelation of a signal and the lag where it first falls to one half

Generation (no input after the initial state): h_{-1} = 0 in every mode, so h_0 = relu(b) and then
h_t = relu(W_rec h_{t-1} + b), y_t = W_out h_t. The initial state is the same zero vector for every mode
(nothing learns it); what a mode learns is set by nets.MODES: "bias" the biases b, "full" W_rec, W_in,
b and W_out (Adam, back-propagation through the whole training horizon), "readout" W_out alone by ridge
regression on the states (the network's dynamics are then those of its random draw). The recurrent
weights are N(0, gain^2 / n) (nets.RandomRNN ``gain``); W_out is N(0, 1 / n).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import dynamics, nets, report, seq
from .config import Base

# --- The targets ------------------------------------------------------------------------------------------

PERIOD = 25                      # cosine period (samples): y_t = cos(2 pi t / 25)
VDP_MU = 1.0                     # van der Pol: x'' - mu (1 - x^2) x' + x = 0, state (x, x')
VDP_DT = 0.25                    # sampling step (time units): its cycle (period 6.66 at mu = 1) is 26.7 samples
VDP_SUBSTEPS = 10                # RK4 steps per sample
VDP_X0 = (2.0, 0.0)              # initial state (a tuple: never mutated)
VDP_TRANSIENT = 50.0             # time units discarded: the trajectory starts on the limit cycle
VDP_PERIOD = 6.6633              # period of the limit cycle at mu = 1 (time units), for the Floquet product
TASKS = ("cosine", "vanderpol")
JAC_TIMES = 5                    # states of the last training period at which the Jacobian is recorded
JAC_AT = (0.0, 0.1, 0.3, 1.0)    # fractions of the training steps at which it is recorded


def vanderpol(n: int, dt: float = VDP_DT, mu: float = VDP_MU, x0=VDP_X0, substeps: int = VDP_SUBSTEPS,
              transient: float = 0.0) -> np.ndarray:
    """The van der Pol oscillator x' = y, y' = mu (1 - x^2) y - x sampled at t = dt * arange(n) after
    ``transient`` time units (rounded to whole samples): (n, 2). Classical RK4, fixed step dt / substeps."""
    if n < 1 or dt <= 0 or substeps < 1 or transient < 0:
        raise ValueError(f"vanderpol needs n >= 1, dt > 0, substeps >= 1, transient >= 0 (got {n}, {dt}, {substeps}, {transient})")
    skip, h = int(round(transient / dt)), dt / substeps
    x, y = (float(v) for v in x0)
    out = np.empty((skip + n, 2))
    out[0] = x, y

    def f(x, y):
        return y, mu * (1 - x * x) * y - x

    for i in range(1, skip + n):
        for _ in range(substeps):
            a1, b1 = f(x, y)
            a2, b2 = f(x + 0.5 * h * a1, y + 0.5 * h * b1)
            a3, b3 = f(x + 0.5 * h * a2, y + 0.5 * h * b2)
            a4, b4 = f(x + h * a3, y + h * b3)
            x += h / 6 * (a1 + 2 * a2 + 2 * a3 + a4)
            y += h / 6 * (b1 + 2 * b2 + 2 * b3 + b4)
        out[i] = x, y
    return out[skip:]


def target(task: str, n: int, horizon: int) -> np.ndarray:
    """The first n samples of a generation target, (n, d), normalised by the training horizon's mean and
    standard deviation per coordinate (the cosine: 0 and 1/sqrt(2) over whole periods)."""
    if task == "cosine":
        raw = np.cos(2 * np.pi * np.arange(n) / PERIOD)[:, None]
    elif task == "vanderpol":
        raw = vanderpol(n, transient=VDP_TRANSIENT)
    else:
        raise ValueError(f"unknown task {task!r}: use one of {TASKS}")
    m, s = raw[:horizon].mean(0), raw[:horizon].std(0)
    return (raw - m) / s


def period(task: str) -> int:
    """The target's period in whole samples (the Floquet product runs over this many steps)."""
    return PERIOD if task == "cosine" else int(round(VDP_PERIOD / VDP_DT))


# --- Autocorrelation --------------------------------------------------------------------------------------

def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelation of a 1-D signal at lags 0..max_lag: mean((x_t - m)(x_{t+k} - m)) / var(x)."""
    v = np.asarray(x, dtype=float) - np.mean(x)
    if max_lag >= len(v) or max_lag < 1:
        raise ValueError(f"max_lag {max_lag} must be between 1 and len(x) - 1 = {len(v) - 1}")
    return np.array([(v[:len(v) - k] * v[k:]).mean() for k in range(max_lag + 1)]) / v.var()


def hwhm(x: np.ndarray, max_lag: int = 1000) -> int:
    """The half-width at half-maximum of a signal's autocorrelation: the first lag (samples) at which it
    is at most 0.5 (the paper's tau)."""
    ac = autocorrelation(x, min(max_lag, len(x) - 1))
    below = np.nonzero(ac <= 0.5)[0]
    if not len(below):
        raise ValueError(f"the autocorrelation stays above 0.5 up to lag {len(ac) - 1}: give a longer signal")
    return int(below[0])


def lorenz_tau(n: int = 50_000, coordinate: int = 0) -> int:
    """tau of a Lorenz coordinate at the book's sampling step (dynamics.LORENZ_DT), from a long trajectory
    (n samples after the transient, from dynamics.LORENZ_X0)."""
    x = dynamics.lorenz(n, dynamics.LORENZ_DT, dynamics.LORENZ_X0, dynamics.LORENZ_SUBSTEPS, dynamics.LORENZ_TRANSIENT)
    return hwhm(x[:, coordinate], 200)


# --- The Jacobian -----------------------------------------------------------------------------------------

def jacobian(net: nets.RandomRNN, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
    """d h_{t+1} / d h_t at state h (n,) with input x (n_in,) (zero if None): diag(relu'(pre)) W_rec, (n, n).
    relu'(0) is taken as 0, as torch's autograd does."""
    x = torch.zeros(net.W_in.shape[1], device=h.device) if x is None else x
    pre = net.W_rec @ h + net.W_in @ x + net.b
    return (pre > 0).to(h.dtype)[:, None] * net.W_rec


@torch.no_grad()
def spectrum(net: nets.RandomRNN, H: torch.Tensor, task: str, horizon: int) -> dict:
    """Eigenvalues of the Jacobian at JAC_TIMES states of the last training period of the trajectory H
    (time, n), their mean spectral radius, and the largest Floquet multiplier: the modulus of the top
    eigenvalue of the product of the Jacobians over one period ending at the horizon (1 on a limit cycle)."""
    P = period(task)
    times = np.linspace(horizon - P, horizon - 1, JAC_TIMES).round().astype(int)
    if not all(torch.isfinite(t).all() for t in (net.W_rec, net.W_in, net.b)):  # a diverged network: no spectrum
        return {"eig": np.full((JAC_TIMES, H.shape[1]), np.nan + 0j), "radius": math.nan, "floquet": math.nan}
    eig = torch.stack([torch.linalg.eigvals(jacobian(net, H[t - 1]).double()) for t in times]).cpu().numpy()
    M = torch.eye(H.shape[1], dtype=torch.float64, device=H.device)
    for t in range(horizon - P, horizon):
        M = jacobian(net, H[t - 1]).double() @ M
    floquet = float(torch.linalg.eigvals(M).abs().max()) if torch.isfinite(M).all() else math.inf
    return {"eig": eig, "radius": float(np.abs(eig).max(1).mean()), "floquet": floquet}


# --- Generation runs --------------------------------------------------------------------------------------

GEN_MODES = ("bias", "full", "readout")


@dataclass(frozen=True)
class GenConfig(Base):
    experiment: str = "generation"   # folder under results/
    task: str = "cosine"             # "cosine" (period 25 samples) or "vanderpol" (state (x, x'), mu = VDP_MU)
    mode: str = "bias"               # "bias", "full" (Adam, BPTT) or "readout" (ridge on the states)
    n_hidden: int = 200              # width (units)
    gain: float = 1.5                # W_rec ~ N(0, gain^2 / n_hidden)
    seed: int = 0                    # draws every weight and the initial biases
    horizon: int = 100               # training samples (4 cosine periods); no input at any step
    n_val: int = 100                 # samples after the horizon: the validation segment (choosing rates)
    n_test: int = 200                # samples after the validation segment: the test segment
    split: str = "test"              # the segment scored as "r2": "test", or "val" to choose settings
    steps: int = 1500                # Adam steps (full-batch: the one trajectory); "readout": unused
    lr: float = 1e-2                 # peak learning rate, cosine decay to 0
    clip: float = 1.0                # gradient norm clipped to this (ReLU RNNs can explode)

    CHOICES = {"task": TASKS, "mode": GEN_MODES, "split": ("test", "val")}

    def check(self):
        return [(self.n_hidden >= 1 and self.gain > 0, "n_hidden >= 1, gain > 0"),
                (self.horizon > PERIOD + 1 and self.n_val >= 1 and self.n_test >= 1,
                 f"horizon > {PERIOD + 1} (the Jacobian is read over its last period), n_val, n_test >= 1"),
                (self.steps >= 0 and self.lr > 0 and self.clip > 0, "steps >= 0, lr > 0, clip > 0")]


def _r2(pred: np.ndarray, true: np.ndarray) -> float:
    """R² over a segment (mean over coordinates), a non-finite prediction counted as a huge error."""
    return float(seq.r2(np.nan_to_num(pred.astype(float), nan=1e6, posinf=1e6, neginf=-1e6), true).mean())


def _ridge(H: np.ndarray, Y: np.ndarray, Hv: np.ndarray, Yv: np.ndarray) -> tuple[np.ndarray, float]:
    """W_out (d, n) by ridge regression of Y on H, the penalty from seq.RIDGE_GRID by R² on (Hv, Yv)."""
    G, HY = H.T @ H / len(H), H.T @ Y / len(H)
    scale = max(np.diag(G).mean(), 1e-30)
    best = (-math.inf, None, None)
    for alpha in seq.RIDGE_GRID:
        W = np.linalg.solve(G + alpha * scale * np.eye(len(G)), HY)
        score = _r2(Hv @ W, Yv)
        if score > best[0]:
            best = (score, W, alpha)
    return best[1].T, best[2]


def generate(cfg: GenConfig, device: str = "auto", progress: bool = False) -> dict:
    """Train one generator; returns {"metrics", "curve", "device", "arrays"} (see results.save).

    metrics: r2 (the scored segment), r2_train (the horizon), r2_val, r2_test, r2_mean (the constant
    predictor, the horizon's mean, on the scored segment), n_trainable, radius_* / floquet_* at the start
    and end of training (gap_*: |radius - 1|), ridge_alpha (readout)."""
    from tqdm.auto import tqdm

    dev = nets.device(device)
    T, n_total = cfg.horizon, cfg.horizon + cfg.n_val + cfg.n_test
    Y = torch.as_tensor(target(cfg.task, n_total, T), dtype=torch.float32, device=dev)  # (n_total, d)
    d = Y.shape[1]
    net = nets.RandomRNN(1, cfg.n_hidden, d, cfg.mode, cfg.seed, init="gaussian", scale=1.0, gain=cfg.gain).to(dev)
    x = torch.zeros(1, n_total, 1, device=dev)             # (batch, time, n_in): no input at any step
    h0 = torch.zeros(1, cfg.n_hidden, device=dev)          # the initial state, the same for every mode
    seg = {"train": slice(0, T), "val": slice(T, T + cfg.n_val), "test": slice(T + cfg.n_val, n_total)}
    Yn = Y.cpu().numpy()
    params = [p for name, p in net.named_parameters() if name != "h0"]  # h0 is fixed at zero here
    metrics = {"n_trainable": sum(p.numel() for p in params)}

    @torch.no_grad()
    def run_all():
        H = net.states(x, h0)[0]                           # (n_total, n_hidden)
        return H, (H @ net.W_out.T).cpu().numpy()          # (n_total, d)

    def scores(y):
        return {k: _r2(y[s], Yn[s]) for k, s in seg.items()}

    spectra, at = [], []                                   # Jacobian spectra and the fractions of training they were taken at
    curve = {"step": [], "train_loss": [], "r2_val": [], "r2_test": []}
    if cfg.mode == "readout":
        H, _ = run_all()
        Hn = H.double().cpu().numpy()
        W, metrics["ridge_alpha"] = _ridge(Hn[seg["train"]], Yn[seg["train"]].astype(float),
                                           Hn[seg["val"]], Yn[seg["val"]].astype(float))
        with torch.no_grad():
            net.W_out.copy_(torch.as_tensor(W, dtype=torch.float32, device=dev))
        spectra.append(spectrum(net, H, cfg.task, T))
        at.append(0.0)
    else:
        opt = torch.optim.Adam(params, lr=cfg.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * k / max(cfg.steps, 1))))
        marks = sorted({int(round(f * cfg.steps)) for f in JAC_AT})
        every, block = max(cfg.steps // 50, 1), []
        for step in tqdm(range(cfg.steps + 1), desc=f"{cfg.task} {cfg.mode} g={cfg.gain} seed={cfg.seed}",
                         disable=not progress, leave=False):
            if step in marks or step % every == 0:
                H, y = run_all()
                if step in marks:
                    spectra.append(spectrum(net, H, cfg.task, T))
                    at.append(step / max(cfg.steps, 1))
                if step % every == 0 or step == cfg.steps:
                    sc = scores(y)
                    curve["step"].append(step)
                    curve["train_loss"].append(float(np.mean(block)) if block else float(((y[:T] - Yn[:T]) ** 2).mean()))
                    curve["r2_val"].append(sc["val"])
                    curve["r2_test"].append(sc["test"])
                    block = []
            if step == cfg.steps:
                break
            opt.zero_grad(set_to_none=True)
            loss = ((net(x[:, :T], h0)[0] - Y[:T]) ** 2).mean()
            if not torch.isfinite(loss):  # the network blew up: stop here, keep its last finite parameters
                metrics["diverged_at"] = step
                break
            loss.backward()
            if not torch.isfinite(nets.clip_grad_norm(params, cfg.clip)):  # an infinite gradient: the same
                metrics["diverged_at"] = step
                break
            opt.step()
            sched.step()
            block.append(min(loss.item(), 1e12))
    H, y = run_all()
    sc = scores(y)
    mean = Yn[seg["train"]].mean(0, keepdims=True)
    metrics.update(r2=sc[cfg.split], r2_train=sc["train"], r2_val=sc["val"], r2_test=sc["test"],
                   r2_mean=_r2(np.repeat(mean, len(Yn[seg[cfg.split]]), 0), Yn[seg[cfg.split]]))
    if "diverged_at" in metrics:  # the spectrum where training stopped
        spectra.append(spectrum(net, H, cfg.task, T))
        at.append(metrics["diverged_at"] / max(cfg.steps, 1))
    metrics.setdefault("diverged_at", -1)                 # -1: never
    first, last = spectra[0], spectra[-1]
    metrics.update(radius_init=first["radius"], radius_final=last["radius"], gap_init=abs(first["radius"] - 1),
                   gap_final=abs(last["radius"] - 1), floquet_init=first["floquet"], floquet_final=last["floquet"])
    eig = np.stack([s["eig"] for s in spectra])            # (checkpoints, JAC_TIMES, n_hidden)
    arrays = {"y": y, "target": Yn, "eig_re": eig.real, "eig_im": eig.imag,
              "eig_at": np.array(at)}
    if cfg.mode == "bias":
        arrays["b"] = net.b.detach().cpu().numpy()
    return {"metrics": metrics, "curve": curve, "device": str(dev), "arrays": arrays}


# --- Lorenz forecasting tau samples ahead -----------------------------------------------------------------

FORECAST_MODES = ("bias", "full", "readout", "linear")
COORDINATES = ("x", "y", "z")


@dataclass(frozen=True)
class ForecastConfig(Base):
    experiment: str = "forecast"     # folder under results/
    task: str = "lorenz"             # the signal (dynamics.series); seq.fit reads it for its progress bar
    coordinate: str = "x"            # the coordinate fed in and forecast
    tau: int = 13                    # samples ahead (presets.FORECAST_TAU: the HWHM of its autocorrelation)
    mode: str = "bias"               # "bias", "full" (Adam), "readout" (ridge), "linear" (ridge on the context)
    n_hidden: int = 1024             # width (units); 0 for "linear"
    seed: int = 0                    # draws the weights, the initial biases, the Lorenz start, the batches
    context: int = 13                # past values fed in per forecast (samples)
    n_train: int = 2000              # pairs in the training window
    n_val: int = 1000                # pairs in the validation window (between train and test)
    n_test: int = 2000               # pairs in the test window
    split: str = "test"              # the window scored: "test", or "val" to choose settings
    steps: int = 1000                # Adam steps
    batch_size: int = 64             # pairs per step
    lr: float = 1e-3                 # peak learning rate, cosine decay to 0
    closed: int = 250                # closed-loop samples from each start (own outputs as inputs)
    starts: int = 10                 # closed-loop starts, evenly spaced in the scored window

    CHOICES = {"task": ("lorenz",), "coordinate": COORDINATES, "mode": FORECAST_MODES, "split": ("test", "val")}

    def check(self):
        return [(self.n_hidden == 0 if self.mode == "linear" else self.n_hidden >= 1,
                 "n_hidden == 0 for mode 'linear' (no network), n_hidden >= 1 for the others"),
                (min(self.tau, self.context, self.n_train, self.n_val, self.n_test, self.batch_size, self.starts) >= 1,
                 "tau, context, n_train, n_val, n_test, batch_size, starts >= 1"),
                (self.steps >= 0 and self.lr > 0 and self.closed >= 1, "steps >= 0, lr > 0, closed >= 1"),
                (self.closed + self.tau + self.context <= min(self.n_val, self.n_test),
                 "closed + tau + context <= n_val and n_test (every closed loop stays inside its window)")]


def ahead_pairs(signal: np.ndarray, context: int, tau: int) -> tuple[np.ndarray, np.ndarray]:
    """(last ``context`` values, the value ``tau`` samples after the last) pairs inside one window:
    signal (n,) -> X (n - context - tau + 1, context, 1), Y (same, 1); X[i] = s[i:i+context],
    Y[i] = s[i + context - 1 + tau]."""
    X, _ = dynamics.pairs(signal[:len(signal) - tau + 1], context)  # contexts whose target lies inside
    return X, signal[context - 1 + tau:].reshape(-1, 1)


def closed_loop(step, signal: np.ndarray, starts, tau: int, context: int, steps: int) -> np.ndarray:
    """Forecasts fed back as inputs: from each start t0 (true values before t0 only), the value at t0 + j
    is ``step`` (windows (K, context) -> (K,)) of the window ending at t0 + j - tau, which holds earlier
    forecasts once j >= tau. Returns (K, steps): row k is the forecast of signal[t0_k : t0_k + steps]."""
    lead = tau + context - 1
    B = np.zeros((len(starts), lead + steps))
    for k, t0 in enumerate(starts):
        if t0 < lead or t0 + steps > len(signal):
            raise ValueError(f"start {t0} needs {lead} true values before it and {steps} after it")
        B[k, :lead] = signal[t0 - lead:t0]
    for j in range(steps):
        B[:, lead + j] = step(B[:, j:j + context])
    return B[:, lead:]


def forecast(cfg: ForecastConfig, device: str = "auto", progress: bool = False) -> dict:
    """Train one forecaster; returns {"metrics", "curve", "device", "arrays"}.

    metrics: r2 (true inputs, the scored window), r2_persistence (x̂_{t+tau} = x_t), skill (relative to
    persistence), closed_err_tau / closed_err_3tau (closed-loop RMS error in units of the signal's s.d. at
    leads tau and 3 tau), closed_lyapunov_times (lead before that error first exceeds seq.FREE_THRESHOLD),
    the same for persistence, n_trainable, ridge_alpha (readout, linear)."""
    dev = nets.device(device)
    j = COORDINATES.index(cfg.coordinate)
    extra = cfg.tau - 1
    s = dynamics.series("lorenz", cfg.seed, (cfg.n_train + extra, cfg.n_val + extra, cfg.n_test + extra), cfg.context)
    sig = {k: s[k][:, j] for k in ("train", "val", "test")}
    T = lambda a: torch.as_tensor(a, dtype=torch.float32, device=dev)  # noqa: E731
    X, Y = map(T, ahead_pairs(sig["train"], cfg.context, cfg.tau))
    X_val, Y_val = map(T, ahead_pairs(sig["val"], cfg.context, cfg.tau))
    X_ev, Y_ev = ahead_pairs(sig[cfg.split], cfg.context, cfg.tau)
    if cfg.mode == "linear":
        model = seq.LinearAR(cfg.context, 1).to(dev)
    else:
        model = nets.RandomRNN(1, cfg.n_hidden, 1, cfg.mode, cfg.seed).to(dev)
    metrics, curve = {"n_trainable": model.n_trainable(), "n_train": len(X), "n_eval": len(Y_ev)}, {}
    if cfg.mode == "readout":
        metrics["ridge_alpha"] = seq.fit_readout(model, X, Y, X_val, Y_val)
    elif cfg.mode == "linear":
        metrics["ridge_alpha"] = seq.fit_linear(model, X, Y, X_val, Y_val)
    else:
        curve = seq.fit(model, X, Y, cfg, progress)
    P = seq.predict(model, T(X_ev)).cpu().numpy()          # (N, 1)
    ref = X_ev[:, -1]                                      # persistence: x̂_{t+tau} = x_t
    metrics.update(r2=float(seq.r2(P, Y_ev)[0]), r2_persistence=float(seq.r2(ref, Y_ev)[0]),
                   skill=float(seq.skill(P, Y_ev, ref)), mse=float(((P - Y_ev) ** 2).mean()))
    # closed loop from `starts` points of the scored window, evenly spaced
    w = sig[cfg.split]
    t0 = np.linspace(cfg.tau + cfg.context - 1, len(w) - cfg.closed, cfg.starts).round().astype(int)
    truth = np.stack([w[t:t + cfg.closed] for t in t0])   # (starts, closed)
    sd = w.std()
    net_step = lambda win: seq.predict(model, T(win[..., None])).cpu().numpy()[:, 0]  # noqa: E731
    arrays = {"pred": P, "target": Y_ev}
    for name, fn in (("", net_step), ("_persistence", lambda win: win[:, -1])):
        F = closed_loop(fn, w, t0, cfg.tau, cfg.context, cfg.closed)
        err = np.sqrt(((F - truth) ** 2).mean(0)) / sd    # (closed,): lead j + 1 samples
        above = np.nonzero(err > seq.FREE_THRESHOLD)[0]
        lead = int(above[0]) if len(above) else cfg.closed
        metrics.update({f"closed_err_tau{name}": float(err[cfg.tau - 1]),
                        f"closed_err_3tau{name}": float(err[min(3 * cfg.tau, cfg.closed) - 1]),
                        f"closed_lyapunov_times{name}": lead * dynamics.LORENZ_DT * dynamics.LYAPUNOV})
        arrays[f"closed_err{name}"] = err
        if not name:
            arrays["closed"], arrays["closed_true"] = F, truth
    return {"metrics": metrics, "curve": curve, "device": str(dev), "arrays": arrays}


def lead_lyapunov(n: int) -> np.ndarray:
    """Leads 1..n samples in Lyapunov times (dynamics.LORENZ_DT, dynamics.LYAPUNOV)."""
    return np.arange(1, n + 1) * dynamics.LORENZ_DT * dynamics.LYAPUNOV


RUNNERS = {GenConfig: generate, ForecastConfig: forecast}


# --- What the chapter reads -------------------------------------------------------------------------------

def eigenvalues(result: dict) -> np.ndarray:
    """A stored generator's Jacobian eigenvalues, complex (checkpoints, JAC_TIMES, n_hidden); the fractions of
    training at which they were taken are result["arrays"]["eig_at"]."""
    a = result["arrays"]
    return a["eig_re"] + 1j * a["eig_im"]


def by_value(df, x: str, metric: str) -> "pd.DataFrame":
    """Per mode and value of column ``x`` of the stored runs in ``df``: median, quartiles and count of ``metric``
    (a row per (mode, x), sorted), the gain sweep's summary."""
    import pandas as pd

    done = df[df["stored"]] if len(df) else df
    rows = []
    for (mode, v), g in (done.groupby(["mode", x]) if len(done) else []):
        med, q1, q3, n = report.median_iqr(g[metric])
        rows.append({"mode": mode, x: v, "median": med, "q1": q1, "q3": q3, "n": n})
    return pd.DataFrame(rows, columns=["mode", x, "median", "q1", "q3", "n"])


def fmt_median(values, digits: int = 4, n: bool = True) -> str:
    """"median [first quartile, third quartile] (n=count)" of some values, or "-"; a value beyond ±1,000 (a network
    that blew up) in scientific notation. For heavy-tailed scores such as the R² of a generator that diverges."""
    med, q1, q3, k = report.median_iqr(values)
    if not k:
        return "-"
    return f"{report.num(med, digits)} [{report.num(q1, digits)}, {report.num(q3, digits)}]" + (f" (n={k})" if n else "")
