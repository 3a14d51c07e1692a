"""Recurring overlays of a library: marks stamped on many unrelated photos (an atlas's logo, a
ruler, a text banner, a frame, an app's buttons), learned per library and masked before matching.

Two different photos of one atlas share its logo pixel for pixel, so keypoints on the logo
match and an alignment fitted to them looks like a copy. What tells a mark from the photo is
that it recurs at the same place in photos that are otherwise unrelated:
- each image is cut, at a width of ``THUMB_WIDTH`` px, into ``CELL`` px cells counted from each
  of its four corners (a mark is anchored to an edge or a corner and sized by the width);
- a textured cell is part of an overlay when at least ``min_repeats`` other images hold nearly
  the same pixels there (difference well below the cell's own contrast, so chance agreement
  of skin texture does not count), leaving out images that agree with it over most of their
  cells: those are copies of the photo itself, not other photos sharing a mark;
- a solid strip along an edge (a frame, a letterbox bar) holds no photo and is masked in every
  image whatever the rest of the library looks like.
Masks grow by one cell, so the boundary of a mark (where its corners give keypoints) goes too.
"""

from __future__ import annotations

import cv2
import numpy as np

THUMB_WIDTH = 240
CELL = 12
CELL_SIDE = 6  # each cell is described by its grey pixels at 6x6
CELLS_PER_HALF = 10  # per anchor: 10 x 10 cells reach the middle of a 240 px wide image
N_POSITIONS = 4 * CELLS_PER_HALF * CELLS_PER_HALF
MIN_CELL_STD = 10.0  # grey levels: below this a cell is flat and says nothing
AGREE_FRACTION = 0.4  # RMS difference / the smaller cell contrast, below which cells agree
COPY_FRACTION = 0.5  # share of textured cells in common above which two images are one photo
BORDER_STD = 8.0  # a line along an edge this uniform (per channel) is a frame, not a photo
BORDER_MARGIN = 8  # px at THUMB_WIDTH kept masked beyond a solid strip


def thumb_shape(width: int, height: int) -> tuple[int, int]:
    """(height, width) of the thumbnail the overlay cells are cut from."""
    return int(np.clip(round(THUMB_WIDTH * height / max(width, 1)), CELL, 3 * THUMB_WIDTH)), (
        THUMB_WIDTH
    )


def _boxes(height: int, width: int) -> list[tuple[int, int, int, int] | None]:
    """(x0, y0, x1, y1) per position: anchor (4) x row (10) x column (10), None if off-image."""
    boxes: list[tuple[int, int, int, int] | None] = []
    for from_right in (False, True):
        for from_bottom in (False, True):
            for cy in range(CELLS_PER_HALF):
                for cx in range(CELLS_PER_HALF):
                    if (cy + 1) * CELL > (height + CELL) // 2 or (cx + 1) * CELL > width // 2:
                        boxes.append(None)
                        continue
                    x0 = width - (cx + 1) * CELL if from_right else cx * CELL
                    y0 = height - (cy + 1) * CELL if from_bottom else cy * CELL
                    boxes.append((x0, y0, x0 + CELL, y0 + CELL))
    return boxes


