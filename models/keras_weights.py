"""Read a Keras 3 ``.keras`` archive (config.json + model.weights.h5) without Keras or TensorFlow.

Keras 3 does not store variables under layer names: each container's layers are stored in
the order of its config under the snake_case class name, made unique per container
(``conv2d``, ``conv2d_1``, ...; see keras ``saving_lib._save_container_state``). This module
rebuilds that mapping from config.json so variables can be addressed by layer name.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

# Variable order Keras 3 stores per layer class (the order of ``layer.weights``).
VARIABLE_NAMES: dict[str, tuple[str, ...]] = {
    "Conv2D": ("kernel", "bias"),
    "SeparableConv2D": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "DepthwiseConv2D": ("kernel", "bias"),
    "Dense": ("kernel", "bias"),
    "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
    "Normalization": ("mean", "variance", "count"),
}

_NESTED = ("Functional", "Model", "Sequential")


def to_snake_case(name: str) -> str:
    """Keras 3's ``naming.to_snake_case``, copied so the archive names match exactly."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


@dataclass(frozen=True)
class KerasLayer:
    """One layer of the config: its name, class, config dict and h5 group."""

    name: str
    class_name: str
    config: dict
    h5_path: str


@dataclass(frozen=True)
class KerasArchive:
    """Every layer (nested models flattened, names made unique with ``/``) and its variables."""

    config: dict
    layers: dict[str, KerasLayer]
    variables: dict[str, dict[str, np.ndarray]]

    def layer(self, name: str, class_name: str) -> KerasLayer:
        """The layer called ``name``, checked to be of ``class_name``."""
        layer = self.layers.get(name)
        if layer is None:
            raise ValueError(
                f"The Keras model has no layer '{name}'; the file is not the expected one."
            )
        if layer.class_name != class_name:
            raise ValueError(
                f"Keras layer '{name}' is a {layer.class_name}, expected a {class_name}; "
                "the file is not the expected one."
            )
        return layer

    def weights(self, name: str, class_name: str) -> dict[str, np.ndarray]:
        """Variables of layer ``name`` by Keras variable name (``kernel``, ``gamma``, ...)."""
        self.layer(name, class_name)
        return self.variables.get(name, {})


def layer_paths(config: dict, prefix: str = "layers") -> list[tuple[str, str, dict, str]]:
    """(name, class_name, config, h5 group) for every layer, nested models flattened.

    Inner layers of a nested model are named ``<model name>/<layer name>``.
    """
    used: dict[str, int] = {}
    out = []
    for layer in config["config"]["layers"]:
        snake = to_snake_case(layer["class_name"])
        if snake in used:
            used[snake] += 1
            snake = f"{snake}_{used[snake]}"
        else:
            used[snake] = 0
        path = f"{prefix}/{snake}"
        name = layer["config"]["name"]
        out.append((name, layer["class_name"], layer["config"], path))
        if layer["class_name"] in _NESTED:
            for inner, cls, cfg, inner_path in layer_paths(layer, prefix=f"{path}/layers"):
                out.append((f"{name}/{inner}", cls, cfg, inner_path))
    return out


def read_keras_archive(path: Path) -> KerasArchive:
    """Parse config.json and read every variable of model.weights.h5 into numpy arrays."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights_bytes = archive.read("model.weights.h5")
    except (OSError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable Keras 3 archive ({err}).") from err
    layers: dict[str, KerasLayer] = {}
    variables: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(io.BytesIO(weights_bytes), "r") as h5:
        for name, class_name, cfg, h5_path in layer_paths(config):
            layers[name] = KerasLayer(name, class_name, cfg, h5_path)
            group = h5.get(f"{h5_path}/vars")
            if group is None or len(group) == 0:
                continue
            names = VARIABLE_NAMES.get(class_name)
            if names is None:
                raise ValueError(
                    f"Keras layer '{name}' ({class_name}) has variables this reader does not know."
                )
            if class_name == "BatchNormalization" and not (cfg.get("center") and cfg.get("scale")):
                raise ValueError(
                    f"BatchNormalization '{name}' without center/scale is not supported."
                )
            variables[name] = {names[int(i)]: np.asarray(group[i]) for i in sorted(group, key=int)}
    return KerasArchive(config=config, layers=layers, variables=variables)
