"""Library tab: components and wiring. Handlers live in handlers_library.py."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

import demo.handlers_audit as ha
import demo.handlers_library as hl
from demo.errors import PageMessages, guarded
from demo.state import AppState, Cancelled
from demo.stopping import StopFlags, run_stoppable, stoppable

PROGRESS = gr.Progress()
UPLOAD = "upload"  # the kind of work the upload's Cancel button stops
UPLOAD_CANCELLED = "Upload cancelled: nothing was added."


def library_view(state: AppState, library_path: str | None, *, reload: bool = False) -> tuple:
    """Summary, class counts, problems, exact duplicates and index status of a library."""
    summary = hl.library_summary(state, library_path, reload=reload)
    strips = hl.exact_duplicate_strips(state, library_path)
    return (
        summary,
        hl.class_counts(state, library_path),
        hl.validation_problems(state, library_path),
        gr.update(value=strips, visible=bool(strips)),
        f"{len(strips)} group(s) of byte-identical files."
        if strips
        else "No byte-identical files."
        if library_path
        else "",
        hl.index_status_table(state, library_path),
        [],  # a previous library's audit must not linger under this one
        "",
    )


def build_library_tab(
    state: AppState,
    *,
    library: gr.Dropdown,
    runnable: list[tuple[str, str]],
    default: str | None,
    owned: gr.State,
) -> tuple[Callable[..., tuple], list]:
    """Lay out the Library tab; returns (view function of a library id, its outputs).

    ``owned`` holds the ids of the libraries this session uploaded (only it is offered them).
    """
    upload_policy = (
        "Uploads are kept for every visitor of this server."
        if state.catalog.shared_uploads
        else "An upload is private to this browser session and is deleted when the session "
        f"ends, or after {state.catalog.upload_ttl_s / 60:.0f} minutes."
    )
    gr.Markdown(
        "### Add a library\nA **.zip** of class folders (or of `manifest.csv` with its images), "
        "or a **.csv/.parquet manifest** whose absolute paths point into a library already on "
        "this server. It is validated first; nothing is added (and no index changes) unless it "
        f"holds usable images. {upload_policy}"
    )
    # At the top: what an upload found (the verdict, its warnings, why it was refused) shows
    # beside its button, not a screen below it.
    with gr.Row(equal_height=False):
        upload = gr.File(
            label="Library file",
            file_types=[".zip", ".csv", ".parquet"],
            file_count="single",
            type="filepath",
            elem_id="library-upload",
        )
        with gr.Column():
            upload_name = gr.Textbox(
                label="Name (optional)", max_lines=1, elem_id="library-upload-name"
            )
            with gr.Row():
                upload_btn = gr.Button("Validate and add", elem_id="library-upload-btn")
                cancel_btn = gr.Button("Cancel", elem_id="library-upload-cancel")
            upload_md = gr.Markdown("", elem_id="library-upload-message")
    summary = gr.Markdown(hl.HOW_TO_ADD, elem_id="library-summary")
    with gr.Row(equal_height=False):
        counts = gr.Dataframe(
            value=hl.class_counts(state, None),
            label="Classes",
            interactive=False,
            elem_id="library-classes",
            scale=1,
        )
        problems = gr.Dataframe(
            value=hl.validation_problems(state, None),
            label="Validation problems (files or rows left out, identical files)",
            interactive=False,
            elem_id="library-problems",
            scale=2,
        )
    reload_btn = gr.Button("Re-read the library from disk", elem_id="library-reload")
    with gr.Accordion("Duplicates", open=True):
        exact = gr.Gallery(
            label="Byte-identical files (from validation)",
            columns=2,
            height="auto",
            allow_preview=True,
            object_fit="contain",
            elem_id="library-duplicates",
            visible=False,
        )
        exact_md = gr.Markdown("", elem_id="library-duplicates-summary")
        audit_btn = gr.Button(
            "Find copies of one photo (flipped, cropped, re-encoded; ~10 s per 400 images)",
            elem_id="library-audit-btn",
        )
        audit_md = gr.Markdown("", elem_id="library-audit-summary")
        audit_gallery = gr.Gallery(
            label="Copies of one photo, side by side",
            columns=2,
            height="auto",
            allow_preview=True,
            object_fit="contain",
            elem_id="library-audit",
        )
        with gr.Row():
            not_copy_pick = gr.Dropdown(
                choices=[],
                value=None,
                label="A pair above that is not a copy (kept beside the library)",
                elem_id="library-not-copy-pick",
                scale=2,
            )
            not_copy_btn = gr.Button("Not a copy", elem_id="library-not-copy-btn", scale=1)
        with gr.Row():
            copy_policy = gr.Radio(
                choices=[
                    ("Keep one image per photo", "one-per-group"),
                    ("Keep all; each group of copies is one case", "group-as-case"),
                ],
                value="group-as-case",
                label="Save a copy of this library that handles the copies",
                elem_id="library-copy-policy",
                scale=2,
            )
            dedup_btn = gr.Button("Save as a new library", elem_id="library-dedup-btn", scale=1)
        dedup_md = gr.Markdown("", elem_id="library-dedup-message")
    gr.Markdown("### Indexes")
    status = gr.Dataframe(
        value=hl.index_status_table(state, None),
        label="Index status per backbone",
        interactive=False,
        elem_id="index-status",
    )
    with gr.Row():
        index_backbone = gr.Dropdown(
            choices=runnable, value=default, label="Backbone", elem_id="index-backbone", scale=2
        )
        with gr.Column(scale=1):
            build_btn = gr.Button("Build or update index", variant="primary", elem_id="index-build")
            build_md = gr.Markdown("", elem_id="index-message")

    outputs = [summary, counts, problems, exact, exact_md, status, audit_gallery, audit_md]

    def view(path):
        return library_view(state, path)

    reload_btn.click(
        guarded(lambda path: library_view(state, path, reload=True)),
        [library],
        outputs,
        api_name=False,
    )

    def audit(path, progress=PROGRESS):
        pictures, text, choices = ha.audit_evidence(
            state, path, progress=lambda f, m: progress(f, desc=m)
        )
        return pictures, text, gr.update(choices=choices, value=None)

    audit_btn.click(
        guarded(audit),
        [library],
        [audit_gallery, audit_md, not_copy_pick],
        api_name=False,
        concurrency_id="heavy",
    )

    def not_copy(path, choice):
        pictures, text, choices = ha.not_a_copy(state, path, choice)
        return pictures, text, gr.update(choices=choices, value=None)

    not_copy_btn.click(
        guarded(not_copy),
        [library, not_copy_pick],
        [audit_gallery, audit_md, not_copy_pick],
        api_name=False,
    )

    def save_audited(path, policy, mine, request: gr.Request, progress=PROGRESS):
        new_id, message = hl.save_audited_library(
            state,
            path,
            policy,
            owner=request.session_hash,
            progress=lambda f, m: progress(f, desc=m),
        )
        mine = [*(mine or []), new_id]
        choices = state.catalog.choices(owned=mine)
        return gr.update(choices=choices, value=new_id), message, mine

    dedup_btn.click(
        guarded(save_audited),
        [library, copy_policy, owned],
        [library, dedup_md, owned],
        api_name=False,
        concurrency_id="heavy",
    )

    # Errors still fail the event (API callers get them); the page also keeps the sentence
    # beside the button that caused it.
    page = PageMessages()

    def build(path, key, request: gr.Request, progress=PROGRESS):
        message = hl.build_index(state, path, key, progress=lambda f, m: progress(f, desc=m))
        return message, hl.index_status_table(state, path)

    build_btn.click(
        lambda: "", None, build_md, api_name=False, show_progress="hidden", queue=False
    ).then(
        page.guarded(build, place="build"),
        [library, index_backbone],
        [build_md, status],
        api_name="build_index",
        concurrency_id="heavy",
        show_progress_on=[build_md],
    ).failure(
        page.shown(place="build", title="The index was not built."),
        None,
        build_md,
        api_name=False,
    )

    flags = StopFlags()

    def add(file, name, mine, request: gr.Request, progress=PROGRESS):
        def work(flag):
            checking = stoppable(
                lambda f, m: progress(f, desc=m or "checking the files"),
                flag,
                message=UPLOAD_CANCELLED,
            )
            return hl.upload_library(
                state, file, name=name, owner=request.session_hash, progress=checking
            )

        try:
            new_id, message = run_stoppable(flags, request.session_hash, UPLOAD, work)
        except Cancelled:  # the page says so beside the button; nothing was added
            return gr.skip(), UPLOAD_CANCELLED, gr.skip(), gr.skip()
        mine = [*(mine or []), new_id]
        choices = state.catalog.choices(owned=mine)
        return gr.update(choices=choices, value=new_id), message, None, mine

    # Uploads queue on their own: a big one never holds up searches or another upload.
    adding = upload_btn.click(
        page.guarded(add, place="upload"),
        [upload, upload_name, owned],
        [library, upload_md, upload, owned],
        api_name="upload_library",
        concurrency_id="upload",
        concurrency_limit=2,
        show_progress_on=[upload_md],
    )
    adding.failure(
        page.shown(place="upload", title="Nothing was added."),
        None,
        upload_md,
        api_name=False,
    )

    # Cancel raises the flag; the checking stops at its next file batch and the upload's own
    # answer then says it was cancelled (or, if it had already finished, that it was added).
    def cancel_upload(request: gr.Request):
        flags.stop(request.session_hash, UPLOAD)

    cancel_btn.click(cancel_upload, None, None, api_name=False)
    return view, outputs
