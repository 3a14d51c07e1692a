"""The audit's candidate search through usearch: the scores it finds agree with all-pairs scores,
and keypoint votes reach a zoomed re-shot that the window scores rank low."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.perf.audit_copies import apply_step
from benchmarks.perf.audit_overlays import reshoot
from data_index.audit.candidates import (
    candidate_pairs,
    corner_pair_scores,
    neighbour_pairs,
    window_pair_scores,
)
from data_index.audit.features import signature_of_path
from data_index.audit.match import MatchSettings, window_scores
from data_index.audit.votes import keypoint_vote_pairs


def _photos(shared: Path, n: int, *, skip: int) -> list[Path]:
    with open(shared / "ham10000-subset" / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [shared / "ham10000-subset" / r["path"] for r in rows[skip : skip + n]]


@pytest.fixture(scope="module")
def signed(shared_datasets, tmp_path_factory):
    """10 distinct photos, then a flipped, a turned, a cropped and a zoomed copy of the
    first four, as files on disk."""
    out = tmp_path_factory.mktemp("candidates")
    photos = _photos(shared_datasets, 10, skip=500)
    paths = [str(p) for p in photos]
    rng = np.random.default_rng(3)
    for k, step in enumerate(["hflip", "rot90", "crop", "zoom"]):
        copy, _ = apply_step(Image.open(photos[k]).convert("RGB"), step, rng)
        copy.save(out / f"copy-{step}.jpg", quality=90)
        paths.append(str(out / f"copy-{step}.jpg"))
    return [signature_of_path(p) for p in paths]


def test_found_window_scores_agree_with_the_all_pairs_scores(signed):
    windows, _ = window_pair_scores(signed)
    n = len(signed)
    assert len(windows.codes) > 0
    for code in windows.codes:
        a, b = divmod(int(code), windows.n_cols)
        there, _ = window_scores([signed[a]], [signed[b]])
        back, _ = window_scores([signed[b]], [signed[a]])
        exact = np.maximum(there[0, 0], back[0, 0])
        found = np.array(windows.get(a, b))
        # A search hit is one term of the maximum, so never above it; for a copy the best
        # term is among the window's nearest vectors, so the maximum itself is found.
        assert (found <= exact + 1e-4).all()
        if b == a + 10:
            assert found.max() == pytest.approx(exact.max(), abs=1e-4)
    # Each copy's best partner by window score is its source, as all pairs would say.
    best = {}
    for code, value in zip(windows.codes, windows.values.max(axis=1), strict=True):
        a, b = divmod(int(code), windows.n_cols)
        for x, y in ((a, b), (b, a)):
            if value > best.get(x, (-2.0, -1))[0]:
                best[x] = (float(value), y)
    assert [best[10 + k][1] for k in range(4)] == [0, 1, 2, 3]
    assert all(0 <= a < b < n for a, b in (divmod(int(c), n) for c in windows.codes))


def test_every_copy_is_a_candidate_and_the_list_is_short(signed):
    windows, zooms = window_pair_scores(signed)
    colours = np.stack([s.colour_vector for s in signed]).astype(np.float32)
    found = candidate_pairs(
        windows,
        settings=MatchSettings(),
        same_set=True,
        corners=corner_pair_scores(signed),
        zooms=zooms,
        extra_pairs=neighbour_pairs(colours, k=2),
    )
    pairs = {(a, b) for a, b, _, _ in found}
    assert {(k, 10 + k) for k in range(4)} <= pairs
    assert all(a < b for a, b in pairs)
    # Fewer than all 91 pairs: the point of a candidate search.
    assert len(pairs) < len(signed) * (len(signed) - 1) // 2


def test_two_lists_pair_rows_with_columns(signed):
    queries, library = signed[10:], signed[:10]
    windows, _ = window_pair_scores(queries, library)
    assert all(
        0 <= a < 4 and 0 <= b < 10 for a, b in windows.top_pairs(k=1, floor=0.5, same_set=False)
    )
    assert {(k, k) for k in range(4)} <= windows.top_pairs(k=1, floor=0.5, same_set=False)


def test_keypoint_votes_reach_a_zoomed_reshoot(shared_datasets, tmp_path):
    photos = _photos(shared_datasets, 12, skip=600)
    shot, _ = reshoot(Image.open(photos[0]).convert("RGB"), np.random.default_rng(7))
    shot.save(tmp_path / "reshoot.jpg", quality=88)
    signed = [signature_of_path(p) for p in photos] + [signature_of_path(tmp_path / "reshoot.jpg")]
    pairs = keypoint_vote_pairs(signed)
    assert (0, 12) in pairs
    assert all(a < b for a, b in pairs)
    # Across two lists: the re-shot as the query, the photos as the library.
    assert (0, 0) in keypoint_vote_pairs(signed[12:], signed[:12])
