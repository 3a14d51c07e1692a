"""'Why this match': the query and the clicked case side by side, as photos or with their
similarity maps, under the enlarged result of the Search tab."""

from __future__ import annotations

import base64
import html
import io
import time
from dataclasses import dataclass

import gradio as gr
import numpy as np
from PIL import Image

from data_index.explain import heat_colours, overlay, similarity_maps
from demo.errors import guarded
from demo.events_search import expand_photo
from demo.state import AppState
from models import NoSpatialMap, open_image

SHOW_MAPS, SHOW_PHOTOS = "maps", "photos"
VIEW_PX = 448  # both photos are drawn (and mapped) at most this large
MEANING = (
    "For each part of one photo: how much it looks like its best-matching "
    "part of the other, in the eyes of {backbone}, the backbone that found this case. What the "
    "whole photo has everywhere (plain skin, the lighting) is discounted first, so bright "
    "parts are what the two photos specifically share. It shows where the likeness sits, not "
    "how the ranking score adds up, and it is not a reason for a diagnosis."
)


@dataclass
class ExplainView:
    toggle: gr.Radio
    pair: gr.HTML


def build_explain_view() -> ExplainView:
    """The toggle and the side-by-side pair; place it under the enlarged result."""
    toggle = gr.Radio(
        choices=[("Similarity maps", SHOW_MAPS), ("Photos only", SHOW_PHOTOS)],
        value=SHOW_MAPS,
        label="Why this match: query and case side by side",
        elem_id="explain-toggle",
    )
    pair = gr.HTML(_note("Click a result to compare it with the query."), elem_id="explain-pair")
    return ExplainView(toggle=toggle, pair=pair)


def wire_explain_view(view: ExplainView, state: AppState, *, shown, inputs: dict) -> None:
    """Redraw after a result is shown (``shown``: that event) and when the toggle flips."""
    handler = guarded(ExplainHandlers(state).draw)
    kwargs = {**inputs, "show": view.toggle}
    shown.then(handler, inputs_kwargs=kwargs, outputs=[view.pair], api_name=False)
    view.toggle.change(handler, inputs_kwargs=kwargs, outputs=[view.pair], api_name=False)


@dataclass(frozen=True)
class ExplainHandlers:
    state: AppState

    def draw(
        self,
        library_path: str | None,
        backbone_key: str,
        mode: str,
        photo: Image.Image | None,
        case_relpath: str | None,
        hits: list[dict],
        selected: str | None,
        show: str,
    ) -> str:
        """The pair as HTML: photos, or photos with their maps, legend and meaning."""
        hit = next((h for h in hits or [] if h["relpath"] == selected), None)
        if hit is None or not library_path:
            return _note("Click a result to compare it with the query.")
        if mode == "text":
            return _note("A text query has no photo to compare the case with.")
        query = self._query_photo(library_path, mode, photo, case_relpath)
        case = open_image(hit["path"])
        titles = ("Query", f"Case #{hit['rank']}: {hit['label']}")
        return draw_pair(self.state, backbone_key, query=query, case=case, titles=titles, show=show)

    def _query_photo(
        self, library_path: str, mode: str, photo: Image.Image | None, case_relpath: str | None
    ) -> Image.Image:
        if mode == "photo" and photo is not None:
            # The session keeps the query as JPEG bytes (small state per visitor).
            return open_image(expand_photo(photo))
        if mode == "case" and case_relpath:
            cases = self.state.library(library_path).cases
            rows = cases[cases["relpath"] == case_relpath]
            if len(rows):
                return open_image(rows.iloc[0]["path"])
        raise ValueError("The query photo is gone: search again, then click the result.")


def draw_pair(
    state: AppState,
    backbone_key: str,
    *,
    query: Image.Image,
    case: Image.Image,
    titles: tuple[str, str],
    show: str,
) -> str:
    """Query and case side by side as HTML: photos only, or with ``backbone_key``'s similarity
    maps, their legend and what they mean; a sentence instead of a map that would mislead."""
    query, case = _shrunk(query), _shrunk(case)
    if show != SHOW_MAPS:
        return _pair_html([query, case], titles, legend="")
    backbone = state.backbone(backbone_key)
    if backbone.random_weights:
        return _pair_html(
            [query, case],
            titles,
            legend=_note(
                "No map: this backbone runs with random weights (architecture only), so a "
                "map from it would explain nothing."
            ),
        )
    started = time.perf_counter()
    try:
        maps = similarity_maps(backbone, query=query, match=case)
    except NoSpatialMap as err:
        return _pair_html([query, case], titles, legend=_note(f"No map: {err}"))
    seconds = time.perf_counter() - started
    images = [overlay(query, maps.query.heat), overlay(case, maps.match.heat)]
    return _pair_html(images, titles, legend=_legend(backbone.spec.name, seconds))


def _shrunk(image: Image.Image) -> Image.Image:
    image = image.copy()
    image.thumbnail((VIEW_PX, VIEW_PX), Image.Resampling.LANCZOS)
    return image


def _data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _pair_html(images: list[Image.Image], titles: tuple[str, str], *, legend: str) -> str:
    figures = "".join(
        f"<figure class='ds-explain-fig'><img alt='{html.escape(t)}' src='{_data_url(im)}'/>"
        f"<figcaption>{html.escape(t)}</figcaption></figure>"
        for im, t in zip(images, titles, strict=True)
    )
    style = (
        "<style>.ds-explain-row{display:flex;flex-wrap:wrap;gap:12px}"
        ".ds-explain-fig{margin:0;flex:1 1 160px;max-width:320px}"
        ".ds-explain-fig img{width:100%;height:auto;border-radius:6px}"
        ".ds-explain-fig figcaption{font-size:.9em;margin-top:2px}"
        ".ds-legend-bar{height:12px;border-radius:3px;max-width:320px}"
        ".ds-legend-ends{display:flex;justify-content:space-between;max-width:320px;"
        "font-size:.85em}</style>"
    )
    return f"{style}<div class='ds-explain-row'>{figures}</div>{legend}"


def _legend(backbone_name: str, seconds: float) -> str:
    stops = heat_colours(np.linspace(0.0, 1.0, 9)[None, :])[0]
    gradient = ", ".join(f"rgb({r},{g},{b})" for r, g, b in stops)
    meaning = MEANING.format(backbone=f"<b>{html.escape(backbone_name)}</b>")
    return (
        f"<div id='explain-legend'><div class='ds-legend-bar' "
        f"style='background:linear-gradient(to right, {gradient})'></div>"
        "<div class='ds-legend-ends'><span>least alike</span><span>most alike</span></div>"
        f"<p class='ds-muted'><b>Shown: similarity maps.</b> {meaning} Each map is scaled to "
        f"its own range. Drawn in {seconds:.1f} s.</p></div>"
    )


def _note(text: str) -> str:
    return f"<p class='ds-muted'>{html.escape(text)}</p>"
