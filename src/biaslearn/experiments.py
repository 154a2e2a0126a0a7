"""The one road from a preset to a table: run any config, collect any preset.

    run(config)                          the result of one config: loaded from results/, or computed
                                         (by the runner of its type) and stored there first
    collect(preset, scale, seeds, ...)   every run of a preset as a pandas DataFrame, a row per run

    python -m biaslearn.experiments feedforward --scale paper --seeds 0 1 2 3 4
    python -m biaslearn.experiments width --scale paper --seeds 0 1 2 --datasets mnist

Every run is memoised in results/, so an interrupted sweep resumes where it stopped. The
presets (which configs, which learning rates) are in presets.py.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import functools

from . import data, gen, multitask, results, scaling, seq, tasks, taskvar, theory, train
from .presets import PRESETS, SCALE_NAMES, regime

# config type -> fn(config, device, progress, root) -> {"metrics", "curve", "device", "arrays"?}
RUNNERS = {
    train.Config: lambda c, device, progress, root: train.train(  # resumable: a checkpoint after every epoch
        c, device, progress, checkpoint=results.path(c, root).with_suffix(".partial.pt")),
    seq.SeqConfig: lambda c, device, progress, root: seq.train(c, device, progress),
    multitask.SwapConfig: lambda c, device, progress, root: multitask.swap(c, device, root),
    taskvar.TaskVarConfig: lambda c, device, progress, root: taskvar.run(c, device, root),
    multitask.SplitConfig: lambda c, device, progress, root: multitask.split_record(c),
    scaling.MaskCompareConfig: lambda c, device, progress, root: scaling.mask_compare(c, root),
    gen.GenConfig: lambda c, device, progress, root: gen.generate(c, device, progress),
    gen.ForecastConfig: lambda c, device, progress, root: gen.forecast(c, device, progress),
    tasks.TaskConfig: lambda c, device, progress, root: tasks.run(c, device, progress),
    **{t: (lambda c, device, progress, root: theory.RUNNERS[type(c)](c)) for t in theory.RUNNERS},
}
CONFIG_TYPES = {t.__name__: t for t in RUNNERS}  # the "type" a stored result names -> its class
# The metrics every stored result of a type must hold (a chapter reads them): a file without one is reported.
REQUIRED = {train.Config: ("eval_acc", "eval_loss", "n_trainable"), seq.SeqConfig: ("r2", "mse", "n_trainable"),
            multitask.SwapConfig: ("accuracy", "silenced_fraction"), multitask.SplitConfig: ("n",),
            taskvar.TaskVarConfig: ("silhouette", "bias_corr", "control_silhouette"),
            scaling.MaskCompareConfig: ("r_var", "kept"),
            gen.GenConfig: ("r2", "r2_mean", "n_trainable"), gen.ForecastConfig: ("r2", "r2_persistence", "n_trainable"),
            tasks.TaskConfig: ("score", "n_trainable"),
            theory.TheoryConfig: ("small_sup_error",), theory.MatchConfig: ("success_rate", "small_sup_error"),
            theory.FitConfig: ("sup_error", "mean_error"), theory.RNNConfig: ("sup_error", "rmse")}


def config_of(result: dict):
    """The config object of a stored result (its "config" holds the type name and the fields)."""
    d = result["config"]
    if d.get("type") not in CONFIG_TYPES:
        raise results.ResultError(f"result {result.get('file', '')} names an unknown config type {d.get('type')!r}")
    return CONFIG_TYPES[d["type"]].from_dict(d)


def ready(cfg, root=None, available=None) -> str | None:
    """Why ``cfg`` cannot be computed on this machine now (its data set absent, or the runs it
    reads not stored), or None if it can. ``available``: data.available, or a cached copy of it."""
    available = available or data.available
    if isinstance(cfg, train.Config) and (cfg.protocol == "reduced" or cfg.eval_set):  # test splits alone
        need = [cfg.dataset] * (cfg.protocol == "reduced") + [cfg.eval_set] * bool(cfg.eval_set)
        absent = [d for d in need if not _test_split_here(d, tuple(data.search_path()))]
        if absent:
            return (f"the test split of {absent[0]!r} is not on this machine (python -m biaslearn.data download "
                    f"{absent[0]})")
        if cfg.protocol == "reduced":
            return None
    if isinstance(cfg, train.Config) and cfg.dataset != "synthetic" and not available(cfg.dataset):
        return f"data set {cfg.dataset!r} not on this machine (python -m biaslearn.data download {cfg.dataset})"
    if isinstance(cfg, multitask.SplitConfig) and not _test_split_here(cfg.dataset, tuple(data.search_path())):
        return f"the test split of {cfg.dataset!r} is not on this machine (python -m biaslearn.data download {cfg.dataset})"
    if isinstance(cfg, multitask.OfRuns):  # a config that reads stored runs
        absent = [c for c in cfg.runs if not results.path(c, root).exists()]
        if absent:
            return f"{len(absent)} runs it reads are not stored"
        return next(filter(None, (ready(c, root, available) for c in cfg.runs)), None)
    return None


@functools.lru_cache(maxsize=None)
def _test_split_here(name: str, search_path: tuple) -> bool:
    """data.available_test, verified once per data set and search path."""
    return data.available_test(name)


def run(cfg, root=None, compute: bool = True, device: str = "auto", progress: bool = True) -> dict | None:
    """The result of ``cfg`` from results/, computed and stored first if absent and ``compute``."""
    if type(cfg) not in RUNNERS:
        raise TypeError(f"no runner for {type(cfg).__name__}: use one of {sorted(CONFIG_TYPES)}")
    return results.cached(cfg, lambda c: RUNNERS[type(c)](c, device, progress, root), root, compute)


def _check_metrics(cfg, result, root) -> None:
    absent = [m for m in REQUIRED.get(type(cfg), ()) if m not in result["metrics"]]
    if absent:
        raise results.ResultError(f"result file {results.path(cfg, root)} lacks the metric(s) {absent} "
                                  f"that every {type(cfg).__name__} run holds; delete it and rerun to recompute it")


def _row(cfg, result, root) -> dict:
    """One row of a collected table: the config's fields, then its metrics (a metric named like a
    config field gets the suffix "_metric"; a dict of metrics becomes "name.key" columns)."""
    fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, multitask.OfRuns):  # a config that reads stored runs
        fields["runs"] = len(cfg.runs)
        fields["datasets"] = tuple(c.dataset for c in cfg.runs)
    if isinstance(cfg, train.Config):
        fields["regime"] = regime(cfg)
    row = {"type": type(cfg).__name__, **fields}
    for k, v in (result or {}).get("metrics", {}).items():
        for name, value in (v.items() if isinstance(v, dict) else [(None, v)]):
            col = k if name is None else f"{k}.{name}"
            row[f"{col}_metric" if col in fields else col] = value
    wall = result["provenance"]["wall_seconds"] if result else None
    return row | {"wall_seconds": wall, "stored": result is not None,
                  "file": str(results.path(cfg, root).relative_to(results.results_dir(root))),
                  "config": cfg, "result": result}


def _in_turn(cfgs, todo, root=None):
    """The indices of ``cfgs`` in the order to take them. A run to compute (in ``todo``) that another process is
    computing when this one reaches it goes to the back of the queue, once (stored by the time it comes round
    again, or this process then waits for it), so that two sweeps of one preset side by side split its runs
    instead of queueing behind each other."""
    queue, put_back = collections.deque(range(len(cfgs))), set()
    while queue:
        i = queue.popleft()
        cfg = cfgs[i]
        if cfg in todo and i not in put_back and not results.path(cfg, root).exists() and results.busy(cfg, root):
            put_back.add(i)
            queue.append(i)
            continue
        yield i


def collect(preset: str, scale: str = "paper", seeds=None, results_dir=None, compute: bool = False,
            device: str = "auto", progress: bool = True, **options):
    """Every run of ``preset`` as a pandas DataFrame (a row per config, stored or not).

    Runs stored in ``results_dir`` are loaded; with ``compute``, the missing ones that this machine
    can compute (data present) are computed and stored, with a progress bar. Columns: the config's
    fields (and "regime" for feed-forward runs), its metrics, "wall_seconds", "stored", "file" (relative
    to the results folder), and the objects "config" and "result" (arrays and curves). ``df.attrs``
    holds the preset, scale, seeds, the command that computes the missing runs and, per missing run,
    why it was not computed here.
    """
    import sys

    import pandas as pd
    from tqdm import tqdm

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: use one of {sorted(PRESETS)}")
    cfgs = PRESETS[preset].configs(scale, seeds, **options)
    why = {}
    todo = {c for c in cfgs if compute and not results.path(c, results_dir).exists()}
    # A terminal gets progress bars; a notebook (papermill, jupyter-execute) one line per computed run.
    bars = progress and sys.stderr.isatty()
    bar = tqdm(total=len(todo), desc=preset, disable=not (bars and todo))
    available = functools.cache(data.available)  # a data set's checksums, verified once per collect
    got = {}
    for i in _in_turn(cfgs, todo, results_dir):
        cfg = cfgs[i]
        stored = results.path(cfg, results_dir).exists()
        reason = None if stored else ready(cfg, results_dir, available) or (None if compute else "compute is off")
        r = got[i] = run(cfg, results_dir, compute=compute and reason is None, device=device, progress=bars)
        if r is not None:
            _check_metrics(cfg, r, results_dir)
        if r is None:
            why[results.key(cfg)] = reason or "not computed"
        elif cfg in todo:
            bar.update()
            if progress and not bars:
                print(f"computed {results.path(cfg, results_dir).name} ({preset}, seed {getattr(cfg, 'seed', '-')}) "
                      f"in {r['provenance']['wall_seconds']:.0f} s", file=sys.stderr)
    rows = [_row(cfg, got[i], results_dir) for i, cfg in enumerate(cfgs)]
    bar.close()
    # a preset that selects no run yet (e.g. its rates not chosen) still gives the columns every reader uses
    df = pd.DataFrame(rows) if rows else pd.DataFrame(
        {"type": pd.Series(dtype=object), "wall_seconds": pd.Series(dtype=float), "stored": pd.Series(dtype=bool),
         "file": pd.Series(dtype=object), "config": pd.Series(dtype=object), "result": pd.Series(dtype=object)})
    df.attrs.update(preset=preset, scale=scale, seeds=None if seeds is None else list(seeds), options=options,
                    command=command(preset, scale, seeds, results_dir, **options), why_missing=why)
    return df


def command(preset: str, scale: str = "paper", seeds=None, results_dir=None, **options) -> str:
    """The shell command that computes a preset's runs (into ``results_dir`` if it is not the default)."""
    import shlex

    parts = ["python", "-m", "biaslearn.experiments", preset, "--scale", scale]
    if seeds is not None:
        parts += ["--seeds", *map(str, seeds)]
    if results_dir is not None:
        parts += ["--results-dir", str(results_dir)]
    for k, v in options.items():
        if v:
            parts += [f"--{k}", *map(str, v)]
    return " ".join(shlex.quote(p) for p in parts)


