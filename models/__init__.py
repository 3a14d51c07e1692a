"""Backbones: turn skin-lesion photos (and, for dual encoders, text) into comparable vectors.

Owns the backbone registry (``registry``: one ``BackboneSpec`` per model, ``spec``), name
parsing and the loader table (``factory``), the one ``Backbone`` interface (``base``), weight
lookup and availability (``weights``) and one module per loader (open_clip, transformers, timm,
and the hand-made ones). Knows nothing of case libraries, indexes, benchmarks or the UI.
"""

from models.base import (
    Backbone,
    NoSpatialMap,
    NoTextTower,
    WeightsUnavailable,
    open_image,
    to_rgb,
)
from models.factory import (
    UnknownBackbone,
    backbone_availability,
    get_spec,
    list_specs,
    load_backbone,
)
from models.spec import FAMILIES, BackboneSpec
from models.weights import Availability, availability

__all__ = [
    "FAMILIES",
    "Availability",
    "Backbone",
    "BackboneSpec",
    "NoSpatialMap",
    "NoTextTower",
    "UnknownBackbone",
    "WeightsUnavailable",
    "availability",
    "backbone_availability",
    "get_spec",
    "list_specs",
    "load_backbone",
    "open_image",
    "to_rgb",
]
