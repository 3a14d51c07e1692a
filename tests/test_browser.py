"""End to end in a real headless Chromium: the app runs as its own process on a generated
library; the test searches by photo (grey, then framed frames), opens a result's similarity
maps, switches backbone, and runs a small benchmark. Screenshots land in ``artifacts/``
(gitignored) for a person to look at."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import CHROMIUM, DESKTOP, PHONE, chromium_path, isolated_app_env
from library_factory import PATTERNS, pattern_image, save_image
from PIL import Image

from benchmarks.perf.app_process import app_process
from demo.render import MATCH_RGB, MISMATCH_RGB, UNKNOWN_RGB
from models import get_spec

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts"
LIBRARY_NAME = "browser-lib"
PER_CLASS = 6
IMAGE_PX = 64
QUERY_LABEL = "green-dots"
QUERY_SEED = 115  # not a library seed (0..PER_CLASS-1): a new photo of the class, and one as
# close to its class as most library photos are to theirs (many new seeds are not, and get the
# "no close match" warning: these generated classes are very tight)
K_FIRST = 10  # the slider's default: the upload searches at once with it
K = 8  # more than PER_CLASS, so at least two results must be of another class
SECOND_BACKBONE = "efficientnet-lite0"
# Generous: a busy 2-core machine; nothing here asserts how long anything took.
START_TIMEOUT_S = 180  # each step waits conftest's page_timeout_ms
BENCH_TIMEOUT_MS = 300_000
CAPTION = re.compile(
    r"^#(\d+) (?:(✓|✗) (?:same|different) · )?(\S+) · (?:similarity|distance) -?[\d.]+ · (\S+)$"
)
MARK = {"✓": "match", "✗": "mismatch", None: "unknown"}
LIBRARY_PHOTO = "green-dots/green-dots-2.jpg"
FRAME_RGB = {"match": MATCH_RGB, "mismatch": MISMATCH_RGB, "unknown": UNKNOWN_RGB}


def write_library(root: Path) -> dict[str, str]:
    """4 classes x PER_CLASS coloured patterns; returns case id (relpath) -> true label."""
    truth = {}
    for label in PATTERNS:
        for i in range(PER_CLASS):
            rel = f"{label}/{label}-{i}.jpg"
            save_image(pattern_image(label, i, size=IMAGE_PX), root / rel)
            truth[rel] = label
    return truth


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[dict]:
    """app.py as a subprocess on a free port, with its cache and gradio's files in tmp."""
    if chromium_path() is None:
        pytest.skip(f"no Chromium at {CHROMIUM} or on PATH (apt-get install chromium)")
    base = tmp_path_factory.mktemp("browser")
    library = base / LIBRARY_NAME
    truth = write_library(library)
    log = base / "app.log"
    with app_process(
        library=library,
        backbone="color-texture",
        log=log,
        env=isolated_app_env(base),
        start_timeout_s=START_TIMEOUT_S,
    ) as (url, _):
        yield {"url": url, "truth": truth, "base": base, "log": log, "library": library}


# --- reading the results gallery ---------------------------------------------------------------
def captions(page) -> list[str]:
    return page.locator("#results .thumbnail-item .caption-label").all_inner_texts()


def wait_for_results(page, *, count: int, marks: str, summary: str | None = None) -> list[str]:
    """Wait until the gallery holds ``count`` tiles whose captions all carry one of ``marks``
    (and the summary contains ``summary``); returns the captions."""
    page.wait_for_function(
        """([count, marks, summary]) => {
            const caps = [...document.querySelectorAll('#results .thumbnail-item .caption-label')]
                .map(e => e.textContent.trim());
            const text = document.querySelector('#summary')?.textContent ?? '';
            const mark = c => c.includes('✓') ? '✓' : (c.includes('✗') ? '✗' : '·');
            return caps.length === count && caps.every(c => marks.includes(mark(c)))
                && (!summary || text.includes(summary));
        }""",
        arg=[count, marks, summary],
    )
    # Thumbnails load lazily: scroll them in and wait until every one has pixels.
    page.locator("#results").scroll_into_view_if_needed()
    page.wait_for_function(
        """() => [...document.querySelectorAll('#results .thumbnail-item img')]
            .every(i => i.complete && i.naturalWidth > 0)"""
    )
    return captions(page)


def check_captions(caps: list[str], *, truth: dict[str, str], query_label: str | None) -> list:
    """Each caption's rank, label and mark agree with the fixture; returns the verdicts."""
    verdicts = []
    for rank, caption in enumerate(caps, start=1):
        found = CAPTION.match(caption)
        assert found, f"caption {caption!r} is not '#rank [mark word ·] label · score · case'"
        shown_rank, mark, label, case_id = found.groups()
        assert int(shown_rank) == rank
        assert case_id in truth, f"result {case_id} is not a case of the fixture library"
        assert label == truth[case_id], f"{case_id} is shown as {label}, not {truth[case_id]}"
        expected = (
            "unknown"
            if query_label is None
            else ("match" if truth[case_id] == query_label else "mismatch")
        )
        assert MARK[mark] == expected, f"{caption!r}: expected a {expected} mark"
        verdicts.append(expected)
    return verdicts


