"""Compare tab handlers (no browser): ready rows come before indexes still being built, exports,
teaching mode, the disagreement explorer and bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from library_factory import make_folder_library, pattern_image
from PIL import Image

import demo.handlers_compare as hc
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
