"""The Search tab's retrieval variant picker in a real headless Chromium: off by default, what
the command line measured on this library shown on the page, a search with a variant named in
the summary and the JSON, its fitted files beside the index, the picker reset by another
backbone. Screenshots land in ``artifacts/`` (gitignored)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import test_browser
from browser_support import DESKTOP, PHONE
from test_browser import shoot, wait_for_results

pytestmark = [pytest.mark.browser, pytest.mark.slow]
# The app on the browser test's fixture library (module-scoped); conftest gives the page.
app = test_browser.app
DBA = "Blend each library photo with its neighbours"


def measure_variants(running: dict) -> None:
    """`python -m benchmarks run --variants` on the app's library, into the command line's
    default run folder under the app's cache, as a user would."""
    env = {**os.environ, "DERMSEARCH_CACHE": str(running["base"] / "cache"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "run", "--library", str(running["library"]),
         "--backbones", "color-texture", "--variants", "dba,aqe", "--timing-repeats", "2"],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def test_variant_picker_is_off_by_default_and_a_search_with_one_says_so(app, page):
    measure_variants(app)
    page.set_viewport_size(DESKTOP)
    page.goto(app["url"], wait_until="domcontentloaded")
    page.locator("#variant").wait_for()
    assert page.get_by_label("Plain search (default)").is_checked()
    page.get_by_text("Every variant offered here, and what was measured").click()
    page.wait_for_function(  # the page load reads the records the run just wrote
        "t => document.querySelector('#variant-all')?.textContent.includes(t)",
        arg="points for the nearest case",
    )
    every = page.locator("#variant-all").inner_text()
    assert "Measured" in every and "points for the nearest case" in every
    assert "Not measured on this library." in every  # adapter-lda and tta-flip were not run
    assert "cos" not in every.replace("cost", "").lower().split()

    page.get_by_label(DBA).check()
    page.wait_for_function(
        "t => document.querySelector('#variant-info')?.textContent.includes(t)", arg=DBA
    )
    photo = app["library"] / "green-dots" / "green-dots-2.jpg"
    page.locator("#query-image input[type=file]").set_input_files(str(photo))
    wait_for_results(page, count=10, marks="·", summary=f"Ranked with a retrieval variant: {DBA}")
    summary = page.locator("#summary").inner_text()
    assert "Likely diagnoses" not in summary
    page.get_by_text("This search as data").click()
    page.wait_for_function(
        "() => document.querySelector('#search-json')?.textContent.includes('dba')"
    )
    report = page.locator("#search-json").inner_text()
    assert '"dba"' in report or "dba" in json.dumps(report)
    fitted = list((app["base"] / "cache" / "indexes").glob("*--variants/dba/*/index.usearch"))
    assert len(fitted) == 1
    shoot(page, "browser-variant-search-1440.png")
    page.set_viewport_size(PHONE)
    boxes = page.locator("#variant label").evaluate_all(
        "els => els.map(e => [e.getBoundingClientRect().left, e.getBoundingClientRect().right])"
    )
    assert all(left >= 0 and right <= PHONE["width"] for left, right in boxes), boxes
    shoot(page, "browser-variant-search-390.png")
    page.set_viewport_size(DESKTOP)

    # Another backbone: its own variants, and the plain search again.
    page.locator("#backbone input").click()
    page.get_by_role("option", name="EfficientNet-Lite0", exact=False).first.click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('#variant input')]
            .find(i => i.checked)?.closest('label')?.textContent.includes('Plain search')"""
    )
