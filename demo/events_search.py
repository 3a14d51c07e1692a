"""Search tab: the event handlers that ``ui_search`` wires. They turn component values into
calls to ``handlers_search`` and its results into gradio outputs, toasts and updates."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

import gradio as gr
from PIL import Image

import demo.handlers_search as hs
import demo.index_notice as index_notice
from data_index.query_match import file_sha1
from demo.errors import log_unexpected, user_message
from demo.state import AppState, Cancelled
from demo.stopping import StopFlags, run_stoppable, stoppable

QUERY_MAX_PX = 1024
# gradio spots a Progress default and hands each request its own tracker, so one is enough.
PROGRESS = gr.Progress()
SEARCHING = "search"  # the kind of work the Search tab's Cancel button stops


def session_of(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


def preview_html(image: Image.Image | None) -> str:
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
    # The upload's own bytes: a library file identical to it is then found by its hash, even
    # after the photo was shrunk here.
    image.info[hs.QUERY_SHA1] = file_sha1(path)
    return image


def compact_photo(image: Image.Image) -> bytes:
    """The query photo as kept in the session: JPEG bytes (about 0.1 MB, against 3 MB of
    pixels at 1024 px), so hundreds of open sessions stay small."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def expand_photo(photo: object) -> object:
    """Pixels of a kept photo; anything else (a path, a PIL image, None) passes through."""
    if isinstance(photo, bytes):
        return Image.open(io.BytesIO(photo)).convert("RGB")
    return photo


