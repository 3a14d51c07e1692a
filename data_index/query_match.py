"""Is the query photo already in the library? By file content, or as a copy (flip, crop,
re-encode) confirmed by the duplicate audit's geometric check.

A search that finds its own input at rank 1 says nothing about the library, and its copies
would bias the vote, so the matched case and every copy of its photo are left out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from data_index.audit.features import signature_of, signature_of_path
from data_index.audit.match import MatchSettings, verify_pair, window_scores
from data_index.search import Hit

# The nearest neighbours are checked geometrically, whatever their similarity: a copy that is
# flipped or cropped can fall well below the similarity of other photos of its class under a
# hand-made descriptor, yet still ranks among the first few.
NEAR_COPY_CHECKS = 5


@dataclass(frozen=True)
class QueryInLibrary:
    """The library case the query photo is, and every case left out because of it."""

    case_id: str
    how: str  # "same file" | "copy"
    left_out: tuple[str, ...]  # case ids: the matched case, its copies' cases, other copies

    def sentence(self) -> str:
        extra = len(self.left_out) - 1
        count = f" ({len(self.left_out)} cases)" if extra else ""
        return (
            f"This photo is in the library as {self.case_id}; it and its copies{count} are left "
            "out of the results and the vote."
        )


def file_sha1(path: str | Path) -> str:
    """SHA-1 of a file's bytes, as the library validation records it."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def _same_photo(query: Image.Image, path: str, settings: MatchSettings) -> bool:
    try:
        a, b = signature_of(query), signature_of_path(path)
    except ValueError:
        return False  # an unreadable library file is reported by validation, not here
    there, _ = window_scores([a], [b])
    back, _ = window_scores([b], [a])
    scores = np.maximum(there, back.transpose(1, 0, 2))
    evidence = verify_pair(a, b, scores=tuple(scores[0, 0]), settings=settings)
    # Only a confident copy is left out; a "possible copy" is for a person to judge.
    return evidence is not None and evidence.level == "copy"


def find_query_in_library(
    *,
    cases: pd.DataFrame,
    query_image: Image.Image | None,
    query_sha1: str | None,
    neighbours: list[Hit],
    group_ids: np.ndarray | None = None,
    settings: MatchSettings | None = None,
) -> QueryInLibrary | None:
    """The case the query is (same file bytes, or a copy among its nearest ``neighbours``), or
    None. ``group_ids`` (the audit's duplicate groups, aligned with ``cases``) widen what is left
    out to every copy of the matched photo."""
    settings = settings or MatchSettings()
    matched_rows: list[int] = []
    how = ""
    if query_sha1:
        matched_rows = np.flatnonzero(cases["sha1"].astype(str).to_numpy() == query_sha1).tolist()
        how = "same file" if matched_rows else ""
    if query_image is not None:
        key_to_row = {int(k): i for i, k in enumerate(cases["key"].astype(int))}
        for hit in neighbours[:NEAR_COPY_CHECKS]:
            row = key_to_row.get(hit.key)
            if row is None or row in matched_rows:
                continue
            if _same_photo(query_image, hit.path, settings):
                matched_rows.append(row)
                how = how or "copy"
    if not matched_rows:
        return None
    rows = set(matched_rows)
    if group_ids is not None:
        groups = np.asarray(group_ids)
        rows |= set(np.flatnonzero(np.isin(groups, groups[matched_rows])).tolist())
    case_ids = cases["case_id"].astype(str).to_numpy()
    first = str(case_ids[matched_rows[0]])
    left_out = [first, *sorted({str(case_ids[r]) for r in rows} - {first})]
    return QueryInLibrary(case_id=first, how=how, left_out=tuple(left_out))
