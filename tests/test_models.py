"""The registry, name parsing, image handling and the two offline backbones with real weights."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from models import (
    FAMILIES,
    NoTextTower,
    UnknownBackbone,
    WeightsUnavailable,
    availability,
    get_spec,
    list_specs,
    load_backbone,
    open_image,
    to_rgb,
)
from models.factory import LOADERS, resolve_loader
from models.registry import SPECS

PHAM2025_KEYS = {
    "clip-vit-l14-hf",
    "convnext-clip",
    "metaclip-h14",
    "mobileclip-s2",
    "clip-vit-b32",
    "clip-vit-l14",
    "siglip-so400m",
    "biomedclip",
    "clipmd",
    "medimageinsight",
    "medsiglip-448",
    "plip",
    "rclip",
    "dermlip-vit-b16",
    "whylesionclip",
}


@pytest.fixture(scope="module")
def lite0():
    return load_backbone("efficientnet-lite0", device="cpu")


@pytest.fixture(scope="module")
def color_texture():
    return load_backbone("color-texture")


def _photo(seed: int = 0, size: tuple[int, int] = (160, 120)) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)
    return Image.fromarray(base).resize(size, Image.BICUBIC)


# --- registry ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", list_specs(), ids=lambda s: s.key)
def test_registry_entry_invariants(spec):
    assert spec.key == spec.key.lower() and " " not in spec.key
    assert spec.family in FAMILIES
    assert spec.library in ("open_clip", "transformers", "timm", "builtin")
    assert spec.dim > 0 and spec.input_size >= 32
    assert spec.licence and spec.name and spec.reference
    assert get_spec(spec.key) is spec
    status = availability(spec)
    assert status.status in ("ready", "download", "gated", "unsupported") and status.detail
    if spec.unsupported:
        assert status.status == "unsupported"
    if spec.gated and not spec.unsupported:
        assert status.status in ("gated", "ready")


def test_registry_holds_every_pham2025_model_and_unique_keys():
    keys = [s.key for s in list_specs()]
    assert len(keys) == len(set(keys))
    assert set(keys) >= PHAM2025_KEYS
    assert {"biomedclip", "dinov2-base", "resnet50", "densenet121", "vit-b16", "uni"} <= set(keys)


def test_offline_backbones_are_ready_here():
    for key in ("efficientnet-lite0", "color-texture"):
        assert availability(get_spec(key)).ready


@pytest.mark.parametrize(
    ("name", "key", "library", "source", "tag"),
    [
        ("efficientnet-lite0", "efficientnet-lite0", "builtin", "efficientnet_lite0", None),
        ("  EfficientNet_Lite0 ", "efficientnet-lite0", "builtin", "efficientnet_lite0", None),
        ("DermLIP ViT-B/16", "dermlip-vit-b16", "open_clip", None, None),
        ("dermlip", "dermlip-vit-b16", "open_clip", None, None),
        ("CLIP", "clip-vit-b32", "open_clip", "ViT-B-32", "openai"),
        (
            "open_clip:ViT-B-16/laion2b_s34b_b88k",
            None,
            "open_clip",
            "ViT-B-16",
            "laion2b_s34b_b88k",
        ),
        ("hf-hub:org/some-clip", None, "open_clip", "hf-hub:org/some-clip", None),
        ("local-dir:/tmp/my-clip", None, "open_clip", "local-dir:/tmp/my-clip", None),
        ("timm:resnet18.a1_in1k", None, "timm", "resnet18.a1_in1k", None),
        ("timm:local-dir:/tmp/t", None, "timm", "local-dir:/tmp/t", None),
        ("hf:facebook/dinov2-small", None, "transformers", "facebook/dinov2-small", None),
        ("transformers:/tmp/saved", None, "transformers", "/tmp/saved", None),
    ],
)
def test_name_parsing(name, key, library, source, tag):
    spec = get_spec(name)
    assert spec.library == library
    if key:
        assert spec.key == key
    if source:
        assert spec.source == source
    assert spec.pretrained_tag == tag


@pytest.mark.parametrize("name", ["", "   ", "not-a-model", "timm:", "clip-vit-b99"])
def test_unknown_names_list_the_valid_ones(name):
    with pytest.raises(UnknownBackbone) as err:
        get_spec(name)
    assert "efficientnet-lite0" in str(err.value) or "names no model" in str(err.value)


REGISTRY_LOADERS = sorted({spec.options.get("loader", spec.library) for spec in SPECS})


@pytest.mark.parametrize("loader", REGISTRY_LOADERS)
def test_every_registry_loader_resolves_to_a_callable(loader):
    assert callable(resolve_loader(loader))


def test_the_loader_table_holds_only_loaders_the_registry_uses():
    assert sorted(LOADERS) == REGISTRY_LOADERS


@pytest.mark.parametrize("loader", ["", "builtin", "keras", "Open_Clip", "models.timm_backbone"])
def test_unknown_loaders_list_the_valid_ones(loader):
    with pytest.raises(ValueError, match="Valid loaders: ") as err:
        resolve_loader(loader)
    assert all(name in str(err.value) for name in LOADERS)


def test_importing_models_imports_no_loader_module():
    modules = sorted({module for module, _ in LOADERS.values()})
    code = f"import sys, models; print([m for m in {modules!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_and_unsupported_weights_are_one_clear_sentence():
    with pytest.raises(WeightsUnavailable) as err:
        load_backbone("dermlip-vit-b16")
    text = str(err.value)
    assert "dermlip-vit-b16" in text and "redlessone/DermLIP_ViT-B-16" in text
    assert "Traceback" not in text
    with pytest.raises(WeightsUnavailable, match="conch"):
        load_backbone("conch")


# --- images -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "CMYK", "I;16", "I", "F", "1"])
def test_to_rgb_handles_odd_modes(mode):
    src = _photo()
    image = src.convert(mode) if mode not in ("I;16", "I", "F") else src.convert("L")
    if mode in ("I;16", "I", "F"):
        arr = np.asarray(image, dtype=np.float64) * 200.0
        image = Image.fromarray(arr.astype(np.uint16 if mode == "I;16" else np.float32))
        image = image.convert(mode) if mode == "I" else image
    out = to_rgb(image)
    assert out.mode == "RGB" and out.size == src.size
    if mode == "I;16":  # 16-bit range is stretched, not clipped to white
        assert np.asarray(out).std() > 10


def test_transparent_pixels_become_white():
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert to_rgb(image).getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert open_image(path).size == (20, 40)


def test_open_image_rejects_bad_files_with_a_sentence(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for path in (text, empty, tmp_path / "missing.jpg"):
        with pytest.raises(ValueError, match=r"not a readable image|does not exist"):
            open_image(path)


# --- the offline backbones ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["chelsea", "coffee"])
def test_efficientnet_lite0_real_weights_classify_imagenet_photos(lite0, name):
    data = pytest.importorskip("skimage.data")
    image = Image.fromarray(getattr(data, name)())
    with torch.inference_mode():
        logits = lite0.model(lite0.preprocess(image)[None])
    top = int(logits.argmax())
    expected = {"chelsea": range(281, 286), "coffee": (967, 968)}[name]
    assert top in expected


@pytest.mark.parametrize("which", ["lite0", "color_texture"])
def test_vectors_are_float32_unit_rows_and_batches_match_singles(which, request):
    backbone = request.getfixturevalue(which)
    images = [_photo(seed) for seed in range(5)]
    batch = backbone.encode_images(images, batch_size=4)
    singles = np.concatenate([backbone.encode_images([im]) for im in images])
    assert batch.dtype == np.float32 and batch.shape == (5, backbone.spec.dim)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batch, singles, atol=1e-4)
    raw = backbone.encode_images(images[:2], normalize=False)
    np.testing.assert_allclose(
        raw / np.linalg.norm(raw, axis=1, keepdims=True), batch[:2], atol=1e-5
    )


@pytest.mark.parametrize("which", ["lite0", "color_texture"])
def test_image_only_backbones_refuse_text(which, request):
    backbone = request.getfixturevalue(which)
    with pytest.raises(NoTextTower, match="no text tower"):
        backbone.encode_texts(["a red scaly plaque"])


def test_color_texture_separates_colour_and_texture(color_texture):
    red = Image.new("RGB", (64, 64), (190, 60, 50))
    red2 = Image.new("RGB", (64, 64), (185, 65, 55))
    brown = Image.new("RGB", (64, 64), (110, 80, 50))
    vec = color_texture.encode_images([red, red2, brown])
    assert vec[0] @ vec[1] > vec[0] @ vec[2]


def test_exif_rotated_file_embeds_like_the_upright_image(tmp_path, lite0):
    upright = _photo(3, size=(120, 160))
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise on display
    stored = upright.transpose(Image.Transpose.ROTATE_270)
    buf = io.BytesIO()
    stored.save(buf, format="PNG", exif=exif)
    path = tmp_path / "stored.png"
    path.write_bytes(buf.getvalue())
    a, b = lite0.encode_images([upright, path])
    assert float(a @ b) > 0.999
