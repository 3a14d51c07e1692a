"""xception-ham10000: the Xception image branch of the sklesion Keras model, run in PyTorch.

sklesion 0.2.2 (MIT, PyPI) ships ``model.keras``: Normalization -> keras.applications Xception
(global average pooled, 2048-d) plus a small metadata branch and a 7-class HAM10000 head. The
weights are read with zipfile + h5py (no Keras, no TensorFlow) and mapped onto the same graph
written in PyTorch. The package itself is never imported: its model.py imports TensorFlow.
Where the file comes from (installed package, weights folder, or the wheel fetched on first
use) is models/sklesion_weights.py.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from models.base import Backbone, ImageInput
from models.keras_weights import read_keras_archive
from models.registry import SPECS_BY_KEY
from models.sklesion_weights import INSTALL, sklesion_model_file
from models.spec import BackboneSpec
from models.xception_arch import SeparableConv2d, SklesionNet

INPUT_SIZE = 254  # model_props.pkl "img_shape" and the Keras InputLayer batch_shape


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """model_props.pkl holds numpy arrays and scalars only; refuse anything else."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str) -> type:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"model_props.pkl refers to {module}.{name}; refused.")
        return super().find_class(module.replace("numpy.core", "numpy._core"), name)


def read_model_props(model_file: Path) -> dict:
    """sklesion's model_props.pkl (image size, age mean/max, one-hot maps, class order)."""
    with open(model_file.with_name("model_props.pkl"), "rb") as fh:
        return _NumpyOnlyUnpickler(fh).load()


def tf_resize_bilinear(pixels: np.ndarray, size: int) -> np.ndarray:
    """``tf.image.resize(pixels, (size, size))`` (bilinear, no antialias), in float32 numpy.

    Follows TF's CPU kernel (resize_bilinear_op.cc, half-pixel centers): the same source
    indices, lerp weights and order of float32 operations. Input HxWxC uint8, output float32.
    """
    if pixels.shape[0] == size and pixels.shape[1] == size:
        return pixels.astype(np.float32)

    def weights(in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scale = np.float32(in_size) / np.float32(size)
        pos = (np.arange(size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
        floor = np.floor(pos)
        lower = np.maximum(floor, 0).astype(np.int64)
        upper = np.minimum(np.ceil(pos), in_size - 1).astype(np.int64)
        return lower, upper, (pos - floor).astype(np.float32)

    y0, y1, ly = weights(pixels.shape[0])
    x0, x1, lx = weights(pixels.shape[1])
    rows0, rows1 = pixels[y0].astype(np.float32), pixels[y1].astype(np.float32)
    lx, ly = lx[None, :, None], ly[:, None, None]
    top = rows0[:, x0] + (rows0[:, x1] - rows0[:, x0]) * lx
    bottom = rows1[:, x0] + (rows1[:, x1] - rows1[:, x0]) * lx
    return top + (bottom - top) * ly


class KerasPreprocess:
    """RGB PIL -> float32 (3, 254, 254) in 0..255: sklesion's ``tf.image.resize`` and nothing else.

    The model has no Rescaling layer: its Normalization was adapted on 0..255 pixels.
    """

    def __init__(self, size: int = INPUT_SIZE) -> None:
        self.size = size

    def __call__(self, image: Image.Image) -> torch.Tensor:
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
        resized = tf_resize_bilinear(pixels, self.size)
        return torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1)))


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _check_conv(cfg: dict, name: str, module: nn.Module) -> None:
    """Refuse a file whose conv geometry differs from the PyTorch graph (silent garbage else)."""
    conv = module.depthwise if isinstance(module, SeparableConv2d) else module
    padding = "valid" if name.startswith("block1_") else "same"
    if list(cfg["strides"]) != list(conv.stride) or cfg["padding"] != padding or cfg["use_bias"]:
        raise ValueError(
            f"Keras layer '{name}' has strides {cfg['strides']}, padding {cfg['padding']!r}: "
            "not the Xception this converter was written for."
        )


