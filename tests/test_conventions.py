"""Our conventions and the papers' public code, each on a small case worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from benchmarks import metrics as M
from benchmarks.embedded import Embedded, parse_conventions
from benchmarks.knn_validated import capped_vote_counts, first_column_vote, select_k
from benchmarks.probes import linear_probe
from benchmarks.protocols import REGISTRY, protocol_records
from benchmarks.votes import vote_labels
from models import load_backbone

# Two test queries against four training images (2-D raw vectors, worked out by hand):
# q1 [1, 0] (A): cosine ranks a1 [10, 0] first (a hit); Euclidean ranks b1 [0.9, 0.5] first.
# q2 [0, 1] (B): its own case has a training copy [0, 1.1]. Ours leaves it out, so a2 [0.3, 1]
# (A) comes first and b1 second; the paper's code keeps it, a hit at rank 1.
RAW = np.array([[1, 0], [0, 1], [10, 0], [0.9, 0.5], [0, 1.1], [0.3, 1]], dtype=np.float32)
LABELS = np.array(["A", "B", "A", "B", "B", "A"])
CASES = np.array(["q1", "y", "a1", "b1", "y", "a2"])
SPLITS = np.array(["test", "test", "train", "train", "train", "train"])


@pytest.fixture(scope="module")
def view() -> Embedded:
    unit = RAW / np.linalg.norm(RAW, axis=1, keepdims=True)
    keys = tuple(f"img/{c}-{i}.jpg" for i, c in enumerate(CASES))
    return Embedded(
        unit=unit,
        raw=RAW,
        labels=LABELS,
        case_ids=CASES,
        splits=SPLITS,
        group_ids=np.arange(len(RAW)),
        paths=list(keys),
        sha1s=[""] * len(RAW),
        backbone=load_backbone("color-texture"),
        keys=keys,
    )


def _overall(records, metric, k):
    found = [
        r
        for r in records
        if r.get("kind") != "query" and r["metric"] == metric and r["k"] == k and not r["class"]
    ]
    assert len(found) == 1, found
    return found[0]


def _first_hits(records):
    return {r["query"]: r["first_hit_rank"] for r in records if r.get("kind") == "query"}


def test_train_test_ours_cosine_and_same_case_left_out(view):
    records = protocol_records("train-test", view)
    assert {r["conventions"] for r in records} == {"ours"}
    assert _first_hits(records) == {"img/q1-0.jpg": 1, "img/y-1.jpg": 2}
    # ours, P@3 divided by k: q1 gets a1 A, b1 B, a2 A (2 of 3); q2, its copy left out, gets
    # a2 A, b1 B, a1 A (1 of 3)
    assert _overall(records, "precision", 3)["value"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert _overall(records, "hit_rate", 1)["exclusion"] == "case+duplicates"


def test_train_test_paper_euclidean_raw_nothing_left_out_and_class_capped_precision(view):
    paper = protocol_records("train-test", Embedded(**{**vars(view), "conventions": "paper"}))
    assert {r["conventions"] for r in paper} == {"paper"}
    assert _first_hits(paper) == {"img/q1-0.jpg": 2, "img/y-1.jpg": 1}
    top1 = _overall(paper, "hit_rate", 1)
    assert (top1["value"], top1["similarity"], top1["exclusion"]) == (0.5, "euclidean", "none")
    # q1 top 3: b1 B, a2 A, copy B -> 1 hit / min(3, 2 A images) = 0.5; q2: copy B, a2 A, b1 B
    # -> 2 hits / min(3, 2 B images) = 1.0
    precision = _overall(paper, "precision", 3)
    assert precision["value"] == pytest.approx(0.75)
    assert precision["precision_denominator"] == "min(k, class count in index)"


def test_class_capped_precision_by_hand():
    retrieved = np.array([["a", "a", "b", "b", "b"], ["b", "a", "a", "a", "a"]])
    queries = np.array(["a", "a"])
    capped = M.precision_at_k_class_capped_per_query(
        retrieved_labels=retrieved, query_labels=queries, k=5, n_in_index=np.array([2, 9])
    )
    assert capped.tolist() == [1.0, 4 / 5]  # 2 of min(5, 2), 4 of min(5, 9)
    plain = M.precision_at_k_per_query(retrieved_labels=retrieved, query_labels=queries, k=5)
    assert plain.tolist() == [2 / 5, 4 / 5]


def test_knn_ties_nearest_ours_first_class_column_paper():
    retrieved = np.array([["b", "a", "c"]])
    classes = np.array(["a", "b", "c"])
    assert vote_labels(retrieved_labels=retrieved, k=2).tolist() == ["b"]  # ours: nearest tied
    votes, depth = capped_vote_counts(
        retrieved_labels=retrieved,
        query_labels=np.array(["a"]),
        classes=classes,
        k=2,
        class_counts={"a": 5, "b": 5, "c": 5},
    )
    assert votes.tolist() == [[1, 1, 0]] and depth.tolist() == [2]
    assert first_column_vote(votes, classes).tolist() == ["a"]  # paper: first class column


def test_knn_paper_caps_k_by_the_query_class_count():
    retrieved = np.array([["b", "c", "c"]])
    votes, depth = capped_vote_counts(
        retrieved_labels=retrieved,
        query_labels=np.array(["c"]),
        classes=np.array(["a", "b", "c"]),
        k=3,
        class_counts={"a": 4, "b": 4, "c": 1},  # only one "c" image in the index
    )
    assert depth.tolist() == [1] and votes.tolist() == [[0, 1, 0]]


def test_knn_paper_selects_the_smallest_k_with_the_best_micro_f1():
    # query 1 (a): a b b b  -> right at k=1 only; query 2 (b): a b b a -> right at k=3
    retrieved = np.array([["a", "b", "b", "b"], ["a", "b", "b", "a"]])
    k, scores = select_k(
        retrieved_labels=retrieved,
        query_labels=np.array(["a", "b"]),
        classes=np.array(["a", "b"]),
        class_counts={"a": 9, "b": 9},
        max_k=4,
    )
    # k=1: a, a -> 1/2; k=2: tie a/b -> a, a -> 1/2; k=3: b, b -> 1/2; k=4: b, tie -> a: 0
    assert scores.tolist() == [0.5, 0.5, 0.5, 0.0]
    assert k == 1


def test_probe_auc_from_predict_proba_is_sklearns_one_vs_rest():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.array(["a", "b", "c"]), 20)
    x = rng.normal(size=(60, 3)) + (labels[:, None] == np.array(["a", "b", "c"])) * 1.0
    train, test = np.arange(60) % 4 != 0, np.arange(60) % 4 == 0
    common = {"embeddings": x, "labels": labels, "cs": (1.0,), "n_folds": 3}
    rows = {"train_rows": np.flatnonzero(train), "test_rows": np.flatnonzero(test)}
    paper = linear_probe(**common, **rows, auc_from="predict_proba")
    ours = linear_probe(**common, **rows)
    model = LogisticRegression(C=1.0, max_iter=5000).fit(x[train], labels[train])
    expected = roc_auc_score(labels[test], model.predict_proba(x[test]), multi_class="ovr")
    assert paper.macro_auc == pytest.approx(expected)
    assert paper.params["auc_from"] == "predict_proba"
    assert ours.params["auc_from"] == "decision_function"
    assert ours.accuracy == paper.accuracy  # same model; only the AUC's scores differ


def test_paper_conventions_only_where_a_protocol_offers_them(view):
    offered = {name for name, p in REGISTRY.items() if p.paper_conventions}
    assert {"train-test", "knn", "linear-probe"} <= offered
    loo = protocol_records("leave-one-out", Embedded(**{**vars(view), "conventions": "paper"}))
    assert {r["conventions"] for r in loo} == {"ours"}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ours", ["ours"]),
        ("paper", ["paper"]),
        ("both", ["ours", "paper"]),
        ("paper,ours", ["paper", "ours"]),
    ],
)
def test_parse_conventions(given, expected):
    assert parse_conventions(given) == expected


def test_parse_conventions_refuses_unknown():
    with pytest.raises(ValueError, match="choose ours, paper or both"):
        parse_conventions("theirs")
