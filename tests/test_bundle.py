"""Index bundles: export, move, reopen as a library and as a search index, embed nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from library_factory import make_manifest_library

from data_index import CaseIndex, CaseLibrary, IndexMismatch
from data_index.bundle import BUNDLE_FILE, bundle_index_dir, export_bundle, open_bundle_index
from data_index.locations import embeddings_dir
from demo.state import AppState
from models import load_backbone

REPO = Path(__file__).resolve().parents[1]
KEYS = ("color-texture", "efficientnet-lite0")


def _files_under(folder: Path) -> int:
    return sum(p.is_file() for p in folder.rglob("*")) if folder.exists() else 0


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A library indexed under two backbones and exported, then moved away from it all."""
    base = tmp_path_factory.mktemp("bundle")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DERMSEARCH_CACHE", str(base / "build-cache"))
        manifest = make_manifest_library(base / "skin-lib", per_class=3)
        library = manifest.parent
        table = pd.read_csv(manifest)  # a sha1 column, as the shared datasets have
        table["sha1"] = [
            hashlib.sha1((library / p).read_bytes()).hexdigest() for p in table["path"]
        ]
        table.to_csv(manifest, index=False)
        (library / "LICENSE.txt").write_text("CC BY 4.0, cite the authors.\n")
        loaded = CaseLibrary.load(library)
        paths = []
        for key in KEYS:
            idx = CaseIndex.build(loaded, load_backbone(key, device="cpu"), out_dir=base / key)
            paths.append(base / key)
        info = export_bundle(paths, base / "made" / "bundle")
    moved = base / "elsewhere" / "skin-bundle"
    moved.parent.mkdir()
    shutil.move(base / "made" / "bundle", moved)
    shutil.rmtree(library)  # the originals are gone: the bundle must stand on its own
    return {"base": base, "bundle": moved, "info": info, "count": len(idx)}


def test_export_records_every_index_and_the_licence(exported):
    info = json.loads((exported["bundle"] / BUNDLE_FILE).read_text())
    assert sorted(info["indexes"]) == sorted(KEYS) and info["count"] == exported["count"] == 12
    assert info["indexes"]["efficientnet-lite0"]["dim"] == 1280
    assert info["licence_files"] == ["LICENSE.txt"]
    assert (exported["bundle"] / "LICENSE.txt").read_text().startswith("CC BY 4.0")
    assert len(list((exported["bundle"] / "images").glob("*.jpg"))) == 12


def test_moved_bundle_opens_in_the_app_without_embedding(exported, monkeypatch):
    cache = exported["base"] / "app-cache"
    monkeypatch.setenv("DERMSEARCH_CACHE", str(cache))
    state = AppState()
    bundle = str(exported["bundle"])
    library = state.library(bundle)
    assert len(library) == 12 and library.report.ok and not library.report.problems
    assert {"site", "original_sha1"} <= set(library.metadata_columns)
    for key in KEYS:
        assert state.index_status(bundle, key).state == "ready"
        idx = state.index(bundle, key, update=False)
        assert len(idx) == 12
        assert all(
            Path(p).is_file() and Path(p).is_relative_to(exported["bundle"])
            for p in idx.cases["path"]
        )
        hits = idx.search_image(state.backbone(key), idx.cases["path"][0], k=3)
        assert hits[0].path == idx.cases["path"][0] and hits[0].label == idx.cases["label"][0]
    embedded = _files_under(embeddings_dir())
    print(f"files in the embedding cache after opening the bundle: {embedded}")
    assert embedded == 0 and not (cache / "indexes").exists()


def test_cli_searches_a_bundle_and_asks_which_backbone(exported):
    query = next((exported["bundle"] / "images").glob("*.jpg"))
    cmd = [sys.executable, "-m", "data_index", "search", "--index", str(exported["bundle"])]
    run = subprocess.run(
        [*cmd, "--backbone", "color-texture", "--image", str(query), "-k", "2", "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    # The query is one of the bundle's own photos: it is recognised and left out of the hits.
    assert report["query_in_library"] is not None
    assert report["hits"] and all(Path(h["path"]) != query for h in report["hits"])
    run = subprocess.run(
        [*cmd, "--image", str(query)], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert run.returncode == 2 and "say which with --backbone" in run.stderr


def test_a_bundle_refuses_other_weights_dims_and_formats(exported, tmp_path):
    bundle = tmp_path / "copy"
    shutil.copytree(exported["bundle"], bundle)
    with pytest.raises(IndexMismatch, match="1280 dimensions, the backbone 512"):
        bundle_index_dir(bundle, "efficientnet-lite0", dim=512)
    with pytest.raises(IndexMismatch, match="pretrained vectors"):
        open_bundle_index(
            bundle, backbone_key="efficientnet-lite0", weights_origin="architecture-only"
        )
    with pytest.raises(IndexMismatch, match="no index for 'biomedclip'"):
        open_bundle_index(bundle, backbone_key="biomedclip")
    info = json.loads((bundle / BUNDLE_FILE).read_text())
    (bundle / BUNDLE_FILE).write_text(json.dumps({**info, "format_version": 99}))
    with pytest.raises(IndexMismatch, match="v99"):
        open_bundle_index(bundle, backbone_key="color-texture")


def test_export_refuses_a_non_empty_folder_and_missing_images(exported, tmp_path):
    with pytest.raises(ValueError, match="not empty"):
        export_bundle([exported["base"] / "color-texture"], exported["bundle"])
    with pytest.raises(ValueError, match="not on this machine"):
        export_bundle([exported["base"] / "color-texture"], tmp_path / "new")
