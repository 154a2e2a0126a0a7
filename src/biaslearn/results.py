"""The results cache: a run is a pure function of its config, its result one JSON file.

    results/<experiment>/<key>.json      key = short hash of the canonical config + SCHEMA
    results/<experiment>/<key>.npz       optional arrays (e.g. learned bias vectors)
    results/<experiment>/<key>.lock      only while a process computes the run (see below)

The JSON holds ``config``, ``metrics``, ``curve`` and ``provenance`` (git commit, package
versions, device, CUDA and cuDNN versions, threads, determinism settings, wall seconds). Every
reader of results/ goes through ``read`` (one file), ``load`` (one config) or ``stored`` (a folder),
which name the file in every error. ``python -m biaslearn.results verify`` recomputes the cheapest
stored runs of every experiment and reports each whose metrics moved (see ``verify``).

``cached(config, fn)`` loads an existing result, or, if ``compute`` is on, runs ``fn(config)`` and
stores what it returns:

* the results folder is created and checked writable before ``fn`` runs, so a folder that cannot
  be written fails at once, naming it, not after hours of training;
* the run is locked first: ``<key>.lock`` is created atomically and names the process (PID, host,
  start time). Concurrent sweeps on one results folder never train a run twice: a process that finds
  the lock held by a live process waits (saying so once) and then loads what the other one stored.
  A stale lock (its process gone on this host, or older than ``LOCK_MAX_AGE_HOURS``,
  $BIASLEARN_LOCK_MAX_AGE_HOURS if set) is taken over;
* writes go to a temporary file that is renamed into place, so an interrupted run leaves no
  half-written result; files get the permissions the umask gives (typically 0644).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SCHEMA = 1  # bump to invalidate every stored result on purpose
ROOT = Path(__file__).resolve().parents[2]  # the repository

LOCK_MAX_AGE_HOURS = 48.0  # a lock older than this is stale even if its process lives (a hung run);
# $BIASLEARN_LOCK_MAX_AGE_HOURS overrides it
LOCK_POLL_SECONDS = 5.0  # how often a process waiting for a locked run looks again
LOCK_WRITE_GRACE = 60.0  # seconds a lock file may stay empty or unreadable (being written) before it is stale


class ResultError(RuntimeError):
    """A result cannot be read or stored (the message names the file or folder)."""


def results_dir(path: str | os.PathLike | None = None) -> Path:
    """The results folder: ``path``, else $BIASLEARN_RESULTS, else <repository>/results."""
    return Path(path or os.environ.get("BIASLEARN_RESULTS") or ROOT / "results")


def _plain(x):
    """Dataclasses (nested too) as dicts, tuples as lists; a field in the class's ADDED table (fields
    newer than stored results) is left out at its default, so old results keep their keys."""
    if dataclasses.is_dataclass(x):
        d = {f.name: _plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
        for name, default in getattr(x, "ADDED", {}).items():
            if d[name] == default:
                del d[name]
        return d
    return [_plain(v) for v in x] if isinstance(x, (list, tuple)) else x


def canonical(config) -> dict:
    """The config as plain JSON data (tuples become lists), with the schema and the type name."""
    d = {"schema": SCHEMA, "type": type(config).__name__, **_plain(config)}
    return json.loads(json.dumps(d, sort_keys=True))


def key(config) -> str:
    blob = json.dumps(canonical(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def path(config, root=None) -> Path:
    return results_dir(root) / config.experiment / f"{key(config)}.json"


def _umask() -> int:
    """The process's umask (read from /proc on Linux; else set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(dest: Path, data: bytes) -> None:
    """Write ``dest`` through a temporary file renamed into place; the file gets the umask's
    permissions (mkstemp makes it 0600, readable by its owner only)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read(p: Path, arrays: bool = True) -> dict:
    """The result stored in file ``p`` (and its arrays); a ResultError naming the file if it is not one."""
    p = Path(p)
    try:
        result = json.loads(p.read_text())
        if not isinstance(result, dict):
            raise ValueError("it holds no JSON object")
        for field in ("config", "metrics", "curve", "provenance"):
            if not isinstance(result.get(field), dict):
                raise ValueError(f"its {field!r} is missing or not a mapping")
    except (OSError, ValueError) as e:
        raise ResultError(f"result file {p} is corrupt or not a result ({e}); delete it and "
                          f"rerun to recompute it") from e
    npz = p.with_suffix(".npz")
    if arrays and npz.exists():
        try:
            with np.load(npz) as z:
                result["arrays"] = {k: z[k] for k in z.files}
        except Exception as e:
            raise ResultError(f"array file {npz} is corrupt ({e}); delete it and {p}, and rerun") from e
    return result


def load(config, root=None) -> dict | None:
    """The stored result of ``config``, or None if it was never computed."""
    p = path(config, root)
    if not p.exists():
        return None
    result = read(p)
    if result["config"] != canonical(config):
        raise ResultError(f"result file {p} holds another config than the one asked for; delete it and "
                          f"rerun to recompute it")
    return result


def stored(experiment: str | None = None, root=None, arrays: bool = False) -> list[dict]:
    """Every stored result of ``experiment`` (every experiment if None), each with its ``file``
    (the path relative to the results folder), in file order."""
    base = results_dir(root)
    pattern = f"{experiment}/*.json" if experiment else "*/*.json"
    return [dict(read(p, arrays), file=str(p.relative_to(base))) for p in sorted(base.glob(pattern))]


def save(config, metrics: dict, curve: dict, wall_seconds: float, device: str,
         arrays: dict | None = None, root=None, code: dict | None = None) -> dict:
    """Store a result atomically (arrays first, so a JSON never points at missing arrays)."""
    p = path(config, root)
    if arrays:
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
        _atomic_write(p.with_suffix(".npz"), buf.getvalue())
    result = {"config": canonical(config), "metrics": metrics, "curve": curve,
              "provenance": {**provenance(wall_seconds, device), **(code or {})}}
    _atomic_write(p, (json.dumps(result, indent=1, sort_keys=True) + "\n").encode())
    if arrays:
        result["arrays"] = {k: np.asarray(v) for k, v in arrays.items()}
    return result


@functools.cache
def _cpuinfo() -> dict:
    """The first processor's fields in /proc/cpuinfo ({} where there is none: not Linux)."""
    try:
        block = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in block.splitlines() if ":" in line)}


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo on Linux), else what the platform module says."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_model() -> str | None:
    """The CPU's vendor, family, model and stepping (from /proc/cpuinfo on Linux; None elsewhere): virtual machines
    often give two generations the same name ("AMD EPYC"), and a float32 loop's last bits can follow the CPU."""
    info = _cpuinfo()
    if "cpu family" not in info:
        return None
    return f"{info.get('vendor_id', '?')} family {info['cpu family']} model {info.get('model', '?')} " \
           f"stepping {info.get('stepping', '?')}"


