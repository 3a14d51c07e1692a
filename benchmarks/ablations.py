"""Ablations: how retrieval changes with index size (Denner et al. (2024)) and image size (Mahbod et
al. (2024))."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from benchmarks.retrieval import RetrievalRun, as_labels, exclusion_mask, retrieve
from benchmarks.search import Metric, as_matrix

# Mahbod et al.'s (2024) MedMNIST sizes; 224 is most backbones' native input.
IMAGE_SIZES: tuple[int, ...] = (28, 64, 128, 224)


def _positive_sizes(sizes: Sequence[int], *, name: str) -> list[int]:
    out = sorted({int(s) for s in sizes})
    if not out or out[0] < 1 or len(out) != len(list(sizes)):
        raise ValueError(f"{name} must be distinct positive ints, got {list(sizes)}.")
    return out


def index_size_ablation(
    *,
    embeddings: np.ndarray,
    labels: np.ndarray,
    cases_per_class: Sequence[int],
    k: int,
    queries_per_class: int | None = None,
    query_rows: np.ndarray | None = None,
    metric: Metric = "cosine",
    case_ids: np.ndarray | None = None,
    group_ids: np.ndarray | None = None,
    seed: int = 0,
) -> list[RetrievalRun]:
    """A fixed query set against indexes of N cases per class, one run per N (Denner et al. (2024),
    Fig. 3B).

    Queries: `query_rows`, or `queries_per_class` cases drawn per class (one photo each).
    Index: drawn from the cases that share no case or duplicate group with any query; the
    N-case index is a prefix of one seeded order, so indexes are nested as N grows. Only
    classes with at least max(N) such cases take part (Denner et al. (2024) likewise kept classes
    large
    enough); the run params name the classes left out. k is capped at the smallest index.
    """
    vectors = as_matrix(embeddings, name="embeddings")
    n = vectors.shape[0]
    labels = as_labels(labels, n=n)
    sizes = _positive_sizes(cases_per_class, name="cases_per_class")
    cases = np.arange(n) if case_ids is None else as_labels(case_ids, n=n, name="case_ids")
    rng = np.random.default_rng(seed)

    if (query_rows is None) == (queries_per_class is None):
        raise ValueError("pass exactly one of query_rows (a fixed query set) or queries_per_class.")
    if query_rows is None:
        query_rows = _draw_query_rows(labels, cases, queries_per_class, rng)
    query_rows = np.asarray(query_rows, dtype=np.int64)

    # Everything that shares a case or group with some query is out of the pool.
    blocked = exclusion_mask(
        query_rows=query_rows, index_rows=np.arange(n), case_ids=cases, group_ids=group_ids
    ).any(axis=0)
    pool = np.flatnonzero(~blocked)
    order: dict[object, list] = {}  # class -> its pool cases in a seeded order
    for label in np.unique(labels[pool]).tolist():
        in_class = pool[labels[pool] == label]
        unique_cases = np.unique(cases[in_class])
        order[label] = rng.permutation(unique_cases).tolist()
    query_classes = set(labels[query_rows].tolist())
    kept = sorted((c for c in order if len(order[c]) >= sizes[-1] and c in query_classes), key=str)
    dropped = sorted(query_classes - set(kept), key=str)
    if not kept:
        raise ValueError(
            f"no class has {sizes[-1]} index cases left after choosing the queries; "
            "lower the largest cases_per_class or use fewer queries per class."
        )
    queries = query_rows[np.isin(labels[query_rows], kept)]

    runs = []
    for size in sizes:
        chosen = {c for label in kept for c in order[label][:size]}
        index_rows = pool[np.isin(cases[pool], list(chosen)) & np.isin(labels[pool], kept)]
        runs.append(
            retrieve(
                embeddings=vectors,
                labels=labels,
                query_rows=queries,
                index_rows=index_rows,
                k=min(k, len(index_rows)),
                metric=metric,
                case_ids=cases,
                group_ids=group_ids,
                protocol="index-size",
                params={
                    "index_cases_per_class": size,
                    "index_items": len(index_rows),
                    "classes": len(kept),
                    "classes_dropped": ", ".join(map(str, dropped)),
                    "seed": seed,
                },
            )
        )
    return runs


def _draw_query_rows(
    labels: np.ndarray, cases: np.ndarray, per_class: int, rng: np.random.Generator
) -> np.ndarray:
    """`per_class` random cases per class, one photo (the first row) of each."""
    if isinstance(per_class, bool) or not isinstance(per_class, int | np.integer) or per_class < 1:
        raise ValueError(f"queries_per_class must be a positive int, got {per_class!r}.")
    rows = []
    for label in np.unique(labels).tolist():
        in_class = np.flatnonzero(labels == label)
        first_rows = {}
        for row in in_class.tolist():
            first_rows.setdefault(cases[row], row)
        picked = rng.permutation(np.array(sorted(first_rows.values())))[:per_class]
        rows.extend(picked.tolist())
    return np.sort(np.array(rows, dtype=np.int64))


def downsample_image(image: Image.Image, *, size: int) -> Image.Image:
    """Centre-crop to a square and shrink to size x size, as MedMNIST stores its images.

    The backbone's own preprocess then scales it back up to its input size, so detail lost
    here stays lost: that is the image-size ablation of Mahbod et al. (2024).
    """
    if size < 1:
        raise ValueError(f"size must be a positive int, got {size}.")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return square.resize((size, size), Image.Resampling.BOX)


def size_transform(size: int) -> Callable[[Image.Image], Image.Image]:
    """A picklable image -> image transform for one size, for DataLoader workers."""
    return functools.partial(downsample_image, size=size)


def image_size_ablation(
    *,
    embed_at_size: Callable[[int], np.ndarray],
    evaluate: Callable[..., RetrievalRun],
    sizes: Sequence[int] = IMAGE_SIZES,
) -> list[RetrievalRun]:
    """Run one protocol on embeddings of the same images downsampled to each size.

    The runner supplies `embed_at_size(size)` (typically the library's images through
    `size_transform(size)` then the backbone) and `evaluate(embeddings=...)` (e.g. a
    `functools.partial` of `leave_one_out`); each run gets `image_size` in its params.
    """
    runs = []
    for size in _positive_sizes(sizes, name="sizes"):
        run = evaluate(embeddings=embed_at_size(size))
        runs.append(dataclasses.replace(run, params={**run.params, "image_size": size}))
    return runs
