"""Retrieval variants in a search: the same ranking as the honest evaluation, fitted files kept
beside the index, reused while the library is unchanged and refitted when it changes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from library_factory import make_folder_library, make_manifest_library, pattern_image, save_image

from benchmarks.variants import (
    rank_aqe,
    rank_dba,
    rank_k_reciprocal,
    rank_plain,
    same_group,
    top_rows,
)
from data_index import CaseIndex, CaseLibrary
from data_index.audit import case_or_copy_groups
from data_index.compare import CompareQuery, compare_row
from data_index.compare_render import row_summary
from data_index.embed_transformed import embed_transformed, mirrored
from data_index.trusted_search import trusted_search
from data_index.variant_search import (
    IN_SEARCH,
    parse_search_variant,
    prepare_variant,
    variant_folder,
)
from data_index.variants import VARIANTS, flip_average
from models import load_backbone

K = 5


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("variant-lib")
    manifest = make_manifest_library(root, per_class=8, images_per_case=2, extra=False)
    library = CaseLibrary.load(manifest)
    backbone = load_backbone("efficientnet-lite0")
    idx = CaseIndex.build(library, backbone, out_dir=root / "index", use_cache=False)
    return root, library, backbone, idx


def mirrored_of(backbone, idx):
    return lambda: embed_transformed(
        backbone,
        paths=idx.cases["path"].astype(str).tolist(),
        sha1s=idx.cases["sha1"].astype(str).tolist(),
        tag="mirrored",
        transform=mirrored,
    )


def app_rows(prepared, idx, *, k=K):
    """Every library case searched with its own case left out, as rows of ``idx.cases``."""
    unit = idx.vectors()
    out = []
    for row in range(len(idx)):
        case = str(idx.cases["case_id"].iat[row])
        hits = prepared.search(unit[row], k=k, exclude_case_ids=[case], row=row)
        out.append(idx.row_positions([h.key for h in hits]).tolist())
    return np.array(out)


@pytest.mark.parametrize("name", ["aqe", "dba", "k-reciprocal", "tta-flip", "adapter-lda"])
def test_a_search_ranks_as_the_evaluation_does(built, tmp_path, name):
    _, _, backbone, idx = built
    unit = idx.vectors()
    groups = case_or_copy_groups(
        group_ids=np.arange(len(idx)), case_ids=idx.cases["case_id"].astype(str).to_numpy()
    )
    exclude = same_group(groups)
    prepared = prepare_variant(
        idx, name, folder=tmp_path / "v", mirrored_library=mirrored_of(backbone, idx)
    )
    params = VARIANTS[name].params
    if name == "aqe":
        expected = rank_aqe(unit, exclude, K, expand=int(params["k"]), alpha=params["alpha"])
    elif name == "dba":
        expected = rank_dba(unit, groups, K, expand=int(params["k"]), alpha=params["alpha"])
    elif name == "k-reciprocal":
        expected = rank_k_reciprocal(unit, exclude, K, params=params)
        assert prepared.folder is None and not variant_folder(tmp_path / "v").exists()
    else:
        if name == "tta-flip":
            space = flip_average(unit, mirrored_of(backbone, idx)())
            expected = rank_plain(space, exclude, K)
        else:  # the evaluation cross-fits; in use the one adapter fitted on the library projects
            space = prepared.adapter.project(unit)
            expected = top_rows(space @ space.T, exclude, K)
        # Same-class synthetic photos project to near-equal points: a float tie may swap two
        # neighbours, so their similarities are what must agree there.
        found = app_rows(prepared, idx)
        scores = space @ space.T
        np.testing.assert_allclose(
            np.take_along_axis(scores, found, 1), np.take_along_axis(scores, expected, 1), atol=1e-5
        )
        assert (found == expected).mean() > 0.95
        return
    np.testing.assert_array_equal(app_rows(prepared, idx), expected)


def test_fitted_files_are_real_and_reused_until_the_library_changes(built, tmp_path):
    _, _, backbone, _ = built
    lib_root = tmp_path / "lib"
    manifest = make_manifest_library(lib_root, per_class=6, images_per_case=1, extra=False)
    library = CaseLibrary.load(manifest)
    idx = CaseIndex.build(library, backbone, out_dir=tmp_path / "index", use_cache=False)
    folder = variant_folder(tmp_path / "index")
    first = prepare_variant(idx, "adapter-lda", folder=folder)
    assert first.fitted_now
    stored = first.folder
    assert stored.parent.parent == folder and stored.name == library.fingerprint[:16]
    for name in ("manifest.json", "vectors.npy", "index.usearch", "adapter.npz"):
        assert (stored / name).is_file()
    written = json.loads((stored / "manifest.json").read_text())
    assert written["backbone_key"] == "efficientnet-lite0" and written["n"] == len(idx)

    again = prepare_variant(CaseIndex.load(tmp_path / "index"), "adapter-lda", folder=folder)
    assert not again.fitted_now  # loaded from disk, not fitted
    np.testing.assert_array_equal(again.adapter.matrix, first.adapter.matrix)
    unit = idx.vectors()[0]
    assert [h.key for h in again.search(unit, k=4)] == [h.key for h in first.search(unit, k=4)]

    # the library changes: one more photo of the first class
    label = sorted(library.labels)[0]
    save_image(pattern_image(label, 999), lib_root / "img" / "new.png")
    table = library.cases[["relpath", "label", "case_id"]].rename(columns={"relpath": "path"})
    table.loc[len(table)] = ["img/new.png", label, "new-case"]
    table.to_csv(manifest, index=False)
    changed = CaseLibrary.load(manifest)
    assert changed.fingerprint != library.fingerprint
    idx.sync(changed, backbone)
    refit = prepare_variant(idx, "adapter-lda", folder=folder)
    assert refit.fitted_now and refit.folder.name == changed.fingerprint[:16]
    assert not stored.exists()  # the fit of the earlier library is gone
    assert len(refit.library) == len(idx) == len(library) + 1


def test_a_damaged_file_is_refitted_not_trusted(built, tmp_path):
    _, _, _, idx = built
    first = prepare_variant(idx, "dba", folder=tmp_path / "v")
    vectors = first.folder / "vectors.npy"
    data = bytearray(vectors.read_bytes())
    data[-100:] = bytes(255 - b for b in data[-100:])
    vectors.write_bytes(bytes(data))
    assert prepare_variant(idx, "dba", folder=tmp_path / "v").fitted_now


def test_trusted_search_names_the_variant_and_drops_the_uncalibrated_set(built, tmp_path):
    _, _, _, idx = built
    prepared = prepare_variant(idx, "adapter-lda", folder=tmp_path / "v")
    row = 3
    case = str(idx.cases["case_id"].iat[row])
    report = trusted_search(
        idx, idx.raw[row], k=K, exclude_case_ids=[case], variant=prepared, query_row=row
    )
    expected = prepared.search(idx.vectors()[row], k=K, exclude_case_ids=[case])
    assert [h.key for h in report.hits] == [h.key for h in expected]
    assert report.as_json()["variant"] == "adapter-lda" and report.prediction_set == []
    plain = trusted_search(idx, idx.raw[row], k=K, exclude_case_ids=[case])
    assert plain.as_json()["variant"] is None and plain.prediction_set
    with pytest.raises(ValueError, match="cosine"):
        trusted_search(idx, idx.raw[row], k=K, metric="euclidean", variant=prepared)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("", None),
        ("none", None),
        ("AQE", "aqe"),
        ("adapter-lda", "adapter-lda"),
        (" K-Reciprocal ", "k-reciprocal"),
    ],
)
def test_parse_search_variant(given, expected):
    assert parse_search_variant(given) == expected


def test_parse_search_variant_lists_the_valid_ones():
    with pytest.raises(ValueError, match="adapter-lda, tta-flip, aqe, dba, k-reciprocal"):
        parse_search_variant("fusion:a+b")
    assert set(IN_SEARCH) <= set(VARIANTS)


def test_a_compare_row_ranks_with_the_variant_and_says_so(built, tmp_path):
    _, _, backbone, idx = built
    prepared = prepare_variant(idx, "adapter-lda", folder=tmp_path / "v")
    relpath = str(idx.cases["relpath"].iat[2])
    query = CompareQuery(kind="case", relpath=relpath, label=str(idx.cases["label"].iat[2]))
    row = compare_row(idx, backbone, query, k=K, variant=prepared)
    case = str(idx.cases["case_id"].iat[2])
    expected = prepared.search(idx.vectors()[2], k=K, exclude_case_ids=[case])
    assert [h.case_id for h in row.hits] == [h.case_id for h in expected]
    assert row.to_dict()["variant"] == "adapter-lda"
    assert "ranked with: Adapt to this library's labels (LDA)" in row_summary(row, k=K)
    plain = compare_row(idx, backbone, query, k=K)
    assert plain.to_dict()["variant"] is None
    with pytest.raises(ValueError, match="rank photos"):
        compare_row(idx, backbone, CompareQuery(kind="text", text="x"), k=K, variant=prepared)


def test_an_adapter_that_cannot_be_fitted_says_why_in_a_sentence(tmp_path):
    # Two photos per diagnosis under a colour-and-texture descriptor: the within-diagnosis
    # spread is singular, so the discriminant analysis has nothing to solve.
    library = CaseLibrary.load(make_folder_library(tmp_path / "lib", per_class=2))
    idx = CaseIndex.build(
        library, load_backbone("color-texture"), out_dir=tmp_path / "index", use_cache=False
    )
    with pytest.raises(ValueError, match="too few photos per diagnosis"):
        prepare_variant(idx, "adapter-lda", folder=tmp_path / "v")
    assert not (tmp_path / "v" / "adapter-lda").exists() or not any(
        p.name.startswith(library.fingerprint[:16])
        for p in (tmp_path / "v" / "adapter-lda").iterdir()
    )
