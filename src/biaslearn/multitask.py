"""One random network, many tasks: every task's learned bias vector swapped into the same weights.

    SwapConfig        which bias-only runs (one seed, one per task, any number of tasks) to put into one network
    swap(config)      every (bias vector, test set) accuracy, and the units each task silences
    SplitConfig       the reduced protocol's split of one data set (data.reduced_split), stored with the results
    split_record(c)   its indices and per-class counts
    swap_matrix(r)    a swap result's accuracies as a tasks x tasks table (rows: biases, columns: test sets)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import data, nets, results
from .config import Base
from .train import Config, cached_logits, project, split


class OfRuns(Base):
    """The base of a config that reads stored feed-forward runs, its ``runs`` (train.Configs): they are rebuilt
    from their dicts when a result is loaded, and ``one_network`` says whether they share one network."""

    def one_network(self) -> bool:
        """Every run is a Config of this config's seed with the same weights (width, law, scale, output bias)
        and the same mode."""
        if not all(isinstance(c, Config) for c in self.runs):
            return False
        keys = {(c.seed, c.n_hidden, c.init, c.scale, c.out_bias, c.mode) for c in self.runs}
        return len(keys) == 1 and next(iter(keys))[0] == self.seed

    @classmethod
    def from_dict(cls, d: dict):
        d = dict(d, runs=tuple(Config.from_dict(r) if isinstance(r, dict) else r for r in d.get("runs", ())))
        return super().from_dict(d)


@dataclass(frozen=True)
class SwapConfig(OfRuns):
    """Evaluate every task's learned biases in one network (the bias-only runs of ``runs``)."""
    experiment: str = "feedforward_swap"
    runs: tuple = ()                 # bias-only Configs of one seed, one per task (same weights)
    seed: int = 0                    # the seed of every run in ``runs`` (it draws the shared weights)

    def check(self):
        return [(self.one_network() and self.runs[0].mode == "bias",
                 "runs: bias-only Configs sharing one seed (= seed) and architecture")]


def swap(cfg: SwapConfig, device: str = "auto", root=None) -> dict:
    """Load each task's learned b into ONE network; score every (bias vector, test set) pair and
    count, per task, the units never active on its test set (silenced by the learned biases)."""
    dev = nets.device(device)
    first = cfg.runs[0]
    biases = {}
    for c in cfg.runs:
        r = results.load(c, root)
        if r is None:
            raise FileNotFoundError(f"the bias-only run {c} is not in {results.path(c, root)}: compute it first")
        biases[c.dataset] = torch.from_numpy(r["arrays"]["b"]).to(dev)
    model = nets.RandomMLP(784, first.n_hidden, 10, "bias", first.seed, first.init, first.scale,
                           first.out_bias).to(dev)
    acc, silenced = {}, {}
    for c in cfg.runs:  # each task's test set, projected once through the shared W_in
        _, _, x_ev, y_ev = split(c)
        P = project(x_ev, model.W_in)
        for name, b in biases.items():
            model.b.data.copy_(b)  # swap in another task's biases: nothing else changes
            logits, active = cached_logits(P, model.b, model.W_out, getattr(model, "c", None))
            acc[f"{name}->{c.dataset}"] = (logits.argmax(1).cpu() == y_ev).float().mean().item()
            if name == c.dataset:
                silenced[c.dataset] = 1 - active.float().mean().item()
    return {"metrics": {"accuracy": acc, "silenced_fraction": silenced}, "curve": {},
            "device": str(dev)}


def swap_matrix(result: dict, tasks=None):
    """A swap result's accuracies as a DataFrame: row a, column b = task a's biases on task b's test set."""
    import pandas as pd

    acc = result["metrics"]["accuracy"]
    tasks = tasks or list(dict.fromkeys(k.split("->")[1] for k in acc))
    return pd.DataFrame([[acc[f"{a}->{b}"] for b in tasks] for a in tasks], index=tasks, columns=tasks)


@dataclass(frozen=True)
class SplitConfig(Base):
    """The reduced protocol's split of one data set's test split (data.reduced_split: fixed seed, stratified)."""
    experiment: str = "multitask_split"
    dataset: str = "kmnist"          # a name in data.SOURCES (its test split), or a synthetic task


def split_record(cfg: SplitConfig) -> dict:
    """The split's indices (arrays) and its sizes and per-class counts (metrics), from the labels alone."""
    _, y = data.load_test(cfg.dataset)
    parts = data.reduced_split(y)
    counts = {k: np.bincount(y[v], minlength=10).tolist() for k, v in parts.items()}
    return {"metrics": {"n": {k: len(v) for k, v in parts.items()}, "per_class": counts,
                        "n_test_split": len(y), **data.REDUCED},
            "curve": {}, "device": "cpu", "arrays": {k: v.astype(np.int32) for k, v in parts.items()}}
