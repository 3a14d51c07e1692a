"""Per-image signatures for the duplicate audit: window hashes and ORB keypoints.

A signature is computed once per image and holds everything the candidate search and the
geometric check need, so each image is decoded exactly once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from data_index.audit.overlays import overlay_cells
from models.base import open_image

# Window side fractions tried on each image, at 4x4 offsets: a copy cropped or zoomed to
# 60-90% of the area is then within a few per cent of some window, which low DCT
# frequencies tolerate (3x3 offsets missed some 60% zooms in the benchmark).
WINDOW_FRACTIONS: tuple[float, ...] = (1.0, 0.86, 0.74)
WINDOW_OFFSETS = 4
HASH_GRID = 128  # the aspect-free square the windows are cut from
DCT_SIDE = 32  # each window is resized to this before the DCT
DCT_KEEP = 8  # low-frequency block kept: 8x8 minus DC -> 63-d vector
COLOUR_BINS = 16  # per RGB channel: 4096-bin colour histogram
ORB_SIDE = 320  # longer side of the grey image the keypoints are found on
ORB_FEATURES = 500


@dataclass(frozen=True)
class ImageSignature:
    """What the audit keeps of one image (pixels are not kept, except a small grey copy)."""

    pixel_sha1: str
    size: tuple[int, int]  # (width, height) of the decoded image
    full_vector: np.ndarray  # (63,) unit low-frequency DCT vector of the whole image
    window_vectors: np.ndarray  # (n_windows, 63) upright windows; see dihedral_variants
    colour_vector: np.ndarray  # (4096,) float16 unit sqrt colour histogram
    grey: np.ndarray  # uint8 grey image, longer side ORB_SIDE, for matching and correlation
    keypoints: np.ndarray  # (k, 2) float32 positions in `grey`
    descriptors: np.ndarray | None  # (k, 32) uint8 ORB descriptors, None when none found
    mirror_keypoints: np.ndarray  # the same on the left-right mirrored image, in its own frame
    mirror_descriptors: np.ndarray | None
    # The next four are read only to learn and mask the library's overlays; the audit empties
    # them (and drops the square) once the signatures are masked.
    overlay_cells: np.ndarray  # (positions, 36) corner-anchored grey cells (see overlays.py)
    cell_stds: np.ndarray  # (positions,) contrast of each cell, -1 where off the image
    strips: np.ndarray  # bool solid strips along the edges, at the overlay thumbnail size
    square: np.ndarray | None = None  # uint8 HASH_GRID grey square the windows were cut from
    content: np.ndarray | None = None  # bool on `grey`: the photo without overlays (None: all)


# Smaller square windows for zoomed re-shots (1.3-2x): a zoom keeps the aspect, so one
# fraction for both sides, at 5x5 offsets since a small window moves further per step.
ZOOM_FRACTIONS: tuple[float, ...] = (0.62, 0.5)
ZOOM_OFFSETS = 5


@cache
def _windows() -> tuple[tuple[int, int, int, int], ...]:
    """(x0, y0, x1, y1) boxes on the HASH_GRID square: every fraction pair at 4x4 offsets,
    then the zoom windows."""
    boxes = []
    sizes = [(fw, fh, WINDOW_OFFSETS) for fw in WINDOW_FRACTIONS for fh in WINDOW_FRACTIONS]
    sizes += [(f, f, ZOOM_OFFSETS) for f in ZOOM_FRACTIONS]
    for fw, fh, offsets in sizes:
        w, h = round(HASH_GRID * fw), round(HASH_GRID * fh)
        steps = np.linspace(0.0, 1.0, offsets)
        xs = sorted({round((HASH_GRID - w) * t) for t in steps})
        ys = sorted({round((HASH_GRID - h) * t) for t in steps})
        boxes.extend((x, y, x + w, y + h) for y in ys for x in xs)
    return tuple(boxes)


@cache
def zoom_windows() -> list[int]:
    """Indices of the zoom windows: the last boxes of ``_windows()``."""
    boxes = _windows()
    sides = {round(HASH_GRID * f) for f in ZOOM_FRACTIONS}
    return [
        k for k, (x0, y0, x1, y1) in enumerate(boxes) if x1 - x0 == y1 - y0 and x1 - x0 in sides
    ]


@cache
def square_window_sets() -> tuple[tuple[list[int], list[int]], ...]:
    """For each square window size below the whole image: (all its windows, its 4 corners).

    A shifted copy (Keras-style, borders filled) or a second crop of the same photo shares a
    corner window with some same-size window of the other image, not the whole of it.
    """
    boxes = _windows()
    sets = []
    for fraction in WINDOW_FRACTIONS:
        side = round(HASH_GRID * fraction)
        if side == HASH_GRID:
            continue
        same = [k for k, (x0, y0, x1, y1) in enumerate(boxes) if (x1 - x0, y1 - y0) == (side, side)]
        far = HASH_GRID - side
        corners = [k for k in same if boxes[k][0] in (0, far) and boxes[k][1] in (0, far)]
        sets.append((same, corners))
    return tuple(sets)


@cache
def _dihedral_signs() -> tuple[np.ndarray, np.ndarray]:
    """Sign masks that flip a DCT-II block left-right and up-down (coefficient k -> (-1)^k)."""
    k = np.arange(DCT_KEEP)
    alternating = np.where(k % 2 == 0, 1.0, -1.0).astype(np.float32)
    flip_x = np.tile(alternating, (DCT_KEEP, 1))  # columns are horizontal frequencies
    return flip_x, flip_x.T.copy()


def _area_weights(src: int, dst: int) -> np.ndarray:
    """(dst, src) matrix of OpenCV's INTER_AREA downscale along one axis: each output pixel
    averages the input span it covers, pixels cut by the span's ends weighted by their part."""
    scale = src / dst
    weights = np.zeros((dst, src))
    for j in range(dst):
        lo, hi = j * scale, (j + 1) * scale
        for i in range(int(np.floor(lo)), min(src, int(np.ceil(hi)))):
            weights[j, i] = max(0.0, min(hi, i + 1) - max(lo, i)) / scale
    return weights


