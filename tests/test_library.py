"""Case library formats and the validation report, on generated libraries (good and broken)."""

from __future__ import annotations

import pandas as pd
import pytest
from library_factory import (
    PATTERNS,
    jpeg_bytes,
    make_folder_library,
    make_manifest_library,
    pattern_image,
    save_image,
    zip_tree,
)

from data_index import CaseLibrary
from data_index.library import CORE_COLUMNS


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))


def test_folder_library_reads_classes_keys_and_hashes(tmp_path):
    make_folder_library(tmp_path / "lib", per_class=2)
    (tmp_path / "lib" / "red-stripes" / "notes.txt").write_text("not an image")
    lib = CaseLibrary.load(tmp_path / "lib")
    assert lib.layout == "folder" and lib.name == "lib"
    assert len(lib) == 8 and lib.labels == sorted(PATTERNS)
    assert list(lib.cases.columns[: len(CORE_COLUMNS)]) == list(CORE_COLUMNS)
    assert lib.cases["key"].tolist() == list(range(8))
    assert lib.cases["sha1"].str.len().eq(40).all()
    assert lib.cases["relpath"].iloc[0] == "blue-checks/blue-checks-0.jpg"
    assert lib.report.ok and lib.report.ignored_files == 1
    assert lib.report.class_counts == {label: 2 for label in sorted(PATTERNS)}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_manifest_library_keeps_optional_and_metadata_columns(tmp_path, fmt):
    manifest = make_manifest_library(tmp_path / "lib", fmt=fmt, images_per_case=2)
    lib = CaseLibrary.load(manifest)
    assert lib.layout == "manifest" and len(lib) == 12 and lib.report.ok
    assert lib.metadata_columns == ["site"]
    row = lib.cases.set_index("relpath").loc["img/red-stripes-1.png"]
    assert (row["case_id"], row["split"], row["caption"], row["site"]) == (
        "red-stripes-case0",
        "train",
        "red-stripes #1",
        "arm",
    )
    assert row["path"] == str((tmp_path / "lib" / "img" / "red-stripes-1.png").resolve())


def test_folder_with_manifest_prefers_the_manifest(tmp_path):
    make_folder_library(tmp_path / "lib", per_class=1)
    pd.DataFrame({"path": ["red-stripes/red-stripes-0.jpg"], "label": ["relabelled"]}).to_csv(
        tmp_path / "lib" / "manifest.csv", index=False
    )
    lib = CaseLibrary.load(tmp_path / "lib")
    assert lib.layout == "manifest" and lib.labels == ["relabelled"] and len(lib) == 1


@pytest.mark.parametrize("kind", ["folder", "manifest", "wrapped-folder"])
def test_zip_of_a_library_is_extracted_into_the_cache(tmp_path, kind):
    src = tmp_path / "src"
    if kind == "manifest":
        make_manifest_library(src, per_class=1)
    else:
        make_folder_library(src, per_class=1)
    prefix = "mylib/" if kind == "wrapped-folder" else ""
    archive = zip_tree(src, tmp_path / "cases.zip", prefix=prefix)
    lib = CaseLibrary.load(archive)
    assert lib.layout == ("zip/manifest" if kind == "manifest" else "zip/folder")
    assert len(lib) == 4 and lib.name == "cases" and lib.report.ok
    assert lib.root.is_relative_to(tmp_path / "cache" / "libraries")
    again = CaseLibrary.load(archive)  # extracted once, reused
    assert again.root == lib.root and again.fingerprint == lib.fingerprint


