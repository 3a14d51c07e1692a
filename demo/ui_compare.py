"""Compare tab: components and wiring. The gradio-free work lives in handlers_compare.py."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

import demo.handlers_compare as hc
import demo.handlers_search as hs
import demo.variant_advice as va
from data_index.compare import MAX_BACKBONES
from data_index.compare_render import ROW_CSS
from demo.arguments import checked_by_handler
from demo.errors import guarded, log_unexpected, user_message
from demo.explain_view import SHOW_MAPS, SHOW_PHOTOS, draw_pair
from demo.state import AppState
from models import get_spec, open_image

INTRO = (
    "Put 2 to 4 backbones side by side on one query. Each row is one backbone's nearest cases: "
    "**green ✓** same diagnosis as the query, **red ✗** a different one, **SHARED** another "
    "backbone found the same case. Click a case to see it large beside the query. Research and "
    "teaching tool, not a diagnostic device."
)
CLOSER_HINT = (
    "Click a case in any row to see it large beside the query, with the similarity maps of "
    "that row's backbone."
)
# A click on a tile sends its row's backbone and its rank; the listener sits on the slot, which
# stays while its rows are redrawn.
PICK_JS = (
    "element.addEventListener('click', (e) => {"
    " const fig = e.target.closest('figure.cmp-hit');"
    " const row = e.target.closest('.cmp-row');"
    " if (fig && row) { trigger('click', {backbone: row.dataset.backbone,"
    " rank: Number(fig.dataset.rank)}); } });"
)
TAB_CSS = ".cmp-tiles figure.cmp-hit { cursor: zoom-in; }"


@dataclass
class CompareTab:
    examples: gr.Gallery
    examples_state: gr.State
    stated_label: gr.Dropdown


class CompareEvents:
    """Event handlers bound to the app's shared state; called by gradio with keywords."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def compare_query(
        self,
        *,
        library_path,
        backbones,
        mode,
        photo,
        stated_label,
        case_relpath,
        prompt,
        k,
        hide,
        variant=None,
    ):
        try:
            query, picture = hc.build_query(
                self.state,
                library_path=library_path,
                mode=mode,
                photo=photo,
                stated_label=stated_label,
                case_relpath=case_relpath,
                prompt=prompt,
            )
            for rows, overlap, shown in hc.compare_stream(
                self.state,
                library_path=library_path,
                backbones=list(backbones or []),
                query=query,
                query_image=picture,
                k=hs.parse_k(k),
                hide_labels=bool(hide),
                variant=variant,
            ):
                slots = [gr.HTML(row, visible=bool(row)) for row in rows]
                yield (*slots, overlap, hc.query_line(shown), shown)
        except gr.Error:
            raise
        except Exception as err:
            log_unexpected(err, handler=hc.compare_stream)
            raise gr.Error(user_message(err), print_exception=False) from err

    def variant_info(self, *, library_path, backbones, variant):
        """What the chosen variant does and what was measured of it for each ticked backbone."""
        return va.compare_variant_markdown(
            self.state.library(library_path) if library_path else None,
            list(backbones or []),
            variant,
        )

    def redraw_rows(self, *, shown, hide):
        rows, overlap = hc.redraw(shown, hide_labels=bool(hide))
        return (*(gr.HTML(row, visible=bool(row)) for row in rows), overlap)

    def look_closer(self, evt: gr.EventData, *, shown, hide, show):
        """The clicked case large beside the query, with its row's backbone's maps."""
        data = getattr(evt, "_data", None) or {}
        row, hit = hc.picked_hit(shown, backbone=str(data.get("backbone")), rank=int(data["rank"]))
        return self._closer(shown, row, hit, hide=hide, show=show), (row.key, hit.rank)

    def redraw_closer(self, *, shown, picked, hide, show):
        if not picked:
            return _hint()
        row, hit = hc.picked_hit(shown, backbone=picked[0], rank=int(picked[1]))
        return self._closer(shown, row, hit, hide=hide, show=show)

    def _closer(self, shown, row, hit, *, hide, show) -> str:
        comparison = shown.comparison
        if comparison.query.kind == "text":
            return _hint("A text query has no photo to set beside the case.")
        diagnosis = "diagnosis hidden" if hide else hit.label
        titles = ("Query", f"{row.name}, case #{hit.rank}: {diagnosis}")
        return draw_pair(
            self.state,
            row.key,
            query=open_image(shown.query_image),
            case=open_image(hit.path),
            titles=titles,
            show=show,
        )

    def save_page(self, *, shown):
        return gr.File(value=hc.export_html(shown), visible=True)

    def save_slide(self, *, shown):
        return gr.File(value=hc.export_sheet(shown), visible=True)

    def pick_compare_case(self, evt: gr.SelectData, *, examples):
        case = examples[evt.index]
        return "case", case["relpath"], f"Picked a library case of **{case['label']}**."

    def find_disagreements(self, *, library_path, a, b):
        found = hc.disagreements(self.state, library_path=library_path, a=a, b=b)
        name_a, name_b = get_spec(a).name, get_spec(b).name
        return (
            hc.disagreement_summary(found),
            gr.update(
                value=hc.disagreement_gallery(found.only_a, right=0),
                label=f"Only {name_a} right ({len(found.only_a)}): true diagnosis → "
                f"{name_b}'s nearest case",
            ),
            gr.update(
                value=hc.disagreement_gallery(found.only_b, right=1),
                label=f"Only {name_b} right ({len(found.only_b)}): true diagnosis → "
                f"{name_a}'s nearest case",
            ),
            [p[0].relpath for p in found.only_a],
            [p[0].relpath for p in found.only_b],
        )

    def pick_disagreement(self, evt: gr.SelectData, *, relpaths, a, b):
        picked = "Picked a query from the disagreement explorer."
        return "case", relpaths[evt.index], picked, [a, b], gr.Tabs(selected="case")


