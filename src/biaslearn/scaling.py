"""The width chapter's analysis: how wide must a bias-only network be to match full training?

    by_width(runs, metric)         {width: [metric of each stored run]} from a collected table
    interpolate(curve, n)          the mean curve at width n
    matched_width(curve, target)   the width at which a mean accuracy curve first reaches target
    matched_widths(bias, full)     for each width n of full training: the bias-only width with
                                   the same accuracy, or why there is none
    fit_law(n, m, law)             a power law m = C n^alpha or an exponential m = C e^(alpha n)
    bootstrap_fits(bias, full)     the fitted exponent over resamples of the seeds
    jaccard(a, b)                  overlap of two sets of active units (chance_jaccard: if independent)

All accuracy curves are interpolated linearly in log(width), between measured widths only:
nothing is extrapolated beyond the widest run.
"""
from __future__ import annotations

import math

import numpy as np


def by_width(runs, metric: str = "eval_acc") -> dict[int, list[float]]:
    """{width: [metric of every stored run at that width]} from a table of runs (``experiments.collect``,
    or a slice of it): the rows with "stored" true (every row if there is no such column), grouped by
    "n_hidden" in ascending order, the runs of a width in the table's order. A row without a value of
    ``metric`` (NaN) is skipped; a table without the column gives {}."""
    done = runs[runs["stored"].astype(bool)] if "stored" in runs.columns else runs
    if metric not in done.columns:
        return {}
    out: dict[int, list[float]] = {}
    for n, v in zip(done["n_hidden"], done[metric]):
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            out.setdefault(int(n), []).append(float(v))
    return dict(sorted(out.items()))


def mean_curve(curve: dict[int, list[float]]) -> tuple[np.ndarray, np.ndarray]:
    n = np.array(sorted(curve), dtype=float)
    return n, np.array([np.mean(curve[int(k)]) for k in n])


def interpolate(curve: dict[int, list[float]], n: float) -> float | None:
    """The mean curve at width ``n`` (linear in log width); None outside the measured widths."""
    w, m = mean_curve(curve)
    if not len(w) or n < w[0] or n > w[-1]:
        return None
    return float(np.interp(math.log(n), np.log(w), m))


def matched_width(curve: dict[int, list[float]], target: float) -> float | None:
    """The smallest width at which the mean curve (interpolated in log width) reaches ``target``;
    None if no measured width reaches it."""
    n, m = mean_curve(curve)
    for i in range(len(n)):
        if m[i] >= target:
            if i == 0:
                return float(n[0]) if m[0] == target else None  # below the narrowest: unknown
            f = (target - m[i - 1]) / (m[i] - m[i - 1])
            return float(math.exp(math.log(n[i - 1]) + f * (math.log(n[i]) - math.log(n[i - 1]))))
    return None


NOT_REACHED, BELOW = "not reached", "below the narrowest"


def matched_widths(bias: dict, full: dict) -> list[tuple[int, float, float | None, str]]:
    """[(n, accuracy of full training at width n, bias-only width reaching it or None, why)]: why is
    "" when matched, NOT_REACHED when no measured bias-only width gets there, BELOW when even the
    narrowest measured bias-only network is better (the matching width is then unknown)."""
    n, m = mean_curve(full)
    lo = mean_curve(bias)[1][0] if bias else None
    out = []
    for k, a in zip(n, m):
        w = matched_width(bias, a)
        why = "" if w is not None else BELOW if lo is not None and lo > a else NOT_REACHED
        out.append((int(k), float(a), w, why))
    return out


def fit_law(n, m, law: str = "power") -> dict:
    """Least squares in log m: "power" log m = alpha log n + log C; "exp" log m = alpha n + log C.
    Returns alpha, C and the root-mean-square residual in log m (natural log)."""
    n, m = np.asarray(n, float), np.asarray(m, float)
    if len(n) < 2:
        raise ValueError(f"fit_law needs at least two matched widths, got {len(n)}")
    x = np.log(n) if law == "power" else n if law == "exp" else None
    if x is None:
        raise ValueError(f"unknown law {law!r}: use 'power' or 'exp'")
    A = np.stack([x, np.ones_like(x)], 1)
    (alpha, logc), *_ = np.linalg.lstsq(A, np.log(m), rcond=None)
    rms = float(np.sqrt(np.mean((A @ [alpha, logc] - np.log(m)) ** 2)))
    return {"law": law, "alpha": float(alpha), "C": float(math.exp(logc)), "rms_log": rms, "points": len(n)}


