"""Figures to files that read offline: HTML sharing one plotly.js per folder, and PNG / SVG.

HTML files load ``plotly.min.js`` from their own folder (plotly's "directory" mode), so a
folder of figures works without a network and carries the library once, not once per file.
Static images go through kaleido, which drives a Chromium: Debian's /usr/bin/chromium unless
BROWSER_PATH names another.
"""

from __future__ import annotations

import os
from pathlib import Path

import plotly.graph_objects as go

CHROMIUM = Path("/usr/bin/chromium")
STATIC_SIZE = {"width": 1100, "height": 650}


def write_html(figure: go.Figure, path: Path) -> Path:
    """An HTML figure that loads plotly.min.js from its folder (written there once)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.write_html(path, include_plotlyjs="directory", full_html=True)
    return path


def write_static(figure: go.Figure, stem: Path) -> list[Path]:
    """``stem``.png and ``stem``.svg; a RuntimeError saying why when no browser can draw them."""
    if "BROWSER_PATH" not in os.environ and CHROMIUM.is_file():
        os.environ["BROWSER_PATH"] = str(CHROMIUM)
    written = []
    for suffix in (".png", ".svg"):
        path = Path(stem).with_suffix(suffix)
        try:
            figure.write_image(path, scale=2 if suffix == ".png" else 1, **STATIC_SIZE)
        except Exception as err:  # kaleido or its browser missing: plotly raises several kinds
            raise RuntimeError(
                f"static figures need kaleido and a Chromium ({type(err).__name__}: {err})"
            ) from err
        written.append(path)
    return written
