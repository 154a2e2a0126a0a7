"""What the chapters share: collect runs, list what is missing, summarise over seeds, and
say under every figure which runs it shows (provenance)."""
from __future__ import annotations

import shlex
from collections import defaultdict

import numpy as np

from . import results


def collect(configs, runner, root=None, compute=False):
    """[(config, result or None)] for every config; ``runner(config, root=, compute=)``."""
    return [(c, runner(c, root=root, compute=compute)) for c in configs]


def missing(pairs, command: str) -> str:
    """A note listing runs without results and the one command that computes them."""
    absent = [c for c, r in pairs if r is None]
    if not absent:
        return f"All {len(pairs)} runs are in results/."
    by = defaultdict(list)
    for c in absent:
        what = getattr(c, "dataset", getattr(c, "task", c.experiment))
        by[f"{what} {c.mode}" if hasattr(c, "mode") else what].append(c.seed)
    lines = [f"{len(absent)} of {len(pairs)} runs have no stored result (not computed on the "
             f"machine that built this page):"]
    lines += [f"  {k}: seeds {sorted(set(v))}" for k, v in by.items()]
    lines += ["Compute them with:", "  " + command]
    return "\n".join(lines)


def summary(values) -> tuple[float, float, int]:
    """Mean, sample standard deviation (0 for one value) and count."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)


def provenance(pairs) -> str:
    """One line for a caption: how many runs, which seeds, which commit(s) and hardware, wall time."""
    done = [r["provenance"] | {"seed": r["config"]["seed"]} for _, r in pairs if r is not None]
    if not done:
        return "No runs stored."
    seeds = sorted({p["seed"] for p in done})
    commits = ", ".join(sorted({p["git_commit"][:7] for p in done}))
    dirty = sum(bool(p.get("git_dirty")) for p in done)
    threads = {}
    for p in done:
        threads.setdefault(hardware(p), set()).add(p["threads"])
    where = "; ".join(f"{h}, {'/'.join(map(str, sorted(t)))} threads" for h, t in sorted(threads.items()))
    wall = sum(p["wall_seconds"] for p in done)
    return (f"{len(done)} runs, seeds {seeds}; code at commit {commits}"
            + (f" ({dirty} of them with uncommitted changes to src/)" if dirty else "")
            + f"; {where}; {wall / 60:.1f} min of training in all.")


def built_here(what: str) -> str:
    """The caption line of a figure that shows no stored run: it is computed by the page itself."""
    return f"Computed while this page was built, from {what}; no stored runs."


def hardware(p: dict) -> str:
    """Where a run was computed, from its provenance: 'AMD EPYC CPU' or the GPU's name."""
    if p["device"].startswith("cuda"):
        return p.get("gpu") or p["device"]
    return f'{p.get("cpu") or "unknown"} CPU'


def command(preset: str, scale: str, seeds, **lists) -> str:
    """The shell command that computes a preset's runs."""
    parts = ["python", "-m", "biaslearn.experiments", preset, "--scale", scale,
             "--seeds", *map(str, seeds)]
    for k, v in lists.items():
        if v:
            parts += [f"--{k}", *map(str, v)]
    return " ".join(shlex.quote(p) for p in parts)


__all__ = ["collect", "missing", "summary", "provenance", "built_here", "hardware", "command", "results"]
