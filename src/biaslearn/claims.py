"""The claims ledger: load book/claims.yml and compute each claim's verdict from results/.

    from biaslearn import claims
    for v in claims.evaluate():            # one dict per claim, in the ledger's order
        print(v["id"], v["verdict"], v["measured"])

A verdict is "holds", "does not hold" or "not run here" (with the reason in ``measured``).
Runs are read through results.stored (an unreadable file is an error that names it); each
run's config is completed with its type's defaults (and, for feed-forward runs, its regime),
so a claim's ``where`` can name any field. A claim whose experiment has no stored runs yet,
or whose runs lack a field the ledger names, is "not run here", never an error. The rules
are documented at the top of the ledger. Every verdict on every page comes from here:
``table(chapter=...)`` is the Markdown table a chapter shows.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import yaml

from . import report, results, scaling

LEDGER = results.ROOT / "book" / "claims.yml"
HOLDS, FAILS, NOT_RUN = "holds", "does not hold", "not run here"
DIRECTIONS = {"increasing": np.greater, "nondecreasing": np.greater_equal,
              "decreasing": np.less, "nonincreasing": np.less_equal}


def load(path=None) -> list[dict]:
    return yaml.safe_load(Path(path or LEDGER).read_text())["claims"]


def _complete(run: dict) -> dict:
    """The run with its config completed by its type's defaults (fields left out of stored keys at
    their default, e.g. rerun = 0), and "regime" for feed-forward runs."""
    from . import experiments, presets

    kind = experiments.CONFIG_TYPES.get(run["config"].get("type"))
    if kind is None:
        return run
    defaults = {f.name: f.default for f in dataclasses.fields(kind) if f.default is not dataclasses.MISSING}
    config = {**defaults, **run["config"]}
    if config.get("type") == "Config":
        config["regime"] = presets.regime(kind.from_dict(config))
    return dict(run, config=config)


def _matches(value, wanted) -> bool:
    return value in wanted if isinstance(wanted, list) else value == wanted


def _selected(config: dict, where: dict) -> bool:
    return all(k in config and _matches(config[k], v) for k, v in where.items())


def runs(experiment, where: dict, root=None, exclude=()) -> list[dict]:
    """Every stored run of ``experiment`` (a folder of results/, or a list of them) whose config has
    each field of ``where`` at that value (or at one of the values of a list), and matches none of
    the ``exclude`` selections."""
    out = []
    for e in ([experiment] if isinstance(experiment, str) else experiment):
        for r in map(_complete, results.stored(e, root)):
            if _selected(r["config"], where) and not any(_selected(r["config"], x) for x in exclude):
                out.append(r)
    return out


def metric(run: dict, name: str):
    """``run["metrics"][name]``, following a dotted path ("r2.x", "r2_dims.0"); a path starting "curve."
    reads the run's curve instead ("curve.eval_acc.4": the score after the fifth epoch). None if absent."""
    v = run.get("metrics", {})
    if name.startswith("curve."):
        v, name = run.get("curve", {}), name[len("curve."):]
    for part in name.split("."):
        if isinstance(v, dict):
            v = v.get(part)
        elif isinstance(v, list) and part.isdigit() and int(part) < len(v):
            v = v[int(part)]
        else:
            return None
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _mean(rs, name):
    vals = [metric(r, name) for r in rs]
    vals = [v for v in vals if v is not None]
    return (float(np.mean(vals)), len(vals)) if vals else (None, 0)


def _rate_ok(rule, run, group, side) -> bool:
    """With ``rates: NAME`` a run counts only at the learning rate presets.NAME chose for (group, side)."""
    if "rates" not in rule:
        return True
    from . import presets

    rate = getattr(presets, rule["rates"]).get((group, side))
    return rate is not None and run["config"].get("lr") == rate


