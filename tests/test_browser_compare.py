"""Compare tab in a real headless Chromium: one library case on two backbones, both rows framed
correctly (caption marks and the frame colours Chromium drew), the shared cases marked, and the
overlap sentence agreeing with the rows; a clicked case opens large with its row's similarity
maps. Screenshots land in ``artifacts/`` (gitignored)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from browser_support import CHROMIUM_ARGS, chromium_path, isolated_app_env
from library_factory import PATTERNS, pattern_image, save_image
from PIL import Image

from benchmarks.perf.app_process import app_process
from data_index.compare_render import FRAME_RGB

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts"
PER_CLASS = 5
K = 7  # more than a class's other cases: each row must hold some of another class
BACKBONES = ("Colour + texture descriptor (classical)", "EfficientNet-Lite0 (ImageNet)")
CAPTION = re.compile(r"^#(\d+) (✓|✗) (\S+) · similarity -?[\d.]+( · shared)?$")
TIMEOUT_MS = 240_000


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    if chromium_path() is None:
        pytest.skip("no Chromium at /usr/bin/chromium or on PATH (apt-get install chromium)")
    base = tmp_path_factory.mktemp("browser-compare")
    library = base / "compare-lib"
    for label in PATTERNS:
        for i in range(PER_CLASS):
            save_image(pattern_image(label, i, size=64), library / label / f"{label}-{i}.jpg")
    with app_process(
        library=library,
        backbone=None,
        log=base / "app.log",
        env=isolated_app_env(base),
        start_timeout_s=180,
    ) as (url, _):
        yield url


def left_frame_colour(img) -> tuple[int, int, int]:
    """The median colour down the left frame edge of a tile as Chromium drew it."""
    img.scroll_into_view_if_needed()
    shot = Image.open(io.BytesIO(img.screenshot())).convert("RGB")
    x = max(1, int(shot.width * 0.012))
    samples = [shot.getpixel((x, int(shot.height * f))) for f in (0.3, 0.4, 0.5, 0.6)]
    return tuple(sorted(channel)[len(channel) // 2] for channel in zip(*samples, strict=True))


def nearest(rgb) -> str:
    def dist(verdict: str) -> int:
        return sum((a - b) ** 2 for a, b in zip(rgb, FRAME_RGB[verdict], strict=True))

    return min(FRAME_RGB, key=dist)


def test_compare_two_backbones_on_a_library_case(app):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(app, wait_until="domcontentloaded")
            page.get_by_role("tab", name="Compare").click()
            boxes = page.locator("#cmp-backbones")
            for label in boxes.locator("label").all():
                name = label.inner_text().strip()
                box = label.locator("input")
                if (name in BACKBONES) != box.is_checked():
                    box.click()
            assert sorted(boxes.locator("label:has(input:checked)").all_inner_texts()) == sorted(
                BACKBONES
            )
            number = page.locator("#cmp-k input[type=number]")
            number.fill(str(K))
            number.press("Enter")
            page.locator("#cmp-query-tabs").get_by_role("tab", name="Library case").click()
            examples = page.locator("#cmp-examples .thumbnail-item")
            examples.nth(3).wait_for()
            examples.nth(2).click()  # two per class, classes sorted: the second class's first
            query_label = sorted(PATTERNS)[1]
            page.locator("#cmp-picked").get_by_text(query_label).wait_for()
            page.locator("#cmp-run").click()
            page.wait_for_function(
                """k => document.querySelectorAll('#cmp-row-0 .cmp-hit').length === k
                    && document.querySelectorAll('#cmp-row-1 .cmp-hit').length === k
                    && (document.querySelector('#cmp-overlap')?.textContent ?? '')
                        .includes('share')""",
                arg=K,
            )
            shared_counts = []
            for slot in ("#cmp-row-0", "#cmp-row-1"):
                figures = page.locator(f"{slot} .cmp-hit")
                marks = []
                for i in range(K):
                    figure = figures.nth(i)
                    found = CAPTION.match(figure.locator("figcaption").inner_text())
                    assert found, figure.locator("figcaption").inner_text()
                    rank, mark, label, shared = found.groups()
                    assert int(rank) == i + 1
                    expected = "match" if label == query_label else "mismatch"
                    assert mark == ("✓" if expected == "match" else "✗")
                    assert figure.get_attribute("data-shared") == ("1" if shared else "0")
                    colour = left_frame_colour(figure.locator("img"))
                    assert nearest(colour) == expected, (slot, i, colour)
                    marks.append(expected)
                assert "match" in marks and "mismatch" in marks, marks
                shared_counts.append(page.locator(f"{slot} .cmp-hit[data-shared='1']").count())
            # Each case shared by one row is in the other: both rows mark the same number.
            assert shared_counts[0] == shared_counts[1] > 0
            overlap = page.locator("#cmp-overlap").inner_text()
            assert f"share {shared_counts[0]} of their {K} cases" in overlap, overlap
            assert "votes agree" in overlap  # both put the query's own class first
            assert query_label in page.locator("#cmp-query").inner_text()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "browser-compare.png"), full_page=True)

            # One click on a case in a row opens it large beside the query, with that row's
            # backbone's similarity maps; colour + texture says it has none.
            closer = page.locator("#cmp-closer")
            page.locator(".cmp-row[data-backbone='efficientnet-lite0'] .cmp-hit").nth(1).click()
            closer.locator("#explain-legend").get_by_text("most alike").wait_for()
            assert closer.locator("img").count() == 2
            title = closer.locator("figcaption").nth(1).inner_text()
            assert title.startswith("EfficientNet-Lite0 (ImageNet), case #2: "), title
            page.screenshot(path=str(ARTIFACTS / "browser-compare-closer.png"), full_page=True)
            page.locator(".cmp-row[data-backbone='color-texture'] .cmp-hit").nth(0).click()
            closer.get_by_text("no per-location map").wait_for()
            assert closer.locator("#explain-legend").count() == 0
            assert "case #1" in closer.locator("figcaption").nth(1).inner_text()
            page.locator("#cmp-closer-toggle").get_by_text("Photos only").click()
            page.wait_for_function(
                """() => !document.querySelector('#cmp-closer')
                    .textContent.includes('no per-location map')"""
            )
            assert closer.locator("img").count() == 2
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "browser-compare-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
