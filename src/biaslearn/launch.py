"""The runs of a preset as jobs, through submitit: on this machine (one process per run) or on a Slurm cluster.

    python -m biaslearn.launch submit width --executor slurm --partition gpu --account lab --gpus 1
    python -m biaslearn.launch submit --all --executor slurm --wait      every preset (make reproduce EXECUTOR=slurm)
    python -m biaslearn.launch submit theory_rnn --scale quick --executor local --dry-run
    python -m biaslearn.launch status width                              done / running / queued / failed / missing
    python -m biaslearn.experiments width --executor slurm ...           the same, from the experiments command line

One job per missing run (on Slurm one job array per preset, ``map_array``). Each job calls
``experiments.run(config, results_dir)``: the result is written atomically into the shared results folder,
under the run's lock, exactly as an inline sweep writes it. Runs already stored, in flight (their lock is held
by a live process) or queued as a job of an earlier submission are skipped, as are runs this machine cannot
compute (a data set absent: ``experiments.ready``).

Resources, per preset (``resources``): CPUs and a GPU from ESTIMATES (a GPU only for presets whose runs use
one, and only when ``--gpus`` asks for it); memory from the *measured* peak: the largest ``peak_rss_mb`` in the
provenance of the preset's stored runs (recorded since 2026-12-01), else ESTIMATES, an *estimate* of the peak
of the preset's largest run, times MEM_MARGIN; the time limit from the *measured* wall times: the longest
stored run of the preset, times TIME_MARGIN, plus TIME_EXTRA_MINUTES.

Job files (submitit's pickles, the sbatch scripts, each job's stdout/stderr) go to ``<log dir>/<preset>/``
(default ``logs/launch/`` in the repository: on a cluster it must be on a shared file system, as must the
results folder and this repository's .venv, which the jobs run with). Every submitted job is recorded in
``<log dir>/jobs.jsonl`` (run key, file, job id, log paths), which ``status`` reads.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import pickle
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from . import data, experiments, results
from .data import PAPER_TASKS
from .presets import PRESETS, SCALE_NAMES

EXECUTORS = ("inline", "local", "slurm")
LOG_DIR = results.ROOT / "logs" / "launch"  # $BIASLEARN_LOGS overrides it
TIME_MARGIN = 2.0          # time limit = longest stored run x TIME_MARGIN + TIME_EXTRA_MINUTES
TIME_EXTRA_MINUTES = 10    # job start-up, imports and data loading on a busy file system
MEM_MARGIN = 1.25          # memory request = the preset's estimate x MEM_MARGIN, rounded up to a whole GB
DEFAULT_MINUTES = 60       # time limit of a preset with no stored run (nor a stand-in): an estimate
QUICK = {"mem_gb": 2.0, "minutes": 10}  # scale "quick": tiny runs (seconds each) when none is stored to time
MAX_ARRAY = 1000           # Slurm's default MaxArraySize is 1001: larger submissions are split into arrays
ACTIVE = ("PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "CONFIGURING", "COMPLETING", "REQUEUE_HOLD",
          "REQUEUE_FED", "SIGNALING", "STAGE_OUT")  # sacct/squeue states of a job that may still write its result

# Runs stored before 2026-12-01 do not record their peak memory: for presets without a measured peak, these
# estimates, each with its source. "bench" is
# book/bench.json (make bench): the bias-only fast path at width 32,000 over 60,000 cached rows of float32
# (7.2 GB of cache) peaked at 8.3 GB, so 1.1 GB besides the cache; the plain and fully trained networks at 1.2
# and 1.4 GB. A cached run holds (training + evaluation rows) x width x bytes; every data set has 60,000
# training and 10,000 test images (validation runs: 50,000 + 10,000).


@dataclasses.dataclass(frozen=True)
class Estimate:
    cpus: int        # CPUs per job (the stored runs used 1 or 2 threads: their wall times hold with 2 or more)
    mem_gb: float    # estimated peak memory of the preset's largest run, GB
    gpu: bool        # its runs train on a GPU when given one (device "auto"); the theory runs are too small to gain
    source: str      # where mem_gb comes from
    like: str | None = None  # the preset whose stored wall times stand in while this one has none stored


_FF = "estimate: bench's measured 8.3 GB peak for the bias-only fast path at width 32,000 (60,000 cached rows)"
_SEQ = "estimate, not measured: recurrent networks of width <= 1,024, batches of 64; torch itself takes most of it"
ESTIMATES = {
    "feedforward": Estimate(4, 9.5, True, _FF + " + the 10,000 test rows' cache (1.2 GB)"),
    "feedforward_selection": Estimate(4, 8.3, True, _FF + ": 50,000 + 10,000 validation rows, the same 60,000"),
    "feedforward_tuning": Estimate(4, 8.3, True, _FF + ": 50,000 + 10,000 validation rows, the same 60,000",
                                   like="feedforward_selection"),
    "feedforward_tuned": Estimate(4, 9.5, True, _FF + " + the 10,000 test rows' cache (1.2 GB)", like="feedforward"),
    "feedforward_bf16": Estimate(4, 5.3, True, "estimate: bench's 1.1 GB besides the cache + 70,000 rows x 32,000 "
                                 "in bfloat16 (4.2 GB)"),
    "feedforward_kernel": Estimate(2, 9.5, False, _FF + " + the 10,000 test rows' cache (1.2 GB); the compiled "
                                   "step runs on the CPU only", like="feedforward"),
    "feedforward_autocast": Estimate(2, 2.0, True, "estimate: bench's 1.5 GB peak for full training at width 32,000 "
                                     "(1.4 GB under bfloat16 autocast); nothing cached", like="feedforward"),
    "feedforward_swap": Estimate(2, 2.5, True, "estimate: one test set's cache at a time (10,000 x 32,000 float32, "
                                 "1.2 GB) + bench's 1.1 GB besides the cache"),
    "width": Estimate(4, 9.7, True, "estimate: the widest runs (bias-only at 64,000 in bfloat16, readout at 32,000 "
                      "in float32) cache 70,000 rows in 8.3 GB, + bench's 1.1 GB besides the cache, + W_in (0.2 GB)"),
    "width_selection": Estimate(2, 1.8, True, "estimate: 60,000 rows x 3,162 in float32 (0.7 GB) + bench's 1.1 GB "
                                "besides the cache"),
    "width_mask": Estimate(2, 1.9, True, "estimate: 70,000 rows x 3,162 in float32 (0.8 GB) + bench's 1.1 GB "
                           "besides the cache"),
    "recurrent": Estimate(2, 2.0, True, _SEQ),
    "recurrent_selection": Estimate(2, 2.0, True, _SEQ),
    "recurrent_coarse": Estimate(2, 2.0, True, _SEQ, like="recurrent"),
    "recurrent_coarse_selection": Estimate(2, 2.0, True, _SEQ, like="recurrent_selection"),
    "lorenz": Estimate(2, 2.0, True, _SEQ),
    "lorenz_selection": Estimate(2, 2.0, True, _SEQ),
    "theory_matching": Estimate(2, 3.0, False, "estimate: 30,000 units on 2,001 points in float64 (0.5 GB an array)"),
    "theory_gradient": Estimate(2, 2.0, False, "estimate: widths <= 3,000 on 401 points"),
    "theory_tolerance": Estimate(2, 3.0, False, "estimate: 30,000 units on 2,001 points in float64 (0.5 GB an array)"),
    "theory_width": Estimate(2, 2.0, False, "estimate: widths <= 3,000 on 401 points"),
    "theory_activation": Estimate(2, 3.0, False, "estimate: 10,000 units on 2,001 points in float64, a few arrays"),
    "theory_rnn": Estimate(2, 2.0, False, "estimate: RNNs of width <= 200"),
}



def estimate(preset: str) -> Estimate:
    """The preset's entry of ESTIMATES; a preset without one (added since) gets that of its runs' type, said so."""
    if preset in ESTIMATES:
        return ESTIMATES[preset]
    from . import multitask, seq, train

    kinds = {type(c) for c in PRESETS[preset].configs("paper")}
    by_type = ((train.Config, "feedforward"), (multitask.SwapConfig, "feedforward_swap"), (seq.SeqConfig, "recurrent"))
    like = next((p for t, p in by_type if t in kinds), "theory_matching")  # the theory types: its largest
    e = ESTIMATES[like]
    return dataclasses.replace(e, source=f"{e.source} (no entry for {preset} in launch.ESTIMATES: taken from {like})",
                               like=None)


# What `make reproduce` computes (submit --all): every preset, with the options its chapter passes where they
# differ from the preset's defaults (REPRODUCE), and the given seeds for the presets that run several seeds by
# default (``seeded``: those a chapter collects with its `seeds`; the learning-rate grids run seed 0 only).
REPRODUCE = {"feedforward_selection": {"datasets": PAPER_TASKS}}


def seeded(preset: str) -> bool:
    """Whether a preset runs several seeds by default (so `make reproduce SEEDS=...` gives it those seeds)."""
    import inspect

    default = inspect.signature(PRESETS[preset].make).parameters["seeds"].default
    return len(list(default)) > 1


@dataclasses.dataclass(frozen=True)
class Resources:
    cpus: int
    mem_gb: int
    minutes: int
    gpus: int
    why: dict  # {"mem": ..., "time": ...}: where each number comes from

    def line(self) -> str:
        gpu = f", {self.gpus} GPU" if self.gpus else ""
        return f"{self.cpus} CPUs{gpu}, {self.mem_gb} GB, {self.minutes} min"


def log_dir(path=None) -> Path:
    """The folder of job files: ``path``, else $BIASLEARN_LOGS, else logs/launch in the repository."""
    return Path(path or os.environ.get("BIASLEARN_LOGS") or LOG_DIR).absolute()


def longest(preset: str, scale: str = "paper", roots=(None,), cfgs=()) -> tuple[float | None, int]:
    """The longest stored wall time (seconds) among the preset's runs at ``scale`` (its default selection and
    ``cfgs``) in any of the results folders ``roots``, and how many stored runs it is the longest of."""
    walls = {}
    for cfg in [*PRESETS[preset].configs(scale), *cfgs]:
        for root in roots:
            p = results.path(cfg, root)
            if p.exists():
                walls[results.key(cfg)] = results.read(p)["provenance"]["wall_seconds"]
                break
    return (max(walls.values()) if walls else None), len(walls)


def peak(preset: str, scale: str = "paper", roots=(None,), cfgs=()) -> tuple[float | None, int]:
    """The largest stored peak resident memory (MB, provenance "peak_rss_mb") among the preset's runs at
    ``scale`` in any of ``roots``, and how many stored runs recorded one (runs stored before it was recorded: 0)."""
    peaks = {}
    for cfg in [*PRESETS[preset].configs(scale), *cfgs]:
        for root in roots:
            p = results.path(cfg, root)
            if p.exists():
                mb = results.read(p, arrays=False)["provenance"].get("peak_rss_mb")
                if mb:
                    peaks[results.key(cfg)] = mb
                break
    return (max(peaks.values()) if peaks else None), len(peaks)


def resources(preset: str, scale: str = "paper", results_dir=None, gpus: int = 0, cpus: int | None = None,
              mem_gb: float | None = None, margin: float = TIME_MARGIN, cfgs=()) -> Resources:
    """What one job of ``preset`` asks for (see the module's docstring). The stored wall times are looked up in
    ``results_dir`` and in the repository's results/ (the book's runs)."""
    est = estimate(preset)
    roots = list(dict.fromkeys([results.results_dir(results_dir), results.results_dir(results.ROOT / "results")]))
    wall, n = longest(preset, scale, roots, cfgs)
    stand_in = None
    if wall is None and est.like and scale == "paper":
        (wall, n), stand_in = longest(est.like, scale, roots), est.like
    if wall is not None:
        minutes = math.ceil(wall * margin / 60 + TIME_EXTRA_MINUTES)
        time_why = (f"measured: longest of {n} stored{' ' + stand_in if stand_in else ''} runs {wall / 60:.1f} min "
                    f"x {margin:g} + {TIME_EXTRA_MINUTES} min")
    else:
        minutes = QUICK["minutes"] if scale == "quick" else DEFAULT_MINUTES
        time_why = f"estimate: no {scale} run of {preset} stored to time"
    measured, n_mem = peak(preset, scale, roots, cfgs)
    if mem_gb is not None:
        mem, mem_why = mem_gb, "given"
    elif measured:
        mem, mem_why = measured / 1024, f"measured: largest peak memory of {n_mem} stored runs, {measured / 1024:.1f} GB"
    else:
        mem = QUICK["mem_gb"] if scale == "quick" else est.mem_gb
        mem_why = "estimate: scale quick, tiny runs" if scale == "quick" else est.source
    mem_why += f", x {MEM_MARGIN:g}"
    return Resources(cpus=cpus or est.cpus, mem_gb=math.ceil(mem * MEM_MARGIN), minutes=minutes,
                     gpus=gpus if est.gpu else 0, why={"mem": mem_why, "time": time_why})


# --- What a GPU would change (the reproducing chapter's budget) ---------------------------------------------
# No run of the book was computed on a GPU: this is an estimate from arithmetic at assumed speeds, roughly an
# NVIDIA A100's (19.5 TFLOP/s float32 peak, 1,555 GB/s), taken at about half to two thirds of its peaks.
GPU_ASSUMED = {"flops": 10e12,        # float32 matrix multiplies, sustained
               "bytes_per_s": 1000e9,  # device memory read by the fast path's passes over its cache
               "start_s": 10.0}        # per run besides the arithmetic: CUDA start-up, loading the data set


def gpu_seconds(cfg) -> float | None:
    """Estimated seconds of a feed-forward run on one GPU (GPU_ASSUMED): a fully trained run's matrix
    arithmetic (6 flops per weight per training example, 2 per evaluated one, every epoch); a cached run's
    projection (once) and one read of its cache per epoch; plus the start-up. Data sets of 60,000 training and
    10,000 test images. None for the other runs (recurrent, theory: small networks, sequential steps), for which
    no gain is assumed."""
    from . import train

    if not isinstance(cfg, train.Config):
        return None
    n = 60_000 - (cfg.val_size if cfg.split == "val" else 0)
    n = min(n, cfg.n_train) if cfg.n_train else n
    m = cfg.val_size if cfg.split == "val" else 10_000
    g = GPU_ASSUMED
    if cfg.mode == "full":
        work = cfg.epochs * (6 * n + 2 * m) * (784 + 10) * cfg.n_hidden / g["flops"]
    else:
        cache = (n + m) * cfg.n_hidden * (2 if cfg.cache_dtype == "bfloat16" else 4)
        work = 2 * (n + m) * 784 * cfg.n_hidden / g["flops"] + cfg.epochs * cache / g["bytes_per_s"]
    return work + g["start_s"]


# --- What one job runs -------------------------------------------------------------------------------------

def run_job(cfg, results_dir: str, device: str = "auto", threads: int | None = None) -> dict:
    """One job: ``experiments.run(cfg)`` into ``results_dir`` (locked, written atomically; a run stored or locked
    meanwhile is loaded, not recomputed). Returns (and prints) its file, wall time, device and peak memory."""
    import resource

    import torch

    if threads:
        torch.set_num_threads(threads)
    p = results.path(cfg, results_dir)
    print(f"biaslearn job: {p} ({type(cfg).__name__}) on {socket.gethostname()}, {torch.get_num_threads()} threads, "
          f"device {device}", flush=True)
    r = experiments.run(cfg, results_dir, compute=True, device=device, progress=False)
    out = {"file": str(p), "wall_seconds": r["provenance"]["wall_seconds"], "device": r["provenance"]["device"],
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}  # Linux: KiB
    print("biaslearn result: " + json.dumps(out), flush=True)
    return out


# --- The job records and the scheduler's view of them ------------------------------------------------------

def _records(logs: Path) -> dict[str, dict]:
    """The latest job record of each run key in ``logs``/jobs.jsonl (a torn last line is ignored)."""
    out = {}
    f = logs / "jobs.jsonl"
    if f.exists():
        for line in f.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            out[(rec["results_dir"], rec["key"])] = rec
    return out


def _record(logs: Path, recs: list[dict]) -> None:
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "jobs.jsonl", "a") as f:  # one write per line (O_APPEND): concurrent launchers do not interleave
        for rec in recs:
            f.write(json.dumps(rec) + "\n")
            f.flush()


def _run(cmd: list[str]) -> str | None:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout if p.returncode == 0 else None


def slurm_states(job_ids) -> dict[str, str]:
    """{job id ("123" or "123_4"): Slurm state} from sacct (accounting), else squeue (live jobs only)."""
    mains = sorted({j.split("_")[0] for j in job_ids})
    if not mains:
        return {}
    from submitit.slurm.slurm import SlurmInfoWatcher, read_job_id

    out = _run(["sacct", "-o", "JobID,State,NodeList", "--parsable2", *[a for m in mains for a in ("-j", m)]])
    if out is not None:
        return {k: v["State"] for k, v in SlurmInfoWatcher().read_info(out).items()}
    out = _run(["squeue", "-h", "-o", "%i|%T", "-j", ",".join(mains)])
    states = {}
    for line in (out or "").splitlines():
        jid, _, state = line.partition("|")
        for part in read_job_id(jid.strip()):
            ids = ([f"{part[0]}_{i}" for i in range(int(part[1]), int(part[2]) + 1)] if len(part) == 3
                   else ["_".join(part)])
            states.update({i: state.strip() for i in ids})
    return states


def job_state(rec: dict, slurm: dict | None = None) -> tuple[str, str]:
    """("active" | "finished" | "unknown", detail) of a recorded job: its outcome pickle if written, else the
    scheduler's state (sacct/squeue) on Slurm, or whether its process lives for a local job."""
    outcome = Path(rec["folder"]) / f"{rec['job_id']}_0_result.pkl"
    if outcome.exists():
        try:
            with open(outcome, "rb") as f:
                kind, value = pickle.load(f)
        except Exception as e:  # noqa: BLE001 (a pickle of another environment: say so, do not crash status)
            return "finished", f"its outcome {outcome} cannot be read ({e})"
        if kind == "error":
            return "finished", "raised " + (value.strip().splitlines() or ["an error"])[-1]
        return "finished", "finished"
    if rec["executor"] == "slurm":
        state = (slurm or {}).get(rec["job_id"])
        if state is None:
            return "unknown", "not known to sacct or squeue"
        return ("active" if state.split()[0] in ACTIVE else "finished"), state
    if rec.get("host") != socket.gethostname():
        return "unknown", f"a local job on {rec.get('host')}"
    return ("active", "running") if results._alive(int(rec["job_id"])) else ("finished", "its process ended without an outcome")