def main(argv=None):
    from tqdm.auto import tqdm

    ap = argparse.ArgumentParser(prog="python -m biaslearn.experiments", description="Run (or resume) the runs of a preset.")
    ap.add_argument("preset", choices=sorted(PRESETS))
    ap.add_argument("--scale", default="paper", choices=SCALE_NAMES)
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--datasets", nargs="+", default=None)
    ap.add_argument("--modes", nargs="+", default=None, help="modes (feedforward, recurrent) or regimes (width)")
    ap.add_argument("--widths", type=int, nargs="+", default=None, help="only these widths")
    ap.add_argument("--device", default="auto")
    from . import launch
    launch.add_arguments(ap, results_dir=True)  # --results-dir, --executor {inline,local,slurm} and the job options
    a = ap.parse_args(argv)
    options = {k: v for k, v in dict(datasets=a.datasets, modes=a.modes, widths=a.widths).items() if v}
    try:
        cfgs = PRESETS[a.preset].configs(a.scale, a.seeds, **options)
    except (ValueError, TypeError, KeyError) as e:
        ap.error(str(e))
    if not cfgs:
        ap.error(f"preset {a.preset} with {options} selects no run")
    if a.executor != "inline":  # one job per missing run, through submitit (biaslearn.launch)
        code = launch.submit_from_args(a.preset, a.scale, a.seeds, options, a)
        if code:
            raise SystemExit(code)
        return
    available = functools.cache(data.available)
    todo = {c for c in cfgs if not results.path(c, a.results_dir).exists()}
    if a.dry_run:  # say what would be computed, here and now, and compute nothing
        root = results.results_dir(a.results_dir)
        print(f"{a.preset} ({a.scale}): {len(todo)} of {len(cfgs)} runs to compute")
        for cfg in (c for c in cfgs if c in todo):
            reason = ready(cfg, a.results_dir, available)
            print(f"  {'skip' if reason else 'would compute'} {results.path(cfg, root).relative_to(root)}"
                  + (f": {reason}" if reason else ""))
        return
    for i in tqdm(_in_turn(cfgs, todo, a.results_dir), desc=a.preset, total=len(cfgs)):
        cfg = cfgs[i]
        reason = ready(cfg, a.results_dir, available)
        if reason:
            tqdm.write(f"skipped {cfg}: {reason}")
            continue
        r = run(cfg, a.results_dir, device=a.device)
        tqdm.write(f"{cfg}: {r['metrics']}, {r['provenance']['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
