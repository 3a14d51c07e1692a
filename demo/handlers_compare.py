"""Compare tab: backbones side by side on one query, their disagreements, lesson exports.

Plain functions (no gradio). ``compare_stream`` yields the rows as they become ready: a backbone
whose index is missing or stale is built in a worker thread while the rows already computed stay
on screen, and its slot shows the build's progress.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

import demo.handlers_search as hs
from benchmarks.disagreements import (
    Disagreements,
    QueryTop1,
    copy_groups,
    find_disagreements,
    per_query_top1,
)
from data_index import cache_root
from data_index.audit import audit_library
from data_index.compare import (
    MAX_BACKBONES,
    BackboneRow,
    CompareQuery,
    Comparison,
    assemble,
    case_label,
    compare_row,
    copy_case_ids,
    parse_backbones,
)
from data_index.compare_render import (
    comparison_html,
    contact_sheet,
    overlap_lines,
    query_html,
    row_html,
)
from data_index.trusted_search import cached_copy_groups
from data_index.variant_search import parse_search_variant
from demo.render import square_thumbnail
from demo.state import AppState
from models import get_spec

POLL_S = 0.5
MODES = ("photo", "case", "text")


@dataclass
class Shown:
    """What the tab keeps of the last comparison, for re-drawing and exports."""

    comparison: Comparison | None = None
    query_image: Image.Image | str | None = None
    library_name: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def build_query(
    state: AppState,
    *,
    library_path: str,
    mode: str,
    photo: object = None,
    stated_label: str | None = None,
    case_relpath: str | None = None,
    prompt: object = None,
) -> tuple[CompareQuery, Image.Image | str]:
    """The query every backbone answers, and the picture that stands for it in exports."""
    if mode not in MODES:
        raise ValueError(f"Query mode must be one of {', '.join(MODES)}, not {mode!r}.")
    library = state.library(library_path)
    if mode == "photo":
        image = hs.parse_photo(photo)
        label = stated_label if stated_label in library.labels else None
        return CompareQuery(kind="photo", image=image, label=label), image
    if mode == "case":
        if not case_relpath or case_relpath not in set(library.cases["relpath"]):
            raise ValueError("No library case is picked: click one in the examples strip.")
        path = str(library.cases.loc[library.cases["relpath"] == case_relpath, "path"].iloc[0])
        copies = copy_case_ids(library, case_relpath, audit_if_missing=False)
        label = case_label(library, case_relpath)
        return CompareQuery(kind="case", relpath=case_relpath, label=label, copies=copies), path
    text = hs.parse_prompt(prompt)
    label = hs.label_from_text(text, library.labels)
    tile = Image.new("RGB", (320, 320), (240, 240, 240))
    return CompareQuery(kind="text", text=text, label=label), tile


def _name(key: str) -> str:
    return get_spec(key).name


def message_html(key: str, text: str, *, busy: bool = False) -> str:
    css = "cmp-busy" if busy else "cmp-msg"
    return (
        f'<div class="cmp-row {css}" data-backbone="{key}"><b>{_name(key)}</b> '
        f"<span>{text}</span></div>"
    )


def overlap_markdown(comparison: Comparison | None, *, pending: int = 0) -> str:
    if comparison is None or len(comparison.rows) < 2:
        return "The overlap appears once two rows are ready." if pending else ""
    lines = overlap_lines(comparison)
    if pending:
        lines.append(f"{pending} more row(s) still being prepared.")
    return "**How much they agree.** " + " ".join(lines)


def _row_slots(rows: dict[str, str], keys: list[str], *, width: int = MAX_BACKBONES) -> list[str]:
    shown = [rows.get(key, "") for key in keys]
    return shown + [""] * (width - len(shown))


def _build_in_thread(state: AppState, library_path: str, key: str) -> tuple[threading.Thread, dict]:
    """Start building (or updating) one index; the dict carries progress, result and error."""
    box: dict = {"message": "starting", "index": None, "error": None}

    def progress(fraction: float, message: str) -> None:
        box["message"] = f"{message} ({fraction:.0%})"

    def work() -> None:
        try:
            box["index"] = state.index(library_path, key, progress=progress)
        except Exception as err:  # shown in the row's slot; other rows carry on
            box["error"] = err

    thread = threading.Thread(target=work, daemon=True, name=f"compare-build-{key}")
    thread.start()
    return thread, box


def compare_stream(
    state: AppState,
    *,
    library_path: str,
    backbones: list[str],
    query: CompareQuery,
    query_image: Image.Image | str,
    k: int,
    hide_labels: bool = False,
    variant: str | None = None,
) -> Iterator[tuple[list[str], str, Shown]]:
    """Yield (row slots as HTML, overlap markdown, what is shown) after every change: ready
    indexes first, then each missing one as its build finishes."""
    keys = parse_backbones(backbones)
    variant = parse_search_variant(variant)
    if variant is not None and query.kind == "text":
        raise ValueError("Retrieval variants rank photos: pick the plain search to compare text.")
    library = state.library(library_path)
    ready = [key for key in keys if state.index_status(library_path, key).state == "ready"]
    later = [key for key in keys if key not in ready]
    html: dict[str, str] = {
        key: message_html(key, "waiting for an index of this library…", busy=True) for key in later
    }
    done: dict[str, BackboneRow] = {}
    shown = Shown(query_image=query_image, library_name=library.name)

    def current() -> tuple[list[str], str, Shown]:
        ordered = [done[key] for key in keys if key in done]
        shown.comparison = assemble(query, ordered, k=k) if ordered else None
        if shown.comparison is not None:
            for row in shown.comparison.rows:
                html[row.key] = row_html(row, k=k, hide_label=hide_labels)
        pending = len(keys) - len(done) - len(shown.errors)
        return _row_slots(html, keys), overlap_markdown(shown.comparison, pending=pending), shown

    def run_row(key: str, index) -> None:
        try:
            prepared, calibration = None, None
            if variant is not None:
                groups = cached_copy_groups(index, library)
                prepared = state.variant(library_path, key, variant, groups=groups)
            elif query.kind != "text":
                _, calibration, _ = hs.trust_inputs(
                    state, library_path, index, k=k, metric="cosine"
                )
            done[key] = compare_row(
                index,
                state.backbone(key),
                query,
                k=k,
                variant=prepared,
                calibration=calibration,
            )
        except ValueError as err:
            shown.errors[key] = str(err)
            html[key] = message_html(key, str(err))

    for key in ready:
        run_row(key, state.index(library_path, key))
        yield current()
    for key in later:
        thread, box = _build_in_thread(state, library_path, key)
        while thread.is_alive():
            text = f"building its index of {library.name}: {box['message']}"
            html[key] = message_html(key, text, busy=True)
            yield current()
            thread.join(POLL_S)
        if box["error"] is not None:
            shown.errors[key] = str(box["error"])
            html[key] = message_html(key, f"could not build its index: {box['error']}")
        else:
            run_row(key, box["index"])
        yield current()


def redraw(shown: Shown | None, *, hide_labels: bool) -> tuple[list[str], str]:
    """The rows of the last comparison again, with diagnoses hidden or revealed."""
    if shown is None or shown.comparison is None:
        return [""] * MAX_BACKBONES, ""
    comparison = shown.comparison
    html = {r.key: row_html(r, k=comparison.k, hide_label=hide_labels) for r in comparison.rows}
    html |= {key: message_html(key, text) for key, text in shown.errors.items()}
    keys = [r.key for r in comparison.rows] + list(shown.errors)
    return _row_slots(html, keys), overlap_markdown(comparison)


def picked_hit(shown: Shown | None, *, backbone: str, rank: int):
    """(row, hit) of a case clicked in a row of the last comparison."""
    rows = shown.comparison.rows if shown is not None and shown.comparison is not None else ()
    row = next((r for r in rows if r.key == backbone), None)
    hit = next((h for h in row.hits if h.rank == rank), None) if row is not None else None
    if hit is None:
        raise ValueError("That case is no longer shown: run the comparison again, then click it.")
    return row, hit


def query_line(shown: Shown | None) -> str:
    """The query's picture and what it is, above the rows."""
    if shown is None or shown.comparison is None:
        return ""
    return query_html(shown.comparison, query_image=shown.query_image)


