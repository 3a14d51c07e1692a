"""Retrieval metrics over ranked neighbour lists: small pure numpy functions.

Convention shared by every function here:
- `retrieved_labels`: (n_queries, width) array, row q = labels of the index items ranked for
  query q, best first. Labels may be ints or strings; a metric at `k` reads the first k columns.
- `query_labels`: (n_queries,) array; an index item is relevant when its label equals the query's.
- `n_relevant`: (n_queries,) ints, the number of relevant items the index holds for each query
  (after exclusions), needed only where the normaliser is "all relevant items".

Per-query functions (`*_per_query`) return float arrays so a runner can average them however it
likes (micro, per class, macro); the short names return the micro mean. Metrics whose
normaliser is the number of relevant items (standard AP, R-precision) are undefined for a
query with none in the index: they give NaN for that query and the means skip it.
Votes, per-class tables and the confusion matrix live in `benchmarks.votes`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Average = Literal["micro", "macro"]


def _check(
    retrieved_labels: np.ndarray, query_labels: np.ndarray, k: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    retrieved = np.asarray(retrieved_labels)
    queries = np.asarray(query_labels)
    if retrieved.ndim != 2:
        raise ValueError(
            f"retrieved_labels must be 2-D (n_queries, k), got shape {retrieved.shape}; "
            "stack one row of ranked neighbour labels per query."
        )
    if queries.ndim != 1 or queries.shape[0] != retrieved.shape[0]:
        raise ValueError(
            f"query_labels must be 1-D with one label per row of retrieved_labels "
            f"({retrieved.shape[0]}), got shape {queries.shape}."
        )
    width = retrieved.shape[1]
    if k is None:
        k = width
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"k must be an int, got {type(k).__name__}.")
    if not 1 <= k <= width:
        raise ValueError(
            f"k={k} is outside 1..{width}: retrieve at least k neighbours per query, "
            "or ask for a smaller k."
        )
    return retrieved, queries, int(k)


def relevance(
    *, retrieved_labels: np.ndarray, query_labels: np.ndarray, k: int | None = None
) -> np.ndarray:
    """Boolean (n_queries, k) matrix rel[q, i] = 1{label of rank i+1 == label of query q}."""
    retrieved, queries, k = _check(retrieved_labels, query_labels, k)
    return retrieved[:, :k] == queries[:, None]


def _n_relevant(
    n_relevant: np.ndarray | None, rel: np.ndarray, width_rel: np.ndarray
) -> np.ndarray:
    if n_relevant is None:
        raise ValueError(
            "n_relevant is required: pass the number of relevant items in the index per query "
            "(benchmarks.retrieval runs carry it as run.n_relevant)."
        )
    counts = np.asarray(n_relevant)
    if counts.shape != (rel.shape[0],):
        raise ValueError(
            f"n_relevant must have one count per query ({rel.shape[0]}), got shape {counts.shape}."
        )
    if not np.issubdtype(counts.dtype, np.integer):
        raise TypeError(f"n_relevant must hold integers, got dtype {counts.dtype}.")
    short = counts < width_rel
    if np.any(short):
        q = int(np.flatnonzero(short)[0])
        raise ValueError(
            f"query {q} has {int(width_rel[q])} relevant items among its retrieved neighbours but "
            f"n_relevant says {int(counts[q])}: the counts do not match the index."
        )
    return counts


def nanmean(values: np.ndarray) -> float:
    """Mean over defined (non-NaN) entries; NaN when none is defined."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


def hit_at_k_per_query(
    *, retrieved_labels: np.ndarray, query_labels: np.ndarray, k: int
) -> np.ndarray:
    """1.0 where at least one of the top k neighbours shares the query's label, else 0.0."""
    return (
        relevance(retrieved_labels=retrieved_labels, query_labels=query_labels, k=k)
        .any(axis=1)
        .astype(float)
    )


def hit_rate_at_k(*, retrieved_labels: np.ndarray, query_labels: np.ndarray, k: int) -> float:
    """Hit rate HR@k = (1/|Q|) sum_q 1{exists i <= k: rel_q(i) = 1}.

    Pham et al. (2025) calls it "Top-K accuracy" (share of queries with at least one image of the
    query's class in the top K); Mahbod et al. (2024) calls it ACC@k (its equation 3). Not a
    precision.
    """
    return float(
        hit_at_k_per_query(retrieved_labels=retrieved_labels, query_labels=query_labels, k=k).mean()
    )


