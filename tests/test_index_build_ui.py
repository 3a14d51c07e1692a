"""The first search on a backbone builds the library's index: one progress line with a count
and the time left, a Cancel that leaves no index half-written but keeps the embeddings done,
and never two builds of one index. Real files, the real color-texture backbone, real usearch
indexes and a real embedding cache in a temporary folder."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from library_factory import make_folder_library, zip_tree

import demo.handlers_search as hs
import demo.index_notice as index_notice
from data_index.embed_cache import EmbeddingCache
from data_index.store import resolve_version
from demo.events_search import SEARCHING, SearchHandlers
from demo.handlers_library import upload_library
from demo.state import AppState, Cancelled, build_progress, index_dir, time_left
from demo.stopping import StopFlags, stoppable
from models import get_spec

BACKBONE = "color-texture"
PER_CLASS = 20  # 80 images: three batches of the backbone's 32, so a cancel lands mid-build


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """A library no index was built for, with its own empty cache."""
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DERMSEARCH_SHARED", str(tmp_path / "no-shared"))
    monkeypatch.delenv("DERMSEARCH_LIBRARIES", raising=False)
    library = make_folder_library(tmp_path / "lib", per_class=PER_CLASS)
    return {"library": str(library), "state": AppState(), "cache": tmp_path / "cache"}


def cached_vectors(cache_root: Path) -> int:
    origin = AppState().backbone(BACKBONE).weights_origin
    return len(
        EmbeddingCache(backbone_key=BACKBONE, weights_origin=origin, root=cache_root / "embeddings")
    )


def test_build_progress_counts_images_and_estimates_the_time_left():
    lines: list[tuple[float, str]] = []
    now = [100.0]
    step = build_progress(
        lambda f, m: lines.append((f, m)), backbone_name="Some Net", clock=lambda: now[0]
    )
    step(0, 200)
    now[0] = 110.0
    step(40, 200)  # 4 images/s: 160 left take 40 s
    now[0] = 150.0
    step(200, 200)
    first, middle, last = (m for _, m in lines)
    assert first.startswith("Building this library's index once for Some Net")
    assert first.endswith("0 / 200 images, estimating the time left")
    assert middle.endswith("40 / 200 images, about 40 s left")
    assert last.endswith("200 / 200 images, saving the index")
    assert [f for f, _ in lines] == [0.0, 0.2, 1.0]
    # A resumed build starts with the cached images done; the rate counts only new ones.
    resumed: list[str] = []
    now[0] = 0.0
    step = build_progress(lambda f, m: resumed.append(m), backbone_name="X", clock=lambda: now[0])
    step(150, 200)
    now[0] = 10.0
    step(160, 200)  # 1 image/s from the resume on: 40 s left, not the 3 s 160 in 10 s implies
    assert resumed[1].endswith("160 / 200 images, about 40 s left")
    assert time_left(3) == "about 5 s left" and time_left(170) == "about 3 min left"


def test_cancel_stops_a_first_build_cleanly_and_the_retry_resumes(fresh):
    state, library = fresh["state"], fresh["library"]
    name = get_spec(BACKBONE).name
    notice = index_notice.build_notice(state, library, BACKBONE)
    assert f"The first search with {name} builds this library's index once" in notice
    assert f"({4 * PER_CLASS} images to embed" in notice and "Later searches reuse it" in notice

    flags = StopFlags()
    handlers = SearchHandlers(state, flags)
    seen: list[str] = []

    def press_cancel_after_first_batch(fraction: float, desc: str = "") -> None:
        seen.append(desc)
        if " 0 / " not in desc and "images" in desc:
            assert flags.stop("local", SEARCHING), "the search should count as running"

    search = {
        "library_path": library,
        "backbone_key": BACKBONE,
        "mode": "case",
        "k": 5,
        "metric": "cosine",
        "case_relpath": "red-stripes/red-stripes-0.jpg",
    }
    # The search answers with the cancel (a result to show, not an error to pop up).
    gallery, summary, hits, again, report = handlers.search(
        **search, progress=press_cancel_after_first_batch
    )
    assert summary == index_notice.CANCELLED_BUILD and gallery == hits == [] and report is None
    assert summary.startswith("**Index build cancelled.** Nothing was saved as an index.")
    assert any("32 / 80 images" in line for line in seen), seen
    # Nothing was saved as an index: no version, and the status says it is still to be built.
    folder = index_dir(state.library(library), BACKBONE)
    assert not folder.exists() or not any(folder.glob("v-*"))
    with pytest.raises(ValueError):
        resolve_version(folder)
    assert state.index_status(library, BACKBONE).state == "missing"
    assert index_notice.build_notice(state, library, BACKBONE) == notice
    # ... but the embeddings done before the cancel are kept for the next try.
    kept = cached_vectors(fresh["cache"])
    assert 32 <= kept < 4 * PER_CLASS
    assert not flags.stop("local", SEARCHING), "nothing runs after the cancel"

    again: list[str] = []
    results = handlers.search(**search, progress=lambda f, desc="": again.append(desc))
    first_count = next(line for line in again if "images" in line)
    assert f"{kept} / 80 images" in first_count, again  # resumed, not started over
    assert len(results[2]) == 5
    assert state.index_status(library, BACKBONE).state == "ready"
    assert index_notice.build_notice(state, library, BACKBONE) == ""
    assert cached_vectors(fresh["cache"]) == 4 * PER_CLASS


def test_two_first_searches_at_once_build_the_index_once(fresh):
    state, library = fresh["state"], fresh["library"]
    state.library(library)
    messages: dict[str, list[str]] = {"a": [], "b": []}
    other_waits = threading.Event()
    results: dict[str, object] = {}
    start = threading.Barrier(2)

    def recorder(name: str):
        def progress(fraction: float, text: str) -> None:
            messages[name].append(text)
            if "built only once" in text:
                other_waits.set()
            elif "images" in text:
                # The builder goes on only once the other search is seen waiting for it, so
                # the two surely overlap.
                assert other_waits.wait(timeout=120)

        return progress

    def first_search(name: str) -> None:
        start.wait()
        results[name] = state.index(library, BACKBONE, progress=recorder(name))

    threads = [threading.Thread(target=first_search, args=(n,)) for n in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert results["a"] is results["b"]
    built = [n for n, lines in messages.items() if any("images" in m for m in lines)]
    waited = [n for n, lines in messages.items() if any("built only once" in m for m in lines)]
    assert len(built) == 1 and len(waited) == 1 and built != waited, messages
    folder = index_dir(state.library(library), BACKBONE)
    assert len(list(folder.glob("v-*"))) == 1


# --- labels by their display names, the enlarged view at real size ------------------------------
def write_named_library(root: Path) -> Path:
    """A manifest library whose ``label_name`` column names two labels, one of them twice."""
    make_folder_library(root, per_class=4, labels=("red-stripes", "blue-checks"))
    rows = []
    for label, name in (("red-stripes", "Melanoma"), ("blue-checks", "Naevus")):
        for i in range(4):
            # One row calls the red class by another name: a conflict to warn about.
            shown = "Malignant melanoma" if (label, i) == ("red-stripes", 3) else name
            rows.append(f"{label}/{label}-{i}.jpg,{label},{shown}")
    (root / "manifest.csv").write_text("path,label,label_name\n" + "\n".join(rows) + "\n")
    return root


def test_manifest_label_names_are_shown_everywhere_and_conflicts_warned(fresh, tmp_path):
    from demo.handlers_library import class_counts, library_summary

    library = str(write_named_library(tmp_path / "named"))
    state = fresh["state"]
    loaded = state.library(library)
    assert loaded.label_names == {"red-stripes": "Melanoma", "blue-checks": "Naevus"}
    [warning] = [w for w in loaded.report.warnings if "label_name" in w]
    assert "red-stripes has 2 different names" in warning and "Malignant melanoma" in warning
    assert "the first, Melanoma, is shown" in warning
    assert warning in library_summary(state, library)  # the Library tab's verdict
    counts = class_counts(state, library).set_index("class")
    assert counts.loc["red-stripes", "name"] == "Melanoma (red-stripes)"

    assert hs.label_choices(state, library) == [
        ("Naevus (blue-checks)", "blue-checks"),
        ("Melanoma (red-stripes)", "red-stripes"),
    ]
    examples = hs.example_cases(state, library)
    assert {caption for _, caption in hs.example_gallery(examples)} == {
        "Melanoma (red-stripes)",
        "Naevus (blue-checks)",
    }
    out = hs.run_search(
        state,
        library_path=library,
        backbone_key=BACKBONE,
        mode="case",
        case_relpath="red-stripes/red-stripes-0.jpg",
        k=4,
    )
    assert all(
        ("Melanoma (red-stripes)" in c) or ("Naevus (blue-checks)" in c) for _, c in out.gallery
    )
    assert "are Melanoma (red-stripes)**" in out.summary
    assert "Likely diagnoses (90% coverage on this library): Melanoma (red-stripes)" in out.summary
    assert "*Melanoma (red-stripes)*, is among the results" in out.summary
    _, details, _ = hs.result_details(out.hits, 0)
    assert details.startswith("### #1 Melanoma (red-stripes)")
    assert "label_name" not in details  # the name is the heading, not a field row


def test_enlarged_view_is_the_photo_at_its_real_resolution(fresh, tmp_path):
    from library_factory import pattern_image, save_image

    library = tmp_path / "sizes"
    make_folder_library(library, per_class=3, labels=("red-stripes",))
    # A photo far larger than any tile, and not square: it must come back whole, pixel for pixel.
    big = pattern_image("blue-checks", 7, size=40).resize((1500, 1000))
    save_image(big, library / "blue-checks" / "big.png")
    for i in range(2):
        save_image(pattern_image("blue-checks", i), library / "blue-checks" / f"b-{i}.jpg")
    out = hs.run_search(
        fresh["state"],
        library_path=str(library),
        backbone_key=BACKBONE,
        mode="case",
        case_relpath="blue-checks/b-0.jpg",
        k=5,
    )
    index = next(i for i, h in enumerate(out.hits) if h["relpath"] == "blue-checks/big.png")
    image, details, _ = hs.result_details(out.hits, index)
    assert image.size == (1500, 1000)
    assert list(image.getdata()) == list(big.convert("RGB").getdata())
    assert "Shown at its full resolution, 1500 × 1000 px." in details
    small, details, _ = hs.result_details(out.hits, next(i for i in range(5) if i != index))
    assert small.size == (40, 40) and "40 × 40 px" in details  # never blown up to a tile


def test_library_tab_messages_sit_beside_their_controls_near_the_top(fresh, tmp_path):
    """Layout order from the app's own component tree; the failure message is the one the
    browser shows (gradio's failure callback, fed by the failed event)."""
    from demo import build_demo
    from demo.config import AppConfig

    demo = build_demo(
        AppConfig(library=fresh["library"], backbone=BACKBONE, host="127.0.0.1", port=0),
        state=fresh["state"],
    )
    ids = [b.elem_id for b in demo.blocks.values() if getattr(b, "elem_id", None)]
    library_ids = ids[ids.index("library-upload") :]
    assert library_ids.index("library-upload-message") < library_ids.index("library-summary")
    assert library_ids.index("library-upload-message") < library_ids.index("library-classes")
    assert library_ids.index("index-build") + 1 == library_ids.index("index-message")
    fns = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name}
    upload = fns["upload_library"]
    assert [o.elem_id for o in upload.outputs][1] == "library-upload-message"
    assert [c.elem_id for c in upload.show_progress_on] == ["library-upload-message"]


