"""Window, zoom and corner scores of the pairs a usearch search finds, instead of all pairs.

A pair's window score is the best cosine between one image as a whole and any window of the
other under the 8 flips/rotations (see ``core``). Scoring every pair costs the square of the
library. Here the whole-image vectors, under each flip/rotation, go into one usearch index,
and every upright window of every image looks up its nearest ones: the cosine of a flipped
whole image to a window is the cosine of the whole image to the flipped window (the flips
and turns are signed permutations of the DCT block), so the hits are exactly the terms the
full score maximises over, less those too far to be among a window's nearest. Corner scores
work the same way, with each image's corner windows under every flip/rotation looking up the
same-size upright windows of the others. Cost grows with n log n.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from usearch.index import Index

from data_index.audit.features import (
    ImageSignature,
    dihedral_variants,
    square_window_sets,
    zoom_windows,
)

# Order of the 8 variants in ImageSignature.window_vectors: identity, flip x, flip y, both,
# then the transposes of those four. Reflections (determinant -1) are 1, 2, 4 and 7.
MIRRORED_VARIANT = np.array([0, 1, 1, 0, 1, 0, 0, 1], dtype=np.int64)


@dataclass(frozen=True)
class SearchSettings:
    """The usearch settings of the candidate search, pinned (defaults vary by release)."""

    neighbours: int = 16  # nearest vectors per query window (8 of them may be one image)
    connectivity: int = 16
    expansion_add: int = 64
    # 32 kept every true pair that 64 finds on the audit benchmark, at two thirds the time.
    expansion_search: int = 32
    threads: int = 1  # usearch's own threads for adding and searching (0: every core)


def _best_per_pair(
    code: np.ndarray, mirrored: np.ndarray, cosine: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique codes, (len, 2) best cosine per parity, -1 where none)."""
    if len(code) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 2), dtype=np.float32)
    key = np.asarray(code, dtype=np.int64) * 2 + np.asarray(mirrored, dtype=np.int64)
    keys, best = _max_by_key(key, np.asarray(cosine, dtype=np.float32))
    first = np.r_[True, np.diff(keys >> 1) != 0]
    values = np.full((int(first.sum()), 2), -1.0, dtype=np.float32)
    values[np.cumsum(first) - 1, keys & 1] = best
    return keys[first] >> 1, values


