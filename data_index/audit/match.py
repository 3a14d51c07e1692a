"""Thresholds of the audit, the window score of one pair, and the geometric check of a pair."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import faiss
import numpy as np

from data_index.audit.features import ORB_FEATURES, ImageSignature, dihedral_variants


@dataclass(frozen=True)
class MatchSettings:
    """Thresholds of the audit, pinned here so every caller and benchmark uses the same."""

    candidates_per_image: int = 6  # best-scoring partners checked per image
    corner_candidates_per_image: int = 3  # best partners by corner windows (shifts, crop pairs)
    zoom_candidates_per_image: int = 4  # best partners by the zoom windows (re-shots)
    colour_candidates_per_image: int = 4  # best partners by colour histogram (free turns, fills)
    # Best partners by keypoint votes (zoomed re-shots of smooth photos, see votes.py).
    vote_candidates_per_image: int = 2
    min_candidate_score: float = 0.5  # window-vector cosine below which nothing is checked
    # RANSAC inliers of the affine fit: chance fits between different dermoscopy photos reached
    # 6 (with correlation up to 0.96), a stretched real copy 11.
    min_inliers: int = 10
    screen_keypoints: int = 150  # strongest keypoints matched first, to drop most candidates
    screen_min_inliers: int = 6  # fewer inliers than this among those: not a copy
    screen_skip_score: float = 0.9  # window cosine from which every candidate gets the full match
    min_correlation: float = 0.9  # grey correlation of the aligned overlap
    min_overlap: float = 0.5  # overlap / the smaller image's area, both in one frame
    ransac_px: float = 4.0  # reprojection threshold on the ORB_SIDE grey images
    lowe_ratio: float = 0.8
    max_scale: float = 3.0  # larger zoom between copies is treated as a different photo
    # A mark found at one place in this many other, unrelated images is an overlay (masked).
    overlay_min_repeats: int = 3
    # Images each image's cells are compared with to learn the overlays (see overlays.py);
    # a larger library is compared with a seeded sample of this many.
    overlay_reference: int = 2000
    # Inliers must spread over the photo: their hull covers at least this share of one of the
    # two images (a logo or a ruler is a few per cent; the zoomed side of a re-shot is most).
    min_spread: float = 0.03
    # Aligned content correlating this well but under min_correlation: a possible copy, shown
    # for a person to decide and never counted as a label conflict.
    possible_correlation: float = 0.75


@dataclass(frozen=True)
class PairEvidence:
    """Why two images were called copies of one photo."""

    method: str  # "identical-pixels" | "orb-affine"
    candidate_score: float  # best window-vector cosine (1.0 for identical pixels)
    inliers: int
    correlation: float  # grey correlation of the aligned overlap
    overlap: float
    mirrored: bool  # the affine includes a reflection (a flipped copy)
    scale: float  # linear zoom from the first image to the second
    level: str = "copy"  # "copy" (every test passed) | "possible" (for a person to decide)
    spread: float = 1.0  # larger share of the two images covered by the inliers' hull
    # Inlier matches as (x_a, y_a, x_b, y_b) fractions of each image's width and height.
    points: tuple[tuple[float, float, float, float], ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "level": self.level,
            "spread": round(float(self.spread), 4),
            "method": self.method,
            "candidate_score": round(float(self.candidate_score), 4),
            "inliers": int(self.inliers),
            "correlation": round(float(self.correlation), 4),
            "overlap": round(float(self.overlap), 4),
            "mirrored": bool(self.mirrored),
            "scale": round(float(self.scale), 4),
        }


# Order of the 8 variants in ImageSignature.window_vectors: identity, flip x, flip y, both,
# then the transposes of those four. Reflections have determinant -1.
_PROPER = [0, 3, 5, 6]
_MIRRORED = [1, 2, 4, 7]


def window_scores(
    rows: Sequence[ImageSignature],
    cols: Sequence[ImageSignature],
    *,
    chunk: int = 32,
    zoom_windows: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(len(rows), len(cols), 2) best cosine of a row's whole image to any window of a column,
    without and with a reflection; and the same over the last ``zoom_windows`` windows of
    each variant only (the zoom windows; -1 when none).

    Windows cover crops, zooms and the 8 flips/rotations; call it both ways for symmetry
    (the inverse of a reflection is a reflection, so the last axis means the same both ways).
    """
    out = np.zeros((len(rows), len(cols), 2), dtype=np.float32)
    zooms = np.full((len(rows), len(cols), 2), -1.0, dtype=np.float32)
    if not rows or not cols:
        return out, zooms
    full = np.stack([s.full_vector for s in rows])
    per_col = 8 * cols[0].window_vectors.shape[0]
    windows = np.concatenate([dihedral_variants(s.window_vectors) for s in cols])  # (m*per_col, 63)
    for start in range(0, len(rows), chunk):
        block = full[start : start + chunk] @ windows.T
        per_window = block.reshape(len(block), len(cols), 8, per_col // 8)
        by_variant = per_window.max(axis=3)
        out[start : start + chunk, :, 0] = by_variant[:, :, _PROPER].max(axis=2)
        out[start : start + chunk, :, 1] = by_variant[:, :, _MIRRORED].max(axis=2)
        if zoom_windows:
            by_zoom = per_window[:, :, :, -zoom_windows:].max(axis=3)
            zooms[start : start + chunk, :, 0] = by_zoom[:, :, _PROPER].max(axis=2)
            zooms[start : start + chunk, :, 1] = by_zoom[:, :, _MIRRORED].max(axis=2)
    return out, zooms


def _match_points(
    desc_a: np.ndarray | None, desc_b: np.ndarray | None, *, ratio: float
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into a, into b) of nearest-neighbour matches that pass Lowe's ratio test."""
    if desc_a is None or desc_b is None or len(desc_a) < 2 or len(desc_b) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    # Exact two nearest by Hamming distance: FAISS's popcount kernel is the check's main cost
    # and runs 3x faster than OpenCV's batchDistance here. Ties cannot change the matches: a
    # match needs its nearest strictly nearer than the second, so it is unique. One OpenMP
    # thread: the audit's own threads share the cores, and a team per call would oversubscribe
    # them (the setting belongs to the calling thread).
    faiss.omp_set_num_threads(1)
    dist, nearest = faiss.knn_hamming(np.ascontiguousarray(desc_a), np.ascontiguousarray(desc_b), 2)
    keep = dist[:, 0] < ratio * dist[:, 1]
    return np.flatnonzero(keep), nearest[keep, 0].astype(np.int64)


def _aligned_correlation(
    a: ImageSignature, b: ImageSignature, transform: np.ndarray
) -> tuple[float, float]:
    """Correlation of b warped into a's frame over their overlap outside both images'
    overlays, and the overlap fraction. ``transform`` maps a -> b (2x3 affine or 3x3)."""
    grey_a, grey_b = a.grey, b.grey
    h, w = grey_a.shape
    flags = cv2.WARP_INVERSE_MAP  # the map a -> b is exactly the inverse map that pulls b in
    if transform.shape == (2, 3):
        warp, det = cv2.warpAffine, abs(np.linalg.det(transform[:, :2]))
    else:
        warp, det = cv2.warpPerspective, abs(np.linalg.det(transform[:2, :2]))
    warped = warp(grey_b.astype(np.float32), transform, (w, h), flags=flags)
    inside = np.ones_like(grey_b, dtype=np.uint8)
    if b.content is not None:
        inside = b.content.astype(np.uint8)
    mask = warp(np.ones_like(grey_b, dtype=np.uint8), transform, (w, h), flags=flags)
    mask = cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0  # borders carry interpolation
    area_b_in_a = grey_b.size / max(det, 1e-6)
    overlap = float(mask.sum()) / max(1.0, min(grey_a.size, area_b_in_a))
    content = warp(inside, transform, (w, h), flags=flags | cv2.INTER_NEAREST) > 0  # 0/1 kept
    if a.content is not None:
        content &= a.content
    mask &= content
    if mask.sum() < 100:
        return 0.0, overlap
    # Blur first: JPEG blocking and resampling differ between copies, the photo does not.
    va = cv2.GaussianBlur(grey_a.astype(np.float32), (0, 0), 1.5)[mask]
    vb = cv2.GaussianBlur(warped, (0, 0), 1.5)[mask]
    va, vb = va - va.mean(), vb - vb.mean()
    denom = float(np.sqrt((va * va).sum() * (vb * vb).sum()))
    return (float((va * vb).sum()) / denom if denom > 0 else 0.0), overlap


def _hull_share(points: np.ndarray, shape: tuple[int, int]) -> float:
    if len(points) < 3:
        return 0.0
    hull = cv2.convexHull(points.astype(np.float32))
    return float(cv2.contourArea(hull)) / float(shape[0] * shape[1])


def _affine(
    a: ImageSignature, b: ImageSignature, *, mirrored: bool, limit: int, settings: MatchSettings
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]:
    """Affine map a -> b fitted by RANSAC to matches among the ``limit`` strongest keypoints;
    also every ratio-test match (src in a, dst in b) and which of them are inliers."""
    desc_b = b.mirror_descriptors if mirrored else b.descriptors
    points_b = b.mirror_keypoints if mirrored else b.keypoints
    desc_a = a.descriptors[:limit] if a.descriptors is not None else None
    desc_b = desc_b[:limit] if desc_b is not None else None
    rows_a, rows_b = _match_points(desc_a, desc_b, ratio=settings.lowe_ratio)
    empty = np.zeros((0, 2), np.float32)
    if len(rows_a) < 4:
        return None, empty, empty, np.zeros(0, dtype=bool)
    src = a.keypoints[rows_a]
    dst = points_b[rows_b].copy()
    if mirrored:  # back to b's own frame, so the affine carries the reflection
        dst[:, 0] = (b.grey.shape[1] - 1) - dst[:, 0]
    affine, inlier_mask = cv2.estimateAffine2D(
        src,
        dst,
        method=cv2.RANSAC,
        ransacReprojThreshold=settings.ransac_px,
        maxIters=2000,
        confidence=0.995,
    )
    if affine is None:
        return None, src, dst, np.zeros(len(src), dtype=bool)
    return affine, src, dst, inlier_mask.ravel() > 0


def _homography(src: np.ndarray, dst: np.ndarray, settings: MatchSettings) -> np.ndarray | None:
    """A perspective map a -> b for re-shots seen from a slightly different angle."""
    if len(src) < 8:
        return None
    h, _ = cv2.findHomography(src, dst, cv2.RANSAC, settings.ransac_px, maxIters=2000)
    if h is None or abs(h[2, 0]) > 2e-3 or abs(h[2, 1]) > 2e-3:  # far from a mild tilt
        return None
    return h


def _fit(
    a: ImageSignature,
    b: ImageSignature,
    *,
    mirrored: bool,
    score: float,
    settings: MatchSettings,
    screen: bool = True,
) -> PairEvidence | None:
    """Match a's keypoints to b's (or to b mirrored), fit an affine map, test the alignment."""
    # The strongest keypoints of a 2x zoom and of its source differ: a close window match,
    # or keypoints that already voted for each other, skip the screen. (Looking a's
    # strongest up among all of b's instead lost real copies: more of b's keypoints make
    # the ratio test stricter.)
    if screen and score < settings.screen_skip_score:
        # Most candidates are different photos: a look at the strongest keypoints settles
        # those at a tenth of the cost of matching all of them.
        _, _, _, screened = _affine(
            a, b, mirrored=mirrored, limit=settings.screen_keypoints, settings=settings
        )
        if screened.sum() < settings.screen_min_inliers:
            return None
    affine, src, dst, inlier = _affine(
        a, b, mirrored=mirrored, limit=ORB_FEATURES, settings=settings
    )
    inliers = int(inlier.sum())
    if affine is None or inliers < settings.min_inliers:
        return None
    singular = np.linalg.svd(affine[:, :2], compute_uv=False)
    scale = float(np.sqrt(singular[0] * singular[1]))
    if not (1 / settings.max_scale <= scale <= settings.max_scale):
        return None
    if singular[0] / max(singular[1], 1e-6) > 2.0:  # strong shear: not a crop or zoom
        return None
    # A logo, a ruler or a stamp the mask missed is a small cluster: the photo is not in it.
    spread = max(_hull_share(src[inlier], a.grey.shape), _hull_share(dst[inlier], b.grey.shape))
    if spread < settings.min_spread:
        return None
    correlation, overlap = _aligned_correlation(a, b, affine)
    if correlation < settings.min_correlation:
        homography = _homography(src, dst, settings)
        if homography is not None:
            correlation = max(correlation, _aligned_correlation(a, b, homography)[0])
    if overlap < settings.min_overlap or correlation < settings.possible_correlation:
        return None
    level = "copy" if correlation >= settings.min_correlation else "possible"
    ha, wa = a.grey.shape
    hb, wb = b.grey.shape
    picked = np.flatnonzero(inlier)[:: max(1, inliers // 60)]
    fractions = np.c_[src[picked] / (wa, ha), dst[picked] / (wb, hb)]  # float64
    points = tuple(map(tuple, np.round(fractions, 4).tolist()))
    return PairEvidence(
        "orb-affine", score, inliers, correlation, overlap, mirrored, scale, level, spread, points
    )


def verify_pair(
    a: ImageSignature,
    b: ImageSignature,
    *,
    scores: tuple[float, float],
    settings: MatchSettings,
    keypoints_voted: bool = False,
) -> PairEvidence | None:
    """Confirm that two signatures show one photo (up to flip, rotation, crop, zoom, colour).

    ``scores`` are the window scores without and with a reflection. ``keypoints_voted``:
    the two images' upright keypoints already found each other (``votes.py``), so the
    upright fit skips the cheap screen that zoomed re-shots fail.
    """
    if a.pixel_sha1 == b.pixel_sha1:
        return PairEvidence("identical-pixels", 1.0, 0, 1.0, 1.0, False, 1.0)
    proper, mirror = scores
    # Both parities are always tried: the likelier first, since a confirmed pair stops there.
    # Window scores predict the parity well for exact flips and turns but not for copies
    # turned by other angles, stretched or shifted.
    possible = None
    for mirrored in (mirror > proper, mirror <= proper):
        evidence = _fit(
            a,
            b,
            mirrored=mirrored,
            score=max(proper, mirror),
            settings=settings,
            screen=mirrored or not keypoints_voted,
        )
        if evidence is not None and evidence.level == "copy":
            return evidence
        possible = possible or evidence
    return possible
