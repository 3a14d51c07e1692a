"""Run sklesion's model.keras with Keras 3 on its torch backend: the faithfulness reference.

Used by test_xception_ham10000 in a subprocess, so that Keras (and its backend choice) never
touches the test process's torch state: ``python keras_reference.py MODEL INPUTS.npz OUT.npz``.
INPUTS holds ``pixels`` (n, 254, 254, 3) float32 in 0..255 and ``meta`` (n, 10) float32.
"""

from __future__ import annotations

import os
import sys

os.environ["KERAS_BACKEND"] = "torch"  # must precede the keras import; TensorFlow is absent

import keras
import numpy as np


def main(model_path: str, inputs_path: str, out_path: str) -> None:
    if keras.backend.backend() != "torch":
        raise SystemExit(f"Keras chose the {keras.backend.backend()} backend, not torch.")
    data = np.load(inputs_path)
    model = keras.saving.load_model(model_path, compile=False)
    # One pass for both: the pooled features are the input of the dropout after `xception`.
    probe = keras.Model(model.inputs, [model.get_layer("dropout").input, *model.outputs])
    features, probs = probe.predict([data["pixels"], data["meta"]], verbose=0)
    np.savez(out_path, features=np.asarray(features), probs=np.asarray(probs))


if __name__ == "__main__":
    main(*sys.argv[1:4])
