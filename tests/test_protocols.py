"""Protocols on synthetic embeddings: exclusions, cosine vs Euclidean, text, probes, ablations."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from PIL import Image

from benchmarks import metrics as M
from benchmarks.ablations import (
    downsample_image,
    image_size_ablation,
    index_size_ablation,
    size_transform,
)
from benchmarks.probes import holdout_split, knn_classification, linear_probe
from benchmarks.records import classification_records, retrieval_records
from benchmarks.retrieval import cosine_vs_euclidean, leave_one_out, train_test
from benchmarks.search import exact_search
from benchmarks.text_protocols import (
    class_prompts,
    ensemble_prompt_embeddings,
    text_to_image,
    zero_shot_classification,
)


def clustered(seed=0, n_classes=3, per_class=12, dim=16, spread=0.3):
    """Well separated Gaussian clusters: (embeddings, labels, centres)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 3
    labels = np.repeat(np.arange(n_classes), per_class)
    return centres[labels] + rng.normal(size=(len(labels), dim)) * spread, labels, centres


# ---------------------------------------------------------------- exact search


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_search_matches_brute_force(metric):
    rng = np.random.default_rng(1)
    q, x = rng.normal(size=(7, 5)), rng.normal(size=(30, 5)) * rng.uniform(0.5, 3, size=(30, 1))
    exclude = rng.random((7, 30)) < 0.2
    found = exact_search(queries=q, index=x, k=6, metric=metric, exclude=exclude)
    for i in range(7):
        if metric == "cosine":
            score = [
                qi @ xj / np.linalg.norm(qi) / np.linalg.norm(xj)
                for qi, xj in ((q[i], r) for r in x)
            ]
            order = [j for j in np.argsort(-np.array(score), kind="stable") if not exclude[i, j]][
                :6
            ]
        else:
            score = [np.linalg.norm(q[i] - r) for r in x]
            order = [j for j in np.argsort(score, kind="stable") if not exclude[i, j]][:6]
        assert found.rows[i].tolist() == order
        np.testing.assert_allclose(found.scores[i], np.array(score)[order])


def test_exact_search_refuses_k_beyond_candidates_and_zero_vectors():
    x = np.eye(3)
    with pytest.raises(ValueError, match="only 2 candidates"):
        exact_search(queries=x, index=x, k=3, exclude=np.eye(3, dtype=bool))
    assert exact_search(queries=x, index=x, k=None, exclude=np.eye(3, dtype=bool)).rows.shape == (
        3,
        2,
    )
    with pytest.raises(ValueError, match="all zeros"):
        exact_search(queries=np.zeros((1, 3)), index=x, k=1)
    with pytest.raises(ValueError, match="same backbone"):
        exact_search(queries=np.ones((1, 2)), index=x, k=1)


# ---------------------------------------------------------------- leave-one-out


