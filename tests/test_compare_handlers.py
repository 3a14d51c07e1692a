"""Compare tab handlers (no browser): ready rows come before indexes still being built, exports,
teaching mode, the disagreement explorer and bad input."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from gradio.events import EventData, SelectData
from gradio.state_holder import SessionState
from library_factory import make_folder_library, pattern_image
from PIL import Image

import demo.handlers_compare as hc
import demo.handlers_search as hs
from demo import build_demo
from demo.config import AppConfig
from demo.state import AppState

READY, MISSING = "color-texture", "efficientnet-lite0"
# What a class must never read on the page: file stems, field names, the metric's short name.
INTERNAL = re.compile(r"\bcos\b|relpath|case_id|\.jpg|red-stripes-\d")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("compare-ui")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DERMSEARCH_CACHE", str(base / "cache"))
        library = str(make_folder_library(base / "lib", per_class=4))
        state = AppState()
        yield {"library": library, "state": state}


def visible_text(html: str) -> str:
    """The page's words: tags and embedded images removed, caption copies kept."""
    return re.sub(r"<[^>]+>", " ", re.sub(r'src="[^"]+"', "", html))


def test_ready_row_is_shown_while_the_missing_index_builds(env):
    state, library = env["state"], env["library"]
    state.index(library, READY)  # built now; the other backbone's index does not exist yet
    assert state.index_status(library, MISSING).state == "missing"
    query, picture = hc.build_query(
        state, library_path=library, mode="case", case_relpath="red-stripes/red-stripes-0.jpg"
    )
    assert query.label == "red-stripes"
    steps = list(
        hc.compare_stream(
            state,
            library_path=library,
            backbones=[MISSING, READY],
            query=query,
            query_image=picture,
            k=5,
        )
    )
    first_rows, first_overlap, _ = steps[0]
    # Rows keep the order picked; the ready backbone's row is complete in the first update.
    assert "building" in first_rows[0] or "waiting" in first_rows[0]
    assert first_rows[0].count("cmp-hit") == 0 and first_rows[1].count("cmp-hit") == 5
    assert "once two rows are ready" in first_overlap
    rows, overlap, shown = steps[-1]
    assert rows[0].count("cmp-hit") == rows[1].count("cmp-hit") == 5 and rows[2:] == ["", ""]
    assert state.index_status(library, MISSING).state == "ready"
    assert re.search(r"share \d of their 5 cases; votes (agree|differ)", overlap)
    pair = shown.comparison.pairs[0]
    assert f"share {len(pair.shared)} of" in overlap
    for html in rows[:2]:
        assert 'data-verdict="match"' in html
        assert "likely diagnoses (90% coverage): red-stripes" in visible_text(html)
        assert not INTERNAL.search(visible_text(html)), visible_text(html)

    hidden, _ = hc.redraw(shown, hide_labels=True)
    assert "red-stripes" not in visible_text(hidden[0]) and 'data-verdict="match"' not in hidden[0]
    shown_again, _ = hc.redraw(shown, hide_labels=False)
    assert shown_again[:2] == rows[:2]

    page = hc.export_html(shown)
    assert page.endswith(".html") and "data:image/jpeg;base64," in Path(page).read_text()
    sheet = hc.export_sheet(shown)
    with Image.open(sheet) as image:
        assert image.size == (1920, 1080)


def test_photo_query_and_bad_input(env):
    state, library = env["state"], env["library"]
    query, _ = hc.build_query(
        state,
        library_path=library,
        mode="photo",
        photo=pattern_image("blue-checks", 77),
        stated_label="blue-checks",
    )
    assert query.kind == "photo" and query.label == "blue-checks"
    with pytest.raises(ValueError, match="No photo yet"):
        hc.build_query(state, library_path=library, mode="photo", photo=None)
    with pytest.raises(ValueError, match="No library case is picked"):
        hc.build_query(state, library_path=library, mode="case", case_relpath=None)
    with pytest.raises(ValueError, match="Run a comparison first"):
        hc.export_sheet(None)
    with pytest.raises(ValueError, match="2 to 4"):
        list(
            hc.compare_stream(
                state,
                library_path=library,
                backbones=[READY],
                query=query,
                query_image=query.image,
                k=3,
            )
        )


def test_text_prompt_row_says_why_an_image_backbone_cannot_answer(env):
    state, library = env["state"], env["library"]
    query, picture = hc.build_query(state, library_path=library, mode="text", prompt="stripes")
    *_, (rows, overlap, shown) = hc.compare_stream(
        state,
        library_path=library,
        backbones=[READY, MISSING],
        query=query,
        query_image=picture,
        k=3,
    )
    assert all("embeds images only" in row for row in rows[:2])
    assert shown.comparison is None and overlap == ""


def test_disagreement_explorer(env):
    state, library = env["state"], env["library"]
    found = hc.disagreements(state, library_path=library, a=READY, b=MISSING)
    assert found.n_queries == 16
    summary = hc.disagreement_summary(found)
    assert f"**{len(found.only_a)}**" in summary and "Colour + texture" in summary
    gallery = hc.disagreement_gallery(found.only_b, right=1)
    assert len(gallery) == len(found.only_b)
    for (_, caption), (ra, _) in zip(gallery, found.only_b, strict=True):
        assert caption.startswith(ra.label + " → ") and caption != f"{ra.label} → {ra.label}"
    with pytest.raises(ValueError, match="two different backbones"):
        hc.disagreements(state, library_path=library, a=READY, b=READY)


