"""Classifiers on frozen embeddings: linear probes (Khoiwal & McMillan (2024)) and kNN voting
(Denner et al. (2024)).

Khoiwal & McMillan (2024): stratified 80/20 split, 5-fold cross-validated grid over C in {0.1, 1,
10, 100},
logistic regression and linear SVM (hinge and squared hinge), reporting macro one-vs-rest
AUC, accuracy and macro F1 on the held-out 20 %. Everything is seeded.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)
from sklearn.svm import LinearSVC

from benchmarks.retrieval import as_labels, retrieve
from benchmarks.search import Metric, as_matrix
from benchmarks.votes import vote_labels

Classifier = Literal["logistic-regression", "linear-svm"]
CLASSIFIERS: tuple[str, ...] = ("logistic-regression", "linear-svm")
PROBE_CS: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0)


@dataclass(frozen=True)
class ClassificationResult:
    """Held-out scores of one classifier; per-class AUC and F1 keyed by label."""

    method: str
    accuracy: float
    macro_f1: float
    macro_auc: float  # mean of one-vs-rest AUCs over classes present in the test split
    per_class_auc: dict
    per_class_f1: dict
    test_rows: np.ndarray
    predicted: np.ndarray
    true: np.ndarray
    params: dict = field(default_factory=dict)  # best C, loss, k, cv score, split sizes


def macro_ovr_auc(
    *, true_labels: np.ndarray, scores: np.ndarray, classes: np.ndarray
) -> tuple[float, dict]:
    """Mean over classes of AUC(class c vs rest) using score column c; (mean, {label: auc}).

    Works with any per-class score (probabilities, decision values, vote shares). A class with
    no positive or no negative test item has no AUC and is left out of the mean.
    """
    true = np.asarray(true_labels)
    scores = np.asarray(scores, dtype=float)
    if scores.ndim == 1:  # binary decision_function: the score of classes[1]
        scores = np.stack([-scores, scores], axis=1)
    per_class = {}
    for j, label in enumerate(np.asarray(classes).tolist()):
        positive = true == label
        if positive.all() or not positive.any():
            continue
        per_class[label] = float(roc_auc_score(positive, scores[:, j]))
    mean = float(np.mean(list(per_class.values()))) if per_class else float("nan")
    return mean, per_class


AucScores = Literal["decision_function", "predict_proba"]


def _scores(estimator, x, auc_from: AucScores) -> np.ndarray:
    """The per-class scores AUC reads: predict_proba where asked and the model has it."""
    if auc_from == "predict_proba" and hasattr(estimator, "predict_proba"):
        return estimator.predict_proba(x)
    return estimator.decision_function(x)


def _auc_scorer(auc_from: AucScores):
    def score(estimator, x, y) -> float:
        scores = _scores(estimator, x, auc_from)
        mean, _ = macro_ovr_auc(true_labels=y, scores=scores, classes=estimator.classes_)
        return mean

    return score


def holdout_split(
    *, labels: np.ndarray, test_size: float = 0.2, seed: int = 0, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified (train_rows, test_rows); with `groups`, no group straddles the split.

    Grouped splits take the first fold of a StratifiedGroupKFold with round(1 / test_size)
    folds, so photos of one case (or one duplicate group) stay on one side.
    """
    labels = as_labels(labels, n=len(labels))
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be between 0 and 1, got {test_size}.")
    _check_class_sizes(labels, needed=2, why="a stratified train/test split")
    rows = np.arange(len(labels))
    if groups is None:
        train, test = train_test_split(
            rows, test_size=test_size, stratify=labels, random_state=seed
        )
        return np.sort(train), np.sort(test)
    groups = as_labels(groups, n=len(labels), name="groups")
    folds = StratifiedGroupKFold(n_splits=round(1 / test_size), shuffle=True, random_state=seed)
    train, test = next(folds.split(rows, labels, groups))
    return np.sort(train), np.sort(test)


def _check_class_sizes(labels: np.ndarray, *, needed: int, why: str) -> None:
    values, counts = np.unique(labels, return_counts=True)
    small = [
        f"{v} ({c})" for v, c in zip(values.tolist(), counts.tolist(), strict=True) if c < needed
    ]
    if small:
        raise ValueError(
            f"{why} needs at least {needed} items per class; too few in: {', '.join(small)}. "
            "Merge or drop those classes, or use fewer folds."
        )


def _split(labels, train_rows, test_rows, test_size, seed, groups):
    if (train_rows is None) != (test_rows is None):
        raise ValueError(
            "pass both train_rows and test_rows, or neither (then a seeded split is drawn)."
        )
    if train_rows is None:
        return holdout_split(labels=labels, test_size=test_size, seed=seed, groups=groups)
    return np.asarray(train_rows, dtype=np.int64), np.asarray(test_rows, dtype=np.int64)