def test_leave_one_out_excludes_query_case_and_duplicate_group():
    x, labels, _ = clustered(per_class=8)
    # Each case holds two near-identical photos; without case ids the twin is always top-1.
    x = (
        np.repeat(x, 2, axis=0)
        + np.random.default_rng(2).normal(size=(2 * len(x), x.shape[1])) * 1e-3
    )
    labels = np.repeat(labels, 2)
    cases = np.repeat(np.arange(len(x) // 2), 2)
    naive = leave_one_out(embeddings=x, labels=labels, k=1)
    assert np.all(cases[naive.neighbour_rows[:, 0]] == cases)

    run = leave_one_out(embeddings=x, labels=labels, k=None, case_ids=cases)
    assert run.k == len(x) - 2
    assert not np.any(cases[run.neighbour_rows] == cases[:, None])
    np.testing.assert_array_equal(run.n_relevant, np.full(len(x), 16 - 2))

    # A duplicate group joins case 0 and case 1 (different cases, same photo).
    groups = np.arange(len(x))
    groups[[0, 1, 2, 3]] = 0
    grouped = leave_one_out(embeddings=x, labels=labels, k=None, case_ids=cases, group_ids=groups)
    assert not np.any(np.isin(grouped.neighbour_rows[:4], [0, 1, 2, 3]))
    assert grouped.n_relevant[0] == 16 - 4 and grouped.n_relevant[10] == 16 - 2


def test_leave_one_out_singleton_class_counts_as_miss():
    x, labels, _ = clustered(per_class=5)
    labels = labels.copy()
    labels[0] = 99  # a class with one member: nothing relevant is left for it
    run = leave_one_out(embeddings=x, labels=labels, k=4)
    assert run.n_relevant[0] == 0
    per_query = M.hit_at_k_per_query(
        retrieved_labels=run.retrieved_labels, query_labels=run.query_labels, k=4
    )
    assert per_query[0] == 0.0 and per_query[1:].all()


# ---------------------------------------------------------------- train / test


def test_train_test_queries_test_against_train_and_skips_shared_cases():
    x, labels, _ = clustered(per_class=10)
    splits = np.where(np.arange(len(x)) % 5 == 0, "test", "train")
    cases = np.arange(len(x))
    cases[1] = cases[0]  # case 0 has one photo in test (row 0) and one in train (row 1)
    run = train_test(embeddings=x, labels=labels, splits=splits, k=5, case_ids=cases)
    assert np.all(splits[run.query_rows] == "test") and np.all(
        splits[run.neighbour_rows] == "train"
    )
    assert 1 not in run.neighbour_rows[0]
    assert 1 in train_test(embeddings=x, labels=labels, splits=splits, k=None).neighbour_rows[0]
    with pytest.raises(ValueError, match="splits present are"):
        train_test(embeddings=x, labels=labels, splits=splits, k=5, query_split="val")


# ---------------------------------------------------------------- cosine vs Euclidean


def test_rescaling_changes_euclidean_ranking_but_not_cosine():
    rng = np.random.default_rng(3)
    # Embeddings share a common direction; the classes differ by a small angle (+-0.02 on axis 1).
    labels = np.repeat([0, 1], 15)
    unit = np.zeros((30, 16))
    unit[:, 0] = 1.0
    unit[:, 1] = np.where(labels == 0, 0.02, -0.02)
    unit += rng.normal(size=unit.shape) * 0.001
    # Lengths vary (lighting, modality) and interleave across classes: 1, 1.02, 2, 2.02, ...
    lengths = np.tile(np.arange(1, 16), 2) + 0.02 * labels
    scaled = unit * lengths[:, None]

    for metric in ("cosine", "euclidean"):
        before = leave_one_out(embeddings=unit, labels=labels, k=10, metric=metric)
        after = leave_one_out(embeddings=scaled, labels=labels, k=10, metric=metric)
        same = np.array_equal(before.neighbour_rows, after.neighbour_rows)
        assert same == (metric == "cosine")

    runs = cosine_vs_euclidean(raw_embeddings=scaled, labels=labels, k=1)
    hits = {
        m: M.hit_rate_at_k(retrieved_labels=r.retrieved_labels, query_labels=r.query_labels, k=1)
        for m, r in runs.items()
    }
    assert hits["cosine"] == 1.0 and hits["euclidean"] < 0.2
    assert runs["euclidean"].metric == "euclidean"


def test_cosine_vs_euclidean_flags_vectors_of_equal_length():
    x, labels, _ = clustered()
    runs = cosine_vs_euclidean(raw_embeddings=x, labels=labels, k=3)
    assert not runs["cosine"].params["equal_norms"]
    fixed = 2 * x / np.linalg.norm(x, axis=1, keepdims=True)  # e.g. two unit halves concatenated
    runs = cosine_vs_euclidean(raw_embeddings=fixed, labels=labels, k=3)
    assert runs["euclidean"].params["equal_norms"] and runs["euclidean"].params[
        "norm_max"
    ] == pytest.approx(2)
    np.testing.assert_array_equal(runs["cosine"].neighbour_rows, runs["euclidean"].neighbour_rows)


# ---------------------------------------------------------------- text


def test_class_prompts_and_ensembling():
    assert class_prompts(class_names=["tinea_corporis", "mpox"]) == [
        "a photo of tinea corporis",
        "a photo of mpox",
    ]
    assert class_prompts(class_names=["a"], template="{label} rash") == ["a rash"]
    with pytest.raises(ValueError, match="placeholder"):
        class_prompts(class_names=["a"], template="a photo")
    stack = np.stack([np.eye(3), 2 * np.eye(3)])
    np.testing.assert_allclose(ensemble_prompt_embeddings(stack), np.eye(3))


def test_text_to_image_and_zero_shot():
    x, labels, centres = clustered(per_class=6)
    names = np.array(["acne", "mpox", "scabies"])
    image_labels = names[labels]
    run = text_to_image(
        text_embeddings=centres,
        class_names=names,
        image_embeddings=x,
        image_labels=image_labels,
        k=6,
    )
    np.testing.assert_array_equal(run.query_labels, names)
    np.testing.assert_array_equal(run.n_relevant, [6, 6, 6])
    assert (
        M.precision_at_k(retrieved_labels=run.retrieved_labels, query_labels=run.query_labels, k=6)
        == 1.0
    )

    # Swap two prompts: those classes' images now pick the wrong name.
    swapped = centres[[1, 0, 2]]
    zs = zero_shot_classification(
        text_embeddings=swapped, class_names=names, image_embeddings=x, image_labels=image_labels
    )
    acc = M.hit_rate_at_k(retrieved_labels=zs.retrieved_labels, query_labels=zs.query_labels, k=1)
    assert acc == pytest.approx(1 / 3)
    assert (
        M.hit_rate_at_k(retrieved_labels=zs.retrieved_labels, query_labels=zs.query_labels, k=3)
        == 1.0
    )
    with pytest.raises(ValueError, match="have no prompt"):
        zero_shot_classification(
            text_embeddings=centres[:2],
            class_names=names[:2],
            image_embeddings=x,
            image_labels=image_labels,
        )


# ---------------------------------------------------------------- probes


@pytest.mark.parametrize("classifier", ["logistic-regression", "linear-svm"])
def test_linear_probe_separates_separable_data(classifier):
    x, labels, _ = clustered(per_class=20, dim=8)
    result = linear_probe(embeddings=x, labels=labels, classifier=classifier, seed=0)
    assert result.accuracy == 1.0 and result.macro_auc == 1.0 and result.macro_f1 == 1.0
    assert result.params["C"] in (0.1, 1.0, 10.0, 100.0) and result.params["n_test"] == 12
    assert set(result.per_class_auc) == {0, 1, 2}
    records = classification_records(result, protocol="linear-probe")
    assert {r["metric"] for r in records} == {"accuracy", "macro_f1", "macro_auc", "auc", "f1"}


def test_linear_probe_on_random_labels_is_near_chance():
    x, _, _ = clustered(per_class=20, dim=8)
    labels = np.random.default_rng(5).permutation(np.repeat([0, 1, 2], 20))
    result = linear_probe(embeddings=x, labels=labels, seed=0, cs=(1.0,), n_folds=3)
    assert result.accuracy < 0.8 and result.params["n_folds"] == 3


def test_probe_refuses_classes_too_small_for_the_folds():
    x, labels, _ = clustered(per_class=20, dim=8)
    labels = labels.copy()
    labels[:17] = 7  # class 0 keeps 3 items: too few for 5 folds after the split
    with pytest.raises(ValueError, match="too few in"):
        linear_probe(embeddings=x, labels=labels)


def test_grouped_holdout_keeps_groups_on_one_side_and_is_seeded():
    labels = np.repeat([0, 1], 30)
    groups = np.arange(60) // 3
    train, test = holdout_split(labels=labels, groups=groups, seed=4)
    assert not set(groups[train]) & set(groups[test])
    again = holdout_split(labels=labels, groups=groups, seed=4)
    np.testing.assert_array_equal(test, again[1])
    plain_train, plain_test = holdout_split(labels=labels, seed=4)
    assert len(plain_test) == 12 and len(set(plain_train) | set(plain_test)) == 60


def test_knn_classification():
    x, labels, _ = clustered(per_class=20, dim=8)
    result = knn_classification(embeddings=x, labels=labels, k=5, seed=1)
    assert result.accuracy == 1.0 and result.method == "knn-5"
    assert len(result.test_rows) == 12


# ---------------------------------------------------------------- ablations


def test_index_size_ablation_nested_indexes_and_fixed_queries():
    x, labels, _ = clustered(n_classes=4, per_class=12)
    # Class 3 keeps 9 members: after 2 queries it cannot fill an 8-case index.
    x, labels = x[:-3], labels[:-3]
    runs = index_size_ablation(
        embeddings=x, labels=labels, cases_per_class=[1, 4, 8], k=5, queries_per_class=2, seed=0
    )
    assert [r.params["index_cases_per_class"] for r in runs] == [1, 4, 8]
    assert runs[0].params["classes_dropped"] == "3" and runs[0].params["classes"] == 3
    assert runs[0].k == 3  # capped at the 3-item index
    queries = runs[0].query_rows
    assert len(queries) == 6
    previous: set = set()
    for run in runs:
        np.testing.assert_array_equal(run.query_rows, queries)
        index = set(run.index_rows.tolist())
        assert not index & set(queries.tolist())
        _, counts = np.unique(labels[run.index_rows], return_counts=True)
        assert counts.tolist() == [run.params["index_cases_per_class"]] * 3
        assert previous <= index  # nested: growing N only adds cases
        previous = index
    with pytest.raises(ValueError, match="no class has"):
        index_size_ablation(
            embeddings=x, labels=labels, cases_per_class=[50], k=1, queries_per_class=2
        )


def test_image_size_ablation_runs_each_size():
    rng = np.random.default_rng(0)
    # Two classes of synthetic photos: fine stripes vs a smooth gradient (detail lost when small).
    stripes = np.tile((np.arange(64) % 4 < 2) * 255, (48, 1))
    gradient = np.tile(np.linspace(0, 255, 64), (48, 1))
    images, labels = [], []
    for label, base in enumerate([stripes, gradient]):
        for _ in range(6):
            pixels = np.clip(base + rng.normal(size=base.shape) * 10, 0, 255).astype(np.uint8)
            images.append(Image.fromarray(pixels).convert("RGB"))
            labels.append(label)
    labels = np.array(labels)

    def embed_at_size(size):
        small = [
            size_transform(size)(im).resize((16, 16), Image.Resampling.BILINEAR) for im in images
        ]
        return np.stack([np.asarray(im, dtype=float).ravel() + 1.0 for im in small])

    evaluate = functools.partial(leave_one_out, labels=labels, k=3)
    runs = image_size_ablation(embed_at_size=embed_at_size, evaluate=evaluate, sizes=(4, 48))
    assert [r.params["image_size"] for r in runs] == [4, 48]
    assert downsample_image(images[0], size=28).size == (28, 28)


# ---------------------------------------------------------------- records


def test_retrieval_records_agree_with_metrics():
    x, labels, _ = clustered(per_class=6, spread=3.0)
    run = leave_one_out(embeddings=x, labels=labels, k=None)
    records = retrieval_records(run, ks=(1, 5, 100))
    overall = {(r["metric"], r["k"]): r["value"] for r in records if r["class"] is None}
    kw = {"retrieved_labels": run.retrieved_labels, "query_labels": run.query_labels}
    assert overall[("hit_rate", 5)] == M.hit_rate_at_k(**kw, k=5)
    assert overall[("map_hits_normalised", 5)] == M.mean_average_precision_at_k_hits_normalised(
        **kw, k=5
    )
    assert ("hit_rate", 100) not in overall  # deeper than the run
    assert ("r_precision", None) in overall
    per_class = [
        r for r in records if r["class"] is not None and r["metric"] == "precision" and r["k"] == 1
    ]
    assert sorted(r["class"] for r in per_class) == [0, 1, 2]
    assert all(r["protocol"] == "leave-one-out" and r["similarity"] == "cosine" for r in records)
