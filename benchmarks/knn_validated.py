"""k-NN classification the way Denner et al.'s (2024) public code does it.

Three rules differ from this project's `benchmarks.probes.knn_classification`, and all three
are followed here on purpose, to reproduce their figures:
- the vote is the argmax of the class vote shares over the sorted class columns, so a tie goes
  to the first tied class in that order (ours: to the nearest tied neighbour);
- each query votes over min(k, images of its own class in the index) neighbours. This reads
  the query's label before predicting it, a label leak, kept because their code does it;
- k is chosen by micro-F1 on a validation split of the training rows over k = 1..99 (the
  smallest best k wins), then the test rows query the whole training set.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from benchmarks.probes import ClassificationResult, classification_result
from benchmarks.retrieval import as_labels, retrieve
from benchmarks.search import Metric, as_matrix

MAX_K = 99
VALIDATION_SHARE = 0.2
K_SELECTION = "micro-F1 on a 20 % validation split of the training rows, k = 1..99"
K_CAP = "min(k, index images of the query's class): reads the query's label"


def capped_vote_counts(
    *,
    retrieved_labels: np.ndarray,
    query_labels: np.ndarray,
    classes: np.ndarray,
    k: int,
    class_counts: dict,
) -> tuple[np.ndarray, np.ndarray]:
    """(votes (n, n_classes), neighbours voting per query) over min(k, C_q) neighbours."""
    retrieved = np.asarray(retrieved_labels)
    onehot = retrieved[:, :, None] == np.asarray(classes)[None, None, :]
    running = np.cumsum(onehot, axis=1)  # votes after 1, 2, ... neighbours
    caps = np.array([class_counts.get(label, 0) for label in np.asarray(query_labels).tolist()])
    depth = np.clip(np.minimum(k, caps), 1, retrieved.shape[1])
    return running[np.arange(len(retrieved)), depth - 1, :], depth


def first_column_vote(votes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The class with the most votes; a tie goes to the first tied class column."""
    return np.asarray(classes)[np.argmax(votes, axis=1)]


def _neighbours(x, y, query_rows, index_rows, metric, depth):
    return retrieve(
        embeddings=x,
        labels=y,
        query_rows=query_rows,
        index_rows=index_rows,
        k=min(depth, len(index_rows)),
        metric=metric,
        protocol="knn",
    ).retrieved_labels


def _counts(y: np.ndarray, rows: np.ndarray) -> dict:
    values, counts = np.unique(y[rows], return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


def select_k(
    *,
    retrieved_labels: np.ndarray,
    query_labels: np.ndarray,
    classes: np.ndarray,
    class_counts: dict,
    max_k: int = MAX_K,
) -> tuple[int, np.ndarray]:
    """(the k with the best micro-F1, micro-F1 at each k = 1..max_k); ties go to the smaller k.

    Micro-F1 of a single-label prediction equals its accuracy."""
    width = min(max_k, np.asarray(retrieved_labels).shape[1])
    scores = np.empty(width)
    for k in range(1, width + 1):
        votes, _ = capped_vote_counts(
            retrieved_labels=retrieved_labels,
            query_labels=query_labels,
            classes=classes,
            k=k,
            class_counts=class_counts,
        )
        scores[k - 1] = np.mean(first_column_vote(votes, classes) == np.asarray(query_labels))
    return int(np.argmax(scores)) + 1, scores


def knn_validated(
    *,
    embeddings: np.ndarray,
    labels: np.ndarray,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    metric: Metric = "cosine",
    seed: int = 0,
    fixed_k: int | None = None,
) -> ClassificationResult:
    """Denner et al.'s (2024) k-NN on the given split: k chosen on a validation split of the
    training rows unless ``fixed_k`` is given; AUC from the capped vote shares."""
    x = as_matrix(embeddings, name="embeddings")
    y = as_labels(labels, n=x.shape[0])
    train = np.asarray(train_rows, dtype=np.int64)
    test = np.asarray(test_rows, dtype=np.int64)
    classes = np.unique(y[train])
    params: dict = {"similarity": metric, "seed": seed, "n_train": len(train), "k_cap": K_CAP}
    if fixed_k is None:
        _, counts = np.unique(y[train], return_counts=True)
        stratify = y[train] if counts.min() >= 2 else None
        fit, validation = train_test_split(
            train, test_size=VALIDATION_SHARE, random_state=seed, stratify=stratify
        )
        found = _neighbours(x, y, validation, fit, metric, MAX_K)
        k, scores = select_k(
            retrieved_labels=found,
            query_labels=y[validation],
            classes=classes,
            class_counts=_counts(y, fit),
        )
        params |= {
            "k_selection": K_SELECTION,
            "validation_micro_f1": float(scores[k - 1]),
            "n_validation": len(validation),
        }
        method = "knn-selected"
    else:
        k, method = int(fixed_k), f"knn-{fixed_k}"
    found = _neighbours(x, y, test, train, metric, k)
    votes, depth = capped_vote_counts(
        retrieved_labels=found,
        query_labels=y[test],
        classes=classes,
        k=k,
        class_counts=_counts(y, train),
    )
    predicted = first_column_vote(votes, classes)
    shares = votes / depth[:, None]
    params |= {"k": k, "ties": "first class column"}
    return classification_result(method, y[test], predicted, shares, classes, test, params)
