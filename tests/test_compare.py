"""Backbones side by side on one query (data_index.compare), its pictures, the command line, and
the leave-one-out disagreement explorer (benchmarks.disagreements), on real indexes."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from library_factory import PATTERNS, make_folder_library, pattern_image
from PIL import Image

from benchmarks.disagreements import QueryTop1, copy_groups, find_disagreements, per_query_top1
from benchmarks.retrieval import leave_one_out
from data_index import CaseIndex, CaseLibrary
from data_index.__main__ import main
from data_index.audit import audit_library
from data_index.compare import (
    CompareQuery,
    assemble,
    compare,
    compare_row,
    parse_backbones,
    resolve_case,
    weighted_vote,
)
from data_index.compare_render import SLIDE, comparison_html, contact_sheet, row_html, row_summary
from data_index.trusted_search import vote_calibration
from models import load_backbone

PER_CLASS = 5
KEYS = ("color-texture", "efficientnet-lite0")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A generated library indexed under two real backbones (cache in tmp)."""
    base = tmp_path_factory.mktemp("compare")
    library = CaseLibrary.load(make_folder_library(base / "lib", per_class=PER_CLASS))
    indexed = []
    for key in KEYS:
        backbone = load_backbone(key)
        index = CaseIndex.build(library, backbone, save=False, cache_dir=base / "emb")
        indexed.append((index, backbone))
    return library, indexed


@pytest.mark.parametrize(
    ("labels", "scores", "expected"),
    [
        (["a", "b", "b"], [0.9, 0.5, 0.5], ("b", 1.0 / 1.9)),
        (["a", "b"], [0.9, 0.1], ("a", 0.9)),
        (["a", "b"], [0.5, 0.5], ("a", 0.5)),  # a tie goes to the better-ranked label
        (["a", "b"], [-0.2, 0.0], ("a", 0.5)),  # no positive similarity: the first, half share
        ([], [], (None, 0.0)),
    ],
)
def test_weighted_vote(labels, scores, expected):
    label, share = weighted_vote(labels, scores)
    assert label == expected[0]
    assert share == pytest.approx(expected[1])


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["color-texture"], "2 to 4 different backbones"),
        (["color-texture", "color-texture"], "2 to 4 different backbones"),
        (["color-texture", "efficientnet-lite0"] * 2 + ["xception-ham10000"] * 0, None),
        (["a", "b", "c", "d", "e"], "Unknown backbone"),
    ],
)
def test_parse_backbones(keys, message):
    if message is None:
        assert parse_backbones(keys) == ["color-texture", "efficientnet-lite0"]
        return
    with pytest.raises(ValueError, match=message):
        parse_backbones(keys)


def test_case_query_rows_overlap_and_frames(built):
    library, indexed = built
    relpath = "green-dots/green-dots-0.jpg"
    assert resolve_case(library, relpath) == relpath
    with pytest.raises(ValueError, match="No case 'nope'"):
        resolve_case(library, "nope")
    query = CompareQuery(kind="case", relpath=relpath, label="green-dots")
    k = PER_CLASS + 2  # more than the class's other cases: some hits must be of another class
    result = compare(indexed, query, k=k)
    assert [row.key for row in result.rows] == list(KEYS)
    for row in result.rows:
        assert len(row.hits) == k
        assert relpath not in [h.relpath for h in row.hits]  # the query's own case is left out
        for hit in row.hits:
            assert hit.verdict == ("match" if hit.label == "green-dots" else "mismatch")
        assert row.hit_at_k is True and row.first_match == 1
        assert row.vote == "green-dots"  # both put the four other green cases first
        assert "mismatch" in {h.verdict for h in row.hits}
    a, b = result.rows
    shared = set(a.case_ids) & set(b.case_ids)
    (pair,) = result.pairs
    assert set(pair.shared) == shared and len(pair.shared) >= PER_CLASS - 1
    assert pair.votes_agree and result.votes_agree
    for row in result.rows:  # shared marks agree with the other row's cases
        other = b if row is a else a
        assert all(h.shared == (h.case_id in other.case_ids) for h in row.hits)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["backbones"][0]["hits"][0].keys() == {"rank", "label", "score", "case_id"}
    assert data["backbones"][0]["hit_at_k"] is True
    assert data["pairs"][0]["shared"] == len(shared)