def test_a_refused_upload_keeps_its_sentence_for_the_page(fresh, tmp_path):
    import gradio as gr

    from demo.errors import PageMessages

    page = PageMessages()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a library")

    def add(file: str, request: gr.Request):
        return upload_library(fresh["state"], file)

    session = gr.Request(session_hash="visitor-1")
    with pytest.raises(gr.Error, match=r"notes\.txt is not a library") as failed:
        page.guarded(add, place="upload")(str(notes), request=session)
    assert failed.value.visible is False  # the page shows it; no toast on top of it
    shown = page.shown(place="upload", title="Nothing was added.")
    assert page.shown(place="upload", title="x")(gr.Request(session_hash="visitor-2")) == "**x**"
    message = shown(session)
    assert message.startswith("**Nothing was added.** notes.txt is not a library")
    assert str(tmp_path) not in message
    assert shown(session) == "**Nothing was added.**"  # shown once, then gone


def test_a_cancelled_upload_adds_nothing(fresh, tmp_path):
    source = make_folder_library(tmp_path / "to-upload", per_class=40)  # 160 files
    archive = zip_tree(source, tmp_path / "upload.zip")
    uploads = fresh["cache"] / "uploads"
    before = sorted(uploads.rglob("*")) if uploads.exists() else []
    offered = fresh["state"].catalog.choices()
    flag = threading.Event()
    flag.set()  # Cancel was pressed while the files were being checked
    with pytest.raises(Cancelled, match="Upload cancelled"):
        upload_library(
            fresh["state"],
            str(archive),
            progress=stoppable(lambda f, m: None, flag, message="Upload cancelled."),
        )
    after = sorted(uploads.rglob("*")) if uploads.exists() else []
    assert [p for p in after if ".incoming" not in str(p)] == before
    assert fresh["state"].catalog.choices() == offered
