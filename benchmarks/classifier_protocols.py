"""The classifier protocols' runs on one embedded library: linear probes and k-NN votes.

Registered in `benchmarks.protocols` (which owns the registry and its order); kept here so that
each convention's choices sit together. Ours: L2-normalised vectors, a held-out 20 % split that
keeps a case and its copies on one side, AUC from decision values, k-NN ties to the nearest
tied neighbour. Paper: what each paper's code does (see `PROBE_PAPER` and `KNN_PAPER`).
"""

from __future__ import annotations

import numpy as np

from benchmarks.embedded import Embedded, ProtocolSkipped
from benchmarks.knn_validated import knn_validated
from benchmarks.probes import CLASSIFIERS, holdout_split, knn_classification, linear_probe
from benchmarks.records import classification_records, prediction_records
from data_index.audit import case_or_copy_groups

KNN_KS: tuple[int, ...] = (1, 5, 10)
SPLIT_GROUPS = "case+duplicates"
PROBE_PAPER = (
    "raw features, a stratified 80/20 split that ignores cases, AUC from predict_proba "
    "(sklearn's usual one-vs-rest; the linear SVM has none and keeps its decision values)"
)
KNN_PAPER = (
    "Denner et al.'s code: a stratified 80/20 split that ignores cases, ties to the first class "
    "column, each query votes over min(k, index images of its class), and k chosen by micro-F1 "
    "on a validation split over k = 1..99"
)


def _split_groups(view: Embedded) -> np.ndarray:
    return case_or_copy_groups(group_ids=view.group_ids, case_ids=view.case_ids)


def _with_predictions(view: Embedded, result, *, protocol: str, **extra: object) -> list[dict]:
    """Summary records (accuracy and macro F1 with case-resampled intervals) and one
    per-query record per test image."""
    summary = classification_records(result, protocol=protocol, case_ids=view.case_ids)
    queries = prediction_records(
        result, protocol=protocol, keys=view.query_keys, case_ids=view.case_ids
    )
    n_test = result.params["n_test"]
    return [{**r, **extra, "n_queries": n_test} for r in summary] + [
        {**q, **extra, "kind": "query"} for q in queries
    ]


def _probe(view: Embedded, *, classifier: str, paper: bool):
    """Khoiwal & McMillan (2024)'s 5-fold grid; fewer folds (down to 2, recorded as n_folds)
    for small classes."""
    groups = None if paper else _split_groups(view)
    features = view.raw if paper else view.unit
    auc_from = "predict_proba" if paper else "decision_function"
    for n_folds in (5, 4, 3, 2):
        try:
            return linear_probe(
                embeddings=features,
                labels=view.labels,
                groups=groups,
                n_folds=n_folds,
                classifier=classifier,
                auc_from=auc_from,
            )
        except ValueError as err:
            if n_folds == 2 or "cross-validation" not in str(err):
                raise ProtocolSkipped(str(err)) from err
    raise AssertionError("unreachable: the loop returns or raises")


def linear_probe_records(view: Embedded) -> list[dict]:
    """Logistic regression (ours), or logistic regression and the linear SVM (paper)."""
    paper = view.conventions == "paper"
    extra = {
        "features": "raw" if paper else "l2-normalised",
        "split_groups": "none" if paper else SPLIT_GROUPS,
    }
    out = []
    # Khoiwal & McMillan (2024) fit both; ours keeps the logistic regression only, the probe
    # whose AUC the headline table shows (the SVM's grid costs minutes on a shared CPU).
    for classifier in CLASSIFIERS if paper else ("logistic-regression",):
        result = _probe(view, classifier=classifier, paper=paper)
        out += _with_predictions(view, result, protocol="linear-probe", **extra)
    return out


def knn_records(view: Embedded) -> list[dict]:
    """k-NN at k = 1, 5, 10; under paper conventions also at the k chosen on validation."""
    out = []
    try:
        if view.conventions == "paper":
            train, test = holdout_split(labels=view.labels)
            common = {"embeddings": view.unit, "labels": view.labels}
            results = [
                knn_validated(**common, train_rows=train, test_rows=test, fixed_k=k) for k in KNN_KS
            ]
            results.append(knn_validated(**common, train_rows=train, test_rows=test))
            extra = {"split_groups": "none"}
        else:
            groups = _split_groups(view)
            results = [
                knn_classification(embeddings=view.unit, labels=view.labels, k=k, groups=groups)
                for k in KNN_KS
            ]
            extra = {"split_groups": SPLIT_GROUPS, "ties": "nearest tied neighbour"}
    except ValueError as err:
        raise ProtocolSkipped(str(err)) from err
    for result in results:
        out += _with_predictions(view, result, protocol="knn", **extra)
    return out
