"""xception-ham10000's own 7-class classifier set against a vote of retrieved neighbours.

Both read the same raw 2048-d features (from the embedding cache): the classifier through
the sklesion head (sex, site and age unknown, as the package does with missing metadata),
the vote through leave-one-out search with the query's case and copies excluded. The model
was trained on HAM10000, which the ham10000-subset images come from, so both figures may be
optimistic (the images may be in its training set).
"""

from __future__ import annotations

import numpy as np

from benchmarks.embedded import Embedded, Requirement
from benchmarks.probes import classification_result
from benchmarks.records import classification_records
from benchmarks.retrieval import leave_one_out
from benchmarks.votes import vote_labels
from models import list_specs
from models.xception_ham10000 import HAM10000ReferenceClassifier

VOTE_KS: tuple[int, ...] = (1, 5, 10)
CAVEAT = (
    "the model was trained on HAM10000, which these images come from: they may be in its "
    "training set, so its figures are likely optimistic"
)


def _no_classifier(view: Embedded) -> str | None:
    if view.backbone.spec.has_classifier:
        return None
    having = [spec.key for spec in list_specs() if spec.has_classifier]
    names = ", ".join(having) or "no registered backbone"
    verb = "have" if len(having) > 1 else "has"
    return f"only {names} {verb} a classifier of its own; {view.backbone.key} has none."


def _labels_unknown_to_classifier(view: Embedded) -> str | None:
    classes = HAM10000ReferenceClassifier(backbone=view.backbone).classes
    unknown = sorted(set(view.labels.tolist()) - set(classes))
    if not unknown:
        return None
    return (
        f"the library's labels {unknown} are not among the classifier's HAM10000 classes "
        f"({', '.join(classes)})."
    )


OWN_CLASSIFIER = Requirement("a backbone with a classifier of its own", _no_classifier)
LABELS_THE_CLASSIFIER_KNOWS = Requirement(
    "library labels among the classifier's classes", _labels_unknown_to_classifier
)


def reference_classifier_records(view: Embedded) -> list[dict]:
    """accuracy, macro F1 and macro AUC of the classifier and of k-NN votes, same queries.

    Needs OWN_CLASSIFIER and LABELS_THE_CLASSIFIER_KNOWS (the protocol registry checks both
    first); the one classifier of its own in the registry is xception-ham10000's HAM10000 head.
    """
    classifier = HAM10000ReferenceClassifier(backbone=view.backbone)
    classes = np.array(classifier.classes)
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
