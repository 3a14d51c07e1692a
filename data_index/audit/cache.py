"""The audit of a library, run once per library version and kept on disk.

The audit looks at every pixel and takes tens of seconds per thousand images, while its answer
depends only on the library's files and labels, which the library fingerprint covers. So every
front end (``python -m data_index validate``, the app's Library tab, the benchmark runner)
calls ``audit_library``: the first call audits and writes
``<cache>/audit/<fingerprint>-<settings>.json``, later calls read it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from dataclasses import fields
from pathlib import Path

import numpy as np

from data_index.audit.core import Progress, find_duplicate_groups
from data_index.audit.decisions import apply_decisions
from data_index.audit.match import MatchSettings, PairEvidence
from data_index.audit.report import (
    DuplicatePair,
    DuplicateReport,
    group_ids_of,
    label_conflicts,
)
from data_index.library import CaseLibrary
from data_index.locations import cache_root

# Raise when a change to the method changes what it finds, so older files are not reused.
AUDIT_VERSION = 6
_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def audit_cache_dir() -> Path:
    return cache_root() / "audit"


def _settings_tag(settings: MatchSettings) -> str:
    # A change to the thresholds or the method must not reuse groups found under the old ones.
    return hashlib.sha1(f"{AUDIT_VERSION}|{settings!r}".encode()).hexdigest()[:8]


def audit_cache_file(
    library: CaseLibrary, *, settings: MatchSettings | None = None, cache_dir: Path | None = None
) -> Path:
    """Where the audit of this library version under these settings is stored."""
    folder = Path(cache_dir) if cache_dir is not None else audit_cache_dir()
    tag = _settings_tag(settings or MatchSettings())
    return folder / f"{library.fingerprint[:16]}-{tag}.json"


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _pair(p: DuplicatePair) -> list:
    return [p.a, p.b, {f.name: _plain(getattr(p.evidence, f.name)) for f in fields(PairEvidence)}]


def _evidence(stored: dict) -> PairEvidence:
    stored = dict(stored)
    stored["points"] = tuple(tuple(point) for point in stored.get("points", ()))
    return PairEvidence(**stored)


def _payload(library: CaseLibrary, report: DuplicateReport) -> dict:
    """The report with rows named by relative path, so it holds wherever the library sits."""
    return {
        "version": AUDIT_VERSION,
        "library": library.name,
        "fingerprint": library.fingerprint,
        "relpaths": library.cases["relpath"].astype(str).tolist(),
        "groups": report.groups,
        "pairs": [_pair(p) for p in report.pairs],
        "possible": [_pair(p) for p in report.possible],
        "overlays": {str(row): cells for row, cells in report.overlays.items()},
        "unreadable": [[row, reason] for row, reason in report.unreadable],
        "seconds": report.seconds,
        "n_candidates": report.n_candidates,
    }


def _report_from(stored: dict, library: CaseLibrary) -> DuplicateReport:
    """The stored audit for the rows ``library.cases`` has now (KeyError if one is not in it).

    A library that dropped undecodable images after loading keeps its fingerprint; its report
    is the as-loaded audit restricted to the rows left.
    """
    relpaths = library.cases["relpath"].astype(str).tolist()
    stored_row = {p: i for i, p in enumerate(stored["relpaths"])}
    row_of = {stored_row[p]: row for row, p in enumerate(relpaths)}
    groups = [sorted(row_of[m] for m in g if m in row_of) for g in stored["groups"]]
    groups = sorted((g for g in groups if len(g) > 1), key=lambda g: g[0])
    labels = library.cases["label"].astype(str).tolist()
    pairs, possible = (
        [
            DuplicatePair(row_of[a], row_of[b], _evidence(evidence))
            for a, b, evidence in stored[key]
            if a in row_of and b in row_of
        ]
        for key in ("pairs", "possible")
    )
    overlays = {
        row_of[int(r)]: cells for r, cells in stored["overlays"].items() if int(r) in row_of
    }
    return DuplicateReport(
        paths=library.cases["path"].astype(str).tolist(),
        labels=labels,
        group_ids=group_ids_of(groups, len(relpaths)),
        groups=groups,
        conflicts=label_conflicts(groups, labels),
        pairs=pairs,
        unreadable=[(row_of[r], reason) for r, reason in stored["unreadable"] if r in row_of],
        seconds=float(stored["seconds"]),
        n_candidates=int(stored["n_candidates"]),
        possible=possible,
        overlays=overlays,
    )


def _read(path: Path, library: CaseLibrary) -> DuplicateReport | None:
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored["version"] != AUDIT_VERSION or stored["fingerprint"] != library.fingerprint:
            return None
        return _report_from(stored, library)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, half-written or of other files: audit again


def audit_library(
    library: CaseLibrary,
    *,
    settings: MatchSettings | None = None,
    progress: Progress | None = None,
    cache_dir: Path | None = None,
) -> DuplicateReport:
    """Copies of one photo among ``library.cases`` (rows in that order), from the cache or
    from a fresh audit that is then cached, less the pairs a person marked "not a copy"
    (``decisions.mark_not_copy``). ``progress`` is called only when it audits."""
    settings = settings or MatchSettings()
    path = audit_cache_file(library, settings=settings, cache_dir=cache_dir)
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(path.resolve(), threading.Lock())
    with lock:  # two app sessions asking at once: the second waits and reads the file
        cached = _read(path, library)
        if cached is not None:
            return apply_decisions(cached, library)
        report = find_duplicate_groups(
            library.cases["path"].astype(str).tolist(),
            library.cases["label"].astype(str).tolist(),
            settings=settings,
            progress=progress,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{uuid.uuid4().hex}.json"
        tmp.write_text(json.dumps(_payload(library, report)), encoding="utf-8")
        os.replace(tmp, path)  # atomic: another process sees the old file or the whole new one
    return apply_decisions(report, library)
