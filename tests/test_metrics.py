"""Retrieval metrics against plain-Python references and hand-computed cases."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from benchmarks import metrics as M
from benchmarks import votes as V

# ---------------------------------------------------------------- brute-force references


def ref_hit(ranked, label, k):
    return float(label in list(ranked[:k]))


def ref_precision(ranked, label, k):
    return sum(x == label for x in ranked[:k]) / k


def ref_ap(ranked, label, k, norm):
    """sum of P@i at each relevant rank i <= k, divided by `norm` (0 if norm is 0)."""
    total, hits = 0.0, 0
    for i, x in enumerate(ranked[:k], start=1):
        if x == label:
            hits += 1
            total += hits / i
    return total / norm if norm else 0.0


def ref_mmv(ranked, label, k, ties):
    counts = Counter(ranked[:k])
    best = max(counts.values())
    winners = [lab for lab, c in counts.items() if c == best]
    if ties == "count":
        return float(label in winners)
    return float(winners == [label])


def ref_rr(ranked, label, k):
    for i, x in enumerate(ranked[:k], start=1):
        if x == label:
            return 1.0 / i
    return 0.0


def random_ranking(seed, n=60, width=12, n_classes=4):
    """Seeded synthetic rankings: retrieved labels, query labels and consistent n_relevant."""
    rng = np.random.default_rng(seed)
    retrieved = rng.integers(0, n_classes, size=(n, width))
    queries = rng.integers(0, n_classes, size=n)
    hits = (retrieved == queries[:, None]).sum(axis=1)
    # The index may hold relevant items the ranking did not reach (or none at all).
    n_relevant = hits + rng.integers(0, 5, size=n)
    return retrieved, queries, n_relevant


SEEDS = [0, 1, 2, 3]
KS = [1, 3, 5, 12]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", KS)
def test_metrics_match_brute_force_reference(seed, k):
    retrieved, queries, n_rel = random_ranking(seed)
    rows = list(zip(retrieved.tolist(), queries.tolist(), n_rel.tolist(), strict=True))

    hit = [ref_hit(r, q, k) for r, q, _ in rows]
    prec = [ref_precision(r, q, k) for r, q, _ in rows]
    ap_std = [ref_ap(r, q, k, min(k, n)) if n else math.nan for r, q, n in rows]
    ap_002 = [ref_ap(r, q, k, sum(x == q for x in r[:k])) for r, q, _ in rows]
    rr = [ref_rr(r, q, k) for r, q, _ in rows]
    kw = {"retrieved_labels": retrieved, "query_labels": queries, "k": k}

    assert M.hit_rate_at_k(**kw) == pytest.approx(np.mean(hit))
    assert M.precision_at_k(**kw) == pytest.approx(np.mean(prec))
    by_class = {
        c: np.mean([p for p, q in zip(prec, queries, strict=True) if q == c])
        for c in set(queries.tolist())
    }
    assert M.precision_at_k(**kw, average="macro") == pytest.approx(
        np.mean(list(by_class.values()))
    )
    np.testing.assert_allclose(
        M.average_precision_at_k_per_query(**kw, n_relevant=n_rel), ap_std, equal_nan=True
    )
    assert M.mean_average_precision_at_k(**kw, n_relevant=n_rel) == pytest.approx(
        np.nanmean(ap_std)
    )
    assert M.mean_average_precision_at_k_hits_normalised(**kw) == pytest.approx(np.mean(ap_002))
    assert M.mean_reciprocal_rank(**kw) == pytest.approx(np.mean(rr))
    for ties in ("miss", "count"):
        expected = np.mean([ref_mmv(r, q, k, ties) for r, q, _ in rows])
        assert V.majority_vote_at_k(**kw, ties=ties) == pytest.approx(expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_r_precision_matches_reference(seed):
    retrieved, queries, _ = random_ranking(seed, width=20, n_classes=3)
    rng = np.random.default_rng(seed + 100)
    # R lies between the hits already in the ranking and the ranking's width (20).
    hits = (retrieved == queries[:, None]).sum(axis=1)
    n_rel = hits + rng.integers(0, 21 - hits)
    expected = [
        sum(x == q for x in r[:n]) / n if n else math.nan
        for r, q, n in zip(retrieved.tolist(), queries.tolist(), n_rel.tolist(), strict=True)
    ]
    got = M.r_precision_per_query(
        retrieved_labels=retrieved, query_labels=queries, n_relevant=n_rel
    )
    np.testing.assert_allclose(got, expected, equal_nan=True)


# ---------------------------------------------------------------- hand-computed cases

# Two queries, labels as strings: "a" ranks [a, b, a, c, a], "b" ranks [c, c, a, a, b].
HAND_RET = np.array([["a", "b", "a", "c", "a"], ["c", "c", "a", "a", "b"]])
HAND_Q = np.array(["a", "b"])


def test_hand_computed_hit_precision_mrr():
    kw = {"retrieved_labels": HAND_RET, "query_labels": HAND_Q}
    assert M.hit_rate_at_k(**kw, k=1) == 0.5
    assert M.hit_rate_at_k(**kw, k=4) == 0.5
    assert M.hit_rate_at_k(**kw, k=5) == 1.0
    # P@5: 3/5 and 1/5.
    assert M.precision_at_k(**kw, k=5) == pytest.approx(0.4)
    # MRR@5: 1/1 and 1/5.
    assert M.mean_reciprocal_rank(**kw, k=5) == pytest.approx(0.6)
    assert M.mean_reciprocal_rank(**kw, k=4) == pytest.approx(0.5)


def test_hand_computed_ap_both_normalisers():
    kw = {"retrieved_labels": HAND_RET, "query_labels": HAND_Q, "k": 5}
    # Query "a": relevant at ranks 1, 3, 5 -> P = 1, 2/3, 3/5; sum = 34/15.
    # Query "b": relevant at rank 5 -> P = 1/5.
    hits_normalised = M.average_precision_at_k_hits_normalised_per_query(**kw)
    np.testing.assert_allclose(hits_normalised, [34 / 15 / 3, 0.2 / 1])
    # Standard, index holds 10 "a" and 2 "b": normalisers min(5, 10) = 5 and min(5, 2) = 2.
    std = M.average_precision_at_k_per_query(**kw, n_relevant=np.array([10, 2]))
    np.testing.assert_allclose(std, [34 / 15 / 5, 0.2 / 2])


def test_hits_normalised_ap_rewards_a_lone_first_hit_more_than_three_hits():
    """The surprising property of normalising by hits within the top k (Mahbod et al.'s (2024)
    code)."""
    ret = np.array([[1, 0, 0, 0, 0], [1, 1, 0, 0, 1]])
    q = np.array([1, 1])
    ap = M.average_precision_at_k_hits_normalised_per_query(
        retrieved_labels=ret, query_labels=q, k=5
    )
    np.testing.assert_allclose(ap, [1.0, (1 + 1 + 3 / 5) / 3])
    std = M.average_precision_at_k_per_query(
        retrieved_labels=ret, query_labels=q, k=5, n_relevant=np.array([3, 3])
    )
    assert std[0] < std[1]


def test_class_with_one_member_has_no_relevant_item():
    """Leave-one-out: a singleton class's query can never hit; AP and R-precision are undefined."""
    ret = np.array([["x", "y"], ["x", "x"], ["y", "x"]])
    q = np.array(["solo", "x", "x"])
    n_rel = np.array([0, 2, 2])
    assert M.hit_rate_at_k(retrieved_labels=ret, query_labels=q, k=2) == pytest.approx(2 / 3)
    ap = M.average_precision_at_k_per_query(
        retrieved_labels=ret, query_labels=q, k=2, n_relevant=n_rel
    )
    assert math.isnan(ap[0])
    np.testing.assert_allclose(ap[1:], [1.0, 0.5 / 2])
    assert M.mean_average_precision_at_k(
        retrieved_labels=ret, query_labels=q, k=2, n_relevant=n_rel
    ) == pytest.approx((1.0 + 0.25) / 2)
    rp = M.r_precision_per_query(retrieved_labels=ret, query_labels=q, n_relevant=n_rel)
    assert math.isnan(rp[0]) and rp[1] == 1.0 and rp[2] == 0.5
    per_class = M.per_class_mean(
        per_query=M.hit_at_k_per_query(retrieved_labels=ret, query_labels=q, k=1), query_labels=q
    )
    assert per_class == {"solo": 0.0, "x": 0.5}
    # Macro precision weighs the singleton class like the others: (0 + (1 + 0)/2) / 2.
    assert M.precision_at_k(retrieved_labels=ret, query_labels=q, k=1, average="macro") == 0.25


