"""Backbones: turn skin-lesion photos (and, for dual encoders, text) into comparable vectors."""

from models.base import Backbone, NoTextTower, WeightsUnavailable, open_image, to_rgb
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