def _max_by_key(key: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys and the largest of ``values`` (rows) at each. One sort and a
    segmented maximum: twice as fast as a pandas hash group-by, which then sorts its keys."""
    order = np.argsort(key)
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    return key[starts], np.maximum.reduceat(values[order], starts, axis=0)


class PairScores:
    """Best (upright, mirrored) cosine of each pair a search found; -1 for pairs not found.

    Pairs are (row, col) of two image lists, or row < col within one list; ``codes`` holds
    row * n_cols + col, sorted, and ``values`` the two cosines of each.
    """

    def __init__(self, codes: np.ndarray, values: np.ndarray, *, n_cols: int):
        self.codes, self.values, self.n_cols = codes, values, max(n_cols, 1)

    @classmethod
    def from_hits(
        cls, a: np.ndarray, b: np.ndarray, mirrored: np.ndarray, cosine: np.ndarray, *, n_cols: int
    ) -> PairScores:
        """The best cosine of each (pair, parity) over search hits (one row per hit)."""
        code = np.asarray(a, dtype=np.int64) * max(n_cols, 1) + np.asarray(b, dtype=np.int64)
        return cls(*_best_per_pair(code, mirrored, cosine), n_cols=n_cols)

    @classmethod
    def merged(cls, parts: Sequence[PairScores], *, n_cols: int) -> PairScores:
        """The best of each pair over several parts (query chunks, search directions): the
        same as one ``from_hits`` over all their hits, since a maximum can be taken in parts."""
        if len(parts) == 1:
            return parts[0]
        codes, values = _max_by_key(
            np.concatenate([p.codes for p in parts]), np.concatenate([p.values for p in parts])
        )
        return cls(codes, values, n_cols=n_cols)

    def get(self, a: int, b: int) -> tuple[float, float]:
        at = int(np.searchsorted(self.codes, a * self.n_cols + b))
        if at < len(self.codes) and self.codes[at] == a * self.n_cols + b:
            return float(self.values[at, 0]), float(self.values[at, 1])
        return -1.0, -1.0

    def top_pairs(self, *, k: int, floor: float, same_set: bool) -> set[tuple[int, int]]:
        """Each image's ``k`` best-scoring partners at or above ``floor``, on either side."""
        best = self.values.max(axis=1)
        keep = best >= floor
        rows, cols, best = (
            self.codes[keep] // self.n_cols,
            self.codes[keep] % self.n_cols,
            best[keep],
        )
        if same_set:
            picked = top_per_image(np.r_[rows, cols], np.r_[best, best], k) % max(len(rows), 1)
        else:
            picked = np.r_[top_per_image(rows, best, k), top_per_image(cols, best, k)]
        return {(int(rows[p]), int(cols[p])) for p in picked}


def top_per_image(image: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores of each image (ties: first seen)."""
    if len(image) == 0:
        return np.zeros(0, dtype=np.int64)
    # One integer key per entry, by image and then best score first: a float32's bits read as
    # an integer keep its order once negative values have their magnitude bits flipped. One
    # stable sort of it is the lexsort of (image, -score) at a fifth of the time.
    bits = np.asarray(score, dtype=np.float32).view(np.int32).astype(np.int64)
    bits ^= (bits >> 31) & 0x7FFFFFFF
    key = (np.asarray(image, dtype=np.int64) << 32) + ((1 << 31) - 1 - bits)
    order = np.argsort(key, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(image[order])) + 1]
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return order[rank < k]


# A graph built on one thread is the same on every run; usearch's threaded build can join
# near-ties differently. Below this many vectors a one-thread build takes about a second,
# so small libraries keep identical candidate lists and large ones build in parallel.
PARALLEL_ADD_FROM = 100_000


def add_threads(n_vectors: int, threads: int) -> int:
    """Threads for adding ``n_vectors`` to a usearch index (see PARALLEL_ADD_FROM)."""
    return threads if n_vectors >= PARALLEL_ADD_FROM else 1


def _index(stored: np.ndarray, settings: SearchSettings) -> Index:
    index = Index(
        ndim=stored.shape[1],
        metric="ip",  # the vectors are unit: inner product is the cosine
        dtype="f32",
        connectivity=settings.connectivity,
        expansion_add=settings.expansion_add,
        expansion_search=settings.expansion_search,
    )
    index.add(
        np.arange(len(stored), dtype=np.uint64),
        np.ascontiguousarray(stored),
        threads=add_threads(len(stored), settings.threads),
    )
    return index


def _search(
    index: Index, queries: np.ndarray, settings: SearchSettings, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """(keys, cosines) of each query's ``count`` nearest stored rows; key -1 where fewer exist."""
    found = index.search(
        np.ascontiguousarray(queries), min(count, len(index)), threads=settings.threads
    )
    keys = np.asarray(found.keys).reshape(len(queries), -1).astype(np.int64)
    keys[(keys < 0) | (keys >= len(index))] = -1
    cosine = 1.0 - np.asarray(found.distances, dtype=np.float32).reshape(len(queries), -1)
    return keys, cosine


def _nearest(
    stored: np.ndarray, queries: np.ndarray, settings: SearchSettings, *, count: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(keys, cosines) of each query's nearest stored rows; key -1 where fewer exist."""
    if len(stored) == 0 or len(queries) == 0:
        return np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.float32)
    count = settings.neighbours if count is None else count
    return _search(_index(stored, settings), queries, settings, count)


# Query images searched at once: the hits of a chunk are reduced to the best of each pair
# before the next, so memory holds one chunk's hits rather than the whole library's.
QUERY_CHUNK = 1000


def _hits(
    stored_owner: np.ndarray,
    stored_variant: np.ndarray,
    query_owner: np.ndarray,
    query_variant: np.ndarray,
    keys: np.ndarray,
    cosine: np.ndarray,
    *,
    same_set: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flattened (query image, stored image, mirrored, cosine, query row) of every hit."""
    query_row = np.repeat(np.arange(len(keys)), keys.shape[1])
    key = keys.reshape(-1)
    valid = key >= 0
    q_img = query_owner[query_row]
    s_img = np.where(valid, stored_owner[np.clip(key, 0, None)], -1)
    if same_set:
        valid &= q_img != s_img
    # A reflection on one side and none on the other is a mirrored pair.
    variants = stored_variant[np.clip(key, 0, None)] ^ query_variant[query_row]
    return (
        q_img[valid],
        s_img[valid],
        variants[valid],
        cosine.reshape(-1)[valid],
        query_row[valid],
    )


def _as_pairs(q, s, *, same_set: bool, query_is_row: bool) -> tuple[np.ndarray, np.ndarray]:
    if same_set:
        return np.minimum(q, s), np.maximum(q, s)
    return (q, s) if query_is_row else (s, q)


def _chunk_hits(
    index: Index,
    stored_owner: np.ndarray,
    stored_variant: np.ndarray,
    query_sigs: Sequence[ImageSignature],
    settings: SearchSettings,
    *,
    queries_of,
    query_variant: np.ndarray,
    same_set: bool,
    query_is_row: bool,
):
    """For each chunk of QUERY_CHUNK query images: (a, b, mirrored, cosine, query row within
    the chunk) of every hit. ``queries_of(sig)`` gives one image's query vectors and
    ``query_variant`` whether each of them is mirrored."""
    for start in range(0, len(query_sigs), QUERY_CHUNK):
        chunk = query_sigs[start : start + QUERY_CHUNK]
        queries = np.concatenate([queries_of(sig) for sig in chunk])
        query_owner = start + np.repeat(np.arange(len(chunk)), len(query_variant))
        keys, cosine = _search(index, queries, settings, settings.neighbours)
        q, s, mirrored, cos, query_row = _hits(
            stored_owner,
            stored_variant,
            query_owner,
            np.tile(query_variant, len(chunk)),
            keys,
            cosine,
            same_set=same_set,
        )
        a, b = _as_pairs(q, s, same_set=same_set, query_is_row=query_is_row)
        yield a, b, mirrored, cos, query_row


def _window_parts(stored_sigs, query_sigs, settings, *, same_set, query_is_row, n_cols):
    """Window and zoom-window scores, one PairScores per chunk of query images: whole images
    (8 variants) stored, upright windows queried."""
    n_windows = stored_sigs[0].window_vectors.shape[0]
    stored = np.concatenate([dihedral_variants(s.window_vectors, [0]) for s in stored_sigs])
    stored_owner = np.repeat(np.arange(len(stored_sigs)), 8)
    stored_variant = np.tile(MIRRORED_VARIANT, len(stored_sigs))
    index = _index(stored, settings)
    zoom = np.zeros(n_windows, dtype=bool)
    zoom[zoom_windows()] = True
    windows, zooms = [], []
    for a, b, mirrored, cos, query_row in _chunk_hits(
        index,
        stored_owner,
        stored_variant,
        query_sigs,
        settings,
        queries_of=lambda sig: sig.window_vectors,
        query_variant=np.zeros(n_windows, dtype=np.int64),
        same_set=same_set,
        query_is_row=query_is_row,
    ):
        is_zoom = zoom[query_row % n_windows]
        windows.append(PairScores.from_hits(a, b, mirrored, cos, n_cols=n_cols))
        zooms.append(
            PairScores.from_hits(
                a[is_zoom], b[is_zoom], mirrored[is_zoom], cos[is_zoom], n_cols=n_cols
            )
        )
    return windows, zooms


def window_pair_scores(
    rows: Sequence[ImageSignature],
    cols: Sequence[ImageSignature] | None = None,
    *,
    settings: SearchSettings | None = None,
) -> tuple[PairScores, PairScores]:
    """Window scores and zoom-window scores of the pairs found, either image the crop;
    ``cols=None`` pairs ``rows`` among themselves."""
    settings = settings or SearchSettings()
    same_set = cols is None
    cols = rows if cols is None else cols
    windows: list[PairScores] = []
    zooms: list[PairScores] = []
    directions = [(cols, rows, True)] if same_set else [(cols, rows, True), (rows, cols, False)]
    for stored_sigs, query_sigs, query_is_row in directions:
        if not stored_sigs or not query_sigs:
            continue
        w, z = _window_parts(
            stored_sigs,
            query_sigs,
            settings,
            same_set=same_set,
            query_is_row=query_is_row,
            n_cols=len(cols),
        )
        windows += w
        zooms += z
    if not windows:
        empty = PairScores.from_hits(*(np.zeros(0),) * 4, n_cols=len(cols))
        return empty, empty
    return (
        PairScores.merged(windows, n_cols=len(cols)),
        PairScores.merged(zooms, n_cols=len(cols)),
    )


def corner_pair_scores(
    rows: Sequence[ImageSignature],
    cols: Sequence[ImageSignature] | None = None,
    *,
    settings: SearchSettings | None = None,
) -> PairScores:
    """Corner scores of the pairs found: one image's corner window against same-size windows
    of the other, under the 8 flips/rotations, either way round."""
    settings = settings or SearchSettings()
    same_set = cols is None
    cols = rows if cols is None else cols
    parts: list[PairScores] = []
    directions = [(cols, rows, True)] if same_set else [(cols, rows, True), (rows, cols, False)]
    for stored_sigs, query_sigs, query_is_row in directions:
        if not stored_sigs or not query_sigs:
            continue
        for same, corners in square_window_sets():
            stored = np.concatenate([s.window_vectors[same] for s in stored_sigs])
            stored_owner = np.repeat(np.arange(len(stored_sigs)), len(same))
            hits = _chunk_hits(
                _index(stored, settings),
                stored_owner,
                np.zeros(len(stored), dtype=np.int64),
                query_sigs,
                settings,
                # Each corner under every flip/rotation, variant by variant.
                queries_of=lambda sig, at=corners: dihedral_variants(sig.window_vectors, at),
                query_variant=np.repeat(MIRRORED_VARIANT, len(corners)),
                same_set=same_set,
                query_is_row=query_is_row,
            )
            parts += [
                PairScores.from_hits(a, b, mirrored, cos, n_cols=len(cols))
                for a, b, mirrored, cos, _ in hits
            ]
    if not parts:
        return PairScores.from_hits(*(np.zeros(0),) * 4, n_cols=len(cols))
    return PairScores.merged(parts, n_cols=len(cols))


def neighbour_pairs(
    rows: np.ndarray,
    cols: np.ndarray | None = None,
    *,
    k: int,
    settings: SearchSettings | None = None,
) -> set[tuple[int, int]]:
    """Each row's ``k`` nearest columns by cosine of per-image vectors (colour histograms, a
    caller's embeddings), and for two lists each column's ``k`` nearest rows too;
    ``cols=None`` pairs ``rows`` among themselves (row < col)."""
    settings = settings or SearchSettings()
    same_set = cols is None

    def unit(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float32)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    rows = unit(rows)
    cols = rows if cols is None else unit(cols)
    found: set[tuple[int, int]] = set()
    directions = [(cols, rows, True)] if same_set else [(cols, rows, True), (rows, cols, False)]
    for stored, queries, query_is_row in directions:
        if len(stored) == 0 or len(queries) == 0:
            continue
        keys, _ = _nearest(stored, queries, settings, count=k + (1 if same_set else 0))
        q = np.repeat(np.arange(len(queries)), keys.shape[1])
        s = keys.reshape(-1)
        valid = (s >= 0) & ((q != s) if same_set else True)
        if same_set:  # one's own row, when found, is not a neighbour; keep k others
            ranked = np.cumsum(valid.reshape(len(queries), -1), axis=1).reshape(-1)
            valid &= ranked <= k
        a, b = _as_pairs(q[valid], s[valid], same_set=same_set, query_is_row=query_is_row)
        found |= set(zip(a.tolist(), b.tolist(), strict=True))
    return found


def candidate_pairs(
    windows: PairScores,
    *,
    settings,
    same_set: bool,
    corners: PairScores,
    zooms: PairScores,
    extra_pairs: Iterable[tuple[int, int]] = (),
) -> list[tuple[int, int, float, float]]:
    """(row, col, upright score, mirrored score) to verify: each image's best partners by
    window score, by corner score and by zoom score (separate short lists, so one kind never
    pushes another out), above the floor, plus ``extra_pairs`` whatever their score.

    The scores only order the two parities tried in ``verify_pair``. Same set: row < col.
    """
    floor = settings.min_candidate_score
    by_window = windows.top_pairs(k=settings.candidates_per_image, floor=floor, same_set=same_set)
    others = {(int(i), int(j)) for i, j in extra_pairs}
    others |= corners.top_pairs(
        k=settings.corner_candidates_per_image, floor=floor, same_set=same_set
    )
    # Zoomed re-shots score lower than crops: a short list of their own, too.
    others |= zooms.top_pairs(k=settings.zoom_candidates_per_image, floor=floor, same_set=same_set)
    if same_set:
        by_window = {(min(p), max(p)) for p in by_window if p[0] != p[1]}
        others = {(min(p), max(p)) for p in others if p[0] != p[1]}
    out = [(i, j, *windows.get(i, j)) for i, j in by_window]
    for i, j in others - by_window:
        window, corner = windows.get(i, j), corners.get(i, j)
        out.append((i, j, max(window[0], corner[0]), max(window[1], corner[1])))
    return sorted(out)