def _hint(text: str = CLOSER_HINT) -> str:
    return f"<p class='ds-muted'>{text}</p>"


def build_compare_tab(state: AppState, *, library: gr.Dropdown, runnable: list) -> CompareTab:
    """Lay out the Compare tab and wire its events; ``library`` is the app-wide library box."""
    keys = [key for _, key in runnable]
    # Names only: registry keys are for the command line, not for a class.
    runnable = [(get_spec(key).name, key) for key in keys]
    start = [key for key in ("efficientnet-lite0", "xception-ham10000") if key in keys]
    start = start if len(start) == 2 else keys[:2]
    events = CompareEvents(state)
    mode = gr.State("photo")
    picked_case = gr.State(None)
    examples_state = gr.State([])
    shown = gr.State(None)
    only_a, only_b = gr.State([]), gr.State([])

    gr.Markdown(INTRO, elem_id="cmp-intro", elem_classes=["ds-disclaimer"])
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            gr.Markdown("**Query**: one photo, case or prompt for every backbone.")
            with gr.Tabs(selected="photo", elem_id="cmp-query-tabs") as query_tabs:
                with gr.Tab("Photo", id="photo") as tab_photo:
                    photo = gr.Image(
                        type="pil",
                        sources=["upload", "clipboard"],
                        label="Query photo",
                        height=220,
                        elem_id="cmp-photo",
                    )
                    stated_label = gr.Dropdown(
                        choices=[],
                        value=None,
                        label="Diagnosis of this photo (optional)",
                        info="If known, results are framed green (same) or red (different).",
                        elem_id="cmp-label",
                    )
                with gr.Tab("Library case", id="case") as tab_case:
                    examples = gr.Gallery(
                        label="Click a case to compare on it",
                        columns=4,
                        height=260,
                        allow_preview=False,
                        object_fit="cover",
                        buttons=[],
                        elem_id="cmp-examples",
                    )
                    picked_md = gr.Markdown("No case picked.", elem_id="cmp-picked")
                with gr.Tab("Text", id="text") as tab_text:
                    prompt = gr.Textbox(
                        label="Text prompt (backbones with a text tower only)",
                        placeholder="e.g. impetigo around the mouth",
                        max_lines=2,
                        elem_id="cmp-prompt",
                    )
        with gr.Column(scale=1, min_width=300):
            backbones = gr.CheckboxGroup(
                choices=runnable,
                value=start,
                label=f"Backbones (2 to {MAX_BACKBONES})",
                elem_id="cmp-backbones",
            )
            k = gr.Slider(1, 20, value=8, step=1, label="Cases per backbone", elem_id="cmp-k")
            hide = gr.Checkbox(
                value=False,
                label="Teaching mode: hide the diagnoses (untick to reveal)",
                elem_id="cmp-hide",
            )
            variant = gr.Radio(
                choices=va.compare_variant_choices(),
                value=va.PLAIN,
                label="Retrieval variant for every backbone (off by default)",
                elem_id="cmp-variant",
            )
            checked_by_handler(variant)
            variant_md = gr.Markdown("", elem_id="cmp-variant-info")
            run_btn = gr.Button("Compare", variant="primary", elem_id="cmp-run")
    query_md = gr.HTML("", elem_id="cmp-query")
    slots = [gr.HTML("", elem_id=f"cmp-row-{i}", js_on_load=PICK_JS) for i in range(MAX_BACKBONES)]
    overlap = gr.Markdown("", elem_id="cmp-overlap")
    picked = gr.State(None)  # (backbone, rank) of the case shown large
    closer_toggle = gr.Radio(
        choices=[("Similarity maps", SHOW_MAPS), ("Photos only", SHOW_PHOTOS)],
        value=SHOW_MAPS,
        label="Look closer: the query and a clicked case side by side",
        elem_id="cmp-closer-toggle",
    )
    closer = gr.HTML(_hint(), elem_id="cmp-closer")
    with gr.Row():
        html_btn = gr.Button("Save as a web page (HTML)", elem_id="cmp-save-html", size="sm")
        sheet_btn = gr.Button("Save as a slide (PNG)", elem_id="cmp-save-png", size="sm")
    saved = gr.File(label="Saved comparison", interactive=False, visible=False, elem_id="cmp-saved")
    with gr.Accordion("Where do two backbones disagree on this library?", open=False):
        with gr.Row():
            pick_a = gr.Dropdown(runnable, value=start[0] if start else None, label="Backbone A")
            pick_b = gr.Dropdown(
                runnable, value=start[1] if len(start) > 1 else None, label="Backbone B"
            )
            explore_btn = gr.Button("Find disagreements", elem_id="cmp-explore")
        explore_md = gr.Markdown("", elem_id="cmp-explore-summary")
        settings = {"columns": 4, "height": 380, "allow_preview": False, "buttons": []}
        gallery_a = gr.Gallery(label="Only A right", elem_id="cmp-only-a", **settings)
        gallery_b = gr.Gallery(label="Only B right", elem_id="cmp-only-b", **settings)
    gr.HTML(f"<style>{ROW_CSS}{TAB_CSS}</style>", elem_id="cmp-style", padding=False)

    query_inputs = {
        "library_path": library,
        "backbones": backbones,
        "mode": mode,
        "photo": photo,
        "stated_label": stated_label,
        "case_relpath": picked_case,
        "prompt": prompt,
        "k": k,
        "hide": hide,
        "variant": variant,
    }
    outputs = [*slots, overlap, query_md, shown]
    run_btn.click(
        events.compare_query,
        inputs_kwargs=query_inputs,
        outputs=outputs,
        api_name="compare",
        concurrency_limit=2,
    ).then(lambda: (_hint(), None), None, [closer, picked], api_name=False)
    for setting in (variant, backbones, library):
        setting.change(
            guarded(events.variant_info),
            inputs_kwargs={"library_path": library, "backbones": backbones, "variant": variant},
            outputs=[variant_md],
            api_name=False,
        )
    hide.change(
        guarded(events.redraw_rows),
        inputs_kwargs={"shown": shown, "hide": hide},
        outputs=[*slots, overlap],
        api_name=False,
    )
    closer_inputs = {"shown": shown, "hide": hide, "show": closer_toggle}
    for slot in slots:
        slot.click(
            guarded(events.look_closer),
            inputs_kwargs=closer_inputs,
            outputs=[closer, picked],
            api_name=False,
            concurrency_limit=2,
        )
    for setting in (closer_toggle, hide):
        setting.change(
            guarded(events.redraw_closer),
            inputs_kwargs={**closer_inputs, "picked": picked},
            outputs=[closer],
            api_name=False,
        )
    examples.select(
        guarded(events.pick_compare_case),
        inputs_kwargs={"examples": examples_state},
        outputs=[mode, picked_case, picked_md],
        api_name=False,
    )
    tab_photo.select(lambda: "photo", None, mode, api_name=False)
    tab_case.select(lambda: "case", None, mode, api_name=False)
    tab_text.select(lambda: "text", None, mode, api_name=False)
    for button, save in ((html_btn, events.save_page), (sheet_btn, events.save_slide)):
        button.click(guarded(save), inputs_kwargs={"shown": shown}, outputs=[saved], api_name=False)
    explore_btn.click(
        guarded(events.find_disagreements),
        inputs_kwargs={"library_path": library, "a": pick_a, "b": pick_b},
        outputs=[explore_md, gallery_a, gallery_b, only_a, only_b],
        api_name="disagreements",
        concurrency_limit=1,
    )
    for gallery, relpaths in ((gallery_a, only_a), (gallery_b, only_b)):
        gallery.select(
            guarded(events.pick_disagreement),
            inputs_kwargs={"relpaths": relpaths, "a": pick_a, "b": pick_b},
            outputs=[mode, picked_case, picked_md, backbones, query_tabs],
            api_name=False,
        ).then(events.compare_query, inputs_kwargs=query_inputs, outputs=outputs, api_name=False)
    return CompareTab(examples, examples_state, stated_label)
