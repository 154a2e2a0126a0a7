"""The theory chapter: the lemma's proof run as code, and bias learning on small regression problems.

The lemma's argument (Williams et al., Lemma 0.1): a small network with bounded weights,
    f(x) = sum_i a_i sigma(w_i x + c_i),   |w_i|, |a_i| <= gamma,
is approximated by a wide random network whose input and output weights are i.i.d. uniform on
[-R, R] (R > gamma) by choosing biases only: for each small unit i pick a random unit j whose
(w_in_j, w_out_j) lies within eps of (w_i, a_i), give it the bias c_i, and silence every other
unit with a very negative bias. ``match`` does that with a greedy nearest-partner search (the
ledger's first runs); ``partners`` with a maximum bipartite matching, which finds partners
whenever they exist, so the failure bounds below (``group_bound``, ``hall_bound``) apply to it.

Four kinds of run, one frozen config each (computed by RUNNERS, memoised by experiments.run):
    TheoryConfig   "theory":            the construction (ReLU, 1-D) and Adam on the biases (the claims ledger's runs;
                   "theory_heldout": the same Adam runs, also scored between the training grid's points)
                   ("theory_bound", method "bound": per random network, the smallest width holding partners by
                   maximum matching; failure rate vs width against the bounds, the 95% width, the copy's error)
    MatchConfig    "theory_activation": the construction with another activation sigma and silencing bias
                   ("theory_tolerance": the ReLU construction at other tolerances eps)
    FitConfig      "theory_width":      regression of a 1-D or 2-D target, biases / everything / readout trained
    RNNConfig      "theory_rnn":        an RNN fitted to a finite trajectory: biases (and initial state), or everything
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import dynamics, nets
from .config import Base

GAMMA, R = 0.9, 1.0   # bound of the small network's weights; half-width of the random weights
GRID = np.linspace(-1, 1, 401)   # where the "theory" runs compare functions (the compact domain [-1, 1])
FINE = np.linspace(-1, 1, 2001)  # MatchConfig runs: fine enough to see a step that moved by 1e-3
MID = (GRID[1:] + GRID[:-1]) / 2  # held out from GRID: the midpoints between its points

# The activations as numpy functions, for the construction (training uses nets.ACTIVATIONS, the same ones).
ACT_NP = {"relu": lambda z: np.maximum(z, 0), "softplus": lambda z: np.logaddexp(z, 0),
          "tanh": np.tanh, "step": lambda z: (z > 0).astype(float)}


def target(x: np.ndarray) -> np.ndarray:
    """The smooth 1-D target of this chapter: a bump-and-wiggle on [-1, 1], |g| <= 0.5."""
    return 0.3 * np.sin(3 * x) + 0.2 * np.cos(5 * x)


def weierstrass(x: np.ndarray, k: int) -> np.ndarray:
    """A rough continuous function: the Weierstrass sum 0.25 sum_{j<k} 2^-j cos(3^j pi x) (Hoelder 0.63 as k grows)."""
    return 0.25 * sum(0.5 ** j * np.cos(3 ** j * np.pi * x) for j in range(k))


# name -> (input dimension, g: array (N, d) -> array (N,)); every target is continuous on [-1, 1]^d.
TARGETS = {
    "smooth1d": (1, lambda x: target(x[:, 0])),
    "rough1d": (1, lambda x: weierstrass(x[:, 0], 4)),
    "smooth2d": (2, lambda x: 0.3 * np.sin(2 * x[:, 0] + x[:, 1]) + 0.2 * x[:, 0] * np.cos(3 * x[:, 1])),
    "rough2d": (2, lambda x: weierstrass(x[:, 0], 3) * np.cos(np.pi * x[:, 1]) + 0.2 * np.abs(x[:, 1])),
}


def points(d: int, split: str) -> np.ndarray:
    """Inputs (N, d) on [-1, 1]^d: a training grid, and a finer test grid that interleaves it."""
    n = {(1, "train"): 256, (1, "test"): 2001, (2, "train"): 24, (2, "test"): 61}[d, split]
    axis = np.linspace(-1, 1, n)
    return axis[:, None] if d == 1 else np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)


# --- The proof's construction ------------------------------------------------------------------

def small_network(m: int = 16, act: str = "relu", x=GRID):
    """A bounded small network fitted to ``target``: (w, c, a), each of shape (m,), |.| <= GAMMA.

    Input weights and biases are fixed on a grid (unit centres -c/w spread over [-1, 1], both
    slopes); output weights are least-squares fitted on ``x`` under the bound |a_i| <= GAMMA.
    """
    from scipy.optimize import lsq_linear

    k = np.linspace(-1, 1, m // 2 + 2)[1:-1]           # kink (or step, or centre) positions
    w = np.concatenate([np.full(len(k), GAMMA), np.full(len(k), -GAMMA)])
    c = np.concatenate([-GAMMA * k, GAMMA * k])         # sigma(w x + c) has its kink at x = k
    a = lsq_linear(ACT_NP[act](np.outer(x, w) + c), target(x), bounds=(-GAMMA, GAMMA)).x
    return w, c, a


def evaluate(w, c, a, x=GRID, act: str = "relu") -> np.ndarray:
    """sum_j a_j sigma(w_j x + c_j) at each point of x."""
    return ACT_NP[act](np.outer(x, w) + c) @ a


def units(n_hidden: int, seed: int) -> np.ndarray:
    """The (w_in, w_out) of every unit of a random 1-D network, (n_hidden, 2) float64, weights U[-R, R]."""
    return np.stack([nets.draw((n_hidden,), seed, name, "uniform", R).numpy().astype(np.float64)
                     for name in ("W_in", "W_out")], -1)


def match(n_hidden: int, eps: float, seed: int, m: int = 16, act: str = "relu",
          off_bias: float = -2 * R, x=GRID) -> dict:
    """The proof's construction on one random network of width n_hidden.

    Returns whether every small unit found a partner within eps (in both weights), the sup error
    over x of the random network with the constructed biases (inf if a unit is unmatched), and
    how many units were matched ("active"). Unmatched units get ``off_bias``: -2R silences a
    ReLU unit on [-1, 1], since |w_in x| <= R there.
    """
    w, c, a = small_network(m, act, x)
    w_in, w_out = units(n_hidden, seed).T
    b = np.full(n_hidden, float(off_bias))
    free = np.ones(n_hidden, bool)
    for i in range(m):
        d = np.maximum(abs(w_in - w[i]), abs(w_out - a[i]))
        d[~free] = np.inf
        j = int(np.argmin(d))
        if d[j] > eps:
            return {"success": False, "sup_error": float("inf"), "active": int((~free).sum())}
        free[j], b[j] = False, c[i]
    err = np.abs(evaluate(w_in, b, w_out, x, act) - target(x)).max()
    return {"success": True, "sup_error": float(err), "active": int((~free).sum())}


@dataclass(frozen=True)
class TheoryConfig(Base):
    experiment: str = "theory"       # folder under results/
    method: str = "match"            # "match" (the proof's construction), "gradient" (Adam on the biases) or
                                     # "bound" (the construction by maximum matching, the smallest width per draw)
    n_hidden: int = 1000             # width of the random network (bound: the widest searched)
    eps: float = 0.05                # match, bound: tolerance on each weight
    draws: int = 100                 # match: random networks drawn (seeds seed .. seed + draws - 1)
    steps: int = 1500                # gradient: Adam steps on the mean squared error over GRID
    lr: float = 0.01                 # gradient: learning rate
    seed: int = 0                    # first weight draw
    heldout: bool = False            # gradient: also score on MID, between the training grid's points

    CHOICES = {"method": ("match", "gradient", "bound")}
    ADDED = {"heldout": False}       # newer than the stored runs: left out of their keys

    def check(self):
        return [(self.n_hidden >= 1, "n_hidden >= 1"), (self.eps > 0, "eps > 0"), (self.draws >= 1, "draws >= 1"),
                (self.steps >= 0, "steps >= 0"), (self.lr > 0, "lr > 0")]


@dataclass(frozen=True)
class MatchConfig(Base):
    experiment: str = "theory_activation"  # folder under results/
    activation: str = "relu"         # sigma of the small and the random network: a name in ACT_NP
    off_bias: float = -2.0           # bias of the unmatched units (-2R silences ReLU on [-1, 1])
    n_hidden: int = 1000             # width of the random network
    eps: float = 0.05                # tolerance on each weight
    draws: int = 50                  # random networks drawn (seeds seed .. seed + draws - 1)
    seed: int = 0                    # first weight draw

    CHOICES = {"activation": tuple(ACT_NP)}

    def check(self):
        return [(self.n_hidden >= 1, "n_hidden >= 1"), (self.eps > 0, "eps > 0"), (self.draws >= 1, "draws >= 1")]


def fit_bias(n_hidden: int, seed: int, steps: int, lr: float, heldout: bool = False) -> dict:
    """Gradient descent on the hidden biases of the same random network (weights U[-R, R]), on GRID;
    with ``heldout``, also the sup and mean error on MID (points it was not trained on)."""
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
        out = {"sup_error": err.max().item(), "mean_error": err.mean().item(), "final_mse": (err ** 2).mean().item()}
        if heldout:
            e = (net(torch.from_numpy(MID).float()[:, None])[:, 0] - torch.from_numpy(target(MID)).float()).abs()
            out |= {"heldout_sup_error": e.max().item(), "heldout_mean_error": e.mean().item()}
    return out


def evaluate_config(cfg) -> dict:
    """The construction over ``draws`` random networks (success rate, median sup error), or Adam, or bound_run."""
    if getattr(cfg, "method", None) == "bound":
        return bound_run(cfg)
    act, off, x = getattr(cfg, "activation", "relu"), getattr(cfg, "off_bias", -2 * R), GRID
    if isinstance(cfg, MatchConfig):
        x = FINE
    if getattr(cfg, "method", "match") == "match":
        outs = [match(cfg.n_hidden, cfg.eps, cfg.seed + k, act=act, off_bias=off, x=x) for k in range(cfg.draws)]
        errs = [o["sup_error"] for o in outs if o["success"]]
        metrics = {"success_rate": len(errs) / cfg.draws,
                   "median_sup_error": float(np.median(errs)) if errs else None}
    else:
        metrics = fit_bias(cfg.n_hidden, cfg.seed, cfg.steps, cfg.lr, cfg.heldout)
    w, c, a = small_network(act=act, x=x)
    metrics["small_sup_error"] = float(np.abs(evaluate(w, c, a, x, act) - target(x)).max())  # the reference
    if getattr(cfg, "heldout", False):
        metrics["small_heldout_sup_error"] = float(np.abs(evaluate(w, c, a, MID, act) - target(MID)).max())
    return {"metrics": metrics, "curve": {}, "device": "cpu"}


# --- How wide? A valid bound on the failure of the construction, and the failure rate it bounds ------------
# A small unit i is the point theta_i = (w_i, a_i) of the cube [-R, R]^nu (nu = 2 here); a random unit is its
# partner if it lies in the box B_i of half-width eta around theta_i (max-norm). One random unit falls in B_i
# with probability p_i = vol(B_i within the cube) / (2R)^nu, = (eta / R)^nu when B_i lies inside the cube.

def unit_probability(small: np.ndarray, eta: float) -> np.ndarray:
    """p_i for each row theta_i of ``small`` (m, nu)."""
    lo, hi = np.clip(small - eta, -R, R), np.clip(small + eta, -R, R)
    return np.prod((hi - lo) / (2 * R), axis=-1)


def group_bound(n, small: np.ndarray, eta: float) -> np.ndarray:
    """A valid bound on P(no partners at width n): split the units into m groups of floor(n/m), group i
    serving small unit i; all partners exist if every group holds one, so P <= sum_i (1 - p_i)^floor(n/m)."""
    k = np.asarray(n)[..., None] // len(small)
    return np.minimum(1.0, ((1 - unit_probability(small, eta)) ** k).sum(-1))


def heuristic(n, small: np.ndarray, eta: float) -> np.ndarray:
    """The first version's formula, sum_i (1 - p_i)^(n - m): NOT a bound (it ignores that units whose
    boxes overlap compete for the same random units)."""
    k = np.maximum(np.asarray(n)[..., None] - len(small), 0)
    return np.minimum(1.0, ((1 - unit_probability(small, eta)) ** k).sum(-1))


def union_volume(centres: np.ndarray, eta: float) -> float:
    """The chance that a random unit lies in the union of the boxes around ``centres`` (k, nu)."""
    lo, hi = np.clip(centres - eta, -R, R), np.clip(centres + eta, -R, R)
    edges = [np.unique(np.r_[lo[:, d], hi[:, d]]) for d in range(centres.shape[1])]
    mids = np.stack([g.ravel() for g in np.meshgrid(*[(e[1:] + e[:-1]) / 2 for e in edges], indexing="ij")], -1)
    size = np.prod([g.ravel() for g in np.meshgrid(*map(np.diff, edges), indexing="ij")], 0)
    covered = ((mids[:, None] > lo) & (mids[:, None] < hi)).all(-1).any(-1)  # (cells,): in some box
    return float(size[covered].sum() / (2 * R) ** centres.shape[1])


def hall_bound(n, small: np.ndarray, eta: float, limit: int = 100_000) -> np.ndarray:
    """A sharper valid bound: sum over sets S of small units whose boxes overlap in a connected chain of
    P(Binomial(n, q_S) < |S|), q_S = union_volume of their boxes. By Hall's theorem partners are missing
    only if some S has fewer than |S| random units in its boxes, and an inclusion-minimal such S is connected."""
    from scipy.stats import binom

    touch = np.abs(small[:, None] - small[None]).max(-1) <= 2 * eta  # boxes i and j overlap
    sets, new = set(), {frozenset([i]) for i in range(len(small))}
    while new:
        sets |= new
        new = {S | {int(j)} for S in new for i in S for j in np.flatnonzero(touch[i])} - sets
        if len(sets) > limit:
            raise ValueError(f"more than {limit} connected sets of small units: eta = {eta} is too large")
    n = np.asarray(n)
    return np.minimum(1.0, sum(binom.cdf(len(S) - 1, n, union_volume(small[sorted(S)], eta)) for S in sets))


def copy_error_bound(w, c, a, eta: float) -> float:
    """The eta -> epsilon relation (ReLU, x in [-1, 1]): if every weight of each copied unit is within eta
    of the small unit's, sup_x |copy(x) - s(x)| <= sum_i eta (S_i + |a_i| + eta), S_i = sup_x relu(w_i x + c_i)."""
    s_i = np.maximum(np.abs(w) + c, 0)
    return float(eta * (s_i + np.abs(a) + eta).sum())


