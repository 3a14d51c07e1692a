"""Library audit: find copies of one photo (flipped, rotated, cropped, zoomed, re-encoded).

Public skin-image sets are full of augmented copies, and the same photo appears under
different diagnoses in different sets; leave-one-out search then finds the query's own twin.

Method, in two stages:
1. Candidates. Each image is squashed to a 128x128 grey square; 81 windows on it (side
   fractions 1.0/0.86/0.74 for width and height, at 4x4 offsets) are resized to 32x32 and
   described by their 8x8 low-frequency DCT block without DC, as a unit vector (brightness
   and contrast drop out). The 8 flips/rotations of a window are sign changes and
   transposes of that block, so they cost nothing. A pair's window score is the best cosine
   between one image as a whole and any window of the other, either way round: a copy
   cropped or zoomed to 60-90% of the area sits within a few per cent of some window, and
   low frequencies barely move under that, resizing, JPEG or mild colour changes. A corner
   score (each image's corner windows against same-size windows of the other) catches
   shifted copies and two crops of one photo. Each image's best few partners by each score
   are candidates, plus its nearest by colour histogram, identical pixels, the images its
   ORB descriptors vote for (zoomed re-shots of smooth photos, ``votes.py``) and,
   optionally, caller-given embedding neighbours. None of these scores every pair: each is
   a usearch search over the signatures (``candidates.py``), so the cost grows with
   n log n rather than n squared.
2. Confirmation. ORB keypoints (on the image and on its mirror: ORB is rotation- but not
   reflection-invariant) are matched with Lowe's ratio test, an affine map is fitted with
   RANSAC, and the pair is confirmed only if enough keypoints agree AND the grey images,
   aligned by that map, correlate (>= 0.9) over an overlap covering most of the smaller
   image. The strongest 150 keypoints are tried first, which settles most different photos
   at a tenth of the cost. The correlation test is what keeps precision: different
   dermoscopy photos can share a few chance keypoint matches, and pairs that only share a
   watermark, caption or ruler do not correlate once aligned.
Confirmed pairs are joined with union-find into groups (a chain of copies is one photo).

Where it fails: crops below about half the area, blur strong enough to remove keypoints
(radius >= 2 px on 224 px images), free rotations beyond a few degrees and copies that are
shifted, zoomed and turned at once can all miss the candidate stage or the keypoint fit
(caller-given embedding neighbours help with the first). Near-textureless images have too
few keypoints (identical pixels are still caught). Two photos of one lesion taken from
different angles are NOT called copies: parallax and lighting break the correlation test,
which is intended.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from data_index.audit.candidates import (
    SearchSettings,
    candidate_pairs,
    corner_pair_scores,
    neighbour_pairs,
    window_pair_scores,
)
from data_index.audit.features import ImageSignature, signature_of_path
from data_index.audit.groups import split_weak_groups
from data_index.audit.masking import masked_signature
from data_index.audit.match import MatchSettings, PairEvidence, verify_pair
from data_index.audit.overlays import content_mask, learn_overlay_cells
from data_index.audit.report import (
    CrossDuplicate,
    CrossReport,
    DuplicatePair,
    DuplicateReport,
    group_ids_of,
    label_conflicts,
)
from data_index.audit.votes import VoteSettings, keypoint_vote_pairs
from data_index.parallel import in_threads, thread_count

# progress(fraction_done, message): the call shape of gradio's gr.Progress and easy to print.
Progress = Callable[[float, str], None]


def _check_labels(labels: Sequence[object] | None, n: int, what: str) -> list[str] | None:
    if labels is None:
        return None
    if isinstance(labels, str) or len(labels) != n:
        raise ValueError(f"{what} must be a list with one label per image ({n} images).")
    return [str(x) for x in labels]


def _check_vectors(vectors: np.ndarray, n: int, what: str) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or len(array) != n:
        raise ValueError(f"{what} must be a 2-D array with one row per image ({n} images).")
    return array


def _colours(signatures: list[ImageSignature]) -> np.ndarray:
    if not signatures:
        return np.zeros((0, 1), dtype=np.float32)
    return np.stack([sig.colour_vector for sig in signatures]).astype(np.float32)


def _sign_or_error(path: str | Path) -> ImageSignature | str:
    try:
        return signature_of_path(path)
    except ValueError as err:  # unreadable files are reported, not fatal
        return str(err)


def _sign_all(
    paths: Sequence[str | Path],
    progress: Progress | None,
    span: tuple[float, float],
    what: str,
    threads: int = 1,
) -> tuple[list[ImageSignature | None], list[tuple[int, str]]]:
    signatures: list[ImageSignature | None] = []
    unreadable: list[tuple[int, str]] = []
    start, stop = span
    for row, signed in enumerate(in_threads(_sign_or_error, paths, threads)):
        if isinstance(signed, str):
            signatures.append(None)
            unreadable.append((row, signed))
        else:
            signatures.append(signed)
        if progress is not None and (row % 25 == 0 or row == len(paths) - 1):
            progress(start + (stop - start) * (row + 1) / len(paths), f"reading {what}")
    return signatures, unreadable


def _verify(
    candidates: list[tuple[int, int, float, float]],
    left: list[ImageSignature],
    right: list[ImageSignature],
    settings: MatchSettings,
    progress: Progress | None,
    voted: set[tuple[int, int]],
    threads: int = 1,
) -> list[tuple[int, int, PairEvidence]]:
    def check(candidate: tuple[int, int, float, float]) -> PairEvidence | None:
        i, j, proper, mirror = candidate
        return verify_pair(
            left[i],
            right[j],
            scores=(proper, mirror),
            settings=settings,
            keypoints_voted=(i, j) in voted,
        )

    confirmed = []
    for done, evidence in enumerate(in_threads(check, candidates, threads)):
        i, j = candidates[done][:2]
        if evidence is not None:
            confirmed.append((i, j, evidence))
        if progress is not None and (done % 50 == 0 or done == len(candidates) - 1):
            progress(0.7 + 0.3 * (done + 1) / len(candidates), "checking candidate pairs")
    return confirmed


def _mask_overlays(
    signatures: list[ImageSignature], settings: MatchSettings, threads: int = 1
) -> tuple[list[ImageSignature], np.ndarray]:
    """Signatures without the keypoints on the library's recurring overlays, and which
    overlay cells each image carries."""
    if not signatures:
        return [], np.zeros((0, 0), dtype=bool)
    overlay = learn_overlay_cells(
        np.stack([s.overlay_cells for s in signatures]),
        np.stack([s.cell_stds for s in signatures]),
        min_repeats=settings.overlay_min_repeats,
        reference=settings.overlay_reference,
    )

    def mask(i: int) -> ImageSignature:
        sig = signatures[i]
        masked = masked_signature(sig, content_mask(overlay[i], sig.strips, sig.grey.shape))
        # What only the overlay learning and the masking read goes: a third of the memory.
        return dataclasses.replace(
            masked,
            overlay_cells=masked.overlay_cells[:0],
            cell_stds=masked.cell_stds[:0],
            strips=masked.strips[:0],
            square=None,
        )

    return list(in_threads(mask, range(len(signatures)), threads)), overlay


def _check_paths(paths: Sequence[str | Path], what: str) -> list[str]:
    if isinstance(paths, str | Path):
        raise TypeError(f"{what} must be a list of image paths, not a single path.")
    return [str(p) for p in paths]


def find_duplicate_groups(
    paths: Sequence[str | Path],
    labels: Sequence[object] | None = None,
    *,
    vectors: np.ndarray | None = None,
    settings: MatchSettings | None = None,
    progress: Progress | None = None,
    threads: int | None = None,
) -> DuplicateReport:
    """Group the images of one library that are copies of one photo; flag mixed labels.

    ``vectors`` (optional, one row per path, e.g. the library's backbone embeddings) add each
    image's nearest neighbours as candidates, which reaches copies the windows miss.
    ``threads``: how many to sign, search and check on (None: every core). The report is the
    same for any count.
    """
    started = time.perf_counter()
    settings = settings or MatchSettings()
    threads = thread_count(threads)
    paths = _check_paths(paths, "paths")
    label_list = _check_labels(labels, len(paths), "labels")
    signatures, unreadable = _sign_all(paths, progress, (0.0, 0.6), "images", threads)
    readable = [i for i, s in enumerate(signatures) if s is not None]
    sigs, overlay = _mask_overlays([signatures[i] for i in readable], settings, threads)
    del signatures  # the unmasked signatures: only the masked ones are read from here on

    if progress is not None:
        progress(0.65, "searching candidate pairs")
    search = SearchSettings(threads=threads)
    scores, zooms = window_pair_scores(sigs, settings=search)
    extra: set[tuple[int, int]] = set()
    if vectors is not None:
        vecs = _check_vectors(vectors, len(paths), "vectors")[readable]
        extra |= neighbour_pairs(vecs, k=settings.candidates_per_image, settings=search)
    extra |= neighbour_pairs(
        _colours(sigs), k=settings.colour_candidates_per_image, settings=search
    )
    # Identical pixels are copies whatever their texture (flat images have no keypoints).
    first_with: dict[str, int] = {}
    for i, sig in enumerate(sigs):
        extra.add((first_with.setdefault(sig.pixel_sha1, i), i))
    voted = keypoint_vote_pairs(
        sigs, partners=settings.vote_candidates_per_image, settings=VoteSettings(threads=threads)
    )
    candidates = candidate_pairs(
        scores,
        settings=settings,
        same_set=True,
        corners=corner_pair_scores(sigs, settings=search),
        zooms=zooms,
        extra_pairs=extra | voted,
    )
    if progress is not None:
        progress(0.7, "checking candidate pairs")
    confirmed = _verify(candidates, sigs, sigs, settings, progress, voted, threads)

    def check(i: int, j: int) -> PairEvidence | None:
        return verify_pair(sigs[i], sigs[j], scores=(1.0, 0.0), settings=settings)

    copies = [(i, j, ev) for i, j, ev in confirmed if ev.level == "copy"]
    groups_local, extra_pairs = split_weak_groups(
        len(sigs),
        copies,
        check,
        mapper=lambda f, pairs: in_threads(f, pairs, threads),
        checked={(i, j) for i, j, *_ in candidates},
    )
    groups = sorted(([readable[r] for r in g] for g in groups_local), key=lambda m: m[0])
    group_ids = group_ids_of(groups, len(paths))
    # A confirmed pair whose two images ended in different groups (a link cut, a weak member
    # left out) is not reported as a copy: the report would contradict its own groups.
    pairs = [
        DuplicatePair(readable[i], readable[j], ev)
        for i, j, ev in copies + extra_pairs
        if group_ids[readable[i]] == group_ids[readable[j]]
    ]
    possible = [
        DuplicatePair(readable[i], readable[j], ev)
        for i, j, ev in confirmed
        if ev.level == "possible"
    ]
    overlays = {
        readable[i]: np.flatnonzero(row).tolist() for i, row in enumerate(overlay) if row.any()
    }
    conflicts = label_conflicts(groups, label_list)
    if progress is not None:
        progress(1.0, "done")
    return DuplicateReport(
        paths=paths,
        labels=label_list,
        group_ids=group_ids,
        groups=[list(m) for m in groups],
        conflicts=conflicts,
        pairs=pairs,
        unreadable=unreadable,
        seconds=time.perf_counter() - started,
        n_candidates=len(candidates),
        possible=possible,
        overlays=overlays,
    )


def find_cross_duplicates(
    index_paths: Sequence[str | Path],
    query_paths: Sequence[str | Path],
    *,
    index_labels: Sequence[object] | None = None,
    query_labels: Sequence[object] | None = None,
    index_vectors: np.ndarray | None = None,
    query_vectors: np.ndarray | None = None,
    settings: MatchSettings | None = None,
    progress: Progress | None = None,
    threads: int | None = None,
) -> CrossReport:
    """Find query images that are copies of index images (e.g. a test set leaking a library).

    Optional ``index_vectors``/``query_vectors`` (both or neither) add embedding neighbours
    as candidates, as in ``find_duplicate_groups``.
    """
    started = time.perf_counter()
    settings = settings or MatchSettings()
    threads = thread_count(threads)
    search = SearchSettings(threads=threads)
    index_paths = _check_paths(index_paths, "index_paths")
    query_paths = _check_paths(query_paths, "query_paths")
    index_label_list = _check_labels(index_labels, len(index_paths), "index_labels")
    query_label_list = _check_labels(query_labels, len(query_paths), "query_labels")
    index_sigs, index_bad = _sign_all(index_paths, progress, (0.0, 0.3), "index images", threads)
    query_sigs, query_bad = _sign_all(query_paths, progress, (0.3, 0.6), "query images", threads)
    index_rows = [i for i, s in enumerate(index_sigs) if s is not None]
    query_rows = [i for i, s in enumerate(query_sigs) if s is not None]
    both, _ = _mask_overlays(
        [query_sigs[i] for i in query_rows] + [index_sigs[i] for i in index_rows],
        settings,
        threads,
    )
    left, right = both[: len(query_rows)], both[len(query_rows) :]
    del index_sigs, query_sigs, both  # only the masked ones are read from here on

    if progress is not None:
        progress(0.65, "searching candidate pairs")
    scores, zooms = window_pair_scores(left, right, settings=search)
    extra: set[tuple[int, int]] = set()
    if (index_vectors is None) != (query_vectors is None):
        raise ValueError("Give both index_vectors and query_vectors, or neither.")
    if index_vectors is not None and query_vectors is not None:
        iv = _check_vectors(index_vectors, len(index_paths), "index_vectors")[index_rows]
        qv = _check_vectors(query_vectors, len(query_paths), "query_vectors")[query_rows]
        extra |= neighbour_pairs(qv, iv, k=settings.candidates_per_image, settings=search)
    k_colour = settings.colour_candidates_per_image
    extra |= neighbour_pairs(_colours(left), _colours(right), k=k_colour, settings=search)
    by_pixels: dict[str, list[int]] = {}
    for i, sig in enumerate(right):
        by_pixels.setdefault(sig.pixel_sha1, []).append(i)
    extra |= {(q, i) for q, sig in enumerate(left) for i in by_pixels.get(sig.pixel_sha1, [])}
    voted = keypoint_vote_pairs(
        left,
        right,
        partners=settings.vote_candidates_per_image,
        settings=VoteSettings(threads=threads),
    )
    candidates = candidate_pairs(
        scores,
        settings=settings,
        same_set=False,
        corners=corner_pair_scores(left, right, settings=search),
        zooms=zooms,
        extra_pairs=extra | voted,
    )
    if progress is not None:
        progress(0.7, "checking candidate pairs")
    confirmed = _verify(candidates, left, right, settings, progress, voted, threads)
    confirmed = [(q, i, ev) for q, i, ev in confirmed if ev.level == "copy"]
    matches = [CrossDuplicate(query_rows[q], index_rows[i], ev) for q, i, ev in confirmed]
    conflicts = []
    if index_label_list is not None and query_label_list is not None:
        conflicts = [
            m for m in matches if query_label_list[m.query_row] != index_label_list[m.index_row]
        ]
    if progress is not None:
        progress(1.0, "done")
    return CrossReport(
        matches=matches,
        conflicts=conflicts,
        unreadable_index=index_bad,
        unreadable_query=query_bad,
        seconds=time.perf_counter() - started,
    )
