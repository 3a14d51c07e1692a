"""A case library: labelled images from a class-folder tree, a CSV/Parquet manifest, or a zip."""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import models.limits as limits
from data_index.archive import extract_zip, library_folder
from data_index.hub import (
    HubColumns,
    is_hub_folder,
    is_hub_source,
    materialise,
    parse_hub_source,
    read_card,
)
from data_index.validation import (
    DuplicateGroup,
    Problem,
    Progress,
    ValidationReport,
    check_files,
    degenerate_warnings,
    is_image_name,
    label_names,
)

MANIFEST_NAMES = ("manifest.csv", "manifest.parquet")
OUTSIDE = "the path points outside the libraries this library may use; row left out"
# A manifest column naming each label for people ("Melanoma" for mel); kept as metadata too.
LABEL_NAME = "label_name"
# Columns the library owns; any other manifest column is kept as metadata.
CORE_COLUMNS = ("key", "path", "relpath", "label", "case_id", "split", "caption", "sha1")
_OPTIONAL = ("case_id", "split", "caption")


@dataclass
class CaseLibrary:
    """Usable cases (one row per image) plus the report of what was left out and why.

    ``cases`` columns: key (int, 0..n-1), path (absolute), relpath, label, case_id, split,
    caption, sha1, then metadata columns. A missing ``case_id`` defaults to the relpath of the
    first file with the same bytes, so exact duplicates count as one case.
    """

    root: Path
    name: str
    layout: str
    cases: pd.DataFrame
    report: ValidationReport
    _fingerprint: str | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls,
        source: str | Path,
        *,
        decode: bool = False,
        name: str | None = None,
        progress: Progress | None = None,
        max_cases: int | None = None,
        hub_columns: HubColumns | None = None,
        allowed_roots: Sequence[Path] | None = None,
    ) -> CaseLibrary:
        """Load a class-folder tree, a manifest file, a folder holding ``manifest.csv`` (preferred
        over its class folders), a zip of either, or a Hugging Face dataset (``hf://...`` or a
        folder in the Hub's layout; ``max_cases`` draws a seeded sample of it, ``hub_columns``
        names its columns). ``decode`` checks every pixel (slow).

        ``allowed_roots`` confines a manifest's rows to those folders (an uploaded manifest may
        only point into libraries already offered): a row outside them is left out before its
        file is touched, and the report does not say whether it exists.
        """
        if is_hub_source(source) or is_hub_folder(source):
            hub = parse_hub_source(source)
            name = name or hub.name
            source = materialise(hub, columns=hub_columns, max_cases=max_cases, progress=progress)
        source = Path(source).expanduser()
        if not source.exists():
            raise ValueError(f"The library {source} does not exist.")
        source = source.resolve()
        prefix = ""
        folder, manifest = source, None
        if source.is_file() and source.suffix.lower() == ".zip":
            folder, prefix = library_folder(extract_zip(source)), "zip/"
            name = name or source.stem
        elif source.is_file():
            if source.suffix.lower() not in (".csv", ".parquet"):
                raise ValueError(
                    f"{source.name} is not a library: give a folder of class folders, a .csv or "
                    ".parquet manifest, or a .zip of either."
                )
            folder, manifest = source.parent, source
        if manifest is None:
            manifest = next((folder / n for n in MANIFEST_NAMES if (folder / n).is_file()), None)
        card = read_card(folder)
        if name is None and card is not None:
            name = card.get("name") or None  # an unpacked Hub dataset keeps the dataset's name
        if name is None:
            name = folder.name if manifest is None or manifest.stem == "manifest" else manifest.stem
        if manifest is not None:
            # A zipped manifest may not point outside its zip.
            roots = [folder] if prefix else allowed_roots
            rows, problems, ignored = _rows_from_manifest(manifest, roots=roots)
            layout = prefix + "manifest"
        else:
            rows, problems, ignored = _rows_from_folders(folder)
            layout = prefix + "folder"
        report = ValidationReport(
            source=str(source), layout=layout, decoded=decode, ignored_files=ignored
        )
        report.problems.extend(problems)
        cases = _checked_cases(rows, folder, report, decode=decode, progress=progress)
        return cls(root=folder, name=name, layout=layout, cases=cases, report=report)

    def __len__(self) -> int:
        return len(self.cases)

    @property
    def labels(self) -> list[str]:
        return sorted(self.cases["label"].unique().tolist())

    @property
    def label_names(self) -> dict[str, str]:
        """Display names of labels from the manifest's ``label_name`` column (may be empty)."""
        if LABEL_NAME not in self.cases.columns:
            return {}
        return label_names(self.cases["label"].tolist(), self.cases[LABEL_NAME].tolist())[0]

    @property
    def metadata_columns(self) -> list[str]:
        return [c for c in self.cases.columns if c not in CORE_COLUMNS]

    @property
    def fingerprint(self) -> str:
        """Content hash of the library as found on disk: files, labels and case ids (not where
        it is stored). Fixed at load, so images dropped later as undecodable do not change it
        and an index built from this library compares equal to a fresh load of it."""
        if self._fingerprint is None:
            self._fingerprint = library_fingerprint(self.cases)
        return self._fingerprint

    def drop(self, keys: list[int], *, reasons: list[str]) -> None:
        """Leave out cases found unusable later (e.g. pixels that fail to decode), keeping the
        report's counts in step. Keys are not renumbered: they stay valid index keys."""
        if not keys:
            return
        _ = self.fingerprint  # pin the as-loaded fingerprint before rows go
        gone = self.cases[self.cases["key"].isin(keys)]
        by_key = dict(zip(keys, reasons, strict=True))
        for key, relpath in zip(gone["key"], gone["relpath"], strict=True):
            self.report.unreadable.append(Problem(relpath, by_key[int(key)]))
        self.cases = self.cases[~self.cases["key"].isin(keys)].reset_index(drop=True)
        self.report.usable = len(self.cases)
        self.report.class_counts = _class_counts(self.cases)


