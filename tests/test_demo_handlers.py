"""Handlers of the Gradio app, without a browser: real files, real color-texture backbone, real
usearch indexes. Each tab's happy path plus the bad inputs a visitor can produce."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from gradio.events import SelectData
from gradio.state_holder import SessionState
from PIL import Image, ImageDraw

from benchmarks.records import read_records
from demo import build_demo
from demo import handlers_bench as hb
from demo import handlers_library as hl
from demo import handlers_search as hs
from demo.config import AppConfig, library_choices, local_library, parse_config
from demo.errors import guarded, user_message
from demo.events_search import SearchHandlers, read_query_photo
from demo.handlers_models import COLUMNS, registry_table
from demo.layout import app_catalog
from demo.render import MATCH_RGB, MISMATCH_RGB, UNKNOWN_RGB
from demo.state import AppState, Cancelled
from models import WeightsUnavailable, availability, get_spec, list_specs

BACKBONE = "color-texture"
CLASSES = {"redspot": (200, 40, 40), "greenring": (40, 170, 60), "bluestripe": (40, 60, 200)}
PER_CLASS = 5


def pattern(colour: tuple[int, int, int], *, seed: int, size: int = 64) -> Image.Image:
    """A coloured pattern: class colour plus seeded shapes, so classes differ and cases vary."""
    rng = np.random.default_rng(seed)
    base = np.clip(np.array(colour) + rng.normal(0, 18, (size, size, 3)), 0, 255)
    image = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = rng.integers(0, size - 12, 2)
        shade = tuple(int(c * 0.5) for c in colour)
        draw.ellipse((int(x), int(y), int(x) + 12, int(y) + 12), fill=shade)
    return image


def write_library(root: Path, *, with_manifest: bool = True) -> Path:
    rows = []
    for c, (label, colour) in enumerate(CLASSES.items()):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(PER_CLASS):
            rel = f"{label}/{label}-{i}.png"
            pattern(colour, seed=100 * c + i).save(root / rel)
            rows.append({"path": rel, "label": label, "split": "test" if i == 0 else "train"})
    if with_manifest:
        pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A fixture library, a private cache root and one shared AppState for the module."""
    base = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DERMSEARCH_CACHE", str(base / "cache"))
        mp.setenv("DERMSEARCH_SHARED", str(base / "no-shared"))
        mp.delenv("DERMSEARCH_LIBRARIES", raising=False)
        library = write_library(base / "lib")
        yield {"base": base, "library": str(library), "state": AppState()}


def first_case(env) -> str:
    return hs.example_cases(env["state"], env["library"])[0]["relpath"]


# --- Search tab --------------------------------------------------------------------------------
def test_case_query_frames_results_by_diagnosis(env):
    relpath = "redspot/redspot-0.png"
    out = hs.run_search(
        env["state"],
        library_path=env["library"],
        backbone_key=BACKBONE,
        mode="case",
        case_relpath=relpath,
        k=6,
    )
    assert out.query_label == "redspot"
    assert len(out.hits) == len(out.gallery) == 6
    assert relpath not in {h["relpath"] for h in out.hits}  # the query's own case is excluded
    for (tile, caption), hit in zip(out.gallery, out.hits, strict=True):
        expected = "match" if hit["label"] == "redspot" else "mismatch"
        assert hit["verdict"] == expected
        assert tile.getpixel((1, 1)) == (MATCH_RGB if expected == "match" else MISMATCH_RGB)
        assert caption.startswith(f"#{hit['rank']} {'✓' if expected == 'match' else '✗'}")
        assert hit["case_id"] in caption
    assert out.summary.startswith(f"The query is library case {relpath}; it and its copies")
    assert "Most similar cases: **4 of 6 are redspot**" in out.summary
    assert "Likely diagnoses (90% coverage on this library): redspot" in out.summary
    assert "first at rank 1; 4 of 6 cases share it" in out.summary
    assert out.report["query_in_library"] == relpath
    assert str(env["library"]) not in json.dumps(out.report)  # no server path for the browser
    # Colour patterns are easy: the four other red cases come first.
    assert [h["label"] for h in out.hits[:4]] == ["redspot"] * 4


def test_photo_query_without_diagnosis_is_grey_and_says_why(env):
    photo = Path(env["library"]) / "greenring" / "greenring-2.png"
    out = hs.run_search(
        env["state"],
        library_path=env["library"],
        backbone_key=BACKBONE,
        mode="photo",
        photo=str(photo),
        k=3,
    )
    assert out.query_label is None
    assert {h["verdict"] for h in out.hits} == {"unknown"}
    assert out.gallery[0][0].getpixel((1, 1)) == UNKNOWN_RGB
    assert "diagnosis is not given" in out.summary and "embedding the photo" in out.summary.lower()
    # The photo is a library file: said on the page, and it is not its own first result.
    assert out.summary.startswith(
        "This photo is in the library as greenring/greenring-2.png; it and its copies are left "
        "out of the results and the vote."
    )
    assert "greenring/greenring-2.png" not in {h["case_id"] for h in out.hits}
    assert out.notes == []


