"""Duplicate audit: copies under each transform are grouped, distinct photos are not."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageEnhance

from data_index.audit import (
    MatchSettings,
    find_cross_duplicates,
    find_duplicate_groups,
    render_group_strip,
)


def textured_image(seed: int, size: tuple[int, int] = (256, 224)) -> Image.Image:
    """Smooth colour blobs plus strokes and spots (so keypoints exist) plus fine noise."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width, 3), np.float32) + rng.uniform(90, 190, 3)
    for _ in range(10):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        sigma = rng.uniform(10, 45)
        weight = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
        image += weight[..., None] * rng.uniform(-80, 80, 3)
    canvas = np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))
    for _ in range(18):
        p1 = tuple(int(v) for v in rng.integers(0, (width, height)))
        p2 = tuple(int(v) for v in rng.integers(0, (width, height)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.line(canvas, p1, p2, colour, int(rng.integers(1, 4)))
    for _ in range(30):
        centre = tuple(int(v) for v in rng.integers(0, (width, height)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.circle(canvas, centre, int(rng.integers(2, 7)), colour, -1)
    noise = cv2.GaussianBlur(rng.normal(0, 10, (height, width, 3)).astype(np.float32), (0, 0), 1)
    return Image.fromarray(np.clip(canvas + noise, 0, 255).astype(np.uint8))


def _crop(image: Image.Image, area: float, fx: float, fy: float, aspect: float = 1.0):
    """Crop ``area`` of the image with the box placed at (fx, fy) of the free room."""
    w, h = image.size
    cw, ch = round(w * np.sqrt(area * aspect)), round(h * np.sqrt(area / aspect))
    x, y = round((w - cw) * fx), round((h - ch) * fy)
    return image.crop((x, y, x + cw, y + ch))


def _colour(image: Image.Image) -> Image.Image:
    image = ImageEnhance.Brightness(image).enhance(1.15)
    image = ImageEnhance.Contrast(image).enhance(0.85)
    return ImageEnhance.Color(image).enhance(1.2)


T = Image.Transpose
TRANSFORMS = {
    "hflip": lambda im: im.transpose(T.FLIP_LEFT_RIGHT),
    "vflip": lambda im: im.transpose(T.FLIP_TOP_BOTTOM),
    "rot90": lambda im: im.transpose(T.ROTATE_90),
    "rot180": lambda im: im.transpose(T.ROTATE_180),
    "rot270": lambda im: im.transpose(T.ROTATE_270),
    "crop60-corner": lambda im: _crop(im, 0.6, 0.0, 1.0),
    "crop70-wide": lambda im: _crop(im, 0.7, 0.3, 0.6, aspect=1.25),
    "zoom62": lambda im: _crop(im, 0.62, 0.7, 0.2).resize(im.size, Image.Resampling.BICUBIC),
    "resize-half": lambda im: im.resize((im.width // 2, im.height // 2)),
    "resize-up": lambda im: im.resize((im.width * 3 // 2, im.height * 3 // 2)),
    "colour": _colour,
    "hflip+rot90+zoom+colour": lambda im: _colour(
        _crop(im.transpose(T.FLIP_LEFT_RIGHT).transpose(T.ROTATE_90), 0.65, 0.5, 0.5).resize(
            (300, 340)
        )
    ),
}
JPEG_QUALITY = {"colour": 40, "resize-half": 60}  # the rest are saved at 90


@pytest.fixture(scope="module")
def transformed_library(tmp_path_factory) -> tuple[list[str], list[str], list[int]]:
    """One original per transform with its copy, plus distractors: paths, transform, source."""
    root = tmp_path_factory.mktemp("audit-lib")
    paths, names, sources = [], [], []
    for seed, (name, transform) in enumerate(TRANSFORMS.items()):
        original = textured_image(seed)
        for kind, image in (("original", original), (name, transform(original))):
            path = root / f"{seed:02d}-{kind}.jpg"
            image.save(path, quality=JPEG_QUALITY.get(kind, 90))
            paths.append(str(path))
            names.append(kind)
            sources.append(seed)
    for seed in range(100, 106):  # distinct photos: must stay alone
        path = root / f"distinct-{seed}.jpg"
        textured_image(seed).save(path, quality=90)
        paths.append(str(path))
        names.append("distinct")
        sources.append(seed)
    return paths, names, sources


@pytest.fixture(scope="module")
def transformed_report(transformed_library):
    paths, _, _ = transformed_library
    return find_duplicate_groups(paths)


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_each_transform_is_grouped_with_its_original(name, transformed_library, transformed_report):
    _, names, _ = transformed_library
    copy_row = names.index(name)
    assert transformed_report.same_photo(copy_row) == [copy_row - 1, copy_row]


def test_distinct_images_are_never_grouped(transformed_library, transformed_report):
    _, _, sources = transformed_library
    for group in transformed_report.groups:
        assert len({sources[r] for r in group}) == 1
    assert len(transformed_report.groups) == len(TRANSFORMS)


def test_group_ids_cover_every_image_and_match_groups(transformed_report):
    report = transformed_report
    assert report.group_ids.shape == (len(report.paths),)
    for g, members in enumerate(report.groups):
        assert sorted(np.flatnonzero(report.group_ids == g).tolist()) == members
    grouped = {r for members in report.groups for r in members}
    singles = [report.group_ids[r] for r in range(len(report.paths)) if r not in grouped]
    assert len(set(singles)) == len(singles)
    assert min(singles) >= len(report.groups)
    summary = report.summary()
    assert summary["n_groups"] == len(report.groups)
    assert summary["n_images_in_groups"] == 2 * len(report.groups)
    assert summary["n_distinct_photos"] == len(report.paths) - len(report.groups)
    assert len(report.to_records()) == summary["n_images_in_groups"]
    assert {p["a"] for p in report.pair_records()} <= grouped


def _save(image: Image.Image, path: Path, **kwargs) -> str:
    image.save(path, **kwargs)
    return str(path)


def test_label_conflicts_name_the_group_and_its_labels(tmp_path):
    a, b = textured_image(1), textured_image(2)
    paths = [
        _save(a, tmp_path / "a.jpg"),
        _save(a.transpose(T.ROTATE_90), tmp_path / "a-rot.jpg"),
        _save(b, tmp_path / "b.jpg"),
        _save(b.transpose(T.FLIP_LEFT_RIGHT), tmp_path / "b-flip.jpg"),
        _save(textured_image(3), tmp_path / "c.jpg"),
    ]
    labels = ["impetigo", "herpes", "nevus", "nevus", "impetigo"]
    seen: list[float] = []
    report = find_duplicate_groups(paths, labels, progress=lambda f, _msg: seen.append(f))
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert report.groups == [[0, 1], [2, 3]]
    assert len(report.conflicts) == 1
    conflict = report.conflicts[0]
    assert (conflict.group, conflict.members, conflict.labels) == (0, [0, 1], labels[:2])
    assert [r["label_conflict"] for r in report.to_records()] == [True, True, False, False]


def test_cross_library_finds_only_the_copied_query(tmp_path):
    index = [_save(textured_image(s), tmp_path / f"index-{s}.jpg") for s in (10, 11, 12)]
    copy = _crop(textured_image(11).transpose(T.ROTATE_270), 0.7, 0.2, 0.8)
    query = [
        _save(textured_image(13), tmp_path / "query-0.jpg"),
        _save(copy, tmp_path / "query-1.jpg", quality=60),
    ]
    report = find_cross_duplicates(
        index, query, index_labels=["x", "y", "z"], query_labels=["x", "w"]
    )
    assert [(m.query_row, m.index_row) for m in report] == [(1, 1)]
    assert tuple(report.matches[0])[:2] == (1, 1)  # unpacks as (query_row, index_row, evidence)
    evidence = report.matches[0][2]
    assert evidence.inliers >= 12 and evidence.correlation > 0.9
    assert [(c.query_row, c.index_row) for c in report.conflicts] == [(1, 1)]


def test_unreadable_files_are_reported_and_the_rest_still_grouped(tmp_path):
    original = textured_image(4)
    good = [
        _save(original, tmp_path / "a.jpg"),
        _save(original.transpose(T.FLIP_TOP_BOTTOM), tmp_path / "b.jpg"),
    ]
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(Path(good[0]).read_bytes()[:200])
    paths = [str(text), good[0], str(tmp_path / "missing.jpg"), good[1], str(truncated)]
    report = find_duplicate_groups(paths)
    assert [row for row, _ in report.unreadable] == [0, 2, 4]
    assert all(isinstance(reason, str) and reason for _, reason in report.unreadable)
    assert report.groups == [[1, 3]]
    assert len(set(report.group_ids.tolist())) == 4


def test_empty_and_all_unreadable_libraries_give_empty_reports(tmp_path):
    assert find_duplicate_groups([]).summary()["n_images"] == 0
    report = find_duplicate_groups([str(tmp_path / "gone.jpg")], ["nevus"])
    assert (report.groups, report.group_ids.tolist(), len(report.unreadable)) == ([], [0], 1)
    assert len(find_cross_duplicates([], [str(tmp_path / "gone.jpg")])) == 0


def test_identical_flat_images_are_grouped_without_keypoints(tmp_path):
    flat = Image.new("RGB", (120, 90), (180, 140, 120))
    paths = [_save(flat, tmp_path / "a.png"), _save(flat, tmp_path / "b.png")]
    paths.append(_save(Image.new("RGB", (120, 90), (60, 40, 30)), tmp_path / "c.png"))
    report = find_duplicate_groups(paths)
    assert report.groups == [[0, 1]]
    assert report.pairs[0].evidence.method == "identical-pixels"
    cross = find_cross_duplicates(paths[1:], paths[:1])
    assert [(m.query_row, m.index_row) for m in cross] == [(0, 0)]


def test_vectors_reach_a_crop_the_windows_miss(tmp_path):
    original = textured_image(5, size=(320, 320))
    paths = [
        _save(original, tmp_path / "a.jpg"),
        _save(_crop(original, 0.3, 0.9, 0.1), tmp_path / "tight.jpg"),
        *[_save(textured_image(s, size=(320, 320)), tmp_path / f"o{s}.jpg") for s in range(10, 16)],
    ]
    settings = MatchSettings(
        candidates_per_image=1,
        corner_candidates_per_image=0,
        colour_candidates_per_image=0,
        zoom_candidates_per_image=0,
        vote_candidates_per_image=0,
        min_candidate_score=1.01,  # no window proposes anything: only the vectors can
    )
    assert find_duplicate_groups(paths, settings=settings).groups == []
    # Caller-given vectors (as a backbone would give) that make rows 0 and 1 neighbours.
    vectors = np.eye(len(paths), dtype=np.float32)
    vectors[1] = vectors[0] + 0.1 * vectors[1]
    assert find_duplicate_groups(paths, vectors=vectors, settings=settings).groups == [[0, 1]]


def test_colour_neighbours_reach_a_copy_turned_by_a_free_angle(tmp_path):
    original = textured_image(9)
    turned = original.rotate(25, resample=Image.Resampling.BICUBIC, fillcolor=(255, 255, 255))
    paths = [
        _save(original, tmp_path / "a.jpg"),
        *[_save(textured_image(s), tmp_path / f"o{s}.jpg") for s in range(20, 26)],
        _save(turned, tmp_path / "turned.jpg"),
    ]
    colour_only = MatchSettings(
        candidates_per_image=0,
        corner_candidates_per_image=0,
        zoom_candidates_per_image=0,
        vote_candidates_per_image=0,
    )
    assert find_duplicate_groups(paths, settings=colour_only).groups == [[0, 7]]
    nothing = MatchSettings(
        candidates_per_image=0,
        corner_candidates_per_image=0,
        colour_candidates_per_image=0,
        zoom_candidates_per_image=0,
        vote_candidates_per_image=0,
    )
    assert find_duplicate_groups(paths, settings=nothing).groups == []


def test_bad_arguments_get_a_sentence(tmp_path):
    path = _save(textured_image(6), tmp_path / "a.jpg")
    with pytest.raises(TypeError, match="list of image paths"):
        find_duplicate_groups(path)
    with pytest.raises(ValueError, match="one label per image"):
        find_duplicate_groups([path, path], ["only-one"])
    with pytest.raises(ValueError, match="one row per image"):
        find_duplicate_groups([path, path], vectors=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="both index_vectors and query_vectors"):
        find_cross_duplicates([path], [path], index_vectors=np.zeros((1, 4)))


def test_group_strip_is_one_row_of_thumbnails(tmp_path):
    paths = [
        _save(textured_image(7, size=(200, 100)), tmp_path / "wide.jpg"),
        _save(textured_image(8, size=(100, 100)), tmp_path / "square.jpg"),
        str(tmp_path / "missing.jpg"),
    ]
    strip = render_group_strip(
        paths, captions=["nevus | wide", "nevus | square", "gone"], height=100, gap=4
    )
    assert strip.size == (200 + 100 + 100 + 2 * 4, 100 + 30)
    assert strip.getpixel((50, 50)) == Image.open(paths[0]).resize((200, 100)).getpixel((50, 50))
    with pytest.raises(ValueError, match="non-empty list"):
        render_group_strip([])


@pytest.mark.shared
def test_known_copies_in_infectious_8_are_found(shared_datasets):
    """The copies checked by eye in the real set are regrouped, and nothing else is (those
    the audit of the set is known to miss are left out of the test)."""
    known_csv = Path(__file__).resolve().parents[1] / "benchmarks/data/audit_known_copies.csv"
    with open(known_csv, newline="") as f:
        rows = [
            r
            for r in csv.DictReader(f)
            if r["group"].startswith("infectious-8") and r["found_by_audit_of_the_set"] == "yes"
        ]
    known = [str(shared_datasets / r["path"]) for r in rows]
    with open(shared_datasets / "infectious-8" / "manifest.csv", newline="") as f:
        others = [
            str(shared_datasets / "infectious-8" / r["path"])
            for r in csv.DictReader(f)
            if f"infectious-8/{r['path']}" not in {k["path"] for k in rows}
        ][::12]
    paths = known + others
    report = find_duplicate_groups(paths)
    expected: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        expected.setdefault(r["group"], []).append(i)
    assert sorted(report.groups) == sorted(expected.values())