def _convert(archive_path: Path) -> dict[str, torch.Tensor]:
    """Map every Keras variable of model.keras onto ``SklesionNet``'s state_dict names."""
    archive = read_keras_archive(archive_path)
    with torch.device("meta"):  # shapes and names only: skips initialising 21M parameters
        net = SklesionNet()
    state: dict[str, torch.Tensor] = {}
    norm = archive.weights("normalization", "Normalization")
    norm_cfg = archive.layers["normalization"].config
    size = [int(v) for v in read_model_props(archive_path)["img_shape"]]
    if norm_cfg["invert"] or list(norm_cfg["axis"]) != [-1] or size != [INPUT_SIZE] * 2:
        raise ValueError(f"{archive_path.name} is not sklesion 0.2.2's model; {INSTALL}.")
    state["normalization.mean"] = _tensor(norm["mean"].reshape(-1))
    state["normalization.variance"] = _tensor(norm["variance"].reshape(-1))
    groups = (("xception", net.xception.layers, "xception/"), ("head", net.head.layers, ""))
    for prefix, layers, keras_prefix in groups:
        for name, module in layers.items():
            key = f"{prefix}.layers.{name}"
            if isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
                w = archive.weights(keras_prefix + name, "BatchNormalization")
                state[f"{key}.weight"], state[f"{key}.bias"] = (
                    _tensor(w["gamma"]),
                    _tensor(w["beta"]),
                )
                state[f"{key}.running_mean"] = _tensor(w["moving_mean"])
                state[f"{key}.running_var"] = _tensor(w["moving_variance"])
                state[f"{key}.num_batches_tracked"] = torch.tensor(0)
            elif isinstance(module, SeparableConv2d):
                w = archive.weights(keras_prefix + name, "SeparableConv2D")
                _check_conv(archive.layers[keras_prefix + name].config, name, module)
                # depthwise HW C 1 -> C 1 H W; pointwise 1 1 Cin Cout -> Cout Cin 1 1
                state[f"{key}.depthwise.weight"] = _tensor(
                    w["depthwise_kernel"].transpose(2, 3, 0, 1)
                )
                state[f"{key}.pointwise.weight"] = _tensor(
                    w["pointwise_kernel"].transpose(3, 2, 0, 1)
                )
            elif isinstance(module, nn.Conv2d):
                w = archive.weights(keras_prefix + name, "Conv2D")
                _check_conv(archive.layers[keras_prefix + name].config, name, module)
                state[f"{key}.weight"] = _tensor(w["kernel"].transpose(3, 2, 0, 1))  # HWIO -> OIHW
            elif isinstance(module, nn.Linear):
                w = archive.weights(keras_prefix + name, "Dense")
                state[f"{key}.weight"], state[f"{key}.bias"] = (
                    _tensor(w["kernel"].T),
                    _tensor(w["bias"]),
                )
    expected = net.state_dict()
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise ValueError(
                f"{archive_path.name}: {key} has shape {tuple(tensor.shape)}, the PyTorch graph "
                f"expects {tuple(expected[key].shape)}; reinstall with {INSTALL}."
            )
    used = {k for k in state if not k.endswith("num_batches_tracked")}
    stored = sum(
        v.size for layer in archive.variables.values() for k, v in layer.items() if k != "count"
    )
    if sum(state[k].numel() for k in used) != stored or set(state) != set(expected):
        raise ValueError(
            f"{archive_path.name}: not every Keras variable found its place; {INSTALL}."
        )
    return state


@functools.lru_cache(maxsize=2)
def _converted_state(path: str, mtime_ns: int) -> dict[str, torch.Tensor]:
    """Converted once per file version (keyed by path and modification time)."""
    return _convert(Path(path))