def test_photo_copy_is_found_and_left_out_with_its_duplicates(env, tmp_path):
    """A mirrored, shrunk, re-encoded copy is not the same file: the audit's check finds it."""
    source = Path(env["library"]) / "bluestripe" / "bluestripe-3.png"
    copy = Image.open(source).transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((48, 48))
    copy.save(tmp_path / "copy.jpg", quality=80)
    out = hs.run_search(
        env["state"],
        library_path=env["library"],
        backbone_key=BACKBONE,
        mode="photo",
        photo=str(tmp_path / "copy.jpg"),
        k=4,
    )
    assert out.report["query_in_library"] == "bluestripe/bluestripe-3.png"
    assert "bluestripe/bluestripe-3.png" not in {h["case_id"] for h in out.hits}
    assert len(out.hits) == 4


def test_photo_unlike_the_library_gets_no_close_match_and_no_suggestion(env):
    # Grey noise: nothing like the coloured patterns of the library.
    noise = np.random.default_rng(5).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    out = hs.run_search(
        env["state"],
        library_path=env["library"],
        backbone_key=BACKBONE,
        mode="photo",
        photo=Image.fromarray(noise).convert("L").convert("RGB"),
        k=5,
    )
    flag = out.report["low_similarity"]
    assert flag["flag"] and flag["nearest_similarity"] < flag["threshold"]
    assert "No close match: nothing in this library looks like this photo" in out.summary
    assert "Likely diagnoses" not in out.summary and "Most similar cases" not in out.summary
    assert "For reference only" in out.summary


def test_prediction_set_follows_the_coverage(env):
    sizes = []
    for coverage in (0.5, 0.95, "99%"):
        out = hs.run_search(
            env["state"],
            library_path=env["library"],
            backbone_key=BACKBONE,
            mode="case",
            case_relpath="greenring/greenring-1.png",
            k=5,
            coverage=coverage,
        )
        assert out.report["prediction_set"]["coverage"] == hs.parse_coverage(coverage)
        sizes.append(len(out.report["prediction_set"]["labels"]))
    assert sizes == sorted(sizes) and sizes[0] >= 1
    with pytest.raises(ValueError, match="Coverage must be from 50 % to 99 %"):
        hs.parse_coverage(0.2)


def test_photo_query_with_stated_diagnosis_scores_hit(env):
    photo = pattern(CLASSES["bluestripe"], seed=999)
    out = hs.run_search(
        env["state"],
        library_path=env["library"],
        backbone_key=BACKBONE,
        mode="photo",
        photo=photo,
        stated_label="bluestripe",
        k=5,
    )
    assert out.hits[0]["label"] == "bluestripe" and out.hits[0]["verdict"] == "match"
    assert "✓ The query's diagnosis, *bluestripe*, is among the results: first at rank 1" in (
        out.summary
    )
    out = hs.run_search(
        env["state"],
        library_path=env["library"],
        backbone_key=BACKBONE,
        mode="photo",
        photo=photo,
        stated_label="melanoma",
        k=5,
    )
    assert out.query_label is None
    assert "The diagnosis you gave, 'melanoma', is not one of this library's classes" in (
        out.summary
    )


def test_euclidean_ranks_by_increasing_raw_distance(env):
    out = hs.run_search(
        env["state"],
        library_path=env["library"],
        backbone_key=BACKBONE,
        mode="case",
        case_relpath=first_case(env),
        k=8,
        metric="euclidean",
    )
    scores = [h["score"] for h in out.hits]
    assert scores == sorted(scores) and scores[0] > 0
    assert "dist" in out.gallery[0][1] and "Euclidean" in out.summary


def test_corrupt_upload_is_refused_with_a_sentence(env, tmp_path):
    bad = tmp_path / "photo.jpg"
    good = tmp_path / "good.jpg"
    pattern((1, 2, 3), seed=1).save(good)
    bad.write_bytes(good.read_bytes()[:40])  # a truncated JPEG
    with pytest.raises(ValueError, match="not a photo we can read"):
        hs.run_search(
            env["state"],
            library_path=env["library"],
            backbone_key=BACKBONE,
            mode="photo",
            photo=str(bad),
        )


def test_text_file_upload_is_refused(env, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="not a photo we can read"):
        hs.parse_photo(str(text))
    with pytest.raises(ValueError, match="No photo yet"):
        hs.parse_photo(None)


@pytest.mark.parametrize(
    ("prompt", "message"),
    [("", "prompt is empty"), ("   \n ", "prompt is empty"), ("x" * 2000, "2,000 characters")],
)
def test_bad_prompts_get_actionable_errors(prompt, message):
    with pytest.raises(ValueError, match=message):
        hs.parse_prompt(prompt)


