"""Architecture-only (random-weight) backbones, used for timing when weights are not here.

Every registry entry with an offline architecture is resolved on PyTorch's meta device (shapes
only, no memory, no arithmetic) and must produce the dimension and input size the registry
claims; the small ones are also built for real and run.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from models import WeightsUnavailable, get_spec, list_specs, load_backbone


def has_offline_arch(spec) -> bool:
    return bool(spec.arch or spec.options.get("arch_config"))


LOADABLE = [s for s in list_specs() if not s.unsupported]
OFFLINE = [s for s in LOADABLE if has_offline_arch(s)]
HUB_ONLY = [s for s in LOADABLE if not has_offline_arch(s)]


def smallest_per_loader(specs) -> list:
    """The smallest entry with learned weights for each loader: every code path, least CPU."""
    chosen: dict[str, object] = {}
    for spec in sorted(specs, key=lambda s: s.params_m if s.params_m is not None else 1e9):
        if spec.weights_from != "none":
            chosen.setdefault(spec.options.get("loader", spec.library), spec)
    return list(chosen.values())


# The open_clip and transformers paths are built on tiny configs below instead of 86M+ ViTs.
BUILT = [s for s in smallest_per_loader(OFFLINE) if s.library not in ("open_clip", "transformers")]
PROBE = Image.new("RGB", (300, 260), (150, 90, 80))


def test_every_library_has_a_built_and_a_hub_only_case():
    # Guards the parametrisations below against silently shrinking to nothing.
    assert {s.library for s in BUILT} >= {"builtin", "timm"}
    assert {"open_clip", "transformers", "timm"} <= {s.library for s in OFFLINE}
    assert HUB_ONLY


@pytest.mark.parametrize("spec", BUILT, ids=lambda s: s.key)
def test_small_architectures_build_and_embed(spec):
    bb = load_backbone(spec.key, random_weights=True)
    assert bb.weights_origin == "architecture-only"
    rng = np.random.default_rng(0)
    images = [PROBE, Image.fromarray(rng.integers(0, 256, (80, 120, 3), dtype=np.uint8))]
    vectors = bb.encode_images(images)
    assert vectors.shape == (2, spec.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs(vectors[0] - vectors[1]).max() > 1e-4


def test_open_clip_random_weights_embed_images_and_texts(tmp_path):
    """The open_clip architecture path, on a tiny config registered with open_clip."""
    import open_clip

    from models.open_clip_backbone import load_open_clip

    config = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16,
                       "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                     "layers": 1},
    }  # fmt: skip
    (tmp_path / "dermsearch-tiny-test.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "dermsearch-tiny-test.json")
    spec = dataclasses.replace(get_spec("dermlip-vit-b16"), arch="dermsearch-tiny-test", dim=16)
    bb = load_open_clip(spec, random_weights=True)
    assert bb.weights_origin == "architecture-only" and bb.has_text
    assert bb.encode_images([PROBE]).shape == (1, 16)
    assert bb.encode_texts(["a mole", "a rash"]).shape == (2, 16)


def test_transformers_random_weights_embed_images():
    """The transformers architecture path (config class + offline processor), on a tiny ViT."""
    from models.hf_backbone import load_transformers

    tiny = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "image_size": 32, "patch_size": 8}  # fmt: skip
    options = {"arch_config": {"class": "ViTConfig", "kwargs": tiny}}
    spec = dataclasses.replace(get_spec("vit-b16"), options=options, dim=32, input_size=32)
    bb = load_transformers(spec, random_weights=True)
    assert bb.weights_origin == "architecture-only"
    assert bb.preprocess(PROBE).shape == (3, 32, 32)
    vectors = bb.encode_images([PROBE, PROBE.rotate(90)])
    assert vectors.shape == (2, 32) and np.abs(vectors[0] - vectors[1]).max() > 1e-4


def meta_forward(spec) -> tuple[tuple[int, ...], int]:
    """(output shape for a batch of 2, preprocessed image side), computed on the meta device."""
    x = torch.empty(2, 3, spec.input_size, spec.input_size, device="meta")
    if spec.library == "open_clip":
        import open_clip

        from models.open_clip_backbone import open_clip_name

        name, _ = open_clip_name(spec, random_weights=True)
        with torch.device("meta"):
            model, _, preprocess = open_clip.create_model_and_transforms(name, device="meta")
            out = model.encode_image(x)
    else:
        with torch.device("meta"):
            bb = load_backbone(spec.key, random_weights=True, device="meta")
            with torch.inference_mode():
                out = bb._embed_images(x)
        if spec.library == "timm":  # its transform holds tensors, made on meta here: read the cfg
            import timm.data

            return tuple(out.shape), timm.data.resolve_data_config(model=bb.model)["input_size"][-1]
        preprocess = bb.preprocess
    return tuple(out.shape), preprocess(PROBE).shape[-1]


@pytest.mark.parametrize(
    "spec", [s for s in OFFLINE if s.library != "builtin"], ids=lambda s: s.key
)
def test_offline_architecture_matches_its_registry_entry(spec):
    shape, side = meta_forward(spec)
    assert shape == (2, spec.dim), f"{spec.key}: registry says dim {spec.dim}, model gives {shape}"
    assert side == spec.input_size


@pytest.mark.parametrize("spec", HUB_ONLY, ids=lambda s: s.key)
def test_hub_only_architectures_refuse_random_weights_with_a_reason(spec):
    with pytest.raises(WeightsUnavailable, match="no offline architecture"):
        load_backbone(spec.key, random_weights=True)
