"""Nearest-case queries over an index: cosine through usearch, Euclidean on raw vectors.

The queries read an index through ``SearchableIndex`` (what ``CaseIndex`` provides), so this
module sits below ``case_index`` and never imports it. Per-query work past the usearch call is
O(k + excluded): the key -> row and case -> keys maps and the hit columns are built once per
cases table (``CaseTable``), never by scanning the table per query.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from usearch.index import Index

SearchMetric = Literal["cosine", "euclidean"]
# Columns a Hit carries as fields; every other cases column goes into Hit.metadata.
_HIT_FIELDS = ("key", "path", "label", "case_id")


class CaseTable:
    """Lookups a query needs from a cases table, built once in O(n): key -> row, case id ->
    keys, and the hit columns as Python lists (values as ``DataFrame.to_dict`` gives them)."""

    def __init__(self, cases: pd.DataFrame) -> None:
        self.keys = cases["key"].to_numpy(np.int64)
        self.row_of: dict[int, int] = {int(k): i for i, k in enumerate(self.keys.tolist())}
        self.keys_of_case: dict[str, list[int]] = {}
        for key, case_id in zip(self.keys.tolist(), cases["case_id"].astype(str), strict=True):
            self.keys_of_case.setdefault(case_id, []).append(key)
        self.extra = [c for c in cases.columns if c not in _HIT_FIELDS]
        # to_dict("records") boxes numpy scalars as Python ones; reading the same records
        # column-wise keeps hits identical to a per-query to_dict without its per-query cost.
        records = cases.to_dict("list") if len(cases) else {c: [] for c in cases.columns}
        self.label = [str(v) for v in records["label"]]
        self.path = [str(v) for v in records["path"]]
        self.case_id = [str(v) for v in records["case_id"]]
        self.columns = {c: records[c] for c in self.extra}

    def excluded_keys(self, exclude_case_ids: Iterable[str]) -> set[int]:
        """Keys of every image of the given cases (unknown case ids exclude nothing)."""
        out: set[int] = set()
        for case_id in exclude_case_ids:
            out.update(self.keys_of_case.get(str(case_id), ()))
        return out

    def hits(self, pairs: list[tuple[int, float]]) -> list[Hit]:
        hits = []
        for rank, (key, score) in enumerate(pairs, start=1):
            row = self.row_of[key]
            # One dict update instead of the frozen dataclass's seven object.__setattr__
            # calls: half the cost of a hit, the same (equal, frozen) Hit.
            hit = object.__new__(Hit)
            hit.__dict__.update(
                rank=rank,
                key=key,
                score=score,
                label=self.label[row],
                path=self.path[row],
                case_id=self.case_id[row],
                metadata={c: self.columns[c][row] for c in self.extra},
            )
            hits.append(hit)
        return hits


class SearchableIndex(Protocol):
    """What a query reads: the usearch index, the key -> case table and the raw vectors."""

    index: Index
    cases: pd.DataFrame
    raw: np.ndarray

    @property
    def dim(self) -> int: ...

    @property
    def exact(self) -> bool: ...

    @property
    def dtype(self) -> str: ...

    @property
    def table(self) -> CaseTable: ...

    def __len__(self) -> int: ...

    def row_positions(self, keys: list[int] | np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Hit:
    """One retrieved case. ``score`` is the cosine similarity, or for the Euclidean protocol the
    distance between raw embeddings (smaller is nearer)."""

    rank: int
    key: int
    score: float
    label: str
    path: str
    case_id: str
    metadata: dict[str, Any] = field(default_factory=dict)


def query_vector(query: np.ndarray, *, dim: int) -> np.ndarray:
    """One float32 vector of the index's width, from a (dim,) or (1, dim) array."""
    q = np.asarray(query, dtype=np.float32)
    if q.ndim == 2 and q.shape[0] == 1:
        q = q[0]
    if q.ndim != 1 or q.shape[0] != dim:
        raise ValueError(f"The query must be one vector of {dim} numbers, got shape {q.shape}.")
    if not np.isfinite(q).all():
        raise ValueError("The query vector holds NaN or infinite values.")
    return q


