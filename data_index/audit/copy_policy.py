"""Turn a duplicate audit into a library the user can trust: one image per photo, or each group
of copies as one case. The result is a manifest beside the original images (never a copy)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import pandas as pd

from data_index.audit.report import DuplicateReport
from data_index.library import CaseLibrary

CopyPolicy = Literal["one-per-group", "group-as-case"]
POLICIES: tuple[str, ...] = ("one-per-group", "group-as-case")
_DERIVED = ("key", "relpath", "sha1", "path")


def audited_manifest(library: CaseLibrary, report: DuplicateReport, *, policy: CopyPolicy):
    """The library's cases as a manifest table under a copy policy.

    ``one-per-group`` keeps the first image of each group and drops groups whose copies carry
    different labels (which label is right is for a person to decide); ``group-as-case`` keeps
    every image and gives each group one ``case_id``, so leave-one-case-out search never lets a
    copy count as evidence for its twin.
    """
    if policy not in POLICIES:
        raise ValueError(f"Copy policy must be one of {', '.join(POLICIES)}, not {policy!r}.")
    cases = library.cases
    if len(report.paths) != len(cases):
        raise ValueError("The audit does not belong to this library version: run it again.")
    table = cases.drop(columns=[c for c in _DERIVED if c in cases.columns]).copy()
    table.insert(0, "path", cases["path"].astype(str))
    table["duplicate_group"] = ""
    conflicted = {c.group for c in report.conflicts}
    drop: list[int] = []
    for g, members in enumerate(report.groups):
        table.loc[members, "duplicate_group"] = f"copy-group-{g}"
        if policy == "one-per-group":
            drop += members if g in conflicted else members[1:]
        else:
            table.loc[members, "case_id"] = f"copy-group-{g}"
    return table.drop(index=drop).reset_index(drop=True)


def write_audited_manifest(
    library: CaseLibrary, report: DuplicateReport, *, policy: CopyPolicy, out: Path
) -> Path:
    """Write the manifest atomically (temporary file, then rename) and return its path."""
    table = audited_manifest(library, report, policy=policy)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    pd.DataFrame(table).to_csv(tmp, index=False)
    os.replace(tmp, out)
    return out
