"""What makes the audit scale must not change what it finds: the windows' low frequencies by
linear maps, overlays learned against a sample, and the work spread over threads."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from PIL import Image

import data_index.audit.core as core
from data_index.audit import find_duplicate_groups
from data_index.audit.features import (
    _dihedral_signs,
    _windows,
    dihedral_variants,
    window_vectors,
)
from data_index.audit.match import _match_points
from data_index.audit.overlays import N_POSITIONS, learn_overlay_cells
from tests.test_audit import TRANSFORMS, textured_image


def _resized_dct_vectors(square: np.ndarray) -> np.ndarray:
    """The windows' vectors as the audit first computed them: each window resized with
    INTER_AREA, then cv2.dct, then the 8 flips/rotations."""
    blocks = np.stack(
        [
            cv2.dct(cv2.resize(square[y0:y1, x0:x1], (32, 32), interpolation=cv2.INTER_AREA))[
                :8, :8
            ]
            for x0, y0, x1, y1 in _windows()
        ]
    )
    flip_x, flip_y = _dihedral_signs()
    upright = [blocks, blocks * flip_x, blocks * flip_y, blocks * flip_x * flip_y]
    flat = np.concatenate(upright + [b.transpose(0, 2, 1) for b in upright]).reshape(-1, 64)[:, 1:]
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_window_vectors_equal_resize_then_dct(seed):
    grey = np.asarray(textured_image(seed).convert("L"))
    square = cv2.resize(grey, (128, 128), interpolation=cv2.INTER_AREA).astype(np.float32)
    full, upright = window_vectors(square)
    windows = dihedral_variants(upright)
    expected = _resized_dct_vectors(square)
    assert windows.shape == expected.shape
    corners = [3, 7]
    picked = dihedral_variants(upright, corners)
    for d in range(8):
        rows = [d * len(upright) + k for k in corners]
        np.testing.assert_allclose(picked[d * 2 : d * 2 + 2], expected[rows], atol=1e-5)
    np.testing.assert_allclose(windows, expected, atol=1e-5)
    np.testing.assert_allclose(full, expected[0], atol=1e-5)


def _cells_with_a_mark(n: int, marked: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    cells = rng.normal(128, 25, (n, N_POSITIONS, 36))
    mark = rng.normal(128, 40, 36)
    cells[marked, 7] = mark + rng.normal(0, 2, (len(marked), 36))
    cells = cells.astype(np.float16)
    return cells, cells.astype(np.float32).std(axis=2)


def _brute_force_matches(a: np.ndarray, b: np.ndarray, ratio: float) -> tuple[list, list]:
    """Lowe's ratio test written out: every Hamming distance, then each row's two nearest."""
    dist = np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(axis=2)
    rows, cols = [], []
    for r, d in enumerate(dist):
        first, second = np.sort(d)[:2]
        if first < ratio * second:
            rows.append(r)
            cols.append(int(np.argmin(d)))
    return rows, cols


def test_keypoint_matches_equal_the_brute_force_ratio_test():
    rng = np.random.default_rng(3)
    b = rng.integers(0, 256, (300, 32), dtype=np.uint8)
    a = rng.integers(0, 256, (200, 32), dtype=np.uint8)
    # Copies of b's rows with a few bits flipped (true matches), and rows equally near two of
    # b's (a tie: no unique nearest, so never a match).
    noisy = b[:80].copy()
    noisy[:, :3] ^= rng.integers(1, 256, (80, 3), dtype=np.uint8)
    a[:80] = noisy
    b[100] = b[101]
    a[80] = b[100]
    rows, cols = _match_points(a, b, ratio=0.8)
    expected_rows, expected_cols = _brute_force_matches(a, b, 0.8)
    assert rows.tolist() == expected_rows and cols.tolist() == expected_cols
    assert set(range(80)) <= set(expected_rows) and 80 not in expected_rows


def test_a_reference_as_large_as_the_library_is_the_full_comparison():
    rng = np.random.default_rng(3)
    cells, stds = _cells_with_a_mark(120, rng.choice(120, 15, replace=False), rng)
    full = learn_overlay_cells(cells, stds, min_repeats=3)
    assert full[:, 7].sum() == 15
    same = learn_overlay_cells(cells, stds, min_repeats=3, reference=120)
    assert np.array_equal(full, same)


def test_a_sampled_reference_still_learns_a_mark_on_a_tenth_of_the_library():
    rng = np.random.default_rng(4)
    marked = rng.choice(400, 40, replace=False)
    cells, stds = _cells_with_a_mark(400, marked, rng)
    sampled = learn_overlay_cells(cells, stds, min_repeats=3, reference=100)
    assert set(np.flatnonzero(sampled[:, 7])) == set(marked.tolist())
    # Nothing else is taken for a mark: random cells agree with no one.
    assert sampled.sum() == len(marked)


def test_one_thread_and_two_give_the_same_report(tmp_path):
    paths = []
    for seed, transform in enumerate(list(TRANSFORMS.values())[:6]):
        original = textured_image(seed)
        for kind, image in (("a", original), ("b", transform(original))):
            path = tmp_path / f"{seed}-{kind}.jpg"
            image.save(path, quality=90)
            paths.append(str(path))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "flat.png")
    paths.append(str(tmp_path / "flat.png"))
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    paths.append(str(tmp_path / "broken.jpg"))
    one = find_duplicate_groups(paths, threads=1)
    two = find_duplicate_groups(paths, threads=2)
    assert one.groups == two.groups
    assert [(p.a, p.b, p.evidence) for p in one.pairs] == [
        (p.a, p.b, p.evidence) for p in two.pairs
    ]
    assert one.n_candidates == two.n_candidates
    assert [row for row, _ in one.unreadable] == [row for row, _ in two.unreadable] == [13]
    assert len(one.groups) == 6


def test_a_cancelled_audit_stops_without_signing_the_rest(tmp_path, monkeypatch):
    paths = []
    for seed in range(12):
        path = tmp_path / f"{seed}.jpg"
        textured_image(seed).save(path, quality=90)
        paths.append(str(path))
    signed: list[str] = []
    real = core.signature_of_path

    def slow_signature(path):
        time.sleep(0.2)  # keeps the rest queued when the cancel comes
        signed.append(path)
        return real(path)

    monkeypatch.setattr(core, "signature_of_path", slow_signature)

    class Cancelled(Exception):
        pass

    def progress(_: float, message: str) -> None:
        raise Cancelled

    with pytest.raises(Cancelled):
        find_duplicate_groups(paths, progress=progress, threads=2)
    # Only images already taken up by the two threads were finished (each may have started
    # a second before the cancel reached the pool), not the queued rest of the 12.
    assert len(signed) <= 4