@cache
def _low_dct_map(side: int) -> np.ndarray:
    """(DCT_KEEP, side) matrix taking one axis of a window to its low DCT frequencies.

    Resizing to DCT_SIDE with INTER_AREA and the orthonormal DCT-II are both linear and
    separable, so the low block of a window W is ``M_h @ W @ M_w.T``: the same numbers as
    ``cv2.dct(cv2.resize(W, ...))[:8, :8]`` to float rounding, at a tenth of the cost.
    """
    k = np.arange(DCT_KEEP)[:, None]
    n = np.arange(DCT_SIDE)[None, :]
    dct = np.cos(np.pi * (2 * n + 1) * k / (2 * DCT_SIDE)) * np.sqrt(2.0 / DCT_SIDE)
    dct[0] /= np.sqrt(2.0)
    return dct @ _area_weights(side, DCT_SIDE)


def _window_blocks(grey_square: np.ndarray) -> np.ndarray:
    """(n_windows, 8, 8) low DCT blocks of every window of ``_windows()``, in its order."""
    square = grey_square.astype(np.float64)
    blocks: dict[tuple[int, int, int, int], np.ndarray] = {}
    by_size: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for x0, y0, x1, y1 in _windows():
        by_size.setdefault((x1 - x0, y1 - y0), []).append((x0, y0))
    for (w, h), corners in by_size.items():
        map_w, map_h = _low_dct_map(w), _low_dct_map(h)
        # Columns first, once per horizontal offset, then rows per vertical offset.
        columns = {x0: square[:, x0 : x0 + w] @ map_w.T for x0 in {x for x, _ in corners}}
        for x0, y0 in corners:
            blocks[(x0, y0, x0 + w, y0 + h)] = map_h @ columns[x0][y0 : y0 + h]
    return np.stack([blocks[box] for box in _windows()]).astype(np.float32)


def _as_vectors(blocks: np.ndarray) -> np.ndarray:
    """(m, 8, 8) DCT blocks -> (m, 63) unit vectors without DC: brightness/contrast drop out."""
    flat = blocks.reshape(len(blocks), -1)[:, 1:]
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    return (flat / np.maximum(norms, 1e-6)).astype(np.float32)


