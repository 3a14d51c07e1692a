"""Search tab: components and their wiring. Handlers live in handlers_search.py."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import gradio as gr
from PIL import Image

import demo.handlers_search as hs
from demo.errors import guarded, user_message
from demo.state import AppState

QUERY_MAX_PX = 1024
PHOTO_TTL_S = 1800  # a session's query photo lives in memory at most this long
# gradio spots a Progress default and hands each request its own tracker, so one is enough.
PROGRESS = gr.Progress()


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


def _preview_html(image: Image.Image | None) -> str:
    """The query photo inline as a data URL: shown without writing it to disk."""
    if image is None:
        return "<p class='ds-muted'>No photo yet.</p>"
    thumb = image.copy()
    thumb.thumbnail((320, 320))
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=85)
    data = base64.b64encode(buffer.getvalue()).decode()
    return (
        f"<img id='query-preview-img' alt='query photo' src='data:image/jpeg;base64,{data}' "
        "style='max-height:220px;border-radius:6px'/><p class='ds-muted'>Query photo (held in "
        "memory for this session; the server deletes uploads within a few minutes).</p>"
    )


def read_query_photo(path: str | None) -> Image.Image:
    """Open an upload and shrink it to what any backbone needs.

    The file is not deleted here: gradio stores uploads by content hash, so two users sending
    the same photo share one file, and deleting it would break the other request. The app's
    cache sweep (``demo.layout.CACHE_SWEEP``) removes uploads within a few minutes instead.
    """
    if not path:
        raise ValueError("No photo yet: drop one on the query box, paste it, or use the webcam.")
    image = hs.parse_photo(path)
    image.thumbnail((QUERY_MAX_PX, QUERY_MAX_PX), Image.Resampling.LANCZOS)
    return image


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
        with gr.Column(scale=2, min_width=320):
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
                        sources=["upload", "webcam", "clipboard"],
                        label="Query photo: drop, paste or take one",
                        height=240,
                        elem_id="query-image",
                    )
                    tolerate_unreadable(query_image)
                    preview = gr.HTML(_preview_html(None), elem_id="query-preview")
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
            search_btn = gr.Button("Search", variant="primary", elem_id="search-btn")
        with gr.Column(scale=3, min_width=420):
            summary = gr.Markdown(
                "Pick a query on the left: a photo, a library case or a text prompt.",
                elem_id="summary",
            )
            gr.Markdown("**Nearest cases**: green ✓ same diagnosis, red ✗ different, grey unknown.")
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

    search_inputs = [library, backbone, mode, k, metric, photo, stated_label, picked_case, prompt]
    search_outputs = [results, summary, hits]

    def search(lib, bb, mode_, k_, metric_, photo_, label_, case_, prompt_, progress=PROGRESS):
        outcome = hs.run_search(
            state,
            library_path=lib,
            backbone_key=bb,
            mode=mode_,
            k=k_,
            metric=metric_,
            photo=photo_,
            stated_label=label_,
            case_relpath=case_,
            prompt=prompt_,
            progress=lambda f, m: progress(f, desc=m),
        )
        for note in outcome.notes:
            gr.Info(note, duration=8)
        return outcome.gallery, outcome.summary, outcome.hits

    guarded_search = guarded(search)
    search_btn.click(
        guarded_search, search_inputs, search_outputs, api_name="search", concurrency_limit=2
    )

    def take_photo(path, lib, bb, k_, metric_, label_, progress=PROGRESS):
        # A bad upload stops here with its reason.
        image = read_query_photo(path)
        kept = (image, _preview_html(image), "photo", None)
        try:
            found = search(
                lib, bb, "photo", k_, metric_, image, label_, None, "", progress=progress
            )
        except Exception as err:  # keep the photo: the user can fix the cause and press Search
            message = user_message(err)
            gr.Warning(message)
            return (*kept, [], f"**Not searched yet:** {message}", [])
        return (*kept, *found)

    query_image.input(
        guarded(take_photo),
        [query_image, library, backbone, k, metric, stated_label],
        [photo, preview, mode, query_image, results, summary, hits],
        api_name="search_photo",
        concurrency_limit=2,
    )

    def relabel(lib, bb, mode_, k_, metric_, photo_, label_, case_, prompt_, progress=PROGRESS):
        if mode_ != "photo" or photo_ is None:
            return gr.skip(), gr.skip(), gr.skip()
        return search(
            lib, bb, mode_, k_, metric_, photo_, label_, case_, prompt_, progress=progress
        )

    stated_label.input(guarded(relabel), search_inputs, search_outputs, api_name=False)

    def pick_case(examples_, lib, bb, k_, metric_, evt: gr.SelectData, progress=PROGRESS):
        if not examples_ or evt.index is None or evt.index >= len(examples_):
            raise ValueError("That example is gone: reload the library and try again.")
        case = examples_[evt.index]
        gallery, text, found = search(
            lib, bb, "case", k_, metric_, None, None, case["relpath"], "", progress=progress
        )
        md = f"Query: **{case['label']}** · `{case['relpath']}`"
        return "case", case["relpath"], md, gallery, text, found

    examples.select(
        guarded(pick_case),
        [examples_state, library, backbone, k, metric],
        [mode, picked_case, picked_md, results, summary, hits],
        api_name=False,
    )

    def submit_text(lib, bb, k_, metric_, prompt_, progress=PROGRESS):
        gallery, text, found = search(
            lib, bb, "text", k_, metric_, None, None, None, prompt_, progress=progress
        )
        return "text", gallery, text, found

    prompt.submit(
        guarded(submit_text),
        [library, backbone, k, metric, prompt],
        [mode, results, summary, hits],
        api_name="search_text",
    )
    tab_photo.select(lambda: "photo", None, mode, api_name=False)
    tab_case.select(lambda: "case", None, mode, api_name=False)
    tab_text.select(lambda: "text", None, mode, api_name=False)

    def show_result(hits_, evt: gr.SelectData):
        image, md, relpath = hs.result_details(hits_, evt.index)
        return image, md, relpath, gr.update(interactive=bool(relpath))

    results.select(
        guarded(show_result),
        [hits],
        [detail_image, detail_md, selected, again_btn],
        api_name=False,
    )

    def search_with_selected(relpath, lib, bb, k_, metric_, progress=PROGRESS):
        if not relpath:
            raise ValueError("Click a result first, then search with it.")
        gallery, text, found = search(
            lib, bb, "case", k_, metric_, None, None, relpath, "", progress=progress
        )
        md = f"Query: library case `{relpath}`"
        return "case", relpath, md, gr.Tabs(selected="case"), gallery, text, found

    again_btn.click(
        guarded(search_with_selected),
        [selected, library, backbone, k, metric],
        [mode, picked_case, picked_md, query_tabs, results, summary, hits],
        api_name=False,
    )

    def on_backbone(bb):
        ok, hint = hs.text_box_state(bb)
        return gr.update(interactive=ok, info=hint)

    backbone.change(guarded(on_backbone), [backbone], [prompt], api_name=False)
    return SearchTab(backbone, stated_label, examples, examples_state, prompt, query_tabs)


def library_updates(state: AppState, library_path: str | None) -> tuple:
    """New values for the Search tab's library-dependent parts: examples and class choices."""
    if not library_path:
        return [], [], gr.update(choices=[], value=None)
    examples = hs.example_cases(state, library_path)
    labels = state.library(library_path).labels
    return hs.example_gallery(examples), examples, gr.update(choices=labels, value=None)
