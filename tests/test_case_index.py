"""CaseIndex with the real color-texture backbone and real usearch files on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest
from library_factory import make_folder_library, make_manifest_library, pattern_image, save_image
from usearch.index import Index, ScalarKind

import data_index.case_index as CI
from data_index import CaseIndex, CaseLibrary, IndexMismatch
from data_index.store import CASES_FILE, MANIFEST_FILE, POINTER, resolve_version
from models import NoTextTower, load_backbone


@pytest.fixture(scope="module")
def backbone():
    return load_backbone("color-texture")


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory):
    """One cache for the module: the generated images repeat, so embeddings are reused."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DERMSEARCH_CACHE", str(root))
        yield root


@pytest.fixture
def case_lib(tmp_path):
    """12 images, 2 per case: leave-one-case-out has something to leave out."""
    return CaseLibrary.load(make_manifest_library(tmp_path / "lib", images_per_case=2))


def brute_cosine(idx: CaseIndex, q: np.ndarray) -> list[int]:
    unit = idx.vectors()
    sims = unit @ (q / np.linalg.norm(q))
    keys = idx.cases["key"].to_numpy()
    return [int(keys[i]) for i in np.lexsort((keys, -sims))]


def test_build_save_load_search_round_trip(backbone, case_lib, cache_dir):
    built = CaseIndex.build(case_lib, backbone)
    assert built.path == cache_dir / "indexes" / "lib--color-texture"
    idx = CaseIndex.load(built.path, backbone_key="color-texture", weights_origin="pretrained")
    m = idx.manifest
    assert (m["backbone_key"], m["weights_origin"], m["metric"], m["dtype"]) == (
        "color-texture",
        "pretrained",
        "cos",
        "f32",
    )
    assert m["dim"] == backbone.spec.dim and m["count"] == 12 == len(idx)
    assert m["library"]["fingerprint"] == case_lib.fingerprint
    assert {"usearch", "numpy", "torch"} <= set(m["versions"]) and m["created"]
    assert idx.exact and idx.cases.equals(built.cases)

    row = idx.cases.iloc[4]
    hits = idx.search_image(backbone, row["path"], k=3)
    assert [h.rank for h in hits] == [1, 2, 3]
    top = hits[0]
    assert (top.key, top.path, top.label, top.case_id) == (
        row["key"],
        row["path"],
        row["label"],
        row["case_id"],
    )
    assert top.score == pytest.approx(1.0, abs=1e-5)
    assert top.metadata["site"] == row["site"] and top.metadata["caption"] == row["caption"]
    assert hits[0].score >= hits[1].score >= hits[2].score


def test_cosine_search_matches_brute_force(backbone, case_lib):
    idx = CaseIndex.build(case_lib, backbone, save=False)
    rng = np.random.default_rng(1)
    for _ in range(5):
        q = idx.raw[rng.integers(len(idx))] + rng.normal(0, 0.05, idx.dim).astype(np.float32)
        hits = idx.search_vector(q, k=len(idx))
        assert [h.key for h in hits] == brute_cosine(idx, q)


@pytest.mark.parametrize("hnsw", [False, True])
def test_leave_one_case_out_never_returns_the_query_case(backbone, case_lib, monkeypatch, hnsw):
    if hnsw:
        monkeypatch.setattr(CI, "EXACT_SEARCH_MAX_CASES", 0)
    idx = CaseIndex.build(case_lib, backbone, save=False)
    assert idx.exact is not hnsw
    for row in idx.cases.itertuples():
        hits = idx.search_vector(idx.raw[row.Index], k=5, exclude_case_ids=[row.case_id])
        assert len(hits) == 5  # over-fetching makes up for the excluded images
        assert row.case_id not in {h.case_id for h in hits}
    # all but one case excluded: only its two images can come back, whatever k is
    others = set(idx.cases["case_id"]) - {"red-stripes-case0"}
    hits = idx.search_vector(idx.raw[0], k=10, exclude_case_ids=others)
    assert {h.case_id for h in hits} == {"red-stripes-case0"} and len(hits) == 2


