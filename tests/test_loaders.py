"""Every loader path, end to end: tiny random models saved to disk, reloaded through the real code.

The tiny models stand in for downloaded checkpoints in exactly the on-disk layouts the libraries
write (open_clip local-dir, transformers save_pretrained, timm save_for_hf), so the whole suite
runs offline. Comparing with the in-memory original proves the weights were really read.
"""

from __future__ import annotations

import json
import shutil
import string

import numpy as np
import pytest
import torch
from PIL import Image

from models import (
    NoTextTower,
    WeightsUnavailable,
    availability,
    get_spec,
    list_specs,
    load_backbone,
)

TEXTS = ["a red scaly plaque on the arm", "a dark mole", "a mole"]
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
TINY_VISION = {**TINY, "num_attention_heads": 2, "image_size": 32, "patch_size": 8}
TEXT_LENGTH = 16  # context length of every tiny text tower


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    sizes = [(40, 50), (64, 48), (33, 33), (90, 60)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]


def assert_unit_rows(vectors: np.ndarray, n: int) -> None:
    assert vectors.dtype == np.float32
    assert vectors.ndim == 2 and vectors.shape[0] == n and vectors.shape[1] > 0
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def unit(x: torch.Tensor) -> np.ndarray:
    x = x.detach().float().numpy()
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def check_images(bb, images, reference) -> np.ndarray:
    """Shape/dtype/norm, batch == one by one, and equal to ``reference(preprocessed batch)``."""
    vectors = bb.encode_images(images)
    assert_unit_rows(vectors, len(images))
    singles = np.concatenate([bb.encode_images([im]) for im in images])
    np.testing.assert_allclose(vectors, singles, atol=1e-5)
    with torch.inference_mode():
        expected = unit(reference(torch.stack([bb.preprocess(im) for im in images])))
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    return vectors


def check_texts(bb, reference) -> None:
    vectors = bb.encode_texts(TEXTS)
    assert_unit_rows(vectors, len(TEXTS))
    singles = np.concatenate([bb.encode_texts([t]) for t in TEXTS])
    np.testing.assert_allclose(vectors, singles, atol=1e-5)
    # Different prompts must give different vectors: a tokenizer mapping all to <unk> would not.
    assert np.abs(vectors[0] - vectors[1]).max() > 1e-3
    with torch.inference_mode():
        np.testing.assert_allclose(vectors, unit(reference(TEXTS)), atol=1e-5)


# --- open_clip ------------------------------------------------------------------------------------

OPEN_CLIP_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": TEXT_LENGTH, "vocab_size": 49408, "width": 32, "heads": 2,
                 "layers": 2},
}  # fmt: skip
OPEN_CLIP_PREPROCESS = {"size": 32, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic"}


@pytest.fixture(scope="module")
def open_clip_saved(tmp_path_factory):
    """A tiny open_clip CLIP in the local-dir layout open_clip 3 reads (no hf_tokenizer_name,
    so the bundled CLIP BPE tokenizer is used)."""
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.CLIP(**OPEN_CLIP_CFG).eval()
    folder = tmp_path_factory.mktemp("open_clip_tiny")
    config = {"model_cfg": OPEN_CLIP_CFG, "preprocess_cfg": OPEN_CLIP_PREPROCESS}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    save_file(model.state_dict(), folder / "open_clip_model.safetensors")
    return folder, model


def check_open_clip(bb, model, images) -> None:
    import open_clip

    tokenizer = open_clip.get_tokenizer("ViT-B-32", context_length=TEXT_LENGTH)
    check_images(bb, images, model.encode_image)
    check_texts(bb, lambda texts: model.encode_text(tokenizer(texts)))


def test_open_clip_local_dir_reloads_the_saved_weights(open_clip_saved, images):
    folder, model = open_clip_saved
    bb = load_backbone(f"local-dir:{folder}")
    assert bb.weights_origin == "pretrained" and bb.has_text
    check_open_clip(bb, model, images)


# --- transformers ---------------------------------------------------------------------------------


def clip_tokenizer():
    """A CLIP BPE tokenizer over single letters: enough to tell prompts apart, built offline."""
    from transformers import CLIPTokenizer

    tokens = ["<|startoftext|>", "<|endoftext|>", *string.ascii_lowercase]
    tokens += [c + "</w>" for c in string.ascii_lowercase]
    vocab = {token: i for i, token in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=TEXT_LENGTH)


def bert_tokenizer():
    from transformers import BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TEXTS[0].split(), "dark", "mole"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    return BertTokenizer(vocab=vocab, model_max_length=TEXT_LENGTH)


def text_config(vocab_size: int) -> dict:
    # Token ids inside the tiny vocabulary (the CLIP defaults point past it).
    return {**TINY, "num_attention_heads": 2, "vocab_size": vocab_size,
            "max_position_embeddings": TEXT_LENGTH, "bos_token_id": 0, "eos_token_id": 1,
            "pad_token_id": 1}  # fmt: skip


def build_hf(kind: str):
    """(model, image processor, tokenizer or None) for one transformers architecture."""
    import transformers as tf

    square = {"height": 32, "width": 32}
    clip_processor = tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=square)
    if kind == "clip":
        tok = clip_tokenizer()
        config = tf.CLIPConfig(
            vision_config=TINY_VISION, text_config=text_config(len(tok)), projection_dim=16
        )
        return tf.CLIPModel(config), clip_processor, tok
    if kind == "siglip":
        tok = clip_tokenizer()
        config = tf.SiglipConfig(vision_config=TINY_VISION, text_config=text_config(len(tok)))
        return tf.SiglipModel(config), tf.SiglipImageProcessor(size=square), tok
    if kind == "dual-encoder":
        tok = bert_tokenizer()
        bert = {**text_config(len(tok)), "pad_token_id": 0}
        config = tf.VisionTextDualEncoderConfig.from_vision_text_configs(
            tf.ViTConfig(**TINY_VISION), tf.BertConfig(**bert), projection_dim=16
        )
        return tf.VisionTextDualEncoderModel(config=config), tf.ViTImageProcessor(size=square), tok
    if kind == "vit":
        return tf.ViTModel(tf.ViTConfig(**TINY_VISION)), tf.ViTImageProcessor(size=square), None
    if kind == "dinov2":
        return tf.Dinov2Model(tf.Dinov2Config(**TINY_VISION)), clip_processor, None
    if kind == "vit-mae":  # saved with MAE's training default: 75% of patches hidden
        config = tf.ViTMAEConfig(**TINY_VISION, mask_ratio=0.75)
        return tf.ViTMAEModel(config), tf.ViTImageProcessor(size=square), None
    raise ValueError(kind)


