"""A first search on a backbone, in a real headless Chromium: the app builds the library's index
with one progress bar (count and time left) and says it is built once; Cancel stops it and the
page says so; the next search resumes and finishes. Labels show by the manifest's names, the
selected case comes at its real resolution, and a refused upload's message sits beside its
button. Screenshots at 1440 and 390 px land in ``artifacts/`` (gitignored)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser_support import DESKTOP, PHONE, chromium_path, isolated_app_env
from library_factory import PATTERNS, pattern_image, save_image

from benchmarks.perf.app_process import app_process
from models import get_spec

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("DERMSEARCH_SHOTS", REPO / "artifacts"))
BACKBONE = "efficientnet-lite0"
PER_CLASS = 100  # 400 images: a build long enough on a CPU to watch and to cancel
PHOTO_PX = 300  # larger than a result tile (256 px): the enlarged view must show all of it
NAMES = {
    "red-stripes": "Melanoma",
    "blue-checks": "Melanocytic naevus",
    "green-dots": "Dermatofibroma",
    "brown-plain": "Benign keratosis",
}
TIMEOUT_MS = 300_000


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    if chromium_path() is None:
        pytest.skip("no Chromium at /usr/bin/chromium or on PATH (apt-get install chromium)")
    base = tmp_path_factory.mktemp("browser-build")
    library = base / "named-lib"
    rows = ["path,label,label_name"]
    for label in PATTERNS:
        for i in range(PER_CLASS):
            rel = f"{label}/{label}-{i}.jpg"
            save_image(pattern_image(label, i, size=PHOTO_PX), library / rel)
            # One row names its class otherwise: the Library tab must warn about it.
            name = "Naevus" if (label, i) == ("blue-checks", 1) else NAMES[label]
            rows.append(f"{rel},{label},{name}")
    (library / "manifest.csv").write_text("\n".join(rows) + "\n")
    if not get_spec(BACKBONE):
        pytest.skip(f"{BACKBONE} is not registered")
    with app_process(
        library=library,
        backbone=BACKBONE,
        log=base / "app.log",
        env=isolated_app_env(base),
        start_timeout_s=180,
    ) as (url, _):
        yield {"url": url, "library": library, "base": base}


@pytest.fixture(scope="module")
def page_timeout_ms() -> int:
    """conftest's ``page`` waits this long per step here: a first build of 400 images."""
    return TIMEOUT_MS


