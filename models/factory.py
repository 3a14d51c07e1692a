"""Name parsing and loading: one entry point from a string to a ready ``Backbone``."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path

from models.base import Backbone, Precision, WeightsUnavailable
from models.registry import SPECS, SPECS_BY_KEY
from models.runtime_onnx import parse_runtime
from models.spec import BackboneSpec
from models.weights import Availability, availability, hub_offline, missing_weights_error

# Loader name (a spec's ``options["loader"]``, else its library) -> (module, function). Each
# module is imported only when one of its backbones is loaded: importing ``models`` stays
# cheap, and a missing optional library fails only for its own backbones.
LOADERS: dict[str, tuple[str, str]] = {
    "open_clip": ("models.open_clip_backbone", "load_open_clip"),
    "transformers": ("models.hf_backbone", "load_transformers"),
    "timm": ("models.timm_backbone", "load_timm"),
    "efficientnet_lite0": ("models.timm_backbone", "load_efficientnet_lite0"),
    "color_texture": ("models.color_texture", "load_color_texture"),
    "xception_ham10000": ("models.xception_ham10000", "XceptionHAM10000Backbone"),
}

Loader = Callable[..., Backbone]

# Ad-hoc prefixes: any model of a supported library, outside the registry.
_PREFIXES = {
    "open_clip:": "open_clip",
    "hf-hub:": "open_clip",
    "local-dir:": "open_clip",
    "timm:": "timm",
    "hf:": "transformers",
    "transformers:": "transformers",
}


class UnknownBackbone(ValueError):
    """A backbone name that is neither a registry key, an alias nor a library-prefixed name."""


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_LOOKUP: dict[str, str] = {}
for _spec in SPECS:
    for _name in (_spec.key, _spec.name, *_spec.aliases):
        _LOOKUP.setdefault(_squash(_name), _spec.key)


def list_specs(*, family: str | None = None) -> list[BackboneSpec]:
    """Registry entries in display order, optionally of one family."""
    return [s for s in SPECS if family is None or s.family == family]


def get_spec(name: str) -> BackboneSpec:
    """Resolve a key, alias, display name or library-prefixed name to a spec.

    Prefixed names build a spec on the fly: ``open_clip:ViT-B-32/openai``, ``hf-hub:org/repo``
    and ``local-dir:/path`` (open_clip), ``timm:resnet18.a1_in1k`` or ``timm:local-dir:/path``,
    ``hf:org/repo`` or ``hf:/path/to/save_pretrained`` (transformers).
    """
    if not isinstance(name, str) or not name.strip():
        raise UnknownBackbone(f"Give a backbone name; valid keys: {', '.join(SPECS_BY_KEY)}.")
    text = name.strip()
    for prefix, library in _PREFIXES.items():
        if text.startswith(prefix):
            return _adhoc_spec(text, prefix, library)
    key = _LOOKUP.get(_squash(text))
    if key is None:
        raise UnknownBackbone(
            f"Unknown backbone '{text}'. Valid keys: {', '.join(SPECS_BY_KEY)}; or a "
            "library-prefixed name such as open_clip:ViT-B-32/openai, hf-hub:org/repo, "
            "timm:resnet50, hf:org/repo."
        )
    return SPECS_BY_KEY[key]


def _adhoc_spec(text: str, prefix: str, library: str) -> BackboneSpec:
    body = (
        text[len(prefix) :] if prefix in ("open_clip:", "timm:", "hf:", "transformers:") else text
    )
    if not body.strip():
        raise UnknownBackbone(f"'{text}' names no model after '{prefix}'.")
    tag = None
    if library == "open_clip" and not body.startswith(("hf-hub:", "local-dir:")) and "/" in body:
        body, tag = body.split("/", 1)
    is_local = body.startswith(("local-dir:", "/", "./", "~"))
    path = body.removeprefix("local-dir:")
    if path.startswith("~"):  # the libraries take paths literally
        body = body[: len(body) - len(path)] + str(Path(path).expanduser())
    weights_from = "local" if is_local else "hub"
    arch = None if ":" in body or "/" in body else body
    return BackboneSpec(
        key=text,
        name=text,
        family="general",
        library=library,  # type: ignore[arg-type]
        source=body,
        pretrained_tag=tag,
        dim=0,  # known once loaded
        input_size=224,
        has_text=library != "timm",
        licence="see the model card",
        weights_from=weights_from,
        arch=arch if library != "transformers" else None,
    )


def resolve_loader(name: str) -> Loader:
    """The function (or ``Backbone`` class) that builds backbones of loader ``name``."""
    if name not in LOADERS:
        raise ValueError(f"Unknown loader '{name}'. Valid loaders: {', '.join(LOADERS)}.")
    module, attribute = LOADERS[name]
    return getattr(importlib.import_module(module), attribute)


def backbone_availability(name: str) -> Availability:
    return availability(get_spec(name))


def load_backbone(
    name: str,
    *,
    device: str | None = None,
    batch_size: int = 32,
    precision: Precision = "fp32",
    random_weights: bool = False,
    runtime: str = "torch",
) -> Backbone:
    """Build a backbone by name; ``random_weights`` gives an architecture-only model (timing only).
    ``runtime`` "onnx" or "openvino" runs the image tower from its exported graph on the CPU
    (``models.runtime_onnx``); "torch" is eager PyTorch on ``device``.

    Raises ``UnknownBackbone`` for a bad name and ``WeightsUnavailable`` (one sentence saying
    what is missing and how to provide it) when the weights are not on this machine.
    """
    runtime = parse_runtime(runtime)
    if runtime != "torch" and device not in (None, "auto", "cpu"):
        raise ValueError(f"Runtime '{runtime}' runs on the CPU; drop device={device!r}.")
    spec = get_spec(name)
    if spec.unsupported:
        raise WeightsUnavailable(
            f"Backbone '{spec.key}' cannot be loaded here: {spec.unsupported}."
        )
    if not random_weights and hub_offline():
        avail = availability(spec)
        if avail.status in ("download", "gated"):
            raise missing_weights_error(spec, avail.detail)
    kwargs = {
        "device": device,
        "batch_size": batch_size,
        "precision": precision,
        "random_weights": random_weights,
    }
    if runtime != "torch":
        kwargs["device"] = "cpu"
    eager = resolve_loader(spec.options.get("loader", spec.library))(spec, **kwargs)
    if runtime == "torch":
        return eager
    from models.runtime_onnx import ExportedBackbone  # imports onnxruntime/openvino lazily

    return ExportedBackbone(eager, runtime=runtime)
