"""Why this match: training-free similarity maps between a query photo and a retrieved case.

For every location of one photo, the map holds its best cosine similarity to any location of the
other, from the backbone's last-block feature map. Two choices make it point at the right place:

- Features are centred per image (the image's mean feature subtracted before normalising), so
  what is everywhere in a photo, such as plain skin, cancels and the map shows what is specific.
- The other photo is rendered at several scales and the best over all of them is kept, because
  a lesion can be a whole query photo and a small part of the case (or the other way round).
  Only backbones that take any input size (convolutional networks) can do this; patch models
  see one scale.

Convolutional backbones give their last stride-16 feature map: the stride-32 one has too few
locations to point inside a lesion. Patch models give their last block's patch tokens. The
choices were made on pasted-crop composites of infectious-8 photos
(``benchmarks/perf/pointing_game.py``): with efficientnet-lite0, stride-32 features put the
map's peak on the paste in 8 of 20, stride-16 ones in 19 of 20; subtracting one mean shared by
both photos instead of each photo's own found it in 2 of 20 (stride 32).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from models import Backbone, open_image
from models.base import ImageInput

# Sizes (relative to the explained photo's shorter side, itself the backbone's input size) at
# which the other photo is matched; the best over all of them is kept.
MATCH_SCALES = (1.0, 0.7, 0.5, 0.35)
MIN_SIDE = 64  # below this a feature map has too few locations to compare


@dataclass(frozen=True)
class SimilarityMap:
    """One photo's map: ``heat`` is (height, width) in [0, 1] over the photo's own pixels.

    ``low`` and ``high`` are the centred cosine similarities that 0 and 1 stand for.
    """

    heat: np.ndarray
    low: float
    high: float


@dataclass(frozen=True)
class MapPair:
    """Both directions for one query and one retrieved case, and how they were made."""

    query: SimilarityMap
    match: SimilarityMap
    backbone: str
    weights_origin: str
    scales: tuple[float, ...]


def centred(features: np.ndarray) -> np.ndarray:
    """(h, w, c) -> (h*w, c): the image's mean feature removed, each location unit-norm."""
    flat = features.reshape(-1, features.shape[-1]).astype(np.float32)
    flat = flat - flat.mean(axis=0, keepdims=True)
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-6)


def best_match_grid(target: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """(h, w) best cosine of each ``target`` location to any location of any of ``others``."""
    rows = centred(target)
    best = np.full(len(rows), -1.0, dtype=np.float32)
    for other in others:
        best = np.maximum(best, (rows @ centred(other).T).max(axis=1))
    return best.reshape(target.shape[:2])


def _grids(backbone: Backbone, image: Image.Image, scales: tuple[float, ...]) -> list:
    if not backbone.any_input_size:
        return [backbone.feature_map(image)]
    side = backbone.spec.input_size
    return [backbone.feature_map(image, side=max(round(side * s), MIN_SIDE)) for s in scales]


def _to_image(grid: np.ndarray, size: tuple[int, int]) -> SimilarityMap:
    """Upsample a grid to ``size`` (width, height) and stretch it to [0, 1]."""
    low, high = float(grid.min()), float(grid.max())
    heat = cv2.resize(grid.astype(np.float32), size, interpolation=cv2.INTER_CUBIC)
    heat = (heat - low) / (high - low) if high > low else np.zeros_like(heat)
    return SimilarityMap(heat=np.clip(heat, 0.0, 1.0).astype(np.float32), low=low, high=high)


def _check_scales(scales: tuple[float, ...]) -> tuple[float, ...]:
    if not scales or any(not 0.0 < s <= 1.0 for s in scales):
        raise ValueError(f"Scales must be in (0, 1]; got {scales}.")
    return (1.0, *(s for s in scales if s != 1.0))  # index 0: the photo's own grid


def similarity_map(
    backbone: Backbone,
    *,
    image: ImageInput,
    other: ImageInput,
    scales: tuple[float, ...] = MATCH_SCALES,
) -> SimilarityMap:
    """The map over ``image``: each location's best match anywhere in ``other``, at any scale."""
    scales = _check_scales(scales)
    image, other = open_image(image), open_image(other)
    own = backbone.feature_map(image, side=backbone.spec.input_size)
    others = _grids(backbone, other, scales)
    return _to_image(best_match_grid(own, others), image.size)


def similarity_maps(
    backbone: Backbone,
    *,
    query: ImageInput,
    match: ImageInput,
    scales: tuple[float, ...] = MATCH_SCALES,
) -> MapPair:
    """Maps over the query and over the match; raises ``NoSpatialMap`` for global-only backbones.

    A pair from an architecture-only (random weights) backbone is labelled as such in
    ``weights_origin``: it shows what the code does, not what a model sees.
    """
    used = _check_scales(scales)
    q_image, m_image = open_image(query), open_image(match)
    q_grids, m_grids = _grids(backbone, q_image, used), _grids(backbone, m_image, used)
    return MapPair(
        query=_to_image(best_match_grid(q_grids[0], m_grids), q_image.size),
        match=_to_image(best_match_grid(m_grids[0], q_grids), m_image.size),
        backbone=backbone.key,
        weights_origin=backbone.weights_origin,
        scales=used if backbone.any_input_size else (1.0,),
    )


def overlay(image: ImageInput, heat: np.ndarray, *, alpha: float = 0.5) -> Image.Image:
    """The photo with ``heat`` (its own height x width, [0, 1]) blended on as an inferno map."""
    rgb = np.asarray(open_image(image), dtype=np.float32)
    if heat.shape != rgb.shape[:2]:
        raise ValueError(f"A {heat.shape} map does not fit a {rgb.shape[:2]} photo.")
    colours = heat_colours(heat).astype(np.float32)
    return Image.fromarray(((1 - alpha) * rgb + alpha * colours).round().astype(np.uint8))


def heat_colours(heat: np.ndarray) -> np.ndarray:
    """(h, w) in [0, 1] -> (h, w, 3) uint8 RGB, dark purple (least alike) to yellow (most)."""
    grey = (np.clip(heat, 0.0, 1.0) * 255).round().astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
