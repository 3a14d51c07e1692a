"""Search tab: components and their wiring. The event handlers it wires live in
events_search.py; the gradio-free work they call lives in handlers_search.py."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

import demo.handlers_search as hs
from demo.arguments import checked_by_handler
from demo.errors import guarded
from demo.events_search import (
    SearchHandlers,
    preview_html,
    results_out_of_date,
    show_result,
    text_box_update,
)
from demo.explain_view import build_explain_view, wire_explain_view
from demo.render import LEGEND
from demo.state import AppState


def tolerate_unreadable(image: gr.Image) -> gr.Image:
    """Let unreadable uploads (a text file sent through the API, a corrupt JPEG) reach the
    handler, which says what is wrong, instead of failing in gradio's own preprocessing with a
    generic error. Gradio has already checked that the file sits in its upload folder.

    Done on the instance: a ``gr.Image`` subclass would make gradio write a ``.pyi`` stub here.
    """
    original = image.preprocess

    def preprocess(payload):
        try:
            return original(payload)
        except Exception:
            path = getattr(payload, "path", None)
            return str(path) if path else None

    image.preprocess = preprocess
    return image


@dataclass
class SearchTab:
    backbone: gr.Dropdown
    stated_label: gr.Dropdown
    examples: gr.Gallery
    examples_state: gr.State
    prompt: gr.Textbox
    query_tabs: gr.Tabs


def build_search_tab(
    state: AppState, *, library: gr.Dropdown, backbone_key: str, photo_ttl_s: float = 1800
) -> SearchTab:
    """Lay out the Search tab and wire its events; ``library`` is the app-wide library box.
    The query photo is dropped from the session ``photo_ttl_s`` seconds after it was set."""
    runnable, not_here = hs.backbone_choices()
    keys = [value for _, value in runnable]
    start = backbone_key if backbone_key in keys else (keys[0] if keys else None)
    text_ok, text_hint = hs.text_box_state(start) if start else (False, "No backbone can run.")

    mode = gr.State("photo")
    photo = gr.State(None, time_to_live=photo_ttl_s)
    picked_case = gr.State(None)
    hits = gr.State([])
    selected = gr.State(None)
    examples_state = gr.State([])

    gr.Markdown(hs.DISCLAIMER, elem_id="disclaimer", elem_classes=["ds-disclaimer"])
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=300):
            backbone = gr.Dropdown(
                choices=runnable,
                value=start,
                label="Backbone (runnable here, grouped by family)",
                elem_id="backbone",
            )
            with gr.Accordion("Backbones that cannot run here, and why", open=False):
                gr.Markdown(not_here, elem_id="backbones-unavailable")
            with gr.Tabs(selected="photo") as query_tabs:
                with gr.Tab("Photo", id="photo") as tab_photo:
                    query_image = gr.Image(
                        type="filepath",
                        # The upload as sent: our one to_rgb decodes 16-bit, CMYK, palette,
                        # RGBA and EXIF orientation; gradio's own conversion would not.
                        image_mode=None,
                        sources=["upload", "webcam", "clipboard"],
                        label="Query photo: drop, paste or take one",
                        height=240,
                        elem_id="query-image",
                    )
                    tolerate_unreadable(query_image)
                    preview = gr.HTML(preview_html(None), elem_id="query-preview")
                    stated_label = gr.Dropdown(
                        choices=[],
                        value=None,
                        label="Diagnosis of this photo (optional)",
                        # Choices arrive with the library; API callers may name any label.
                        allow_custom_value=True,
                        info="If known, results are framed green (same) or red (different).",
                        elem_id="query-label",
                    )
                with gr.Tab("Library case", id="case") as tab_case:
                    examples = gr.Gallery(
                        label="Click a case to search with it (its diagnosis is known)",
                        columns=4,
                        height=300,
                        allow_preview=False,
                        object_fit="cover",
                        buttons=[],
                        elem_id="examples",
                    )
                    picked_md = gr.Markdown("No case picked.", elem_id="picked-case")
                with gr.Tab("Text", id="text") as tab_text:
                    prompt = gr.Textbox(
                        label="Text prompt",
                        placeholder="e.g. ringworm on the forearm, or a class name",
                        info=text_hint,
                        interactive=text_ok,
                        max_lines=3,
                        elem_id="query-text",
                    )
            k = gr.Slider(1, hs.MAX_K, value=10, step=1, label="k (cases to show)", elem_id="k")
            checked_by_handler(k)  # API callers sending k as text get parse_k's sentence
            metric = gr.Radio(
                choices=[
                    ("cosine similarity", "cosine"),
                    (
                        "Euclidean on raw vectors (Pham et al.'s (2025) teaching comparison)",
                        "euclidean",
                    ),
                ],
                value="cosine",
                label="Similarity",
                elem_id="similarity",
            )
            coverage = gr.Radio(
                choices=[("80 %", 0.8), ("90 %", 0.9), ("95 %", 0.95)],
                value=0.9,
                label="Coverage of the likely diagnoses",
                info="How often the list should hold the right diagnosis, as measured on this "
                "library's own photos. Higher coverage gives longer lists.",
                elem_id="coverage",
            )
            search_btn = gr.Button("Search", variant="primary", elem_id="search-btn")
        # min_width under a phone's 390 px: wider columns would push results off screen.
        with gr.Column(scale=3, min_width=300):
            summary = gr.Markdown(
                "Pick a query on the left: a photo, a library case or a text prompt.",
                elem_id="summary",
            )
            gr.Markdown(LEGEND, elem_id="results-legend")
            results = gr.Gallery(
                label="Nearest cases",
                show_label=False,  # a floating label would cover the first row's badges
                columns=5,
                height="auto",
                allow_preview=False,
                object_fit="contain",
                buttons=[],
                # JPEG: about 0.3 ms per tile to encode here, against 7 ms (WebP) or 22 ms (PNG).
                format="jpeg",
                elem_id="results",
            )
            with gr.Row(equal_height=False):
                detail_image = gr.Image(
                    label="Selected case",
                    interactive=False,
                    height=320,
                    elem_id="detail-image",
                )
                with gr.Column():
                    detail_md = gr.Markdown(
                        "Click a result to see it large.", elem_id="detail-meta"
                    )
                    again_btn = gr.Button(
                        "Search with this case", interactive=False, elem_id="search-with-case"
                    )
            explain = build_explain_view()
            with gr.Accordion("This search as data (JSON, as the command line prints)", open=False):
                report_json = gr.JSON(value=None, elem_id="search-json")

    # Gradio calls each handler with these as keyword arguments (``inputs_kwargs``); every
    # event that searches reads the same four settings.
    settings = {
        "library_path": library,
        "backbone_key": backbone,
        "k": k,
        "metric": metric,
        "coverage": coverage,
    }
    # The JSON summary last: /search_photo's final output is what `search --json` prints.
    shown = [results, summary, hits, again_btn, report_json]
    handlers = SearchHandlers(state)
    search_btn.click(
        guarded(handlers.search),
        inputs_kwargs={
            **settings,
            "mode": mode,
            "photo": photo,
            "stated_label": stated_label,
            "case_relpath": picked_case,
            "prompt": prompt,
        },
        outputs=shown,
        api_name="search",
        concurrency_limit=2,
    )
    query_image.input(
        guarded(handlers.take_photo),
        # Named as the API documents them: /search_photo(image, library, backbone, k, ...).
        inputs_kwargs={
            "image": query_image,
            "library": library,
            "backbone": backbone,
            "k": k,
            "similarity": metric,
            "diagnosis": stated_label,
            "coverage": coverage,
        },
        outputs=[photo, preview, mode, query_image, *shown],
        api_name="search_photo",
        concurrency_limit=2,
    )
    stated_label.input(
        guarded(handlers.relabel),
        inputs_kwargs={**settings, "mode": mode, "photo": photo, "stated_label": stated_label},
        outputs=shown,
        api_name=False,
    )
    examples.select(
        guarded(handlers.pick_case),
        inputs_kwargs={"examples": examples_state, **settings},
        outputs=[mode, picked_case, picked_md, *shown],
        api_name=False,
    )
    prompt.submit(
        guarded(handlers.submit_text),
        inputs_kwargs={**settings, "prompt": prompt},
        outputs=[mode, *shown],
        api_name="search_text",
    )
    tab_photo.select(lambda: "photo", None, mode, api_name=False)
    tab_case.select(lambda: "case", None, mode, api_name=False)
    tab_text.select(lambda: "text", None, mode, api_name=False)
    shown_result = results.select(
        guarded(show_result),
        inputs_kwargs={"hits": hits},
        outputs=[detail_image, detail_md, selected, again_btn],
        api_name=False,
    )
    wire_explain_view(
        explain,
        state,
        shown=shown_result,
        inputs={"library_path": library, "backbone_key": backbone, "mode": mode, "photo": photo,
                "case_relpath": picked_case, "hits": hits, "selected": selected},
    )  # fmt: skip
    again_btn.click(
        guarded(handlers.search_with_selected),
        inputs_kwargs={"relpath": selected, **settings},
        outputs=[mode, picked_case, picked_md, query_tabs, *shown],
        api_name=False,
    )
    backbone.change(
        guarded(text_box_update),
        inputs_kwargs={"backbone_key": backbone},
        outputs=[prompt],
        api_name=False,
    )
    # Results made under other settings must not pass for this one's: they go, and so do the
    # selected case and its button, until the next search.
    for setting in (library, backbone, k, metric, coverage):
        setting.change(
            results_out_of_date,
            outputs=[*shown, detail_image, detail_md, selected],
            api_name=False,
            show_progress="hidden",
        )
    return SearchTab(backbone, stated_label, examples, examples_state, prompt, query_tabs)


def library_updates(state: AppState, library_path: str | None) -> tuple:
    """New values for the Search tab's library-dependent parts: examples and class choices."""
    if not library_path:
        return [], [], gr.update(choices=[], value=None)
    examples = hs.example_cases(state, library_path)
    labels = state.library(library_path).labels
    return hs.example_gallery(examples), examples, gr.update(choices=labels, value=None)