def test_text_search_needs_a_text_tower(env):
    enabled, hint = hs.text_box_state(BACKBONE)
    assert not enabled and "embeds images only" in hint
    # The reason, not "the prompt is empty", even with nothing typed.
    for prompt in ("", "a red spot"):
        with pytest.raises(ValueError, match="embeds images only"):
            hs.run_search(
                env["state"],
                library_path=env["library"],
                backbone_key=BACKBONE,
                mode="text",
                prompt=prompt,
            )
    with pytest.raises(ValueError, match="embeds images only"):
        hs.run_search(
            env["state"],
            library_path=env["library"],
            backbone_key=BACKBONE,
            mode="text",
            prompt="a red spot",
        )


def test_backbone_without_weights_gives_the_reason(env):
    missing = [s for s in list_specs() if availability(s).status in ("download", "gated")]
    if not missing:
        pytest.skip("every registered backbone has its weights on this machine")
    search = guarded(hs.run_search)
    with pytest.raises(gr.Error) as caught:
        search(
            env["state"],
            library_path=env["library"],
            backbone_key=missing[0].key,
            mode="case",
            case_relpath=first_case(env),
        )
    assert missing[0].key in caught.value.message
    assert isinstance(caught.value.__cause__, WeightsUnavailable)


def test_unknown_backbone_lists_valid_keys(env):
    with pytest.raises(ValueError, match="Valid keys"):
        hs.run_search(
            env["state"],
            library_path=env["library"],
            backbone_key="no-such-net",
            mode="case",
            case_relpath=first_case(env),
        )


def test_empty_missing_and_unset_libraries(env, tmp_path):
    empty = tmp_path / "empty"
    (empty / "someclass").mkdir(parents=True)
    (empty / "someclass" / "readme.txt").write_text("no images here")
    common = {"backbone_key": BACKBONE, "mode": "case", "case_relpath": "x.png"}
    with pytest.raises(ValueError, match="no usable images"):
        hs.run_search(env["state"], library_path=str(empty), **common)
    with pytest.raises(ValueError, match="does not exist"):
        hs.run_search(env["state"], library_path=str(tmp_path / "nowhere"), **common)
    with pytest.raises(ValueError, match="No case library is selected"):
        hs.run_search(env["state"], library_path="", **common)


@pytest.mark.parametrize(
    ("k", "ok"), [(1, True), (10.0, True), (50, True), (0, False), (51, False), ("ten", False)]
)
def test_k_parsing(k, ok):
    if ok:
        assert hs.parse_k(k) == int(k)
    else:
        with pytest.raises(ValueError, match="k must be"):
            hs.parse_k(k)


def test_metric_and_mode_are_checked(env):
    with pytest.raises(ValueError, match="Similarity must be one of"):
        hs.parse_metric("manhattan")
    with pytest.raises(ValueError, match="Query mode"):
        hs.run_search(
            env["state"], library_path=env["library"], backbone_key=BACKBONE, mode="audio"
        )
    with pytest.raises(ValueError, match="No library case is picked"):
        hs.run_search(env["state"], library_path=env["library"], backbone_key=BACKBONE, mode="case")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redspot", "redspot"),
        ("Red Spot", "redspot"),
        ("ringworm", "FU-ringworm"),
        ("red spots on arm", None),
    ],
)
def test_class_names_in_prompts(text, expected):
    assert hs.label_from_text(text, ["redspot", "FU-ringworm"]) == expected


def test_result_details_and_bad_index(env):
    out = hs.run_search(
        env["state"],
        library_path=env["library"],
        backbone_key=BACKBONE,
        mode="case",
        case_relpath=first_case(env),
        k=3,
    )
    image, markdown, relpath = hs.result_details(out.hits, 1)
    assert image.size[0] > 0 and relpath == out.hits[1]["relpath"]
    assert out.hits[1]["label"] in markdown and "split" in markdown
    with pytest.raises(ValueError, match="Run a search first"):
        hs.result_details(out.hits, 7)


def test_backbone_picker_lists_every_spec(env):
    runnable, not_here = hs.backbone_choices()
    keys = {key for _, key in runnable}
    assert BACKBONE in keys
    for spec in list_specs():
        assert (spec.key in keys) == availability(spec).ready
        if spec.key not in keys:
            assert f"`{spec.key}`" in not_here


def test_guarded_hides_unexpected_errors():
    def boom():
        raise KeyError("internal detail")

    with pytest.raises(gr.Error, match="Something went wrong") as caught:
        guarded(boom)()
    assert "internal detail" not in caught.value.message


def handler_log(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "demo.events_search"]


