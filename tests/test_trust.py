"""Trust signals of a search: leave-one-out neighbours, the vote, conformal prediction sets and
the "no close match" rule, on hand-made cases and seeded synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.trust.signals import coverage_records, flag_rates, folds_of, ood_scores
from data_index.trust import (
    ConformalVote,
    loo_neighbours,
    loo_top1_similarity,
    similarity_quantiles,
    threshold_at,
    vote_shares,
)


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clusters(*, n_per: int, n_classes: int, dim: int = 16, spread: float = 0.6, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    labels = np.repeat([f"c{i}" for i in range(n_classes)], n_per)
    x = np.repeat(centres, n_per, axis=0) + spread * rng.normal(size=(n_classes * n_per, dim))
    return unit_rows(x), labels


def test_vote_shares_by_hand():
    # cosine: weights are the similarities floored at 0 -> a: 0.9, b: 0.3 + 0.3
    shares = vote_shares(
        np.array([[0, 1, 1]]), np.array([[0.9, 0.3, 0.3]]), n_classes=2, metric="cosine"
    )
    assert shares[0] == pytest.approx([0.6, 0.4])
    # Euclidean: 1/(1+d) -> 1, 0.5, 0.5
    shares = vote_shares(
        np.array([[0, 1, 1]]), np.array([[0.0, 1.0, 1.0]]), n_classes=2, metric="euclidean"
    )
    assert shares[0] == pytest.approx([0.5, 0.5])
    # All similarities at or below 0: plain counts; a missing neighbour (-1) does not vote.
    shares = vote_shares(
        np.array([[0, 1, -1]]), np.array([[-0.2, 0.0, np.nan]]), n_classes=3, metric="cosine"
    )
    assert shares[0] == pytest.approx([0.5, 0.5, 0.0])


def test_loo_neighbours_leave_out_the_case_and_its_copies():
    x = unit_rows(np.array([[1, 0], [1, 0.01], [1, 0.02], [0, 1], [0.1, 1]], dtype=float))
    case_ids = np.array(["a", "a", "b", "c", "d"])
    rows, _ = loo_neighbours(x, k=2, case_ids=case_ids)
    assert rows[0].tolist() == [2, 4]  # row 1 is the same case as row 0
    groups = np.array([0, 1, 0, 3, 4])  # rows 0 and 2 are copies of one photo
    rows, sims = loo_neighbours(x, k=2, case_ids=case_ids, group_ids=groups)
    assert rows[0].tolist() == [4, 3] and sims[0, 0] > sims[0, 1]
    # Nothing left: row -1 and NaN.
    rows, sims = loo_neighbours(x[:2], k=1, case_ids=np.array(["a", "a"]))
    assert rows.tolist() == [[-1], [-1]] and np.isnan(sims).all()
    # Brute force reference for top-1.
    y, _ = clusters(n_per=20, n_classes=3, seed=3)
    ids = np.arange(len(y)).astype(str)
    sims = y @ y.T
    np.fill_diagonal(sims, -np.inf)
    assert loo_top1_similarity(y, case_ids=ids) == pytest.approx(sims.max(axis=1), abs=1e-6)


def test_euclidean_neighbours_are_nearest_by_distance():
    x = np.array([[0.0, 0], [3, 0], [1, 0], [10, 0]], dtype=np.float32)
    rows, dist = loo_neighbours(x, k=2, case_ids=np.arange(4).astype(str), metric="euclidean")
    assert rows[0].tolist() == [2, 1] and dist[0] == pytest.approx([1.0, 3.0])


def test_threshold_from_quantiles():
    q = similarity_quantiles(np.linspace(0.0, 1.0, 1001))
    assert len(q) == 201 and threshold_at(q, 5.0) == pytest.approx(0.05)
    assert threshold_at([], 5.0) is None and similarity_quantiles(np.array([np.nan])) == []


def test_conformal_sets_reach_their_coverage_on_exchangeable_queries():
    rng = np.random.default_rng(1)
    n, n_classes = 4000, 5
    true = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), true] += 1.0  # an informative but imperfect vote
    shares = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    classes = [f"c{i}" for i in range(n_classes)]
    vote = ConformalVote.fit(shares=shares[:2000], true_codes=true[:2000], classes=classes)
    sizes = []
    for coverage in (0.8, 0.9, 0.95):
        held = vote.predict(shares[2000:], coverage=coverage)
        assert held[np.arange(2000), true[2000:]].mean() >= coverage - 0.02
        sizes.append(held.sum(axis=1).mean())
    assert sizes == sorted(sizes) and sizes[0] < n_classes
    assert vote.labels(np.array([0.7, 0.2, 0.05, 0.03, 0.02]), coverage=0.5) == ["c0"]
    with pytest.raises(ValueError, match="between 0 and 1"):
        vote.predict(shares[:1], coverage=1.5)


def test_cross_fitted_coverage_on_clustered_library():
    x, labels = clusters(n_per=60, n_classes=4, spread=1.2, seed=2)
    ids = np.arange(len(x)).astype(str)
    records = coverage_records(unit=x, labels=labels, case_ids=ids, group_ids=np.arange(len(x)))
    for r in records:
        assert r["coverage"] >= r["nominal_coverage"] - 0.02
        assert 1 <= r["mean_set_size"] <= 4


def test_folds_keep_copies_together():
    case_ids = np.array(["a", "b", "c", "d", "e", "f"])
    groups = np.array([0, 0, 2, 3, 3, 5])
    folds = folds_of(case_ids=case_ids, group_ids=groups, n_folds=3)
    assert folds[0] == folds[1] and folds[3] == folds[4]


def test_no_close_match_flags_outside_queries_and_few_own():
    x, labels = clusters(n_per=80, n_classes=3, spread=0.5, seed=4)
    ids = np.arange(len(x)).astype(str)
    groups = np.arange(len(x))
    outside, _ = clusters(n_per=50, n_classes=2, spread=0.5, seed=99)  # other centres
    scores = ood_scores(library=x, labels=labels, case_ids=ids, group_ids=groups, queries=outside)
    folds = folds_of(case_ids=ids, group_ids=groups)
    for own, out in scores.values():
        rates = flag_rates(own, out, folds=folds)
        assert rates["false_alarm_rate"] <= 0.12
        assert rates["detection_rate"] >= 0.8