def tail(path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ("" if it is absent)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _lock(cfg, root) -> dict | None:
    """The holder of the run's lock if a live process holds it (results' own staleness rule), else None."""
    info, _ = results._holder(results.path(cfg, root).with_suffix(".lock"))
    return None if info is None or results._stale(info) else info


# --- Plan, submit, status ----------------------------------------------------------------------------------

def status(preset: str, scale: str = "paper", seeds=None, results_dir=None, logs=None, **options) -> list[dict]:
    """A row per run of the selection: {"file", "state", "job", "log", "detail", "config"}, state one of "done",
    "running" (its lock is held, or its job runs), "queued" (its job waits), "failed" (its job ended without
    storing the result), "missing" (never submitted, or its job is unknown)."""
    root = results.results_dir(results_dir).absolute()
    cfgs = PRESETS[preset].configs(scale, seeds, **options)
    recs = _records(log_dir(logs))
    mine = {results.key(c): recs.get((str(root), results.key(c))) for c in cfgs}
    slurm = slurm_states([r["job_id"] for r in mine.values() if r and r["executor"] == "slurm"])
    rows, available = [], functools.cache(data.available)  # a data set's checksums verified once
    for cfg in cfgs:
        rec = mine[results.key(cfg)]
        row = {"file": str(results.path(cfg, root).relative_to(root)), "job": rec and rec["job_id"],
               "log": rec and rec["stderr"], "config": cfg}
        phase, detail = job_state(rec, slurm) if rec else (None, "")
        held = _lock(cfg, root)
        if results.path(cfg, root).exists():
            wall = results.read(results.path(cfg, root))["provenance"]["wall_seconds"]
            row |= {"state": "done", "detail": f"{wall:.0f} s"}
        elif held:
            who = "a process" if held.get("unreadable") else f"process {held['pid']} on {held['host']}"
            row |= {"state": "running", "detail": f"locked by {who} since {held.get('started_utc', '?')}"}
        elif phase == "active":
            row |= {"state": "queued" if detail.startswith("PENDING") else "running", "detail": detail}
        elif phase == "finished":
            row |= {"state": "failed", "detail": f"finished without storing its result in {root}"
                    if detail == "finished" else detail}
        else:
            why = experiments.ready(cfg, root, available)
            row |= {"state": "missing", "why": why, "detail": (f"job {rec['job_id']} {detail}; " if rec else "") +
                    (why or "not submitted")}
        rows.append(row)
    return rows


def plan(preset: str, scale: str = "paper", seeds=None, results_dir=None, logs=None, skip_keys=(), **options):
    """The runs of a selection to submit, and the others with why each is skipped: (todo, [(cfg, why)])."""
    todo, skipped = [], []
    for row in status(preset, scale, seeds, results_dir, logs, **options):
        cfg = row["config"]
        running = row["detail"] if row["detail"].startswith("locked") else f"running as job {row['job']}"
        why = ({"done": "stored", "running": running, "queued": f"queued as job {row['job']}"}.get(row["state"])
               or ("submitted above" if results.key(cfg) in skip_keys else None)
               or row.get("why"))
        (skipped.append((cfg, why)) if why else todo.append(cfg))
    return todo, skipped


def _executor(kind: str, folder: Path, res: Resources, preset: str, partition=None, account=None, qos=None,
              setup=(), array_parallelism=None, python=None, visible_gpu: int | None = None):
    """A submitit executor for one preset's jobs: Slurm (sbatch; the resources as #SBATCH lines) or local (a
    process per job, GPU ``visible_gpu`` if the job gets one)."""
    import submitit

    if kind == "local":
        ex = submitit.LocalExecutor(folder=folder)
        gpu = dict(gpus_per_node=1, visible_gpus=[visible_gpu]) if res.gpus and visible_gpu is not None else \
            dict(gpus_per_node=0)  # no GPU: CUDA_VISIBLE_DEVICES is empty in the job
        # no scheduler to fit: a local job stops only when its lock would count as stale (a hung run)
        ex.update_parameters(timeout_min=int(results._lock_max_age() / 60), **gpu,
                             **({"setup": list(setup)} if setup else {}))
        return ex
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm", **({"slurm_python": python} if python else {}))
    lines = [f"export OMP_NUM_THREADS={res.cpus}"]
    lines += [f"export {v}={shlex.quote(os.environ[v])}" for v in ("BIASLEARN_DATA",) if os.environ.get(v)]
    params = dict(name=f"biaslearn-{preset}", timeout_min=res.minutes, mem_gb=res.mem_gb, cpus_per_task=res.cpus,
                  gpus_per_node=res.gpus or None, slurm_partition=partition, slurm_account=account, slurm_qos=qos,
                  slurm_setup=[*lines, *setup], slurm_array_parallelism=array_parallelism)
    ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return ex


def _rec(job, cfg, root, preset, kind, res, folder) -> dict:
    from submitit.core.utils import JobPaths

    paths = JobPaths(folder, job.job_id, 0)
    return {"key": results.key(cfg), "file": str(results.path(cfg, root).relative_to(root)), "preset": preset,
            "results_dir": str(root), "executor": kind, "job_id": str(job.job_id), "folder": str(folder),
            "stdout": str(paths.stdout), "stderr": str(paths.stderr), "host": socket.gethostname(),
            "resources": res.line(), "submitted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def submit(preset: str, scale: str = "paper", seeds=None, executor: str = "local", results_dir=None, logs=None,
           gpus: int | None = None, cpus: int | None = None, mem_gb: float | None = None,
           time_margin: float = TIME_MARGIN, partition=None, account=None, qos=None, setup=(),
           array_parallelism: int | None = None, parallel: int = 1, python=None, device: str = "auto",
           dry_run: bool = False, fn=None, skip_keys=(), say=print, **options) -> dict:
    """Submit the missing runs of a selection, one job each, and record them (see the module's docstring).

    Slurm: one job array per preset (``map_array``), returned at once (``wait`` polls them). Local: one process
    per run, ``parallel`` at a time (GPU i of ``gpus`` for the i-th slot), and this call returns when all have
    ended. ``fn(cfg, results_dir, device, threads)`` is what each job runs (``run_job``; the tests pass others).
    Returns {"jobs": [records], "skipped": [(cfg, why)], "resources": Resources}.
    """
    if executor not in ("local", "slurm"):
        raise ValueError(f"executor {executor!r}: use 'local' or 'slurm' ('inline' is experiments.run in this process)")
    if executor == "slurm" and not dry_run and not shutil.which("sbatch"):
        raise ValueError("no sbatch on PATH: submit from a Slurm login node (or use --executor local)")
    root = results.results_dir(results_dir).absolute()
    logs = log_dir(logs)
    todo, skipped = plan(preset, scale, seeds, root, logs, skip_keys, **options)
    if gpus is None:  # local: the GPUs this machine has; a cluster must be asked (--gpus)
        gpus = _visible_gpus() if executor == "local" else 0
    res = resources(preset, scale, root, gpus=min(gpus, 1), cpus=cpus, mem_gb=mem_gb, margin=time_margin, cfgs=todo)
    say(f"{preset} ({scale}): {len(todo)} to submit, {len(skipped)} skipped "
        f"({', '.join(f'{n} {w}' for w, n in Counter(_short(w) for _, w in skipped).most_common())}); "
        f"each job {res.line()} (memory {res.why['mem']}; time {res.why['time']})")
    if dry_run or not todo:
        for cfg in todo:
            say(f"  would submit {results.path(cfg, root).relative_to(root)}")
        return {"jobs": [], "skipped": skipped, "resources": res, "todo": todo}
    results._writable(root)  # fail here, not in every job
    fn = fn or run_job
    folder = logs / preset
    # threads per job: the CPUs asked for on Slurm; locally, this machine's cores shared among the parallel jobs
    threads = res.cpus if executor == "slurm" else cpus or (max(1, (os.cpu_count() or 1) // parallel) if parallel > 1
                                                             else None)
    if executor == "slurm":
        ex = _executor("slurm", folder, res, preset, partition, account, qos, setup, array_parallelism, python)
        recs = []
        for i in range(0, len(todo), MAX_ARRAY):
            chunk = todo[i:i + MAX_ARRAY]
            jobs = ex.map_array(fn, chunk, [str(root)] * len(chunk), [device] * len(chunk), [threads] * len(chunk))
            recs += [_rec(j, c, root, preset, "slurm", res, folder) for j, c in zip(jobs, chunk)]
        _record(logs, recs)
        say(f"  submitted {len(recs)} jobs as array(s) {sorted({r['job_id'].split('_')[0] for r in recs})}; "
            f"logs in {folder}")
        return {"jobs": recs, "skipped": skipped, "resources": res, "todo": todo}
    return {"jobs": _local_pool(todo, fn, root, folder, logs, res, preset, max(1, parallel), gpus, setup, device,
                                threads, say), "skipped": skipped, "resources": res, "todo": todo}


def _short(why: str) -> str:
    return "locked" if why.startswith("locked") else "queued" if why.startswith("queued") else \
        "running" if why.startswith("running") else \
        "data absent" if why.startswith("data set") else why if len(why) < 40 else why[:40] + "..."


def _visible_gpus() -> int:
    try:
        import torch
        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001
        return 0


def _local_pool(todo, fn, root, folder, logs, res, preset, parallel, gpus, setup, device, threads, say) -> list[dict]:
    """Run ``todo`` as local submitit jobs, ``parallel`` at a time; record each; report each as it ends."""
    pending, running, recs = list(todo), {}, []
    while pending or running:
        while pending and len(running) < parallel:
            slot = min(set(range(parallel)) - set(running.values()))
            ex = _executor("local", folder, res, preset, setup=setup, visible_gpu=slot % gpus if gpus else None)
            cfg = pending.pop(0)
            job = ex.submit(fn, cfg, str(root), device, threads)
            rec = _rec(job, cfg, root, preset, "local", res, folder)
            _record(logs, [rec])
            recs.append(rec)
            running[(job, cfg, json.dumps(rec))] = slot
        for k in [k for k in running if k[0].done()]:
            del running[k]
            rec = json.loads(k[2])
            phase, detail = job_state(rec)
            ok = results.path(k[1], root).exists()
            say(f"  {'done  ' if ok else 'FAILED'} {rec['file']} (job {rec['job_id']}"
                f"{'' if ok else ', ' + detail + '; log ' + rec['stderr']})")
        time.sleep(0.2)
    return recs


def submit_all(scale: str = "paper", seeds=None, say=print, **kw) -> dict:
    """Every preset of the book (REPRODUCE: the options its chapter uses; ``seeds`` for the ``seeded`` ones), a
    run shared by two presets submitted once. {preset: what ``submit`` returned}."""
    out, keys = {}, set()
    for p in PRESETS:
        out[p] = submit(p, scale, seeds if seeded(p) else None, skip_keys=frozenset(keys), say=say,
                        **REPRODUCE.get(p, {}), **kw)
        keys |= {results.key(c) for c in out[p]["todo"]}
    return out


def wait(recs: list[dict], poll: float = 60.0, say=print) -> dict:
    """Poll recorded jobs until none is active; {"done", "failed"} lists of their records at the end."""
    seen = None
    while True:
        slurm = slurm_states([r["job_id"] for r in recs if r["executor"] == "slurm"])
        phases = [(r, *job_state(r, slurm)) for r in recs]
        counts = Counter(ph for _, ph, _ in phases)
        if counts != seen:
            say(f"{time.strftime('%H:%M:%S')} jobs: " + ", ".join(f"{n} {ph}" for ph, n in sorted(counts.items())))
            seen = counts
        if not counts.get("active"):
            break
        time.sleep(poll)
    done = [r for r in recs if (Path(r["results_dir"]) / r["file"]).exists()]
    return {"done": done, "failed": [r for r in recs if r not in done]}


# --- Command line --------------------------------------------------------------------------------------------

def add_arguments(ap: argparse.ArgumentParser, results_dir: bool = False) -> None:
    """The options of a submission (also on python -m biaslearn.experiments)."""
    g = ap.add_argument_group("jobs (--executor local or slurm; biaslearn.launch)")
    g.add_argument("--executor", default="inline", choices=EXECUTORS,
                   help="inline: this process, one run after another (default); local: one process per run on this "
                        "machine; slurm: one Slurm job per run (job arrays), through submitit")
    if results_dir:
        g.add_argument("--results-dir", default=None, help="the (shared) results folder; default $BIASLEARN_RESULTS "
                                                           "or results/")
    g.add_argument("--log-dir", default=None,
                   help="job files and logs (default $BIASLEARN_LOGS or logs/launch/ in the repository)")
    g.add_argument("--partition", default=None)
    g.add_argument("--account", default=None)
    g.add_argument("--qos", default=None)
    g.add_argument("--gpus", type=int, default=None, help="a GPU per job for presets whose runs use one when this is "
                   ">= 1 (slurm default 0; local default: this machine's GPUs, one per parallel job)")
    g.add_argument("--cpus", type=int, default=None, help="CPUs per job instead of the preset's")
    g.add_argument("--mem-gb", type=float, default=None, help="memory per job instead of the preset's estimate")
    g.add_argument("--time-margin", type=float, default=TIME_MARGIN,
                   help=f"time limit = longest stored run x this + {TIME_EXTRA_MINUTES} min")
    g.add_argument("--array-parallelism", type=int, default=None, help="slurm: jobs of an array running at once")
    g.add_argument("--parallel", type=int, default=1, help="local: runs at once")
    g.add_argument("--setup", action="append", default=[], help="a shell line run before each job (repeatable), "
                   "e.g. 'module load cuda'")
    g.add_argument("--python", default=None, help="slurm: the python command of the jobs (default: this one)")
    g.add_argument("--wait", action="store_true", help="slurm: wait until every submitted job has ended")
    g.add_argument("--dry-run", action="store_true", help="say what would be computed (inline) or submitted, and do nothing")


def _job_kwargs(a) -> dict:
    return dict(executor=a.executor, results_dir=getattr(a, "results_dir", None), logs=a.log_dir, gpus=a.gpus,
                cpus=a.cpus, mem_gb=a.mem_gb, time_margin=a.time_margin, partition=a.partition, account=a.account,
                qos=a.qos, setup=a.setup, array_parallelism=a.array_parallelism, parallel=a.parallel,
                python=a.python, dry_run=a.dry_run, device=getattr(a, "device", "auto"))


def _finish(subs: dict, a) -> int:
    """After submitting: wait if asked (slurm), then a summary; 1 if a job failed."""
    recs = [r for s in subs.values() for r in s["jobs"]]
    if a.dry_run or not recs:
        return 0
    if a.executor == "slurm" and not a.wait:
        print(f"{len(recs)} jobs submitted; follow them with: python -m biaslearn.launch status PRESET "
              f"(same --scale/--seeds{', --log-dir' if a.log_dir else ''})")
        return 0
    end = wait(recs, poll=60.0) if a.executor == "slurm" else \
        {"done": [r for r in recs if (Path(r["results_dir"]) / r["file"]).exists()]}
    failed = [r for r in recs if r not in end["done"]]
    print(f"{len(recs) - len(failed)} of {len(recs)} jobs stored their run; {len(failed)} failed")
    for r in failed:
        print(f"failed {r['file']} (job {r['job_id']}): log {r['stderr']}\n"
              + _indent(tail(r["stderr"]) or tail(r["stdout"])))
    return 1 if failed else 0


def _indent(text: str) -> str:
    return "\n".join("    | " + ln for ln in text.splitlines())


def submit_from_args(preset: str, scale: str, seeds, options: dict, a) -> int:
    """python -m biaslearn.experiments PRESET --executor local|slurm ...: submit, then as _finish."""
    try:
        return _finish({preset: submit(preset, scale, seeds, **_job_kwargs(a), **options)}, a)
    except (ValueError, RuntimeError, OSError) as e:  # sbatch refused (a partition, an account), a folder, ...
        print(f"error: {e}", file=sys.stderr)
        return 2


def print_status(rows: list[dict], states=None, lines: int = 20, out=print) -> None:
    counts = Counter(r["state"] for r in rows)
    order = ("failed", "running", "queued", "missing", "done")
    out(f"{len(rows)} runs: " + ", ".join(f"{counts[s]} {s}" for s in order if counts[s]))
    for s in order:
        for r in (r for r in rows if r["state"] == s and (not states or s in states)):
            job = f"job {r['job']}" if r["job"] else "no job"
            out(f"{s:8s} {r['file']:44s} {job:16s} {r['detail']}" + (f"  log {r['log']}" if r["log"] else ""))
            if s == "failed" and r["log"]:
                stdout = r["log"][:-len(".err")] + ".out"
                out(_indent(tail(r["log"], lines) or tail(stdout, lines)) or "    (the job's logs are empty)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m biaslearn.launch", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)

    def selection(p, all_ok=False):
        p.add_argument("preset", nargs="?" if all_ok else None, choices=sorted(PRESETS) + ([None] if all_ok else []))
        p.add_argument("--scale", default="paper", choices=SCALE_NAMES)
        p.add_argument("--seeds", type=int, nargs="+", default=None)
        p.add_argument("--datasets", nargs="+", default=None)
        p.add_argument("--modes", nargs="+", default=None)
        p.add_argument("--widths", type=int, nargs="+", default=None)

    s = sub.add_parser("submit", help="submit the missing runs of a preset (or --all) as jobs")
    selection(s, all_ok=True)
    s.add_argument("--all", action="store_true", help="every preset, as `make reproduce` computes them")
    s.add_argument("--device", default="auto")
    add_arguments(s, results_dir=True)
    t = sub.add_parser("status", help="done / running / queued / failed / missing runs of a preset, with log paths")
    selection(t)
    t.add_argument("--results-dir", default=None)
    t.add_argument("--log-dir", default=None)
    t.add_argument("--state", nargs="+", default=None, choices=("done", "running", "queued", "failed", "missing"),
                   help="list only these")
    t.add_argument("--lines", type=int, default=20, help="lines of a failed job's log shown")
    a = ap.parse_args(argv)
    options = {k: v for k, v in dict(datasets=a.datasets, modes=a.modes, widths=a.widths).items() if v}
    try:
        if a.command == "status":
            print_status(status(a.preset, a.scale, a.seeds, a.results_dir, a.log_dir, **options), a.state, a.lines)
            return 0
        if a.executor == "inline":
            ap.error("submit needs --executor local or slurm (inline runs are python -m biaslearn.experiments)")
        if a.all == bool(a.preset):
            ap.error("give a preset or --all")
        if a.all:
            if options:
                ap.error("--all submits every preset with its chapter's options: give no --datasets/--modes/--widths")
            return _finish(submit_all(a.scale, a.seeds, **_job_kwargs(a), **options), a)
        return _finish({a.preset: submit(a.preset, a.scale, a.seeds, **_job_kwargs(a), **options)}, a)
    except (ValueError, TypeError, KeyError) as e:
        ap.error(str(e))
    except (RuntimeError, OSError) as e:  # sbatch refused (a partition, an account), a folder, ...
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from biaslearn import launch  # the module by its name, so the jobs' pickles name biaslearn.launch.run_job

    raise SystemExit(launch.main())
