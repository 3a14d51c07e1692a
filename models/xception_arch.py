"""Xception in PyTorch with Keras' exact layout and arithmetic, plus sklesion's HAM10000 head.

Mirrors keras.applications.Xception(include_top=False, pooling="avg") as saved in sklesion's
model.keras: modules carry the Keras layer names, BatchNorm epsilon is Keras' 1e-3, and
stride-2 'same' max pooling pads like TensorFlow (after the image first).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

KERAS_BN_EPS = 1e-3  # every BatchNormalization in config.json
KERAS_EPSILON = 1e-7  # keras.config.epsilon(): floor of the Normalization layer's std
MIDDLE_BLOCKS = range(5, 13)


class KerasNormalization(nn.Module):
    """keras.layers.Normalization: (x - mean) / max(sqrt(variance), epsilon), per channel."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.register_buffer("mean", torch.full((channels,), 127.5))
        self.register_buffer("variance", torch.full((channels,), 127.5**2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = torch.clamp(torch.sqrt(self.variance), min=KERAS_EPSILON)
        return (x - self.mean[:, None, None]) / std[:, None, None]


class SeparableConv2d(nn.Module):
    """Keras SeparableConv2D, 3x3 'same' stride 1, no bias: depthwise then pointwise."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def max_pool_same(x: torch.Tensor) -> torch.Tensor:
    """MaxPooling2D(3, strides=2, padding='same'): TF pads the bottom/right first.

    Even sizes need 1 pixel, put after the image only; a symmetric pad would shift every window.
    """
    pads = []
    # Plain ints, so an exported ONNX graph (fixed spatial size) carries these pads as
    # constants: traced shape arithmetic here came out as pads that shrink the map by a pixel.
    for size in (int(x.shape[-1]), int(x.shape[-2])):
        total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, 2)


class KerasXception(nn.Module):
    """keras.applications.Xception(include_top=False, pooling='avg'), layers named as in Keras.

    Module names are the Keras layer names, so converting is a lookup, not a table. The 1x1
    stride-2 'same' shortcuts need no padding at any size, so plain Conv2d matches them.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: dict[str, nn.Module] = {}

        def conv(name: str, cin: int, cout: int, kernel: int, stride: int) -> None:
            layers[name] = nn.Conv2d(cin, cout, kernel, stride, bias=False)
            layers[f"{name}_bn"] = nn.BatchNorm2d(cout, eps=KERAS_BN_EPS)

        def sep(name: str, cin: int, cout: int) -> None:
            layers[name] = SeparableConv2d(cin, cout)
            layers[f"{name}_bn"] = nn.BatchNorm2d(cout, eps=KERAS_BN_EPS)

        def shortcut(index: int, cin: int, cout: int) -> None:
            suffix = f"_{index}" if index else ""  # Keras auto-named these conv2d, conv2d_1, ...
            layers[f"conv2d{suffix}"] = nn.Conv2d(cin, cout, 1, 2, bias=False)
            layers[f"batch_normalization{suffix}"] = nn.BatchNorm2d(cout, eps=KERAS_BN_EPS)

        conv("block1_conv1", 3, 32, 3, 2)
        conv("block1_conv2", 32, 64, 3, 1)
        for index, (block, cin, cout) in enumerate(((2, 64, 128), (3, 128, 256), (4, 256, 728))):
            sep(f"block{block}_sepconv1", cin, cout)
            sep(f"block{block}_sepconv2", cout, cout)
            shortcut(index, cin, cout)
        for block in MIDDLE_BLOCKS:
            for i in (1, 2, 3):
                sep(f"block{block}_sepconv{i}", 728, 728)
        sep("block13_sepconv1", 728, 728)
        sep("block13_sepconv2", 728, 1024)
        shortcut(3, 728, 1024)
        sep("block14_sepconv1", 1024, 1536)
        sep("block14_sepconv2", 1536, 2048)
        self.layers = nn.ModuleDict(layers)

    def _down_block(self, x: torch.Tensor, block: int, index: int) -> torch.Tensor:
        layer = self.layers
        suffix = f"_{index}" if index else ""
        residual = layer[f"batch_normalization{suffix}"](layer[f"conv2d{suffix}"](x))
        if block != 2:  # block 2 follows block1_conv2_act, already rectified
            x = F.relu(x)
        x = F.relu(layer[f"block{block}_sepconv1_bn"](layer[f"block{block}_sepconv1"](x)))
        x = layer[f"block{block}_sepconv2_bn"](layer[f"block{block}_sepconv2"](x))
        return max_pool_same(x) + residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layers
        x = self.middle_flow(x)
        x = self._down_block(x, 13, 3)
        x = F.relu(layer["block14_sepconv1_bn"](layer["block14_sepconv1"](x)))
        x = F.relu(layer["block14_sepconv2_bn"](layer["block14_sepconv2"](x)))
        return x.mean(dim=(2, 3))

    def middle_flow(self, x: torch.Tensor) -> torch.Tensor:
        """Entry and middle flow: (n, 728, h/16, w/16), the last stride-16 feature map."""
        layer = self.layers
        x = F.relu(layer["block1_conv1_bn"](layer["block1_conv1"](x)))
        x = F.relu(layer["block1_conv2_bn"](layer["block1_conv2"](x)))
        for index, block in enumerate((2, 3, 4)):
            x = self._down_block(x, block, index)
        for block in MIDDLE_BLOCKS:
            residual = x
            for i in (1, 2, 3):
                x = layer[f"block{block}_sepconv{i}_bn"](
                    layer[f"block{block}_sepconv{i}"](F.relu(x))
                )
            x = x + residual
        return x


class HAM10000Head(nn.Module):
    """sklesion's classifier: image features (2048) + metadata (10) -> 7 softmax probabilities.

    Keras graph: dense(2048->264, relu) -> BN; dense_1(10->224, relu) -> BN -> dense_2(->64,
    relu) -> BN; concatenate -> dense_3(328->32, relu) -> BN -> dense_4(->7, softmax). Dropout
    layers are identities at inference.
    """

    DENSE: ClassVar[dict[str, tuple[int, int]]] = {
        "dense": (2048, 264),
        "dense_1": (10, 224),
        "dense_2": (224, 64),
        "dense_3": (328, 32),
        "dense_4": (32, 7),
    }
    NORMS: ClassVar[dict[str, int]] = {
        "batch_normalization_4": 264,
        "batch_normalization_5": 224,
        "batch_normalization_6": 64,
        "batch_normalization_7": 32,
    }

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleDict(
            {name: nn.Linear(cin, cout) for name, (cin, cout) in self.DENSE.items()}
            | {name: nn.BatchNorm1d(c, eps=KERAS_BN_EPS) for name, c in self.NORMS.items()}
        )

    def forward(self, features: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        layer = self.layers
        image = layer["batch_normalization_4"](F.relu(layer["dense"](features)))
        m = layer["batch_normalization_5"](F.relu(layer["dense_1"](meta)))
        m = layer["batch_normalization_6"](F.relu(layer["dense_2"](m)))
        x = layer["batch_normalization_7"](F.relu(layer["dense_3"](torch.cat([image, m], dim=1))))
        return torch.softmax(layer["dense_4"](x), dim=1)


class SklesionNet(nn.Module):
    """The whole Keras model: normalization + xception (features) and head (probabilities)."""

    def __init__(self) -> None:
        super().__init__()
        self.normalization = KerasNormalization()
        self.xception = KerasXception()
        self.head = HAM10000Head()

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(n, 3, 254, 254) pixels in 0..255 -> (n, 2048) pooled features, not normalised."""
        return self.xception(self.normalization(pixels))

    def feature_map(self, pixels: torch.Tensor) -> torch.Tensor:
        """(n, 3, h, w) pixels in 0..255 -> (n, 728, h/16, w/16) middle-flow features."""
        return self.xception.middle_flow(self.normalization(pixels))
