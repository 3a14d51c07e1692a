"""Cases tables for incremental changes: rows for new image files, and what differs between two."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data_index.validation import check_files


def cases_from_files(
    paths: list[str | Path],
    *,
    labels: list[str],
    root: Path | None = None,
    case_ids: list[str] | None = None,
    metadata: list[dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """Rows (path, relpath, label, case_id, split, caption, sha1, metadata) for image files
    referenced where they are. Raises ``ValueError`` naming every unreadable file."""
    if len(labels) != len(paths) or (case_ids is not None and len(case_ids) != len(paths)):
        raise ValueError("Give one label (and one case id, if any) per image.")
    if metadata is not None and len(metadata) != len(paths):
        raise ValueError("Give one metadata dict per image.")
    if any(not str(label).strip() for label in labels):
        raise ValueError("Every added image needs a non-empty label.")
    resolved = [Path(p).expanduser().resolve() for p in paths]
    checks = check_files(resolved)
    bad = [f"{p}: {c.reason}" for p, c in zip(resolved, checks, strict=True) if c.reason]
    if bad:
        raise ValueError(f"Nothing added; unreadable image(s): {'; '.join(bad)}")
    rows = []
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for i, (p, check) in enumerate(zip(resolved, checks, strict=True)):
        rel = p.relative_to(root).as_posix() if root and p.is_relative_to(root) else str(p)
        rows.append(
            {
                "path": str(p),
                "relpath": rel,
                "label": str(labels[i]).strip(),
                "case_id": str(case_ids[i]) if case_ids else rel,
                "split": "",
                "caption": "",
                "sha1": check.sha1,
                ADDED_COLUMN: now,
                **{k: v for k, v in (metadata[i] if metadata else {}).items() if k != "key"},
            }
        )
    return pd.DataFrame(rows)


# Set on cases added one by one (not from the library), so a library sync leaves them be.
ADDED_COLUMN = "added_at"


def _signatures(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    if len(frame) == 0:
        return pd.Series([], dtype=object)
    present = frame.reindex(columns=columns).astype(object).fillna("").astype(str)
    return present.agg("\x1f".join, axis=1)


def diff_cases(old: pd.DataFrame, new: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """``(stale_keys, fresh_rows)``: keys of ``old`` rows absent from ``new`` (file, content,
    label or any metadata changed) and the ``new`` rows (without ``key``) to add. Rows added
    one by one (``added_at`` set) are not the library's and never count as stale."""
    columns = [c for c in new.columns if c not in ("key", ADDED_COLUMN)]
    ours, theirs = _signatures(old, columns), _signatures(new, columns)
    gone = ~ours.isin(set(theirs)).to_numpy()
    if ADDED_COLUMN in old.columns:
        gone &= old[ADDED_COLUMN].fillna("").astype(str).eq("").to_numpy()
    stale = old["key"].to_numpy(np.int64)[gone]
    fresh = new[~theirs.isin(set(ours)).to_numpy()].drop(columns=["key"], errors="ignore")
    return stale, fresh.reset_index(drop=True)
