"""The audit on atlas-like photos: shared marks never make copies, copies under marks are found,
weak chains are split, and a person's "not a copy" decision sticks."""

from __future__ import annotations

import csv
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.perf.audit_copies import apply_step
from benchmarks.perf.audit_overlays import reshoot, stamp
from data_index import CaseLibrary
from data_index.__main__ import main
from data_index.audit import (
    audit_library,
    decisions_file,
    find_duplicate_groups,
    mark_not_copy,
    render_pair_evidence,
)
from data_index.audit.groups import split_weak_groups
from data_index.audit.match import PairEvidence


def _photos(shared: Path, n: int, *, skip: int = 0) -> list[Path]:
    """``n`` distinct HAM10000 photos (one per lesion: the subset holds no copies)."""
    with open(shared / "ham10000-subset" / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [shared / "ham10000-subset" / r["path"] for r in rows[skip : skip + n]]


def _stamped(paths: list[Path], out: Path, overlay: str) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for k, path in enumerate(paths):
        target = out / f"{overlay.replace('+', '-')}-{k:02d}.jpg"
        stamp(Image.open(path), overlay).save(target, quality=90)
        written.append(str(target))
    return written


def test_one_logo_on_20_distinct_photos_makes_no_group(shared_datasets, tmp_path):
    paths = _stamped(_photos(shared_datasets, 20), tmp_path, "logo")
    report = find_duplicate_groups(paths)
    assert report.groups == []
    assert report.possible == []
    # The logo was learned as an overlay of (nearly) every photo.
    assert len(report.overlays) >= 18


@pytest.mark.parametrize("overlay", ["ruler", "banner", "frame", "logo+ruler"])
def test_other_shared_marks_make_no_group(overlay, shared_datasets, tmp_path):
    paths = _stamped(_photos(shared_datasets, 12, skip=40), tmp_path, overlay)
    assert find_duplicate_groups(paths).groups == []


def test_copies_and_reshoots_under_one_logo_are_found(shared_datasets, tmp_path):
    photos = _photos(shared_datasets, 16, skip=100)
    paths = _stamped(photos, tmp_path, "logo")
    rng = np.random.default_rng(4)
    expected = []
    for k, step in enumerate(["hflip", "rot90", "crop", "colour"]):
        copy, _ = apply_step(Image.open(photos[k]).convert("RGB"), step, rng)
        target = tmp_path / f"copy-{step}.jpg"
        stamp(copy, "logo").save(target, quality=85)
        paths.append(str(target))
        expected.append([k, len(paths) - 1])
    shot, _ = reshoot(Image.open(photos[5]).convert("RGB"), rng)
    stamp(shot, "logo").save(tmp_path / "reshoot.jpg", quality=85)
    paths.append(str(tmp_path / "reshoot.jpg"))
    expected.append([5, len(paths) - 1])
    report = find_duplicate_groups(paths)
    assert sorted(report.groups) == sorted(expected)
    assert all(p.evidence.level == "copy" for p in report.pairs)


def _evidence(level: str = "copy") -> PairEvidence:
    return PairEvidence("orb-affine", 0.9, 40, 0.95, 0.9, False, 1.0, level)


def test_a_chain_of_single_links_is_split():
    # 0-1-2-3-4 linked one after the other, as five photos sharing a mark once were.
    chain = [(i, i + 1, _evidence()) for i in range(4)]
    groups, extra = split_weak_groups(6, chain, lambda a, b: None)
    assert extra == []
    assert all(len(g) <= 3 for g in groups)
    assert [0, 1, 2, 3, 4] not in groups
    # Four copies of one photo that all match each other stay one group.
    clique = [(a, b, _evidence()) for a in range(4) for b in range(a + 1, 4)]
    assert split_weak_groups(5, clique, lambda a, b: None)[0] == [[0, 1, 2, 3]]


def test_unlinked_members_are_checked_before_a_group_is_kept():
    chain = [(0, 1, _evidence()), (1, 2, _evidence())]
    groups, extra = split_weak_groups(3, chain, lambda a, b: _evidence())
    assert groups == [[0, 1, 2]] and [(a, b) for a, b, _ in extra] == [(0, 2)]


def _library_with_a_copy(root: Path, shared: Path) -> Path:
    photos = _photos(shared, 6, skip=200)
    for k, path in enumerate(photos):
        label = "nevus" if k % 2 else "melanoma"
        (root / label).mkdir(parents=True, exist_ok=True)
        stamp(Image.open(path), "logo").save(root / label / f"p{k}.jpg", quality=90)
    copy = Image.open(photos[0]).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    stamp(copy, "logo").save(root / "nevus" / "p0-flipped.jpg", quality=90)
    return root


def test_not_a_copy_is_kept_beside_the_library_and_respected(
    shared_datasets, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    root = _library_with_a_copy(tmp_path / "lib", shared_datasets)
    library = CaseLibrary.load(root)
    report = audit_library(library)
    assert len(report.groups) == 1 and len(report.conflicts) == 1
    a, b = report.groups[0]
    mark_not_copy(library, row_a=a, row_b=b)
    assert decisions_file(library).parent == root
    # A fresh load (another session, the benchmark) reads the decision from beside the library.
    again = audit_library(CaseLibrary.load(root))
    assert again.groups == [] and again.conflicts == []
    assert len(set(again.group_ids.tolist())) == len(library)
    # The CLI records the same decision by paths inside the library.
    decisions_file(library).unlink()
    relpaths = library.cases["relpath"].astype(str).tolist()
    assert main(["not-copy", "--library", str(root), relpaths[a], relpaths[b]]) == 0
    assert audit_library(CaseLibrary.load(root)).groups == []
    with pytest.raises(ValueError, match="two different images"):
        mark_not_copy(library, row_a=a, row_b=a)


def test_validate_writes_evidence_pictures_and_says_where(
    shared_datasets, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    root = _library_with_a_copy(tmp_path / "lib", shared_datasets)
    out = tmp_path / "evidence"
    main(["validate", "--library", str(root), "--evidence", str(out)])
    printed = capsys.readouterr().out
    assert str(out) in printed and "possible copies" in printed
    pictures = sorted(out.glob("*.png"))
    assert [p.name for p in pictures] == ["group-000.png"]
    picture = Image.open(pictures[0])
    assert picture.width > 2 * 200 and picture.height > 320


def test_evidence_draws_points_and_shades_the_overlay(shared_datasets, tmp_path):
    (path,) = _stamped(_photos(shared_datasets, 1, skip=300), tmp_path, "logo")
    evidence = PairEvidence(
        "orb-affine", 0.9, 2, 0.95, 0.9, False, 1.0, "copy", 0.5, ((0.5, 0.5, 0.5, 0.5),)
    )
    everything = list(range(400))
    plain = np.asarray(render_pair_evidence(path, path, evidence)).astype(int)
    shaded = np.asarray(
        render_pair_evidence(path, path, evidence, overlay_a=everything, overlay_b=everything)
    ).astype(int)
    # Red grows where overlays are shaded; a matched point is drawn green at the centre.
    assert (shaded[..., 0] - shaded[..., 2]).mean() > (plain[..., 0] - plain[..., 2]).mean() + 5
    h = 320
    centre = plain[h // 2 - 2 : h // 2 + 3, : plain.shape[1] // 2]
    assert (centre[..., 1] > centre[..., 0] + 60).any()


def test_a_large_group_is_judged_on_the_pairs_that_were_checked():
    # 40 copies of one photo, each checked against (and matched to) only its 6 neighbours in
    # a ring, as candidate lists reach in a library with many copies of each photo.
    n = 40
    ring = {(min(i, (i + d) % n), max(i, (i + d) % n)) for i in range(n) for d in (1, 2, 3)}
    edges = [(a, b, _evidence()) for a, b in sorted(ring)]
    whole, _ = split_weak_groups(n, edges, lambda a, b: None, checked=ring)
    assert whole == [list(range(n))]
    # Without what was checked, every other member counts and the group falls apart.
    torn, _ = split_weak_groups(n, edges, lambda a, b: None)
    assert [list(range(n))] != torn
    # A member checked against 10 others and matched to only 2 of them still leaves.
    weak = 40
    tried = ring | {(i, weak) for i in range(10)}
    linked = [*edges, (0, weak, _evidence()), (1, weak, _evidence())]
    groups, _ = split_weak_groups(n + 1, linked, lambda a, b: None, checked=tried)
    assert groups == [list(range(n))]


def test_one_chance_link_between_two_large_groups_is_cut():
    # Two photos with 30 copies each (rings, as above), joined by one chance fit between a
    # copy of each: the link is checked across, nothing there matches, and it is cut.
    n = 30

    def ring(offset: int) -> set[tuple[int, int]]:
        return {
            (offset + min(i, (i + d) % n), offset + max(i, (i + d) % n))
            for i in range(n)
            for d in (1, 2, 3)
        }

    same = ring(0) | ring(n)
    edges = [(a, b, _evidence()) for a, b in sorted(same | {(5, n + 7)})]
    checked = same | {(5, n + 7)}
    asked: list[tuple[int, int]] = []

    def different(a: int, b: int) -> None:
        asked.append((a, b))

    groups, extra = split_weak_groups(2 * n, edges, different, checked=checked)
    assert groups == [list(range(n)), list(range(n, 2 * n))] and extra == []
    # The link's two ends and two neighbours of each on its own side, paired across.
    assert len(asked) == 8 and all(a < n <= b for a, b in asked)
    # Had the pairs across matched too (one photo after all), the group stays whole.
    whole, found = split_weak_groups(2 * n, edges, lambda a, b: _evidence(), checked=checked)
    assert whole == [list(range(2 * n))] and len(found) == 8
    # Groups of up to MAX_CHECKED_GROUP are left to the member test: no bridge check there.
    small = [(a, b, _evidence()) for a, b in combinations(range(4), 2)]
    small += [(a + 4, b + 4, _evidence()) for a, b in combinations(range(4), 2)]
    groups, _ = split_weak_groups(8, [*small, (0, 4, _evidence())], lambda a, b: None)
    assert groups == [[0, 1, 2, 3], [4, 5, 6, 7]]