def library_fingerprint(cases: pd.DataFrame) -> str:
    rows = sorted(
        zip(cases["relpath"], cases["sha1"], cases["label"], cases["case_id"], strict=True)
    )
    h = hashlib.sha1()
    for row in rows:
        h.update(("\t".join(map(str, row)) + "\n").encode())
    return h.hexdigest()


def _rows_from_folders(folder: Path) -> tuple[pd.DataFrame, list[Problem], int]:
    classes = sorted(
        p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))
    )
    if not classes:
        raise ValueError(
            f"{folder} has neither class folders (one folder of images per label) nor a "
            "manifest.csv; see README for the library formats."
        )
    problems: list[Problem] = []
    ignored = 0
    rows = []
    for p in folder.iterdir():
        if p.is_file() and is_image_name(p.name):
            problems.append(Problem(p.name, "image outside any class folder (no label)"))
    for class_dir in classes:
        for p in sorted(class_dir.rglob("*")):
            if p.is_dir() or any(part.startswith(".") for part in p.relative_to(folder).parts):
                continue
            if is_image_name(p.name):
                rows.append({"relpath": p.relative_to(folder).as_posix(), "label": class_dir.name})
            else:
                ignored += 1
    return pd.DataFrame(rows, columns=["relpath", "label"]), problems, ignored


def _read_manifest(path: Path) -> pd.DataFrame:
    """Read a manifest, bounded in bytes and rows (``models.limits``) before pandas parses it."""
    size = path.stat().st_size
    if size > limits.MAX_MANIFEST_BYTES:
        raise ValueError(
            f"The manifest {path.name} is {size / 1024**2:,.1f} MiB; the limit is "
            f"{limits.MAX_MANIFEST_BYTES / 1024**2:,.0f} MiB."
        )
    too_many = (
        f"The manifest {path.name} has more than {limits.MAX_MANIFEST_ROWS:,} rows, the limit; "
        "split it into smaller libraries."
    )
    try:
        if path.suffix.lower() == ".parquet":
            if pq.ParquetFile(path).metadata.num_rows > limits.MAX_MANIFEST_ROWS:
                raise ValueError(too_many)
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(
                path, dtype=str, keep_default_na=False, nrows=limits.MAX_MANIFEST_ROWS + 1
            )
            if len(table) > limits.MAX_MANIFEST_ROWS:
                raise ValueError(too_many)
    except ValueError as err:
        if str(err) == too_many:
            raise
        raise ValueError(f"Cannot read the manifest {path.name}: {err}") from err
    except (OSError, pa.ArrowException) as err:
        raise ValueError(f"Cannot read the manifest {path.name}: {err}") from err
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in ("path", "label") if c not in table.columns]
    if missing:
        raise ValueError(
            f"The manifest {path.name} lacks the column(s) {', '.join(missing)}; it needs "
            "path,label (optional: case_id, split, caption, any metadata)."
        )
    return table


def _text(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), "").astype(str).str.strip()


