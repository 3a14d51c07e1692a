"""The whole app: a library picker over five tabs (Search, Compare, Benchmark, Library, Models)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder

import demo.handlers_library as hl
import demo.handlers_search as hs
import demo.tile_cache as tile_cache
import models.limits as limits
from demo.catalog import LibraryCatalog, clear_private_uploads
from demo.config import DEMO_CASES, AppConfig, blocked_roots, local_library, served_roots
from demo.errors import guarded
from demo.handlers_models import registry_table
from demo.state import AppState
from demo.ui_bench import build_bench_tab
from demo.ui_compare import build_compare_tab
from demo.ui_library import build_library_tab
from demo.ui_search import build_search_tab, library_updates, notice_updates

TITLE = "dermsearch: find similar skin-lesion cases"
CSS = """
/* The results table: the page's own font, tighter cells, so its columns fit at 1,440 px. */
#bench-table table { font-family: inherit; font-size: 0.85em; }
#bench-table th, #bench-table td { padding: 4px 6px !important; font-family: inherit !important; }
.ds-disclaimer { border-left: 4px solid #d55e00; padding: 4px 12px; background: #fff6ef; }
.dark .ds-disclaimer { background: #3a2a20; }
.ds-muted { color: #666; font-size: 0.85em; margin: 2px 0; }
/* Duplicate strips carry their captions drawn in; gradio's overlay copy stays for readers. */
#library-audit .caption-label, #library-duplicates .caption-label {
  position: absolute !important; width: 1px; height: 1px;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; padding: 0; border: 0; }
/* Result captions are text under each tile: legible and zoomable on a phone. */
#results .thumbnail-item { aspect-ratio: auto; flex-direction: column; height: auto; }
#results .caption-label { position: static !important; white-space: normal !important;
  overflow: visible !important; text-overflow: clip !important; max-width: 100% !important;
  background: none !important; color: inherit !important; font-size: 0.8em; line-height: 1.3;
  padding: 2px 4px !important; transform: none !important; text-align: left; }
/* Results grow with their rows: every one of the k results is on the page, none behind an
   inner scroll (the gallery's own rows are sized for its desktop column count). */
#results .grid-wrap { overflow: visible !important; height: auto !important;
  max-height: none !important; }
#results .grid-container { grid-template-rows: none !important; grid-auto-rows: auto !important; }
/* Narrow screens: fewer, wrapping columns instead of a hidden horizontal scroll. */
@media (max-width: 640px) {
  #results .grid-container { grid-template-columns: repeat(2, minmax(0, 1fr)) !important; }
}
/* The one progress bar of a first index build sits over the summary: hide the words under it. */
#summary .wrap.translucent { background: var(--block-background-fill) !important; }
/* Its own line says the time left; gradio's seconds counter would sit on top of the words. */
#summary .meta-text, #summary .meta-text-center { display: none !important; }
/* The selected case at its real size: never blown up past its pixels (a small photo stays
   sharp), scaled down only when the box is smaller; full screen shows every pixel. */