def test_rows_carry_the_prediction_set_of_their_calibration(built):
    library, indexed = built
    query = CompareQuery(kind="case", relpath="blue-checks/blue-checks-2.jpg", label="blue-checks")
    k = 5
    calibrations = [vote_calibration(index, k=k, metric="cosine") for index, _ in indexed]
    result = compare(indexed, query, k=k, calibrations=calibrations)
    for row in result.rows:
        assert row.vote in row.prediction_set and set(row.prediction_set) <= set(library.labels)
        assert row.coverage == pytest.approx(0.9)
        entry = row.to_dict()["prediction_set"]
        assert entry == {"labels": list(row.prediction_set), "coverage": row.coverage}
        summary = row_summary(row, k=k)
        assert f"likely diagnoses (90% coverage): {', '.join(row.prediction_set)}" in summary
        assert "likely" not in row_summary(row, k=k, hide_label=True)  # teaching mode
    plain = compare(indexed, query, k=k)  # no calibration: no set, and none claimed
    assert all(r.prediction_set == () and "prediction_set" not in r.to_dict() for r in plain.rows)


def test_photo_query_without_diagnosis_is_not_scored(built):
    _, indexed = built
    photo = pattern_image("red-stripes", 99)
    row = compare_row(*indexed[0], CompareQuery(kind="photo", image=photo), k=3)
    assert {h.verdict for h in row.hits} == {"unknown"}
    assert row.hit_at_k is None and "hit_at_k" not in row.to_dict()
    assert row.hits[0].label == "red-stripes"


def test_text_query_needs_a_text_tower(built):
    _, indexed = built
    with pytest.raises(ValueError, match="embeds images only"):
        compare_row(*indexed[0], CompareQuery(kind="text", text="red stripes"), k=3)


def test_contact_sheet_and_html_are_self_contained(built):
    library, indexed = built
    relpath = "blue-checks/blue-checks-1.jpg"
    query = CompareQuery(kind="case", relpath=relpath, label="blue-checks")
    result = compare(indexed, query, k=10)
    picture = str(library.root / relpath)
    sheet = contact_sheet(result, query_image=picture)
    assert sheet.size == SLIDE and SLIDE[0] * 9 == SLIDE[1] * 16
    # Frames are drawn: green and vermillion pixels are on the slide.
    pixels = np.asarray(sheet).reshape(-1, 3)
    assert (np.abs(pixels - (0, 158, 115)).sum(axis=1) < 10).sum() > 1000
    page = comparison_html(result, query_image=picture, library_name=library.name)
    images = re.findall(r'<img[^>]* src="([^"]+)"', page)
    assert len(images) == 1 + 2 * 10
    assert all(src.startswith("data:image/jpeg;base64,") for src in images)
    assert str(library.root) not in page  # no server paths in a page meant to be shared
    assert "cos " not in page
    row = row_html(result.rows[0], k=10)
    assert row.count('data-verdict="match"') + row.count('data-verdict="mismatch"') == 10


def test_assemble_keeps_rows_in_order_when_one_is_missing(built):
    _, indexed = built
    query = CompareQuery(kind="case", relpath="brown-plain/brown-plain-2.jpg", label="brown-plain")
    row = compare_row(*indexed[1], query, k=4)
    alone = assemble(query, [row], k=4)
    assert alone.pairs == () and not any(h.shared for h in alone.rows[0].hits)


