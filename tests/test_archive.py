"""Zip extraction refuses escapes, links and oversize archives, and never leaves half a library."""

from __future__ import annotations

import stat
import zipfile

import pytest
from library_factory import jpeg_bytes

from data_index import CaseLibrary, UnsafeArchive
from data_index import archive as A


def _zip(path, entries):
    """entries: (name, bytes) or (ZipInfo, bytes)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def _good_entries():
    return [(f"{lab}/{lab}-0.jpg", jpeg_bytes(lab, 0)) for lab in ("red-stripes", "blue-checks")]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../evil.jpg", "outside"),
        ("red-stripes/../../evil.jpg", "outside"),
        ("/etc/evil.jpg", "absolute"),
        ("C:/evil.jpg", "absolute"),
    ],
)
def test_path_escapes_are_refused_and_nothing_is_written(tmp_path, name, message):
    archive = _zip(tmp_path / "bad.zip", [*_good_entries(), (name, b"x")])
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchive, match=message):
        A.extract_zip(archive, dest_root=dest)
    assert not (tmp_path / "evil.jpg").exists()
    assert list(dest.iterdir()) == []  # the staging folder is gone too


def test_symlinks_are_refused(tmp_path):
    link = zipfile.ZipInfo("red-stripes/link.jpg")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = _zip(tmp_path / "link.zip", [*_good_entries(), (link, "/etc/passwd")])
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        A.extract_zip(archive, dest_root=tmp_path / "out")


def test_file_count_and_size_limits(tmp_path, monkeypatch):
    archive = _zip(tmp_path / "many.zip", _good_entries())
    monkeypatch.setattr(A, "MAX_FILES", 1)
    with pytest.raises(UnsafeArchive, match="limit is 1"):
        A.extract_zip(archive, dest_root=tmp_path / "out")
    monkeypatch.setattr(A, "MAX_FILES", 100)
    monkeypatch.setattr(A, "MAX_TOTAL_BYTES", 100)
    with pytest.raises(UnsafeArchive, match="expand"):
        A.extract_zip(archive, dest_root=tmp_path / "out")


def test_zip_bomb_ratio_is_refused(tmp_path):
    archive = _zip(tmp_path / "bomb.zip", [("red-stripes/zeros.jpg", b"\0" * (8 << 20))])
    with pytest.raises(UnsafeArchive, match="compression ratio"):
        A.extract_zip(archive, dest_root=tmp_path / "out")


def test_macos_junk_is_skipped_and_library_loads_through_case_library(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    entries = [*_good_entries(), ("__MACOSX/red-stripes/._x.jpg", b"junk"), (".DS_Store", b"")]
    lib = CaseLibrary.load(_zip(tmp_path / "mac.zip", entries))
    assert len(lib) == 2 and lib.report.ok
    assert not (lib.root / "__MACOSX").exists()


def test_unsafe_zip_is_a_value_error_for_case_library(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    archive = _zip(tmp_path / "bad.zip", [*_good_entries(), ("../x.jpg", b"x")])
    with pytest.raises(ValueError, match="outside"):
        CaseLibrary.load(archive)