# --- exports -----------------------------------------------------------------------------------
def _export_path(shown: Shown, suffix: str) -> Path:
    folder = cache_root() / "exports" / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return folder / f"comparison-{shown.library_name or 'library'}-{stamp}{suffix}"


def _need(shown: Shown | None) -> Comparison:
    if shown is None or shown.comparison is None or not shown.comparison.rows:
        raise ValueError("Run a comparison first; then save it for a lesson.")
    return shown.comparison


def export_html(shown: Shown | None) -> str:
    """A self-contained HTML page of the comparison (images embedded); returns its path."""
    comparison = _need(shown)
    path = _export_path(shown, ".html")
    page = comparison_html(
        comparison, query_image=shown.query_image, library_name=shown.library_name
    )
    path.write_text(page, encoding="utf-8")
    return str(path)


def export_sheet(shown: Shown | None) -> str:
    """A 1920x1080 PNG contact sheet (rows = backbones); returns its path."""
    comparison = _need(shown)
    path = _export_path(shown, ".png")
    contact_sheet(comparison, query_image=shown.query_image).save(path)
    return str(path)


# --- disagreement explorer ---------------------------------------------------------------------
def disagreements(state: AppState, *, library_path: str, a: str, b: str) -> Disagreements:
    """Leave-one-out top-1 of two backbones over the library, split into who was right."""
    if not a or not b or get_spec(a).key == get_spec(b).key:
        raise ValueError("Pick two different backbones to find where they disagree.")
    library = state.library(library_path)

    def compute() -> Disagreements:
        report = audit_library(library)
        tops = {}
        for key in (a, b):
            index = state.index(library_path, key)
            tops[key] = per_query_top1(index, group_ids=copy_groups(library, index, report))
        return find_disagreements(a, tops[a], b, tops[b])

    return state.memo(("disagreements", library.fingerprint, a, b), compute)


def disagreement_gallery(
    pairs: tuple[tuple[QueryTop1, QueryTop1], ...], *, right: int
) -> list[tuple[Image.Image, str]]:
    """Query thumbnails captioned 'true diagnosis → what the wrong backbone's nearest case was'."""
    out = []
    for pair in pairs:
        query = pair[0]
        wrong = pair[1 - right]
        tile = square_thumbnail(query.path, size=160)
        out.append((tile, f"{query.label} → {wrong.top1_label}"))
    return out


def disagreement_summary(found: Disagreements) -> str:
    a, b = _name(found.a), _name(found.b)
    return (
        f"Over {found.n_queries} leave-one-out queries (each case against the rest, its own "
        f"copies left out): **{len(found.only_a)}** where only {a} has the right nearest case, "
        f"**{len(found.only_b)}** where only {b} has; both right {found.both_right}, both "
        f"wrong {found.both_wrong}. Click a query to compare the two on it."
    )