def test_unexpected_error_is_a_sentence_for_the_user_and_a_traceback_in_the_log(
    env, monkeypatch, caplog
):
    def broken(**_):
        raise RuntimeError("internal detail")

    monkeypatch.setattr(hs, "format_summary", broken)  # deep inside every search
    handlers = SearchHandlers(env["state"])
    settings = {"library_path": env["library"], "backbone_key": BACKBONE, "metric": "cosine"}
    sentence = user_message(RuntimeError("internal detail"))
    assert sentence.startswith("Something went wrong (RuntimeError).")
    with caplog.at_level(logging.ERROR), pytest.raises(gr.Error) as caught:
        guarded(handlers.search)(**settings, k=3, mode="case", case_relpath=first_case(env))
    assert caught.value.message == sentence
    [record] = handler_log(caplog)
    assert record.levelno == logging.ERROR and "SearchHandlers.search" in record.getMessage()
    assert record.exc_info[0] is RuntimeError and "internal detail" in caplog.text

    # An upload keeps its photo and shows the sentence; the traceback still goes to the log.
    caplog.clear()
    photo = str(Path(env["library"]) / "greenring" / "greenring-2.png")
    with caplog.at_level(logging.ERROR), pytest.warns(UserWarning, match="Something went"):
        out = guarded(handlers.take_photo)(
            image=photo, library=env["library"], backbone=BACKBONE, k=3, similarity="cosine"
        )
    assert out[2] == "photo" and out[4:7] == ([], f"**Not searched yet:** {sentence}", [])

    # The upload is also the /search_photo API, with the parameters it documents.
    config = AppConfig(library=env["library"], backbone=BACKBONE, host="127.0.0.1", port=0)
    fns = build_demo(config, state=env["state"]).fns.values()
    search_photo = next(f for f in fns if f.api_name == "search_photo")
    names = ["image", "library", "backbone", "k", "similarity", "diagnosis"]
    assert search_photo.input_keyword_names[:6] == names
    assert search_photo.outputs[-1].elem_id == "search-json"
    assert [r.exc_info[0] for r in handler_log(caplog)] == [RuntimeError]

    # An expected error is only shown: its sentence is the whole story.
    caplog.clear()
    with caplog.at_level(logging.ERROR), pytest.raises(gr.Error, match="k must be from 1"):
        guarded(handlers.search)(**settings, k=0, mode="case", case_relpath=first_case(env))
    assert handler_log(caplog) == []


def test_search_tab_events_reach_their_handlers_by_name(env):
    """Each event through gradio's own dispatch, so a misnamed input in the wiring fails here.
    Session state (the picked case, the hits, the clicked result) flows from one to the next."""
    demo = build_demo(
        AppConfig(library=env["library"], backbone=BACKBONE, host="127.0.0.1", port=0),
        state=env["state"],
    )
    events = {fn.name: fn for fn in demo.fns.values()}
    session = SessionState(demo)
    settings = {
        "library_path": env["library"],
        "backbone_key": BACKBONE,
        "k": 3,
        "metric": "cosine",
        "coverage": 0.9,
    }

    def fire(name: str, *, index: int | None = None, **values) -> list:
        """Gradio takes values in wiring order; session-state inputs are read from ``session``."""
        event = events[name]
        inputs = [values.get(n) for n in event.input_keyword_names]
        selected = None if index is None else SelectData(None, {"index": index, "value": None})
        out = asyncio.run(
            demo.process_api(block_fn=event, inputs=inputs, state=session, event_data=selected)
        )
        return out["data"]

    examples = hs.example_cases(env["state"], env["library"])
    session[events["pick_case"].inputs[0]._id] = examples  # what loading the library stores
    _, _, picked, gallery, summary, _, again, data = fire("pick_case", index=1, **settings)
    report = data.model_dump()
    assert picked == f"Query: **{examples[1]['label']}** · `{examples[1]['relpath']}`"
    assert len(gallery) == 3 and "Most similar cases" in summary
    assert report["query_in_library"] == examples[1]["relpath"] and len(report["hits"]) == 3
    assert again["interactive"] is False  # no result is selected in the new results yet

    _, detail, _, again = fire("show_result", index=0)
    assert detail.startswith("### #1") and again["interactive"] is True
    relpath = session[events["search_with_selected"].inputs[0]._id]
    _, _, picked, _, _, summary, *_ = fire("search_with_selected", **settings)
    assert picked == f"Query: library case `{relpath}`" and "Most similar cases" in summary

    # The Search button reads the query from the session: still the case picked above.
    _, summary, *_ = fire("search", **settings, prompt="ignored for a case")
    assert "The query's vector was read from the index" in summary

    # A changed setting clears the results, the selection and its button: nothing stale.
    cleared = fire("results_out_of_date")
    assert cleared[0] == [] and "Settings changed" in cleared[1]
    assert cleared[3]["interactive"] is False  # "search with this case" is off
    assert session[events["show_result"].inputs[0]._id] == []  # the kept hits
    assert session[events["search_with_selected"].inputs[0]._id] is None  # the selection
    with pytest.raises(gr.Error, match="embeds images only"):
        fire("submit_text", **settings, prompt="a red spot")
    [update] = fire("text_box_update", backbone_key=BACKBONE)
    assert update["interactive"] is False


