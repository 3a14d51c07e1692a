"""Similarity maps: the feature-map interface of every loader, the map maths, the CLI and the
pointing game on real composites."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_loaders import build_hf, open_clip_saved, save_timm  # noqa: F401 (fixture)

from benchmarks.perf.pointing_game import composites, library_photos, play, points_inside
from data_index.__main__ import main as data_index_main
from data_index.explain import best_match_grid, centred, overlay, similarity_maps
from models import NoSpatialMap, load_backbone


@pytest.fixture
def one_thread():
    """One torch thread: on a busy 2-core machine more threads only wait on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    rng = np.random.default_rng(3)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in
            [(90, 120), (100, 100)]]  # fmt: skip


def check_pair(backbone, query: Image.Image, match: Image.Image) -> None:
    pair = similarity_maps(backbone, query=query, match=match)
    for image, side in ((query, pair.query), (match, pair.match)):
        assert side.heat.shape == (image.height, image.width)
        assert side.heat.dtype == np.float32
        assert side.heat.min() >= 0.0 and side.heat.max() <= 1.0
        assert side.low <= side.high
    assert pair.weights_origin == backbone.weights_origin


@pytest.mark.parametrize("key", ["efficientnet-lite0", "xception-ham10000"])
def test_cnn_feature_maps_follow_the_requested_size(key, photos):
    backbone = load_backbone(key, random_weights=True)
    assert backbone.any_input_size
    small, large = backbone.feature_map(photos[0], side=64), backbone.feature_map(photos[0])
    assert small.ndim == 3 and small.shape[-1] == large.shape[-1]
    assert small.shape[0] < large.shape[0]
    # A landscape photo keeps a landscape grid: the map covers the whole photo, uncropped.
    assert large.shape[1] > large.shape[0]
    check_pair(backbone, *photos)
    assert similarity_maps(backbone, query=photos[0], match=photos[1]).weights_origin == (
        "architecture-only"
    )


def test_timm_patch_models_give_their_token_grid(tmp_path, photos):
    folder, model = save_timm("test_vit", tmp_path)
    backbone = load_backbone(f"timm:local-dir:{folder}")
    assert not backbone.any_input_size
    grid = backbone.feature_map(photos[0])
    side = model.patch_embed.img_size[0] // model.patch_embed.patch_size[0]
    assert grid.shape[:2] == (side, side)
    check_pair(backbone, *photos)


def test_open_clip_gives_its_patch_tokens(open_clip_saved, photos):  # noqa: F811
    folder, _ = open_clip_saved
    backbone = load_backbone(f"local-dir:{folder}")
    assert backbone.feature_map(photos[0]).shape[:2] == (4, 4)  # 32 px, 8 px patches
    check_pair(backbone, *photos)


@pytest.mark.parametrize("kind", ["clip", "siglip", "dinov2"])
def test_transformers_patch_tokens_without_prefix_tokens(kind, tmp_path, photos):
    model, processor, tokenizer = build_hf(kind)
    model.eval().save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp_path)
    backbone = load_backbone(f"hf:{tmp_path}")
    assert backbone.feature_map(photos[0]).shape[:2] == (4, 4)
    check_pair(backbone, *photos)


def test_color_texture_says_it_has_no_map(photos):
    backbone = load_backbone("color-texture")
    with pytest.raises(NoSpatialMap, match="no per-location map"):
        similarity_maps(backbone, query=photos[0], match=photos[1])


def test_centring_removes_what_the_whole_photo_shares():
    rng = np.random.default_rng(0)
    shared = rng.normal(size=16).astype(np.float32) * 10
    grid = shared + rng.normal(size=(3, 4, 16)).astype(np.float32)
    rows = centred(grid)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    # Without centring every location looks like every other (the shared part dominates).
    assert np.abs(rows @ rows.T - np.eye(12)).max() < 0.95


def test_best_match_grid_against_brute_force():
    rng = np.random.default_rng(1)
    target = rng.normal(size=(3, 5, 8)).astype(np.float32)
    others = [rng.normal(size=(2, 2, 8)).astype(np.float32), rng.normal(size=(4, 3, 8))]
    got = best_match_grid(target, others)
    t = centred(target)
    expected = np.full(15, -np.inf)
    for other in others:
        o = centred(other)
        for i in range(15):
            for j in range(len(o)):
                expected[i] = max(expected[i], float(t[i] @ o[j]))
    np.testing.assert_allclose(got.ravel(), expected, atol=1e-5)


def test_a_copied_patch_is_where_its_own_map_peaks():
    # The same features pasted into another grid are found there (cosine 1 after centring).
    rng = np.random.default_rng(2)
    query = rng.normal(size=(4, 4, 32)).astype(np.float32)
    match = rng.normal(size=(6, 6, 32)).astype(np.float32)
    match[3:5, 1:3] = query[1:3, 1:3]
    grid = best_match_grid(match, [query])
    assert np.unravel_index(int(np.argmax(grid)), grid.shape) in {(3, 1), (3, 2), (4, 1), (4, 2)}


def test_overlay_refuses_a_map_of_another_size(photos):
    with pytest.raises(ValueError, match="does not fit"):
        overlay(photos[0], np.zeros((5, 5), dtype=np.float32))
    assert overlay(photos[0], np.ones((90, 120), dtype=np.float32)).size == (120, 90)


def test_points_inside_uses_x_and_y_the_right_way_round():
    heat = np.zeros((50, 80), dtype=np.float32)
    heat[10, 60] = 1.0
    assert points_inside(heat, (55, 5, 70, 15))
    assert not points_inside(heat, (5, 55, 15, 70))


def test_cli_writes_the_png_and_the_npy(tmp_path, photos, capsys):
    query, match = tmp_path / "q.png", tmp_path / "r.png"
    photos[0].save(query)
    photos[1].save(match)
    out, npy = tmp_path / "maps" / "map.png", tmp_path / "map.npy"
    args = ["explain", "--backbone", "efficientnet-lite0", "--query", str(query)]
    assert (
        data_index_main([*args, "--match", str(match), "--out", str(out), "--npy", str(npy)]) == 0
    )
    heat = np.load(npy)
    assert heat.shape == (100, 100) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
    with Image.open(out) as png:
        assert png.size == (100, 100)
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("backbone", "out", "message"),
    [
        ("color-texture", "m.png", "no per-location map"),
        ("efficientnet-lite0", "m.jpg", "must name a .png"),
    ],
)
def test_cli_refuses_with_one_sentence(tmp_path, photos, capsys, backbone, out, message):
    path = tmp_path / "q.png"
    photos[0].save(path)
    args = ["explain", "--backbone", backbone, "--query", str(path), "--match", str(path)]
    assert data_index_main([*args, "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.shared
@pytest.mark.parametrize("key", ["efficientnet-lite0", "xception-ham10000"])
def test_pointing_game_finds_plain_pastes(key, shared_datasets: Path, one_thread):
    items = composites(
        library_photos(shared_datasets / "infectious-8"), count=6, transform="plain", seed=7
    )
    # The benchmark's figure is >= 90 %; on six composites allow one miss.
    assert play(load_backbone(key), items) >= 5
