"""Image-to-image retrieval on arrays only (no files, no models): the papers' query schemes.

Leave-one-out, train-test and cosine-vs-Euclidean each return a `RetrievalRun`: who queried,
what came back, and how many relevant items each query could have found, which is all
`benchmarks.metrics` and `benchmarks.records.retrieval_records` need. Rows always refer to the
caller's arrays, so a runner can map them back to `CaseLibrary.cases`. The registered
protocols that use these are in `benchmarks.protocols`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from benchmarks.search import Metric, as_matrix, exact_search


@dataclass(frozen=True)
class RetrievalRun:
    """Ranked neighbours for a set of queries, plus what the metrics need to score them."""

    protocol: str
    metric: str  # "cosine" | "euclidean": how neighbours were ranked
    query_rows: np.ndarray  # (n,) rows of the queries in the caller's arrays
    query_labels: np.ndarray  # (n,)
    neighbour_rows: np.ndarray  # (n, k) rows of the ranked neighbours, best first
    retrieved_labels: np.ndarray  # (n, k)
    scores: np.ndarray  # (n, k) cosine similarity, or Euclidean distance
    n_relevant: np.ndarray  # (n,) same-label items the query was allowed to retrieve
    index_rows: np.ndarray  # rows searched (before per-query exclusions)
    params: Mapping[str, object] = field(default_factory=dict)  # copied into every record

    @property
    def k(self) -> int:
        return int(self.retrieved_labels.shape[1])


def as_labels(labels: object, *, n: int, name: str = "labels") -> np.ndarray:
    """A 1-D label array of length n, or a ValueError saying what was wrong."""
    array = np.asarray(labels)
    if array.ndim != 1 or array.shape[0] != n:
        raise ValueError(
            f"{name} must be 1-D with {n} entries (one per row), got shape {array.shape}."
        )
    if array.dtype.kind == "f" and np.any(np.isnan(array)):
        raise ValueError(f"{name} contains NaN; give every row a label or drop it first.")
    if array.dtype == object and any(x is None for x in array.tolist()):
        raise ValueError(f"{name} contains None; give every row a value or drop it first.")
    return array


def _codes(values: np.ndarray) -> np.ndarray:
    """Dense int codes, so equality masks are cheap whatever the id type."""
    return np.unique(values, return_inverse=True)[1].reshape(-1)


def exclusion_mask(
    *,
    query_rows: np.ndarray,
    index_rows: np.ndarray,
    case_ids: np.ndarray | None = None,
    group_ids: np.ndarray | None = None,
) -> np.ndarray:
    """(n_queries, n_index) mask: the query itself, its case, and its duplicate group.

    `case_ids` and `group_ids` are aligned with all rows of the caller's arrays; a pair is
    excluded when the rows are equal or either id matches. Group ids come from the duplicate
    audit: near-identical photos filed under different cases must not count as hits.
    """
    query_rows = np.asarray(query_rows)
    index_rows = np.asarray(index_rows)
    mask = query_rows[:, None] == index_rows[None, :]
    for ids in (case_ids, group_ids):
        if ids is not None:
            codes = _codes(np.asarray(ids))
            mask |= codes[query_rows][:, None] == codes[index_rows][None, :]
    return mask


def retrieve(
    *,
    embeddings: np.ndarray,
    labels: np.ndarray,
    query_rows: np.ndarray,
    index_rows: np.ndarray,
    k: int | None,
    metric: Metric = "cosine",
    case_ids: np.ndarray | None = None,
    group_ids: np.ndarray | None = None,
    protocol: str,
    params: Mapping[str, object] | None = None,
) -> RetrievalRun:
    """Rank `index_rows` for each of `query_rows`, excluding same row, same case, same group."""
    vectors = as_matrix(embeddings, name="embeddings")
    n = vectors.shape[0]
    labels = as_labels(labels, n=n)
    case_ids = None if case_ids is None else as_labels(case_ids, n=n, name="case_ids")
    group_ids = None if group_ids is None else as_labels(group_ids, n=n, name="group_ids")
    query_rows = np.asarray(query_rows, dtype=np.int64)
    index_rows = np.asarray(index_rows, dtype=np.int64)
    if query_rows.size == 0 or index_rows.size == 0:
        raise ValueError(f"{protocol}: need at least one query and one index item.")
    mask = exclusion_mask(
        query_rows=query_rows, index_rows=index_rows, case_ids=case_ids, group_ids=group_ids
    )
    found = exact_search(
        queries=vectors[query_rows], index=vectors[index_rows], k=k, metric=metric, exclude=mask
    )
    label_codes = _codes(labels)
    same_label = label_codes[query_rows][:, None] == label_codes[index_rows][None, :]
    neighbour_rows = index_rows[found.rows]
    return RetrievalRun(
        protocol=protocol,
        metric=metric,
        query_rows=query_rows,
        query_labels=labels[query_rows],
        neighbour_rows=neighbour_rows,
        retrieved_labels=labels[neighbour_rows],
        scores=found.scores,
        n_relevant=(same_label & ~mask).sum(axis=1),
        index_rows=index_rows,
        params=dict(params or {}),
    )


def leave_one_out(
    *,
    embeddings: np.ndarray,
    labels: np.ndarray,
    k: int | None,
    metric: Metric = "cosine",
    case_ids: np.ndarray | None = None,
    group_ids: np.ndarray | None = None,
) -> RetrievalRun:
    """Every item queries the rest of one library (Pham et al. (2025)), minus its own case and
    group.

    Pham et al. (2025) ranked each of 1,300 photos against the others; here a query also cannot
    retrieve another photo of the same case, nor a near-duplicate (same `group_ids` entry),
    which would otherwise inflate top-1.
    """
    n = as_matrix(embeddings, name="embeddings").shape[0]
    rows = np.arange(n)
    return retrieve(
        embeddings=embeddings,
        labels=labels,
        query_rows=rows,
        index_rows=rows,
        k=k,
        metric=metric,
        case_ids=case_ids,
        group_ids=group_ids,
        protocol="leave-one-out",
    )


def split_rows(*, splits: np.ndarray, name: str, n: int) -> np.ndarray:
    """Rows whose split equals `name`, or a ValueError listing the splits present."""
    splits = as_labels(splits, n=n, name="splits")
    rows = np.flatnonzero(splits == name)
    if rows.size == 0:
        present = sorted({str(s) for s in splits.tolist()})
        raise ValueError(f"no rows in split {name!r}; the splits present are {present}.")
    return rows


def train_test(
    *,
    embeddings: np.ndarray,
    labels: np.ndarray,
    splits: np.ndarray,
    k: int | None,
    metric: Metric = "cosine",
    index_split: str = "train",
    query_split: str = "test",
    case_ids: np.ndarray | None = None,
    group_ids: np.ndarray | None = None,
) -> RetrievalRun:
    """Index = one split, queries = another (Mahbod et al. (2024) and Denner et al. (2024): train
    indexed, test queries).

    When case or group ids are given, an index item sharing either with the query is skipped,
    so a case (or duplicate) split across train and test cannot match itself.
    """
    n = as_matrix(embeddings, name="embeddings").shape[0]
    if index_split == query_split:
        raise ValueError(
            f"index_split and query_split are both {index_split!r}; use leave_one_out for "
            "queries drawn from the index itself."
        )
    return retrieve(
        embeddings=embeddings,
        labels=labels,
        query_rows=split_rows(splits=splits, name=query_split, n=n),
        index_rows=split_rows(splits=splits, name=index_split, n=n),
        k=k,
        metric=metric,
        case_ids=case_ids,
        group_ids=group_ids,
        protocol="train-test",
        params={"index_split": index_split, "query_split": query_split},
    )


def cosine_vs_euclidean(
    *,
    raw_embeddings: np.ndarray,
    labels: np.ndarray,
    k: int | None,
    splits: np.ndarray | None = None,
    case_ids: np.ndarray | None = None,
    group_ids: np.ndarray | None = None,
) -> dict[str, RetrievalRun]:
    """The same protocol ranked by cosine (L2-normalised) and by Euclidean distance (raw).

    Pham et al. (2025) section D: Euclidean on un-normalised vectors lets vector length (lighting,
    modality) sway the ranking. Leave-one-out unless `splits` is given (then train/test).
    When every vector has the same length (unit-normalised input, or a backbone whose raw
    output has fixed norm) the two rankings coincide by construction; both runs then carry
    params["equal_norms"] = True so a report can say so instead of crediting the metric.
    """
    vectors = as_matrix(raw_embeddings, name="raw_embeddings")
    norms = np.linalg.norm(vectors, axis=1)
    params = {
        "norm_min": float(norms.min()),
        "norm_max": float(norms.max()),
        "equal_norms": bool(np.ptp(norms) <= 1e-4 * max(float(norms.max()), 1e-12)),
    }
    runs = {}
    for metric in ("cosine", "euclidean"):
        common = {"embeddings": vectors, "labels": labels, "k": k, "metric": metric}
        ids = {"case_ids": case_ids, "group_ids": group_ids}
        if splits is None:
            run = leave_one_out(**common, **ids)
        else:
            run = train_test(**common, splits=splits, **ids)
        runs[metric] = dataclasses.replace(run, params={**run.params, **params})
    return runs