def test_cli_compare_json_and_sheet(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    lib = make_folder_library(tmp_path / "lib", per_class=4)
    sheet = tmp_path / "out" / "sheet.png"
    code = main(
        [
            "compare",
            "--library",
            str(lib),
            "--backbones",
            "color-texture,efficientnet-lite0",
            "--case",
            "red-stripes/red-stripes-0.jpg",
            "-k",
            "5",
            "--json",
            "--sheet",
            str(sheet),
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    data = json.loads(out.out)
    assert [b["key"] for b in data["backbones"]] == list(KEYS)
    for entry in data["backbones"]:
        assert len(entry["hits"]) == 5 and entry["hit_at_k"] is True and entry["ms"] >= 0
        assert [h["rank"] for h in entry["hits"]] == [1, 2, 3, 4, 5]
        likely = entry["prediction_set"]
        assert likely["coverage"] == 0.9 and entry["vote"] in likely["labels"]
    assert data["pairs"][0]["a"] == "color-texture" and data["pairs"][0]["of"] == 5
    with Image.open(sheet) as image:
        assert image.size == SLIDE
    # The indexes were built into the cache, so a second run only loads them.
    assert len(list((tmp_path / "cache" / "indexes").iterdir())) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backbones", "color-texture", "--case", "x"], "2 to 4 different backbones"),
        (["--backbones", "color-texture,efficientnet-lite0", "--case", "x"], "No case 'x'"),
        (["--backbones", "color-texture,efficientnet-lite0", "--image", "nope.jpg"], "not exist"),
        (
            ["--backbones", "color-texture,efficientnet-lite0", "--case", "x", "--sheet", "a.jpg"],
            "PNG",
        ),
    ],
)
def test_cli_compare_bad_input(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    lib = make_folder_library(tmp_path / "lib", per_class=2)
    assert main(["compare", "--library", str(lib), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_per_query_top1_matches_leave_one_out(built):
    library, indexed = built
    report = audit_library(library)
    tops = {}
    for index, backbone in indexed:
        groups = copy_groups(library, index, report)
        tops[backbone.key] = per_query_top1(index, group_ids=groups)
        run = leave_one_out(
            embeddings=index.vectors(),
            labels=index.cases["label"].astype(str).to_numpy(),
            k=1,
            case_ids=index.cases["case_id"].astype(str).to_numpy(),
            group_ids=groups,
        )
        right = int((run.retrieved_labels[:, 0] == run.query_labels).sum())
        assert sum(t.correct for t in tops[backbone.key].values()) == right
        assert len(tops[backbone.key]) == len(library)
    found = find_disagreements(KEYS[0], tops[KEYS[0]], KEYS[1], tops[KEYS[1]])
    quadrants = len(found.only_a) + len(found.only_b) + found.both_right + found.both_wrong
    assert quadrants == found.n_queries == len(library) == len(PATTERNS) * PER_CLASS
    for ra, rb in found.only_a:
        assert ra.correct and not rb.correct and ra.relpath == rb.relpath
    for ra, rb in found.only_b:
        assert rb.correct and not ra.correct


@pytest.mark.shared
@pytest.mark.slow
def test_real_disagreements_on_infectious_8(shared_datasets):
    """EfficientNet-Lite0 (ImageNet) and the HAM10000 Xception each win queries the other
    loses; the embedding cache makes this quick after the first benchmark run."""
    library = CaseLibrary.load(shared_datasets / "infectious-8")
    report = audit_library(library)
    tops = {}
    for key in ("efficientnet-lite0", "xception-ham10000"):
        index = CaseIndex.build(library, load_backbone(key), save=False)
        tops[key] = per_query_top1(index, group_ids=copy_groups(library, index, report))
    found = find_disagreements(
        "efficientnet-lite0",
        tops["efficientnet-lite0"],
        "xception-ham10000",
        tops["xception-ham10000"],
    )
    assert found.n_queries == len(library)
    assert len(found.only_a) > 0 and len(found.only_b) > 0
    assert {ra.label for ra, _ in found.only_a} <= set(library.labels)


def test_disagreements_alternate_classes_most_convincing_mistake_first():
    def top(relpath, label, got, score):
        return QueryTop1(relpath, relpath, label, "x", got, score)

    top_a = {f"{c}{i}": top(f"{c}{i}", c, c, 0.9) for c in "pq" for i in range(3)}
    top_b = {f"{c}{i}": top(f"{c}{i}", c, "other", 0.5 + i / 10) for c in "pq" for i in range(3)}
    found = find_disagreements("a", top_a, "b", top_b)
    assert [ra.relpath for ra, _ in found.only_a] == ["p2", "q2", "p1", "q1", "p0", "q0"]
    assert found.only_b == () and found.both_right == found.both_wrong == 0
