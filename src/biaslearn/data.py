"""The paper's seven 28x28 ten-class image sets: where they are published, how they are
checked, where local copies are looked for, and how they are read.

    load("mnist") -> Images(x_train, y_train, x_test, y_test)   uint8 (N, 28, 28), int64 (N,)
    load_test("kmnist") -> (x_test, y_test)    the test split alone (its two files); also Dig-MNIST (TEST_ONLY)

A file is looked for, in order, in every folder of ``search_path()``:
$BIASLEARN_DATA (several folders separated by ':'), the user's cache folder
(~/.cache/biaslearn or $XDG_CACHE_HOME/biaslearn) and /usr/share/datasets (Debian's
dataset packages), each as ``<folder>/<data set>/<file>``. ``download(name)`` fetches
what is missing into the cache folder, verifying every file's checksum; a file is only
ever moved into place after it has been verified, so an interrupted (failed, too slow,
SIGINT, SIGTERM) or corrupt download leaves nothing behind. ``load`` never touches the
network.

"synthetic" is a small deterministic stand-in (made from a seed, no files, never
downloaded), used by the quick runs of the chapters and by the tests.

    python -m biaslearn.data list                  here / missing / corrupt, per data set
    python -m biaslearn.data download NAME|all     fetch what is missing (--deadline SECONDS)
"""
from __future__ import annotations

import gzip
import hashlib
import os
import secrets
import signal
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DataError(RuntimeError):
    """A data set file is missing or corrupt (the message says where and how to fix it)."""


@dataclass(frozen=True)
class File:
    name: str          # local file name, inside <folder>/<data set>/
    url: str           # where the publisher serves it
    hash: str          # "md5:<hex>", "sha256:<hex>" or "gitsha1:<hex>" of the published bytes
    content_md5: str = ""  # md5 of the decompressed bytes, for copies whose gz was re-made


@dataclass(frozen=True)
class Source:
    title: str
    kind: str                 # "idx" (gzipped idx files) or "npy" (Afro-MNIST float64 arrays)
    files: dict[str, File]    # role ("x_train", "y_train", "x_test", "y_test") -> File
    cite: str                 # key in book/references.bib
    licence: str


@dataclass(frozen=True)
class Images:
    x_train: np.ndarray  # (N, 28, 28) uint8
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray


IDX = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
       "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}


def _idx(base: str, hashes: dict[str, str], content: dict[str, str] | None = None,
         remote: dict[str, str] | None = None) -> dict[str, File]:
    """Files of an idx-format set published under ``base`` (remote names if they differ)."""
    content, remote = content or {}, remote or {}
    return {role: File(name, base + remote.get(role, name), hashes[role], content.get(role, ""))
            for role, name in IDX.items()}


def _afro(script: str, sha256: dict[str, str]) -> dict[str, File]:
    # Git LFS objects of Daniel-Wu/AfroMNIST, pinned to the commit that added them.
    base = ("https://media.githubusercontent.com/media/Daniel-Wu/AfroMNIST/"
            "02da1ad0cb75a88ae9294e512a44281ac5e67167/")
    parts = {"x_train": "X_train", "y_train": "y_train", "x_test": "X_test", "y_test": "y_test"}
    return {role: File(f"{script}_MNIST_{p}.npy", f"{base}{script}/{script}_MNIST_{p}.npy",
                       "sha256:" + sha256[role]) for role, p in parts.items()}


