"""Shared fixtures: the real datasets beside the checkout, when present, and a Chromium page
for the browser tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser_support import CHROMIUM_ARGS, DESKTOP, STEP_TIMEOUT_MS, chromium_path

# Nothing in the suite may reach the network; fail fast instead of retrying the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("DERMSEARCH_SHARED", REPO.parent / "shared")) / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The folder of real datasets (../shared/datasets); skips when this is a fresh clone."""
    if not (SHARED_DATASETS / "infectious-8" / "manifest.csv").is_file():
        pytest.skip(
            f"real datasets not found at {SHARED_DATASETS} (a fresh clone has no ../shared)"
        )
    return SHARED_DATASETS


@pytest.fixture(scope="module")
def page_timeout_ms() -> int:
    """How long one browser step may wait, in ms; a module with slower steps (a first index
    build) defines its own ``page_timeout_ms`` fixture."""
    return STEP_TIMEOUT_MS


@pytest.fixture(scope="module")
def page(app, page_timeout_ms):
    """A desktop-sized headless Chromium tab for the module's ``app`` fixture."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport=DESKTOP)
            tab.set_default_timeout(page_timeout_ms)
            yield tab
        finally:
            browser.close()
