"""Debian's Chromium for the browser tests: where it is, how it is started, the two widths the
screenshots are taken at. The ``page`` fixture that uses them is in ``conftest.py``."""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 1000}
# Generous: a busy 2-core machine; nothing here asserts how long anything took.
STEP_TIMEOUT_MS = 120_000


def isolated_app_env(base: Path) -> dict[str, str]:
    """Environment for an app under test: its cache and gradio's files under ``base``, and no
    shared or configured libraries, so it offers only the test's own library."""
    return {
        "DERMSEARCH_CACHE": str(base / "cache"),
        "DERMSEARCH_SHARED": str(base / "no-shared"),
        "DERMSEARCH_LIBRARIES": "",
        "GRADIO_TEMP_DIR": str(base / "gradio"),
    }


def chromium_path() -> str | None:
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    return shutil.which("chromium")
