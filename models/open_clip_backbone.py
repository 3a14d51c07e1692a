"""open_clip dual encoders: built-in tags, ``hf-hub:`` repositories and ``local-dir:`` folders."""

from __future__ import annotations

from pathlib import Path

import torch

from models.base import Backbone, NoSpatialMap, WeightsUnavailable
from models.spec import BackboneSpec
from models.weights import local_weights, missing_weights_error


class OpenClipBackbone(Backbone):
    def __init__(self, spec: BackboneSpec, model, preprocess, tokenizer, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self.model = model.eval().to(self.device)
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        size = getattr(model.visual, "image_size", None)
        self.native_side = int(size[0] if isinstance(size, tuple | list) else size or 0) or None

    @property
    def has_text(self) -> bool:
        return self.spec.has_text and self.tokenizer is not None

    def _embed_images(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(batch)

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(texts).to(self.device))

    def _feature_grid(self, batch: torch.Tensor) -> torch.Tensor:
        # ViT patch tokens, a timm trunk's or a ResNet's last stage, all as NCHW.
        try:
            out = self.model.visual.forward_intermediates(batch, indices=1, intermediates_only=True)
        except (AttributeError, NotImplementedError) as err:
            raise NoSpatialMap(
                f"{self.spec.name} does not expose its last block's feature map."
            ) from err
        return out["image_intermediates"][-1]


def open_clip_name(spec: BackboneSpec, *, random_weights: bool) -> tuple[str, str | None]:
    """(model name, pretrained tag) to hand to open_clip for this spec."""
    if random_weights:
        if not spec.arch:
            raise WeightsUnavailable(
                f"Backbone '{spec.key}' has no offline architecture description (its config "
                "lives on the hub), so it cannot be built with random weights here."
            )
        return spec.arch, None
    local = local_weights(spec)
    if local:
        return f"local-dir:{local}", None
    return spec.source, spec.pretrained_tag


def load_open_clip(spec: BackboneSpec, *, random_weights: bool, **kwargs) -> OpenClipBackbone:
    import open_clip

    name, tag = open_clip_name(spec, random_weights=random_weights)
    folder = Path(name.removeprefix("local-dir:"))
    # open_clip quietly builds a random model (a log warning only) from a config-only folder.
    if name.startswith("local-dir:") and folder.is_dir() and not _has_checkpoint(folder):
        raise missing_weights_error(spec, "no .safetensors, .bin or .pth file in the folder")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=tag)
        tokenizer = _tokenizer(spec, name, random_weights=random_weights)
    except (OSError, RuntimeError, ValueError) as err:
        text = str(err).strip().splitlines()
        raise missing_weights_error(spec, f"{type(err).__name__}: {text[0] if text else ''}") from (
            None
        )
    return OpenClipBackbone(
        spec, model, preprocess, tokenizer, random_weights=random_weights, **kwargs
    )


def _has_checkpoint(folder: Path) -> bool:
    return any(p.suffix in (".safetensors", ".bin", ".pth") for p in folder.iterdir())


def _tokenizer(spec: BackboneSpec, name: str, *, random_weights: bool):
    import open_clip

    if not spec.has_text:
        return None
    try:
        return open_clip.get_tokenizer(spec.tokenizer or name)
    except (OSError, RuntimeError, ValueError):
        if random_weights:  # e.g. SigLIP's tokenizer lives on the hub: time the image tower only
            return None
        raise
