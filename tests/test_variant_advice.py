"""The Search tab's retrieval variants: off by default, "recommended" only where measured to help
on this library, and a search with one on says so and ranks as the variant does."""

from __future__ import annotations

import json

import pytest
from library_factory import make_folder_library

import demo.handlers_search as hs
from data_index import CaseLibrary
from demo import variant_advice as va
from demo.handlers_bench import RESULTS_DIR
from demo.state import AppState


def record(library: CaseLibrary, variant: str, k: int, gain, low, high, **extra) -> dict:
    return {
        "date": "2026-12-01T13:00:00+00:00",
        "library": library.name,
        "library_fingerprint": library.fingerprint[:16],
        "protocol": "variant",
        "metric": "hit_rate",
        "variant": variant,
        "base": "color-texture",
        "k": k,
        "gain": gain,
        "gain_ci_low": low,
        "gain_ci_high": high,
        "search_ms_10k": 1.0,
        "plain_search_ms_10k": 3.0,
        **extra,
    }


@pytest.fixture
def library(tmp_path):
    return CaseLibrary.load(make_folder_library(tmp_path / "lib", per_class=4))


def write(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def advice_of(library, folder):
    found = va.variant_advice(
        library, "color-texture", records=va.variant_records(folders=[folder])
    )
    return {a.name: a for a in found}


def test_recommended_only_where_the_interval_is_above_zero_on_this_library(library, tmp_path):
    folder = write(
        tmp_path / "results",
        [
            record(library, "adapter-lda", 1, 0.094, 0.051, 0.138),
            record(library, "adapter-lda", 5, 0.01, -0.02, 0.04),
            record(library, "dba", 1, 0.036, 0.016, 0.058),
            record(library, "dba", 5, -0.021, -0.037, -0.006),  # worse further down
            record(library, "aqe", 1, 0.009, -0.003, 0.021),
        ],
    )
    found = advice_of(library, folder)
    assert found["adapter-lda"].recommended
    assert "+9.4 points (95 % interval +5.1 to +13.8)" in found["adapter-lda"].status
    assert (
        "-2.0 ms" in found["adapter-lda"].cost and "1.0 ms per search" in found["adapter-lda"].cost
    )
    assert not found["dba"].recommended and "not recommended" in found["dba"].status
    assert not found["aqe"].recommended
    assert "no significant gain (+0.9 [-0.3, +2.1]" in found["aqe"].status
    assert found["tta-flip"].status == "Not measured on this library."
    choices = va.variant_choices(list(found.values()))
    assert choices[0] == ("Plain search (default)", va.PLAIN)
    assert ("Adapt to this library's labels (LDA) · recommended", "adapter-lda") in choices


def test_another_librarys_measurement_does_not_count(library, tmp_path):
    other = record(library, "adapter-lda", 1, 0.094, 0.051, 0.138)
    other |= {"library": "elsewhere", "library_fingerprint": "0123456789abcdef"}
    found = advice_of(library, write(tmp_path / "results", [other]))
    assert not found["adapter-lda"].recommended
    assert found["adapter-lda"].status == "Not measured on this library."


def test_the_committed_records_recommend_the_adapter_only_where_it_helped(shared_datasets):
    records = va.variant_records(folders=[RESULTS_DIR])
    infectious = CaseLibrary.load(shared_datasets / "infectious-8")
    found = {
        a.name: a for a in va.variant_advice(infectious, "efficientnet-lite0", records=records)
    }
    assert found["adapter-lda"].recommended and not found["aqe"].recommended
    mpox = CaseLibrary.load(shared_datasets / "mpox-msld")
    found = {a.name: a for a in va.variant_advice(mpox, "efficientnet-lite0", records=records)}
    assert not any(a.recommended for a in found.values())
    assert "worse than the plain search" in found["adapter-lda"].status


def _case_search(tmp_path, monkeypatch) -> tuple[AppState, str, dict]:
    """An app state, one library case and the keywords of a colour-texture search for it."""
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    root = make_folder_library(tmp_path / "lib", per_class=5)
    state = AppState()
    case = state.library(str(root)).cases["relpath"].iloc[0]
    ask = {"library_path": str(root), "backbone_key": "color-texture", "mode": "case",
           "case_relpath": case, "k": 4}  # fmt: skip
    return state, case, ask


def test_a_search_with_a_variant_says_so_and_keeps_the_plain_search_by_default(
    tmp_path, monkeypatch
):
    state, case, ask = _case_search(tmp_path, monkeypatch)
    plain = hs.run_search(state, **ask)
    assert plain.report["variant"] is None and "retrieval variant" not in plain.summary
    used = hs.run_search(state, **ask, variant="dba")
    assert used.report["variant"] == "dba"
    assert "Ranked with a retrieval variant: Blend each library photo" in used.summary
    assert any("saved beside its index" in n for n in used.notes)
    again = hs.run_search(state, **ask, variant="dba")
    assert not any("saved beside its index" in n for n in again.notes)
    assert [h["case_id"] for h in again.hits] == [h["case_id"] for h in used.hits]
    assert case not in {h["relpath"] for h in used.hits}
    fitted = list((tmp_path / "cache" / "indexes").glob("*--variants/dba/*/index.usearch"))
    assert len(fitted) == 1
    with pytest.raises(ValueError, match="cosine similarity"):
        hs.run_search(state, **ask, variant="dba", metric="euclidean")
    with pytest.raises(ValueError, match="adapter-lda, tta-flip, aqe, dba"):
        hs.run_search(state, **ask, variant="rerank-everything")


def test_a_k_reciprocal_search_says_its_scores_are_not_cosines(tmp_path, monkeypatch):
    state, case, ask = _case_search(tmp_path, monkeypatch)
    plain = hs.run_search(state, **ask)
    assert "scores are cosine similarity" in plain.summary
    used = hs.run_search(state, **ask, variant="k-reciprocal")
    assert used.report["variant"] == "k-reciprocal"
    assert "Ranked with a retrieval variant: Re-rank by shared neighbours" in used.summary
    assert "scores are one minus the re-ranking distance" in used.summary
    assert "cosine similarity (1 = same" not in used.summary
    assert case not in {h["relpath"] for h in used.hits}
    _, details, _ = hs.result_details(used.hits, 0)
    assert "re-ranking distance" in details and "same direction" not in details
    _, plain_details, _ = hs.result_details(plain.hits, 0)
    assert "similarity" in plain_details and "same direction" in plain_details
    # nothing is fitted or stored for it: it works on the plain index
    assert not list((tmp_path / "cache" / "indexes").glob("*--variants/k-reciprocal"))