@functools.cache
def code_version() -> dict:
    """The git commit of the code, and whether src/ had uncommitted changes: taken once per
    process, when its first run starts, so a commit made while a sweep runs is not credited
    with code the sweep never loaded."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"git_commit": git("rev-parse", "HEAD") or "unknown",
            "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", "src"))}


def provenance(wall_seconds: float, device: str) -> dict:
    """Where and how a run was computed: code, versions, hardware, threads and the determinism
    settings (cuDNN's only matter on CUDA, but are recorded everywhere)."""
    import torch

    cuda = torch.version.cuda  # None on CPU-only builds
    return {
        **code_version(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": cuda,
        "cudnn": torch.backends.cudnn.version() if cuda and torch.backends.cudnn.is_available() else None,
        "numpy": np.__version__,
        "device": device,
        "cpu": cpu_name(),
        "cpu_model": cpu_model(),
        "gpu": torch.cuda.get_device_name(device) if str(device).startswith("cuda") else None,
        "threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "wall_seconds": round(wall_seconds, 2),
        "peak_rss_mb": peak_rss_mb(),  # the process's peak so far: the run's own in a one-run job, else an upper bound
        "peak_device_mb": (round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)
                           if str(device).startswith("cuda") else None),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def peak_rss_mb() -> float | None:
    """The peak resident memory of this process so far (MB), where the platform says (Linux: ru_maxrss in kB)."""
    try:
        import resource
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return round(kb / (1024 ** 2 if sys.platform == "darwin" else 1024), 1)


def cached(config, fn, root=None, compute: bool = True) -> dict | None:
    """Load the result of ``config``; if absent and ``compute``, run ``fn`` and store it.

    ``fn(config)`` returns a dict with ``metrics``, ``curve``, ``device`` and optionally
    ``arrays``; its wall time is measured here. Returns None if absent and not computing.
    The results folder is checked writable before ``fn`` runs, and the run is locked while it
    runs: another process computing the same config waits and then loads this one's result.
    """
    result = load(config, root)
    if result is not None or not compute:
        return result
    p = path(config, root)
    _writable(p.parent)
    with _locked(p.with_suffix(".lock")):
        result = load(config, root)  # stored while this process waited for the lock
        if result is not None:
            return result
        code, t0 = code_version(), time.perf_counter()
        out = fn(config)
        # a run resumed from a checkpoint (train.train) reports the seconds it trained before it stopped
        return save(config, out["metrics"], out["curve"], time.perf_counter() - t0 + out.get("prior_seconds", 0.0),
                    out["device"],
                    out.get("arrays"), root, code)


def _writable(folder: Path) -> None:
    """Create ``folder`` and check a file can be made in it; a ResultError naming it if not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".writable."):
            pass
    except OSError as e:
        raise ResultError(f"results folder {folder} cannot be created or written ({e}); choose "
                          f"another one (results_dir, $BIASLEARN_RESULTS) or fix its permissions") from e


# --- Run locks: one process computes a run, the others wait for its result -------------------------

def _lock_max_age() -> float:
    """Seconds after which a lock is stale even if its process lives."""
    return 3600 * float(os.environ.get("BIASLEARN_LOCK_MAX_AGE_HOURS") or LOCK_MAX_AGE_HOURS)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` (on this host) exists; assumed so where this cannot be asked."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) would kill it on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, as another user
        return True
    return True


def _try_lock(lock: Path) -> tuple[int, bytes] | None:
    """Create ``lock`` atomically, naming this process; its identity (inode, content), or None if
    it exists already."""
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:
        return None
    now = time.time()
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": now,
              "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
    data = json.dumps(holder).encode()
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            return os.fstat(f.fileno()).st_ino, data
    except BaseException:
        os.remove(lock)
        raise


def _holder(lock: Path) -> tuple[dict, tuple[int, bytes]] | tuple[None, None]:
    """What ``lock`` says about its holder, and its identity; (None, None) if it is gone. A lock that
    cannot be parsed (being written, or damaged) gives {"unreadable": True, "started": its mtime}."""
    try:
        with open(lock, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
    except FileNotFoundError:
        return None, None
    try:
        info = json.loads(data)
        info = {"pid": int(info["pid"]), "host": str(info["host"]), "started": float(info["started"]),
                "started_utc": str(info.get("started_utc", "?"))}
    except (ValueError, KeyError, TypeError):  # UnicodeDecodeError is a ValueError
        info = {"unreadable": True, "started": st.st_mtime}
    return info, (st.st_ino, data)


def _stale(info: dict) -> str | None:
    """Why the lock described by ``info`` is stale, or None if its holder may still be computing."""
    age = time.time() - info["started"]
    if info.get("unreadable"):
        return f"it has been unreadable for {age:.0f} s" if age > LOCK_WRITE_GRACE else None
    if age > _lock_max_age():
        return f"it was taken {age / 3600:.1f} h ago, more than {_lock_max_age() / 3600:g} h"
    if info["host"] == socket.gethostname() and not _alive(info["pid"]):
        return f"its process {info['pid']} on {info['host']} is gone"
    return None


def _unlock(lock: Path, identity: tuple[int, bytes]) -> None:
    """Remove ``lock`` if it is still the file of this ``identity`` (inode and content: an inode alone
    may be reused at once), not a lock another process made since (moved aside first, so the check
    and the removal cannot race with another process)."""
    aside = lock.with_name(f"{lock.name}.{os.getpid()}.old")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return
    try:
        if (os.stat(aside).st_ino, aside.read_bytes()) != identity:
            os.link(aside, lock)  # another process's lock: put it back (never over a newer one)
    except OSError:
        pass
    finally:
        os.remove(aside)


def busy(config, root=None) -> bool:
    """Whether another live process holds ``config``'s run lock (it is computing that run now)."""
    info, _ = _holder(path(config, root).with_suffix(".lock"))
    return info is not None and _stale(info) is None


@contextlib.contextmanager
def _locked(lock: Path):
    """Hold ``lock`` while the body runs: wait while a live process holds it (polling every
    LOCK_POLL_SECONDS, saying so once), take it over if it is stale, remove it at the end."""
    told = False
    while (mine := _try_lock(lock)) is None:
        info, seen = _holder(lock)
        if info is None:
            continue  # released meanwhile: try again at once
        why = _stale(info)
        if why:
            print(f"taking over the stale lock {lock}: {why}", file=sys.stderr, flush=True)
            _unlock(lock, seen)
            continue
        if not told:
            who = ("a process" if info.get("unreadable") else
                   f"process {info['pid']} on {info['host']} since {info['started_utc']}")
            print(f"waiting for {lock.stem} in {lock.parent}: {who} is computing it (if that run is "
                  f"gone, delete {lock})", file=sys.stderr, flush=True)
            told = True
        time.sleep(LOCK_POLL_SECONDS)
    try:
        yield
    finally:
        _unlock(lock, mine)


# --- Stale results: recompute a sample of stored runs and compare -----------------------------------

TIMING = ("seconds",)  # metrics whose name holds one of these measure the machine, not the numerics
RTOL, ATOL = 1e-3, 1e-6  # |new - old| <= ATOL + RTOL |old|: a diverged run (R² < 0) amplifies the rounding
# of another thread count to ~2e-4 relative; a change of numerics moves metrics by far more
CPU_SENSITIVE = ("recurrent", "lorenz", "generation", "forecast", "theory_rnn", "tasks", "dms", "flipflop", "reach")
# experiments (folder prefixes) that train recurrent networks: another CPU model rounds differently (other vector
# kernels) and their training amplifies it (measured, the same stored runs recomputed on an AMD EPYC after an Intel
# Xeon: theory_rnn's rmse 0.057 -> 0.131, a generator's R² -5e74 -> -8e73, a coarse sum of sines' R² 0.2776 -> 0.2782),
# so their runs are recomputed only on the CPU model that stored them


def _numbers(metrics: dict, prefix: str = "") -> dict:
    """Every numeric metric, nested dicts flattened to "a.b" names, timings left out."""
    out = {}
    for k, v in metrics.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= _numbers(v, name + ".")
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and not any(t in k for t in TIMING):
            out[name] = float(v)
        elif v is None or isinstance(v, (bool, str)):
            out[name] = v
    return out


def differences(old: dict, new: dict, rtol: float = RTOL, atol: float = ATOL) -> list[str]:
    """The metrics of two results that differ beyond the tolerance (or exist in only one)."""
    a, b = _numbers(old), _numbers(new)
    out = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k, "absent"), b.get(k, "absent")
        if isinstance(x, float) and isinstance(y, float):
            if not (abs(y - x) <= atol + rtol * abs(x) or (x != x and y != y) or x == y):
                out.append(f"{k}: stored {x:.6g}, recomputed {y:.6g}")
        elif x != y:
            out.append(f"{k}: stored {x!r}, recomputed {y!r}")
    return out


def verify(sample: int = 1, max_seconds: float = 60.0, root=None, experiments=None, progress: bool = True) -> list[dict]:
    """Recompute the ``sample`` cheapest stored runs (by stored wall time, at most ``max_seconds`` each)
    of every experiment folder, with the threads each was stored with, and compare their metrics.

    Returns one dict per experiment: {"experiment", "file", "status", "detail"} with status "same",
    "differs" (detail lists the metrics), or "skipped" (detail says why: data absent, or its cheapest
    run too slow for ``max_seconds``).
    """
    import torch
    from tqdm.auto import tqdm

    from . import data
    from . import experiments as ex

    available = functools.cache(data.available)  # each data set's checksums verified once

    folders = sorted(p.name for p in results_dir(root).iterdir() if p.is_dir())
    report, cpu = [], cpu_name()
    for name in experiments or folders:
        runs = sorted(stored(name, root), key=lambda r: r["provenance"]["wall_seconds"])
        if not runs:
            continue
        if name.startswith(CPU_SENSITIVE):
            other = [r for r in runs if r["provenance"].get("cpu") != cpu]
            runs = [r for r in runs if r["provenance"].get("cpu") == cpu]
            if not runs:
                report.append({"experiment": name, "file": None, "status": "skipped",
                               "detail": f"its runs were stored on another CPU ({other[0]['provenance'].get('cpu')}) "
                                         f"and it trains recurrent networks (results.CPU_SENSITIVE)"})
                continue
        cheap = [r for r in runs if r["provenance"]["wall_seconds"] <= max_seconds]
        doable = [r for r in cheap if ex.ready(ex.config_of(r), root, available) is None]
        if not doable:
            why = (f"its cheapest run took {runs[0]['provenance']['wall_seconds']:.0f} s > {max_seconds:g} s"
                   if not cheap else ex.ready(ex.config_of(cheap[0]), root, available))
            report.append({"experiment": name, "file": None, "status": "skipped", "detail": why})
            continue
        for r in tqdm(doable[:sample], desc=f"verify {name}", disable=not progress, leave=False):
            cfg = ex.config_of(r)
            threads = torch.get_num_threads()
            torch.set_num_threads(int(r["provenance"].get("threads") or threads))
            try:
                new = ex.RUNNERS[type(cfg)](cfg, "cpu", False, root)
            finally:
                torch.set_num_threads(threads)
            diff = differences(r["metrics"], new["metrics"])
            was = r["provenance"].get("cpu_model")
            if diff and was != cpu_model():     # where it was stored, if not on this CPU (or not recorded)
                diff.append(f"stored on {was or 'a CPU whose model was not recorded'}, here {cpu_model()}")
            report.append({"experiment": name, "file": r["file"], "status": "differs" if diff else "same",
                           "detail": "; ".join(diff)})
    return report


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description="Check the stored results against the code.")
    sub = ap.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="recompute the cheapest stored runs of every experiment and compare")
    v.add_argument("--sample", type=int, default=1, help="runs per experiment (the cheapest first)")
    v.add_argument("--max-seconds", type=float, default=60.0, help="skip runs whose stored wall time is longer")
    v.add_argument("--experiments", nargs="+", default=None, help="only these folders of results/")
    v.add_argument("--results-dir", default=None)
    a = ap.parse_args(argv)
    if a.sample < 1 or a.max_seconds <= 0:
        ap.error("--sample must be >= 1 and --max-seconds > 0")
    rows = verify(a.sample, a.max_seconds, a.results_dir, a.experiments)
    for r in rows:
        print(f"{r['status']:8s} {r['experiment']:22s} {r['file'] or '':40s} {r['detail']}")
    bad = [r for r in rows if r["status"] == "differs"]
    print(f"{len(bad)} of {sum(r['status'] != 'skipped' for r in rows)} recomputed runs differ "
          f"(tolerance {RTOL:g} relative + {ATOL:g}); {sum(r['status'] == 'skipped' for r in rows)} experiments skipped")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