def test_compare_tab_events_reach_their_handlers_by_name(env):
    """Through gradio's own dispatch, so a misnamed input in the wiring fails here (the compare
    button itself is driven in the browser test)."""
    demo = build_demo(
        AppConfig(library=env["library"], backbone=READY, host="127.0.0.1", port=0),
        state=env["state"],
    )
    events = {fn.name: fn for fn in demo.fns.values()}
    session = SessionState(demo)

    def fire(name: str, *, index: int | None = None, data: dict | None = None, **values) -> list:
        event = events[name]
        inputs = [values.get(n) for n in event.input_keyword_names]
        selected = None if index is None else SelectData(None, {"index": index, "value": None})
        selected = EventData(None, data) if data is not None else selected
        out = asyncio.run(
            demo.process_api(block_fn=event, inputs=inputs, state=session, event_data=selected)
        )
        return out["data"]

    examples = hs.example_cases(env["state"], env["library"])
    session[events["pick_compare_case"].inputs[0]._id] = examples

    def stored(name: str, position: int):
        """An output that is session state comes back as None; gradio keeps it in the session."""
        return session[events[name].outputs[position]._id]

    _, _, picked = fire("pick_compare_case", index=1)
    mode, relpath = stored("pick_compare_case", 0), stored("pick_compare_case", 1)
    assert mode == "case" and relpath == examples[1]["relpath"]
    assert examples[1]["label"] in picked and relpath not in picked

    summary, only_a, *_ = fire(
        "find_disagreements", library_path=env["library"], a=READY, b=MISSING
    )
    assert "leave-one-out queries" in summary and "Only " in only_a["label"]
    # The patterns are easy: the backbones may agree on every query, so the list clicked on is
    # put into the session directly; what is checked is the wiring of the click.
    event = next(f for f in demo.fns.values() if f.name == "pick_disagreement")
    events["pick_disagreement"] = event
    session[event.inputs[0]._id] = [examples[2]["relpath"]]
    _, _, _, backbones, _ = fire("pick_disagreement", index=0, a=READY, b=MISSING)
    mode, relpath = stored("pick_disagreement", 0), stored("pick_disagreement", 1)
    backbones = backbones["value"] if isinstance(backbones, dict) else backbones
    assert (mode, relpath, backbones) == ("case", examples[2]["relpath"], [READY, MISSING])

    query, picture = hc.build_query(
        env["state"], library_path=env["library"], mode="case", case_relpath=relpath
    )
    *_, (_, _, shown) = hc.compare_stream(
        env["state"],
        library_path=env["library"],
        backbones=[READY, MISSING],
        query=query,
        query_image=picture,
        k=3,
    )
    session[events["redraw_rows"].inputs[0]._id] = shown
    *rows, overlap = fire("redraw_rows", hide=True)
    assert rows[0]["value"].count('data-verdict="unknown"') == 3 and "share" in overlap
    session[events["save_slide"].inputs[0]._id] = shown
    (saved,) = fire("save_slide")
    assert saved["value"]["path"].endswith(".png")

    # A click on a case in a row: large beside the query, with that row's backbone's maps.
    session[events["look_closer"].inputs[0]._id] = shown
    closer, _ = fire("look_closer", data={"backbone": MISSING, "rank": 2}, hide=False, show="maps")
    assert "most alike" in closer and closer.count("<img") == 2
    assert "EfficientNet-Lite0 (ImageNet), case #2: " in closer
    assert stored("look_closer", 1) == (MISSING, 2)
    closer, _ = fire("look_closer", data={"backbone": READY, "rank": 1}, hide=True, show="maps")
    assert "no per-location map" in closer and "diagnosis hidden" in closer
    closer, _ = fire("look_closer", data={"backbone": READY, "rank": 1}, hide=False, show="photos")
    assert closer.count("<img") == 2 and "map" not in visible_text(closer).lower()
    with pytest.raises(ValueError, match="no longer shown"):
        hc.picked_hit(shown, backbone=READY, rank=99)


def test_cli_compare_with_a_variant_ranks_as_the_tab_does(tmp_path, monkeypatch, capsys):
    """`data_index compare --variant` and the Compare tab prepare and run the variant through
    the same functions, so their rows hold the same cases in the same order."""
    import json

    from data_index.__main__ import main

    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    library = str(make_folder_library(tmp_path / "lib", per_class=4))
    relpath = "red-stripes/red-stripes-0.jpg"
    argv = ["compare", "--library", library, "--backbones", f"{READY},{MISSING}",
            "--case", relpath, "-k", "5", "--json"]  # fmt: skip
    by_cli = {}
    for variant in ("k-reciprocal", "dba"):
        assert main([*argv, "--variant", variant]) == 0
        data = json.loads(capsys.readouterr().out)
        assert [b["variant"] for b in data["backbones"]] == [variant, variant]
        by_cli[variant] = [[h["case_id"] for h in b["hits"]] for b in data["backbones"]]
    assert main(argv) == 0
    plain = json.loads(capsys.readouterr().out)
    assert [b["variant"] for b in plain["backbones"]] == [None, None]
    # dba's fits were saved beside the cache's indexes, where the tab looks for them
    assert len(list((tmp_path / "cache" / "indexes").glob("*--variants/dba/*/index.usearch"))) == 2
    state = AppState()
    for variant, rows in by_cli.items():
        query, picture = hc.build_query(
            state, library_path=library, mode="case", case_relpath=relpath
        )
        *_, (_, _, shown) = hc.compare_stream(
            state, library_path=library, backbones=[READY, MISSING], query=query,
            query_image=picture, k=5, variant=variant,
        )  # fmt: skip
        assert [[h.case_id for h in row.hits] for row in shown.comparison.rows] == rows
        assert {row.variant for row in shown.comparison.rows} == {variant}
    assert main([*argv, "--variant", "qe"]) == 2
    assert "adapter-lda, tta-flip, aqe, dba, k-reciprocal" in capsys.readouterr().err
