"""Exact nearest-neighbour search in numpy, with exclusion masks, for the benchmark protocols.

Libraries here hold at most a few thousand items, so a dense similarity matrix is exact and
cheap. Scores follow `data_index.Hit`: cosine similarity (higher = closer) for "cosine",
Euclidean distance (lower = closer) for "euclidean". A later integration may route the same
call through the usearch index; protocols only rely on `exact_search`'s signature and result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Metric = Literal["cosine", "euclidean"]
METRICS: tuple[str, ...] = ("cosine", "euclidean")

# Rows of queries scored at once: bounds the dense block to chunk x n_index float64s.
_CHUNK = 1024


@dataclass(frozen=True)
class Neighbours:
    """Ranked neighbours: rows into the index (n_queries, k) and their scores, best first."""

    rows: np.ndarray
    scores: np.ndarray
    metric: str


def as_matrix(vectors: np.ndarray, *, name: str) -> np.ndarray:
    """A finite 2-D float64 copy of `vectors`, or a ValueError naming `name`."""
    array = np.asarray(vectors)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n, dim), got shape {array.shape}.")
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}.")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf; re-embed those images before benchmarking.")
    return array


def l2_normalise(vectors: np.ndarray, *, name: str = "vectors") -> np.ndarray:
    """Rows scaled to unit L2 norm (float64); a zero row has no direction and is an error."""
    array = as_matrix(vectors, name=name)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if np.any(norms == 0):
        row = int(np.flatnonzero(norms[:, 0] == 0)[0])
        raise ValueError(f"{name} row {row} is all zeros, so its cosine similarity is undefined.")
    return array / norms


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
    return metric


def exact_search(
    *,
    queries: np.ndarray,
    index: np.ndarray,
    k: int | None,
    metric: Metric = "cosine",
    exclude: np.ndarray | None = None,
) -> Neighbours:
    """Top-k index rows per query by cosine (on L2-normalised copies) or Euclidean (raw) distance.

    `exclude` is a boolean (n_queries, n_index) mask of pairs that may not be returned (the
    query itself, its case, its duplicate group). `k=None` returns as many neighbours as every
    query has candidates. Equal scores keep index order, so results are deterministic.
    """
    check_metric(metric)
    if metric == "cosine":
        q, x = l2_normalise(queries, name="queries"), l2_normalise(index, name="index")
    else:
        q, x = as_matrix(queries, name="queries"), as_matrix(index, name="index")
    if q.shape[1] != x.shape[1]:
        raise ValueError(
            f"queries have dim {q.shape[1]} but the index has dim {x.shape[1]}; "
            "embed both with the same backbone."
        )
    if exclude is not None:
        exclude = np.asarray(exclude)
        if exclude.shape != (q.shape[0], x.shape[0]) or exclude.dtype != bool:
            raise ValueError(
                f"exclude must be a boolean mask of shape {(q.shape[0], x.shape[0])}, "
                f"got {exclude.dtype} {exclude.shape}."
            )
    available = x.shape[0] - (exclude.sum(axis=1) if exclude is not None else 0)
    fewest = int(np.min(available))
    if k is None:
        k = fewest
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive int or None, got {k!r}.")
    if k > fewest:
        q_row = int(np.argmin(available))
        raise ValueError(
            f"k={k} but query {q_row} has only {fewest} candidates left after exclusions; "
            "lower k or add items to the index."
        )
    x_sq = (x * x).sum(axis=1)
    rows = np.empty((q.shape[0], k), dtype=np.int64)
    scores = np.empty((q.shape[0], k), dtype=np.float64)
    for start in range(0, q.shape[0], _CHUNK):
        block = q[start : start + _CHUNK]
        dots = block @ x.T
        if metric == "cosine":
            key = -dots  # sort ascending on the negated similarity
        else:
            key = np.maximum((block * block).sum(axis=1)[:, None] + x_sq[None, :] - 2 * dots, 0.0)
        if exclude is not None:
            key[exclude[start : start + _CHUNK]] = np.inf
        order = np.argsort(key, axis=1, kind="stable")[:, :k]
        picked = np.take_along_axis(key, order, axis=1)
        rows[start : start + len(block)] = order
        scores[start : start + len(block)] = -picked if metric == "cosine" else np.sqrt(picked)
    return Neighbours(rows=rows, scores=scores, metric=metric)
