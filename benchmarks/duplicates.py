"""Duplicate groups of a library for the benchmark, cached per library fingerprint.

The audit (data_index.audit, issue 7) looks at every pixel and takes tens of seconds per
thousand images, while its answer depends only on the files: so it is stored once per
(library fingerprint, audit settings) under the cache root and reused by every rerun.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_index.audit import MatchSettings, find_duplicate_groups
from data_index.library import CaseLibrary
from data_index.locations import cache_root, slug

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class LibraryDuplicates:
    """Duplicate-group id per row of ``library.cases`` (singletons get ids of their own)."""

    group_ids: np.ndarray
    n_groups: int
    n_conflicts: int  # groups whose members carry different labels
    seconds: float  # how long the audit took when it ran (kept in the cache file too)
    from_cache: bool


def audit_cache_dir() -> Path:
    return cache_root() / "audit"


def _settings_tag() -> str:
    # A change to the audit's thresholds must not reuse groups found under the old ones.
    return hashlib.sha1(repr(MatchSettings()).encode()).hexdigest()[:8]


def _cache_file(library: CaseLibrary, folder: Path) -> Path:
    return folder / f"{slug(library.name)}-{library.fingerprint[:16]}-{_settings_tag()}.json"


def _from_file(path: Path, relpaths: list[str]) -> LibraryDuplicates | None:
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        by_path = dict(zip(stored["relpaths"], stored["group_ids"], strict=True))
        ids = np.array([by_path[p] for p in relpaths], dtype=np.int64)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, half-written or from other files: audit again
    return LibraryDuplicates(
        group_ids=ids,
        n_groups=int(stored["n_groups"]),
        n_conflicts=int(stored["n_conflicts"]),
        seconds=float(stored["seconds"]),
        from_cache=True,
    )


def library_duplicates(
    library: CaseLibrary,
    *,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> LibraryDuplicates:
    """Group ids aligned with ``library.cases`` rows, from the cache or a fresh audit.

    Rows are matched by relative path, so a library that later dropped undecodable images
    still reads the audit of its as-loaded files (the fingerprint does not change on drops).
    """
    folder = Path(cache_dir) if cache_dir is not None else audit_cache_dir()
    path = _cache_file(library, folder)
    relpaths = library.cases["relpath"].astype(str).tolist()
    cached = _from_file(path, relpaths)
    if cached is not None:
        return cached
    report = find_duplicate_groups(
        library.cases["path"].astype(str).tolist(),
        library.cases["label"].astype(str).tolist(),
        progress=progress,
    )
    found = LibraryDuplicates(
        group_ids=np.asarray(report.group_ids, dtype=np.int64),
        n_groups=len(report.groups),
        n_conflicts=len(report.conflicts),
        seconds=float(report.seconds),
        from_cache=False,
    )
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{uuid.uuid4().hex}.json"
    payload = {
        "library": library.name,
        "fingerprint": library.fingerprint,
        "relpaths": relpaths,
        "group_ids": found.group_ids.tolist(),
        "n_groups": found.n_groups,
        "n_conflicts": found.n_conflicts,
        "seconds": found.seconds,
    }
    tmp.write_text(json.dumps(payload), encoding="utf-8")
    os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the whole new one
    return found


def queries_with_copy(*, group_ids: np.ndarray, case_ids: np.ndarray) -> tuple[int, int]:
    """(rows with another image of their duplicate group, those whose copy is another case).

    The second count is what the duplicate exclusion changes: a copy within the query's own
    case is excluded by the case rule already.
    """
    groups = np.asarray(group_ids)
    cases = np.asarray(case_ids).astype(str)
    with_copy = other_case = 0
    for gid in np.unique(groups):
        members = np.flatnonzero(groups == gid)
        if len(members) < 2:
            continue
        with_copy += len(members)
        member_cases = cases[members]
        other_case += int(sum((member_cases != c).any() for c in member_cases))
    return with_copy, other_case


def case_or_copy_groups(*, group_ids: np.ndarray, case_ids: np.ndarray) -> np.ndarray:
    """One id per row joining rows that share a case or a duplicate group (transitively).

    Used to keep a case and all copies of its photos on one side of a train/test split.
    """
    groups = np.asarray(group_ids)
    cases = np.unique(np.asarray(case_ids).astype(str), return_inverse=True)[1].reshape(-1)
    n = len(groups)
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for ids in (groups, cases):
        first: dict[int, int] = {}
        for row, value in enumerate(ids.tolist()):
            root = first.setdefault(value, row)
            a, b = find(root), find(row)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return np.array([find(i) for i in range(n)], dtype=np.int64)