def bootstrap_fits(bias: dict, full: dict, law: str = "power", draws: int = 1000, seed: int = 0) -> np.ndarray:
    """The fitted exponent over ``draws`` resamples: at every width, the runs (seeds) of each regime are
    drawn with replacement, the matched widths recomputed and the law refitted. Resamples with fewer
    than two matched widths are dropped."""
    rng = np.random.default_rng(seed)

    def resample(curve):
        return {k: list(rng.choice(v, len(v))) for k, v in curve.items()}

    alphas = []
    for _ in range(draws):
        pts = [(n, w) for n, _, w, _ in matched_widths(resample(bias), resample(full)) if w is not None]
        if len(pts) >= 2:
            alphas.append(fit_law(*zip(*pts), law=law)["alpha"])
    return np.array(alphas)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|a and b| / |a or b| for two boolean vectors (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def chance_jaccard(p: float, q: float) -> float:
    """The expected Jaccard index of two independent random subsets holding fractions p and q of the units."""
    return p * q / (p + q - p * q) if p + q > 0 else 1.0


def active_units(result: dict, n_hidden: int) -> np.ndarray:
    """The stored boolean vector of units a run left active on its evaluation set."""
    return np.unpackbits(result["arrays"]["active"])[:n_hidden].astype(bool)


# --- Mask vs bias: do the two solutions use the same units? ----------------------------------------------

from dataclasses import dataclass  # noqa: E402

from .multitask import OfRuns  # noqa: E402


@dataclass(frozen=True)
class MaskCompareConfig(OfRuns):
    """Correlate the unit variances of the runs of one seed of presets.width_mask_paper: bias-only and the
    soft mask on the same weights, each with a rerun from another start (the seed-to-seed baseline)."""
    experiment: str = "width_mask_compare"
    runs: tuple = ()   # train.Configs: (bias, mask) for rerun 0, then for rerun 1, all of one seed and width
    seed: int = 0

    def check(self):
        from .train import Config
        keys = {(c.seed, c.n_hidden, c.init, c.scale, c.out_bias, c.dataset) for c in self.runs}
        kinds = sorted((c.mode, c.rerun) for c in self.runs) if all(isinstance(c, Config) for c in self.runs) else []
        return [(len(keys) == 1 and next(iter(keys))[0] == self.seed
                 and kinds == [("bias", 0), ("bias", 1), ("mask", 0), ("mask", 1)],
                 "runs: bias and mask, reruns 0 and 1, of one seed (= seed), width and data set")]



def unit_variances(P: np.ndarray | "torch.Tensor", b, keep=None) -> np.ndarray:
    """Each unit's variance over the rows of P (the inputs' projections W_in x) of its activity
    relu(P + b), times the mask ``keep`` (0/1 per unit) if given: (n_hidden,)."""
    import torch
    P = torch.as_tensor(P)
    h = torch.relu(P + torch.as_tensor(b, dtype=P.dtype))
    v = h.var(0, unbiased=False)
    return (v * torch.as_tensor(keep, dtype=v.dtype) if keep is not None else v).numpy()


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, float) - np.mean(a), np.asarray(b, float) - np.mean(b)
    d = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / d) if d > 0 else float("nan")


def mask_compare(cfg: MaskCompareConfig, root=None) -> dict:
    """Unit variances on the test set of the four runs; their correlations across units, and the control:
    the untrained network (starting biases, every unit kept), whose variances come from the weights alone."""
    import torch

    from . import nets, results
    from .train import project, split
    got = {}
    for c in cfg.runs:
        r = results.load(c, root)
        if r is None:
            raise FileNotFoundError(f"the run {c} is not in {results.path(c, root)}: compute it first")
        got[(c.mode, c.rerun)] = (c, r["arrays"])
    c0 = cfg.runs[0]
    model = nets.RandomMLP(784, c0.n_hidden, 10, "bias", c0.seed, c0.init, c0.scale, c0.out_bias)
    _, _, x_ev, _ = split(c0)
    with torch.no_grad():
        P = project(x_ev, model.W_in)
    v = {f"{m}{k}": unit_variances(P, a["b"], (a["s"] > 0).astype(np.float32) if m == "mask" else None)
         for (m, k), (_, a) in got.items()}
    v["untrained"] = unit_variances(P, model.b.detach())  # the starting biases b0 (those every mask run keeps)
    r = {"bias_mask": pearson(v["bias0"], v["mask0"]), "bias_bias": pearson(v["bias0"], v["bias1"]),
         "mask_mask": pearson(v["mask0"], v["mask1"]), "bias_untrained": pearson(v["bias0"], v["untrained"]),
         "mask_untrained": pearson(v["mask0"], v["untrained"])}
    return {"metrics": {"r_var": r, "kept": {"bias": float(np.mean(v["bias0"] > 0)),
                                             "mask": float(np.mean(v["mask0"] > 0))}},
            "curve": {}, "device": "cpu"}
