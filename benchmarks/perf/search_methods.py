"""The search methods the benchmark compares, the exact reference, recall@k and call timing.

Every method takes unit-norm float32 vectors and returns the row numbers of the top-k by
cosine similarity, best first, so recall is computed the same way for all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from usearch.index import Index
from usearch.index import search as usearch_search

K = 10
METRIC = "cos"
CONNECTIVITY = 16
EXPANSION_ADD = 128
# Tried in this order at every library size; the smallest reaching the recall target is kept.
EXPANSION_SEARCH_GRID = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
# Rows of the library scored per block in batched brute force: bounds the score block.
_ROW_BLOCK = 65_536


def recall_at_k(*, found: np.ndarray, truth: np.ndarray, k: int = K) -> float:
    """Mean over queries of |found[:k] ∩ truth[:k]| / k (order inside the top k is ignored)."""
    found, truth = np.asarray(found), np.asarray(truth)
    if found.ndim != 2 or truth.ndim != 2 or len(found) != len(truth):
        raise ValueError(
            f"found and truth must be (n_queries, >=k) arrays of equal length, got "
            f"{found.shape} and {truth.shape}."
        )
    if truth.shape[1] < k or found.shape[1] < k:
        raise ValueError(
            f"both arrays need at least k={k} columns, got {found.shape[1]} and {truth.shape[1]}."
        )
    hits = [len(np.intersect1d(f[:k], t[:k])) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits) / k)


def exact_top_k(*, queries: np.ndarray, library: np.ndarray, k: int = K) -> np.ndarray:
    """Reference top-k rows: float32 candidates (4k per query) re-ranked in float64.

    The float64 re-rank removes float32 rounding from the order; a true neighbour missing
    from the 4k float32 candidates would need an error 1,000x larger than float32's.
    """
    candidates = batched_numpy(queries=queries, library=library, k=min(4 * k, len(library)))
    exact = np.einsum(
        "qd,qcd->qc", queries.astype(np.float64), library[candidates].astype(np.float64)
    )
    order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(candidates, order, axis=1)


def _top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores per row, best first."""
    if k >= scores.shape[1]:
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def batched_numpy(*, queries: np.ndarray, library: np.ndarray, k: int = K) -> np.ndarray:
    """Brute force for a batch: one matrix product per row block, argpartition, merge."""
    best_rows = np.empty((len(queries), 0), dtype=np.int64)
    best_scores = np.empty((len(queries), 0), dtype=np.float32)
    for start in range(0, len(library), _ROW_BLOCK):
        scores = queries @ library[start : start + _ROW_BLOCK].T
        rows = _top_k_rows(scores, k)
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, rows, 1)], axis=1)
        best_rows = np.concatenate([best_rows, rows + start], axis=1)
        keep = _top_k_rows(best_scores, k)
        best_rows = np.take_along_axis(best_rows, keep, 1)
        best_scores = np.take_along_axis(best_scores, keep, 1)
    return best_rows


def single_numpy(*, query: np.ndarray, library: np.ndarray, k: int = K) -> np.ndarray:
    """One query by brute force: a matrix-vector product and argpartition."""
    return _top_k_rows((library @ query)[None, :], k)[0]


def single_sklearn_argsort(*, query: np.ndarray, library: np.ndarray, k: int = K) -> np.ndarray:
    """Mahbod et al.'s (2024) per-query search: sklearn cosine_similarity against the library, full
    argsort.

    cosine_similarity re-normalises the whole library on every call; that copy is part of
    what the seed's authors timed, so it is kept.
    """
    from sklearn.metrics.pairwise import cosine_similarity

    scores = cosine_similarity(query[None, :], library)[0]
    return np.argsort(scores)[::-1][:k]


def usearch_exact_matrix(
    *, queries: np.ndarray, library: np.ndarray, threads: int, k: int = K
) -> np.ndarray:
    """usearch's exhaustive search straight over a float32 matrix, for sizes with no index.

    Measured ~15-30% slower per query than `Index.search(exact=True)` on the same vectors,
    so records say which of the two produced them.
    """
    matches = usearch_search(library, queries, k, METRIC, exact=True, threads=threads)
    keys = np.asarray(matches.keys, dtype=np.int64)
    return keys[None, :] if queries.ndim == 1 else keys


