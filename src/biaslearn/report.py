"""What the chapters share: what is missing, summaries over seeds, the winner of a grid, tables
rendered as HTML, and the provenance line under every figure. Each function takes the tables of
``experiments.collect`` (a row per run; columns "config", "result", "stored", metrics...)."""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

# How the chapters name and colour the ways of training (the "regime" column of a collected table, or "mode").
LABEL = {"bias": "bias-only", "bias_gauss": "bias-only, Gaussian weights", "full": "fully trained",
         "readout": "readout only", "mask": "learned mask"}
COLOUR = {"bias": "C0", "bias_gauss": "C9", "full": "C1", "readout": "C2", "mask": "C3"}


def title(dataset: str) -> str:
    """A data set's name as the book prints it ("Fashion-MNIST"); "synthetic" for the smoke tests' data."""
    from .data import SOURCES

    return SOURCES[dataset].title if dataset in SOURCES else dataset


def _results(runs) -> list[dict]:
    """The stored results of a collected table, or of a list of result dicts."""
    if hasattr(runs, "columns"):
        return [r for r in runs["result"] if r is not None] if len(runs) else []
    return [r for r in runs if r is not None]


def missing(df) -> str:
    """A note listing the runs without stored results, why each was not computed, and the one
    command that computes them."""
    absent = df[~df["stored"]] if len(df) else df
    if not len(absent):
        return f"All {len(df)} runs are in results/."
    by = defaultdict(set)
    for c in absent["config"]:
        what = getattr(c, "dataset", getattr(c, "task", c.experiment))
        by[f"{what} {c.mode}" if hasattr(c, "mode") else what].add(c.seed)
    reasons = sorted(set(df.attrs.get("why_missing", {}).values()))
    lines = [f"{len(absent)} of {len(df)} runs have no stored result (not computed on the machine that "
             f"built this page{': ' + '; '.join(reasons) if reasons else ''}):"]
    lines += [f"  {k}: seeds {sorted(v)}" for k, v in by.items()]
    lines += ["Compute them with:", "  " + df.attrs.get("command", "python -m biaslearn.experiments ...")]
    return "\n".join(lines)


WIDTH = 74  # characters: a printed line no wider than this is not wrapped again on the page (make check-site measures
            # the output box: 77 characters in its 1280-pixel window)


def wrap(text: str, width: int = WIDTH) -> str:
    """Text folded to ``width`` characters per line; a shell command ("  python ...") is folded with " \\"
    continuations, so it can still be pasted."""
    import textwrap

    out = []
    for line in str(text).splitlines() or [""]:
        if len(line) <= width:
            out.append(line)
        elif line.lstrip().startswith("python "):
            indent = line[:len(line) - len(line.lstrip())]
            parts = textwrap.wrap(line.strip(), width - len(indent) - 6, break_on_hyphens=False, break_long_words=False)
            out.append(" \\\n".join(indent + ("    " if k else "") + p for k, p in enumerate(parts)))
        else:
            indent = line[:len(line) - len(line.lstrip())]
            out.append(textwrap.fill(line, width, subsequent_indent=indent, break_on_hyphens=False,
                                     break_long_words=False))
    return "\n".join(out)


def say(*parts) -> None:
    """print(), folded to WIDTH characters a line (chapters print notes with it)."""
    print(wrap(" ".join(map(str, parts))))