# --- Library tab -------------------------------------------------------------------------------
def test_library_overview_and_problems(env, tmp_path):
    lib = write_library(tmp_path / "messy", with_manifest=False)
    (lib / "redspot" / "broken.png").write_bytes(b"\x89PNG not really")
    copy = lib / "greenring" / "copy-of-red.png"
    copy.write_bytes((lib / "redspot" / "redspot-1.png").read_bytes())
    summary = hl.library_summary(env["state"], str(lib))
    assert f"{len(CLASSES) * PER_CLASS + 1} usable images" in summary
    assert "problems found" in summary
    counts = hl.class_counts(env["state"], str(lib)).set_index("class")
    assert counts.loc["greenring", "images"] == PER_CLASS + 1
    problems = hl.validation_problems(env["state"], str(lib))
    assert (problems["item"] == "redspot/broken.png").any()
    assert problems["problem"].str.contains("different labels").any()
    strips = hl.exact_duplicate_strips(env["state"], str(lib))
    assert len(strips) == 1 and "copy-of-red.png" in strips[0][1]
    assert "No case library yet" in hl.library_summary(env["state"], None)


def test_index_build_status_and_update(env, tmp_path):
    lib = write_library(tmp_path / "grow")
    state = env["state"]
    table = hl.index_status_table(state, str(lib)).set_index("backbone")
    assert table.loc[BACKBONE, "index"] == "missing"
    assert "Built" in hl.build_index(state, str(lib), BACKBONE)
    assert "already up to date" in hl.build_index(state, str(lib), BACKBONE)
    assert hl.index_status_table(state, str(lib)).set_index("backbone").loc[BACKBONE, "cases"] == (
        len(CLASSES) * PER_CLASS
    )
    # A new image appears: the index is stale, and an update embeds only that one.
    pattern(CLASSES["redspot"], seed=77).save(lib / "redspot" / "new.png")
    manifest = pd.read_csv(lib / "manifest.csv")
    extra = pd.DataFrame([{"path": "redspot/new.png", "label": "redspot", "split": "train"}])
    pd.concat([manifest, extra]).to_csv(lib / "manifest.csv", index=False)
    state.library(str(lib), reload=True)
    assert state.index_status(str(lib), BACKBONE).state == "stale"
    assert "Updated" in hl.build_index(state, str(lib), BACKBONE)
    assert state.index_status(str(lib), BACKBONE).count == len(CLASSES) * PER_CLASS + 1
    with pytest.raises(ValueError, match="Pick or upload a library"):
        hl.build_index(state, None, BACKBONE)


def _zip_folder(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
    return target


def test_upload_good_zip_becomes_a_library(env, tmp_path):
    src = write_library(tmp_path / "src", with_manifest=False)
    upload = _zip_folder(src, tmp_path / "clinic.zip")
    ident, message = hl.upload_library(env["state"], str(upload), name="My clinic")
    # Without the app's strict catalog uploads are shared: kept under the cache for everyone.
    path = env["state"].resolve(ident)
    assert Path(path).parent == Path(env["base"]) / "cache" / "uploads"
    assert f"{len(CLASSES) * PER_CLASS} images" in message
    assert path in {p for _, p in library_choices()}
    assert ident in {i for _, i in env["state"].catalog.choices()}
    again, message = hl.upload_library(env["state"], str(upload), name="My clinic")
    assert again == ident and "uploaded before" in message


def test_bad_uploads_add_nothing(env, tmp_path):
    uploads = Path(env["base"]) / "cache" / "uploads"
    before = sorted(p.name for p in uploads.glob("*")) if uploads.exists() else []
    fake = tmp_path / "fake.zip"
    fake.write_text("this is text, not a zip")
    with pytest.raises(ValueError, match="not a readable zip"):
        hl.upload_library(env["state"], str(fake))
    empty_src = tmp_path / "noimages" / "cls"
    empty_src.mkdir(parents=True)
    (empty_src / "a.txt").write_text("text")
    with pytest.raises(ValueError, match="no usable images"):
        hl.upload_library(env["state"], str(_zip_folder(tmp_path / "noimages", tmp_path / "e.zip")))
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(ValueError, match="not a library"):
        hl.upload_library(env["state"], str(notes))
    outside = tmp_path / "outside.csv"
    pattern((9, 9, 9), seed=3).save(tmp_path / "elsewhere.png")
    outside.write_text(f"path,label\n{tmp_path / 'elsewhere.png'},x\n")
    with pytest.raises(ValueError, match="outside the libraries"):
        hl.upload_library(env["state"], str(outside))
    with pytest.raises(ValueError, match=r"Choose a \.zip"):
        hl.upload_library(env["state"], None)
    after = sorted(p.name for p in uploads.glob("*")) if uploads.exists() else []
    assert [n for n in after if n != ".incoming"] == [n for n in before if n != ".incoming"]
    # The module's main library and its index are untouched by all of the above.
    assert env["state"].index_status(env["library"], BACKBONE).state == "ready"


def test_near_duplicate_audit_finds_a_flipped_copy(env, tmp_path):
    lib = tmp_path / "dups"
    rng = np.random.default_rng(5)
    for label in ("a", "b"):
        (lib / label).mkdir(parents=True)
    for i in range(3):
        image = Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).resize(
            (192, 192), Image.Resampling.BICUBIC
        )
        image.save(lib / "a" / f"photo-{i}.png")
        if i == 0:
            image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(lib / "b" / "flipped.png")
    strips, text = hl.near_duplicate_audit(env["state"], str(lib))
    assert "1 group(s) of copies" in text and "1 with conflicting labels" in text
    assert len(strips) == 1 and "LABEL CONFLICT" in strips[0][1]
    assert "flipped.png" in strips[0][1] and "photo-0.png" in strips[0][1]
    # Saved as a new library under a copy policy; the original stays as it was.
    ident, message = hl.save_audited_library(env["state"], str(lib), "group-as-case")
    assert "4 images" in message and Path(env["state"].resolve(ident)).is_file()
    _ident, message = hl.save_audited_library(env["state"], str(lib), "one-per-group")
    assert "2 images" in message  # the conflicting pair is left for a person to settle
    assert len(env["state"].library(str(lib))) == 4
    with pytest.raises(ValueError, match="Choose what to do with copies"):
        hl.save_audited_library(env["state"], str(lib), "drop-everything")


