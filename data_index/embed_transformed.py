"""Embeddings of a library's images after a fixed transform (a mirror image, a shrunk copy).

A transformed image gets its own embedding-cache entry (backbone key + "@<tag>"), so its vector
never mixes with the plain one of the same file and a rerun embeds nothing new.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from data_index.embed_cache import EmbeddingCache
from models import Backbone, open_image
from models.base import l2_normalize


def embed_transformed(
    backbone: Backbone,
    *,
    paths: Sequence[str],
    sha1s: Sequence[str],
    tag: str,
    transform: Callable[[Image.Image], Image.Image],
    cache_dir: Path | None = None,
) -> np.ndarray:
    """Unit vectors of ``transform(image)`` for every path, cached under ``<key>@<tag>``."""
    if len(paths) != len(sha1s):
        raise ValueError("Give one sha1 per path.")
    cache = None
    if backbone.weights_origin == "pretrained":  # random weights differ between two loads
        cache = EmbeddingCache(
            backbone_key=f"{backbone.key}@{tag}",
            weights_origin=backbone.weights_origin,
            root=cache_dir,
        )
    found = cache.lookup(list(sha1s), dim=backbone.spec.dim or None) if cache else {}
    todo = [i for i, h in enumerate(sha1s) if h not in found]
    fresh: dict[str, np.ndarray] = {}
    for start in range(0, len(todo), backbone.batch_size):
        rows = todo[start : start + backbone.batch_size]
        batch = torch.stack([backbone.preprocess(transform(open_image(paths[i]))) for i in rows])
        out = backbone.embed_batch(batch, normalize=False)
        fresh.update({sha1s[i]: out[j] for j, i in enumerate(rows)})
    if cache is not None and fresh:
        cache.store(list(fresh), np.stack(list(fresh.values())))
    lookup = {**found, **fresh}
    return l2_normalize(np.stack([lookup[h] for h in sha1s]).astype(np.float32))


def mirrored(image: Image.Image) -> Image.Image:
    """The photo flipped left to right: a lesion has no preferred side."""
    return ImageOps.mirror(image)
