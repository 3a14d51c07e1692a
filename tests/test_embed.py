"""Embedding extraction with the real color-texture backbone: alignment, cache, failures."""

from __future__ import annotations

import numpy as np
import pytest
from library_factory import jpeg_bytes, make_folder_library, pattern_image, save_image

from data_index import CaseLibrary, EmbeddingCache, embed_library
from data_index import embed_cache as EC
from models import load_backbone


@pytest.fixture(scope="module")
def backbone():
    return load_backbone("color-texture")


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))


def test_vectors_are_aligned_unit_rows_with_raw_kept(tmp_path, backbone):
    lib = CaseLibrary.load(make_folder_library(tmp_path / "lib", per_class=2))
    unit, raw = embed_library(lib, backbone, cache_dir=tmp_path / "emb", num_workers=0)
    assert unit.dtype == raw.dtype == np.float32
    assert unit.shape == raw.shape == (8, backbone.spec.dim)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-5)
    # row i is the embedding of lib.cases row i
    direct = backbone.encode_images([lib.cases["path"].iloc[5]])
    np.testing.assert_allclose(unit[5], direct[0], rtol=1e-5, atol=1e-6)


def test_cache_embeds_only_new_images(tmp_path, backbone):
    root = make_folder_library(tmp_path / "lib", per_class=2)
    emb = tmp_path / "emb"
    first = Progress()
    embed_library(CaseLibrary.load(root), backbone, cache_dir=emb, progress=first)
    assert first.calls[0] == (0, 8) and first.calls[-1] == (8, 8)

    for i in range(2):
        save_image(pattern_image("green-dots", 50 + i), root / "green-dots" / f"new-{i}.jpg")
    lib = CaseLibrary.load(root)
    again = Progress()
    unit2, _ = embed_library(lib, backbone, cache_dir=emb, progress=again)
    assert again.calls[0] == (8, 10)  # 8 came from the cache: only 2 were embedded
    cache = EmbeddingCache(backbone_key="color-texture", weights_origin="pretrained", root=emb)
    assert len(cache) == 10
    fresh, _ = embed_library(lib, backbone, use_cache=False, num_workers=0)
    np.testing.assert_allclose(unit2, fresh, rtol=1e-6)  # cached rows equal fresh ones


def test_exact_duplicates_are_embedded_once(tmp_path, backbone):
    root = make_folder_library(tmp_path / "lib", per_class=1)
    data = (root / "red-stripes" / "red-stripes-0.jpg").read_bytes()
    (root / "red-stripes" / "copy.jpg").write_bytes(data)
    lib = CaseLibrary.load(root)
    unit, _ = embed_library(lib, backbone, cache_dir=tmp_path / "emb")
    cache = EmbeddingCache(
        backbone_key="color-texture", weights_origin="pretrained", root=tmp_path / "emb"
    )
    assert len(unit) == 5 and len(cache) == 4


def test_worker_processes_give_the_same_vectors(tmp_path, backbone):
    lib = CaseLibrary.load(make_folder_library(tmp_path / "lib", per_class=3))
    backbone_small = load_backbone("color-texture", batch_size=4)
    serial, _ = embed_library(lib, backbone_small, use_cache=False, num_workers=0)
    parallel, _ = embed_library(lib, backbone_small, use_cache=False, num_workers=1)
    np.testing.assert_allclose(serial, parallel, rtol=1e-6)


def test_undecodable_images_are_dropped_and_reported(tmp_path, backbone):
    root = make_folder_library(tmp_path / "lib", per_class=1)
    data = jpeg_bytes("green-dots", 3)
    (root / "green-dots" / "cut.jpg").write_bytes(data[: len(data) // 2])
    lib = CaseLibrary.load(root)
    assert len(lib) == 5  # the header looks fine
    unit, raw = embed_library(lib, backbone, cache_dir=tmp_path / "emb")
    assert len(lib) == len(unit) == len(raw) == 4
    assert "green-dots/cut.jpg" not in set(lib.cases["relpath"])
    assert [p.item for p in lib.report.unreadable] == ["green-dots/cut.jpg"]
    assert lib.report.usable == 4


def test_architecture_only_vectors_are_never_cached(tmp_path):
    random_bb = load_backbone("efficientnet-lite0", random_weights=True)
    assert random_bb.weights_origin == "architecture-only"
    lib = CaseLibrary.load(make_folder_library(tmp_path / "lib", per_class=1))
    embed_library(lib, random_bb, cache_dir=tmp_path / "emb")
    assert not (tmp_path / "emb").exists()


def test_cache_shards_merge_without_losing_vectors(tmp_path, monkeypatch):
    monkeypatch.setattr(EC, "MAX_SHARDS", 2)
    key = "open_clip:ViT-B/x"  # a key that is not a file name
    cache = EmbeddingCache(backbone_key=key, weights_origin="pretrained", root=tmp_path)
    rng = np.random.default_rng(0)
    stored = {}
    for i in range(5):
        vec = rng.normal(size=(1, 3)).astype(np.float32)
        cache.store([f"{i:040d}"], vec)
        stored[f"{i:040d}"] = vec[0]
    assert len(list(cache.dir.glob("shard-*.npz"))) <= 3
    found = cache.lookup(list(stored))
    assert set(found) == set(stored)
    for key, vec in stored.items():
        np.testing.assert_array_equal(found[key], vec)
    assert cache.lookup(list(stored), dim=4) == {}  # other width: never served