# --- Benchmark tab -----------------------------------------------------------------------------
def test_benchmark_run_records_table_figures_and_export(env):
    seen = []
    frame, path = hb.run_benchmark(
        env["state"],
        library_path=env["library"],
        backbones=[BACKBONE],
        protocol="leave-one-out",
        progress=lambda f, m: seen.append(f),
    )
    assert path.is_file() and len(path.read_text().splitlines()) == len(frame)
    assert seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    table = hb.results_table(frame)
    assert table.loc[0, "backbone"] == BACKBONE and table.loc[0, "Top-1"] == 1.0
    assert table.loc[0, "Top-1 95 %"] == "1.00-1.00"
    # leave-one-out is recorded with and without the duplicate rule: one row each, never averaged
    assert sorted(table["protocol"]) == ["leave-one-out", "leave-one-out, case only"]
    assert "library" not in table.columns  # one library at a time: its name is in the label
    figures = hb.result_figures(frame)
    assert all(isinstance(f, go.Figure) for f in figures)
    assert "Pareto front (ours)" in {t.name for t in figures[0].data}
    name = hb.library_names(frame)[0]
    assert all(f.layout.title.text.startswith(f"{name}, leave-one-out: ") for f in figures)
    csv, jsonl = hb.export_records(frame)
    assert pd.read_csv(csv).shape == table.shape  # the summary table as shown
    assert len(Path(jsonl).read_text().splitlines()) == len(frame)  # and every raw record
    saved = hb.load_saved_records(folders=[path.parent])
    assert len(saved) >= len(frame)


def test_benchmark_train_test_and_cosine_vs_euclidean(env, tmp_path):
    common = {"library_path": env["library"], "backbones": [BACKBONE]}
    frame, _ = hb.run_benchmark(env["state"], protocol="train-test", **common)
    scored = frame[frame["protocol"] != "latency"]
    assert set(scored["protocol"]) == {"train-test"} and hb.skipped_reasons(frame) == []
    frame, _ = hb.run_benchmark(env["state"], protocol="cosine-vs-euclidean", **common)
    assert set(frame["similarity"].dropna()) == {"cosine", "euclidean"}
    no_split = write_library(tmp_path / "nosplit", with_manifest=False)
    frame, _ = hb.run_benchmark(
        env["state"], library_path=str(no_split), backbones=[BACKBONE], protocol="train-test"
    )
    reasons = hb.skipped_reasons(frame)
    assert len(reasons) == 1 and reasons[0].startswith(f"{BACKBONE} / train-test: ")


def test_benchmark_bad_requests_and_cancel(env):
    with pytest.raises(ValueError, match="at least one backbone"):
        hb.run_benchmark(
            env["state"], library_path=env["library"], backbones=[], protocol="leave-one-out"
        )
    with pytest.raises(ValueError, match="Protocol must be"):
        hb.run_benchmark(
            env["state"], library_path=env["library"], backbones=[BACKBONE], protocol="k-fold"
        )
    with pytest.raises(ValueError, match="Pick a library"):
        hb.run_benchmark(
            env["state"], library_path=None, backbones=[BACKBONE], protocol="leave-one-out"
        )
    before = set(hb.app_results_dir().glob("*.jsonl"))
    with pytest.raises(Cancelled):
        hb.run_benchmark(
            env["state"],
            library_path=env["library"],
            backbones=[BACKBONE],
            protocol="leave-one-out",
            should_stop=lambda: True,
        )
    assert set(hb.app_results_dir().glob("*.jsonl")) == before
    with pytest.raises(ValueError, match="no results to download"):
        hb.export_records(pd.DataFrame())