def test_euclidean_search_on_raw_vectors(backbone, case_lib):
    idx = CaseIndex.build(case_lib, backbone, save=False)
    q = idx.raw[3] * 1.5
    hits = idx.search_vector(q, k=4, metric="euclidean", exclude_case_ids=["x"])
    dist = np.linalg.norm(idx.raw - q, axis=1)
    assert [h.key for h in hits] == [
        int(k) for k in idx.cases["key"].to_numpy()[np.argsort(dist)[:4]]
    ]
    assert [h.score for h in hits] == pytest.approx(sorted(dist)[:4], rel=1e-5)


def test_sync_after_adding_and_deleting_files_equals_a_full_rebuild(tmp_path, backbone):
    root = make_folder_library(tmp_path / "lib", per_class=2)
    idx = CaseIndex.build(CaseLibrary.load(root), backbone, out_dir=tmp_path / "idx")
    for i in range(3):
        save_image(pattern_image("blue-checks", 70 + i), root / "blue-checks" / f"new-{i}.jpg")
    (root / "red-stripes" / "red-stripes-1.jpg").unlink()
    added, removed = idx.sync(CaseLibrary.load(root), backbone)
    assert (added, removed) == (3, 1)
    idx.save()
    updated = CaseIndex.load(tmp_path / "idx")
    full = CaseIndex.build(CaseLibrary.load(root), backbone, save=False)
    assert sorted(updated.cases["relpath"]) == sorted(full.cases["relpath"])
    assert updated.fingerprint == full.fingerprint
    for q in full.raw:
        a, b = updated.search_vector(q, k=6), full.search_vector(q, k=6)
        assert [h.path for h in a] == [h.path for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-6)
    assert updated.sync(CaseLibrary.load(root), backbone) == (0, 0)


def test_add_images_remove_and_keys_are_never_reused(tmp_path, backbone, case_lib):
    idx = CaseIndex.build(case_lib, backbone, out_dir=tmp_path / "idx")
    new = save_image(pattern_image("green-dots", 99), tmp_path / "extra" / "g.jpg")
    (key,) = idx.add_images(backbone, [new], labels=["green-dots"], metadata=[{"site": "hand"}])
    assert key == 12 and idx.search_image(backbone, new, k=1)[0].key == key
    assert idx.remove([key, 0, 12345]) == 2
    idx.save()
    again = CaseIndex.load(tmp_path / "idx")
    assert len(again) == 11 and 0 not in set(again.cases["key"])
    (key2,) = again.add_images(backbone, [new], labels=["green-dots"])
    assert key2 == 13
    with pytest.raises(ValueError, match="Nothing added"):
        again.add_images(backbone, [tmp_path / "missing.jpg"], labels=["x"])
    with pytest.raises(ValueError, match="non-empty label"):
        again.add_images(backbone, [new], labels=[" "])


@pytest.mark.parametrize(
    ("dtype", "kind", "tol"), [("f16", ScalarKind.F16, 1e-3), ("i8", ScalarKind.I8, 2e-2)]
)
def test_smaller_dtypes_are_stored_and_searchable(tmp_path, backbone, case_lib, dtype, kind, tol):
    idx = CaseIndex.build(case_lib, backbone, out_dir=tmp_path / "idx", dtype=dtype)
    meta = Index.metadata(str(resolve_version(tmp_path / "idx") / "index.usearch"))
    assert meta["kind_scalar"] == kind
    loaded = CaseIndex.load(tmp_path / "idx")
    assert loaded.dtype == dtype
    hits = loaded.search_vector(idx.raw[2], k=3)
    assert hits[0].key == idx.cases["key"].iloc[2] and hits[0].score == pytest.approx(1, abs=tol)
    with pytest.raises(ValueError, match="dtype"):
        CaseIndex.build(case_lib, backbone, save=False, dtype="bf16")