HF_KINDS = ["clip", "siglip", "dual-encoder", "vit", "dinov2", "vit-mae"]


@pytest.fixture(scope="module", params=HF_KINDS)
def hf_saved(request, tmp_path_factory):
    torch.manual_seed(0)
    model, processor, tokenizer = build_hf(request.param)
    model.eval()
    folder = tmp_path_factory.mktemp(f"hf_{request.param}")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return request.param, folder, model, tokenizer


def hf_image_reference(model):
    """What the checkpoint itself says an image vector is: projected features, else CLS token."""
    if hasattr(model, "get_image_features"):
        return lambda x: model.get_image_features(pixel_values=x).pooler_output
    if hasattr(model.config, "mask_ratio"):
        model.config.mask_ratio = 0.0  # the reference sees every patch, as the loader must
    return lambda x: model(pixel_values=x).last_hidden_state[:, 0]


def hf_text_reference(model, tokenizer):
    def encode(texts):
        tokens = tokenizer(
            texts,
            padding="max_length",
            truncation=True,
            max_length=TEXT_LENGTH,
            return_tensors="pt",
        )
        tokens.pop("token_type_ids", None)
        return model.get_text_features(**tokens).pooler_output

    return encode


def test_transformers_save_pretrained_round_trip(hf_saved, images):
    kind, folder, model, tokenizer = hf_saved
    bb = load_backbone(f"hf:{folder}")
    assert bb.weights_origin == "pretrained"
    vectors = check_images(bb, images, hf_image_reference(model))
    if tokenizer is None:
        assert not bb.has_text
        with pytest.raises(NoTextTower, match="no text tower"):
            bb.encode_texts(["a mole"])
    else:
        assert bb.has_text
        check_texts(bb, hf_text_reference(model, tokenizer))
    if kind == "vit-mae":
        # With MAE's saved mask_ratio of 0.75 each call would see a random quarter of the image.
        assert json.loads((folder / "config.json").read_text())["mask_ratio"] == 0.75
        np.testing.assert_allclose(bb.encode_images(images), vectors, atol=1e-5)


# --- timm -----------------------------------------------------------------------------------------


def save_timm(name: str, folder):
    """A timm test model in the layout ``save_for_hf`` writes (config.json + model.safetensors)."""
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    save_for_hf(model, folder, safe_serialization=True)
    return folder, model


@pytest.fixture(scope="module", params=["test_vit", "test_resnet"])
def timm_saved(request, tmp_path_factory):
    return save_timm(request.param, tmp_path_factory.mktemp(f"timm_{request.param}"))


def timm_reference(model):
    return lambda x: model.forward_head(model.forward_features(x), pre_logits=True)


