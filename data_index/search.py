"""Nearest-case queries over an index: cosine through usearch, Euclidean on raw vectors.

The queries read an index through ``SearchableIndex`` (what ``CaseIndex`` provides), so this
module sits below ``case_index`` and never imports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from usearch.index import Index

SearchMetric = Literal["cosine", "euclidean"]
# Columns a Hit carries as fields; every other cases column goes into Hit.metadata.
_HIT_FIELDS = ("key", "path", "label", "case_id")


class SearchableIndex(Protocol):
    """What a query reads: the usearch index, the key -> case table and the raw vectors."""

    index: Index
    cases: pd.DataFrame
    raw: np.ndarray

    @property
    def dim(self) -> int: ...

    @property
    def exact(self) -> bool: ...

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
    if not np.all(np.isfinite(q)):
        raise ValueError("The query vector holds NaN or infinite values.")
    return q


def excluded_keys(cases: pd.DataFrame, exclude_case_ids: Iterable[str]) -> set[int]:
    wanted = {str(c) for c in exclude_case_ids}
    if not wanted:
        return set()
    return set(cases.loc[cases["case_id"].astype(str).isin(wanted), "key"].astype(int).tolist())


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
    count = min(n, k + len(excluded))
    while True:
        matches = idx.index.search(q, count, exact=idx.exact)
        kept = [
            (int(key), 1.0 - float(dist))
            for key, dist in zip(matches.keys, matches.distances, strict=True)
            if int(key) not in excluded
        ]
        # Exact search is complete at once; the graph may miss some, so widen until it is.
        if len(kept) >= k or count >= n:
            return kept[:k]
        count = min(n, count * 2)


def euclidean_top(
    idx: SearchableIndex, q: np.ndarray, *, k: int, excluded: set[int]
) -> list[tuple[int, float]]:
    """``k`` nearest (key, distance) pairs by Euclidean distance between raw embeddings,
    scanning all (the teaching comparison of Pham et al. (2025); libraries here are small)."""
    if len(idx) == 0 or k <= 0:
        return []
    keys = idx.cases["key"].to_numpy(np.int64)
    dist = np.linalg.norm(idx.raw.astype(np.float64) - q.astype(np.float64), axis=1)
    if excluded:
        dist[np.isin(keys, list(excluded))] = np.inf
    order = np.lexsort((keys, dist))[:k]  # ties broken by key, so results are reproducible
    return [(int(keys[i]), float(dist[i])) for i in order if np.isfinite(dist[i])]


def to_hits(idx: SearchableIndex, pairs: list[tuple[int, float]]) -> list[Hit]:
    rows = idx.cases.iloc[idx.row_positions([key for key, _ in pairs])]
    extra = [c for c in idx.cases.columns if c not in _HIT_FIELDS]
    hits = []
    # to_dict, not itertuples: metadata column names need not be Python identifiers.
    for rank, ((key, score), record) in enumerate(
        zip(pairs, rows.to_dict("records"), strict=True), start=1
    ):
        hits.append(
            Hit(
                rank=rank,
                key=key,
                score=score,
                label=str(record["label"]),
                path=str(record["path"]),
                case_id=str(record["case_id"]),
                metadata={c: record[c] for c in extra},
            )
        )
    return hits


def search_vector(
    idx: SearchableIndex,
    query: np.ndarray,
    *,
    k: int = 10,
    exclude_case_ids: Iterable[str] = (),
    metric: SearchMetric = "cosine",
) -> list[Hit]:
    if not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive whole number, not {k!r}.")
    q = query_vector(query, dim=idx.dim)
    excluded = excluded_keys(idx.cases, exclude_case_ids)
    if metric == "cosine":
        pairs = cosine_top(idx, q, k=int(k), excluded=excluded)
    elif metric == "euclidean":
        pairs = euclidean_top(idx, q, k=int(k), excluded=excluded)
    else:
        raise ValueError(f"metric must be 'cosine' or 'euclidean', not {metric!r}.")
    return to_hits(idx, pairs)