def test_macro_differs_from_micro_when_classes_are_imbalanced():
    ret = np.array([[0], [0], [0], [0], [0]])
    q = np.array([0, 0, 0, 0, 1])
    assert M.precision_at_k(retrieved_labels=ret, query_labels=q, k=1) == pytest.approx(0.8)
    assert M.precision_at_k(retrieved_labels=ret, query_labels=q, k=1, average="macro") == 0.5


def test_majority_vote_tie_rule():
    # Query label 1 ties with label 2 (two votes each) in the top 4.
    ret = np.array([[1, 2, 2, 1, 3], [1, 1, 2, 3, 4], [2, 2, 1, 3, 3]])
    q = np.array([1, 1, 1])
    miss = V.majority_vote_correct_per_query(retrieved_labels=ret, query_labels=q, k=4)
    count = V.majority_vote_correct_per_query(
        retrieved_labels=ret, query_labels=q, k=4, ties="count"
    )
    np.testing.assert_array_equal(miss, [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(count, [1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="ties"):
        V.majority_vote_at_k(retrieved_labels=ret, query_labels=q, k=4, ties="random")


def test_vote_labels_breaks_ties_by_nearest_neighbour():
    ret = np.array([["b", "a", "a", "b"], ["c", "a", "b", "d"], ["a", "a", "b", "b"]])
    np.testing.assert_array_equal(V.vote_labels(retrieved_labels=ret, k=4), ["b", "c", "a"])
    np.testing.assert_array_equal(V.vote_labels(retrieved_labels=ret, k=3), ["a", "c", "a"])


def test_vote_shares_counts_and_similarity_weights():
    labels = ["ringworm"] * 7 + ["impetigo"] * 3
    shares = V.vote_shares(labels=labels)
    assert shares[0].describe() == "7 of 10: ringworm"
    assert shares[0].weight == pytest.approx(0.7) and shares[1].count == 3
    # Weighted: three very close impetigo neighbours outweigh seven distant ringworm ones;
    # the negative similarity is clipped to 0 rather than subtracting.
    sims = [0.9, 0.9, 0.9] + [0.1] * 6 + [-0.5]
    shares = V.vote_shares(labels=["impetigo"] * 3 + ["ringworm"] * 7, similarities=sims)
    assert [s.label for s in shares] == ["impetigo", "ringworm"]
    assert shares[0].weight == pytest.approx(2.7 / 3.3)
    assert shares[1].best_rank == 4
    assert V.vote_shares(labels=[]) == []
    with pytest.raises(ValueError, match="one score per label"):
        V.vote_shares(labels=["a", "b"], similarities=[0.5])


def test_top1_confusion_matrix():
    ret = np.array([["a", "x"], ["b", "x"], ["a", "x"], ["c", "x"]])
    q = np.array(["a", "a", "b", "b"])
    matrix, names = V.top1_confusion_matrix(retrieved_labels=ret, query_labels=q)
    assert names == ["a", "b", "c"]
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [1, 0, 1], [0, 0, 0]])
    assert matrix.trace() / len(q) == M.hit_rate_at_k(retrieved_labels=ret, query_labels=q, k=1)
    with pytest.raises(ValueError, match="not in `labels`"):
        V.top1_confusion_matrix(retrieved_labels=ret, query_labels=q, labels=["a", "b"])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"retrieved_labels": np.zeros(3), "query_labels": np.zeros(3), "k": 1}, ValueError, "2-D"),
        (
            {"retrieved_labels": np.zeros((3, 2)), "query_labels": np.zeros(2), "k": 1},
            ValueError,
            "one label per row",
        ),
        (
            {"retrieved_labels": np.zeros((3, 2)), "query_labels": np.zeros(3), "k": 3},
            ValueError,
            "outside 1..2",
        ),
        (
            {"retrieved_labels": np.zeros((3, 2)), "query_labels": np.zeros(3), "k": 1.0},
            TypeError,
            "int",
        ),
    ],
)
def test_bad_input_raises_with_a_sentence(kwargs, error, match):
    with pytest.raises(error, match=match):
        M.hit_rate_at_k(**kwargs)


def test_inconsistent_n_relevant_is_rejected():
    ret = np.array([[1, 1, 0]])
    q = np.array([1])
    with pytest.raises(ValueError, match="do not match"):
        M.mean_average_precision_at_k(
            retrieved_labels=ret, query_labels=q, k=3, n_relevant=np.array([1])
        )
    with pytest.raises(ValueError, match="required"):
        M.mean_average_precision_at_k(retrieved_labels=ret, query_labels=q, k=3, n_relevant=None)
    with pytest.raises(ValueError, match="max\\(n_relevant\\)"):
        M.r_precision(retrieved_labels=ret, query_labels=q, n_relevant=np.array([5]))
