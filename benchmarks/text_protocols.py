"""Text protocols: class prompts query the image library, and images pick their class's prompt.

Takes text embeddings as arrays (from `Backbone.encode_texts` on `class_prompts(...)`), so
nothing here loads a model. Both protocols return a `RetrievalRun` that
`benchmarks.records.retrieval_records` scores like any other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmarks.retrieval import RetrievalRun, as_labels
from benchmarks.search import Metric, as_matrix, exact_search, l2_normalise

# CLIP-style templates; "{label}" is replaced by the readable class name.
PROMPT_TEMPLATES: tuple[str, ...] = (
    "a photo of {label}",
    "a clinical photo of {label}",
    "a dermatology photo of {label}, a skin condition",
)


def readable_label(name: str) -> str:
    """Folder-style class names read as words: "tinea_corporis" -> "tinea corporis"."""
    return " ".join(str(name).replace("_", " ").replace("-", " ").split())


def class_prompts(*, class_names: Sequence[str], template: str = PROMPT_TEMPLATES[0]) -> list[str]:
    """One prompt per class from a template such as "a photo of {label}"."""
    if "{label}" not in template:
        raise ValueError(
            f"template {template!r} has no '{{label}}' placeholder for the class name."
        )
    if len(class_names) == 0:
        raise ValueError("class_names is empty; pass the library's class labels.")
    return [template.format(label=readable_label(name)) for name in class_names]


def ensemble_prompt_embeddings(text_embeddings: np.ndarray) -> np.ndarray:
    """(n_templates, n_classes, dim) -> (n_classes, dim): mean of unit vectors, renormalised.

    CLIP's prompt ensembling: averaging several templates per class steadies zero-shot scores.
    """
    stack = np.asarray(text_embeddings, dtype=np.float64)
    if stack.ndim != 3:
        raise ValueError(
            f"text_embeddings must be (n_templates, n_classes, dim), got shape {stack.shape}."
        )
    unit = np.stack([l2_normalise(t, name="text_embeddings") for t in stack])
    return l2_normalise(unit.mean(axis=0), name="ensembled text_embeddings")


def _class_table(
    text_embeddings: np.ndarray, class_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    text = as_matrix(text_embeddings, name="text_embeddings")
    names = as_labels(np.asarray(list(class_names)), n=text.shape[0], name="class_names")
    if len(set(names.tolist())) != len(names):
        raise ValueError("class_names has repeats; give one text embedding per distinct class.")
    return text, names


def text_to_image(
    *,
    text_embeddings: np.ndarray,
    class_names: Sequence[str],
    image_embeddings: np.ndarray,
    image_labels: np.ndarray,
    k: int | None,
    metric: Metric = "cosine",
) -> RetrievalRun:
    """Each class prompt queries the images (Pham et al. (2025) section D); relevant = images of
    that class.

    `text_embeddings[i]` embeds the prompt for `class_names[i]`. query_rows index the prompts,
    neighbour_rows the images. With one query per class, hit rate moves in steps of 1/n_classes.
    """
    text, names = _class_table(text_embeddings, class_names)
    images = as_matrix(image_embeddings, name="image_embeddings")
    labels = as_labels(image_labels, n=images.shape[0], name="image_labels")
    found = exact_search(queries=text, index=images, k=k, metric=metric)
    return RetrievalRun(
        protocol="text-to-image",
        metric=metric,
        query_rows=np.arange(len(names)),
        query_labels=names,
        neighbour_rows=found.rows,
        retrieved_labels=labels[found.rows],
        scores=found.scores,
        n_relevant=(labels[None, :] == names[:, None]).sum(axis=1),
        index_rows=np.arange(images.shape[0]),
    )


def zero_shot_classification(
    *,
    text_embeddings: np.ndarray,
    class_names: Sequence[str],
    image_embeddings: np.ndarray,
    image_labels: np.ndarray,
    metric: Metric = "cosine",
) -> RetrievalRun:
    """Each image ranks the class prompts (Yan et al. (2025)): accuracy = hit rate at 1 of this run.

    Neighbours are prompt rows, so hit rate at k is top-k zero-shot accuracy and the macro
    hit rate at 1 is balanced accuracy. Every image label must be one of `class_names`.
    """
    text, names = _class_table(text_embeddings, class_names)
    images = as_matrix(image_embeddings, name="image_embeddings")
    labels = as_labels(image_labels, n=images.shape[0], name="image_labels")
    unknown = sorted(set(labels.tolist()) - set(names.tolist()), key=str)
    if unknown:
        raise ValueError(
            f"image labels {unknown} have no prompt; add them to class_names or drop those images."
        )
    found = exact_search(queries=images, index=text, k=len(names), metric=metric)
    return RetrievalRun(
        protocol="zero-shot",
        metric=metric,
        query_rows=np.arange(images.shape[0]),
        query_labels=labels,
        neighbour_rows=found.rows,
        retrieved_labels=names[found.rows],
        scores=found.scores,
        n_relevant=np.ones(images.shape[0], dtype=np.int64),
        index_rows=np.arange(len(names)),
    )
