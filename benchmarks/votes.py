"""Label votes over ranked neighbours and the confusion matrix: small pure numpy functions.

Same input convention as `benchmarks.metrics`: `retrieved_labels` (n_queries, width) labels of
ranked neighbours, best first; `query_labels` (n_queries,).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from benchmarks.metrics import relevance

Ties = Literal["miss", "count"]


def _vote_counts(top: np.ndarray, extra: np.ndarray | None = None):
    """Per-row label counts: (codes of top, counts (n, n_labels), vocabulary, codes of extra)."""
    pool = top.ravel() if extra is None else np.concatenate([top.ravel(), extra.ravel()])
    vocab, codes = np.unique(pool, return_inverse=True)
    top_codes = codes[: top.size].reshape(top.shape)
    n, n_labels = top.shape[0], vocab.size
    counts = np.zeros((n, n_labels), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(n), top.shape[1]), top_codes.ravel()), 1)
    extra_codes = None if extra is None else codes[top.size :]
    return top_codes, counts, vocab, extra_codes


def majority_vote_correct_per_query(
    *,
    retrieved_labels: np.ndarray,
    query_labels: np.ndarray,
    k: int,
    ties: Ties = "miss",
) -> np.ndarray:
    """1.0 where the query's label wins the vote among the top k neighbours, else 0.0.

    Tie rule: when several labels share the largest count, a query whose label is one of them
    is NOT correct under ties="miss" (the default: the vote did not name it); ties="count"
    counts it correct, which is what Mahbod et al.'s (2024) code does (`mMV_k` returns 1 for any
    tied
    majority containing the query label).
    """
    if ties not in ("miss", "count"):
        raise ValueError(f"ties must be 'miss' or 'count', got {ties!r}.")
    # relevance() validates shapes and k.
    relevance(retrieved_labels=retrieved_labels, query_labels=query_labels, k=k)
    top = np.asarray(retrieved_labels)[:, :k]
    queries = np.asarray(query_labels)
    _, counts, _, query_codes = _vote_counts(top, queries)
    best = counts.max(axis=1)
    own = counts[np.arange(len(queries)), query_codes]
    n_winners = (counts == best[:, None]).sum(axis=1)
    won = own == best
    if ties == "miss":
        won &= n_winners == 1
    return won.astype(float)


def majority_vote_at_k(
    *,
    retrieved_labels: np.ndarray,
    query_labels: np.ndarray,
    k: int,
    ties: Ties = "miss",
) -> float:
    """mMV@k = (1/|Q|) sum_q 1{L_q = MV(top k of q)} (Mahbod et al. (2024), equation 2; reported at
    k = 5).

    MV is the most frequent label among the top k. See `majority_vote_correct_per_query` for
    the tie rule: ties="count" reproduces Mahbod et al.'s (2024) code, the default "miss" is
    stricter.
    """
    return float(
        majority_vote_correct_per_query(
            retrieved_labels=retrieved_labels, query_labels=query_labels, k=k, ties=ties
        ).mean()
    )


def vote_labels(*, retrieved_labels: np.ndarray, k: int) -> np.ndarray:
    """Predicted label per query: majority of the top k, ties broken by the best-ranked label.

    A kNN classifier must name one label, so a tie goes to whichever tied label appears first
    in the ranking (the nearest neighbour among the tied labels).
    """
    top = np.asarray(retrieved_labels)
    if top.ndim != 2 or not 1 <= k <= top.shape[1]:
        raise ValueError(
            f"retrieved_labels must be 2-D with at least k={k} columns, got shape {top.shape}."
        )
    top = top[:, :k]
    top_codes, counts, vocab, _ = _vote_counts(top)
    n, n_labels = counts.shape
    # First rank at which each label appears (k where it never does).
    first = np.full((n, n_labels), k, dtype=np.int64)
    rows = np.repeat(np.arange(n), k)
    ranks = np.tile(np.arange(k), n)
    np.minimum.at(first, (rows, top_codes.ravel()), ranks)
    # Lexicographic: most votes, then earliest first appearance.
    key = counts * (k + 1) + (k - first)
    return vocab[np.argmax(key, axis=1)]


@dataclass(frozen=True)
class VoteShare:
    """One label's share of a neighbour list: "7 of 10: ringworm"."""

    label: object
    count: int
    total: int
    weight: float  # share of the (non-negative) similarity mass, in [0, 1]
    best_rank: int  # 1-based rank of this label's nearest neighbour

    def describe(self) -> str:
        return f"{self.count} of {self.total}: {self.label}"


