"""The audit between two sets of images (a query set against a library) masks the marks the
library repeats, so query photos that carry the library's logo and ruler are not called copies
of its photos, while true copies under the same marks still are."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.perf.audit_copies import apply_step
from benchmarks.perf.audit_overlays import stamp
from data_index.audit import MatchSettings, find_cross_duplicates

MARKS = "logo+ruler"


def _photos(shared: Path, n: int, *, skip: int) -> list[Path]:
    """``n`` distinct HAM10000 photos (one per lesion: the subset holds no copies)."""
    with open(shared / "ham10000-subset" / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [shared / "ham10000-subset" / r["path"] for r in rows[skip : skip + n]]


def _save(image: Image.Image, target: Path, quality: int = 90) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp(image, MARKS).save(target, quality=quality)
    return str(target)


def _library_and_queries(shared: Path, out: Path) -> tuple[list[str], list[str], set]:
    """14 library photos and 6 other photos, all under one atlas's marks, plus a flipped and
    a recoloured copy of the first two library photos among the queries."""
    photos = _photos(shared, 20, skip=300)
    library = [
        _save(Image.open(p), out / "library" / f"{k:02d}.jpg") for k, p in enumerate(photos[:14])
    ]
    queries = [
        _save(Image.open(p), out / "queries" / f"{k:02d}.jpg") for k, p in enumerate(photos[14:])
    ]
    rng = np.random.default_rng(1)
    expected = set()
    for k, step in enumerate(["hflip", "colour"]):
        copy, _ = apply_step(Image.open(photos[k]).convert("RGB"), step, rng)
        queries.append(_save(copy, out / "queries" / f"copy-{step}.jpg", quality=85))
        expected.add((len(queries) - 1, k))
    return library, queries, expected


def test_marks_learned_on_the_library_are_masked_in_the_queries(shared_datasets, tmp_path):
    library, queries, expected = _library_and_queries(shared_datasets, tmp_path)
    report = find_cross_duplicates(library, queries)
    assert {(m.query_row, m.index_row) for m in report.matches} == expected
    assert all(m.evidence.level == "copy" for m in report.matches)


def test_the_same_sets_fool_a_matcher_that_masks_nothing(shared_datasets, tmp_path):
    # Overlay learning off (no mark repeats a million times): the shared logo and ruler alone
    # then pass for copies, which is what the masking above prevents.
    library, queries, expected = _library_and_queries(shared_datasets, tmp_path)
    unmasked = MatchSettings(overlay_min_repeats=10**6)
    found = {
        (m.query_row, m.index_row)
        for m in find_cross_duplicates(library, queries, settings=unmasked).matches
    }
    assert found - expected


def test_a_few_marked_queries_are_masked_by_what_the_library_repeats(shared_datasets, tmp_path):
    # Two marked query photos are too few to learn the marks from; the library's 14 are not.
    library, queries, _ = _library_and_queries(shared_datasets, tmp_path)
    few = [queries[0], queries[1], queries[-2]]
    report = find_cross_duplicates(library, few)
    assert [(m.query_row, m.index_row) for m in report.matches] == [(2, 0)]