def shoot_both(page, name: str, *, locator: str | None = None) -> None:
    """``name-1440.png`` and ``name-390.png``; the viewport goes back to desktop after."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for size, suffix in ((DESKTOP, "1440"), (PHONE, "390")):
        page.set_viewport_size(size)
        if locator:
            page.locator(locator).scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"{name}-{suffix}.png"))
    page.set_viewport_size(DESKTOP)


def progress_text(page) -> str:
    return page.locator("#summary").inner_text()


def test_first_build_progress_cancel_resume_names_full_size_and_library_message(
    app, page, tmp_path
):
    name = get_spec(BACKBONE).name
    query = save_image(pattern_image("red-stripes", 555, size=PHOTO_PX), tmp_path / "query.png")
    try:
        page.goto(app["url"], wait_until="domcontentloaded")
        note = page.locator("#index-build-note")
        note.get_by_text("builds this library's index once").wait_for()
        assert f"{4 * PER_CLASS} images to embed" in note.inner_text()
        assert page.locator("#search-cancel").is_visible()

        # 1. An upload starts the first search: one progress line, with a count and time left.
        page.locator("#query-image input[type=file]").set_input_files(str(query))
        page.wait_for_function(
            """() => /[1-9]\\d* \\/ \\d+ images, (about|estimating)/.test(
                document.querySelector('#summary')?.innerText ?? '')"""
        )
        text = progress_text(page)
        assert f"Building this library's index once for {name}" in text, text
        assert "Later searches reuse it" in note.inner_text()
        # Only the summary carries it: the gallery, the photo box and the details show no copy.
        for other in ("#results", "#query-preview", "#query-image", "#detail-meta"):
            assert "Building this library" not in page.locator(other).inner_text(), other
        shoot_both(page, "build-progress", locator="#summary")

        # 2. Cancel: the build stops, and the page says so.
        page.locator("#search-cancel").click()
        note.get_by_text("Stopping the index build").wait_for()
        page.locator("#summary").get_by_text("Index build cancelled").wait_for()
        note.get_by_text("builds this library's index once").wait_for()
        assert "Nothing was saved as an index" in progress_text(page)
        assert page.locator("#search-cancel").is_visible()  # the index is still to be built
        shoot_both(page, "build-cancelled", locator="#summary")

        # 3. Search again: the build resumes (the session kept the photo) and ends
        #    with results labelled by the manifest's names; the note and Cancel go.
        page.locator("#search-btn").click()
        page.wait_for_function(
            """() => document.querySelectorAll('#results .thumbnail-item').length === 10""",
            timeout=TIMEOUT_MS,
        )
        note.wait_for(state="hidden")
        assert not page.locator("#search-cancel").is_visible()
        caps = page.locator("#results .thumbnail-item .caption-label").all_inner_texts()
        assert any("Melanoma (red-stripes)" in c for c in caps), caps
        assert all(any(f"{n} ({label})" in c for label, n in NAMES.items()) for c in caps), caps
        summary = page.locator("#summary").inner_text()
        assert "Melanoma (red-stripes)" in summary, summary
        shoot_both(page, "label-names", locator="#summary")
        page.locator("#query-label input").click()
        options = page.get_by_role("option").all_inner_texts()
        assert sorted(options) == sorted(f"{n} ({label})" for label, n in NAMES.items()), options
        shoot_both(page, "label-names-picker", locator="#query-label")
        page.keyboard.press("Escape")

        # 4. The selected case at its real resolution, not a tile.
        index = 0
        page.locator("#results .thumbnail-item").nth(index).click()
        page.locator("#detail-meta").get_by_text("Shown at its full resolution").wait_for()
        meta = page.locator("#detail-meta").inner_text()
        img = page.locator("#detail-image img")
        img.wait_for()
        page.wait_for_function(
            "() => document.querySelector('#detail-image img')?.naturalWidth > 0"
        )
        natural = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
        assert f"{natural[0]} × {natural[1]} px" in meta, (natural, meta)
        # The file's own pixels, not a 256 px tile.
        assert natural == [PHOTO_PX, PHOTO_PX], natural
        # The photo is drawn at most at its own size (object-fit: scale-down): never blown up.
        scale = img.evaluate(
            """i => { const r = i.getBoundingClientRect();
                const fit = Math.min(r.width / i.naturalWidth, r.height / i.naturalHeight);
                return getComputedStyle(i).objectFit === 'scale-down' ? Math.min(1, fit) : fit; }"""
        )
        assert scale == 1, scale
        shoot_both(page, "enlarged-view", locator="#detail-image")

        # 5. Library tab: the manifest's conflicting names are warned about, and a refused
        #    upload's sentence sits beside its button, at the top of the tab.
        page.get_by_role("tab", name="Library", exact=True).click()
        summary = page.locator("#library-summary")
        summary.get_by_text("blue-checks has 2 different names").wait_for()
        bad = tmp_path / "notes.csv"
        bad.write_text("this,is\nnot,a manifest\n")
        page.locator("#library-upload input[type=file]").set_input_files(str(bad))
        page.locator("#library-upload-btn").click()
        message = page.locator("#library-upload-message")
        message.get_by_text("Nothing was added.").wait_for()
        assert "notes.csv lacks the column" in message.inner_text()  # as sent, not as kept
        assert page.locator(".toast-body").count() == 0  # no toast on top of it
        assert str(tmp_path) not in message.inner_text()
        button = page.locator("#library-upload-btn").bounding_box()
        box = message.bounding_box()
        assert 0 <= box["y"] - (button["y"] + button["height"]) < 80, (button, box)
        assert box["y"] < page.locator("#library-summary").bounding_box()["y"]
        page.evaluate("window.scrollTo(0, 0)")
        shoot_both(page, "library-message", locator="#library-upload-message")
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "build-failure.png"), full_page=True)
        raise