def precision_at_k_per_query(
    *, retrieved_labels: np.ndarray, query_labels: np.ndarray, k: int
) -> np.ndarray:
    """P_q@k = (1/k) sum_{i<=k} rel_q(i), one value per query."""
    rel = relevance(retrieved_labels=retrieved_labels, query_labels=query_labels, k=k)
    return rel.mean(axis=1)


def precision_at_k_class_capped_per_query(
    *, retrieved_labels: np.ndarray, query_labels: np.ndarray, k: int, n_in_index: np.ndarray
) -> np.ndarray:
    """P_q@k as Denner et al.'s (2024) code computes it: hits in the top k / min(k, C_q).

    C_q = n_in_index[q], the index images of the query's class, so a class with fewer than k
    images can still reach 1.0; NaN where C_q = 0 (nothing to find).
    """
    rel = relevance(retrieved_labels=retrieved_labels, query_labels=query_labels, k=k)
    counts = _n_relevant(n_in_index, rel, rel.sum(axis=1))
    norm = np.minimum(k, counts).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, rel.sum(axis=1) / np.where(norm > 0, norm, 1.0), np.nan)


def precision_at_k(
    *,
    retrieved_labels: np.ndarray,
    query_labels: np.ndarray,
    k: int,
    average: Average = "micro",
) -> float:
    """Precision at k as in Denner et al. (2024) (its equation 1), micro or macro averaged.

    micro: P@k = (1/|Q|) sum_q (1/k) sum_{i<=k} rel_q(i) (every query weighs the same);
    macro: mean over query classes c of the micro P@k of the queries labelled c (every class
    weighs the same, so rare classes count as much as common ones).
    """
    per_query = precision_at_k_per_query(
        retrieved_labels=retrieved_labels, query_labels=query_labels, k=k
    )
    if average == "micro":
        return float(per_query.mean())
    if average == "macro":
        return macro_mean(per_query=per_query, query_labels=query_labels)
    raise ValueError(f"average must be 'micro' or 'macro', got {average!r}.")


def _precision_at_each_rank(rel: np.ndarray) -> np.ndarray:
    ranks = np.arange(1, rel.shape[1] + 1)
    return np.cumsum(rel, axis=1) / ranks


def average_precision_at_k_per_query(
    *,
    retrieved_labels: np.ndarray,
    query_labels: np.ndarray,
    k: int,
    n_relevant: np.ndarray,
) -> np.ndarray:
    """Standard AP@k = (1/min(k, R_q)) sum_{i<=k} P_q@i * rel_q(i); NaN where R_q = 0.

    R_q = n_relevant[q], the relevant items in the whole index, so a ranking that misses
    relevant items it had room for is penalised and AP@k = 1 only for a perfect top k.
    """
    rel = relevance(retrieved_labels=retrieved_labels, query_labels=query_labels, k=k)
    counts = _n_relevant(n_relevant, rel, rel.sum(axis=1))
    summed = (_precision_at_each_rank(rel) * rel).sum(axis=1)
    norm = np.minimum(k, counts).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, summed / np.where(norm > 0, norm, 1.0), np.nan)


def mean_average_precision_at_k(
    *,
    retrieved_labels: np.ndarray,
    query_labels: np.ndarray,
    k: int,
    n_relevant: np.ndarray,
) -> float:
    """Standard mAP@k: mean over queries of AP@k normalised by min(k, R_q), skipping R_q = 0."""
    return nanmean(
        average_precision_at_k_per_query(
            retrieved_labels=retrieved_labels,
            query_labels=query_labels,
            k=k,
            n_relevant=n_relevant,
        )
    )


def average_precision_at_k_hits_normalised_per_query(
    *, retrieved_labels: np.ndarray, query_labels: np.ndarray, k: int
) -> np.ndarray:
    """AP@k as Mahbod et al. (2024) computes it: (1/H_q) sum_{i<=k} P_q@i * rel_q(i), 0 where H_q =
    0.

    H_q = sum_{i<=k} rel_q(i) is the number of relevant items *retrieved in the top k*. The
    paper's equation 1 writes the normaliser as 1/|R_q| with R_q "the number of relevant
    images for query q"; its code (masih4/MedImageRetrieval metric.py, `ap_k`) divides by the
    hits inside the top k, and this function follows the code. Consequence: one hit at rank 1
    and nothing else scores 1.0, more than [hit, hit, miss, miss, hit] (0.867).
    """
    rel = relevance(retrieved_labels=retrieved_labels, query_labels=query_labels, k=k)
    hits = rel.sum(axis=1)
    summed = (_precision_at_each_rank(rel) * rel).sum(axis=1)
    return np.where(hits > 0, summed / np.maximum(hits, 1), 0.0)