def classification_result(
    method, true, predicted, scores, classes, test_rows, params
) -> ClassificationResult:
    """Accuracy, macro F1 and macro one-vs-rest AUC of predictions on the test rows."""
    auc, per_class_auc = macro_ovr_auc(true_labels=true, scores=scores, classes=classes)
    present = np.unique(true)
    f1s = f1_score(true, predicted, labels=present, average=None, zero_division=0)
    return ClassificationResult(
        method=method,
        accuracy=float(accuracy_score(true, predicted)),
        macro_f1=float(np.mean(f1s)),
        macro_auc=auc,
        per_class_auc=per_class_auc,
        per_class_f1=dict(zip(present.tolist(), map(float, f1s), strict=True)),
        test_rows=test_rows,
        predicted=predicted,
        true=true,
        params={**params, "n_test": len(test_rows)},
    )


def linear_probe(
    *,
    embeddings: np.ndarray,
    labels: np.ndarray,
    classifier: Classifier = "logistic-regression",
    cs: tuple[float, ...] = PROBE_CS,
    n_folds: int = 5,
    test_size: float = 0.2,
    seed: int = 0,
    groups: np.ndarray | None = None,
    train_rows: np.ndarray | None = None,
    test_rows: np.ndarray | None = None,
    auc_from: AucScores = "decision_function",
) -> ClassificationResult:
    """Khoiwal & McMillan (2024)'s probe: grid over C by n-fold CV (macro OvR AUC) on train, scored
    on test.

    The linear SVM also tries hinge and squared-hinge loss, as Khoiwal & McMillan (2024) did. Raw
    embeddings,
    no scaling (Khoiwal & McMillan (2024) reports none). `groups` keeps a case's photos within one
    fold. ``auc_from`` "predict_proba" is the usual one-vs-rest AUC (for the grid's choice and
    the test score alike); the linear SVM has no probabilities, so it always uses its decision
    values, and the record's ``auc_from`` says which was used.
    """
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}.")
    x = as_matrix(embeddings, name="embeddings")
    y = as_labels(labels, n=x.shape[0])
    train, test = _split(y, train_rows, test_rows, test_size, seed, groups)
    _check_class_sizes(y[train], needed=n_folds, why=f"{n_folds}-fold cross-validation")
    if classifier == "logistic-regression":
        model = LogisticRegression(max_iter=5000)
        grid = {"C": list(cs)}
    else:
        # sklearn's default 1,000 iterations: a probe that has not converged by then says so in
        # convergence_warnings, and 20,000 took minutes per fold on this shared CPU
        model = LinearSVC(dual=True, max_iter=1000, random_state=seed)
        grid = {"C": list(cs), "loss": ["hinge", "squared_hinge"]}
    if groups is None:
        folds, fit_groups = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed), None
    else:
        folds = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        fit_groups = as_labels(groups, n=x.shape[0], name="groups")[train]
    scoring = _auc_scorer(auc_from)
    search = GridSearchCV(model, grid, scoring=scoring, cv=folds, refit=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        search.fit(x[train], y[train], groups=fit_groups)
    best = search.best_estimator_
    params = {
        **{key: (float(v) if key == "C" else v) for key, v in search.best_params_.items()},
        "cv_macro_auc": float(search.best_score_),
        "n_folds": n_folds,
        "seed": seed,
        "n_train": len(train),
        "convergence_warnings": sum(issubclass(w.category, ConvergenceWarning) for w in caught),
        "auc_from": "predict_proba"
        if hasattr(best, "predict_proba") and (auc_from == "predict_proba")
        else "decision_function",
    }
    return classification_result(
        classifier,
        y[test],
        best.predict(x[test]),
        _scores(best, x[test], auc_from),
        best.classes_,
        test,
        params,
    )


def knn_classification(
    *,
    embeddings: np.ndarray,
    labels: np.ndarray,
    k: int,
    metric: Metric = "cosine",
    test_size: float = 0.2,
    seed: int = 0,
    groups: np.ndarray | None = None,
    train_rows: np.ndarray | None = None,
    test_rows: np.ndarray | None = None,
) -> ClassificationResult:
    """Majority vote of the k nearest training items (ties to the nearest tied label).

    AUC uses each class's share of the k votes as its score. Same split as `linear_probe`
    for the same seed, so the two are comparable.
    """
    x = as_matrix(embeddings, name="embeddings")
    y = as_labels(labels, n=x.shape[0])
    train, test = _split(y, train_rows, test_rows, test_size, seed, groups)
    run = retrieve(
        embeddings=x,
        labels=y,
        query_rows=test,
        index_rows=train,
        k=k,
        metric=metric,
        group_ids=groups,
        protocol="knn",
    )
    classes = np.unique(y[train])
    shares = (run.retrieved_labels[:, :, None] == classes[None, None, :]).mean(axis=1)
    predicted = vote_labels(retrieved_labels=run.retrieved_labels, k=k)
    params = {"k": k, "similarity": metric, "seed": seed, "n_train": len(train)}
    return classification_result(f"knn-{k}", y[test], predicted, shares, classes, test, params)
