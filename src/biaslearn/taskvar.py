"""How one random network serves many tasks: each unit's task variance, clustered (the long version's Figure 1C).

Yang et al. (2019, gyyang/multitask: analysis/variance.py, analysis/clustering.py), adapted to a feed-forward
network: a unit's variance for a task is the variance of its activation relu(W_in x + b_task) over that task's
test inputs (with that task's learned biases b_task, in the one frozen network of every task). Units whose
summed variance is below MIN_TOTAL are dropped; each remaining unit is normalised by its maximum over tasks;
k-means (n_init 20) for k = 2..15, k chosen by the silhouette score (on a fixed random sample of SAMPLE units:
the score is O(n^2) in the units).

    task_variance(P, b)           the (units, tasks) variance matrix from cached projections and biases
    cluster(V)                    drop, normalise, k-means for every k, the silhouette winner, its clusters' roles
    analyse(V, B, seed)           cluster(V), the task variance vs bias correlations, and the same for a control
    permuted_bias_corr(P, b, rng) the correlation the mechanics alone give: the same biases permuted across units
    TaskVarConfig / run(config)   the runs of one seed (the bias-only runs of multitask_swap), analysed and stored
    order(labels, roles)          units sorted by cluster for the heatmap (clusters by the task they serve)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import nets, results
from .multitask import OfRuns
from .train import project, split

MIN_TOTAL = 1e-3         # Yang et al.: units whose summed task variance is below this are dropped
K_RANGE = range(2, 16)   # k-means cluster counts tried
N_INIT = 20              # k-means restarts (Yang et al.: n_init 20)
SAMPLE = 5000            # units the silhouette score is computed on (a fixed random sample)
SERVES = 0.5             # a cluster serves a task if its mean normalised variance there is >= this


def task_variance(P: torch.Tensor, b: torch.Tensor, chunk: int = 512) -> np.ndarray:
    """Variance over the rows of P (a task's projected test inputs, (N, n_hidden)) of relu(P + b), per unit."""
    s = torch.zeros(P.shape[1], dtype=torch.float64)
    s2 = torch.zeros(P.shape[1], dtype=torch.float64)
    for i in range(0, len(P), chunk):
        h = torch.relu(P[i:i + chunk].float() + b).double()   # (chunk, n_hidden)
        s += h.sum(0).cpu()
        s2 += (h * h).sum(0).cpu()
    m = s / len(P)
    return (s2 / len(P) - m * m).clamp_min(0).numpy()


def cluster(V: np.ndarray, seed: int = 0) -> dict:
    """Cluster the units (rows) of a (units, tasks) task-variance matrix as Yang et al. do.

    Returns "kept" (bool per unit), "normalised" (kept units x tasks), "silhouette_by_k" {k: score},
    "k", "silhouette", "labels" (per unit, -1 if dropped), "centroids" (k x tasks) and "roles" (per cluster,
    the tuple of task indices it serves: mean normalised variance >= SERVES)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    V = np.asarray(V, dtype=np.float64)
    kept = V.sum(1) >= MIN_TOTAL
    X = V[kept] / V[kept].max(1, keepdims=True)
    ks = [k for k in K_RANGE if k < len(X)]
    if not ks:
        raise ValueError(f"only {len(X)} units have summed task variance >= {MIN_TOTAL}: too few to cluster")
    scores, fits = {}, {}
    for k in ks:
        km = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(X)
        fits[k] = km
        scores[k] = float(silhouette_score(X, km.labels_, sample_size=min(SAMPLE, len(X)), random_state=seed))
    k = max(scores, key=scores.get)
    labels = np.full(len(V), -1)
    labels[kept] = fits[k].labels_
    cent = fits[k].cluster_centers_
    roles = [tuple(int(t) for t in np.flatnonzero(c >= SERVES)) for c in cent]
    return {"kept": kept, "normalised": X, "silhouette_by_k": scores, "k": k, "silhouette": scores[k],
            "labels": labels, "centroids": cent, "roles": roles}


def shares(c: dict) -> dict:
    """Fractions of the kept units in task-specific clusters (serving one task) and shared ones (two or more)."""
    lab = c["labels"][c["kept"]]
    n = np.bincount(lab, minlength=len(c["roles"]))
    specific = sum(n[j] for j, r in enumerate(c["roles"]) if len(r) == 1)
    shared = sum(n[j] for j, r in enumerate(c["roles"]) if len(r) >= 2)
    return {"specific_share": float(specific / len(lab)), "shared_share": float(shared / len(lab)),
            "n_specific_clusters": sum(len(r) == 1 for r in c["roles"]),
            "n_shared_clusters": sum(len(r) >= 2 for r in c["roles"])}


def bias_correlation(V: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Per task, the Spearman correlation across units between task variance V[:, t] and learned bias B[:, t]."""
    from scipy.stats import spearmanr

    return np.array([spearmanr(V[:, t], B[:, t]).statistic for t in range(V.shape[1])])


def permuted_bias_corr(P: torch.Tensor, b: torch.Tensor, rng: np.random.Generator) -> float:
    """The correlation of task variance and bias that needs no learning. Var(relu(z + b)) rises with b for every
    unit (its derivative is 2 E[relu(z + b)] P(z + b <= 0) >= 0), so any bias vector correlates positively with the
    variances it produces. The control: the same bias values permuted across units (which unit gets which bias
    is random), the variances recomputed with them, and their Spearman correlation; learned biases beyond this
    are placed on units for a reason."""
    bp = b[torch.from_numpy(rng.permutation(len(b))).to(b.device)]
    return float(bias_correlation(task_variance(P, bp)[:, None], bp.cpu().numpy()[:, None])[0])


def shuffled(V: np.ndarray, seed: int) -> np.ndarray:
    """The control: each task's column of V permuted across units independently (a fixed generator), so a
    unit's variances on different tasks no longer belong to one unit; each task's distribution is kept."""
    rng = np.random.default_rng(seed)
    return np.stack([V[rng.permutation(len(V)), t] for t in range(V.shape[1])], 1)


def analyse(V: np.ndarray, B: np.ndarray, tasks, seed: int = 0) -> tuple[dict, dict, dict]:
    """(metrics, curve, arrays) of the clustering of V, its bias correlations, and the same on shuffled(V)."""
    real, ctrl_V = cluster(V, seed), shuffled(V, seed)
    ctrl = cluster(ctrl_V, seed)
    metrics = {"n_units": len(V), "n_kept": int(real["kept"].sum()), "k": real["k"], "silhouette": real["silhouette"],
               **shares(real), "bias_corr": dict(zip(tasks, bias_correlation(V, B).tolist())),
               "roles": ["+".join(tasks[t] for t in r) or "none" for r in real["roles"]],
               "control_k": ctrl["k"], "control_silhouette": ctrl["silhouette"],
               **{f"control_{k}": v for k, v in shares(ctrl).items()},
               "control_bias_corr": dict(zip(tasks, bias_correlation(ctrl_V, B).tolist()))}
    curve = {"k": list(real["silhouette_by_k"]), "silhouette": list(real["silhouette_by_k"].values()),
             "control_silhouette": [ctrl["silhouette_by_k"].get(k) for k in real["silhouette_by_k"]]}
    arrays = {"task_variance": V.astype(np.float32), "labels": real["labels"].astype(np.int16),
              "centroids": real["centroids"].astype(np.float32), "control_labels": ctrl["labels"].astype(np.int16),
              "control_centroids": ctrl["centroids"].astype(np.float32)}
    return metrics, curve, arrays


def order(labels: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Indices of the kept units (label >= 0) sorted by cluster; clusters ordered by the task of their largest
    mean normalised variance, then by how many tasks they serve (most specific first), then by size."""
    dominant = centroids.argmax(1)
    breadth = (centroids >= SERVES).sum(1)
    rank = np.lexsort((-np.bincount(labels[labels >= 0], minlength=len(centroids)), breadth, dominant))
    pos = np.empty(len(rank), int)
    pos[rank] = np.arange(len(rank))
    kept = np.flatnonzero(labels >= 0)
    return kept[np.argsort(pos[labels[kept]], kind="stable")]


@dataclass(frozen=True)
class TaskVarConfig(OfRuns):
    """The task variance of every unit of one seed's network over its tasks (the bias-only runs of ``runs``)."""
    experiment: str = "multitask_taskvar"
    runs: tuple = ()                 # bias-only Configs of one seed, one per task (same weights), as SwapConfig
    seed: int = 0                    # their seed (draws the shared weights; also the k-means and control seed)

    def check(self):
        return [(self.one_network() and len(self.runs) >= 2 and self.runs[0].mode == "bias",
                 "runs: two or more bias-only Configs sharing one seed (= seed) and architecture")]


def run(cfg: TaskVarConfig, device: str = "auto", root=None) -> dict:
    """Load each task's learned biases into the one network, compute the (units, tasks) task variance on each
    task's test inputs, and analyse it (``analyse``), with the permuted-bias control of the correlation
    (``permuted_bias_corr``; a generator seeded by the seed). Arrays also hold the biases (units, tasks)."""
    dev = nets.device(device)
    first = cfg.runs[0]
    model = nets.RandomMLP(784, first.n_hidden, 10, "bias", first.seed, first.init, first.scale,
                           first.out_bias).to(dev)
    tasks, V, B, perm = [c.dataset for c in cfg.runs], [], [], []
    rng = np.random.default_rng(cfg.seed)
    for c in cfg.runs:
        r = results.load(c, root)
        if r is None:
            raise FileNotFoundError(f"the bias-only run {c} is not in {results.path(c, root)}: compute it first")
        b = torch.from_numpy(r["arrays"]["b"]).to(dev)
        _, _, x_ev, _ = split(c)
        P = project(x_ev, model.W_in)
        V.append(task_variance(P, b))
        B.append(r["arrays"]["b"])
        perm.append(permuted_bias_corr(P, b, rng))
    V, B = np.stack(V, 1), np.stack(B, 1)
    metrics, curve, arrays = analyse(V, B, tasks, cfg.seed)
    metrics["permuted_bias_corr"] = dict(zip(tasks, perm))
    metrics["bias_corr_excess"] = {t: metrics["bias_corr"][t] - p for t, p in zip(tasks, perm)}
    return {"metrics": metrics, "curve": curve, "device": str(dev), "arrays": arrays | {"b": B.astype(np.float32)}}