def load_sklesion_net(*, random_weights: bool = False) -> SklesionNet:
    """The PyTorch ``SklesionNet`` in eval mode, with the package's weights unless random."""
    if random_weights:
        return SklesionNet().eval()
    path = sklesion_model_file()
    state = _converted_state(str(path), path.stat().st_mtime_ns)
    with torch.device("meta"):  # every tensor comes from the file: no random initialisation
        net = SklesionNet()
    # Clones keep the cached tensors private to this call, so a caller cannot alter the cache.
    net.load_state_dict({k: v.clone() for k, v in state.items()}, assign=True)
    return net.eval()


class XceptionHAM10000Backbone(Backbone):
    """2048-d pooled Xception features of sklesion's HAM10000 model (dermatology, MIT)."""

    def __init__(self, spec: BackboneSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self.net = load_sklesion_net(random_weights=self.random_weights).to(self.device)
        # channels_last: about 1.7x faster on a 2-core CPU (separable convs); same numbers.
        self._memory_format = (
            torch.channels_last if self.device.type in ("cpu", "cuda") else torch.contiguous_format
        )
        self.net = self.net.to(memory_format=self._memory_format)
        self.preprocess = KerasPreprocess(INPUT_SIZE)

    def _embed_images(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net.features(batch.float().contiguous(memory_format=self._memory_format))


class HAM10000ReferenceClassifier:
    """sklesion's own 7-class HAM10000 classifier: this model's own classifier, not retrieval.

    For the benchmark to set against retrieval votes. The package also feeds sex, body site and
    age; by default they are what it does with unknowns: 'unknown' one-hots and a missing age
    (filled with the training mean, age_missing=1).
    """

    def __init__(
        self,
        *,
        backbone: XceptionHAM10000Backbone | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 32,
        sex: str = "unknown",
        location: str = "unknown",
        age: float | None = None,
    ) -> None:
        if backbone is None:
            backbone = XceptionHAM10000Backbone(
                SPECS_BY_KEY["xception-ham10000"], device=device, batch_size=batch_size
            )
        if not isinstance(backbone, XceptionHAM10000Backbone) or backbone.random_weights:
            raise ValueError("Give a pretrained xception-ham10000 backbone (not random weights).")
        self.backbone = backbone
        props = read_model_props(sklesion_model_file())
        self.classes: tuple[str, ...] = tuple(
            props["i_cl_map"][i] for i in sorted(props["i_cl_map"])
        )
        self.meta = torch.tensor(
            [self._meta_vector(props, sex, location, age)], dtype=torch.float32
        )

    @staticmethod
    def _meta_vector(props: dict, sex: str, location: str, age: float | None) -> list[float]:
        """sklesion's layout: sex one-hot (3), site one-hot (5), age / age_max, age_missing."""
        sexes, sites = props["oh_map"]["sex"], props["oh_map"]["loc"]
        if sex not in sexes or location not in sites:
            raise ValueError(
                f"sex must be one of {sorted(sexes)} and location one of {sorted(sites)}; "
                f"got sex={sex!r}, location={location!r}."
            )
        missing = age is None
        years = float(props["age_mean"]) if missing else float(age)
        return [*sexes[sex], *sites[location], years / float(props["age_max"]), float(missing)]

    def proba_from_features(self, features: np.ndarray) -> np.ndarray:
        """(n, 7) probabilities from raw (not L2-normalised) 2048-d features of this backbone."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != 2048:
            raise ValueError(
                f"Expected raw (n, 2048) xception-ham10000 features, got {features.shape}."
            )
        device = self.backbone.device
        with torch.inference_mode():
            x = torch.from_numpy(features).to(device)
            probs = self.backbone.net.head(x, self.meta.to(device).expand(len(x), -1))
        return probs.cpu().numpy()

    def predict_proba(self, images: Sequence[ImageInput]) -> np.ndarray:
        """(n, 7) class probabilities, columns in ``self.classes`` order."""
        return self.proba_from_features(self.backbone.encode_images(images, normalize=False))
