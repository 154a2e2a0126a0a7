"""The results cache: a run is a pure function of its config, its result one JSON file.

    results/<experiment>/<key>.json      key = short hash of the canonical config + SCHEMA
    results/<experiment>/<key>.npz       optional arrays (e.g. learned bias vectors)

The JSON holds ``config``, ``metrics``, ``curve`` and ``provenance`` (git commit, package
versions, device, wall seconds). Writes go to a temporary file that is renamed into place,
so an interrupted run leaves no half-written result. ``cached(config, fn)`` loads an
existing result, or, if ``compute`` is on, runs ``fn(config)`` and stores what it returns.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

SCHEMA = 1  # bump to invalidate every stored result on purpose
ROOT = Path(__file__).resolve().parents[2]  # the repository


class ResultError(RuntimeError):
    """A stored result cannot be read (the message names the file)."""


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


def _atomic_write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(config, root=None) -> dict | None:
    """The stored result of ``config``, or None if it was never computed."""
    p = path(config, root)
    if not p.exists():
        return None
    try:
        result = json.loads(p.read_text())
        if result["config"] != canonical(config):
            raise ValueError("its config differs from the one asked for")
        for field in ("metrics", "curve", "provenance"):
            result[field]
    except (ValueError, KeyError, TypeError) as e:
        raise ResultError(f"result file {p} is corrupt or not a result ({e}); delete it and "
                          f"rerun to recompute it") from e
    npz = p.with_suffix(".npz")
    if npz.exists():
        try:
            with np.load(npz) as z:
                result["arrays"] = {k: z[k] for k in z.files}
        except Exception as e:
            raise ResultError(f"array file {npz} is corrupt ({e}); delete it and {p}, and rerun") from e
    return result


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


def cpu_name() -> str:
    """The CPU model (from /proc/cpuinfo on Linux), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
    import torch

    return {
        **code_version(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": device,
        "cpu": cpu_name(),
        "gpu": torch.cuda.get_device_name(device) if str(device).startswith("cuda") else None,
        "threads": torch.get_num_threads(),
        "wall_seconds": round(wall_seconds, 2),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def cached(config, fn, root=None, compute: bool = True) -> dict | None:
    """Load the result of ``config``; if absent and ``compute``, run ``fn`` and store it.

    ``fn(config)`` returns a dict with ``metrics``, ``curve``, ``device`` and optionally
    ``arrays``; its wall time is measured here. Returns None if absent and not computing.
    """
    result = load(config, root)
    if result is not None or not compute:
        return result
    code, t0 = code_version(), time.perf_counter()
    out = fn(config)
    return save(config, out["metrics"], out["curve"], time.perf_counter() - t0, out["device"],
                out.get("arrays"), root, code)