def _gap(rule, rs):
    k, unit = rule.get("scale", 1), rule.get("unit", "")
    parts, verdicts, used = [], [], []
    for g in rule["groups"]:
        side = {s: [r for r in rs if r["config"].get(rule["per"]) == g and r["config"].get(rule["field"]) == rule[s]
                    and _rate_ok(rule, r, g, rule[s])] for s in ("a", "b")}
        (ma, na), (mb, nb) = _mean(side["a"], rule["metric"]), _mean(side["b"], rule["metric"])
        if na and nb:
            gap = ma - mb
            verdicts.append(HOLDS if gap <= rule["max"] else FAILS)
            used += side["a"] + side["b"]
            parts.append(f"{report.title(g)}: {gap * k:+.1f} {unit} (n={na}+{nb}), {verdicts[-1]}".replace(" )", ")"))
    missing = len(rule["groups"]) - len(verdicts)
    if not verdicts:
        have = {}
        for r in rs:
            key = (r["config"].get(rule["field"]), r["config"].get(rule["per"]))
            have[key] = have.get(key, 0) + 1
        stored = "; ".join(f"{f} runs of {g} (n={n})" for (f, g), n in sorted(have.items(), key=str))
        at = f" at the rates of presets.{rule['rates']}" if "rates" in rule else ""
        return NOT_RUN, (f"no {rule['per']} has runs of both {rule['a']} and {rule['b']}{at} "
                         f"(stored: {stored or 'none'})"), used
    tail = f"; {missing} of {len(rule['groups'])} {rule['per']}s not run here" if missing else ""
    return (FAILS if FAILS in verdicts else HOLDS), "gap " + ", ".join(parts) + tail, used


def _trend(rule, rs):
    at = rule["at"]
    means = [_mean([r for r in rs if r["config"].get(rule["x"]) == x], rule["metric"]) for x in at]
    absent = [x for x, (_, n) in zip(at, means) if n == 0]
    if absent:
        return NOT_RUN, f"no {rule['metric']} stored at {rule['x']} = {absent}", []
    m = np.array([v for v, _ in means])
    ok = bool(np.all(DIRECTIONS[rule["direction"]](m[1:], m[:-1])))
    text = f"{rule['metric']} " + " → ".join(f"{v:.3g}" for v in m) + f" at {rule['x']} = {at}"
    text += f" (n = {[n for _, n in means]})"
    if "last_min" in rule:
        ok = ok and m[-1] >= rule["last_min"]
    used = [r for r in rs if r["config"].get(rule["x"]) in at]
    return (HOLDS if ok else FAILS), text, used


def _min(rule, rs):
    means = {name: _mean(rs, name) for name in rule["metrics"]}
    absent = [name for name, (_, n) in means.items() if n == 0]
    if absent:
        return NOT_RUN, f"no stored run has {', '.join(absent)}", []
    ok = all(v >= rule["min"] for v, _ in means.values())
    text = ", ".join(f"{name} {report.num(v, 3)}" for name, (v, _) in means.items()) + f" (n={len(rs)})"
    return (HOLDS if ok else FAILS), text, rs


def _within(rule, rs):
    """At some value of config field x: mean(metric) <= factor * mean(ref), both from the same runs."""
    best = None
    for x in sorted({r["config"].get(rule["x"]) for r in rs}, key=str):
        at = [r for r in rs if r["config"].get(rule["x"]) == x]
        (m, n), (ref, nr) = _mean(at, rule["metric"]), _mean(at, rule["ref"])
        if n and nr and (best is None or m / ref < best[1] / best[2]):
            best = (x, m, ref, n)
    if best is None:
        return NOT_RUN, f"no stored run has both {rule['metric']} and {rule['ref']}", []
    x, m, ref, n = best
    text = (f"best {rule['metric']} {m:.3g} at {rule['x']} = {x} (n={n}); "
            f"{rule['factor']:g} × {rule['ref']} = {rule['factor'] * ref:.3g}")
    return (HOLDS if m <= rule["factor"] * ref else FAILS), text, rs


def _below(rule, rs):
    """At some value of config field x: mean(metric) <= max."""
    means = {x: _mean([r for r in rs if r["config"].get(rule["x"]) == x], rule["metric"])
             for x in {r["config"].get(rule["x"]) for r in rs}}
    means = {x: mn for x, mn in means.items() if mn[1]}
    if not means:
        return NOT_RUN, f"no stored run has {rule['metric']}", []
    x = min(means, key=lambda k: means[k][0])
    m, n = means[x]
    text = f"best {rule['metric']} {m:.3g} at {rule['x']} = {x} (n={n}); threshold {rule['max']:.3g}"
    return (HOLDS if m <= rule["max"] else FAILS), text, rs