def frame_colour(page, index: int) -> tuple[int, int, int]:
    """The median colour of the left frame edge of result ``index`` as Chromium drew it."""
    img = page.locator("#results .thumbnail-item img").nth(index)
    img.scroll_into_view_if_needed()
    box = img.evaluate(
        """i => { const r = i.getBoundingClientRect();
            const s = Math.min(r.width / i.naturalWidth, r.height / i.naturalHeight);
            return {w: r.width, h: r.height, cw: i.naturalWidth * s, ch: i.naturalHeight * s}; }"""
    )
    shot = Image.open(io.BytesIO(img.screenshot())).convert("RGB")
    scale = shot.width / box["w"]  # device pixels per CSS pixel
    # object-fit: contain centres the picture; sample inside the frame's left band.
    left = (box["w"] - box["cw"]) / 2 * scale
    top = (box["h"] - box["ch"]) / 2 * scale
    width, height = box["cw"] * scale, box["ch"] * scale
    x = int(left + width * 0.012) + 1
    samples = [shot.getpixel((x, int(top + height * f))) for f in (0.3, 0.4, 0.5, 0.6, 0.7)]
    return tuple(sorted(channel)[len(channel) // 2] for channel in zip(*samples, strict=True))


def nearest_verdict(rgb: tuple[int, int, int]) -> tuple[str, float]:
    def dist(a, b):
        return sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5

    best = min(FRAME_RGB, key=lambda v: dist(rgb, FRAME_RGB[v]))
    return best, dist(rgb, FRAME_RGB[best])


def close_toasts(page) -> None:
    """Dismiss notices (gr.Info, gr.Warning): they float over the gallery's right side."""
    for _ in range(20):
        close = page.locator(".toast-close:visible")
        if close.count() == 0:
            return
        close.first.click()
        page.wait_for_timeout(300)


def check_frames(page, verdicts: list[str]) -> None:
    close_toasts(page)
    for index, expected in enumerate(verdicts):
        rgb = frame_colour(page, index)
        seen, distance = nearest_verdict(rgb)
        assert seen == expected and distance < 60, (
            f"result {index + 1}: frame colour {rgb} looks {seen} (off by {distance:.0f}), "
            f"expected {expected} {FRAME_RGB[expected]}"
        )


def pick_option(page, box: str, name: str | re.Pattern) -> None:
    page.locator(f"#{box} input").click()
    page.get_by_role("option", name=name, exact=isinstance(name, str)).click()


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


# --- the scenario ------------------------------------------------------------------------------
def test_search_switch_backbone_and_benchmark(app, page, tmp_path):
    truth = app["truth"]
    query = save_image(
        pattern_image(QUERY_LABEL, QUERY_SEED, size=IMAGE_PX), tmp_path / "query.png"
    )
    try:
        page.goto(app["url"], wait_until="domcontentloaded")
        page.locator("#query-image input[type=file]").wait_for(state="attached")
        page.wait_for_function(  # the app opens on the library it was started with
            "name => document.querySelector('#library-path input')?.value.includes(name)",
            arg=LIBRARY_NAME,
        )

        # 1. A photo that is already in the library: it is found, said so on the page, and
        #    neither it nor its copies come back.
        page.locator("#query-image input[type=file]").set_input_files(
            str(app["library"] / LIBRARY_PHOTO)
        )
        caps = wait_for_results(
            page,
            count=K_FIRST,
            marks="·",
            summary=f"This photo is in the library as {LIBRARY_PHOTO}",
        )
        check_captions(caps, truth=truth, query_label=None)
        assert not any(c.endswith(LIBRARY_PHOTO) for c in caps), caps
        assert "it and its copies are left out" in page.locator("#summary").inner_text()

        # 2. A photo unlike anything in the library: "no close match", and no suggestion.
        noise = Image.effect_noise((IMAGE_PX, IMAGE_PX), 60).convert("RGB")
        page.locator("#query-image input[type=file]").set_input_files(
            str(save_image(noise, tmp_path / "unlike.png"))
        )
        wait_for_results(page, count=K_FIRST, marks="·", summary="No close match")
        summary = page.locator("#summary").inner_text()
        assert "Likely diagnoses" not in summary and "For reference only" in summary
        shoot(page, "browser-no-close-match.png")

        # 3. A new photo of a class: the app searches at once; no diagnosis stated yet, so every
        #    frame is grey, and the likely diagnoses come with their coverage.
        page.locator("#query-image input[type=file]").set_input_files(str(query))
        caps = wait_for_results(
            page,
            count=K_FIRST,
            marks="·",
            summary=f"Likely diagnoses (90% coverage on this library): {QUERY_LABEL}",
        )
        check_captions(caps, truth=truth, query_label=None)
        assert page.locator("#query-preview img").count() == 1

        # 4. State the diagnosis: the same photo is searched again, now framed.
        pick_option(page, "query-label", QUERY_LABEL)
        caps = wait_for_results(page, count=K_FIRST, marks="✓✗")
        check_captions(caps, truth=truth, query_label=QUERY_LABEL)

        # 5. Set k and press Search.
        number = page.locator("#k input[type=number]")
        number.fill(str(K))
        number.press("Enter")
        page.locator("#search-btn").click()
        caps = wait_for_results(page, count=K, marks="✓✗", summary="first at rank 1")
        verdicts = check_captions(caps, truth=truth, query_label=QUERY_LABEL)
        assert "match" in verdicts and "mismatch" in verdicts, caps
        # Colour-texture sorts these patterns cleanly: the class's own cases come first.
        assert verdicts[:PER_CLASS] == ["match"] * PER_CLASS, caps
        summary = page.locator("#summary").inner_text()
        assert f"{get_spec('color-texture').name} over 24 cases" in summary
        assert "cos " not in summary and "Hit at" not in summary
        check_frames(page, verdicts)
        shoot(page, "browser-search.png")
        # The enlarged view: colour-texture has no per-location features, and says so.
        page.locator("#results .thumbnail-item").first.click()
        page.locator("#explain-pair").get_by_text("no per-location map").wait_for()

        # 6. Phone width: every result is on screen (no hidden horizontal scroll).
        page.set_viewport_size(PHONE)
        page.locator("#results").scroll_into_view_if_needed()
        boxes = page.locator("#results .thumbnail-item").evaluate_all(
            "items => items.map(i => i.getBoundingClientRect()).map(r => [r.left, r.right])"
        )
        assert len(boxes) == K and all(
            left >= 0 and right <= PHONE["width"] for left, right in boxes
        ), boxes
        # ... and none hides behind an inner scroll of the gallery, below or to the side.
        wrap = page.locator("#results .grid-wrap").evaluate(
            "w => [w.scrollHeight, w.clientHeight, w.scrollWidth, w.clientWidth]"
        )
        assert wrap[0] <= wrap[1] + 1 and wrap[2] <= wrap[3] + 1, wrap
        shoot(page, "browser-search-phone.png")
        page.set_viewport_size(DESKTOP)

        # 7. Another backbone: the old results go at once (nothing stale), then a search builds
        #    its index of the library and shows its own results.
        page.locator("#results .thumbnail-item").first.click()
        page.locator("#search-with-case:not([disabled])").wait_for()
        pick_option(page, "backbone", re.compile(rf"\({re.escape(SECOND_BACKBONE)}\)"))
        page.get_by_text("Settings changed").wait_for()
        assert captions(page) == []
        assert page.locator("#search-with-case").is_disabled()
        page.locator("#search-btn").click()
        caps = wait_for_results(
            page,
            count=K,
            marks="✓✗",
            summary=f"{get_spec(SECOND_BACKBONE).name} over {len(truth)} cases",
        )
        verdicts = check_captions(caps, truth=truth, query_label=QUERY_LABEL)
        check_frames(page, verdicts)
        shoot(page, "browser-search-second-backbone.png")
        # Its enlarged view: query and case side by side with their maps, then photos only.
        page.locator("#results .thumbnail-item").nth(1).click()
        legend = page.locator("#explain-legend")
        legend.wait_for()
        assert "similarity maps" in legend.inner_text() and "most alike" in legend.inner_text()
        assert page.locator("#explain-pair figure img").count() == 2
        page.locator("#explain-pair").scroll_into_view_if_needed()
        shoot(page, "browser-similarity-maps.png")
        page.locator("#explain-toggle").get_by_text("Photos only").click()
        legend.wait_for(state="detached")
        assert page.locator("#explain-pair figure img").count() == 2

        # 8. Benchmark tab: color-texture, leave-one-out, on the fixture library.
        page.get_by_role("tab", name="Benchmark").click()
        ticked = page.locator("#bench-backbones input[type=checkbox]:checked")
        assert ticked.count() == 1
        page.locator("#bench-run").click()
        page.locator("#bench-status").get_by_text("Done:").wait_for(timeout=BENCH_TIMEOUT_MS)
        status = page.locator("#bench-status").inner_text()
        assert "records saved" in status, status
        table = page.locator("#bench-table").inner_text()
        assert LIBRARY_NAME in table and "color-texture" in table, table
        plot = page.locator("#bench-plot .js-plotly-plot")
        plot.wait_for(state="visible")
        assert page.locator("#bench-plot svg").count() > 0
        page.locator("#bench-plot").scroll_into_view_if_needed()
        shoot(page, "browser-benchmark.png")
    except Exception:
        shoot(page, "browser-failure.png")
        raise
