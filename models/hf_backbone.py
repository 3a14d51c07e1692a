"""transformers encoders: CLIP/SigLIP-style dual encoders and image-only models (CLS token)."""

from __future__ import annotations

import torch
from PIL import Image

from models.base import Backbone, NoSpatialMap, WeightsUnavailable
from models.spec import BackboneSpec
from models.weights import local_weights, missing_weights_error


class ImageProcessorTransform:
    """Picklable wrapper: RGB PIL -> the processor's pixel tensor (C, H, W)."""

    def __init__(self, processor) -> None:
        self.processor = processor

    def __call__(self, image) -> torch.Tensor:
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]

    def whole(self, image) -> torch.Tensor:
        """An image already at the input size: normalised, neither resized nor cropped."""
        out = self.processor(
            images=image, do_resize=False, do_center_crop=False, return_tensors="pt"
        )
        return out["pixel_values"][0]


def _pooled(output) -> torch.Tensor:
    # transformers 5 returns a model output from get_*_features; 4.x returned the tensor.
    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output


class TransformersBackbone(Backbone):
    """``get_image_features`` when the model has it, else the CLS token of the last layer."""

    def __init__(self, spec: BackboneSpec, model, processor, tokenizer, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self.model = model.eval().to(self.device)
        self.preprocess = ImageProcessorTransform(processor)
        self.tokenizer = tokenizer
        vision = getattr(model.config, "vision_config", model.config)
        self.native_side = getattr(vision, "image_size", None)

    @property
    def has_text(self) -> bool:
        return self.spec.has_text and self.tokenizer is not None

    def _embed_images(self, batch: torch.Tensor) -> torch.Tensor:
        if hasattr(self.model, "get_image_features"):
            return _pooled(self.model.get_image_features(pixel_values=batch))
        return self.model(pixel_values=batch).last_hidden_state[:, 0]

    def _map_pixels(self, image, width: int, height: int) -> torch.Tensor:
        return self.preprocess.whole(image.resize((width, height), Image.Resampling.BICUBIC))

    def _feature_grid(self, batch: torch.Tensor) -> torch.Tensor:
        tower = getattr(self.model, "vision_model", self.model)
        config = getattr(self.model.config, "vision_config", self.model.config)
        tokens = tower(pixel_values=batch).last_hidden_state
        patch = getattr(config, "patch_size", None)
        if tokens.ndim != 3 or not isinstance(patch, int):
            raise NoSpatialMap(f"{self.spec.name} has no patch-token grid to compare locations of.")
        rows, cols = batch.shape[2] // patch, batch.shape[3] // patch
        prefix = tokens.shape[1] - rows * cols  # class and register tokens come first
        if not 0 <= prefix <= 8:
            raise NoSpatialMap(f"{self.spec.name}'s tokens do not form a {rows} x {cols} grid.")
        grid = tokens[:, prefix:].reshape(len(tokens), rows, cols, -1)
        return grid.permute(0, 3, 1, 2)

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        # SigLIP was trained on max-length padding; CLIP-style models ignore pad positions.
        max_length = min(int(self.tokenizer.model_max_length), 512)
        tokens = self.tokenizer(
            texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt"
        ).to(self.device)
        tokens.pop("token_type_ids", None)
        return _pooled(self.model.get_text_features(**tokens))


def _random_model(spec: BackboneSpec):
    import transformers

    arch = spec.options.get("arch_config")
    if not arch:
        raise WeightsUnavailable(
            f"Backbone '{spec.key}' has no offline architecture description, so it cannot be "
            "built with random weights here."
        )
    config = getattr(transformers, arch["class"])(**arch.get("kwargs", {}))
    return transformers.AutoModel.from_config(config)


def load_transformers(
    spec: BackboneSpec, *, random_weights: bool, **kwargs
) -> TransformersBackbone:
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    local = local_weights(spec)
    source = str(local) if local else spec.source
    options = dict(spec.options.get("from_pretrained", {}))
    processor_source = source if local or not random_weights else spec.options.get("processor")
    try:
        model = (
            _random_model(spec) if random_weights else AutoModel.from_pretrained(source, **options)
        )
        if random_weights and not processor_source:
            processor = _offline_processor(spec)
            tokenizer = None
        else:
            processor = AutoImageProcessor.from_pretrained(processor_source or source, **options)
            # An ad-hoc ``hf:`` name cannot know beforehand whether the model has a text tower.
            wants_text = spec.has_text and hasattr(model, "get_text_features")
            tokenizer = AutoTokenizer.from_pretrained(source, **options) if wants_text else None
    except (OSError, ValueError) as err:
        text = str(err).strip().splitlines()
        raise missing_weights_error(spec, f"{type(err).__name__}: {text[0] if text else ''}") from (
            None
        )
    if "mask_ratio" in model.config.to_dict():
        model.config.mask_ratio = 0.0  # ViT-MAE hides 75% of patches unless told otherwise
    return TransformersBackbone(
        spec, model, processor, tokenizer, random_weights=random_weights, **kwargs
    )


def _offline_processor(spec: BackboneSpec):
    """A processor of the right size for architecture-only timing (no hub files needed)."""
    from transformers import CLIPImageProcessor

    size = spec.input_size
    return CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