def _beats(rule, rs):
    """Every metric in ``metrics`` (mean over runs) > mean(ref) of the same runs (e.g. a trivial predictor)."""
    ref, nr = _mean(rs, rule["ref"])
    means = {name: _mean(rs, name) for name in rule["metrics"]}
    absent = [name for name, (_, n) in means.items() if n == 0] + ([rule["ref"]] if not nr else [])
    if absent:
        return NOT_RUN, f"no stored run has {', '.join(absent)}", []
    ok = all(v > ref for v, _ in means.values())
    text = (", ".join(f"{name} {report.num(v, 3)}" for name, (v, _) in means.items())
            + f" vs {rule['ref']} {report.num(ref, 3)} (n={len(rs)})")
    return (HOLDS if ok else FAILS), text, rs


def _beats_runs(rule, rs):
    """Every metric in ``metrics``, mean over the runs matching ``runs``, > its mean over the runs matching
    ``ref_where`` (a baseline stored as runs of its own, e.g. the linear autoregression)."""
    sel = [r for r in rs if _selected(r["config"], rule["runs"])]
    ref = [r for r in rs if _selected(r["config"], rule["ref_where"])]
    means = {name: (_mean(sel, name), _mean(ref, name)) for name in rule["metrics"]}
    what = ", ".join(f"{k}={v}" for k, v in rule["ref_where"].items())
    absent = [f"{name} in the runs with {side}" for name, (a, b) in means.items()
              for side, (_, n) in (("the compared selection", a), (what, b)) if n == 0]
    if absent:
        return NOT_RUN, f"no stored {'; no stored '.join(absent)}", sel + ref
    ok = all(a > b for (a, _), (b, _) in means.values())
    text = ", ".join(f"{name} {report.num(a)} vs {report.num(b)}" for name, ((a, _), (b, _)) in means.items())
    return (HOLDS if ok else FAILS), text + f" with {what} (n={len(sel)} vs {len(ref)})", sel + ref


def _curves(rule, rs, group, side):
    """{width: [metric per run]} of the runs of one group whose config matches ``rule[side]``."""
    sel = [r for r in rs if r["config"].get(rule["per"]) == group
           and all(_matches(r["config"].get(k), v) for k, v in rule[side].items())]
    curve = {}
    for r in sel:
        if metric(r, rule["metric"]) is not None:
            curve.setdefault(r["config"]["n_hidden"], []).append(metric(r, rule["metric"]))
    return dict(sorted(curve.items())), sel


def _matched(rule, rs):
    """Per group: at every width n of the `full` runs where it can be decided, the `bias` runs need more
    than factor * n units to reach the same mean metric. Decided at n where bias matches it at some
    width, or was run out to factor * n units without matching it."""
    parts, verdicts, used = [], [], []
    for g in rule["groups"]:
        (bias, rb), (full, rf) = _curves(rule, rs, g, "bias"), _curves(rule, rs, g, "full")
        if not bias or not full:
            continue
        widest = max(bias)
        dec = [(n, m) for n, _, m, why in scaling.matched_widths(bias, full)
               if m is not None or (why == scaling.NOT_REACHED and widest >= rule["factor"] * n)]
        if not dec:
            parts.append(f"{report.title(g)}: no width decidable")
            continue
        ok = all(m is None or m > rule["factor"] * n for n, m in dec)
        verdicts.append(HOLDS if ok else FAILS)
        used += rb + rf
        parts.append(f"{report.title(g)}: " + ", ".join(f"n={n}: " + (f"{m / n:,.0f}×" if m else "not reached") for n, m in dec)
                     + f", {verdicts[-1]}")
    if not verdicts:
        return NOT_RUN, "; ".join(parts) or "no group has runs of both sides", used
    return (FAILS if FAILS in verdicts else HOLDS), "bias-only width / full width to match it: " + "; ".join(parts), used


