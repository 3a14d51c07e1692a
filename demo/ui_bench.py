"""Benchmark tab: components and wiring. Handlers live in handlers_bench.py."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr
import pandas as pd

import demo.handlers_bench as hb
from demo.errors import guarded
from demo.state import AppState
from demo.stopping import StopFlags, run_stoppable

PROGRESS = gr.Progress()
BENCHMARK = "benchmark"  # the kind of work this tab's Cancel button stops


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


def build_bench_tab(
    state: AppState, *, library: gr.Dropdown, runnable: list[tuple[str, str]], default: str | None
) -> tuple[Callable[[], tuple], list]:
    """Lay out the Benchmark tab; returns the page-load function showing saved results and
    the components it fills."""
    flags = StopFlags()
    records = gr.State(pd.DataFrame())  # what is shown: one library's records
    every = gr.State(pd.DataFrame())  # every loaded record, all libraries
    gr.Markdown(
        "Score backbones on the selected library with the protocols of the papers it reproduces "
        "(`python -m benchmarks run` does the same from a shell). Queries never match their "
        "own case or a copy of their photo (duplicate audit). Saved results and earlier runs "
        "here show below, one library at a time."
    )
    with gr.Row():
        backbones = gr.CheckboxGroup(
            choices=runnable,
            value=[default] if default else [],
            label="Backbones",
            elem_id="bench-backbones",
            scale=3,
        )
        protocol = gr.Dropdown(
            choices=hb.protocol_choices(),
            value="leave-one-out",
            label="Protocol",
            elem_id="bench-protocol",
            scale=3,
        )
    with gr.Row():
        run_btn = gr.Button("Run benchmark", variant="primary", elem_id="bench-run")
        cancel_btn = gr.Button("Cancel", variant="stop", elem_id="bench-cancel")
        reload_btn = gr.Button("Show saved results", elem_id="bench-reload")
    status = gr.Markdown("", elem_id="bench-status")
    shown = gr.Dropdown(
        choices=[], value=None, label="Results of library", elem_id="bench-shown-library"
    )
    table = gr.Dataframe(
        value=hb.results_table(pd.DataFrame()),
        label="Results",
        interactive=False,
        wrap=True,
        elem_id="bench-table",
    )
    gr.Markdown(hb.TABLE_LEGEND, elem_id="bench-legend")
    with gr.Row():
        latency_plot = gr.Plot(label="Accuracy against latency", elem_id="bench-plot")
        curves_plot = gr.Plot(label="Hit rate at k", elem_id="bench-curves")
    per_class_plot = gr.Plot(label="Per class", elem_id="bench-per-class")
    with gr.Row():
        map_backbone = gr.Dropdown(
            choices=runnable, value=default, label="Embedding map backbone", elem_id="map-backbone"
        )
        map_btn = gr.Button("Draw embedding map (t-SNE)", elem_id="bench-map-btn")
    map_plot = gr.Plot(label="Embedding map", elem_id="bench-map")
    with gr.Row():
        export_btn = gr.Button(
            "Export shown results (summary CSV + raw records JSONL)", elem_id="bench-export"
        )
        downloads = gr.File(label="Downloads", file_count="multiple", elem_id="bench-download")

    def views(frame: pd.DataFrame, wanted: str | None):
        name = hb.pick_library(frame, wanted)
        one = hb.library_records(frame, name)
        figs = hb.result_figures(one, library=name)
        picker = gr.update(choices=hb.library_names(frame), value=name)
        label = f"Results on {name}" if name else "Results"
        table_update = gr.update(value=hb.results_table(one), label=label)
        return (frame, one, picker, table_update, *figs)

    view_outputs = [every, records, shown, table, latency_plot, curves_plot, per_class_plot]

    def show_saved(wanted: str | None = None):
        frame = hb.load_saved_records()
        note = (
            f"Saved results of {len(hb.library_names(frame))} library(ies); pick one above."
            if len(frame)
            else "No saved results yet: run a benchmark."
        )
        return (*views(frame, wanted), note)

    reload_btn.click(guarded(show_saved), [shown], [*view_outputs, status], api_name=False)
    shown.input(
        guarded(lambda frame, name: views(frame, name)),
        [every, shown],
        view_outputs,
        api_name=False,
    )

    def run(lib, keys, proto, request: gr.Request, progress=PROGRESS):
        def work(flag):
            return hb.run_benchmark(
                state,
                library_path=lib,
                backbones=keys or [],
                protocol=proto,
                progress=lambda f, m: progress(f, desc=m),
                should_stop=flag.is_set,
            )

        frame, path = run_stoppable(flags, _session(request), BENCHMARK, work)
        note = f"Done: {len(frame)} records saved to `{path.name}`."
        for reason in hb.skipped_reasons(frame):
            gr.Warning(f"Skipped {reason}")
            note += f"\n\nSkipped {reason}"
        return (*views(frame, None), note)

    run_event = run_btn.click(
        guarded(run),
        [library, backbones, protocol],
        [*view_outputs, status],
        api_name="benchmark",
        concurrency_limit=1,
        concurrency_id="heavy",
    )

    def cancel(request: gr.Request):
        flags.stop(_session(request), BENCHMARK)
        return "Cancelled: the run stops after the current batch; saved results are unchanged."

    cancel_btn.click(guarded(cancel), None, status, cancels=[run_event], api_name=False)

    def draw_map(lib, bb, progress=PROGRESS):
        progress(0.1, desc="embedding (cached after the first time) and running t-SNE")
        return hb.embedding_map(state, library_path=lib, backbone=bb)

    map_btn.click(
        guarded(draw_map),
        [library, map_backbone],
        map_plot,
        api_name=False,
        concurrency_id="heavy",
    )
    export_btn.click(
        guarded(lambda frame: list(hb.export_records(frame))),
        [records],
        downloads,
        api_name=False,
    )
    return show_saved, [*view_outputs, status]
