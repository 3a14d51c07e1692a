"""Embeddings of a library's images shrunk to each of Mahbod et al.'s (2024) sizes, cached per size.

The shrunk images get their own embedding-cache entry (backbone key + "@<size>px"), so they
never mix with the full-size vectors of the same files and a rerun embeds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from benchmarks.ablations import IMAGE_SIZES, downsample_image, image_size_ablation
from benchmarks.retrieval import RetrievalRun
from data_index.embed_transformed import embed_transformed
from models import Backbone


def embed_shrunk(
    backbone: Backbone,
    *,
    paths: Sequence[str],
    sha1s: Sequence[str],
    size: int,
    cache_dir: Path | None = None,
) -> np.ndarray:
    """Unit vectors of every image centre-cropped and shrunk to ``size`` px (then the
    backbone's own preprocessing scales it back up, so lost detail stays lost)."""
    return embed_transformed(
        backbone,
        paths=paths,
        sha1s=sha1s,
        tag=f"{size}px",
        transform=lambda image: downsample_image(image, size=size),
        cache_dir=cache_dir,
    )


def image_size_runs(
    *,
    backbone: Backbone,
    paths: Sequence[str],
    sha1s: Sequence[str],
    evaluate: Callable[..., RetrievalRun],
    sizes: Sequence[int] = IMAGE_SIZES,
    cache_dir: Path | None = None,
) -> list[RetrievalRun]:
    """One `evaluate(embeddings=...)` run per image size, each tagged with ``image_size``."""
    return image_size_ablation(
        embed_at_size=lambda size: embed_shrunk(
            backbone, paths=paths, sha1s=sha1s, size=size, cache_dir=cache_dir
        ),
        evaluate=evaluate,
        sizes=sizes,
    )