def test_mismatches_are_clear_errors(tmp_path, backbone, case_lib):
    CaseIndex.build(case_lib, backbone, out_dir=tmp_path / "idx")
    with pytest.raises(IndexMismatch, match="built with backbone 'color-texture'"):
        CaseIndex.load(tmp_path / "idx", backbone_key="efficientnet-lite0")
    with pytest.raises(IndexMismatch, match="architecture-only"):
        CaseIndex.load(tmp_path / "idx", weights_origin="architecture-only")

    version = resolve_version(tmp_path / "idx")
    manifest = json.loads((version / MANIFEST_FILE).read_text())
    (version / MANIFEST_FILE).write_text(json.dumps({**manifest, "dim": 7}))
    with pytest.raises(IndexMismatch, match="dims"):
        CaseIndex.load(tmp_path / "idx")
    (version / MANIFEST_FILE).write_text(json.dumps({**manifest, "count": 3}))
    with pytest.raises(IndexMismatch, match="counts differ"):
        CaseIndex.load(tmp_path / "idx")
    (version / MANIFEST_FILE).write_text(json.dumps(manifest))
    with (version / CASES_FILE).open("ab") as f:
        f.write(b"tampered")
    with pytest.raises(IndexMismatch, match="checksum"):
        CaseIndex.load(tmp_path / "idx")
    (tmp_path / "idx" / POINTER).write_text("v-gone\n")
    with pytest.raises(IndexMismatch, match="missing or incomplete"):
        CaseIndex.load(tmp_path / "idx")
    with pytest.raises(ValueError, match="not a case index"):
        CaseIndex.load(tmp_path / "lib")


def test_bad_queries_raise_sentences(backbone, case_lib):
    idx = CaseIndex.build(case_lib, backbone, save=False)
    with pytest.raises(ValueError, match="one vector of"):
        idx.search_vector(np.ones(5), k=3)
    with pytest.raises(ValueError, match="positive"):
        idx.search_vector(idx.raw[0], k=0)
    with pytest.raises(ValueError, match="metric"):
        idx.search_vector(idx.raw[0], metric="manhattan")
    with pytest.raises(NoTextTower):
        idx.search_text(backbone, "red scaly plaque")


def test_empty_library_cannot_be_built(tmp_path, backbone):
    root = tmp_path / "lib"
    (root / "red").mkdir(parents=True)
    (root / "red" / "a.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="no usable images"):
        CaseIndex.build(CaseLibrary.load(root), backbone, save=False)


def test_sync_keeps_images_added_one_by_one(tmp_path, backbone):
    root = make_folder_library(tmp_path / "lib", per_class=1)
    idx = CaseIndex.build(CaseLibrary.load(root), backbone, save=False)
    extra = save_image(pattern_image("green-dots", 77), tmp_path / "elsewhere" / "g.jpg")
    (key,) = idx.add_images(backbone, [extra], labels=["green-dots"])
    (root / "red-stripes" / "red-stripes-0.jpg").unlink()
    assert idx.sync(CaseLibrary.load(root), backbone) == (0, 1)
    assert key in set(idx.cases["key"]) and len(idx) == 4
    assert idx.search_vector(idx.raw[-1], k=1)[0].metadata["added_at"]


def test_index_stays_current_with_a_library_holding_an_undecodable_image(tmp_path, backbone):
    root = make_folder_library(tmp_path / "lib", per_class=1)
    data = (root / "green-dots" / "green-dots-0.jpg").read_bytes()
    (root / "green-dots" / "cut.jpg").write_bytes(data[: len(data) // 2])
    library = CaseLibrary.load(root)
    idx = CaseIndex.build(library, backbone, out_dir=tmp_path / "idx")
    assert len(idx) == 4 and len(library) == 4  # dropped while embedding
    fresh = CaseLibrary.load(root)
    assert len(fresh) == 5 and fresh.fingerprint == CaseIndex.load(tmp_path / "idx").fingerprint
    save_image(pattern_image("red-stripes", 5), root / "red-stripes" / "more.jpg")
    assert CaseLibrary.load(root).fingerprint != idx.fingerprint
