"""xception-ham10000's own 7-class classifier set against a vote of retrieved neighbours.

Both read the same raw 2048-d features (from the embedding cache): the classifier through
the sklesion head (sex, site and age unknown, as the package does with missing metadata),
the vote through leave-one-out search with the query's case and copies excluded. The model
was trained on HAM10000, which the ham10000-subset images come from, so both figures may be
optimistic (the images may be in its training set).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from benchmarks.probes import classification_result
from benchmarks.records import classification_records
from benchmarks.retrieval import leave_one_out
from benchmarks.votes import vote_labels

if TYPE_CHECKING:
    from benchmarks.protocols import Embedded

VOTE_KS: tuple[int, ...] = (1, 5, 10)
CAVEAT = (
    "the model was trained on HAM10000, which these images come from: they may be in its "
    "training set, so its figures are likely optimistic"
)


def reference_classifier_records(view: Embedded) -> list[dict]:
    """accuracy, macro F1 and macro AUC of the classifier and of k-NN votes, same queries."""
    from benchmarks.protocols import ProtocolSkipped

    if view.backbone.key != "xception-ham10000":
        raise ProtocolSkipped(
            f"only xception-ham10000 has a classifier of its own; {view.backbone.key} has none."
        )
    from models.xception_ham10000 import HAM10000ReferenceClassifier

    classifier = HAM10000ReferenceClassifier(backbone=view.backbone)
    classes = np.array(classifier.classes)
    unknown = sorted(set(view.labels.tolist()) - set(classes.tolist()))
    if unknown:
        raise ProtocolSkipped(
            f"the library's labels {unknown} are not among the classifier's HAM10000 classes "
            f"({', '.join(classes)})."
        )
    true = view.labels
    common = {"caveat": CAVEAT}
    rows = np.arange(len(true))  # every image is a test image: the classifier was trained elsewhere
    proba = classifier.proba_from_features(view.raw)
    results = [
        classification_result(
            "own-classifier",
            true,
            classes[np.argmax(proba, axis=1)],
            proba,
            classes,
            rows,
            {**common, "metadata": "sex, site, age unknown"},
        )
    ]
    run = leave_one_out(
        embeddings=view.unit,
        labels=true,
        k=max(VOTE_KS),
        case_ids=view.case_ids,
        group_ids=view.group_ids,
    )
    for k in VOTE_KS:
        top = run.retrieved_labels[:, :k]
        shares = (top[:, :, None] == classes[None, None, :]).mean(axis=1)
        predicted = vote_labels(retrieved_labels=run.retrieved_labels, k=k)
        params = {**common, "k": k, "exclusion": "case+duplicates"}
        results.append(
            classification_result(
                f"retrieval-vote-{k}", true, predicted, shares, classes, rows, params
            )
        )
    out = []
    for result in results:
        out += classification_records(result, protocol="reference-classifier")
    return [{**r, "n_queries": len(true)} for r in out]
