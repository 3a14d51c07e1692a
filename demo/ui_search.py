"""Search tab: components and their wiring. The event handlers it wires live in
events_search.py; the gradio-free work they call lives in handlers_search.py."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

import demo.handlers_search as hs
import demo.index_notice as index_notice
import demo.variant_advice as va
from demo.arguments import checked_by_handler
from demo.errors import guarded
from demo.events_search import (
    SEARCHING,
    SearchHandlers,
    preview_html,
    results_out_of_date,
    session_of,
    show_result,
    text_box_update,
)
from demo.explain_view import build_explain_view, wire_explain_view
from demo.render import LEGEND
from demo.state import AppState
from demo.stopping import StopFlags

PHOTO_TTL_S = 1800  # a session's query photo lives in memory at most this long


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
    variant_boxes: tuple  # the variant picker, its line and its details, refreshed on load
    variant_handlers: VariantHandlers
    build_note: gr.Markdown
    cancel_btn: gr.Button

    def notice_outputs(self) -> list:
        return [self.build_note, self.cancel_btn]


def notice_updates(state: AppState, library_path: str | None, backbone_key: str | None) -> tuple:
    """The note about a first index build, and its Cancel button, shown only when the next
    search will build (or update) this library's index."""
    text = index_notice.build_notice(state, library_path, backbone_key)
    return gr.update(value=text, visible=bool(text)), gr.update(visible=bool(text))


