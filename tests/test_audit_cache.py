"""One cached audit per library version, shared by validate, the benchmark and the Library tab."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from library_factory import make_folder_library, pattern_image, save_image
from PIL import Image

from benchmarks.latency import LatencySettings
from benchmarks.runner import run_benchmark
from data_index import CaseLibrary
from data_index.__main__ import main
from data_index.audit import audit_cache_file, audit_library, cache, find_duplicate_groups
from demo import handlers_library as hl
from demo.state import AppState

FAST = LatencySettings(batch_size=4, n_queries=3, repeats=1, warmup=0)


def make_library(root: Path) -> Path:
    """Two patterns per class plus one photo and its mirror image filed as two cases."""
    make_folder_library(root, per_class=2)
    rng = np.random.default_rng(3)
    photo = Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).resize(
        (160, 128), Image.Resampling.BICUBIC
    )
    save_image(photo, root / "red-stripes" / "photo.jpg")
    save_image(photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT), root / "red-stripes" / "copy.jpg")
    return root


@pytest.fixture
def audits(monkeypatch, tmp_path):
    """A private cache root; the list of libraries the real audit ran on, in order."""
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    ran: list[int] = []

    def counted(paths, *args, **kwargs):
        ran.append(len(paths))
        return find_duplicate_groups(paths, *args, **kwargs)

    monkeypatch.setattr(cache, "find_duplicate_groups", counted)
    return ran


def test_validate_benchmark_and_library_tab_share_one_audit(audits, tmp_path, capsys):
    lib = make_library(tmp_path / "lib")
    assert main(["validate", "--library", str(lib)]) == 0
    assert "1 groups hold 2 images: 9 distinct photos among 10" in capsys.readouterr().out
    file = audit_cache_file(CaseLibrary.load(lib))
    written = file.stat().st_mtime_ns

    records = run_benchmark(lib, ["color-texture"], ["loo"], latency=FAST)
    assert {r["n_duplicate_groups"] for r in records if "n_duplicate_groups" in r} == {1}
    state = AppState()
    strips, text = hl.near_duplicate_audit(state, str(lib))
    assert len(strips) == 1 and "1 group(s) of copies" in text
    assert audits == [10] and file.stat().st_mtime_ns == written
    assert list(file.parent.glob("*.json")) == [file]

    save_image(pattern_image("green-dots", 42), lib / "green-dots" / "added.jpg")
    hl.library_summary(state, str(lib), reload=True)
    strips, text = hl.near_duplicate_audit(state, str(lib))
    assert "among 11 images" in text and audits == [10, 11]
    assert main(["validate", "--library", str(lib)]) == 0
    assert audits == [10, 11] and len(list(file.parent.glob("*.json"))) == 2


def test_cached_report_follows_the_library_it_is_read_for(audits, tmp_path):
    lib = make_library(tmp_path / "lib")
    fresh = audit_library(CaseLibrary.load(lib))
    moved = CaseLibrary.load(shutil.copytree(lib, tmp_path / "moved"))
    again = audit_library(moved)
    assert audits == [10] and again.groups == fresh.groups and again.pairs == fresh.pairs
    assert again.summary() == fresh.summary()
    assert all(p.startswith(str(tmp_path / "moved")) for p in again.paths)
    # Rows dropped after loading (undecodable pixels) keep the fingerprint: same file, fewer rows.
    key = int(moved.cases.loc[moved.cases["relpath"] == "red-stripes/copy.jpg", "key"].iloc[0])
    moved.drop([key], reasons=["does not decode"])
    smaller = audit_library(moved)
    assert audits == [10] and smaller.groups == [] and len(smaller.group_ids) == 9
    assert len(set(smaller.group_ids.tolist())) == 9


def test_a_damaged_cache_file_is_audited_again(audits, tmp_path):
    library = CaseLibrary.load(make_library(tmp_path / "lib"))
    audit_library(library)
    audit_cache_file(library).write_text('{"version": 1, "relpa', encoding="utf-8")
    assert audit_library(library).n_groups == 1 and audits == [10, 10]
    assert audit_library(library).n_groups == 1 and audits == [10, 10]