def test_broken_files_are_reported_with_reasons_and_left_out(tmp_path):
    root = make_folder_library(tmp_path / "lib", per_class=2)
    (root / "red-stripes" / "empty.jpg").write_bytes(b"")
    (root / "red-stripes" / "text.jpg").write_text("this is not a picture")
    (root / "blue-checks" / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    truncated = jpeg_bytes("green-dots", 7)
    (root / "green-dots" / "truncated.jpg").write_bytes(truncated[: len(truncated) // 2])
    save_image(pattern_image("red-stripes", 0), root / "stray.jpg")  # outside any class folder

    lib = CaseLibrary.load(root)
    reasons = {p.item: p.reason for p in lib.report.unreadable}
    assert reasons["red-stripes/empty.jpg"] == "empty file (0 bytes)"
    assert reasons["red-stripes/text.jpg"] == "not a recognised image"
    assert "blue-checks/garbage.png" in reasons
    # A cut-off JPEG has a valid header: only a full decode finds it.
    assert "green-dots/truncated.jpg" not in reasons
    assert [p.item for p in lib.report.problems] == ["stray.jpg"]
    assert not lib.report.ok and lib.report.images_found == 12 and lib.report.usable == 9

    decoded = CaseLibrary.load(root, decode=True)
    assert "green-dots/truncated.jpg" in {p.item for p in decoded.report.unreadable}
    assert decoded.report.usable == 8
    text = decoded.report.format_text()
    assert "empty file (0 bytes)" in text and "Problems found" in text


def test_manifest_row_problems_missing_duplicate_and_empty_label(tmp_path):
    manifest = make_manifest_library(tmp_path / "lib", per_class=1, extra=False)
    table = pd.read_csv(manifest)
    bad = pd.DataFrame(
        {
            "path": ["img/nowhere.png", table["path"][0], table["path"][1], ""],
            "label": ["red-stripes", "other", "", "x"],
        }
    )
    pd.concat([table, bad]).to_csv(manifest, index=False)
    lib = CaseLibrary.load(manifest)
    assert len(lib) == 4
    unreadable = {p.item: p.reason for p in lib.report.unreadable}
    assert unreadable == {"img/nowhere.png": "file not found"}
    reasons = sorted(p.reason for p in lib.report.problems)
    assert reasons == ["duplicate path (first row kept)", "empty label", "empty path"]
    # the first row of a duplicated path wins
    assert lib.cases.set_index("relpath").loc[table["path"][0], "label"] == table["label"][0]


def test_exact_duplicates_share_a_case_and_conflicts_are_flagged(tmp_path):
    root = make_folder_library(tmp_path / "lib", per_class=2)
    data = (root / "red-stripes" / "red-stripes-0.jpg").read_bytes()
    (root / "red-stripes" / "copy.jpg").write_bytes(data)
    (root / "blue-checks" / "mislabelled.jpg").write_bytes(data)
    lib = CaseLibrary.load(root)
    (group,) = lib.report.duplicates
    assert sorted(group.relpaths) == [
        "blue-checks/mislabelled.jpg",
        "red-stripes/copy.jpg",
        "red-stripes/red-stripes-0.jpg",
    ]
    assert group.conflicting and not lib.report.ok
    same = lib.cases[lib.cases["sha1"] == group.sha1]
    assert same["case_id"].nunique() == 1


def test_manifest_sha1_mismatch_is_reported(tmp_path):
    manifest = make_manifest_library(tmp_path / "lib", per_class=1, extra=False)
    table = pd.read_csv(manifest)
    table["sha1"] = ["0" * 40] + [""] * (len(table) - 1)
    table.to_csv(manifest, index=False)
    lib = CaseLibrary.load(manifest)
    assert len(lib) == 4
    assert [p.reason for p in lib.report.problems] == ["content differs from the manifest's sha1"]


def test_fingerprint_follows_content_and_labels_not_location(tmp_path):
    a = CaseLibrary.load(make_folder_library(tmp_path / "a", per_class=1))
    b = CaseLibrary.load(make_folder_library(tmp_path / "b", per_class=1))
    assert a.fingerprint == b.fingerprint
    (tmp_path / "b" / "red-stripes").rename(tmp_path / "b" / "red")
    assert CaseLibrary.load(tmp_path / "b").fingerprint != a.fingerprint


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: (p / "x.txt").write_text("hi") and p / "x.txt", "is not a library"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "neither class folders"),
        (lambda p: (p / "m.csv").write_text("file,class\na.jpg,x\n") and p / "m.csv", "lacks"),
        (lambda p: (p / "bad.zip").write_bytes(b"PK not really") and p / "bad.zip", "zip"),
    ],
)
def test_unusable_sources_raise_a_sentence(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        CaseLibrary.load(make(tmp_path))