def sup_gap(w1, c1, a1, w2, c2, a2) -> float:
    """The exact sup over [-1, 1] of |difference| of two ReLU networks: it is piecewise linear, so its
    largest value is at an end point or a kink."""
    k = np.r_[-c1 / w1, -c2 / w2]
    x = np.r_[-1.0, 1.0, k[(k > -1) & (k < 1)]]
    return float(np.abs(evaluate(w1, c1, a1, x) - evaluate(w2, c2, a2, x)).max())


def partners(theta: np.ndarray, small: np.ndarray, eta: float):
    """The smallest width n at which the first n random units (rows of ``theta``) hold distinct partners
    for every small unit, and those partners (indices); (None, None) if all of ``theta`` does not. A
    maximum bipartite matching finds partners whenever they exist, and more units never lose them, so
    bisection over the prefixes finds n."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    near = np.ones((len(small), len(theta)), bool)
    for d in range(small.shape[1]):
        near &= np.abs(theta[None, :, d] - small[:, None, d]) <= eta
    cols = np.flatnonzero(near.any(0))  # the random units near some small unit, in order

    def solve(k):  # partners among the first k of them, or None
        j = maximum_bipartite_matching(csr_matrix(near[:, cols[:k]]), perm_type="column")
        return cols[j] if (j >= 0).all() else None

    if len(cols) < len(small) or solve(len(cols)) is None:
        return None, None
    lo, hi = len(small), len(cols)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if solve(mid) is not None else (mid + 1, hi)
    return int(cols[lo - 1]) + 1, solve(lo)


def clopper_pearson(k, n: int, level: float = 0.95):
    """The exact (Clopper-Pearson) binomial interval for k successes out of n."""
    from scipy.stats import beta

    k = np.asarray(k, float)
    a = (1 - level) / 2
    lo = np.where(k > 0, beta.ppf(a, np.maximum(k, 1e-9), n - k + 1), 0.0)
    hi = np.where(k < n, beta.ppf(1 - a, k + 1, np.maximum(n - k, 1e-9)), 1.0)
    return lo, hi


def bound_width(bound, small: np.ndarray, eta: float, delta: float = 0.05) -> int:
    """The smallest width at which ``bound`` (it falls with n) is at most delta, by bisection."""
    lo, hi = len(small), len(small)
    while bound(hi, small, eta) > delta:
        lo, hi = hi, 2 * hi
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if bound(mid, small, eta) <= delta else (mid + 1, hi)
    return int(lo)


BOUNDS = {"group": group_bound, "hall": hall_bound, "heuristic": heuristic}


def bound_run(cfg) -> dict:
    """A TheoryConfig with method "bound": eps is the tolerance eta, draws the random networks (seeds seed ..
    seed + draws - 1, the networks ``match`` draws), n_hidden the widest searched (a network needing more counts
    as failed at every width). For each network: the smallest width holding partners for the 16 small units, the largest
    partner distance there, and the copy's sup error against s (exact) and against g (on FINE). Then the
    failure rate vs width with 95% Clopper-Pearson intervals against the bounds (``<bound>_covers``: the fraction
    of the widths at which the bound is at or above the interval's lower end); the 95% width (the smallest
    width at which 95% of the draws hold partners: what bisection over n on their success rate finds) with
    the interval where the success rate's interval covers 95%; and the bounds' widths at delta = 0.05."""
    w, c, a = small_network()
    small = np.c_[w, a]
    n_star, dist, copy_err, sup_err = (np.full(cfg.draws, np.nan) for _ in range(4))
    for k in range(cfg.draws):
        theta = units(cfg.n_hidden, cfg.seed + k)  # (n_hidden, 2): the units of ``match``'s networks
        n, j = partners(theta, small, cfg.eps)
        if n is not None:
            n_star[k], dist[k] = n, np.abs(theta[j] - small).max()
            copy_err[k] = sup_gap(theta[j, 0], c, theta[j, 1], w, c, a)
            sup_err[k] = np.abs(evaluate(theta[j, 0], c, theta[j, 1], FINE) - target(FINE)).max()
    got = np.sort(n_star[~np.isnan(n_star)])
    ns = np.unique(np.geomspace(len(w), cfg.n_hidden, 300).astype(int))
    fails = (~(n_star[None] <= ns[:, None])).sum(1)
    lo, hi = clopper_pearson(fails, cfg.draws)
    bounds = {name: f(ns, small, cfg.eps) for name, f in BOUNDS.items()}
    ok_lo, ok_hi = clopper_pearson(np.arange(1, len(got) + 1), cfg.draws)  # success rate at each width in got

    def first(mask):  # the smallest width in got where mask holds, else None (beyond n_hidden)
        return int(got[np.argmax(mask)]) if mask.any() else None

    k95 = math.ceil(0.95 * cfg.draws)
    metrics = {"width_95": int(got[k95 - 1]) if len(got) >= k95 else None,
               "width_95_lo": first(ok_hi >= 0.95), "width_95_hi": first(ok_lo >= 0.95),
               "median_width": float(np.median(got)) if len(got) == cfg.draws else None,
               "censored": int(np.isnan(n_star).sum()),
               **{f"{name}_width": bound_width(f, small, cfg.eps) for name, f in BOUNDS.items()},
               **{f"{name}_covers": float((b >= lo).mean()) for name, b in bounds.items()},  # 1: never below
               "max_distance": float(np.nanmax(dist)) if len(got) else None,
               "max_copy_error": float(np.nanmax(copy_err)) if len(got) else None,
               "copy_error_bound": copy_error_bound(w, c, a, cfg.eps),
               "median_sup_error": float(np.nanmedian(sup_err)) if len(got) else None,
               "small_sup_error": float(np.abs(evaluate(w, c, a, FINE) - target(FINE)).max())}
    curve = {"n": ns.tolist(), "fail": (fails / cfg.draws).tolist(), "fail_lo": lo.tolist(), "fail_hi": hi.tolist(),
             **{name: b.tolist() for name, b in bounds.items()}}
    return {"metrics": metrics, "curve": curve, "device": "cpu",
            "arrays": {"n_star": n_star, "distance": dist, "copy_error": copy_err, "sup_error": sup_err}}


# --- Gradient-trained networks on regression targets -----------------------------------------

@dataclass(frozen=True)
class FitConfig(Base):
    experiment: str = "theory_width"  # folder under results/
    target: str = "smooth1d"         # a name in TARGETS (1-D or 2-D, on [-1, 1]^d)
    mode: str = "bias"               # "bias" (Adam on b), "full" (Adam on everything), "readout" (least squares on W_out)
    activation: str = "relu"         # a name in nets.ACTIVATIONS
    n_hidden: int = 100              # width (units)
    steps: int = 1000                # Adam steps, full batch (bias and full modes)
    lr: float = 0.03                 # initial learning rate, cosine-decayed to 0 over ``steps``
    seed: int = 0                    # draws W_in, W_out and the initial b, all U[-R, R]

    CHOICES = {"target": tuple(TARGETS), "mode": ("bias", "full", "readout"), "activation": tuple(nets.ACTIVATIONS)}

    def check(self):
        return [(self.n_hidden >= 1, "n_hidden >= 1"), (self.steps >= 0, "steps >= 0"), (self.lr > 0, "lr > 0")]


def adam(params, loss_fn, steps: int, lr: float, clip: float = 0.0) -> list[float]:
    """Full-batch Adam with a cosine-decayed learning rate (gradient norm clipped to ``clip`` if > 0);
    the loss every steps/50 steps."""
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    losses = []
    for t in range(steps):
        opt.zero_grad()
        loss = loss_fn()
        if not loss.requires_grad:  # e.g. the biases of step units: the gradient is zero, nothing moves
            return [loss.item()]
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        sched.step()
        if t % max(steps // 50, 1) == 0 or t == steps - 1:
            losses.append(loss.item())
    return losses


def fit(cfg: FitConfig) -> dict:
    """Train one network on ``cfg.target``; score sup / mean |error| on the finer test grid."""
    d, g = TARGETS[cfg.target]
    x_tr, x_te = (torch.from_numpy(points(d, s)).float() for s in ("train", "test"))
    y_tr, y_te = (torch.from_numpy(g(x.numpy().astype(np.float64))).float() for x in (x_tr, x_te))
    net = nets.RandomMLP(d, cfg.n_hidden, 1, cfg.mode, seed=cfg.seed, scale=R, activation=cfg.activation)
    with torch.no_grad():  # biases spread like the weights, so the units' kinks cover the domain
        net.b.copy_(nets.draw((cfg.n_hidden,), cfg.seed, "b0", "uniform", R))
    losses = []
    if cfg.mode == "readout":  # least squares, singular values below 1e-6 x the largest cut (n > N is ill-posed)
        with torch.no_grad():
            H = net.features(x_tr @ net.W_in.T).double()  # (N, n_hidden)
            sol = torch.linalg.lstsq(H, y_tr.double()[:, None], rcond=1e-6, driver="gelsd").solution
            net.W_out.copy_(sol.T.float())
    else:
        losses = adam(list(net.parameters()), lambda: ((net(x_tr)[:, 0] - y_tr) ** 2).mean(),
                      cfg.steps, cfg.lr)
    with torch.no_grad():
        f = net(x_te)[:, 0]
    err = (f - y_te).abs()
    metrics = {"sup_error": err.max().item(), "mean_error": err.mean().item(),
               "n_trainable": net.n_trainable(), "final_loss": losses[-1] if losses else None}
    return {"metrics": metrics, "curve": {"loss": losses}, "device": "cpu", "arrays": {"f": f.numpy()}}


# --- A bias-only RNN on a finite trajectory ----------------------------------------------------

@dataclass(frozen=True)
class RNNConfig(Base):
    experiment: str = "theory_rnn"   # folder under results/
    mode: str = "bias"               # "bias" or "full" (nets.RandomRNN)
    learn_h0: bool = True            # bias mode: learn the initial hidden state too (the theorem chooses it)
    n_hidden: int = 100              # width (units)
    horizon: int = 50                # steps of the trajectory fitted (the theorem's finite horizon)
    gain: float = 1.5                # weights N(0, gain^2 / fan_in) (nets.draw "gaussian"); 2 explodes, 1 learns slowly
    steps: int = 1000                # Adam steps on the mean squared error over the horizon
    lr: float = 0.03                 # initial learning rate, cosine-decayed to 0
    seed: int = 0                    # draws every weight
    clip: float = 0.0                # gradient norm clipped to this (0: not clipped)

    CHOICES = {"mode": ("bias", "full")}
    ADDED = {"clip": 0.0}            # newer than the stored runs: left out of their keys

    def check(self):
        return [(self.n_hidden >= 1, "n_hidden >= 1"), (self.horizon >= 2, "horizon >= 2"), (self.gain > 0, "gain > 0"),
                (self.steps >= 0, "steps >= 0"), (self.lr > 0, "lr > 0"), (self.clip >= 0, "clip >= 0")]


def fit_rnn(cfg: RNNConfig) -> dict:
    """Fit y_t = W_out h_t to the Hopf trajectory z_0 .. z_{horizon-1} (no input: x_t = 0), then run on to
    twice the horizon. Scores the sup and root-mean-square error over the horizon and beyond it."""
    z = torch.from_numpy(dynamics.hopf(2 * cfg.horizon)).float()  # (2 horizon, 2)
    net = nets.RandomRNN(1, cfg.n_hidden, 2, cfg.mode, seed=cfg.seed, init="gaussian", scale=cfg.gain)
    h0 = torch.zeros(1, cfg.n_hidden, requires_grad=cfg.mode == "bias" and cfg.learn_h0)
    x = torch.zeros(1, 2 * cfg.horizon, 1)  # (batch, time, n_in): an autonomous system
    T = cfg.horizon
    params = list(net.parameters()) + ([h0] if h0.requires_grad else [])
    start = lambda: None if cfg.mode == "full" else h0  # noqa: E731  (full mode learns net.h0 itself)
    losses = adam(params, lambda: ((net(x[:, :T], start())[0] - z[:T]) ** 2).mean(), cfg.steps, cfg.lr, cfg.clip)
    with torch.no_grad():
        y = net(x, start())[0]  # (2 horizon, 2)
    err = (y - z).abs().amax(1)  # (2 horizon,): max over the two coordinates
    metrics = {"sup_error": err[:T].max().item(), "rmse": ((y - z)[:T] ** 2).mean().sqrt().item(),
               "sup_error_beyond": err[T:].max().item(), "n_trainable": len(torch.cat([p.flatten() for p in params]))}
    return {"metrics": metrics, "curve": {"loss": losses, "error": err.tolist()}, "device": "cpu",
            "arrays": {"y": y.numpy()}}


# --- Running -------------------------------------------------------------------------------------

# config type -> the function that computes its result (always on the CPU: these networks are too small
# for a GPU to help). experiments.run memoises them in results/; the presets are in presets.py.
RUNNERS = {TheoryConfig: evaluate_config, MatchConfig: evaluate_config, FitConfig: fit, RNNConfig: fit_rnn}