def test_benchmark_tab_shows_one_library_at_a_time():
    rows = []
    for library, value in (("alpha", 0.9), ("beta", 0.1)):
        for cls in ("a", "b"):
            rows.append(
                {
                    "library": library,
                    "backbone": BACKBONE,
                    "family": "classical",
                    "protocol": "leave-one-out",
                    "metric": "hit_rate",
                    "k": 1,
                    "value": value,
                    "class": cls,
                    "total_s_per_image": 0.01,
                }
            )
        rows.append({**rows[-1], "class": None, "ci_low": value - 0.1, "ci_high": value})
    frame = pd.DataFrame(rows)
    assert hb.library_names(frame) == ["alpha", "beta"]
    assert hb.pick_library(frame, "beta") == "beta" and hb.pick_library(frame, "x") == "alpha"
    beta = hb.library_records(frame, "beta")
    assert set(beta["library"]) == {"beta"}
    assert hb.results_table(beta)["Top-1"].tolist() == [0.1]  # never averaged with alpha
    latency, _, per_class = hb.result_figures(beta, library="beta")
    assert latency.layout.title.text.startswith("beta, leave-one-out: ")
    assert list(per_class.data[0].y) == [0.1, 0.1]  # beta's classes only
    ours = next(t for t in latency.data if t.name == "classical")
    assert list(ours.error_y.arrayminus) == pytest.approx([0.1])


def test_saved_records_survive_half_written_lines_and_empty_files(tmp_path):
    good = {"backbone": BACKBONE, "metric": "hit_rate", "k": 1, "value": 0.5, "class": None}
    line = json.dumps(good) + "\n"
    (tmp_path / "run.jsonl").write_text(line + "{not json\n" + line + '{"backbone": "trunc')
    (tmp_path / "starting.jsonl").write_text("")
    frame = hb.load_saved_records(folders=[tmp_path])
    assert len(frame) == 2 and set(frame["source_file"]) == {"run.jsonl"}
    # The same reader on a file a user names: only the last line may be half-written.
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        read_records(tmp_path / "run.jsonl")
    with pytest.raises(ValueError, match="holds no records"):
        read_records(tmp_path / "starting.jsonl")
    empty = hb.result_figures(pd.DataFrame())
    assert "No benchmark results" in empty[0].layout.annotations[0].text


def test_embedding_map_is_a_figure(env):
    fig = hb.embedding_map(env["state"], library_path=env["library"], backbone=BACKBONE)
    assert {t.name for t in fig.data} == set(CLASSES)


# --- Models tab and start-up -------------------------------------------------------------------
def test_registry_table_has_every_backbone():
    table = registry_table()
    assert list(table.columns) == COLUMNS
    assert sorted(table["key"]) == sorted(s.key for s in list_specs())
    assert set(table["here"]) <= {"ready", "download", "gated", "unsupported"}
    assert table.set_index("key").loc[BACKBONE, "here"] == "ready"


def test_models_tab_and_picker_name_no_weights_folder(tmp_path, monkeypatch):
    # A backbone whose weights sit in the local weights folder (and a broken one beside it):
    # the page says where weights come from in words, never the server's folder.
    weights = tmp_path / "server-weights"
    (weights / "dinov2-base").mkdir(parents=True)
    (weights / "dinov2-base" / "config.json").write_text("{}")
    monkeypatch.setenv("DERMSEARCH_WEIGHTS", str(weights))
    assert str(weights) in availability(get_spec("dinov2-base")).detail  # the CLI keeps it
    table = registry_table()
    _, not_here = hs.backbone_choices()
    for text in (table.to_csv(), not_here):
        assert str(tmp_path) not in text and "/root" not in text and "$DERMSEARCH" not in text


def test_config_flags_beat_environment(tmp_path):
    env = {
        "DERMSEARCH_LIBRARY": str(tmp_path),
        "DERMSEARCH_BACKBONE": "color-texture",
        "GRADIO_SERVER_NAME": "0.0.0.0",
        "GRADIO_SERVER_PORT": "9000",
    }
    config = parse_config([], env=env)
    assert (config.library, config.backbone, config.host, config.port) == (
        str(tmp_path.resolve()),
        "color-texture",
        "0.0.0.0",
        9000,
    )
    config = parse_config(["--port", "7001", "--backbone", "efficientnet-lite0", "--x"], env=env)
    assert (config.port, config.backbone) == (7001, "efficientnet-lite0")
    config = parse_config([], env={"DERMSEARCH_SHARED": str(tmp_path / "no-shared")})
    assert config.library is None and config.backbone == "efficientnet-lite0"
    assert config.torch_threads == 1
    assert (
        parse_config(["--torch-threads", "2"], env={"DERMSEARCH_TORCH_THREADS": "3"}).torch_threads
        == 2
    )
    assert parse_config([], env={"DERMSEARCH_TORCH_THREADS": "3"}).torch_threads == 3