def window_vectors(grey_square: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Full-image vector and the vectors of every upright window (see dihedral_variants)."""
    vectors = _as_vectors(_window_blocks(grey_square))
    return vectors[0], vectors


@cache
def _variant_maps() -> tuple[np.ndarray, np.ndarray]:
    """(8, 63) source positions and signs that turn an upright window vector into each of
    the 8 flips/rotations: identity, flip x, flip y, both, then the transposes of those four.

    Flips are sign changes of the DCT, 90-degree turns a transpose plus a flip, so each
    variant is a signed permutation of the upright vector (its norm unchanged): only upright
    vectors are kept, an eighth of the memory.
    """
    flip_x, flip_y = _dihedral_signs()
    index, ones = np.arange(DCT_KEEP * DCT_KEEP).reshape(DCT_KEEP, DCT_KEEP), np.ones_like(flip_x)
    upright = [(index, ones), (index, flip_x), (index, flip_y), (index, flip_x * flip_y)]
    variants = upright + [(i.T, s.T) for i, s in upright]
    positions = np.stack([i.reshape(-1)[1:] - 1 for i, _ in variants])  # DC stays at 0
    signs = np.stack([s.reshape(-1)[1:] for _, s in variants]).astype(np.float32)
    return positions, signs


def dihedral_variants(upright: np.ndarray, rows: Sequence[int] | None = None) -> np.ndarray:
    """(8 * len(rows), 63): the given upright window vectors under the 8 flips/rotations,
    variant by variant (row ``d * len(rows) + k`` is window ``rows[k]`` under variant d)."""
    picked = upright if rows is None else upright[np.asarray(rows)]
    positions, signs = _variant_maps()
    turned = picked[:, positions] * signs  # (windows, 8, 63)
    return np.ascontiguousarray(turned.transpose(1, 0, 2).reshape(-1, picked.shape[1]))


def colour_vector(rgb: np.ndarray) -> np.ndarray:
    """Unit square-rooted RGB histogram (Hellinger): unchanged by any turn, flip or shift.

    On infectious-8 it ranked every copy found by any means within each other's 5 nearest,
    including copies turned by free angles with filled corners, which windows miss.
    """
    small = cv2.resize(rgb, (96, 96), interpolation=cv2.INTER_AREA)
    bins = [COLOUR_BINS] * 3
    hist = cv2.calcHist([small], [0, 1, 2], None, bins, [0, 256] * 3).ravel()
    hist = np.sqrt(hist / max(hist.sum(), 1.0))
    return (hist / max(float(np.linalg.norm(hist)), 1e-12)).astype(np.float16)


def _orb(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Keypoints strongest first, so a prefix is a cheap first look (see match.py)."""
    orb = cv2.ORB_create(nfeatures=ORB_FEATURES, edgeThreshold=15, fastThreshold=8)
    keypoints, descriptors = orb.detectAndCompute(grey, None)
    if descriptors is None or not keypoints:
        return np.zeros((0, 2), dtype=np.float32), None
    order = np.argsort([-kp.response for kp in keypoints], kind="stable")
    points = np.array([keypoints[i].pt for i in order], dtype=np.float32).reshape(-1, 2)
    return points, descriptors[order]


def signature_of(rgb: Image.Image) -> ImageSignature:
    """Compute the signature of one upright RGB image."""
    arr = np.asarray(rgb.convert("RGB"))
    height, width = arr.shape[:2]
    grey_full = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    square = cv2.resize(grey_full, (HASH_GRID, HASH_GRID), interpolation=cv2.INTER_AREA)
    full_vector, variants = window_vectors(square.astype(np.float32))

    scale = ORB_SIDE / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    grey = cv2.resize(grey_full, size, interpolation=interp)
    keypoints, descriptors = _orb(grey)
    mirror_keypoints, mirror_descriptors = _orb(np.ascontiguousarray(grey[:, ::-1]))
    cells, stds, strips = overlay_cells(arr)
    return ImageSignature(
        pixel_sha1=hashlib.sha1(arr.tobytes() + bytes(str(arr.shape), "ascii")).hexdigest(),
        size=(width, height),
        full_vector=full_vector,
        window_vectors=variants,
        colour_vector=colour_vector(arr),
        grey=grey,
        keypoints=keypoints,
        descriptors=descriptors,
        mirror_keypoints=mirror_keypoints,
        mirror_descriptors=mirror_descriptors,
        overlay_cells=cells,
        cell_stds=stds,
        strips=strips,
        square=square,
    )


def signature_of_path(path: str | Path) -> ImageSignature:
    """Open with the project's reader (upright RGB; ValueError when unreadable) and sign."""
    return signature_of(open_image(path))
