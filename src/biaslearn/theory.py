"""The proof of the feed-forward lemma, run as code, and the gradient-trained comparison.

The lemma's argument (Williams et al., Lemma 0.1): a small ReLU network with bounded weights,
    f(x) = sum_i a_i relu(w_i x + c_i),   |w_i|, |a_i| <= gamma,
is approximated by a wide random network whose input and output weights are i.i.d. uniform on
[-R, R] (R > gamma) by choosing biases only: for each small unit i pick a random unit j whose
(w_in_j, w_out_j) lies within eps of (w_i, a_i), give it the bias c_i, and silence every other
unit with a bias so negative that it is never active on the input domain. ``match`` does exactly
that (no gradient descent); ``fit_bias`` trains the biases of the same random network by
gradient descent instead. Both are scored by the sup error on a fine grid of [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import nets, results

GAMMA, R = 0.9, 1.0   # bound of the small network's weights; half-width of the random weights
GRID = np.linspace(-1, 1, 401)  # where functions are compared (the compact domain [-1, 1])


def target(x: np.ndarray) -> np.ndarray:
    """The continuous target of this chapter: a smooth bump-and-wiggle on [-1, 1], |g| <= 0.5."""
    return 0.3 * np.sin(3 * x) + 0.2 * np.cos(5 * x)


def small_network(m: int = 16):
    """A bounded small ReLU network fitted to ``target``: (w, c, a), each of shape (m,), |.| <= GAMMA.

    Input weights and biases are fixed on a grid (kinks spread over [-1, 1], both slopes);
    output weights are least-squares fitted under the bound |a_i| <= GAMMA.
    """
    from scipy.optimize import lsq_linear

    k = np.linspace(-1, 1, m // 2 + 2)[1:-1]           # kink positions
    w = np.concatenate([np.full(len(k), GAMMA), np.full(len(k), -GAMMA)])
    c = np.concatenate([-GAMMA * k, GAMMA * k])         # relu(w x + c) has its kink at x = k
    H = np.maximum(np.outer(GRID, w) + c, 0)            # (grid, m)
    a = lsq_linear(H, target(GRID), bounds=(-GAMMA, GAMMA)).x
    return w, c, a


def evaluate(w, c, a, x=GRID) -> np.ndarray:
    return np.maximum(np.outer(x, w) + c, 0) @ a


def match(n_hidden: int, eps: float, seed: int, m: int = 16) -> dict:
    """The proof's construction on one random network of width n_hidden.

    Returns whether every small unit found a partner within eps (in both weights), and the
    sup error of the random network with the constructed biases (inf if a unit is unmatched).
    """
    w, c, a = small_network(m)
    w_in = nets.draw((n_hidden,), seed, "W_in", "uniform", R).numpy().astype(np.float64)
    w_out = nets.draw((n_hidden,), seed, "W_out", "uniform", R).numpy().astype(np.float64)
    b = np.full(n_hidden, -2 * R)  # below -|w_in x| for every x in [-1, 1]: silenced
    free = np.ones(n_hidden, bool)
    for i in range(m):
        d = np.maximum(abs(w_in - w[i]), abs(w_out - a[i]))
        d[~free] = np.inf
        j = int(np.argmin(d))
        if d[j] > eps:
            return {"success": False, "sup_error": float("inf"), "active": int((~free).sum())}
        free[j], b[j] = False, c[i]
    err = np.abs(evaluate(w_in, b, w_out) - target(GRID)).max()
    return {"success": True, "sup_error": float(err), "active": int((~free).sum())}


@dataclass(frozen=True)
class TheoryConfig:
    experiment: str = "theory"       # folder under results/
    method: str = "match"            # "match" (the proof's construction) or "gradient" (Adam on the biases)
    n_hidden: int = 1000             # width of the random network
    eps: float = 0.05                # match: tolerance on each weight
    draws: int = 100                 # match: random networks drawn (seeds seed .. seed + draws - 1)
    steps: int = 1500                # gradient: Adam steps on the mean squared error over GRID
    lr: float = 0.01                 # gradient: learning rate
    seed: int = 0                    # first weight draw

    def __post_init__(self):
        if self.method not in ("match", "gradient"):
            raise ValueError(f"TheoryConfig.method={self.method!r}: use 'match' or 'gradient'")
        if self.n_hidden < 1 or self.eps <= 0 or self.draws < 1 or self.steps < 0 or self.lr <= 0:
            raise ValueError(f"TheoryConfig needs n_hidden >= 1, eps > 0, draws >= 1, steps >= 0, lr > 0: {self}")


def fit_bias(n_hidden: int, seed: int, steps: int, lr: float) -> dict:
    """Gradient descent on the hidden biases of the same random network (weights U[-R, R])."""
    net = nets.RandomMLP(1, n_hidden, 1, "bias", seed=seed, scale=R)
    x = torch.from_numpy(GRID).float()[:, None]
    y = torch.from_numpy(target(GRID)).float()[:, None]
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        err = (net(x) - y).abs()
    return {"sup_error": err.max().item(), "mean_error": err.mean().item(), "final_mse": (err ** 2).mean().item()}


def evaluate_config(cfg: TheoryConfig) -> dict:
    if cfg.method == "match":
        outs = [match(cfg.n_hidden, cfg.eps, cfg.seed + k) for k in range(cfg.draws)]
        errs = [o["sup_error"] for o in outs if o["success"]]
        metrics = {"success_rate": len(errs) / cfg.draws,
                   "median_sup_error": float(np.median(errs)) if errs else None}
    else:
        metrics = fit_bias(cfg.n_hidden, cfg.seed, cfg.steps, cfg.lr)
    w, c, a = small_network()
    metrics["small_sup_error"] = float(np.abs(evaluate(w, c, a) - target(GRID)).max())  # the reference
    return {"metrics": metrics, "curve": {}, "device": "cpu"}


def run(cfg: TheoryConfig, root=None, compute: bool = True, device: str = "auto"):
    """The result of ``cfg`` from results/, computed first if absent and ``compute`` (CPU only)."""
    return results.cached(cfg, evaluate_config, root, compute)


WIDTHS = {"paper": [30, 100, 300, 1000, 3000, 10000, 30000], "quick": [30, 300]}


def matching(scale: str = "paper", seeds=(0,)) -> list[TheoryConfig]:
    """The proof's construction: success rate and sup error vs width (draws per width from each seed)."""
    draws = 200 if scale == "paper" else 10
    return [TheoryConfig(method="match", n_hidden=n, draws=draws, seed=1000 * s)
            for s in seeds for n in WIDTHS[scale]]


def gradient(scale: str = "paper", seeds=range(5)) -> list[TheoryConfig]:
    """Gradient-trained bias-only networks of the same widths (one per seed)."""
    steps = 1500 if scale == "paper" else 100
    return [TheoryConfig(method="gradient", n_hidden=n, steps=steps, seed=s)
            for s in seeds for n in WIDTHS[scale] if n <= 3000]


