"""The book's dynamical systems: a sum of sines, the Lorenz attractor, the Hopf normal form; windows.

    sines(n, dt, phases)           sum of sine waves on the exact grid t = dt * arange(n)
    sines_autocorrelation(lag)     its autocorrelation at a lag (why "sines_coarse" samples every 0.5)
    lag1(signal)                   the lag-1 autocorrelation of a sampled signal, per coordinate
    lorenz(n, dt, x0)              the Lorenz system by classical RK4, sampled on t = dt * arange(n)
    hopf(n_steps)                  the Euler map of the Hopf normal form (the theory chapter's trajectory)
    series(task, seed, ...)        the whole signal of one run, deterministic in (task, seed)
    windows(lengths)               consecutive, non-overlapping slices: train | val | test
    pairs(signal, context)         (context of the previous values, next value) pairs inside one window

Everything here is a pure function of its arguments (numpy in, numpy out). The only random
numbers (sine phases, the Lorenz initial perturbation, the test noise) come from
``runtime.generator(seed, name)``, one stream per name, as every other random tensor of the book.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .runtime import generator

# Sum of sines: x(t) = sum_k A_k sin(w_k t + phi_k), phases phi_k drawn per seed. The angular
# frequencies are pairwise incommensurate, so the signal never repeats exactly; the period of
# the fastest wave is 2 pi / 3.7 = 1.7 time units = 17 samples at dt = 0.1.
SINES_OMEGA = (1.0, 2.3, 3.7)   # angular frequencies (rad per time unit)
SINES_AMP = (1.0, 0.6, 0.3)     # amplitudes (signal units)
SINES_DT = 0.1                   # sampling step (time units)
# The same sines sampled coarsely (task "sines_coarse", added 2026-12-01, issue 14): at dt = 0.1 the lag-1
# autocorrelation is 0.986, so predicting "no change" already explains 97% of the variance. At dt = 0.5 it is
# 0.69 (sines_autocorrelation), so "no change" explains 2 rho - 1 = 38%: the step was chosen as the round value
# that puts rho below 0.75 (persistence R² below 0.5) with a margin, and below the Nyquist limit of the fastest
# wave (pi / 3.7 = 0.85: 3.4 samples per period).
SINES_COARSE_DT = 0.5

# Lorenz (1963) with the paper's chaotic parameters.
SIGMA, RHO, BETA = 10.0, 28.0, 8.0 / 3.0
LORENZ_X0 = (1.0, 1.0, 1.0)      # base initial state (a tuple: never mutated); each seed perturbs it
LORENZ_DT = 0.02                 # sampling step (time units)
LORENZ_SUBSTEPS = 4              # RK4 steps per sample: integration step dt / 4 = 0.005
LORENZ_TRANSIENT = 20.0          # time units integrated and discarded, to land on the attractor
LYAPUNOV = 0.906                 # largest Lyapunov exponent (1 / time unit); 1 Lyapunov time = 1.10

TASKS = ("sines", "sines_coarse", "lorenz")
TASK_DT = {"sines": SINES_DT, "sines_coarse": SINES_COARSE_DT, "lorenz": LORENZ_DT}  # sampling step per task


def sines(n: int, dt: float = SINES_DT, phases=(0.0, 0.0, 0.0),
          omega=SINES_OMEGA, amp=SINES_AMP) -> np.ndarray:
    """Sum of sine waves at t = dt * arange(n): shape (n,)."""
    t = dt * np.arange(n)
    return sum(a * np.sin(w * t + p) for a, w, p in zip(amp, omega, phases))


def sines_autocorrelation(lag: float, omega=SINES_OMEGA, amp=SINES_AMP) -> float:
    """The autocorrelation of the sum of sines at a time lag, sum A_k^2 cos(w_k lag) / sum A_k^2 (the limit
    over a long window, for any phases: the waves' frequencies differ, so their cross terms average out)."""
    a2 = np.square(amp)
    return float((a2 * np.cos(np.multiply(omega, lag))).sum() / a2.sum())


def lag1(signal: np.ndarray) -> np.ndarray:
    """The lag-1 autocorrelation of each coordinate of a signal (n,) or (n, d): corr(x_t, x_(t-1)) -> (d,).
    Predicting "no change" on a stationary signal has R² close to 2 rho - 1."""
    x = signal.reshape(len(signal), -1)
    return np.array([np.corrcoef(x[1:, j], x[:-1, j])[0, 1] for j in range(x.shape[1])])


def lorenz_rhs(x: np.ndarray, sigma=SIGMA, rho=RHO, beta=BETA) -> np.ndarray:
    """The Lorenz vector field dx/dt at states x (..., 3)."""
    X, Y, Z = x[..., 0], x[..., 1], x[..., 2]
    return np.stack([sigma * (Y - X), X * (rho - Z) - Y, X * Y - beta * Z], axis=-1)


def lorenz(n: int, dt: float = LORENZ_DT, x0=LORENZ_X0, substeps: int = LORENZ_SUBSTEPS,
           transient: float = 0.0) -> np.ndarray:
    """The Lorenz trajectory (SIGMA, RHO, BETA) sampled at t = dt * arange(n) after ``transient`` time units: (n, 3).

    Classical fourth-order Runge-Kutta with the fixed step h = dt / substeps (float64). The
    transient is rounded to whole samples (``round(transient / dt)`` samples are discarded),
    so every returned sample lies on the exact grid; sample 0 is the state at that time.
    """
    if n < 1 or dt <= 0 or substeps < 1 or transient < 0:
        raise ValueError(f"lorenz needs n >= 1, dt > 0, substeps >= 1, transient >= 0 (got {n}, {dt}, {substeps}, {transient})")
    skip = int(round(transient / dt))
    h = dt / substeps
    x, y, z = (float(v) for v in x0)  # plain floats: the caller's initial state is never touched
    out = np.empty((skip + n, 3))
    out[0] = x, y, z

    def f(x, y, z):  # the vector field, as lorenz_rhs, on scalars (5x faster in this loop)
        return SIGMA * (y - x), x * (RHO - z) - y, x * y - BETA * z

    for i in range(1, skip + n):
        for _ in range(substeps):
            a1, b1, c1 = f(x, y, z)
            a2, b2, c2 = f(x + 0.5 * h * a1, y + 0.5 * h * b1, z + 0.5 * h * c1)
            a3, b3, c3 = f(x + 0.5 * h * a2, y + 0.5 * h * b2, z + 0.5 * h * c2)
            a4, b4, c4 = f(x + h * a3, y + h * b3, z + h * c3)
            x += h / 6 * (a1 + 2 * a2 + 2 * a3 + a4)
            y += h / 6 * (b1 + 2 * b2 + 2 * b3 + b4)
            z += h / 6 * (c1 + 2 * c2 + 2 * c3 + c4)
        out[i] = x, y, z
    return out[skip:]


def hopf(n_steps: int, z0=(0.2, 0.0), dt: float = 0.1, omega: float = 2 * math.pi / 2.5) -> np.ndarray:
    """A trajectory (n_steps, 2) of the Euler map of the Hopf normal form, z_{t+1} = F(z_t):
        u' = u + dt ((1 - r^2) u - omega v),   v' = v + dt ((1 - r^2) v + omega u),   r^2 = u^2 + v^2.
    From z0 it spirals out to a cycle near the unit circle, one turn every 25 steps (omega dt = 2 pi / 25)."""
    z = np.empty((n_steps, 2))
    z[0] = z0
    for t in range(n_steps - 1):
        u, v = z[t]
        r2 = u * u + v * v
        z[t + 1] = u + dt * ((1 - r2) * u - omega * v), v + dt * ((1 - r2) * v + omega * u)
    return z



def windows(lengths) -> list[slice]:
    """Consecutive slices of the given lengths, in order: no sample belongs to two windows."""
    starts = np.concatenate([[0], np.cumsum(lengths)])
    return [slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]


def pairs(signal: np.ndarray, context: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Every (previous ``context`` values, next value) pair inside one window.

    signal (n, d) -> X (n - context, context, d), Y (n - context, d); X[i] = signal[i:i+context],
    Y[i] = signal[i+context]. A window of n samples gives n - context pairs, all inside it.
    """
    signal = signal.reshape(len(signal), -1)
    if len(signal) <= context:
        raise ValueError(f"a window of {len(signal)} samples has no pair with a context of {context}")
    idx = np.arange(len(signal) - context)[:, None] + np.arange(context)  # (N, context)
    return signal[idx], signal[context:]


def _normal(seed: int, name: str, shape) -> np.ndarray:
    """N(0, 1) numbers (float64) from the stream (seed, name)."""
    return torch.randn(shape, generator=generator(seed, name), dtype=torch.float64).numpy()


def series(task: str, seed: int, n_pairs: tuple[int, int, int], context: int = 5,
           noise: float = 0.0) -> dict:
    """The signal of one run, split into train | val | test windows, and normalised.

    Each window holds ``n_pairs[k] + context`` samples, so it yields n_pairs[k] pairs of its
    own. ``task``: "sines" (step SINES_DT), "sines_coarse" (the same waves and phases, step SINES_COARSE_DT)
    or "lorenz". Deterministic in (task, seed): the seed draws the sine phases (uniform on [0, 2 pi))
    or a N(0, 1) perturbation of the Lorenz initial state, and the noise.

    ``noise``: standard deviation (signal units) of Gaussian noise added to the validation and
    test windows, never to the training window. Then every window is normalised with the
    training window's per-coordinate mean and standard deviation (no statistic of a held-out
    window is used). Returns {"train", "val", "test": (n, d) normalised noisy windows,
    "clean": {same without noise}, "mean", "std", "slices"}.
    """
    lengths = [p + context for p in n_pairs]
    n = sum(lengths)
    if task in ("sines", "sines_coarse"):  # the same phases per seed: the coarse signal is the same waves
        g = generator(seed, "sines/phase")
        phases = (torch.rand(len(SINES_OMEGA), generator=g, dtype=torch.float64) * 2 * np.pi).numpy()
        raw = sines(n, TASK_DT[task], tuple(phases))[:, None]                # (n, 1)
    elif task == "lorenz":
        x0 = np.array(LORENZ_X0) + _normal(seed, "lorenz/x0", (3,))
        raw = lorenz(n, LORENZ_DT, tuple(x0), LORENZ_SUBSTEPS, LORENZ_TRANSIENT)  # (n, 3)
    else:
        raise ValueError(f"unknown task {task!r}: use one of {TASKS}")
    noisy = raw + noise * _normal(seed, f"{task}/noise", raw.shape)
    sl = windows(lengths)
    mean, std = raw[sl[0]].mean(0), raw[sl[0]].std(0)
    norm = lambda a: (a - mean) / std  # noqa: E731
    out = {"clean": {}, "mean": mean, "std": std, "slices": dict(zip(("train", "val", "test"), sl))}
    for name, s in out["slices"].items():
        out[name] = norm(raw[s] if name == "train" else noisy[s])
        out["clean"][name] = norm(raw[s])
    return out