SOURCES: dict[str, Source] = {
    "mnist": Source("MNIST", "idx", _idx(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {"x_train": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873", "y_train": "md5:d53e105ee54ea40749a09fcbcd1e9432",
         "x_test": "md5:9fb629c4189551a2d022fa330f9573f3", "y_test": "md5:ec29112dd5afa0611ce80d1b7f02629c"},
        content={"x_train": "6bbc9ace898e44ae57da46a324031adb", "y_train": "a25bea736e30d166cdddb491f175f624",
                 "x_test": "2646ac647ad5339dbf082846283269ea", "y_test": "27ae3e4e09519cfbb04c329615203637"}),
        "lecun1998mnist", "CC BY-SA 3.0"),
    "fashion_mnist": Source("Fashion-MNIST", "idx", _idx(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {"x_train": "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d", "y_train": "md5:25c81989df183df01b3e8a0aad5dffbe",
         "x_test": "md5:bef4ecab320f06d8554ea6380940ec79", "y_test": "md5:bb300cfdad3c16e7a12a480ee83cd310"},
        # Debian's dataset-fashion-mnist (0.0~git20200523.55506a9-1) ships re-compressed gz files:
        # their decompressed md5s, measured from that package, identify the same content.
        content={"x_train": "f4a8712d7a061bf5bd6d2ca38dc4d50a", "y_train": "9018921c3c673c538a1fc5bad174d6f9",
                 "x_test": "8181f5470baa50b63fa0f6fddb340f0a", "y_test": "15d484375f8d13e6eb1aabb0c3f46965"}),
        "xiao2017fashion", "MIT"),
    "kmnist": Source("KMNIST", "idx", _idx(
        "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        {"x_train": "md5:bdb82020997e1d708af4cf47b453dcf7", "y_train": "md5:e144d726b3acfaa3e44228e80efcd344",
         "x_test": "md5:5c965bf0a639b31b8f53240b1b52f4d7", "y_test": "md5:7320c461ea6c1c855c0b718fb2a4b134"}),
        "clanuwat2018kmnist", "CC BY-SA 4.0"),
    "kannada_mnist": Source("Kannada-MNIST", "idx", _idx(
        "https://github.com/vinayprabhu/Kannada_MNIST/raw/master/data/output_tensors/MNIST_format/",
        {"x_train": "gitsha1:b588ed8355da1fc0dd0c2707947c132f7aa427c0",
         "y_train": "md5:f1f06031670554894b697988b906b036",
         "x_test": "md5:8682876e8fbc8cd0e7bb07fc2f502335", "y_test": "md5:b426d27d50a5fd8411b9e5838868be4b"},
        remote={"x_train": "X_kannada_MNIST_train-idx3-ubyte.gz", "y_train": "y_kannada_MNIST_train-idx1-ubyte.gz",
                "x_test": "X_kannada_MNIST_test-idx3-ubyte.gz", "y_test": "y_kannada_MNIST_test-idx1-ubyte.gz"}),
        "prabhu2019kannada", "see Zenodo record 3359691"),
    "ethiopic_mnist": Source("Ethiopic-MNIST", "npy", _afro("Ethiopic", {
        "x_train": "22b27e98a23c234a2912f70d71419bd1a0750cfadb4dccd9ff65e6de2cdb7a63",
        "x_test": "d30f3bf6a76f318fe7fea1f33e697afc95484c100a7c48823f82e9a13ec99838",
        "y_train": "d079a254667963aa2e0759b43cfb3486b75ecff9acbf8c4f7ebe3bbd0babd5e6",
        "y_test": "63653332870723408208b228eb6af4a5ee806ae311a4090b121af9419ca117ca"}), "wu2020afromnist", "MIT"),
    "vai_mnist": Source("Vai-MNIST", "npy", _afro("Vai", {
        "x_train": "755bc3af8c104c0999ab13007abc1dfaee11da694cad9ce998aa731a66a97a82",
        "x_test": "06c9d92c28434193abc6f7cf8a3b3184ead5e71b12e06924d39c2343b2eef470",
        "y_train": "a16787511aa9145144438fd86fddfbc807eba735000b422fb4c76d7e8d52efea",
        "y_test": "ae26845571a8620422f72d5f5f76c26af632869c363ca5267944907f25724f1d"}), "wu2020afromnist", "MIT"),
    "osmanya_mnist": Source("Osmanya-MNIST", "npy", _afro("Osmanya", {
        "x_train": "3f76c33eaa4b664d8107d4f03d26df96ff5cb5ce4c4c3996cceedc27fe098a14",
        "x_test": "8dd89699252caba1dc7562e6c227e849aa990a6958f6564f34fbba12d7b80490",
        "y_train": "f222f75f4d84be419612e9d8fbfbae8cc76757349683c1d106cdfabbeee21488",
        "y_test": "93488d170cc402f2b1a293ea6f99ffde5c02bb63ba84bc6add2eccb6b9d39e9b"}), "wu2020afromnist", "MIT"),
}
PAPER_TASKS = ["mnist", "kmnist", "fashion_mnist", "ethiopic_mnist", "vai_mnist",
               "osmanya_mnist", "kannada_mnist"]  # the seven tasks of Figure 1, in its order