def test_app_has_the_stable_element_ids(env):
    demo = build_demo(
        AppConfig(library=None, backbone=BACKBONE, host="127.0.0.1", port=0), state=env["state"]
    )
    ids = {block.elem_id for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    wanted = {
        "backbone",
        "query-image",
        "query-label",
        "query-text",
        "examples",
        "k",
        "similarity",
        "search-btn",
        "results",
        "summary",
        "detail-image",
        "detail-meta",
        "search-with-case",
        "bench-run",
        "bench-cancel",
        "bench-plot",
        "bench-table",
        "bench-download",
        "library-path",
        "library-upload",
        "index-build",
        "index-status",
        "models-table",
        "disclaimer",
    }
    assert wanted <= ids


def test_unreadable_upload_reaches_the_handler_and_shared_uploads_survive(tmp_path):
    from gradio.data_classes import ImageData

    from demo.layout import CACHE_SWEEP
    from demo.ui_search import tolerate_unreadable

    uploads = tmp_path / "gradio" / "abc123"
    uploads.mkdir(parents=True)
    text = uploads / "notes.txt"
    text.write_text("not an image")
    image = tolerate_unreadable(gr.Image(type="filepath"))
    path = image.preprocess(ImageData(path=str(text), orig_name="notes.txt"))
    assert path == str(text)
    with pytest.raises(ValueError, match=r"That upload \(notes.txt\) is not a photo"):
        read_query_photo(path)
    # gradio stores uploads by content hash: two users sending one photo share the file, so
    # reading it must leave it for the other request; the cache sweep removes it soon after.
    photo = tmp_path / "gradio" / "def456" / "query.png"
    photo.parent.mkdir()
    pattern((10, 200, 10), seed=4).save(photo)
    assert read_query_photo(str(photo)).size == (64, 64)
    assert read_query_photo(str(photo)).size == (64, 64)
    frequency, age = CACHE_SWEEP
    assert frequency + age <= 300


def _two_shared_libraries(root: Path) -> Path:
    for name in ("b-second", "a-first"):
        for label in ("x", "y"):
            folder = root / "datasets" / name / label
            folder.mkdir(parents=True)
            Image.new("RGB", (8, 8), (10, 200, 30)).save(folder / "0.png")
    (root / "datasets" / "notes.txt").write_text("not a library")
    return root


def test_first_visit_selects_the_first_shared_dataset_unless_one_is_configured(tmp_path):
    shared = _two_shared_libraries(tmp_path / "shared")
    env = {"DERMSEARCH_SHARED": str(shared)}
    assert parse_config([], env=env).library == str(shared / "datasets" / "a-first")
    chosen = tmp_path / "mine"
    chosen.mkdir()
    assert parse_config([], env={**env, "DERMSEARCH_LIBRARY": str(chosen)}).library == str(chosen)
    assert parse_config(["--library", str(chosen)], env=env).library == str(chosen)


def _start_page_and_tab(demo) -> tuple[bool, str]:
    blocks = list(demo.blocks.values())
    page = next(b for b in blocks if getattr(b, "elem_id", None) == "getting-started")
    tabs = next(b for b in blocks if getattr(b, "elem_id", None) == "tabs")
    return page.visible, tabs.selected


def test_first_visit_opens_on_search_or_on_the_getting_started_page(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DERMSEARCH_LIBRARIES", raising=False)
    monkeypatch.setenv("DERMSEARCH_SHARED", str(tmp_path / "no-shared"))
    empty = build_demo(parse_config([], env={"DERMSEARCH_SHARED": str(tmp_path / "no-shared")}))
    assert _start_page_and_tab(empty) == (True, "library")
    shared = _two_shared_libraries(tmp_path / "shared")
    monkeypatch.setenv("DERMSEARCH_SHARED", str(shared))
    ready = build_demo(parse_config([], env={"DERMSEARCH_SHARED": str(shared)}))
    assert _start_page_and_tab(ready) == (False, "search")
    dropdown = next(
        b for b in ready.blocks.values() if getattr(b, "elem_id", None) == "library-path"
    )
    assert dropdown.value == "a-first"  # the library's id: the page never holds a path


def test_the_demo_library_button_fails_here_with_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # conftest: the suite never reaches the Hub
    with pytest.raises(gr.Error) as err:
        guarded(hl.load_demo_library)(AppState())
    message = str(err.value)
    assert "Could not load hf://datasets/marmal88/skin_cancer:test" in message
    assert "Traceback" not in message and str(tmp_path) not in message


def test_a_hub_library_opens_the_app_and_shows_its_licence(tmp_path, monkeypatch):
    from hub_layout import write_hub_folder

    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DERMSEARCH_SHARED", str(tmp_path / "no-shared"))
    monkeypatch.delenv("DERMSEARCH_LIBRARIES", raising=False)
    folder = write_hub_folder(tmp_path / "patterns")
    config = parse_config(["--library", f"hf://{folder}", "--max-cases", "6"], env={})
    assert config.library == f"hf://{folder}" and config.max_cases == 6
    state = AppState(catalog=app_catalog(local_library(config)))
    demo = build_demo(config, state=state)
    assert _start_page_and_tab(demo) == (False, "search")
    dropdown = next(
        b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "library-path"
    )
    assert dropdown.choices[0][0] == "patterns (configured)"
    summary = hl.library_summary(state, dropdown.value)
    assert "6 usable images" in summary and "Licence: **cc-by-4.0**" in summary
    assert "@misc{patterns2026" in summary