def _gain(rule, rs):
    """Per group: the mean metric at width `at` (interpolated in log width) has made more than
    `min_fraction` of the gain from the narrowest to the widest run."""
    parts, verdicts, used = [], [], []
    for g in rule["groups"]:
        curve, sel = _curves(rule, rs, g, "runs")
        mid = scaling.interpolate(curve, rule["at"]) if len(curve) >= 2 else None
        if mid is None:
            continue
        _, m = scaling.mean_curve(curve)
        frac = (mid - m[0]) / (m[-1] - m[0])
        verdicts.append(HOLDS if frac > rule["min_fraction"] else FAILS)
        used += sel
        parts.append(f"{report.title(g)}: {frac:.0%} of the gain from width {min(curve)} to {max(curve):,} is made by "
                     f"{rule['at']:,}, {verdicts[-1]}")
    if not verdicts:
        return NOT_RUN, f"no group has runs on both sides of width {rule['at']:,}", used
    return (FAILS if FAILS in verdicts else HOLDS), "; ".join(parts), used


def _diagonal(rule, rs):
    """`metric` is a dict "a->b" (task a's biases on task b's test set): for every task b of `tasks`, the mean of
    b->b exceeds the mean of a->b by more than `margin` for every other task a (a swapped-bias matrix)."""
    k, unit, tasks = rule.get("scale", 1), rule.get("unit", ""), rule["tasks"]
    parts, verdicts = [], []
    for b in tasks:
        own, _ = _mean(rs, f"{rule['metric']}.{b}->{b}")
        others = {a: _mean(rs, f"{rule['metric']}.{a}->{b}")[0] for a in tasks if a != b}
        if own is None or any(v is None for v in others.values()):
            return NOT_RUN, f"no stored run has the {rule['metric']} of every pair of {tasks} (missing on {b})", []
        margin = own - max(others.values())
        verdicts.append(HOLDS if margin > rule["margin"] else FAILS)
        parts.append(f"{report.title(b)}: {margin * k:+.1f} {unit}".replace(" )", ")"))
    text = (f"own biases minus the best other task's, on each task: " + ", ".join(parts)
            + f" (n={len(rs)}; needed > {rule['margin'] * k:g} {unit})")
    return (FAILS if FAILS in verdicts else HOLDS), text, rs


def _each(rule, rs):
    """At EVERY value of config field `x` in `at` (all must be present): the `stat` ("mean", the default, or
    "median") of `metric` is >= `min` and <= `max` (either may be left out); optional `max_spread`: the largest
    of those values minus the smallest is <= it (a metric that does not depend on x)."""
    stat = {"mean": np.mean, "median": np.median}[rule.get("stat", "mean")]
    vals, ns = {}, {}
    for x in rule["at"]:
        v = [metric(r, rule["metric"]) for r in rs if r["config"].get(rule["x"]) == x]
        v = [u for u in v if u is not None]
        if v:
            vals[x], ns[x] = float(stat(v)), len(v)
    absent = [x for x in rule["at"] if x not in vals]
    if absent:
        return NOT_RUN, f"no {rule['metric']} stored at {rule['x']} = {absent}", []
    ok = all(rule.get("min", -np.inf) <= v <= rule.get("max", np.inf) for v in vals.values())
    spread = max(vals.values()) - min(vals.values())
    if "max_spread" in rule:
        ok = ok and spread <= rule["max_spread"]
    bounds = " and ".join(f"{k} {rule[k]:g}" for k in ("min", "max", "max_spread") if k in rule)
    text = (f"{rule.get('stat', 'mean')} {rule['metric']} " + ", ".join(f"{vals[x]:.3g}" for x in rule["at"])
            + f" at {rule['x']} = {rule['at']} (n = {[ns[x] for x in rule['at']]}; spread {spread:.3g}); needed: {bounds}")
    return (HOLDS if ok else FAILS), text, [r for r in rs if r["config"].get(rule["x"]) in rule["at"]]


