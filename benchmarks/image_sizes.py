"""Embeddings of a library's images shrunk to each of Mahbod et al.'s (2024) sizes, cached per size.

The shrunk images get their own embedding-cache entry (backbone key + "@<size>px"), so they
never mix with the full-size vectors of the same files and a rerun embeds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from benchmarks.ablations import IMAGE_SIZES, downsample_image, image_size_ablation
from benchmarks.retrieval import RetrievalRun
from data_index.embed_cache import EmbeddingCache
from models import Backbone, open_image
from models.base import l2_normalize


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
    if len(paths) != len(sha1s):
        raise ValueError("Give one sha1 per path.")
    cache = None
    if backbone.weights_origin == "pretrained":
        cache = EmbeddingCache(
            backbone_key=f"{backbone.key}@{size}px",
            weights_origin=backbone.weights_origin,
            root=cache_dir,
        )
    found = cache.lookup(list(sha1s), dim=backbone.spec.dim or None) if cache else {}
    todo = [i for i, h in enumerate(sha1s) if h not in found]
    fresh: dict[str, np.ndarray] = {}
    for start in range(0, len(todo), backbone.batch_size):
        rows = todo[start : start + backbone.batch_size]
        batch = torch.stack(
            [backbone.preprocess(downsample_image(open_image(paths[i]), size=size)) for i in rows]
        )
        out = backbone.embed_batch(batch, normalize=False)
        fresh.update({sha1s[i]: out[j] for j, i in enumerate(rows)})
    if cache is not None and fresh:
        cache.store(list(fresh), np.stack(list(fresh.values())))
    lookup = {**found, **fresh}
    return l2_normalize(np.stack([lookup[h] for h in sha1s]).astype(np.float32))


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
