"""Case-resampled intervals, paired tests and strata, against brute force and hand counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.comparisons import paired_records, stratified_records
from benchmarks.intervals import (
    Bootstrap,
    case_weights,
    macro_samples,
    mcnemar_exact,
    mean_samples,
    paired_difference,
)
from benchmarks.records import append_queries, queries_path, query_records, read_queries
from benchmarks.retrieval import leave_one_out


def test_weighted_resamples_equal_resampling_cases_by_brute_force():
    rng = np.random.default_rng(1)
    groups = np.array(list("aabbbcdde"))
    values = rng.random(len(groups))
    values[3] = np.nan  # a query without a defined value is skipped, as in the metrics
    weights, codes = case_weights(groups, n_resamples=50, seed=7)
    assert weights.sum(axis=1).tolist() == [5.0] * 50  # five cases drawn each time
    fast = mean_samples(values, weights, codes)
    labels = np.array(list("xyxyxyxyx"))
    fast_macro = macro_samples(values, labels, weights, codes)
    for b in range(50):
        drawn = np.concatenate(
            [np.repeat(np.flatnonzero(codes == g), int(w)) for g, w in enumerate(weights[b])]
        )
        assert fast[b] == pytest.approx(np.nanmean(values[drawn]))
        per_class = [
            np.nanmean(values[drawn][labels[drawn] == c]) for c in "xy" if c in labels[drawn]
        ]
        assert fast_macro[b] == pytest.approx(np.nanmean(per_class))


def test_bootstrap_is_seeded_and_brackets_the_mean():
    groups = np.repeat(np.arange(40), 3)
    values = (np.arange(120) % 4 == 0).astype(float)
    one = Bootstrap.over(groups).mean(values)
    assert one == Bootstrap.over(groups).mean(values)
    assert one[0] < values.mean() < one[1]
    assert Bootstrap.over(np.arange(5)).mean(np.ones(5)) == (1.0, 1.0)


def test_macro_f1_interval_brackets_sklearn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    true = rng.choice(list("abc"), 90)
    predicted = np.where(rng.random(90) < 0.7, true, rng.choice(list("abc"), 90))
    low, high = Bootstrap.over(np.arange(90)).macro_f1(true, predicted, np.array(list("abc")))
    assert low < f1_score(true, predicted, average="macro") < high


def test_mcnemar_by_hand():
    a = np.array([1, 1, 0, 0, 0, 0, 1, 1], dtype=bool)
    b = np.array([0, 1, 1, 1, 1, 1, 1, 1], dtype=bool)
    p, a_only, b_only = mcnemar_exact(a, b)
    # discordant 1 vs 4: two-sided binomial p = 2 * (C(5,0) + C(5,1)) / 2^5 = 12 / 32
    assert (a_only, b_only) == (1, 4) and p == pytest.approx(0.375)


def test_paired_difference_of_identical_backbones_is_zero_and_not_significant():
    values = (np.arange(30) % 3 == 0).astype(float)
    found = paired_difference(values, values, groups=np.arange(30))
    assert (found.difference, found.ci_low, found.ci_high, found.p_value) == (0, 0, 0, 1)
    assert not found.excludes_zero


def _queries():
    """Backbone x gets every query right at rank 1, y only the first 4 of 20."""
    rows = []
    for i in range(20):
        for backbone, rank in (("x", 1), ("y", 1 if i < 4 else None)):
            rows.append(
                {
                    "backbone": backbone,
                    "library": "lib",
                    "protocol": "leave-one-out",
                    "conventions": "ours",
                    "exclusion": "case+duplicates",
                    "query": f"q{i}",
                    "case_id": f"c{i // 2}",
                    "label": "a",
                    "first_hit_rank": rank,
                }
            )
    return rows


def test_paired_records_mark_a_clear_difference():
    records = paired_records(_queries(), n_resamples=200)
    top1 = next(r for r in records if r["metric"] == "hit_rate" and r["k"] == 1)
    assert (top1["backbone_a"], top1["backbone_b"]) == ("x", "y")
    assert top1["value"] == pytest.approx(16 / 20)
    assert top1["interval_excludes_zero"] and top1["test"] == "McNemar exact"
    assert (top1["n_a_only"], top1["n_b_only"]) == (16, 0)
    assert top1["p_value"] == pytest.approx(2 * 0.5**16)


def test_stratified_records_give_group_sizes_and_the_largest_gap():
    strata = {f"q{i}": ("early" if i < 4 else "late") for i in range(20)}
    records = stratified_records(_queries(), column="split", strata=strata, n_resamples=100)
    y = [r for r in records if r["backbone"] == "y" and r["metric"] == "hit_rate" and r["k"] == 1]
    by = {r["stratum"]: r for r in y}
    assert by["early"]["value"] == 1.0 and by["late"]["value"] == 0.0
    assert (by["early"]["n_queries"], by["late"]["n_queries"]) == (4, 16)
    gap = by["largest_gap"]
    assert (gap["value"], gap["best_stratum"], gap["worst_stratum"]) == (1.0, "early", "late")


def test_query_records_and_their_sidecar_file(tmp_path):
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.2, 0.9]], dtype=np.float32)
    labels = np.array(["a", "b", "a", "b"])
    run = leave_one_out(embeddings=vectors, labels=labels, k=3)
    keys = ["p0", "p1", "p2", "p3"]
    rows = query_records(run, keys=keys, case_ids=np.array(keys))
    # p0's nearest is p1 (b), then p3 (b), then p2 (a): first hit at rank 3
    assert rows[0]["first_hit_rank"] == 3 and rows[0]["top_labels"] == ["b", "b", "a"]
    path = queries_path(tmp_path / "results.jsonl")
    assert path.name == "results.queries.jsonl.gz"
    append_queries(rows[:2], path)
    append_queries(rows[2:], path)  # a second gzip member reads as one stream
    back = read_queries(path)
    assert back["query"].tolist() == keys
    assert isinstance(back, pd.DataFrame)
