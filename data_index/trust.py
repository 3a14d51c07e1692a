"""How far a search result can be trusted: leave-one-case-out neighbours of a library, the
"no close match" threshold, and split-conformal prediction sets over the k-NN vote.

Everything here is numpy on arrays aligned with an index's cases (plus crepes for the conformal
step), so the app, the CLI and the benchmark calibrate the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from crepes import ConformalClassifier

from data_index.audit.groups import case_or_copy_groups

DEFAULT_COVERAGE = 0.9
# The "no close match" rule flags a query whose nearest case is less similar than this
# percentile of the library's own leave-one-case-out nearest similarities: by construction about
# this share of the library's own photos would be flagged (the false-alarm rate).
LOW_SIMILARITY_PERCENTILE = 5.0
_QUANTILE_STEPS = np.linspace(0.0, 100.0, 201)  # every half percentile
_CHUNK = 1024


def _blocked(case_ids: np.ndarray, group_ids: np.ndarray | None) -> np.ndarray:
    """One id per row; rows sharing it never neighbour each other (same case or photo)."""
    cases = np.unique(np.asarray(case_ids).astype(str), return_inverse=True)[1].reshape(-1)
    if group_ids is None:
        return cases
    # Join cases and duplicate groups: a query's own case and every copy of its photo go.
    return case_or_copy_groups(group_ids=np.asarray(group_ids), case_ids=np.asarray(case_ids))


def loo_neighbours(
    vectors: np.ndarray,
    *,
    k: int,
    case_ids: np.ndarray,
    group_ids: np.ndarray | None = None,
    metric: str = "cosine",
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows, leaving out its own case (and its copies when
    ``group_ids`` is given): (rows (n, k), scores (n, k)), best first. Scores are cosine
    similarities of unit vectors, or Euclidean distances; missing neighbours have row -1."""
    x = np.asarray(vectors, dtype=np.float32)
    n = len(x)
    blocked = _blocked(case_ids, group_ids)
    k = max(1, min(int(k), n))
    rows = np.full((n, k), -1, dtype=np.int64)
    scores = np.full((n, k), np.nan, dtype=np.float64)
    sq = (x.astype(np.float64) ** 2).sum(axis=1)
    for start in range(0, n, _CHUNK):
        block = x[start : start + _CHUNK]
        dot = block.astype(np.float64) @ x.T.astype(np.float64)
        if metric == "cosine":
            cost = -dot
        else:
            cost = np.sqrt(
                np.maximum(sq[start : start + len(block), None] + sq[None, :] - 2 * dot, 0)
            )
        same = blocked[start : start + len(block), None] == blocked[None, :]
        cost[same] = np.inf
        order = np.argsort(cost, axis=1, kind="stable")[:, :k]
        best = np.take_along_axis(cost, order, axis=1)
        ok = np.isfinite(best)
        rows[start : start + len(block)] = np.where(ok, order, -1)
        value = -best if metric == "cosine" else best
        scores[start : start + len(block)] = np.where(ok, value, np.nan)
    return rows, scores


def loo_top1_similarity(
    unit: np.ndarray, *, case_ids: np.ndarray, group_ids: np.ndarray | None = None
) -> np.ndarray:
    """Each case's cosine similarity to its nearest other case (NaN when it has none)."""
    return loo_neighbours(unit, k=1, case_ids=case_ids, group_ids=group_ids)[1][:, 0]


def similarity_quantiles(values: np.ndarray) -> list[float]:
    """The distribution of leave-one-out top-1 similarities, every half percentile: small
    enough to keep in an index manifest at any library size."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if len(finite) == 0:
        return []
    return [round(float(v), 6) for v in np.percentile(finite, _QUANTILE_STEPS)]


def threshold_at(quantiles: list[float], percentile: float) -> float | None:
    """The similarity at ``percentile`` (0-100) of a stored distribution, or None when empty."""
    if not quantiles:
        return None
    return float(np.interp(percentile, _QUANTILE_STEPS, np.asarray(quantiles, dtype=np.float64)))


# --- the vote and its prediction set ----------------------------------------------------------
def vote_weights(scores: np.ndarray, *, metric: str) -> np.ndarray:
    """A neighbour's vote: its cosine similarity floored at 0, or 1/(1+distance)."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    if metric == "cosine":
        return np.maximum(s, 0.0)
    return np.where(np.isfinite(s), 1.0 / (1.0 + np.abs(s)), 0.0)