def _within(path: Path, roots: Sequence[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _rows_from_manifest(
    path: Path, *, roots: Sequence[Path] | None
) -> tuple[pd.DataFrame, list[Problem], int]:
    table = _read_manifest(path)
    base = path.parent
    table["path"] = _text(table["path"])
    table["label"] = _text(table["label"])
    for col in _OPTIONAL:
        if col in table.columns:
            table[col] = _text(table[col])
    problems: list[Problem] = []
    keep = np.ones(len(table), dtype=bool)
    seen: set[str] = set()
    lexical_roots = [Path(os.path.normpath(r)) for r in roots] if roots is not None else None
    real_roots = [Path(r).resolve() for r in roots] if roots is not None else None
    for i, (raw, label) in enumerate(zip(table["path"], table["label"], strict=True)):
        where = f"row {i + 2}"
        if not raw:
            problems.append(Problem(where, "empty path"))
            keep[i] = False
            continue
        if "\0" in raw:
            problems.append(Problem(where, "the path holds a NUL character"))
            keep[i] = False
            continue
        # Decided on the text first, then on the real path (a link inside may point out), so a
        # row naming a file elsewhere is refused without that file being looked at.
        lexical = Path(os.path.normpath(base / raw))
        if lexical_roots is not None and not _within(lexical, lexical_roots):
            problems.append(Problem(where, OUTSIDE))
            keep[i] = False
            continue
        resolved = lexical.resolve()
        if real_roots is not None and not _within(resolved, real_roots):
            problems.append(Problem(where, OUTSIDE))
            keep[i] = False
        elif not label:
            problems.append(Problem(f"{where} ({raw})", "empty label"))
            keep[i] = False
        elif str(resolved) in seen:
            problems.append(Problem(f"{where} ({raw})", "duplicate path (first row kept)"))
            keep[i] = False
        else:
            seen.add(str(resolved))
            table.at[i, "path"] = str(resolved)
    table = table[keep].reset_index(drop=True)
    # relpath: relative to the manifest's folder when inside it, else the absolute path.
    table["relpath"] = [
        Path(p).relative_to(base).as_posix() if Path(p).is_relative_to(base) else p
        for p in table["path"]
    ]
    if "sha1" in table.columns:
        table = table.rename(columns={"sha1": "manifest_sha1"})
    return table.drop(columns=["path"]), problems, 0


def _class_counts(cases: pd.DataFrame) -> dict[str, int]:
    counts = cases["label"].value_counts()
    return {str(k): int(counts[k]) for k in sorted(counts.index)}


def _checked_cases(
    rows: pd.DataFrame,
    root: Path,
    report: ValidationReport,
    *,
    decode: bool,
    progress: Progress | None,
) -> pd.DataFrame:
    paths = [(root / r).resolve() for r in rows["relpath"]]
    checks = check_files(paths, decode=decode, progress=progress)
    report.images_found = sum(c.reason != "file not found" for c in checks)
    ok = np.array([c.reason is None for c in checks], dtype=bool)
    for relpath, check in zip(rows["relpath"], checks, strict=True):
        if check.reason is not None:
            report.unreadable.append(Problem(relpath, check.reason))
    cases = rows[ok].reset_index(drop=True)
    cases.insert(0, "path", [str(p) for p, good in zip(paths, ok, strict=True) if good])
    cases["sha1"] = [c.sha1 for c in checks if c.reason is None]
    if "manifest_sha1" in cases.columns:
        stale = cases["manifest_sha1"].ne("") & cases["manifest_sha1"].ne(cases["sha1"])
        for relpath in cases.loc[stale, "relpath"]:
            report.problems.append(Problem(relpath, "content differs from the manifest's sha1"))
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, sha1 in enumerate(cases["sha1"]):
        by_hash[sha1].append(i)
    first_of = {sha1: cases.at[idx[0], "relpath"] for sha1, idx in by_hash.items()}
    report.duplicates = [
        DuplicateGroup(
            sha1=sha1,
            relpaths=tuple(cases.loc[idx, "relpath"]),
            labels=tuple(cases.loc[idx, "label"]),
        )
        for sha1, idx in by_hash.items()
        if len(idx) > 1
    ]
    default_case = cases["sha1"].map(first_of)
    if "case_id" in cases.columns:
        cases["case_id"] = cases["case_id"].where(cases["case_id"] != "", default_case)
    else:
        cases["case_id"] = default_case
    for col in ("split", "caption"):
        if col not in cases.columns:
            cases[col] = ""
    cases.insert(0, "key", np.arange(len(cases), dtype=np.int64))
    meta = [c for c in cases.columns if c not in CORE_COLUMNS]
    cases = cases[[*CORE_COLUMNS, *meta]]
    report.usable = len(cases)
    report.class_counts = _class_counts(cases)
    if len(cases):
        per_class = cases.groupby("label")["case_id"].nunique()
        report.warnings = degenerate_warnings({str(k): int(v) for k, v in per_class.items()})
        if LABEL_NAME in cases.columns:
            cases[LABEL_NAME] = _text(cases[LABEL_NAME])
            report.warnings += label_names(cases["label"].tolist(), cases[LABEL_NAME].tolist())[1]
    return cases
