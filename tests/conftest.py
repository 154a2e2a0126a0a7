"""Shared fixtures: small data the tests make, and where the real data sets are (if anywhere)."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def idx_bytes(arr: np.ndarray) -> bytes:
    """An idx file (uint8) for ``arr``: magic 0x0000 08 <ndim>, big-endian sizes, data."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    return bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape) + arr.tobytes()


@pytest.fixture
def fake_idx_set(tmp_path):
    """A tiny gzipped idx data set in tmp_path/<name>/ and the arrays it holds."""
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (20, 28, 28)), "y_train": np.arange(20) % 10,
              "x_test": rng.integers(0, 256, (10, 28, 28)), "y_test": np.arange(10) % 10}

    def make(name="fakeset"):
        from biaslearn.data import IDX
        folder = tmp_path / name
        folder.mkdir(parents=True, exist_ok=True)
        for role, fname in IDX.items():
            (folder / fname).write_bytes(gzip.compress(idx_bytes(arrays[role])))
        return folder
    return make, arrays


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """Search only tmp_path/data and an empty cache: no real copies leak into a test."""
    monkeypatch.setenv("BIASLEARN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    import biaslearn.data as d
    monkeypatch.setattr(d, "search_path", lambda: [tmp_path / "data", tmp_path / "cache" / "biaslearn"])
    return tmp_path / "data"