def _same_winner(rule, rs):
    """Over the values of config field `x` in `at` (all must be present): the value with the highest mean `proxy`
    is one with the highest mean `metric` (a cheaper score picks the candidate the real one picks); with
    `order: true`, the proxy also orders every candidate as the metric does (ties in either: no order)."""
    means = {}
    for name in (rule["metric"], rule["proxy"]):
        means[name] = {x: _mean([r for r in rs if r["config"].get(rule["x"]) == x], name)[0] for x in rule["at"]}
        absent = [x for x, v in means[name].items() if v is None]
        if absent:
            return NOT_RUN, f"no {name} stored at {rule['x']} = {absent}", []
    m, p = means[rule["metric"]], means[rule["proxy"]]
    best = lambda v: [x for x in rule["at"] if v[x] == max(v.values())]
    order = lambda v: sorted(rule["at"], key=lambda x: -v[x])
    ok = best(p)[0] in best(m) and (not rule.get("order") or (order(p) == order(m) and len(set(m.values())) ==
                                                               len(m) and len(set(p.values())) == len(p)))
    text = "; ".join(f"{name} " + ", ".join(f"{v[x]:.4f}" for x in rule["at"]) + " (best first: "
                     + ", ".join(map(str, order(v))) + ")" for name, v in ((rule["metric"], m), (rule["proxy"], p)))
    used = [r for r in rs if r["config"].get(rule["x"]) in rule["at"]]
    return (HOLDS if ok else FAILS), f"{text} at {rule['x']} = {rule['at']}", used


RULES = {"gap": _gap, "trend": _trend, "min": _min, "within": _within, "below": _below, "beats": _beats,
         "beats_runs": _beats_runs, "matched": _matched, "gain": _gain, "each": _each, "diagonal": _diagonal,
         "same_winner": _same_winner}


def verdict(claim: dict, root=None) -> dict:
    """The claim with ``verdict``, ``measured`` (numbers, or why not run), ``runs`` (the files the
    verdict rests on; for "not run here", the matching files stored), ``provenance`` (count,
    seeds, commit, hardware, wall time of those runs) and ``folders`` (its results/ folders) added."""
    exps = [claim["experiment"]] if isinstance(claim["experiment"], str) else claim["experiment"]
    rs = runs(exps, claim.get("where", {}), root, claim.get("exclude", ()))
    if not any((results.results_dir(root) / e).is_dir() for e in exps):
        v, text, used = NOT_RUN, f"no results/{exps[0]}/ folder: the experiment has not been run", []
    elif not rs:
        sel = ", ".join(f"{k}={v}" for k, v in claim.get("where", {}).items())
        v, text, used = NOT_RUN, f"no run in results/{'|'.join(exps)}/ has {sel}", []
    else:
        v, text, used = RULES[claim["rule"]["kind"]](claim["rule"], rs)
    used = used or rs  # not run here: say what is stored all the same
    prov = report.provenance(used) if used else "No runs."
    return dict(claim, verdict=v, measured=text, runs=sorted(r["file"] for r in used), provenance=prov, folders=exps)


def evaluate(path=None, root=None, chapter: str | None = None) -> list[dict]:
    """Every claim of the ledger (of one chapter, if named) with its verdict, in the ledger's order."""
    return [verdict(c, root) for c in load(path) if chapter is None or c["chapter"] == chapter]


def table(verdicts=None, chapter: str | None = None, root=None) -> str:
    """A Markdown table: claim (and chapter), the paper says, we measured, verdict. Either of given
    verdicts, or of the ledger's claims of ``chapter`` judged against ``root``."""
    if verdicts is None:
        verdicts = evaluate(root=root, chapter=chapter)

    def cell(s):
        return str(s).replace("|", "\\|").replace("\n", " ")
    rows = ["| claim | the paper says | we measured | verdict |", "|---|---|---|---|"]
    for v in verdicts:
        where = "" if chapter else f" ({{doc}}`{v['chapter']}`)"
        rows.append(f"| {cell(v['claim'])}{where} | “{cell(v['paper_says'])}” "
                    f"| {cell(v['measured'])} | **{v['verdict']}** |")
    return "\n".join(rows)


__all__ = ["load", "runs", "metric", "verdict", "evaluate", "table", "HOLDS", "FAILS", "NOT_RUN"]