def test_timm_local_dir_reloads_the_saved_weights(timm_saved, images):
    folder, model = timm_saved
    bb = load_backbone(f"timm:local-dir:{folder}")
    assert bb.weights_origin == "pretrained" and not bb.has_text
    check_images(bb, images, timm_reference(model))
    raw = bb.encode_images(images[:2], normalize=False)
    with torch.inference_mode():
        pooled = timm_reference(model)(torch.stack([bb.preprocess(im) for im in images[:2]]))
    np.testing.assert_allclose(raw, pooled.numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(NoTextTower):
        bb.encode_texts(["a mole"])


# --- the weights folder overrides the hub for a registry key --------------------------------------


@pytest.fixture(scope="module")
def hf_vit_saved(tmp_path_factory):
    torch.manual_seed(1)
    model, processor, _ = build_hf("vit")
    folder = tmp_path_factory.mktemp("hf_vit_override")
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder, model


@pytest.fixture(scope="module")
def timm_resnet_saved(tmp_path_factory):
    return save_timm("test_resnet", tmp_path_factory.mktemp("timm_override"))


OVERRIDE_FIXTURES = {
    "dermlip-vit-b16": "open_clip_saved",
    "vit-b16": "hf_vit_saved",
    "resnet50": "timm_resnet_saved",
}


@pytest.mark.parametrize("key", OVERRIDE_FIXTURES)
def test_weights_dir_folder_named_after_a_key_is_loaded(
    key, request, tmp_path, monkeypatch, images
):
    library = get_spec(key).library
    folder, model = request.getfixturevalue(OVERRIDE_FIXTURES[key])
    root = tmp_path / "weights"
    monkeypatch.setenv("DERMSEARCH_WEIGHTS", str(root))
    assert availability(get_spec(key)).status == "download"  # HF_HUB_OFFLINE is set by conftest
    shutil.copytree(folder, root / key)
    assert availability(get_spec(key)).status == "ready"
    bb = load_backbone(key)
    assert bb.key == key and bb.weights_origin == "pretrained"
    if library == "open_clip":
        check_open_clip(bb, model, images)
    elif library == "transformers":
        check_images(bb, images, hf_image_reference(model))
    else:
        check_images(bb, images, timm_reference(model))


def test_tilde_paths_are_expanded(open_clip_saved, tmp_path, monkeypatch, images):
    folder, model = open_clip_saved
    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copytree(folder, tmp_path / "tiny")
    check_open_clip(load_backbone("local-dir:~/tiny"), model, images)


# --- what a user is told when weights are missing ------------------------------------------------


@pytest.fixture
def empty_weights(tmp_path, monkeypatch):
    """An empty weights folder and hub cache, so nothing on this machine can satisfy a load."""
    monkeypatch.setenv("DERMSEARCH_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "weights"


def assert_one_sentence(message: str) -> None:
    assert "\n" not in message and "Traceback" not in message and len(message) < 700


@pytest.mark.parametrize(
    ("key", "repo"),
    [
        ("dermlip-vit-b16", "redlessone/DermLIP_ViT-B-16"),
        ("vit-b16", "google/vit-base-patch16-224-in21k"),
        ("resnet50", "timm/resnet50.tv_in1k"),
    ],
)
def test_missing_weights_name_the_key_the_repo_and_the_folder(key, repo, empty_weights):
    with pytest.raises(WeightsUnavailable) as err:
        load_backbone(key)
    message = str(err.value)
    assert_one_sentence(message)
    assert f"'{key}'" in message and repo in message
    assert str(empty_weights / key) in message and "HF_HUB_OFFLINE" in message


def test_gated_weights_say_how_to_get_access(empty_weights):
    with pytest.raises(WeightsUnavailable) as err:
        load_backbone("medsiglip-448")
    message = str(err.value)
    assert_one_sentence(message)
    assert "google/medsiglip-448" in message and "HF_TOKEN" in message and "terms" in message


@pytest.mark.parametrize("spec", [s for s in list_specs() if s.unsupported], ids=lambda s: s.key)
def test_unsupported_backbones_give_their_reason(spec):
    assert availability(spec).status == "unsupported"
    with pytest.raises(WeightsUnavailable) as err:
        load_backbone(spec.key)
    assert_one_sentence(str(err.value))
    assert spec.key in str(err.value) and spec.unsupported in str(err.value)


@pytest.mark.parametrize("prefix", ["local-dir:", "hf:", "timm:local-dir:"])
def test_a_missing_local_folder_is_named_without_hub_advice(prefix, tmp_path):
    with pytest.raises(WeightsUnavailable) as err:
        load_backbone(f"{prefix}{tmp_path / 'nowhere'}")
    message = str(err.value)
    assert_one_sentence(message)
    assert str(tmp_path / "nowhere") in message and "does not exist" in message
    assert "Hugging Face" not in message


def test_a_weights_folder_without_a_checkpoint_is_refused(open_clip_saved, empty_weights):
    """open_clip alone would build a random model from the config and call it loaded."""
    folder, _ = open_clip_saved
    target = empty_weights / "dermlip-vit-b16"
    target.mkdir(parents=True)
    shutil.copy(folder / "open_clip_config.json", target)
    with pytest.raises(WeightsUnavailable) as err:
        load_backbone("dermlip-vit-b16")
    message = str(err.value)
    assert_one_sentence(message)
    assert str(target) in message and "open_clip_model.safetensors" in message
