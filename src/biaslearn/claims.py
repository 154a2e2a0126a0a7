"""The claims ledger: load book/claims.yml and compute each claim's verdict from results/.

    from biaslearn import claims
    for v in claims.evaluate():            # one dict per claim, in the ledger's order
        print(v["id"], v["verdict"], v["measured"])

A verdict is "holds", "does not hold" or "not run here" (with the reason in ``measured``).
Runs are read straight from results/<experiment>/*.json (config, metrics, curve, provenance),
so a claim whose experiment has no stored runs yet, or whose runs lack a field the ledger
names, is "not run here", never an error. The rules are documented at the top of the ledger.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from . import report, results

LEDGER = results.ROOT / "book" / "claims.yml"
HOLDS, FAILS, NOT_RUN = "holds", "does not hold", "not run here"
DIRECTIONS = {"increasing": np.greater, "nondecreasing": np.greater_equal,
              "decreasing": np.less, "nonincreasing": np.less_equal}


def load(path=None) -> list[dict]:
    return yaml.safe_load(Path(path or LEDGER).read_text())["claims"]


def runs(experiment: str, where: dict, root=None) -> list[dict]:
    """Every stored run of ``experiment`` whose config has each field of ``where`` at that value."""
    out = []
    for p in sorted((results.results_dir(root) / experiment).glob("*.json")):
        r = json.loads(p.read_text())
        if not isinstance(r, dict) or not isinstance(r.get("config"), dict):
            continue  # e.g. a benchmark file: not a run
        if all(k in r["config"] and r["config"][k] == v for k, v in where.items()):
            out.append(dict(r, file=p.name))
    return out


def metric(run: dict, name: str):
    """``run["metrics"][name]``, following a dotted path ("r2.x", "r2_dims.0"); None if absent."""
    v = run.get("metrics", {})
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


def _gap(rule, rs):
    k, unit = rule.get("scale", 1), rule.get("unit", "")
    parts, verdicts, used = [], [], []
    for g in rule["groups"]:
        side = {s: [r for r in rs if r["config"].get(rule["per"]) == g and r["config"].get(rule["field"]) == rule[s]]
                for s in ("a", "b")}
        (ma, na), (mb, nb) = _mean(side["a"], rule["metric"]), _mean(side["b"], rule["metric"])
        if na and nb:
            gap = ma - mb
            verdicts.append(HOLDS if gap <= rule["max"] else FAILS)
            used += side["a"] + side["b"]
            parts.append(f"{g}: {gap * k:+.1f} {unit} (n={na}+{nb})".replace(" )", ")"))
    missing = len(rule["groups"]) - len(verdicts)
    if not verdicts:
        have = {}
        for r in rs:
            key = (r["config"].get(rule["field"]), r["config"].get(rule["per"]))
            have[key] = have.get(key, 0) + 1
        stored = "; ".join(f"{f} runs of {g} (n={n})" for (f, g), n in sorted(have.items(), key=str))
        return NOT_RUN, (f"no {rule['per']} has runs of both {rule['a']} and {rule['b']} "
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
    text = ", ".join(f"{name} {v:.3f}" for name, (v, _) in means.items()) + f" (n={len(rs)})"
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


RULES = {"gap": _gap, "trend": _trend, "min": _min, "within": _within, "below": _below}


def verdict(claim: dict, root=None) -> dict:
    """The claim with ``verdict``, ``measured`` (numbers, or why not run), ``runs`` (the files the
    verdict rests on; for "not run here", the matching files stored) and ``provenance`` (count,
    seeds, commit, hardware, wall time of those runs) added."""
    folder = results.results_dir(root) / claim["experiment"]
    rs = runs(claim["experiment"], claim.get("where", {}), root)
    if not folder.is_dir():
        v, text, used = NOT_RUN, f"no results/{claim['experiment']}/ folder: the experiment has not been run", []
    elif not rs:
        sel = ", ".join(f"{k}={v}" for k, v in claim.get("where", {}).items())
        v, text, used = NOT_RUN, f"no run in results/{claim['experiment']}/ has {sel}", []
    else:
        v, text, used = RULES[claim["rule"]["kind"]](claim["rule"], rs)
    used = used or rs  # not run here: say what is stored all the same
    prov = report.provenance([(None, r) for r in used]) if used else "No runs."
    return dict(claim, verdict=v, measured=text, runs=sorted(r["file"] for r in used), provenance=prov)


def evaluate(path=None, root=None) -> list[dict]:
    """Every claim of the ledger with its verdict, in the ledger's order."""
    return [verdict(c, root) for c in load(path)]


def table(verdicts) -> str:
    """A Markdown table: claim (and chapter), the paper says, we measured, verdict."""
    def cell(s):
        return str(s).replace("|", "\\|").replace("\n", " ")
    rows = ["| claim | the paper says | we measured | verdict |", "|---|---|---|---|"]
    for v in verdicts:
        rows.append(f"| {cell(v['claim'])} ({{doc}}`{v['chapter']}`) | “{cell(v['paper_says'])}” "
                    f"| {cell(v['measured'])} | **{v['verdict']}** |")
    return "\n".join(rows)


__all__ = ["load", "runs", "metric", "verdict", "evaluate", "table", "HOLDS", "FAILS", "NOT_RUN"]