def vote_shares(
    *, labels: Sequence, similarities: Sequence[float] | np.ndarray | None = None
) -> list[VoteShare]:
    """Label shares of one query's ranked neighbours, strongest first, for the app's summary.

    Weight = sum of the label's similarities / sum of all, with similarities clipped at 0 so an
    anti-correlated neighbour cannot cancel a close one; plain counts when `similarities` is
    None or all clip to 0. Pass similarities (higher = closer), never distances. Order: weight,
    then count, then the rank of the label's nearest neighbour.
    """
    labels = list(labels)
    if not labels:
        return []
    if similarities is None:
        sims = np.ones(len(labels))
    else:
        sims = np.asarray(similarities, dtype=float)
        if sims.shape != (len(labels),):
            raise ValueError(
                f"similarities must give one score per label ({len(labels)}), got shape "
                f"{sims.shape}."
            )
        if not np.all(np.isfinite(sims)):
            raise ValueError("similarities must be finite numbers; got NaN or inf.")
    weights = np.clip(sims, 0.0, None)
    if weights.sum() == 0:
        weights = np.ones(len(labels))
    total_weight = weights.sum()
    shares: dict[object, list] = {}
    for rank, (label, w) in enumerate(zip(labels, weights, strict=True), start=1):
        entry = shares.setdefault(label, [0, 0.0, rank])
        entry[0] += 1
        entry[1] += float(w)
    out = [
        VoteShare(label=label, count=c, total=len(labels), weight=w / total_weight, best_rank=r)
        for label, (c, w, r) in shares.items()
    ]
    return sorted(out, key=lambda s: (-s.weight, -s.count, s.best_rank))


def confusion_matrix(
    *, true_labels: np.ndarray, predicted_labels: np.ndarray, labels: Sequence | None = None
) -> tuple[np.ndarray, list]:
    """Counts matrix[i, j] = queries of true label labels[i] predicted as labels[j].

    `labels` defaults to the sorted union of true and predicted labels, so a class that only
    the index holds still gets a column. Returns (matrix, labels).
    """
    true = np.asarray(true_labels)
    pred = np.asarray(predicted_labels)
    if true.shape != pred.shape or true.ndim != 1:
        raise ValueError(
            f"true_labels {true.shape} and predicted_labels {pred.shape} must be 1-D and aligned."
        )
    names = np.unique(np.concatenate([true, pred])).tolist() if labels is None else list(labels)
    position = {name: i for i, name in enumerate(names)}
    missing = sorted({x for x in [*true.tolist(), *pred.tolist()] if x not in position}, key=str)
    if missing:
        raise ValueError(f"labels {missing} occur in the data but not in `labels`; add them.")
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    for t, p in zip(true.tolist(), pred.tolist(), strict=True):
        matrix[position[t], position[p]] += 1
    return matrix, names


def top1_confusion_matrix(
    *, retrieved_labels: np.ndarray, query_labels: np.ndarray, labels: Sequence | None = None
) -> tuple[np.ndarray, list]:
    """Confusion matrix of the nearest neighbour's label against the query's label."""
    relevance(retrieved_labels=retrieved_labels, query_labels=query_labels, k=1)
    return confusion_matrix(
        true_labels=np.asarray(query_labels),
        predicted_labels=np.asarray(retrieved_labels)[:, 0],
        labels=labels,
    )