def vote_shares(
    neighbour_codes: np.ndarray, scores: np.ndarray, *, n_classes: int, metric: str
) -> np.ndarray:
    """(n, n_classes) share of the similarity-weighted vote per class; rows sum to 1 (all-zero
    weights fall back to plain counts). Codes of missing neighbours are -1."""
    codes = np.atleast_2d(np.asarray(neighbour_codes, dtype=np.int64))
    weights = np.atleast_2d(vote_weights(scores, metric=metric))
    present = codes >= 0
    counts = np.where(present, 1.0, 0.0)
    shares = np.zeros((codes.shape[0], n_classes), dtype=np.float64)
    rows = np.repeat(np.arange(codes.shape[0]), codes.shape[1])
    for w in (weights, counts):
        out = np.zeros_like(shares)
        np.add.at(out, (rows[present.ravel()], codes[present]), w[present])
        total = out.sum(axis=1, keepdims=True)
        fill = (shares.sum(axis=1) == 0) & (total[:, 0] > 0)
        shares[fill] = out[fill] / total[fill]
    return shares


@dataclass(frozen=True)
class ConformalVote:
    """Split-conformal prediction sets over the k-NN vote (crepes' ConformalClassifier).

    Nonconformity of a class is 1 - its vote share; the set at coverage c holds every class whose
    p-value is at least 1 - c, so it contains the true diagnosis for at least c of exchangeable
    queries. Unsmoothed p-values keep the sets deterministic (and slightly conservative); the
    most voted class is always in the set.
    """

    classes: tuple[str, ...]
    classifier: ConformalClassifier
    n_calibration: int

    @classmethod
    def fit(
        cls, *, shares: np.ndarray, true_codes: np.ndarray, classes: list[str]
    ) -> ConformalVote:
        shares = np.asarray(shares, dtype=np.float64)
        codes = np.asarray(true_codes, dtype=np.int64)
        if len(codes) == 0:
            raise ValueError("A prediction set needs at least one calibration case.")
        alphas = 1.0 - shares[np.arange(len(codes)), codes]
        classifier = ConformalClassifier()
        classifier.fit(alphas)
        return cls(tuple(str(c) for c in classes), classifier, len(codes))

    def predict(self, shares: np.ndarray, *, coverage: float = DEFAULT_COVERAGE) -> np.ndarray:
        """(n, n_classes) bool: which classes each query's prediction set holds."""
        if not 0.0 < coverage < 1.0:
            raise ValueError(f"Coverage must be between 0 and 1 (e.g. 0.9), not {coverage!r}.")
        alphas = 1.0 - np.atleast_2d(np.asarray(shares, dtype=np.float64))
        held = np.asarray(
            self.classifier.predict_set(alphas, confidence=coverage, smoothing=False), dtype=bool
        )
        # A vote split between classes can leave no class reaching the threshold; the most
        # voted class is kept so a set is never empty (which can only raise the coverage).
        held[np.arange(len(alphas)), np.argmin(alphas, axis=1)] = True
        return held

    def labels(self, shares: np.ndarray, *, coverage: float = DEFAULT_COVERAGE) -> list[str]:
        """One query's prediction set, most voted class first."""
        share = np.asarray(shares, dtype=np.float64).reshape(-1)
        held = self.predict(share, coverage=coverage)[0]
        order = np.argsort(-share, kind="stable")
        return [self.classes[i] for i in order if held[i]]


def calibrate_vote(
    vectors: np.ndarray,
    *,
    labels: np.ndarray,
    case_ids: np.ndarray,
    group_ids: np.ndarray | None,
    k: int,
    metric: str,
) -> ConformalVote:
    """Calibrate prediction sets on a whole library by leave-one-case-out k-NN votes."""
    classes, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    rows, scores = loo_neighbours(
        vectors, k=k, case_ids=case_ids, group_ids=group_ids, metric=metric
    )
    neighbour_codes = np.where(rows >= 0, codes[np.maximum(rows, 0)], -1)
    shares = vote_shares(neighbour_codes, scores, n_classes=len(classes), metric=metric)
    return ConformalVote.fit(shares=shares, true_codes=codes, classes=list(classes))