#detail-image img { object-fit: scale-down !important; }
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
    tile_cache.install()
    config = local_library(config)
    state = state or AppState(catalog=app_catalog(config), runtime=config.runtime)
    choices = state.catalog.choices()
    # A first visit lands on a ready Search tab whenever any library is on offer.
    start = state.catalog.id_of(config.library) if config.library else None
    start = start or (choices[0][1] if choices else None)
    runnable, _ = hs.backbone_choices()
    keys = [key for _, key in runnable]
    default = config.backbone if config.backbone in keys else (keys[0] if keys else None)

    with gr.Blocks(title=TITLE, delete_cache=CACHE_SWEEP) as demo:
        gr.Markdown(f"# {TITLE}", elem_id="title")
        with gr.Row():
            library = gr.Dropdown(
                choices=choices,
                value=start,
                label="Case library",
                info="The libraries this server offers, and your own uploads (Library tab).",
                # API callers may name a library by its display name; the catalog checks it.
                allow_custom_value=True,
                elem_id="library-path",
                scale=4,
            )
        # Ids of this session's own uploads; deleted with the session (see demo.catalog).
        owned = gr.State([])
        with gr.Column(visible=start is None, elem_id="getting-started") as start_page:
            gr.Markdown(GETTING_STARTED)
            demo_button = gr.Button(
                f"Load a small public demo library ({DEMO_CASES} HAM10000 photos) from the "
                "Hugging Face Hub",
                variant="primary",
                elem_id="load-demo-library",
            )
            demo_status = gr.Markdown("", elem_id="load-demo-status")
        with gr.Tabs(selected="search" if start else "library", elem_id="tabs") as tabs:
            with gr.Tab("Search", id="search", elem_id="tab-search"):
                search = build_search_tab(
                    state,
                    library=library,
                    backbone_key=default or "",
                    photo_ttl_s=config.photo_ttl_minutes * 60,
                )
            with gr.Tab("Compare", id="compare", elem_id="tab-compare"):
                compare = build_compare_tab(state, library=library, runnable=runnable)
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
                    owned=owned,
                )
            with gr.Tab("Models", id="models", elem_id="tab-models"):
                gr.Markdown(
                    "Every registered backbone. *here*: ready (runs now), download (weights not "
                    "on this machine), gated (needs the model's terms accepted on its Hub page "
                    "and a Hugging Face access token), unsupported."
                )
                gr.Dataframe(
                    value=registry_table(), interactive=False, wrap=True, elem_id="models-table"
                )

        search_outputs = [search.examples, search.examples_state, search.stated_label]
        search_outputs += [compare.examples, compare.examples_state, compare.stated_label]

        def on_library(path):
            return (
                *library_updates(state, path),
                *library_updates(state, path),
                *view_library(path),
            )

        library.change(
            guarded(on_library),
            [library],
            [*search_outputs, *library_outputs],
            api_name="select_library",
        )
        library.change(
            lambda path: gr.update(visible=not path), [library], [start_page], api_name=False
        )

        def on_demo_library(owned_ids, progress=PROGRESS):
            try:
                ident, choices = hl.load_demo_library(state, owned=owned_ids, progress=progress)
            except ValueError as err:  # stays on the page, unlike a toast
                return gr.skip(), gr.skip(), f"**The demo library could not be loaded.** {err}"
            return gr.update(choices=choices, value=ident), gr.Tabs(selected="search"), ""

        demo_button.click(
            guarded(on_demo_library),
            [owned],
            [library, tabs, demo_status],
            api_name="load_demo_library",
        )

        def on_load(path):
            # the Benchmark tab opens on the selected library's saved results, if it has any
            folder = Path(path) if path else None
            if folder is not None and folder.suffix:
                folder = folder.parent  # a manifest or zip: its folder names the library
            saved = show_saved(folder.name if folder is not None else None)
            if not path:
                return (*saved, *(gr.skip() for _ in search_outputs + library_outputs))
            return (*saved, *on_library(path))

        demo.load(
            guarded(on_load),
            [library],
            [*bench_outputs, *search_outputs, *library_outputs],
            api_name=False,
        )

        # Variant records a run wrote since start-up count from the next page load on.
        demo.load(
            guarded(search.variant_handlers.box_update),
            inputs_kwargs={"library_path": library, "backbone_key": search.backbone},
            outputs=list(search.variant_boxes),
            api_name=False,
        )
        demo.load(
            guarded(lambda path, key: notice_updates(state, path, key)),
            [library, search.backbone],
            search.notice_outputs(),
            api_name=False,
            show_progress="hidden",
        )

        def end_session(request: gr.Request):
            state.catalog.forget_session(request.session_hash)
            release_session(demo, request.session_hash)

        demo.unload(end_session)
    return demo


def release_session(blocks: gr.Blocks, session: str | None) -> bool:
    """Drop a closed session from gradio's session store at once; False if it holds none.

    Gradio keeps a closed session's ``gr.State`` values for an hour, in case the tab comes
    back, and its own copy of every component's config until ``state_session_capacity``
    newer sessions push it out: about 0.3 MB of objects per visitor, most of it that copy
    (``benchmarks.perf.session_memory``). A closed tab has already lost its private uploads
    here, so its state goes with them, each value through its ``delete_callback``.
    """
    holder = getattr(blocks, "state_holder", None)
    if holder is None or not session or session not in holder:
        return False
    holder.delete_state(session)
    with holder.lock:
        holder.session_data.pop(session, None)
        holder.time_last_used.pop(session, None)
    return True


def app_catalog(config: AppConfig) -> LibraryCatalog:
    """The libraries offered at start-up; private uploads of an earlier run are deleted first
    (no session survives a restart) and a sweeper deletes each one when its time is up."""
    if not config.allow_shared_uploads:
        clear_private_uploads()
    catalog = LibraryCatalog(
        startup=[config.library] if config.library else [],
        shared_uploads=config.allow_shared_uploads,
        upload_ttl_s=config.upload_ttl_minutes * 60,
    )
    catalog.start_sweeper(every_s=min(60.0, catalog.upload_ttl_s / 2))
    return catalog


def sweep_stale_gradio_files(*, older_than_s: float = CACHE_SWEEP[1]) -> int:
    """Delete gradio's uploaded and cached files left by a stopped instance of the app.

    ``delete_cache`` only sweeps while this process runs, so query photos and result tiles of
    an instance that was stopped stay on disk and would be served by the next one.
    """
    folder = Path(get_upload_folder())
    if not folder.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    removed = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file() and path.stat().st_ctime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            continue  # another instance swept it first
    return removed


def launch_kwargs(config: AppConfig) -> dict[str, Any]:
    """Arguments for ``demo.launch``: address, what may be served, theme and styles.

    Only the benchmark exports may be served by path; what the page shows is drawn in memory
    and served from gradio's own cache. The cache folder (indexes, embeddings, uploads) is
    blocked outright, so a mistake elsewhere cannot open it up.
    """
    sweep_stale_gradio_files()
    return {
        "server_name": config.host,
        "server_port": config.port,
        "allowed_paths": served_roots(),
        "state_session_capacity": limits.MAX_SESSIONS,
        "blocked_paths": blocked_roots(),
        "max_file_size": MAX_UPLOAD,
        "theme": gr.themes.Soft(primary_hue="teal", secondary_hue="orange"),
        "css": CSS,
        "show_error": False,
    }