@dataclass(frozen=True)
class SearchHandlers:
    """The Search tab's event handlers, bound to the app's state (shared by every session, so
    it cannot live in a ``gr.State``, which is copied per session). Gradio calls each with
    keyword arguments named after its inputs; each returns its outputs in wiring order."""

    state: AppState
    flags: StopFlags = field(default_factory=StopFlags)

    def search(
        self,
        library_path: str | None,
        backbone_key: str,
        mode: str,
        k: float,
        metric: str,
        coverage: float | str = hs.DEFAULT_COVERAGE,
        photo: Image.Image | None = None,
        stated_label: str | None = None,
        case_relpath: str | None = None,
        prompt: str | None = None,
        variant: str | None = None,
        request: gr.Request | None = None,
        progress: gr.Progress = PROGRESS,
    ) -> tuple[list, str, list[dict], dict, dict]:
        """The Search button, and what every other search event ends in: results, summary, the
        hits kept for clicking, "search with this case" switched off (nothing is selected yet)
        and, last, the machine-readable summary (the CLI's ``--json``); notes pop up as toasts.

        A first search on a backbone builds the library's index; the tab's Cancel button stops
        it through this session's stop flag, and the search then answers with the cancel."""

        def work(flag):
            return hs.run_search(
                self.state,
                library_path=library_path,
                backbone_key=backbone_key,
                mode=mode,
                k=k,
                metric=metric,
                coverage=coverage,
                photo=expand_photo(photo),
                stated_label=stated_label,
                case_relpath=case_relpath,
                prompt=prompt,
                variant=variant,
                progress=stoppable(
                    lambda f, m: progress(f, desc=m), flag, message=index_notice.CANCELLED_BUILD
                ),
            )

        try:
            outcome = run_stoppable(self.flags, session_of(request), SEARCHING, work)
        except Cancelled as stopped:  # a result, not a failure: the page says what happened
            return [], str(stopped), [], gr.update(interactive=False), None
        for note in outcome.notes:
            gr.Info(note, duration=8)
        return (
            outcome.gallery,
            outcome.summary,
            outcome.hits,
            gr.update(interactive=False),
            outcome.report,
        )

    def take_photo(
        self,
        image: str | None,
        library: str | None,
        backbone: str,
        k: float = 10,
        similarity: str = "cosine",
        diagnosis: str | None = None,
        coverage: float | str = hs.DEFAULT_COVERAGE,
        variant: str | None = None,
        request: gr.Request | None = None,
        progress: gr.Progress = PROGRESS,
    ) -> tuple:
        """An upload (also the ``/search_photo`` API): keep the photo in the session and search
        with it at once. The last output is the same JSON summary the CLI's ``--json`` prints."""
        photo = read_query_photo(image)  # a bad upload stops here with its reason
        kept = (compact_photo(photo), preview_html(photo), "photo", None)
        try:
            found = self.search(
                library_path=library,
                backbone_key=backbone,
                mode="photo",
                k=k,
                metric=similarity,
                coverage=coverage,
                photo=photo,
                stated_label=diagnosis,
                variant=variant,
                request=request,
                progress=progress,
            )
        except Exception as err:  # keep the photo: the user can fix the cause and press Search
            log_unexpected(err, handler=self.take_photo)
            message = user_message(err)
            gr.Warning(message)
            return (*kept, [], f"**Not searched yet:** {message}", [], gr.skip(), gr.skip())
        return (*kept, *found)

    def relabel(
        self,
        library_path: str | None,
        backbone_key: str,
        mode: str,
        k: float,
        metric: str,
        coverage: float | str,
        photo: Image.Image | None,
        stated_label: str | None,
        variant: str | None = None,
        request: gr.Request | None = None,
        progress: gr.Progress = PROGRESS,
    ) -> tuple:
        """A new diagnosis for the query photo re-frames its results; other queries wait."""
        if mode != "photo" or photo is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return self.search(
            library_path=library_path,
            backbone_key=backbone_key,
            mode="photo",
            k=k,
            metric=metric,
            coverage=coverage,
            photo=photo,
            stated_label=stated_label,
            variant=variant,
            request=request,
            progress=progress,
        )

    def pick_case(
        self,
        examples: list[dict],
        library_path: str | None,
        backbone_key: str,
        k: float,
        metric: str,
        coverage: float | str,
        evt: gr.SelectData,
        variant: str | None = None,
        request: gr.Request | None = None,
        progress: gr.Progress = PROGRESS,
    ) -> tuple:
        """A click in the examples strip searches with that library case."""
        if not examples or evt.index is None or evt.index >= len(examples):
            raise ValueError("That example is gone: reload the library and try again.")
        case = examples[evt.index]
        found = self.search(
            library_path=library_path,
            backbone_key=backbone_key,
            mode="case",
            k=k,
            metric=metric,
            coverage=coverage,
            case_relpath=case["relpath"],
            variant=variant,
            request=request,
            progress=progress,
        )
        md = f"Query: **{case.get('label_shown') or case['label']}** · `{case['relpath']}`"
        return "case", case["relpath"], md, *found

    def submit_text(
        self,
        library_path: str | None,
        backbone_key: str,
        k: float,
        metric: str,
        coverage: float | str,
        prompt: str | None,
        variant: str | None = None,
        request: gr.Request | None = None,
        progress: gr.Progress = PROGRESS,
    ) -> tuple:
        """Enter in the prompt box searches by text."""
        found = self.search(
            library_path=library_path,
            backbone_key=backbone_key,
            mode="text",
            k=k,
            metric=metric,
            coverage=coverage,
            prompt=prompt,
            variant=variant,
            request=request,
            progress=progress,
        )
        return "text", *found

    def search_with_selected(
        self,
        relpath: str | None,
        library_path: str | None,
        backbone_key: str,
        k: float,
        metric: str,
        coverage: float | str,
        variant: str | None = None,
        request: gr.Request | None = None,
        progress: gr.Progress = PROGRESS,
    ) -> tuple:
        """'Search with this case': the clicked result becomes the query."""
        if not relpath:
            raise ValueError("Click a result first, then search with it.")
        found = self.search(
            library_path=library_path,
            backbone_key=backbone_key,
            mode="case",
            k=k,
            metric=metric,
            coverage=coverage,
            case_relpath=relpath,
            variant=variant,
            request=request,
            progress=progress,
        )
        md = f"Query: library case `{relpath}`"
        return "case", relpath, md, gr.Tabs(selected="case"), *found


def show_result(hits: list[dict], evt: gr.SelectData) -> tuple:
    """A click on a result shows it large, with its metadata."""
    image, md, relpath = hs.result_details(hits, evt.index)
    return image, md, relpath, gr.update(interactive=bool(relpath))


def results_out_of_date() -> tuple:
    """A changed library, backbone, k, similarity or coverage: clear what the last search
    showed, so no result stands for settings it was not made with."""
    note = "Settings changed: press **Search** (or add a photo) for results with these settings."
    cleared = ([], note, [], gr.update(interactive=False), None)
    return (*cleared, None, "Click a result to see it large.", None)


def text_box_update(backbone_key: str) -> dict:
    """The prompt box follows the backbone: usable only with a text tower."""
    ok, hint = hs.text_box_state(backbone_key)
    return gr.update(interactive=ok, info=hint)