def mean_average_precision_at_k_hits_normalised(
    *, retrieved_labels: np.ndarray, query_labels: np.ndarray, k: int
) -> float:
    """mAP@k of Mahbod et al. (2024) equation 1 (normaliser = relevant items within the top k).

    mAP@k = (1/|Q|) sum_q (1/H_q) sum_{i<=k} P_q@i * rel_q(i), queries with no hit count 0.
    Mahbod et al. (2024) reports it at k = 5; compare with `mean_average_precision_at_k` for the
    standard one.
    """
    return float(
        average_precision_at_k_hits_normalised_per_query(
            retrieved_labels=retrieved_labels, query_labels=query_labels, k=k
        ).mean()
    )


def r_precision_per_query(
    *, retrieved_labels: np.ndarray, query_labels: np.ndarray, n_relevant: np.ndarray
) -> np.ndarray:
    """R-precision_q = P_q@R_q, the precision at rank R_q = n_relevant[q]; NaN where R_q = 0.

    Needs at least max(R_q) retrieved columns: precision at R equals recall at R there.
    """
    retrieved, queries, width = _check(retrieved_labels, query_labels, None)
    rel = retrieved == queries[:, None]
    counts = _n_relevant(n_relevant, rel, np.zeros(rel.shape[0], dtype=int))
    if counts.max(initial=0) > width:
        q = int(np.argmax(counts))
        raise ValueError(
            f"R-precision needs {int(counts[q])} ranked neighbours for query {q} but only {width} "
            "were retrieved: retrieve at least max(n_relevant) neighbours per query."
        )
    cum = np.concatenate([np.zeros((rel.shape[0], 1)), np.cumsum(rel, axis=1)], axis=1)
    hits_at_r = cum[np.arange(rel.shape[0]), counts]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, hits_at_r / np.maximum(counts, 1), np.nan)


def r_precision(
    *, retrieved_labels: np.ndarray, query_labels: np.ndarray, n_relevant: np.ndarray
) -> float:
    """Mean R-precision over queries that have at least one relevant item in the index."""
    return nanmean(
        r_precision_per_query(
            retrieved_labels=retrieved_labels, query_labels=query_labels, n_relevant=n_relevant
        )
    )


def reciprocal_rank_per_query(
    *, retrieved_labels: np.ndarray, query_labels: np.ndarray, k: int | None = None
) -> np.ndarray:
    """1 / (rank of the first relevant neighbour) within the top k, 0 when none is there."""
    rel = relevance(retrieved_labels=retrieved_labels, query_labels=query_labels, k=k)
    first = np.argmax(rel, axis=1)
    return np.where(rel.any(axis=1), 1.0 / (first + 1), 0.0)


def mean_reciprocal_rank(
    *, retrieved_labels: np.ndarray, query_labels: np.ndarray, k: int | None = None
) -> float:
    """MRR@k = (1/|Q|) sum_q 1/rank_q, with 1/rank_q = 0 when no relevant item is in the top k."""
    return float(
        reciprocal_rank_per_query(
            retrieved_labels=retrieved_labels, query_labels=query_labels, k=k
        ).mean()
    )


def per_class_mean(*, per_query: np.ndarray, query_labels: np.ndarray) -> dict:
    """Mean of a per-query metric over the queries of each class: {label: mean}, NaN-skipping.

    Works with any `*_per_query` output, giving per-class hit rate, precision, AP and so on.
    """
    values = np.asarray(per_query, dtype=float)
    labels = np.asarray(query_labels)
    if values.shape != labels.shape or values.ndim != 1:
        raise ValueError(
            f"per_query {values.shape} and query_labels {labels.shape} must be 1-D and aligned."
        )
    # tolist() turns numpy scalars into Python ones so the dict serialises to JSON as it is.
    return {label: nanmean(values[labels == label]) for label in np.unique(labels).tolist()}


def macro_mean(*, per_query: np.ndarray, query_labels: np.ndarray) -> float:
    """Mean over classes of the per-class means (Denner et al.'s (2024) class-wise "macro"
    average)."""
    return nanmean(
        np.array(list(per_class_mean(per_query=per_query, query_labels=query_labels).values()))
    )