def build_search_tab(state: AppState, *, library: gr.Dropdown, backbone_key: str) -> SearchTab:
    """Lay out the Search tab and wire its events; ``library`` is the app-wide library box."""
    runnable, not_here = hs.backbone_choices()
    keys = [value for _, value in runnable]
    start = backbone_key if backbone_key in keys else (keys[0] if keys else None)
    text_ok, text_hint = hs.text_box_state(start) if start else (False, "No backbone can run.")

    mode = gr.State("photo")
    photo = gr.State(None, time_to_live=PHOTO_TTL_S)
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
            first_choices, first_info, first_all = variant_updates(state, library.value, start)
            variant = gr.Radio(
                choices=first_choices,
                value=va.PLAIN,
                label="Retrieval variant (off by default)",
                elem_id="variant",
            )
            checked_by_handler(variant)  # API callers naming another variant get a sentence
            variant_info = gr.Markdown(first_info, elem_id="variant-info")
            with gr.Accordion("Every variant offered here, and what was measured", open=False):
                variant_all = gr.Markdown(first_all, elem_id="variant-all")
            search_btn = gr.Button("Search", variant="primary", elem_id="search-btn")
        # min_width under a phone's 390 px: wider columns would push results off screen.
        with gr.Column(scale=3, min_width=300):
            # Beside the one progress bar (over the summary): what a first build does, and
            # its Cancel, in sight while it runs.
            build_note = gr.Markdown("", visible=False, elem_id="index-build-note")
            cancel_btn = gr.Button(
                "Cancel the index build",
                variant="stop",
                size="sm",
                visible=False,
                elem_id="search-cancel",
            )
            summary = gr.Markdown(
                "Pick a query on the left: a photo, a library case or a text prompt.",
                # Room for the one progress bar of a first index build, which shows here.
                min_height=96,
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
                    # Lossless: the photo's own pixels at their real resolution, not a tile.
                    format="png",
                    buttons=["fullscreen", "download"],
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
        "variant": variant,
    }
    # The JSON summary last: /search_photo's final output is what `search --json` prints.
    shown = [results, summary, hits, again_btn, report_json]
    flags = StopFlags()
    handlers = SearchHandlers(state, flags)
    # Every event that may search: each one's progress (a first index build: count and time
    # left) shows once, over the summary, not on every output; after each, the build note and
    # its Cancel button follow the index's state.
    searching = []
    one_bar = {"show_progress_on": [summary]}
    searching.append(
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
            **one_bar,
        )
    )
    searching.append(
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
                "variant": variant,
            },
            outputs=[photo, preview, mode, query_image, *shown],
            api_name="search_photo",
            concurrency_limit=2,
            **one_bar,
        )
    )
    searching.append(
        stated_label.input(
            guarded(handlers.relabel),
            inputs_kwargs={**settings, "mode": mode, "photo": photo, "stated_label": stated_label},
            outputs=shown,
            api_name=False,
            **one_bar,
        )
    )
    searching.append(
        examples.select(
            guarded(handlers.pick_case),
            inputs_kwargs={"examples": examples_state, **settings},
            outputs=[mode, picked_case, picked_md, *shown],
            api_name=False,
            **one_bar,
        )
    )
    searching.append(
        prompt.submit(
            guarded(handlers.submit_text),
            inputs_kwargs={**settings, "prompt": prompt},
            outputs=[mode, *shown],
            api_name="search_text",
            **one_bar,
        )
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
    searching.append(
        again_btn.click(
            guarded(handlers.search_with_selected),
            inputs_kwargs={"relpath": selected, **settings},
            outputs=[mode, picked_case, picked_md, query_tabs, *shown],
            api_name=False,
            **one_bar,
        )
    )
    notice = {"fn": guarded(lambda path, key: notice_updates(state, path, key)),
              "inputs": [library, backbone], "outputs": [build_note, cancel_btn],
              "api_name": False, "show_progress": "hidden"}  # fmt: skip
    for event in searching:
        event.then(**notice)  # a finished build hides its note; a failed one keeps it

    # Cancel only raises the flag: the build stops after its current batch and the search
    # itself then says so, so what the page shows is what happened.
    def cancel(request: gr.Request):
        if not flags.stop(session_of(request), SEARCHING):
            return gr.skip()
        return gr.update(value=index_notice.STOPPING, visible=True)

    cancel_btn.click(cancel, None, build_note, api_name=False, show_progress="hidden")
    backbone.change(
        guarded(text_box_update),
        inputs_kwargs={"backbone_key": backbone},
        outputs=[prompt],
        api_name=False,
    )
    # Results made under other settings must not pass for this one's: they go, and so do the
    # selected case and its button, until the next search.
    variants = VariantHandlers(state)
    for setting in (library, backbone):
        setting.change(
            guarded(variants.box_update),
            inputs_kwargs={"library_path": library, "backbone_key": backbone},
            outputs=[variant, variant_info, variant_all],
            api_name=False,
        )
    variant.change(
        guarded(variants.chosen),
        inputs_kwargs={"library_path": library, "backbone_key": backbone, "name": variant},
        outputs=[variant_info],
        api_name=False,
    )
    for setting in (library, backbone, k, metric, coverage, variant):
        setting.change(
            results_out_of_date,
            outputs=[*shown, detail_image, detail_md, selected],
            api_name=False,
            show_progress="hidden",
        )
    for setting in (library, backbone):
        setting.change(**notice)
    return SearchTab(
        backbone=backbone,
        stated_label=stated_label,
        examples=examples,
        examples_state=examples_state,
        prompt=prompt,
        query_tabs=query_tabs,
        variant_boxes=(variant, variant_info, variant_all),
        variant_handlers=variants,
        build_note=build_note,
        cancel_btn=cancel_btn,
    )


def variant_updates(
    state: AppState, library_path: str | None, backbone_key: str | None
) -> tuple[list[tuple[str, str]], str, str]:
    """(radio choices, the line under it, every variant's details) for a library and backbone."""
    if not library_path or not backbone_key:
        return va.variant_choices([]), "Pick a library and a backbone to see the variants.", ""
    try:
        advice = va.variant_advice(state.library(library_path), backbone_key)
    except ValueError as err:  # an unreadable library says so on the Library tab
        return va.variant_choices([]), str(err), ""
    return va.variant_choices(advice), va.variant_summary(advice), va.variant_markdown(advice)


@dataclass(frozen=True)
class VariantHandlers:
    """The variant picker's events, bound to the app's shared state."""

    state: AppState

    def box_update(self, library_path: str | None, backbone_key: str | None) -> tuple:
        """Another library or backbone: its own variants, and the plain search again."""
        choices, info, every = variant_updates(self.state, library_path, backbone_key)
        return gr.update(choices=choices, value=va.PLAIN), info, every

    def chosen(self, library_path: str | None, backbone_key: str | None, name: str | None) -> str:
        """The line under the picker: what the chosen variant does and what is known of it."""
        if not library_path or not backbone_key:
            return ""
        advice = va.variant_advice(self.state.library(library_path), backbone_key)
        picked = [a for a in advice if a.name == name]
        return picked[0].markdown() if picked else va.variant_summary(advice)


def library_updates(state: AppState, library_path: str | None) -> tuple:
    """New values for the Search tab's library-dependent parts: examples and class choices."""
    if not library_path:
        return [], [], gr.update(choices=[], value=None)
    examples = hs.example_cases(state, library_path)
    labels = hs.label_choices(state, library_path)
    return hs.example_gallery(examples), examples, gr.update(choices=labels, value=None)
