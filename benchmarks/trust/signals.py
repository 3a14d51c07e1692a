"""How honest the search's trust signals are: prediction-set coverage and "no close match"
scores, measured on embedded libraries with pure numpy (and crepes, through data_index.trust).

Cross-fitted: cases (joined with every copy of their photo) are split into folds; each fold's
queries are scored with what the other folds calibrate, so no query calibrates itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.covariance import LedoitWolf

from data_index.audit.groups import case_or_copy_groups
from data_index.trust import (
    LOW_SIMILARITY_PERCENTILE,
    ConformalVote,
    loo_neighbours,
    vote_shares,
)

COVERAGES: tuple[float, ...] = (0.8, 0.9, 0.95)
N_FOLDS = 5
SEED = 0
OOD_SCORES: tuple[str, ...] = ("top-1 similarity", "k-th similarity", "class Mahalanobis")


def folds_of(*, case_ids: np.ndarray, group_ids: np.ndarray, n_folds: int = N_FOLDS) -> np.ndarray:
    """A fold number per row; a case and every copy of its photo share one fold (seeded)."""
    joined = case_or_copy_groups(group_ids=group_ids, case_ids=case_ids)
    units = np.unique(joined)
    rng = np.random.default_rng(SEED)
    fold_of_unit = dict(
        zip(rng.permutation(units).tolist(), np.arange(len(units)) % n_folds, strict=True)
    )
    return np.array([fold_of_unit[u] for u in joined.tolist()], dtype=np.int64)


def coverage_records(
    *,
    unit: np.ndarray,
    labels: np.ndarray,
    case_ids: np.ndarray,
    group_ids: np.ndarray,
    k: int = 10,
    coverages: Sequence[float] = COVERAGES,
) -> list[dict]:
    """Empirical coverage and mean set size of split-conformal prediction sets over the
    similarity-weighted k-NN vote, per nominal coverage."""
    classes, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    rows, scores = loo_neighbours(unit, k=k, case_ids=case_ids, group_ids=group_ids)
    neighbour_codes = np.where(rows >= 0, codes[np.maximum(rows, 0)], -1)
    shares = vote_shares(neighbour_codes, scores, n_classes=len(classes), metric="cosine")
    folds = folds_of(case_ids=case_ids, group_ids=group_ids)
    held = {c: np.zeros((len(codes), len(classes)), dtype=bool) for c in coverages}
    for f in np.unique(folds):
        test, cal = folds == f, folds != f
        vote = ConformalVote.fit(shares=shares[cal], true_codes=codes[cal], classes=list(classes))
        for c in coverages:
            held[c][test] = vote.predict(shares[test], coverage=c)
    out = []
    for c in coverages:
        sets = held[c]
        out.append(
            {
                "nominal_coverage": c,
                "k": k,
                "coverage": float(sets[np.arange(len(codes)), codes].mean()),
                "mean_set_size": float(sets.sum(axis=1).mean()),
                "empty_sets": float((sets.sum(axis=1) == 0).mean()),
                "n_classes": len(classes),
                "n_queries": len(codes),
            }
        )
    return out


def _mahalanobis_fit(x: np.ndarray, labels: np.ndarray):
    """Class means and one shrunk shared precision (Lee et al. (2018)-style class-conditional
    Gaussians), fitted on unit vectors."""
    classes = np.unique(labels)
    means = np.stack([x[labels == c].mean(axis=0) for c in classes])
    centred = x - means[np.searchsorted(classes, labels)]
    precision = LedoitWolf().fit(centred).precision_
    return means, precision


def _mahalanobis_similarity(x: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Minus the smallest class Mahalanobis distance: larger is more like the library."""
    best = np.full(len(x), np.inf)
    for mean in means:
        d = x - mean
        best = np.minimum(best, ((d @ precision) * d).sum(axis=1))  # BLAS, not einsum loops
    return -np.sqrt(np.maximum(best, 0.0))


def _nearest_to_library(query: np.ndarray, library: np.ndarray, *, k: int) -> np.ndarray:
    """(n_query, k) cosine similarities to the nearest library vectors, best first."""
    sims = query.astype(np.float64) @ library.T.astype(np.float64)
    k = min(k, library.shape[0])
    return -np.sort(-sims, axis=1)[:, :k]


def ood_scores(
    *,
    library: np.ndarray,
    labels: np.ndarray,
    case_ids: np.ndarray,
    group_ids: np.ndarray,
    queries: np.ndarray,
    k: int = 10,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per score (larger means closer to the library): (the library's own cross-fitted
    leave-one-case-out scores, the outside queries' scores)."""
    _, loo = loo_neighbours(library, k=k, case_ids=case_ids, group_ids=group_ids)
    outside = _nearest_to_library(queries, library, k=k)
    scores = {
        "top-1 similarity": (loo[:, 0], outside[:, 0]),
        "k-th similarity": (loo[:, -1], outside[:, -1]),
    }
    folds = folds_of(case_ids=case_ids, group_ids=group_ids)
    own = np.zeros(len(library))
    labels = np.asarray(labels).astype(str)
    for f in np.unique(folds):
        means, precision = _mahalanobis_fit(library[folds != f], labels[folds != f])
        own[folds == f] = _mahalanobis_similarity(library[folds == f], means, precision)
    means, precision = _mahalanobis_fit(library, labels)
    scores["class Mahalanobis"] = (own, _mahalanobis_similarity(queries, means, precision))
    return scores


def flag_rates(
    own: np.ndarray,
    outside: np.ndarray,
    *,
    folds: np.ndarray,
    percentile: float = LOW_SIMILARITY_PERCENTILE,
) -> dict[str, float]:
    """The rule "flag a query scoring below ``percentile`` of the library's own scores": its
    false-alarm rate on the library's own queries (each fold judged by a threshold from the
    other folds) and its detection rate on outside queries (threshold from the whole library)."""
    own = np.asarray(own, dtype=np.float64)
    alarms = np.zeros(len(own), dtype=bool)
    for f in np.unique(folds):
        rest = own[(folds != f) & np.isfinite(own)]
        alarms[folds == f] = own[folds == f] < np.percentile(rest, percentile)
    threshold = float(np.percentile(own[np.isfinite(own)], percentile))
    outside = np.asarray(outside, dtype=np.float64)
    return {
        "threshold": threshold,
        "false_alarm_rate": float(alarms[np.isfinite(own)].mean()),
        "detection_rate": float((outside < threshold).mean()) if len(outside) else float("nan"),
    }
