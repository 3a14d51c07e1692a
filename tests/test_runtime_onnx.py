"""The exported-graph runtimes give the eager backbone's embeddings, and cache their graph."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from models import get_spec, load_backbone
from models.runtime_onnx import RUNTIMES, ExportedBackbone, parse_runtime

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

EXPORTED = ("onnx", "openvino")


def photos(n: int = 4, size: int = 64) -> list[Image.Image]:
    rng = np.random.default_rng(7)
    return [
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)
    ]


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))  # rows are unit-norm


@pytest.mark.parametrize(
    ("name", "expected"),
    [(None, "torch"), ("torch", "torch"), ("ONNX", "onnx"), (" openvino ", "openvino")],
)
def test_parse_runtime(name, expected):
    assert parse_runtime(name) == expected


def test_unknown_runtime_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Valid runtimes: " + ", ".join(RUNTIMES)):
        parse_runtime("tensorrt")
    with pytest.raises(ValueError, match="runs on the CPU"):
        load_backbone("color-texture", runtime="onnx", device="cuda")


@pytest.fixture(scope="module")
def tiny_timm():
    torch.manual_seed(0)
    return load_backbone("timm:test_efficientnet", random_weights=True)


@pytest.mark.parametrize("runtime", EXPORTED)
def test_tiny_timm_model_matches_eager(tiny_timm, runtime, tmp_path):
    fast = ExportedBackbone(tiny_timm, runtime=runtime, graph_dir=tmp_path)
    images = photos()
    eager, exported = tiny_timm.encode_images(images), fast.encode_images(images)
    assert exported.shape == eager.shape and min_cosine(eager, exported) >= 0.9999
    raw_eager = tiny_timm.encode_images(images, normalize=False)
    raw_fast = fast.encode_images(images, normalize=False)
    np.testing.assert_allclose(raw_fast, raw_eager, rtol=1e-3, atol=1e-4)
    # a batch size other than the one the graph was traced with
    assert fast.encode_images(images[:1]).shape == (1, eager.shape[1])
    assert fast.weights_origin == "architecture-only" and fast.key == tiny_timm.key


def test_graph_is_cached_per_weights(tiny_timm, tmp_path):
    first = ExportedBackbone(tiny_timm, runtime="onnx", graph_dir=tmp_path).graph_path
    stamp = first.stat().st_mtime_ns
    again = ExportedBackbone(tiny_timm, runtime="openvino", graph_dir=tmp_path).graph_path
    assert again == first and first.stat().st_mtime_ns == stamp  # reused, not re-exported
    changed = load_backbone("timm:test_efficientnet", random_weights=True)
    with torch.no_grad():
        next(changed.model.parameters()).add_(1.0)
    other = ExportedBackbone(changed, runtime="onnx", graph_dir=tmp_path).graph_path
    assert other != first and {p.suffix for p in tmp_path.glob("*.onnx")} == {".onnx"}
    assert len(list(tmp_path.glob("*.onnx"))) == 2


def test_open_clip_image_tower_exports_and_text_stays_eager(tmp_path):
    import open_clip

    from models.open_clip_backbone import load_open_clip

    config = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16,
                       "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                     "layers": 1},
    }  # fmt: skip
    (tmp_path / "dermsearch-tiny-onnx.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "dermsearch-tiny-onnx.json")
    spec = dataclasses.replace(get_spec("dermlip-vit-b16"), arch="dermsearch-tiny-onnx", dim=16)
    eager = load_open_clip(spec, random_weights=True, device="cpu")
    fast = ExportedBackbone(eager, runtime="onnx", graph_dir=tmp_path)
    images = photos(3, 48)
    assert min_cosine(eager.encode_images(images), fast.encode_images(images)) >= 0.9999
    assert fast.has_text
    np.testing.assert_allclose(fast.encode_texts(["a mole"]), eager.encode_texts(["a mole"]))


def test_transformers_image_tower_exports(tmp_path):
    from models.hf_backbone import load_transformers

    tiny = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "image_size": 32, "patch_size": 8}  # fmt: skip
    options = {"arch_config": {"class": "ViTConfig", "kwargs": tiny}}
    spec = dataclasses.replace(get_spec("vit-b16"), options=options, dim=32, input_size=32)
    eager = load_transformers(spec, random_weights=True, device="cpu")
    fast = ExportedBackbone(eager, runtime="openvino", graph_dir=tmp_path)
    images = photos(3, 40)
    assert min_cosine(eager.encode_images(images), fast.encode_images(images)) >= 0.9999


def test_efficientnet_lite0_matches_eager(tmp_path, monkeypatch):
    """The packaged ImageNet weights through load_backbone's runtime argument."""
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path))
    eager = load_backbone("efficientnet-lite0")
    if eager.weights_origin != "pretrained":
        pytest.skip("efficientnet-lite0 weights are not installed")
    images = photos(4, 300)
    reference = eager.encode_images(images)
    for runtime in EXPORTED:
        fast = load_backbone("efficientnet-lite0", runtime=runtime)
        assert fast.graph_path.parent == tmp_path / "onnx"
        assert min_cosine(reference, fast.encode_images(images)) >= 0.9999


def test_cli_build_and_search_with_a_runtime(tmp_path, monkeypatch, capsys):
    from library_factory import make_folder_library

    from data_index.__main__ import main

    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    lib = make_folder_library(tmp_path / "lib", per_class=2)
    out = tmp_path / "idx"
    build = ["build", "--library", str(lib), "--backbone", "color-texture", "--out", str(out)]
    assert main([*build, "--runtime", "onnx"]) == 0
    assert "8 case(s)" in capsys.readouterr().out
    assert list((tmp_path / "cache" / "onnx").glob("color-texture-*.onnx"))
    query = lib / "green-dots" / "green-dots-1.jpg"
    search = ["search", "--index", str(out), "--image", str(query), "-k", "2", "--json"]
    assert main([*search, "--runtime", "openvino"]) == 0
    report = json.loads(capsys.readouterr().out)
    # The query is a library file: recognised as itself (same bytes) and left out of the hits.
    assert report["query_in_library"] is not None
    assert report["hits"] and not any(
        h["path"].endswith("green-dots-1.jpg") for h in report["hits"]
    )
    with pytest.raises(SystemExit):
        main([*search, "--runtime", "tensorrt"])


def test_app_config_reads_the_runtime():
    from demo.config import parse_config

    assert parse_config([]).runtime == "torch"
    assert parse_config(["--runtime", "openvino"]).runtime == "openvino"
    assert parse_config([], env={"DERMSEARCH_RUNTIME": "onnx"}).runtime == "onnx"


def test_app_state_loads_backbones_with_its_runtime(tmp_path, monkeypatch):
    from demo.state import AppState

    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path))
    backbone = AppState(runtime="openvino").backbone("color-texture")
    assert isinstance(backbone, ExportedBackbone) and backbone.runtime == "openvino"


def test_xception_with_tf_same_pooling_exports(tmp_path):
    """Its 'same' max pooling pads from the input shape: the graph must keep those pads."""
    torch.manual_seed(0)
    eager = load_backbone("xception-ham10000", random_weights=True, device="cpu")
    fast = ExportedBackbone(eager, runtime="onnx", graph_dir=tmp_path)
    images = photos(3, 120)
    assert min_cosine(eager.encode_images(images), fast.encode_images(images)) >= 0.9999