def new_hnsw(*, dim: int, dtype: str) -> Index:
    """An empty HNSW index with every machine-dependent choice pinned (dtype above all)."""
    if dtype not in ("f32", "f16"):
        raise ValueError(f"dtype must be 'f32' or 'f16', got {dtype!r}.")
    index = Index(
        ndim=dim,
        metric=METRIC,
        dtype=dtype,
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=EXPANSION_SEARCH_GRID[0],
    )
    if str(index.dtype).rsplit(".", 1)[-1].lower() != dtype:
        raise ValueError(f"usearch built a {index.dtype} index where {dtype} was asked for.")
    return index


def hnsw_search(
    *, index: Index, queries: np.ndarray, threads: int, k: int = K, exact: bool = False
) -> np.ndarray:
    """Top-k keys from the index: graph search, or a scan of its stored vectors if `exact`."""
    matches = index.search(queries, k, threads=threads, exact=exact)
    keys = np.asarray(matches.keys, dtype=np.int64)
    return keys[None, :] if queries.ndim == 1 else keys


@dataclass(frozen=True)
class Tuning:
    """Recall of each expansion_search tried, and the one kept (smallest reaching target)."""

    curve: dict[int, float]
    chosen: int
    reached: bool


def tune_expansion(
    *, index: Index, find: Callable[[], np.ndarray], truth: np.ndarray, target: float
) -> Tuning:
    """Walk the grid upwards until the recall@k of ``find()`` (top-k rows of the tuning
    queries, searched with ``index.expansion_search`` as set) reaches `target`; the best
    setting, if none does."""
    curve: dict[int, float] = {}
    for ef in EXPANSION_SEARCH_GRID:
        index.expansion_search = ef
        curve[ef] = recall_at_k(found=find(), truth=truth)
        if curve[ef] >= target:
            return Tuning(curve=curve, chosen=ef, reached=True)
    best = max(curve, key=lambda ef: (curve[ef], -ef))
    index.expansion_search = best
    return Tuning(curve=curve, chosen=best, reached=False)


def tune_expansion_search(
    *, index: Index, queries: np.ndarray, truth: np.ndarray, target: float, threads: int
) -> Tuning:
    """``tune_expansion`` of the bare graph walk on held-out tuning queries."""
    return tune_expansion(
        index=index,
        find=lambda: hnsw_search(index=index, queries=queries, threads=threads),
        truth=truth,
        target=target,
    )


@dataclass(frozen=True)
class Timing:
    """Per-call wall times in seconds (warm-up calls excluded) and what the calls returned."""

    seconds: np.ndarray
    results: list[np.ndarray]

    def summary(self) -> dict[str, float]:
        s = self.seconds
        return {
            "calls": len(s),
            "median_ms": float(np.median(s) * 1e3),
            "p95_ms": float(np.percentile(s, 95) * 1e3),
            "p25_ms": float(np.percentile(s, 25) * 1e3),
            "p75_ms": float(np.percentile(s, 75) * 1e3),
            "min_ms": float(s.min() * 1e3),
            "max_ms": float(s.max() * 1e3),
        }


def time_calls(
    *, call: Callable[[np.ndarray], np.ndarray], inputs: Sequence[np.ndarray], warmup: int
) -> Timing:
    """Run `call` on warm-up inputs (untimed), then time each input with perf_counter."""
    if warmup < 1 or len(inputs) < 1:
        raise ValueError("time_calls needs at least one warm-up call and one timed input.")
    for item in list(inputs)[:warmup]:
        call(item)
    seconds, results = [], []
    for item in inputs:
        start = time.perf_counter()
        out = call(item)
        seconds.append(time.perf_counter() - start)
        results.append(np.asarray(out))
    return Timing(seconds=np.asarray(seconds), results=results)