def summary(values) -> tuple[float, float, int]:
    """Mean, sample standard deviation (0 for one value) and count."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)


def median_iqr(values) -> tuple[float, float, float, int]:
    """Median, first and third quartiles and count of some values (NaN and None left out); NaNs if none."""
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not len(v):
        return (math.nan, math.nan, math.nan, 0)
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return float(med), float(q1), float(q3), len(v)


def med_iqr(values, digits: int = 3) -> str:
    """Median and interquartile range of some values as text, "median [q1 to q3]" (NaN and None left out), or "-" if
    there are none."""
    med, q1, q3, n = median_iqr(values)
    return f"{med:.{digits}f} [{q1:.{digits}f} to {q3:.{digits}f}]" if n else "-"


def num(v: float, digits: int = 4) -> str:
    """A score with ``digits`` decimals, or in scientific notation beyond ±1,000 (a network that blew up)."""
    return f"{v:.{digits}f}" if abs(v) < 1e3 else f"{v:.1e}"


def fmt(values, digits: int = 3, n: bool = True) -> str:
    """"mean ± s.d. (n=count)" of some values, or "-" if there are none."""
    values = [v for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))]
    if not values:
        return "-"
    m, s, k = summary(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}" + (f" (n={k})" if n else "")


def winners(df, by, metric: str, tiebreak: str | None = None) -> dict:
    """{key: learning rate} of the stored run with the highest ``metric`` per value of the columns
    ``by`` (a key is the tuple of those values), e.g. winners(sel, ("mode",), "eval_acc"). Runs tied on
    ``metric`` are split by the higher ``tiebreak`` (a column, when given), then by the order of ``df``."""
    done = df[df["stored"]]
    if not len(done) or metric not in done:
        return {}
    if tiebreak is not None and tiebreak in done:
        top = done[done[metric] == done.groupby(list(by))[metric].transform("max")]
        top = top.assign(_tiebreak=top[tiebreak].astype(float).fillna(-np.inf))  # a run without it loses the tie
        best = top.loc[top.groupby(list(by))["_tiebreak"].idxmax()]
    else:
        best = done.loc[done.groupby(list(by))[metric].idxmax()]
    return {tuple(k) if isinstance(k, tuple) else (k,): lr
            for k, lr in zip(best[list(by)].itertuples(index=False, name=None), best["lr"])}


def on_edge(lr: float, grid) -> bool:
    """Whether a winner sits on an edge of its grid (a better rate may lie beyond it)."""
    return lr in (min(grid), max(grid))


def show(table, caption: str | None = None, index: bool = False):
    """A DataFrame as an HTML table on the page (never wide printed text)."""
    import hashlib

    from IPython.display import HTML, display

    # pandas draws a random id per table; one from the contents keeps a page the same between builds (nbval)
    uid = hashlib.sha1((table.to_csv(index=index) + (caption or "")).encode()).hexdigest()[:8]
    styler = table.style.set_uuid(uid)
    styler = styler.hide(axis="index") if not index else styler
    if caption:
        styler = styler.set_caption(caption)
    display(HTML(styler.to_html()))


def rates(table: dict, caption: str) -> None:
    """A table of learning rates, {mode: rate} or {(dataset, mode): rate}: a row per data set, a column per mode."""
    import pandas as pd

    rows = {}
    for key, lr in table.items():
        d, m = key if isinstance(key, tuple) else ("every data set", key)
        rows.setdefault(title(d), {})[LABEL.get(m, m)] = f"{lr:g}"
    if not rows:
        say(f"{caption}: none chosen yet")
        return
    show(pd.DataFrame([{"data set": d, **r} for d, r in rows.items()]).fillna("not chosen yet"), caption)


def provenance(runs) -> str:
    """One line for a caption: how many runs, which seeds, which commit(s) and hardware, wall time."""
    done = [r["provenance"] | {"seed": r["config"].get("seed")} for r in _results(runs)]
    if not done:
        return "No runs stored."
    seeds = sorted({p["seed"] for p in done if p["seed"] is not None})
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


PARAMETERS = ("seeds", "scale", "compute", "results_dir")  # every chapter's parameters cell holds these
_IPYTHON = {"In", "Out", "get_ipython", "exit", "quit", "open"}


def check_parameters(namespace: dict, extra=()) -> None:
    """Validate a chapter's parameters in place, right after its parameters cell (and papermill's
    injected one): ``seeds`` a list of non-negative ints (a bare int becomes a one-element list),
    ``scale`` in presets.SCALE_NAMES, ``compute`` a bool, ``results_dir`` None or a path (created and
    checked writable when ``compute``), and no parameter the chapter does not know (``extra`` are its
    own, e.g. "datasets"). One error names what was wrong and what is allowed."""
    import os
    import types
    from pathlib import Path

    from .presets import SCALE_NAMES

    allowed = set(PARAMETERS) | set(extra)
    unknown = sorted(k for k, v in namespace.items() if not k.startswith("_") and k not in allowed
                     and k not in _IPYTHON and not isinstance(v, (types.ModuleType, types.FunctionType, type)))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}: this chapter takes {sorted(allowed)}")
    seeds = namespace["seeds"]
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if (not isinstance(seeds, (list, tuple)) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise ValueError(f"parameter seeds={namespace['seeds']!r}: give a non-empty list of non-negative ints, e.g. [0, 1]")
    namespace["seeds"] = list(seeds)
    if namespace["scale"] not in SCALE_NAMES:
        raise ValueError(f"parameter scale={namespace['scale']!r}: use one of {list(SCALE_NAMES)}")
    if not isinstance(namespace["compute"], bool):
        raise ValueError(f"parameter compute={namespace['compute']!r}: use true or false")
    root = namespace["results_dir"]
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise ValueError(f"parameter results_dir={root!r}: give a folder path, or None for the repository's results/")
    if namespace["compute"]:
        from .results import ResultError, _writable, results_dir
        try:
            _writable(results_dir(root))
        except ResultError as e:
            raise ValueError(f"parameter results_dir: {e}") from None
    elif root is not None and not Path(root).is_dir():
        raise ValueError(f"parameter results_dir={root!r}: no such folder (with compute false nothing would be read)")
