"""The data layer on small files the tests make; the real sets where this machine has them."""
import gzip
import hashlib
import http.server
import io
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest

from biaslearn import data
from conftest import idx_bytes


DIGEST_LENGTH = {"md5": 32, "sha256": 64, "gitsha1": 40}  # hex digits


def _register(monkeypatch, name, folder, hashes, kind="idx", files=None):
    files = files or {role: data.File(fname, f"http://example.invalid/{fname}", hashes[role])
                      for role, fname in data.IDX.items()}
    monkeypatch.setitem(data.SOURCES, name, data.Source(name.upper(), kind, files, "x", "x"))


def _md5(path):
    return "md5:" + hashlib.md5(path.read_bytes()).hexdigest()


def test_read_idx_round_trip():
    arr = np.random.default_rng(1).integers(0, 256, (3, 28, 28)).astype(np.uint8)
    assert np.array_equal(data.read_idx(idx_bytes(arr)), arr)
    assert np.array_equal(data.read_idx(gzip.compress(idx_bytes(arr))), arr)
    assert np.array_equal(data.read_idx(idx_bytes(np.arange(5))), np.arange(5))


@pytest.mark.parametrize("blob,error", [
    (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00", "bad magic"),          # float idx, not uint8
    (bytes([0, 0, 8, 1, 0, 0, 0, 9]) + b"abc", "header says"),          # truncated data
    (b"", "bad magic"),
])
def test_read_idx_rejects_bad_files(blob, error):
    with pytest.raises(data.DataError, match=error):
        data.read_idx(blob)


def test_load_verified_local_copy(isolated_data, fake_idx_set, monkeypatch):
    make, arrays = fake_idx_set
    folder = make("data/fakeset")
    _register(monkeypatch, "fakeset", folder, {r: _md5(folder / f) for r, f in data.IDX.items()})
    imgs = data.load("fakeset")
    assert imgs.x_train.dtype == np.uint8 and imgs.x_train.shape == (20, 28, 28)
    assert imgs.y_test.dtype == np.int64
    assert np.array_equal(imgs.x_test, arrays["x_test"])


def test_checksum_mismatch_names_file_and_fix(isolated_data, fake_idx_set, monkeypatch):
    make, _ = fake_idx_set
    folder = make("data/fakeset")
    hashes = {r: _md5(folder / f) for r, f in data.IDX.items()}
    hashes["x_test"] = "md5:" + "0" * 32
    _register(monkeypatch, "fakeset", folder, hashes)
    with pytest.raises(data.DataError) as e:
        data.load("fakeset")
    msg = str(e.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and "corrupt" in msg and "FAKESET" in msg
    assert str(folder / "t10k-images-idx3-ubyte.gz") in msg and "download" in msg


def test_missing_file_names_every_place_searched(isolated_data, monkeypatch):
    _register(monkeypatch, "fakeset", None, {r: "md5:" + "0" * 32 for r in data.IDX})
    with pytest.raises(data.DataError) as e:
        data.load("fakeset")
    msg = str(e.value)
    assert "was not found" in msg and "train-images-idx3-ubyte.gz" in msg
    for place in data.search_path():
        assert str(place / "fakeset") in msg
    assert "python -m biaslearn.data download fakeset" in msg


def test_unknown_dataset():
    with pytest.raises(data.DataError, match="unknown data set 'mnsit'"):
        data.load("mnsit")


def test_content_md5_accepts_recompressed_copy(isolated_data, monkeypatch, tmp_path):
    raw = idx_bytes(np.arange(10) % 10)
    path = tmp_path / "data" / "fakeset" / "t10k-labels-idx1-ubyte.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(raw, mtime=1))
    f = data.File(path.name, "", "md5:" + "1" * 32, content_md5=hashlib.md5(raw).hexdigest())
    assert data._check(path, f, path.read_bytes())
    assert not data._check(path, data.File(path.name, "", "md5:" + "1" * 32), path.read_bytes())


class _FakeResponse(io.BytesIO):
    """A urlopen() response that serves ``payload`` and may die half-way."""

    def __init__(self, payload, fail_after=None):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}
        self.fail_after = fail_after

    def read(self, n=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection lost")
        return super().read(min(n, 7) if n > 0 else n)

    read1 = read  # download reads with read1 (one recv at a time), as on a real HTTPResponse

    def __exit__(self, *a):
        self.close()


def _serve(monkeypatch, payloads, fail_after=None):
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: _FakeResponse(payloads[url.rsplit("/", 1)[1]], fail_after))


def test_download_verifies_then_moves_into_place(isolated_data, monkeypatch, tmp_path):
    payloads = {f: gzip.compress(idx_bytes(np.full((2, 28, 28), i))) for i, f in enumerate(data.IDX.values())}
    payloads.update({f: gzip.compress(idx_bytes(np.array([1, 2]))) for f in data.IDX.values() if "labels" in f})
    hashes = {r: "md5:" + hashlib.md5(payloads[f]).hexdigest() for r, f in data.IDX.items()}
    _register(monkeypatch, "fakeset", None, hashes)
    _serve(monkeypatch, payloads)
    folder = data.download("fakeset", root=tmp_path / "cache" / "biaslearn", progress=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(data.IDX.values())
    assert data.load("fakeset").x_train.shape == (2, 28, 28)


def test_interrupted_download_leaves_nothing(isolated_data, monkeypatch, tmp_path):
    payloads = {f: gzip.compress(idx_bytes(np.zeros((2, 28, 28)))) for f in data.IDX.values()}
    _register(monkeypatch, "fakeset", None, {r: "md5:" + hashlib.md5(payloads[f]).hexdigest()
                                             for r, f in data.IDX.items()})
    _serve(monkeypatch, payloads, fail_after=20)
    root = tmp_path / "cache" / "biaslearn"
    with pytest.raises(data.DataError, match=r"downloading .* failed \(connection lost\); nothing was kept") as e:
        data.download("fakeset", root=root, progress=False)
    assert isinstance(e.value.__cause__, ConnectionResetError)
    assert list((root / "fakeset").iterdir()) == []


def test_corrupt_download_is_not_kept(isolated_data, monkeypatch, tmp_path):
    payloads = {f: b"not the published bytes" for f in data.IDX.values()}
    _register(monkeypatch, "fakeset", None, {r: "md5:" + "0" * 32 for r in data.IDX})
    _serve(monkeypatch, payloads)
    root = tmp_path / "cache" / "biaslearn"
    with pytest.raises(data.DataError, match="does not match its checksum"):
        data.download("fakeset", root=root, progress=False)
    assert list((root / "fakeset").iterdir()) == []


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Serves the server's ``payload`` one byte every ``interval`` seconds (a stalling mirror)."""

    def do_GET(self):
        srv = self.server
        self.send_response(200)
        self.send_header("Content-Length", str(len(srv.payload)))
        self.end_headers()
        try:
            if not srv.interval:
                self.wfile.write(srv.payload)
                return
            for i in range(len(srv.payload)):
                if srv.stop.wait(srv.interval):
                    return
                self.wfile.write(srv.payload[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):  # the client gave up: what the tests want
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server():
    """start(payload, interval) -> base URL of a local HTTP server that serves ``payload`` for any path."""
    servers = []

    def start(payload, interval=0.0):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
        srv.payload, srv.interval, srv.stop = payload, interval, threading.Event()
        threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/"
    yield start
    for srv in servers:
        srv.stop.set()
        srv.shutdown()
        srv.server_close()


def _register_urls(monkeypatch, name, base, hash_):
    files = {role: data.File(fname, base + fname, hash_) for role, fname in data.IDX.items()}
    _register(monkeypatch, name, None, None, files=files)


def test_trickling_download_is_abandoned_at_the_deadline(isolated_data, monkeypatch, tmp_path, local_server):
    payload = b"x" * 40
    base = local_server(payload, interval=0.1)  # 4 s in all, and never 0.1 s without a byte
    _register_urls(monkeypatch, "fakeset", base, "md5:" + hashlib.md5(payload).hexdigest())
    root = tmp_path / "cache" / "biaslearn"
    start = time.monotonic()
    with pytest.raises(data.DataError) as e:
        data.download("fakeset", root=root, progress=False, deadline=0.5)
    assert time.monotonic() - start < 2.5
    msg = str(e.value)
    assert base + "train-images-idx3-ubyte.gz" in msg and "deadline of 0.5 s" in msg and "nothing was kept" in msg
    assert re.search(r", [1-9]\d? bytes received", msg), msg
    assert list((root / "fakeset").iterdir()) == []


def test_download_over_http_within_the_deadline(isolated_data, monkeypatch, tmp_path, local_server):
    labels = gzip.compress(idx_bytes(np.array([1, 2])))
    _register_urls(monkeypatch, "fakeset", local_server(labels), "md5:" + hashlib.md5(labels).hexdigest())
    handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    folder = data.download("fakeset", root=tmp_path / "cache" / "biaslearn", progress=False, deadline=10)
    assert sorted(p.name for p in folder.iterdir()) == sorted(data.IDX.values())
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == handlers  # put back


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640)], ids=["022", "027"])
def test_downloaded_files_get_the_umasks_permissions(umask, mode, isolated_data, monkeypatch, tmp_path,
                                                     local_server):
    labels = gzip.compress(idx_bytes(np.array([1, 2])))
    _register_urls(monkeypatch, "fakeset", local_server(labels), "md5:" + hashlib.md5(labels).hexdigest())
    old = os.umask(umask)
    try:
        folder = data.download("fakeset", root=tmp_path / "cache" / "biaslearn", progress=False)
    finally:
        os.umask(old)
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in folder.iterdir()} == \
        {f: oct(mode) for f in data.IDX.values()}