def search_path() -> list[Path]:
    """Folders searched for local copies, in order."""
    env = [Path(p) for p in os.environ.get("BIASLEARN_DATA", "").split(os.pathsep) if p]
    return env + [cache_dir(), Path("/usr/share/datasets")]


def cache_dir() -> Path:
    """Where ``download`` puts files: $XDG_CACHE_HOME/biaslearn, else ~/.cache/biaslearn."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "biaslearn"


def _folder(name: str) -> str:
    # Debian: fashion-mnist; Dig-MNIST sits beside the Kannada-MNIST files it was published with
    return {"fashion_mnist": "fashion-mnist", "dig_mnist": "kannada_mnist/dig_mnist"}.get(name, name)


def _hint(name: str) -> str:
    return (f"Download it with: python -m biaslearn.data download {name}  "
            f"(or put a copy in a folder and set BIASLEARN_DATA to that folder)")


def _digest(kind: str, blob: bytes) -> str:
    """``blob``'s checksum as File.hash spells it ("md5:<hex>", ...), to compare or to show."""
    if kind == "gitsha1":
        return kind + ":" + hashlib.sha1(b"blob %d\0" % len(blob) + blob).hexdigest()
    return kind + ":" + hashlib.new(kind, blob).hexdigest()


def _check(path: Path, f: File, blob: bytes) -> bool:
    """True if ``blob`` (the bytes of ``path``) is the published file or the same content."""
    if _digest(f.hash.split(":")[0], blob) == f.hash:
        return True
    if f.content_md5 and path.suffix == ".gz":
        try:
            return hashlib.md5(gzip.decompress(blob)).hexdigest() == f.content_md5
        except (OSError, EOFError):
            return False
    return False


def _scan(name: str, role: str) -> tuple[tuple[Path, bytes] | None, list[str], list[tuple[str, str]]]:
    """The first verified copy (path, bytes) or None, every place tried, and the copies
    present but failing their checksum, each with the checksum found."""
    f = _source(name).files[role]
    tried, corrupt = [], []
    for root in search_path():
        path = root / _folder(name) / f.name
        tried.append(str(path))
        if path.is_file():
            blob = path.read_bytes()
            if _check(path, f, blob):
                return (path, blob), tried, corrupt
            corrupt.append((str(path), _digest(f.hash.split(":")[0], blob)))
    return None, tried, corrupt


def locate(name: str, role: str) -> tuple[Path, bytes]:
    """Find and verify one file; its bytes. Raises DataError naming every place searched."""
    src = _source(name)
    f = src.files[role]
    found, tried, corrupt = _scan(name, role)
    if found:
        return found
    where = ", ".join(f"{path} (found {got})" for path, got in corrupt)
    what = (f"is corrupt (checksum mismatch, expected {f.hash}) at: {where}. "
            f"Delete it and fetch it again. " if corrupt else "was not found. ")
    raise DataError(f"{src.title} ({name}): file {f.name} {what}Searched: {', '.join(tried)}. "
                    + _hint(name))


def status(name: str) -> tuple[str, list[str]]:
    """The set's state, "here", "missing" or "corrupt" (a copy is present but fails its
    checksum, which "missing" would hide), and a line per corrupt copy: checksums expected
    and found."""
    state, lines = "here", []
    for role, f in _source(name).files.items():
        found, _, corrupt = _scan(name, role)
        if not found:
            state = "corrupt" if corrupt or state == "corrupt" else "missing"
            lines += [f"{path}: expected {f.hash}, found {got}" for path, got in corrupt]
    return state, lines


def _source(name: str) -> Source:
    if name in TEST_ONLY:
        return TEST_ONLY[name]
    if name not in SOURCES:
        raise DataError(f"unknown data set {name!r}: use one of {sorted(SOURCES)} or 'synthetic'")
    return SOURCES[name]


def _downloadable(name: str) -> Source:
    """The set's Source; a DataError that says plainly why ``name`` cannot be downloaded."""
    names = ", ".join(SOURCES)
    if name == "synthetic":
        raise DataError("'synthetic' is never downloaded: it is generated from a seed when loaded "
                        f"(load('synthetic'), synthetic()). Data sets to download: {names} "
                        "(or 'all' for the paper's seven).")
    if name in TEST_ONLY:
        return TEST_ONLY[name]
    if name not in SOURCES:
        raise DataError(f"unknown data set {name!r}: data sets to download are {names} "
                        "(or 'all' for the paper's seven).")
    return SOURCES[name]


