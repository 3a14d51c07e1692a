"""A person's "not a copy" decisions, kept beside the library and applied to every audit.

The audit can be wrong, and a person who has looked at two photos knows better. Each decision
names the two photos by the SHA-1 of their files, so it survives renames, moves and new
images, and is stored in ``copy_decisions.json`` in the library's folder (next to its class
folders or manifest), where it travels with the library.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from data_index.audit.groups import split_weak_groups
from data_index.audit.report import DuplicateReport, group_ids_of, label_conflicts
from data_index.library import CaseLibrary

DECISIONS_NAME = "copy_decisions.json"


def decisions_file(library: CaseLibrary) -> Path:
    return Path(library.root) / DECISIONS_NAME


def _key(sha_a: str, sha_b: str) -> tuple[str, str]:
    return (min(sha_a, sha_b), max(sha_a, sha_b))


def not_copies(library: CaseLibrary) -> set[tuple[str, str]]:
    """The photo pairs (file SHA-1s) marked "not a copy"; an unreadable file counts as none."""
    try:
        stored = json.loads(decisions_file(library).read_text(encoding="utf-8"))
        return {_key(a, b) for a, b in stored.get("not_copies", [])}
    except (OSError, ValueError, TypeError, AttributeError):
        return set()


def mark_not_copy(library: CaseLibrary, *, row_a: int, row_b: int) -> Path:
    """Record that rows ``row_a`` and ``row_b`` of ``library.cases`` are different photos."""
    n = len(library.cases)
    if not (0 <= row_a < n and 0 <= row_b < n) or row_a == row_b:
        raise ValueError("Choose two different images of this library.")
    sha = library.cases["sha1"].astype(str)
    pairs = not_copies(library) | {_key(sha.iloc[row_a], sha.iloc[row_b])}
    path = decisions_file(library)
    tmp = path.parent / f".{DECISIONS_NAME}.{uuid.uuid4().hex}.tmp"
    try:
        tmp.write_text(json.dumps({"not_copies": sorted(map(list, pairs))}, indent=1))
        os.replace(tmp, path)  # atomic: a reader sees the old decisions or all the new ones
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise ValueError(
            f"Could not save the decision beside the library ({err.strerror or 'not writable'})."
        ) from None
    return path


def apply_decisions(report: DuplicateReport, library: CaseLibrary) -> DuplicateReport:
    """``report`` without the pairs a person marked "not a copy", its groups rebuilt."""
    decided = not_copies(library)
    if not decided:
        return report
    sha = library.cases["sha1"].astype(str).tolist()

    def kept(pair) -> bool:
        return _key(sha[pair.a], sha[pair.b]) not in decided

    pairs = [p for p in report.pairs if kept(p)]
    possible = [p for p in report.possible if kept(p)]
    if len(pairs) == len(report.pairs) and len(possible) == len(report.possible):
        return report
    groups, _ = split_weak_groups(
        len(report.paths), [(p.a, p.b, p.evidence) for p in pairs], lambda a, b: None
    )
    groups = sorted((sorted(g) for g in groups), key=lambda g: g[0])
    report.group_ids = group_ids_of(groups, len(report.paths))
    pairs = [p for p in pairs if report.group_ids[p.a] == report.group_ids[p.b]]
    report.pairs, report.possible, report.groups = pairs, possible, groups
    report.conflicts = label_conflicts(groups, report.labels)
    return report
