"""The whole app: a library picker over four tabs (Search, Benchmark, Library, Models)."""

from __future__ import annotations

from typing import Any

import gradio as gr

import demo.handlers_library as hl
import demo.handlers_search as hs
from demo.config import DEMO_CASES, AppConfig, library_choices, local_library, served_roots
from demo.errors import guarded
from demo.handlers_models import registry_table
from demo.state import AppState
from demo.ui_bench import build_bench_tab
from demo.ui_library import build_library_tab
from demo.ui_search import build_search_tab, library_updates

TITLE = "dermsearch: find similar skin-lesion cases"
CSS = """
.ds-disclaimer { border-left: 4px solid #d55e00; padding: 4px 12px; background: #fff6ef; }
.dark .ds-disclaimer { background: #3a2a20; }
.ds-muted { color: #666; font-size: 0.85em; margin: 2px 0; }
/* Result captions are drawn into the tiles; gradio's overlay copy stays for screen readers. */
#results .caption-label, #library-audit .caption-label, #library-duplicates .caption-label {
  position: absolute !important; width: 1px; height: 1px;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; padding: 0; border: 0; }
#results .thumbnail-item { aspect-ratio: auto; }
/* Duplicate strips are wide: show them whole rather than cropped to squares. */
#library-audit .thumbnail-item, #library-duplicates .thumbnail-item { aspect-ratio: 5 / 2; }
"""
GETTING_STARTED = (
    "### No case library here yet\n"
    "A case library is a set of photos labelled with their diagnoses: upload a zip of class "
    "folders (one folder of photos per diagnosis) on the **Library** tab below. "
    "Whoever runs this app can also start it on a library folder, a prebuilt index bundle or a "
    "Hugging Face dataset, as the README explains."
)
# Every 60 s, files older than 120 s in gradio's cache are deleted: uploaded query photos
# (read into memory at once) and the thumbnails already sent to the browser.
CACHE_SWEEP = (60, 120)
MAX_UPLOAD = "500mb"
PROGRESS = gr.Progress()


def build_demo(config: AppConfig, *, state: AppState | None = None) -> gr.Blocks:
    """Build the Blocks app; nothing heavy happens here: libraries and models load on use."""
    state = state or AppState()
    config = local_library(config)
    extra = [config.library] if config.library else []
    choices = library_choices(extra=extra)
    # A first visit lands on a ready Search tab whenever any library is on offer.
    start_library = config.library or (choices[0][1] if choices else None)
    runnable, _ = hs.backbone_choices()
    keys = [key for _, key in runnable]
    default = config.backbone if config.backbone in keys else (keys[0] if keys else None)

    with gr.Blocks(title=TITLE, delete_cache=CACHE_SWEEP) as demo:
        gr.Markdown(f"# {TITLE}", elem_id="title")
        with gr.Row():
            library = gr.Dropdown(
                choices=choices,
                value=start_library,
                label="Case library",
                info="Shared datasets, DERMSEARCH_LIBRARIES, --library and uploads (Library tab).",
                elem_id="library-path",
                scale=4,
            )
        with gr.Column(visible=start_library is None, elem_id="getting-started") as start_page:
            gr.Markdown(GETTING_STARTED)
            demo_button = gr.Button(
                f"Load a small public demo library ({DEMO_CASES} HAM10000 photos) from the "
                "Hugging Face Hub",
                variant="primary",
                elem_id="load-demo-library",
            )
            demo_status = gr.Markdown("", elem_id="load-demo-status")
        with gr.Tabs(selected="search" if start_library else "library", elem_id="tabs") as tabs:
            with gr.Tab("Search", id="search", elem_id="tab-search"):
                search = build_search_tab(state, library=library, backbone_key=default or "")
            with gr.Tab("Benchmark", id="benchmark", elem_id="tab-benchmark"):
                show_saved, bench_outputs = build_bench_tab(
                    state, library=library, runnable=runnable, default=default
                )
            with gr.Tab("Library", id="library", elem_id="tab-library"):
                view_library, library_outputs = build_library_tab(
                    state,
                    library=library,
                    runnable=runnable,
                    default=default,
                    extra_libraries=extra,
                )
            with gr.Tab("Models", id="models", elem_id="tab-models"):
                gr.Markdown(
                    "Every registered backbone. *here*: ready (runs now), download (weights not "
                    "on this machine), gated (needs accepting terms + HF_TOKEN), unsupported."
                )
                gr.Dataframe(
                    value=registry_table(), interactive=False, wrap=True, elem_id="models-table"
                )

        search_outputs = [search.examples, search.examples_state, search.stated_label]

        def on_library(path):
            return (*library_updates(state, path), *view_library(path))

        library.change(
            guarded(on_library),
            [library],
            [*search_outputs, *library_outputs],
            api_name="select_library",
        )
        library.change(
            lambda path: gr.update(visible=not path), [library], [start_page], api_name=False
        )

        def on_demo_library(progress=PROGRESS):
            try:
                folder, choices = hl.load_demo_library(progress)
            except ValueError as err:  # stays on the page, unlike a toast
                return gr.skip(), gr.skip(), f"**The demo library could not be loaded.** {err}"
            return gr.update(choices=choices, value=folder), gr.Tabs(selected="search"), ""

        demo_button.click(
            guarded(on_demo_library),
            None,
            [library, tabs, demo_status],
            api_name="load_demo_library",
        )

        def on_load(path):
            saved = show_saved()
            if not path:
                return (*saved, *(gr.skip() for _ in search_outputs + library_outputs))
            return (*saved, *on_library(path))

        demo.load(
            guarded(on_load),
            [library],
            [*bench_outputs, *search_outputs, *library_outputs],
            api_name=False,
        )
    return demo


def launch_kwargs(config: AppConfig) -> dict[str, Any]:
    """Arguments for ``demo.launch``: address, what may be served, theme and styles."""
    libraries = [
        path for _, path in library_choices(extra=[config.library] if config.library else [])
    ]
    return {
        "server_name": config.host,
        "server_port": config.port,
        "allowed_paths": served_roots(libraries=libraries),
        "max_file_size": MAX_UPLOAD,
        "theme": gr.themes.Soft(primary_hue="teal", secondary_hue="orange"),
        "css": CSS,
        "show_error": False,
    }