CHILD = """
import signal, sys
from pathlib import Path
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even if our parent ignores it
signal.signal(signal.SIGTERM, signal.SIG_DFL)
from biaslearn import data
base, root = sys.argv[1:]
data.SOURCES["fakeset"] = data.Source("FAKESET", "idx", {
    role: data.File(f, base + f, "md5:" + "0" * 32) for role, f in data.IDX.items()}, "x", "x")
data.download("fakeset", root=Path(root), progress=False)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_killed_download_removes_its_part_file(sig, tmp_path, local_server):
    base = local_server(b"x" * 10_000, interval=0.05)
    root = tmp_path / "cache" / "biaslearn"
    folder = root / "fakeset"
    env = {**os.environ, "BIASLEARN_DATA": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, base, str(root)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        give_up = time.monotonic() + 30
        while not (folder.is_dir() and any(folder.iterdir())):  # its .part file is there
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < give_up, "the child never started downloading"
            time.sleep(0.05)
        time.sleep(0.3)  # and bytes are arriving
        child.send_signal(sig)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -sig, err.decode()  # the signal still ends the process, as before
    assert list(folder.iterdir()) == []


def test_list_tells_missing_from_corrupt(isolated_data, fake_idx_set, monkeypatch, capsys):
    make, _ = fake_idx_set
    good = make("data/goodset")
    hashes = {r: _md5(good / f) for r, f in data.IDX.items()}
    _register(monkeypatch, "goodset", good, hashes)
    bad = make("data/badset")
    found = _md5(bad / "t10k-images-idx3-ubyte.gz")
    _register(monkeypatch, "badset", bad, {**hashes, "x_test": "md5:" + "0" * 32})
    data.main(["list"])
    out = capsys.readouterr().out
    state = {line.split()[0]: line.split()[1] for line in out.splitlines() if not line.startswith(" ")}
    assert state["goodset"] == "here" and state["badset"] == "corrupt" and state["mnist"] == "missing"
    detail = [line for line in out.splitlines() if "t10k-images-idx3-ubyte.gz" in line]
    assert len(detail) == 1 and str(bad / "t10k-images-idx3-ubyte.gz") in detail[0]
    assert "expected md5:" + "0" * 32 in detail[0] and "found " + found in detail[0]


def test_corrupt_copy_error_names_the_checksum_found(isolated_data, fake_idx_set, monkeypatch):
    make, _ = fake_idx_set
    folder = make("data/fakeset")
    hashes = {r: _md5(folder / f) for r, f in data.IDX.items()}
    found, hashes["y_test"] = hashes["y_test"], "md5:" + "0" * 32
    _register(monkeypatch, "fakeset", folder, hashes)
    with pytest.raises(data.DataError, match=f"found {found}"):
        data.locate("fakeset", "y_test")


def test_synthetic_is_generated_not_downloaded(isolated_data, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("no network"))
    with pytest.raises(data.DataError, match="never downloaded: it is generated"):
        data.download("synthetic")
    with pytest.raises(data.DataError) as e:
        data.main(["download", "mnist", "synthetic"])  # checked before anything is fetched
    assert "never downloaded" in str(e.value)
    with pytest.raises(data.DataError) as e:
        data.download("mnsit")
    assert "unknown data set 'mnsit'" in str(e.value) and "synthetic" not in str(e.value)


def test_cli_download_synthetic_says_plainly(tmp_path):
    env = {**os.environ, "BIASLEARN_DATA": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-m", "biaslearn.data", "download", "synthetic"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and r.stdout == ""
    assert "never downloaded" in r.stderr and "unknown" not in r.stderr and "Traceback" not in r.stderr
    assert all(name in r.stderr for name in data.SOURCES)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_afro_mnist_conversion(scale):
    rng = np.random.default_rng(0)
    ints = rng.integers(0, 256, (4, 784))
    out = data.afro_images(ints.astype(np.float64) / 255.0 * scale)
    assert out.dtype == np.uint8 and out.shape == (4, 28, 28)
    assert np.array_equal(out.reshape(4, -1), ints)


@pytest.mark.parametrize("arr,error", [
    (np.full((2, 784), -3.0), "span"),
    (np.full((2, 784), 300.0), "span"),
    (np.zeros((2, 28, 28)), "shape"),
])
def test_afro_mnist_rejects_bad_arrays(arr, error):
    with pytest.raises(data.DataError, match=error):
        data.afro_images(arr)


def test_afro_mnist_files_load_from_npy(isolated_data, monkeypatch, tmp_path):
    folder = tmp_path / "data" / "afroset"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.random((6, 784)), "y_train": np.arange(6), "x_test": rng.random((3, 784)),
              "y_test": np.arange(3)}
    files = {}
    for role, a in arrays.items():
        p = folder / f"Afro_{role}.npy"
        np.save(p, a)
        files[role] = data.File(p.name, "", "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest())
    _register(monkeypatch, "afroset", folder, None, kind="npy", files=files)
    imgs = data.load("afroset")
    assert imgs.x_train.shape == (6, 28, 28) and imgs.x_train.dtype == np.uint8
    assert imgs.y_train.dtype == np.int64


def test_synthetic_is_deterministic_and_ten_class():
    a, b = data.synthetic(), data.synthetic()
    assert np.array_equal(a.x_train, b.x_train)
    assert set(np.unique(a.y_train)) == set(range(10))


def test_registry_covers_the_papers_seven_tasks():
    assert len(data.PAPER_TASKS) == 7 and set(data.PAPER_TASKS) <= set(data.SOURCES)
    for name, src in data.SOURCES.items():
        assert set(src.files) == set(data.IDX)
        for f in src.files.values():
            kind, digest = f.hash.split(":")
            assert kind in DIGEST_LENGTH, f.hash
            assert re.fullmatch(f"[0-9a-f]{{{DIGEST_LENGTH[kind]}}}", digest), f"{name} {f.name}: {f.hash}"
            assert f.content_md5 == "" or re.fullmatch("[0-9a-f]{32}", f.content_md5), f.content_md5
            assert f.url.startswith("http")


# Digests of b"hello world\n", as md5sum, sha256sum and `git hash-object` print them.
HELLO = {"md5": "6f5902ac237024bdd0c176cb93063dc4",
         "sha256": "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447",
         "gitsha1": "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"}


@pytest.mark.parametrize("kind", sorted(HELLO))
def test_checksum_accepts_the_published_bytes_and_rejects_one_byte_changed(kind, tmp_path):
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello world\n")
    f = data.File(path.name, "", f"{kind}:{HELLO[kind]}")
    assert len(HELLO[kind]) == DIGEST_LENGTH[kind]
    assert data._check(path, f, path.read_bytes())
    path.write_bytes(b"hello world!")  # same length, last byte changed
    assert not data._check(path, f, path.read_bytes())


def _real(name):
    if not data.available(name):
        pytest.skip(f"{name} not on this machine (searched {[str(p) for p in data.search_path()]}); "
                    "CI has it via ../shared/data or Debian's dataset-fashion-mnist")
    return data.load(name)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_real_dataset_shapes_and_classes(name):
    imgs = _real(name)
    assert imgs.x_train.shape == (60000, 28, 28) and imgs.x_test.shape == (10000, 28, 28)
    assert imgs.x_train.dtype == np.uint8 and imgs.y_train.dtype == np.int64
    assert np.bincount(imgs.y_test).tolist() == ([1000] * 10 if name == "fashion_mnist" else
                                                 [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert np.bincount(imgs.y_train).min() > 5000