def query_matrix(queries: np.ndarray, *, dim: int) -> np.ndarray:
    """A C-contiguous float32 (m, dim) block of queries, checked like ``query_vector``."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if q.ndim != 2 or q.shape[1] != dim:
        raise ValueError(f"Queries must be an (m, {dim}) array, got shape {q.shape}.")
    if not np.isfinite(q).all():
        raise ValueError("The query vectors hold NaN or infinite values.")
    return q


def excluded_keys(cases: pd.DataFrame, exclude_case_ids: Iterable[str]) -> set[int]:
    """Keys of the given cases, by scanning ``cases`` (queries use ``CaseTable`` instead)."""
    wanted = {str(c) for c in exclude_case_ids}
    if not wanted:
        return set()
    return set(cases.loc[cases["case_id"].astype(str).isin(wanted), "key"].astype(int).tolist())


def _kept(keys: np.ndarray, distances: np.ndarray, excluded: set[int]) -> list[tuple[int, float]]:
    pairs = zip(keys.tolist(), distances.tolist(), strict=True)
    if not excluded:
        return [(key, 1.0 - dist) for key, dist in pairs]
    return [(key, 1.0 - dist) for key, dist in pairs if key not in excluded]


# An i8 index rounds every unit vector to 8 bits: a quarter of f32's memory, but its order is
# coarse (recall@10 0.85 at 1M, benchmarks/perf/million.py). Its graph is asked for this many
# times k, and the stored float32 vectors put them in exact cosine order.
RERANK_FACTOR = 4


def _fetch(idx: SearchableIndex, k: int) -> int:
    return k * RERANK_FACTOR if idx.dtype == "i8" else k


def _reranked(
    idx: SearchableIndex, q: np.ndarray, pairs: list[tuple[int, float]], k: int
) -> list[tuple[int, float]]:
    """The top ``k`` of ``pairs`` by exact cosine on the raw vectors (i8 indexes only)."""
    if idx.dtype != "i8" or not pairs:
        return pairs[:k]
    keys = np.fromiter((key for key, _ in pairs), dtype=np.int64, count=len(pairs))
    vectors = idx.raw[idx.row_positions(keys)].astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    sims = (vectors @ q.astype(np.float32)) / np.where(norms == 0.0, 1.0, norms)
    order = np.lexsort((keys, -sims))[:k]
    return [(int(keys[i]), float(sims[i])) for i in order]


def cosine_top(
    idx: SearchableIndex, q: np.ndarray, *, k: int, excluded: set[int]
) -> list[tuple[int, float]]:
    """``k`` nearest (key, similarity) pairs, over-fetching past excluded keys so that ``k``
    come back whenever the index holds that many others."""
    n = len(idx)
    norm = float(np.linalg.norm(q))
    if n == 0 or k <= 0 or norm == 0.0:
        return []
    q = q / norm
    wanted = _fetch(idx, k)
    count = min(n, wanted + len(excluded))
    while True:
        matches = idx.index.search(q, count, exact=idx.exact)
        kept = _kept(matches.keys, matches.distances, excluded)
        # Exact search is complete at once; the graph may miss some, so widen until it is.
        if len(kept) >= wanted or count >= n:
            return _reranked(idx, q, kept, k)
        count = min(n, count * 2)


def cosine_top_batch(
    idx: SearchableIndex, queries: np.ndarray, *, k: int, excluded: Sequence[set[int]]
) -> list[list[tuple[int, float]]]:
    """``cosine_top`` for many queries in one usearch batch call; the rare query whose graph
    walk returned too few non-excluded keys is widened on its own."""
    n = len(idx)
    if n == 0 or k <= 0 or len(queries) == 0:
        return [[] for _ in range(len(queries))]
    norms = np.linalg.norm(queries, axis=1)
    unit = queries / np.where(norms == 0.0, 1.0, norms)[:, None]
    wanted = _fetch(idx, k)
    count = min(n, wanted + max(len(e) for e in excluded))
    matches = idx.index.search(unit, count, exact=idx.exact)
    keys, distances, found = matches.keys, matches.distances, matches.counts
    out = []
    for i, skip in enumerate(excluded):
        if norms[i] == 0.0:
            out.append([])
            continue
        kept = _kept(keys[i, : found[i]], distances[i, : found[i]], skip)
        if len(kept) < wanted and count < n:
            out.append(cosine_top(idx, unit[i], k=k, excluded=skip))
        else:
            out.append(_reranked(idx, unit[i], kept, k))
    return out


def euclidean_top(
    idx: SearchableIndex, q: np.ndarray, *, k: int, excluded: set[int]
) -> list[tuple[int, float]]:
    """``k`` nearest (key, distance) pairs by Euclidean distance between raw embeddings,
    scanning all (the teaching comparison of Pham et al. (2025); libraries here are small)."""
    if len(idx) == 0 or k <= 0:
        return []
    table = idx.table
    keys = table.keys
    dist = np.linalg.norm(idx.raw.astype(np.float64) - q.astype(np.float64), axis=1)
    if excluded:
        dist[[table.row_of[key] for key in excluded]] = np.inf
    order = np.lexsort((keys, dist))[:k]  # ties broken by key, so results are reproducible
    return [(int(keys[i]), float(dist[i])) for i in order if np.isfinite(dist[i])]


def to_hits(idx: SearchableIndex, pairs: list[tuple[int, float]]) -> list[Hit]:
    return idx.table.hits(pairs)


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive whole number, not {k!r}.")
    return int(k)


def search_vector(
    idx: SearchableIndex,
    query: np.ndarray,
    *,
    k: int = 10,
    exclude_case_ids: Iterable[str] = (),
    metric: SearchMetric = "cosine",
) -> list[Hit]:
    k = _check_k(k)
    q = query_vector(query, dim=idx.dim)
    table = idx.table
    excluded = table.excluded_keys(exclude_case_ids)
    if metric == "cosine":
        pairs = cosine_top(idx, q, k=k, excluded=excluded)
    elif metric == "euclidean":
        pairs = euclidean_top(idx, q, k=k, excluded=excluded)
    else:
        raise ValueError(f"metric must be 'cosine' or 'euclidean', not {metric!r}.")
    return table.hits(pairs)


def search_vectors(
    idx: SearchableIndex,
    queries: np.ndarray,
    *,
    k: int = 10,
    exclude_case_ids: Sequence[Iterable[str]] | None = None,
) -> list[list[Hit]]:
    """Cosine ``search_vector`` for each row of ``queries`` through one usearch batch search;
    ``exclude_case_ids[i]`` are the cases left out of query ``i`` (leave-one-case-out)."""
    k = _check_k(k)
    q = query_matrix(queries, dim=idx.dim)
    if exclude_case_ids is not None and len(exclude_case_ids) != len(q):
        raise ValueError(
            f"Give one exclusion list per query: {len(q)} queries, {len(exclude_case_ids)} lists."
        )
    table = idx.table
    excluded = (
        [table.excluded_keys(ids) for ids in exclude_case_ids]
        if exclude_case_ids is not None
        else [set() for _ in range(len(q))]
    )
    return [table.hits(pairs) for pairs in cosine_top_batch(idx, q, k=k, excluded=excluded)]