def read_idx(blob: bytes) -> np.ndarray:
    """Parse an idx file (gzipped or not): magic 0x0000 08 <ndim>, big-endian sizes, uint8 data."""
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    if len(blob) < 4 or blob[:2] != b"\0\0" or blob[2] != 0x08:
        raise DataError("not an idx file of unsigned bytes (bad magic number)")
    ndim = blob[3]
    shape = tuple(int.from_bytes(blob[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(blob, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"idx file holds {data.size} bytes of data, its header says {shape}")
    return data.reshape(shape)


def afro_images(x: np.ndarray) -> np.ndarray:
    """Afro-MNIST images (N, 784) float64 -> uint8 (N, 28, 28), checking the value range."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 784:
        raise DataError(f"expected Afro-MNIST images of shape (N, 784), got {x.shape}")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 255:
        raise DataError(f"Afro-MNIST pixel values span [{lo}, {hi}], expected [0, 1] or [0, 255]")
    if hi <= 1.0:
        x = x * 255.0
    return np.rint(x).astype(np.uint8).reshape(-1, 28, 28)


def _read(name: str, role: str) -> np.ndarray:
    path, blob = locate(name, role)
    if _source(name).kind == "idx":
        return read_idx(blob)
    import io
    arr = np.load(io.BytesIO(blob), allow_pickle=False)
    return afro_images(arr) if role.startswith("x") else arr.astype(np.int64).reshape(-1)


def load(name: str) -> Images:
    """Load a data set from local copies (never the network). Labels are int64 in 0..9."""
    if name in SYNTHETIC:
        return synthetic(seed=SYNTHETIC[name])
    parts = {role: _read(name, role) for role in IDX}
    imgs = Images(parts["x_train"], parts["y_train"].astype(np.int64),
                  parts["x_test"], parts["y_test"].astype(np.int64))
    for split in ("train", "test"):
        x, y = getattr(imgs, "x_" + split), getattr(imgs, "y_" + split)
        if x.shape[1:] != (28, 28) or len(x) != len(y) or y.min() < 0 or y.max() > 9:
            raise DataError(f"{name} {split}: images {x.shape} and labels {y.shape} "
                            f"(range {y.min()}..{y.max()}) do not form a 28x28 ten-class set")
    return imgs


def available(name: str) -> bool:
    """True if every file of the set is here and verified."""
    try:
        for role in IDX:
            locate(name, role)
        return True
    except DataError:
        return False


def synthetic(n_train: int = 2000, n_test: int = 500, seed: int = 0) -> Images:
    """A tiny ten-class 28x28 set: one random blurred prototype per class plus pixel noise."""
    rng = np.random.default_rng(seed)
    protos = rng.random((10, 28, 28)) ** 3 * 255

    def make(n):
        y = rng.integers(0, 10, n)
        x = protos[y] * rng.uniform(0.6, 1.0, (n, 1, 1)) + rng.normal(0, 40, (n, 28, 28))
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    return Images(*make(n_train), *make(n_test))


# --- The multitask chapter: test splits alone, Dig-MNIST, several synthetic tasks ----------------------
# KMNIST and Kannada-MNIST are here with their test splits only (no training images): the multitask
# chapter trains on a stratified part of a test split and scores the rest (train.split, protocol "reduced").
# Dig-MNIST (10,240 Kannada digits written by other people) is a test set only, published with Kannada-MNIST.

TEST_ONLY: dict[str, Source] = {
    "dig_mnist": Source("Dig-MNIST", "idx", {
        "x_test": File("dig-images-idx3-ubyte.gz", "https://github.com/vinayprabhu/Kannada_MNIST/raw/master/data/"
                       "output_tensors/MNIST_format/X_dig_MNIST-idx3-ubyte.gz",
                       "md5:d224f44185e453487ad5af34e201a87c", "be9c411cc3e52d8d2aae5feda96c9c3d"),
        "y_test": File("dig-labels-idx1-ubyte.gz", "https://github.com/vinayprabhu/Kannada_MNIST/raw/master/data/"
                       "output_tensors/MNIST_format/y_dig_MNIST-idx1-ubyte.gz",
                       "md5:9f9e1a4ecb080d70c5953eed2d8121f0", "f3009652aef0d08f5079e2a7606b3eac")},
        "prabhu2019kannada", "see Zenodo record 3359691"),
}
# Distinct tiny stand-in tasks (different class prototypes) for the multitask chapter's quick runs.
SYNTHETIC = {"synthetic": 0, "synthetic1": 1, "synthetic2": 2, "synthetic3": 3}


def load_test(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The test split alone, (images uint8 (N, 28, 28), labels int64 (N,)): needs only its two files."""
    if name in SYNTHETIC:
        imgs = synthetic(seed=SYNTHETIC[name])
        return imgs.x_test, imgs.y_test
    x, y = _read(name, "x_test"), _read(name, "y_test").astype(np.int64)
    if x.shape[1:] != (28, 28) or len(x) != len(y) or y.min() < 0 or y.max() > 9:
        raise DataError(f"{name} test: images {x.shape} and labels {y.shape} do not form a 28x28 ten-class set")
    return x, y


def available_test(name: str) -> bool:
    """True if the set's test images and labels are here and verified (the training files need not be)."""
    if name in SYNTHETIC:
        return True
    try:
        for role in ("x_test", "y_test"):
            locate(name, role)
        return True
    except DataError:
        return False


REDUCED = {"test_fraction": 0.2, "val_fraction": 0.2, "seed": 0}  # the reduced protocol's split, drawn once


def reduced_split(y: np.ndarray) -> dict[str, np.ndarray]:
    """The reduced protocol's indices into a test split with labels ``y`` (10,000 -> 8,000 + 2,000): "train" and
    "test" (stratified, REDUCED["test_fraction"] held out), and within "train" the inner "inner_train" and
    "inner_val" (stratified again, REDUCED["val_fraction"]), all from REDUCED["seed"] alone."""
    train, test = stratified_split(y, REDUCED["test_fraction"], REDUCED["seed"])
    keep, val = stratified_split(y[train], REDUCED["val_fraction"], REDUCED["seed"] + 1)
    return {"train": train, "test": test, "inner_train": train[keep], "inner_val": train[val]}


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out) of a split holding out round(fraction * count) examples of every class,
    drawn from ``seed`` alone; both sorted, disjoint, together every index."""
    rng = np.random.default_rng(seed)
    held = []
    for k in np.unique(y):
        idx = np.flatnonzero(y == k)
        held.append(rng.permutation(idx)[:int(round(fraction * len(idx)))])
    held = np.sort(np.concatenate(held))
    kept = np.setdiff1d(np.arange(len(y)), held)
    return kept, held


DEADLINE = 30 * 60  # seconds one file may take to download, however steadily it trickles


def download(name: str, root: Path | None = None, progress: bool = True,
             deadline: float = DEADLINE, timeout: float = 60) -> Path:
    """Fetch every missing file of ``name`` into ``root`` (default: the cache folder).

    Each file is streamed to a ``.part`` file beside its destination, verified, and only
    then renamed into place; on any failure, on SIGINT or SIGTERM, and when the file takes
    longer than ``deadline`` seconds (a read may also wait ``timeout`` seconds at most),
    the ``.part`` file is removed.
    """
    src = _downloadable(name)
    folder = (root or cache_dir()) / _folder(name)
    folder.mkdir(parents=True, exist_ok=True)
    parts: set[str] = set()  # .part files on disk now, for the signal handlers
    previous = _remove_on_signal(parts)
    try:
        for role, f in src.files.items():
            if _scan(name, role)[0] is None:
                _fetch(src, name, f, folder, parts, deadline, timeout, progress)
    except _Signalled as s:
        signum = s.args[0]
    else:
        signum = None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if signum is not None:  # outside the except clause: the handler's exception has no context
        _redeliver(signum, previous[signum])
    return folder


def _fetch(src: Source, name: str, f: File, folder: Path, parts: set[str], deadline: float,
           timeout: float, progress: bool) -> None:
    from tqdm.auto import tqdm

    dest = folder / f.name
    end = time.monotonic() + deadline
    tmp = str(folder / f".{f.name}.{secrets.token_hex(4)}.part")
    parts.add(tmp)  # before it exists: a signal must not find it on disk but unlisted
    try:
        # Created like any file (0o666 less the umask), not 0o600 as tempfile.mkstemp would.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as out, \
                urllib.request.urlopen(f.url, timeout=min(timeout, deadline)) as r:
            total = int(r.headers.get("Content-Length") or 0) or None
            read = getattr(r, "read1", r.read)  # read1: whatever one recv brings, so the clock is seen
            got = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=f.name, disable=not progress) as bar:
                while chunk := read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
                    got += len(chunk)
                    if time.monotonic() > end:
                        raise _late(src, name, f, deadline, got)
        blob = Path(tmp).read_bytes()
        if not _check(dest, f, blob):
            raise DataError(f"{src.title} ({name}): download of {f.name} from {f.url} does not "
                            f"match its checksum {f.hash}; nothing was kept. Try again later.")
        os.replace(tmp, dest)
    except OSError as e:  # network errors (URLError, a reset connection, a timeout) and full disks
        if time.monotonic() > end:  # a read that timed out after the deadline: say deadline
            raise _late(src, name, f, deadline, None) from e
        raise DataError(f"{src.title} ({name}): downloading {f.name} from {f.url} failed ({e}); "
                        f"nothing was kept. Check the connection and rerun the same command.") from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
        parts.discard(tmp)


def _late(src: Source, name: str, f: File, deadline: float, got: int | None) -> DataError:
    so_far = f", {got} bytes received" if got is not None else ""
    return DataError(f"{src.title} ({name}): downloading {f.name} from {f.url} was abandoned: not "
                     f"done within the deadline of {deadline:g} s{so_far}; nothing was kept. Try "
                     f"again later, or allow longer (python -m biaslearn.data download --deadline SECONDS).")


class _Signalled(BaseException):
    """SIGINT/SIGTERM arrived mid-download: unwinds it (args: the signal number)."""


def _remove_on_signal(parts: set[str]) -> dict:
    """Make SIGINT and SIGTERM delete the ``.part`` files and unwind the download (the
    default SIGTERM would end the process at once, leaving them); the handlers replaced.

    Only the main thread may set handlers; a signal that is ignored stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, frame):
        for part in list(parts):
            try:
                os.remove(part)
            except FileNotFoundError:
                pass
        raise _Signalled(signum)

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        old = signal.getsignal(sig)
        if old not in (signal.SIG_IGN, None):  # None: set outside Python, cannot be restored
            previous[sig] = old
            signal.signal(sig, handler)
    return previous


def _redeliver(signum: int, old) -> None:
    """Act on the signal as the replaced handler would have: KeyboardInterrupt, exit, ..."""
    if callable(old):
        old(signum, None)
    else:  # SIG_DFL (restored by now): end the process by the signal, as it would have
        signal.raise_signal(signum)
    raise DataError(f"download interrupted by {signal.Signals(signum).name}; nothing was kept")


def main(argv: list[str] | None = None) -> None:
    """The command line (see the module's docstring); DataError for a name it cannot fetch."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m biaslearn.data",
                                     description="The paper's image data sets: what is here, and downloads.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="each data set: here, missing, or corrupt (with the checksums)")
    get = sub.add_parser("download", help=f"fetch what is missing into {cache_dir()}")
    get.add_argument("names", nargs="+", metavar="NAME", help=f"{', '.join(SOURCES)}, or all")
    get.add_argument("--deadline", type=float, default=DEADLINE, metavar="SECONDS",
                     help=f"give up on a file after this long (default {DEADLINE:g})")
    args = parser.parse_args(argv)
    if args.command == "list":
        for n in [*SOURCES, *TEST_ONLY]:
            state, lines = status(n)
            print(f"{n:16s} {state:8s} {_source(n).title}")
            for line in lines:
                print(" " * 4 + line)
        return
    names = PAPER_TASKS if args.names == ["all"] else args.names
    for n in names:  # every name checked before anything is fetched
        _downloadable(n)
    for n in names:
        print(n, "->", download(n, deadline=args.deadline))


if __name__ == "__main__":
    import sys

    try:
        main()
    except DataError as e:
        sys.exit(f"error: {e}")
