"""Index files on disk: a versioned folder per save and an atomically switched pointer.

Layout of an index directory::

    CURRENT                     name of the live version (replaced atomically)
    v-<time>-<id>/index.usearch integer keys -> unit vectors
    v-<time>-<id>/cases.parquet key -> path, label, case_id, metadata
    v-<time>-<id>/raw.npy       un-normalised vectors, rows in cases order (Euclidean protocol)
    v-<time>-<id>/manifest.json backbone, dim, metric, dtype, count, fingerprint, sha256 of the rest

A version is written in a hidden staging folder, renamed into place, and only then does
``CURRENT`` switch to it; a crash at any point leaves the previous version live and loadable.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import time
import uuid
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from usearch.index import Index, MetricKind, ScalarKind

POINTER = "CURRENT"
# Marks a folder as an index bundle (data_index/bundle.py) and describes its indexes.
BUNDLE_FILE = "bundle.json"
INDEX_FILE = "index.usearch"
CASES_FILE = "cases.parquet"
RAW_FILE = "raw.npy"
MANIFEST_FILE = "manifest.json"
FORMAT = "dermsearch-case-index"
FORMAT_VERSION = 1
# The live version and the one before it; older ones are deleted after a successful switch.
KEEP_VERSIONS = 2
METRIC = "cos"
# i8 quantises unit vectors to 8-bit integers: a quarter of f32's memory, for very large
# libraries (benchmarks/perf/million.py measures what it costs in recall).
DTYPES = {"f32": ScalarKind.F32, "f16": ScalarKind.F16, "i8": ScalarKind.I8}
# HNSW parameters, pinned rather than left to library defaults so every machine builds alike.
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 64
_PACKAGES = ("usearch", "numpy", "pandas", "pyarrow", "torch", "pillow")
# A staging folder this old is the leftover of a crashed save, not one in progress.
STALE_STAGING_S = 3600


class IndexMismatch(ValueError):
    """The index files disagree with each other or with the backbone asked for."""


def new_usearch_index(dim: int, dtype: str) -> Index:
    """An empty cosine index with every setting pinned (never usearch's hardware defaults)."""
    if dtype not in DTYPES:
        raise ValueError(f"Index dtype must be one of {', '.join(DTYPES)}, not {dtype!r}.")
    return Index(
        ndim=dim,
        metric=MetricKind.Cos,
        dtype=DTYPES[dtype],
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=EXPANSION_SEARCH,
    )


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as f:
        os.fsync(f.fileno())


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_version(
    out_dir: Path,
    *,
    index: Index,
    cases: pd.DataFrame,
    raw: np.ndarray,
    manifest: dict[str, Any],
) -> Path:
    """Write one complete version and switch ``CURRENT`` to it; returns the version folder."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / f".staging-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        index.save(str(staging / INDEX_FILE))
        cases.to_parquet(staging / CASES_FILE, index=False)
        np.save(staging / RAW_FILE, np.ascontiguousarray(raw, dtype=np.float32))
        files = {}
        for name in (INDEX_FILE, CASES_FILE, RAW_FILE):
            _fsync_file(staging / name)
            files[name] = {"sha256": sha256_file(staging / name)}
        manifest = {**manifest, "files": files}
        _atomic_text(staging / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True))
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        version = out_dir / f"v-{stamp}-{uuid.uuid4().hex[:8]}"
        os.rename(staging, version)
        _fsync_dir(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    previous = _pointer(out_dir)
    _atomic_text(out_dir / POINTER, version.name + "\n")
    _prune(out_dir, keep={version.name, *([previous] if previous else [])})
    return version


def _pointer(out_dir: Path) -> str | None:
    try:
        name = (out_dir / POINTER).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name or None


def _prune(out_dir: Path, *, keep: set[str]) -> None:
    """Delete versions other than ``keep`` and what crashed saves left behind."""
    now = time.time()
    for child in out_dir.iterdir():
        try:
            old = now - child.stat().st_mtime > STALE_STAGING_S
        except FileNotFoundError:
            continue  # another process removed it meanwhile
        orphan = child.name.startswith("v-") and child.name not in keep
        crashed = child.name.startswith(".staging-") and old
        if (orphan or crashed) and child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        elif child.name.startswith(f".{POINTER}.") and child.name.endswith(".tmp") and old:
            child.unlink(missing_ok=True)  # a pointer update that a crash interrupted


def resolve_version(path: str | Path) -> Path:
    """The live version folder of an index directory (or ``path`` itself if it is one)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ValueError(f"No index at {path}: build one with `python -m data_index build`.")
    if (path / MANIFEST_FILE).is_file():
        return path
    name = _pointer(path)
    if name is None:
        raise ValueError(f"{path} is not a case index (no {POINTER} file or {MANIFEST_FILE}).")
    version = path / name
    if not (version / MANIFEST_FILE).is_file():
        raise IndexMismatch(f"{path}/{POINTER} names {name}, which is missing or incomplete.")
    return version


def read_version(version: Path) -> tuple[dict[str, Any], pd.DataFrame, np.ndarray]:
    """Manifest, cases table and raw vectors of a version, after checking every file's sha256
    against the manifest (the usearch file is loaded by the caller)."""
    try:
        manifest = json.loads((version / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise IndexMismatch(f"The index manifest in {version} is unreadable ({err}).") from err
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatch(
            f"{version} holds format {manifest.get('format')!r} v{manifest.get('format_version')}; "
            f"this code reads {FORMAT} v{FORMAT_VERSION}. Rebuild the index."
        )
    for name in (INDEX_FILE, CASES_FILE, RAW_FILE):
        expected = manifest.get("files", {}).get(name, {}).get("sha256")
        target = version / name
        if not target.is_file():
            raise IndexMismatch(f"The index in {version} lacks {name}; rebuild it.")
        if expected != sha256_file(target):
            raise IndexMismatch(
                f"{name} in {version} does not match its checksum in the manifest (modified or "
                "damaged); rebuild the index."
            )
    cases = pd.read_parquet(version / CASES_FILE)
    raw = np.load(version / RAW_FILE, allow_pickle=False)
    return manifest, cases, raw


def load_version(path: str | Path) -> tuple[dict[str, Any], Index, pd.DataFrame, np.ndarray]:
    """Manifest, usearch index, cases table and raw vectors of an index directory's live
    version, after checking that all four agree; ``IndexMismatch`` says what does not."""
    folder = resolve_version(path)
    manifest, cases, raw = read_version(folder)
    meta = Index.metadata(str(folder / INDEX_FILE)) or {}
    dim, dtype, count = manifest.get("dim"), manifest.get("dtype"), manifest.get("count")
    problems = []
    if meta.get("dimensions") != dim:
        problems.append(f"usearch file has {meta.get('dimensions')} dims, manifest {dim}")
    if meta.get("kind_metric") != MetricKind.Cos or manifest.get("metric") != METRIC:
        problems.append(f"metric is {meta.get('kind_metric')}, expected cosine")
    if dtype not in DTYPES or meta.get("kind_scalar") != DTYPES[dtype]:
        problems.append(f"usearch dtype {meta.get('kind_scalar')}, manifest {dtype}")
    if not (meta.get("count_present") == count == len(cases) == raw.shape[0]):
        problems.append(
            f"counts differ (usearch {meta.get('count_present')}, manifest {count}, "
            f"cases {len(cases)}, raw vectors {raw.shape[0]})"
        )
    if raw.ndim != 2 or raw.shape[1] != dim:
        problems.append(f"raw vectors have shape {raw.shape}, expected (n, {dim})")
    if problems:
        raise IndexMismatch(f"The index in {folder} is inconsistent: " + "; ".join(problems))
    index = new_usearch_index(dim, dtype)
    index.load(str(folder / INDEX_FILE))
    # The graph's expansion settings are the manifest's, so an index tuned for a large library
    # keeps its recall when reopened rather than falling back to this module's defaults.
    settings = manifest.get("search", {})
    index.expansion_add = int(settings.get("expansion_add", EXPANSION_ADD))
    index.expansion_search = int(settings.get("expansion_search", EXPANSION_SEARCH))
    keys = cases["key"].to_numpy(np.uint64)
    if len(set(keys.tolist())) != len(keys) or not np.all(index.contains(keys)):
        raise IndexMismatch(f"The cases table in {folder} does not match the index keys.")
    return manifest, index, cases, raw
