"""Candidate pairs from shared keypoints: images that many of each other's ORB descriptors
point to, found through one usearch index of binary descriptors.

The window hashes rank candidates by how alike two images look at low frequencies. A zoomed
re-shot of a smooth photo (1.3-2x, a slight tilt, another exposure) can look less alike than
unrelated photos do, while its keypoints still match its source's one for one. Each image's
strongest descriptors (those on the library's overlays already dropped) look up their nearest
descriptors in every other image; a descriptor votes for the image of its nearest neighbour
when that neighbour is clearly nearer than the next (Lowe's ratio test over the whole library).
A copy collects tens of votes, two distinct photos a handful at most.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from usearch.index import Index

from data_index.audit.candidates import add_threads, top_per_image
from data_index.audit.features import ImageSignature

DESCRIPTOR_BITS = 256  # ORB descriptors: 32 bytes


@dataclass(frozen=True)
class VoteSettings:
    """Settings of the descriptor index, pinned (usearch's defaults vary by release)."""

    per_image: int = 100  # strongest descriptors of each image put in the index and queried
    neighbours: int = 4  # nearest descriptors looked up per descriptor
    max_distance: int = 64  # Hamming bits: farther neighbours are not matches
    ratio: float = 0.8  # the nearest other image's descriptor against the next one
    min_votes: int = 1
    connectivity: int = 16
    # 16 found as many true pairs as 32 on the audit benchmark, at under half the time.
    expansion_add: int = 16
    expansion_search: int = 16
    threads: int = 1  # usearch's own threads for adding and searching (0: every core)


def _descriptors(signatures: Sequence[ImageSignature], per_image: int):
    rows, owners = [], []
    for i, sig in enumerate(signatures):
        if sig.descriptors is None:
            continue
        d = sig.descriptors[:per_image]
        rows.append(d)
        owners.append(np.full(len(d), i, dtype=np.int64))
    if not rows:
        return np.zeros((0, DESCRIPTOR_BITS // 8), np.uint8), np.zeros(0, np.int64)
    return np.ascontiguousarray(np.concatenate(rows)), np.concatenate(owners)


def _index(descriptors: np.ndarray, settings: VoteSettings) -> Index:
    index = Index(
        ndim=DESCRIPTOR_BITS,
        metric="hamming",
        dtype="b1",
        connectivity=settings.connectivity,
        expansion_add=settings.expansion_add,
        expansion_search=settings.expansion_search,
    )
    threads = add_threads(len(descriptors), settings.threads)
    index.add(np.arange(len(descriptors), dtype=np.uint64), descriptors, threads=threads)
    return index


def _votes(
    queries: np.ndarray,
    query_owner: np.ndarray,
    index: Index,
    target_owner: np.ndarray,
    *,
    same_set: bool,
    settings: VoteSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """(query image, target image) of every descriptor vote, one row per vote."""
    found = index.search(queries, settings.neighbours, threads=settings.threads)
    keys = np.asarray(found.keys).reshape(len(queries), -1).astype(np.int64)
    dist = np.asarray(found.distances).reshape(len(queries), -1)
    valid = (keys >= 0) & (keys < len(target_owner))
    owner = np.where(valid, target_owner[np.clip(keys, 0, len(target_owner) - 1)], -1)
    if same_set:  # an image's own descriptors are not evidence of a copy
        valid &= owner != query_owner[:, None]
    # The nearest and second nearest usable neighbours of each query descriptor.
    order = np.argsort(~valid, axis=1, kind="stable")
    first, second = order[:, 0], order[:, 1]
    rows = np.arange(len(queries))
    has_two = valid[rows, second]
    d1, d2 = dist[rows, first], dist[rows, second]
    vote = (
        valid[rows, first] & (d1 <= settings.max_distance) & (~has_two | (d1 < settings.ratio * d2))
    )
    return query_owner[vote], owner[rows, first][vote]


def _best_partners(
    a: np.ndarray, b: np.ndarray, *, n_cols: int, same_set: bool, k: int, settings: VoteSettings
) -> set[tuple[int, int]]:
    """Each image's ``k`` best-voted partners, on either side."""
    if len(a) == 0:
        return set()
    pair, count = np.unique(a * n_cols + b, return_counts=True)
    rows, cols = pair // n_cols, pair % n_cols
    keep = count >= settings.min_votes
    rows, cols, count = rows[keep], cols[keep], count[keep]
    if same_set:  # one image list: rank each image's partners whichever side it is on
        picked = top_per_image(np.r_[rows, cols], np.r_[count, count], k) % max(len(rows), 1)
    else:
        picked = np.r_[top_per_image(rows, count, k), top_per_image(cols, count, k)]
    return {(int(rows[p]), int(cols[p])) for p in picked}


def keypoint_vote_pairs(
    rows: Sequence[ImageSignature],
    cols: Sequence[ImageSignature] | None = None,
    *,
    partners: int = 2,
    settings: VoteSettings | None = None,
) -> set[tuple[int, int]]:
    """Each image's ``partners`` best pairs (row, col) by votes of their upright keypoints;
    ``cols=None`` looks within ``rows`` (pairs then have row < col)."""
    settings = settings or VoteSettings()
    same_set = cols is None
    cols = rows if cols is None else cols
    target, target_owner = _descriptors(cols, settings.per_image)
    queries, query_owner = _descriptors(rows, settings.per_image)
    if len(target) < 2 or len(queries) == 0 or partners <= 0:
        return set()
    index = _index(target, settings)
    a, b = _votes(queries, query_owner, index, target_owner, same_set=same_set, settings=settings)
    if same_set:  # votes either way count for one unordered pair
        a, b = np.minimum(a, b), np.maximum(a, b)
    return _best_partners(a, b, n_cols=len(cols), same_set=same_set, k=partners, settings=settings)