def overlay_cells(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions x 36 float16 cell pixels, positions cell contrast (-1 off-image), solid-strip
    mask at thumbnail size) of one RGB image."""
    h, w = thumb_shape(rgb.shape[1], rgb.shape[0])
    thumb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    cells = np.zeros((4, CELLS_PER_HALF, CELLS_PER_HALF, CELL_SIDE * CELL_SIDE), np.float32)
    stds = np.full((4, CELLS_PER_HALF, CELLS_PER_HALF), -1.0, dtype=np.float32)
    ny = min(CELLS_PER_HALF, ((h + CELL) // 2) // CELL)
    nx = min(CELLS_PER_HALF, (w // 2) // CELL)
    step = CELL // CELL_SIDE
    if ny and nx:
        # Flipping the image puts each corner at the top left, so one reshape cuts every grid
        # (the same boxes as _boxes, cell by cell).
        for k, (from_right, from_bottom) in enumerate(
            [(False, False), (False, True), (True, False), (True, True)]
        ):
            view = grey[::-1] if from_bottom else grey
            view = view[:, ::-1] if from_right else view
            block = view[: ny * CELL, : nx * CELL].reshape(ny, CELL_SIDE, step, nx, CELL_SIDE, step)
            block = block.mean(axis=(2, 5))  # (ny, 6, nx, 6)
            if from_bottom:
                block = block[:, ::-1]
            if from_right:
                block = block[:, :, :, ::-1]
            flat = block.transpose(0, 2, 1, 3).reshape(ny, nx, -1)
            cells[k, :ny, :nx] = flat
            stds[k, :ny, :nx] = flat.std(axis=2)
    return (
        cells.reshape(N_POSITIONS, -1).astype(np.float16),
        stds.reshape(N_POSITIONS),
        _solid_strips(thumb),
    )


def _line_stats(pixels: np.ndarray, squares: np.ndarray, axis: int):
    """Per-channel mean of every row (axis=1) or column (axis=0) of an image, and the largest
    per-channel standard deviation along it, from exact sums (float64 over whole grey levels)."""
    count = pixels.shape[axis]
    sums, sums_sq = (
        cv2.reduce(x, axis, cv2.REDUCE_SUM, dtype=cv2.CV_64F).reshape(-1, pixels.shape[2])
        for x in (pixels, squares)
    )
    means = sums / count
    variance = np.maximum(sums_sq / count - means * means, 0.0)
    return means, np.sqrt(variance).max(axis=1)


def _solid_strips(thumb: np.ndarray) -> np.ndarray:
    """Mask of uniform strips along each edge, grown by BORDER_MARGIN."""
    h, w = thumb.shape[:2]
    mask = np.zeros((h, w), dtype=bool)
    pixels = thumb.astype(np.float32)
    squares = pixels * pixels  # at most 255^2 per pixel: float32 holds them exactly
    row_means, row_spread = _line_stats(pixels, squares, 1)
    col_means, col_spread = _line_stats(pixels, squares, 0)
    # Lines from the edge inwards: (means, spread) per line, outermost first.
    sides = {
        "top": (row_means[: int(0.2 * h)], row_spread[: int(0.2 * h)]),
        "bottom": (row_means[::-1][: int(0.2 * h)], row_spread[::-1][: int(0.2 * h)]),
        "left": (col_means[: int(0.2 * w)], col_spread[: int(0.2 * w)]),
        "right": (col_means[::-1][: int(0.2 * w)], col_spread[::-1][: int(0.2 * w)]),
    }
    for side, (means, spread) in sides.items():
        if len(means) == 0:
            continue
        solid = (spread <= BORDER_STD) & (np.abs(means - means[0]).max(axis=1) <= 24)
        depth = len(solid) if solid.all() else int(np.argmin(solid))
        if depth < 2:
            continue
        d = depth + BORDER_MARGIN
        if side == "top":
            mask[:d] = True
        elif side == "bottom":
            mask[h - d :] = True
        elif side == "left":
            mask[:, :d] = True
        else:
            mask[:, w - d :] = True
    return mask


def _agreeing(block_a, norms_a, std_a, block_b, norms_b, std_b) -> np.ndarray:
    d2 = norms_a[:, None] + norms_b[None, :] - 2.0 * (block_a @ block_b.T)
    limit = (AGREE_FRACTION * np.minimum(std_a[:, None], std_b[None, :])) ** 2 * block_a.shape[1]
    return d2 < limit


def learn_overlay_cells(
    cells: np.ndarray, stds: np.ndarray, *, min_repeats: int, reference: int | None = None
) -> np.ndarray:
    """(n, positions) bool: the cells of each image that recur in ``min_repeats`` or more
    other images that are not copies of it. ``cells`` is (n, positions, 36).

    Every image is compared with every other, which grows with the square of the library.
    With ``reference`` set and a larger library, each image is compared with a seeded sample
    of that many images instead: a mark must then recur ``min_repeats`` times in the sample,
    so it is learned when it is on about ``min_repeats / reference`` of the library or more
    (an atlas's logo is on all its photos; a mark on a handful of 10,000 photos is missed,
    and the correlation test of the pair check still stands against it).
    """
    n = len(cells)
    textured = stds >= MIN_CELL_STD
    overlay = np.zeros((n, N_POSITIONS), dtype=bool)
    if n < min_repeats + 1:
        return overlay
    if reference is not None and n > reference:
        ref = np.sort(np.random.default_rng(0).choice(n, size=reference, replace=False))
    else:
        ref = np.arange(n)
    is_ref = np.full(n, -1, dtype=np.int64)
    is_ref[ref] = np.arange(len(ref))
    counts = np.zeros((n, N_POSITIONS), dtype=np.int32)
    shared = np.zeros((n, len(ref)), dtype=np.int16)  # textured cells two images agree on
    for p in range(N_POSITIONS):
        rows = np.flatnonzero(textured[:, p])
        cols = rows[is_ref[rows] >= 0]
        if len(rows) < 2 or len(cols) == 0:
            continue
        x = cells[rows, p].astype(np.float32)
        y = cells[cols, p].astype(np.float32)
        match = _agreeing(
            x, (x * x).sum(axis=1), stds[rows, p], y, (y * y).sum(axis=1), stds[cols, p]
        )
        match[np.searchsorted(rows, cols), np.arange(len(cols))] = False  # not with itself
        counts[rows, p] = match.sum(axis=1)
        shared[np.ix_(rows, is_ref[cols])] += match
    n_textured = textured.sum(axis=1)
    limit = COPY_FRACTION * np.minimum(n_textured[:, None], n_textured[ref][None, :])
    shared[ref, np.arange(len(ref))] = 0
    for i, r in zip(*np.nonzero((shared > limit) & (shared > 0)), strict=True):
        # Copies of one photo agree nearly everywhere: they are not evidence of a mark.
        j = ref[r]
        both = textured[i] & textured[j]
        x, y = cells[i].astype(np.float32), cells[j].astype(np.float32)
        d2 = ((x - y) ** 2).sum(axis=1)
        limit_p = (AGREE_FRACTION * np.minimum(stds[i], stds[j])) ** 2 * x.shape[1]
        counts[i] -= both & (d2 < limit_p)
    return textured & (counts >= min_repeats)


def content_mask(
    overlay_row: np.ndarray, strips: np.ndarray, grey_shape: tuple[int, int]
) -> np.ndarray | None:
    """Bool mask at ``grey_shape`` that is True on the photo's own content, or None when the
    image carries no overlay."""
    if not overlay_row.any() and not strips.any():
        return None
    h, w = strips.shape
    mask = strips.copy()
    marks = np.zeros((h, w), dtype=np.uint8)
    for box in (b for b, on in zip(_boxes(h, w), overlay_row, strict=True) if on and b):
        x0, y0, x1, y1 = box
        marks[y0:y1, x0:x1] = 1
    if marks.any():
        marks = cv2.dilate(marks, np.ones((2 * CELL + 1, 2 * CELL + 1), np.uint8))
        mask |= marks > 0
    resized = cv2.resize(
        (~mask).astype(np.uint8), (grey_shape[1], grey_shape[0]), interpolation=cv2.INTER_NEAREST
    )
    return resized > 0
