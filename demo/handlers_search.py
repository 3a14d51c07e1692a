"""Search tab: parse the query, embed it, search the index, and format framed results.

Plain functions (no gradio): they raise ValueError with a sentence a user can act on, and the
layout turns those into ``gr.Error`` messages.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from data_index.library import LABEL_NAME
from data_index.query_match import file_sha1
from data_index.trust import DEFAULT_COVERAGE
from data_index.trusted_search import (
    cached_copy_groups,
    similarity_threshold,
    trusted_search,
    vote_calibration,
)
from data_index.variant_search import mirrored_query, parse_search_variant
from data_index.variants import VARIANTS
from demo.arguments import without_server_paths
from demo.render import (
    display_label,
    framed_thumbnail,
    large_view,
    result_caption,
    square_thumbnail,
    verdict_for,
)
from demo.state import AppState, Progress
from demo.summary_search import format_summary
from demo.variant_advice import used_variant, variant_note
from models import get_spec, list_specs, open_image
from models.weights import availability

MAX_PROMPT_CHARS = 300
MAX_K = 50
METRICS = ("cosine", "euclidean")
MODES = ("photo", "case", "text")
QUERY_SHA1 = "query_sha1"  # where an upload's file hash rides along in the image's info
DISCLAIMER = (
    "**Research and teaching tool — not a diagnostic device.** Results show which library "
    "photos a model finds similar; they are not a diagnosis and must not guide care."
)


@dataclass
class SearchOutcome:
    """Everything the Search tab shows after one query."""

    gallery: list[tuple[Image.Image, str]]
    summary: str
    hits: list[dict[str, Any]]
    query_label: str | None
    notes: list[str] = field(default_factory=list)
    embed_ms: float = 0.0
    search_ms: float = 0.0
    report: dict[str, Any] = field(default_factory=dict)  # the CLI's --json summary


# --- backbone picker ---------------------------------------------------------------------------
def backbone_choices() -> tuple[list[tuple[str, str]], str]:
    """Dropdown choices of runnable backbones grouped by family, and a markdown table of the
    others with the reason each cannot run here (never hidden)."""
    runnable: list[tuple[str, str]] = []
    rows = []
    for spec in sorted(list_specs(), key=lambda s: (s.family, s.name)):
        avail = availability(spec)
        if avail.ready:
            text = " · text" if spec.has_text else ""
            runnable.append((f"[{spec.family}] {spec.name} ({spec.key}){text}", spec.key))
        else:
            reason = {
                "download": "needs download",
                "gated": "gated",
                "unsupported": "missing package / unsupported",
            }[avail.status]
            name = f"{spec.name} (`{spec.key}`)"
            detail = without_server_paths(avail.detail)
            rows.append(f"| {spec.family} | {name} | {reason}: {detail} |")
    table = "| family | backbone | why not here |\n|---|---|---|\n" + "\n".join(rows)
    intro = (
        f"{len(rows)} registered backbone(s) cannot run on this machine. Whoever runs the app "
        "can enable one by putting its weights in the Hugging Face cache or the local weights "
        "folder (the README's *What runs where* says how) and restarting.\n\n"
    )
    return runnable, (intro + table) if rows else "Every registered backbone can run here."


def text_box_state(backbone_key: str) -> tuple[bool, str]:
    """Whether the text prompt is usable with this backbone, and the hint to show under it."""
    try:
        spec = get_spec(backbone_key)
    except ValueError as err:
        return False, str(err)
    if spec.has_text:
        return True, f"{spec.name} has a text tower: describe a lesion or type a class name."
    return False, (
        f"{spec.name} embeds images only, so text search is off. Pick a backbone marked "
        "'· text' (a CLIP-style dual encoder) to search by words."
    )


# --- parsing -----------------------------------------------------------------------------------
def parse_k(k: object) -> int:
    try:
        value = int(k)  # sliders send floats
    except (TypeError, ValueError) as err:
        raise ValueError(f"k must be a whole number from 1 to {MAX_K}, not {k!r}.") from err
    if not 1 <= value <= MAX_K:
        raise ValueError(f"k must be from 1 to {MAX_K}, not {value}.")
    return value


def parse_metric(metric: object) -> str:
    value = str(metric or "cosine").strip().lower()
    if value not in METRICS:
        raise ValueError(f"Similarity must be one of {', '.join(METRICS)}, not {metric!r}.")
    return value


def parse_prompt(text: object) -> str:
    prompt = " ".join(str(text or "").split())
    if not prompt:
        raise ValueError(
            "The text prompt is empty: describe the lesion, e.g. 'ringworm on an arm'."
        )
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(
            f"The prompt is {len(prompt):,} characters long; keep it under {MAX_PROMPT_CHARS} "
            "(text towers read only the first ~77 tokens)."
        )
    return prompt


def parse_photo(image: object) -> Image.Image:
    """An uploaded photo (PIL, numpy array or file path) as upright RGB, or a sentence."""
    if image is None or (isinstance(image, str) and not image.strip()):
        raise ValueError("No photo yet: drop one on the query box, paste it, or use the webcam.")
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or image.size == 0:
            raise ValueError("The uploaded image has no pixels; try another file.")
        image = Image.fromarray(image.astype(np.uint8))
    if isinstance(image, str | Path | Image.Image):
        try:
            return open_image(image)
        except ValueError as err:
            # open_image names the server-side temp path; the visitor only needs the file name.
            name = Path(image).name if isinstance(image, str | Path) else "the image"
            why = (
                "it is too large to open safely"
                if "too large" in str(err)
                else ("it is not an image file, or it is damaged")
            )
            raise ValueError(
                f"That upload ({name}) is not a photo we can read: {why}. Upload a JPEG, PNG or "
                "WebP photo."
            ) from err
    raise ValueError(f"Unsupported query of type {type(image).__name__}; upload a JPEG or PNG.")


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def label_from_text(text: str, labels: list[str]) -> str | None:
    """The library class a prompt names exactly (ignoring case, spaces, dashes), else None."""
    wanted = _squash(text)
    for label in labels:
        readable = re.sub(r"^[A-Z]{2}-", "", label)  # infectious-8 prefixes such as 'FU-'
        if wanted in (_squash(label), _squash(readable)):
            return label
    return None


# --- examples strip ----------------------------------------------------------------------------
def example_cases(state: AppState, library_path: str, *, per_class: int = 2) -> list[dict]:
    """A few cases of each class (the first in file order: reproducible) for the examples."""
    library = state.library(library_path)
    names = library.label_names
    picked = library.cases.groupby("label", sort=True, group_keys=False).head(per_class)
    return [
        {
            "relpath": r.relpath,
            "path": r.path,
            "label": r.label,
            "label_shown": display_label(r.label, names),
            "case_id": r.case_id,
        }
        for r in picked.itertuples(index=False)
    ]


def example_gallery(examples: list[dict]) -> list[tuple[Image.Image, str]]:
    return [
        (square_thumbnail(e["path"], size=160), e.get("label_shown") or e["label"])
        for e in examples
    ]


def label_choices(state: AppState, library_path: str) -> list[tuple[str, str]]:
    """The diagnosis picker's choices: each label by its display name, sent as the label."""
    library = state.library(library_path)
    names = library.label_names
    return [(display_label(label, names), label) for label in library.labels]


# --- the search itself -------------------------------------------------------------------------
def _case_row(cases: pd.DataFrame, relpath: str) -> pd.Series:
    match = cases.index[cases["relpath"] == relpath]
    if len(match) == 0:
        raise ValueError(
            f"The case {relpath} is no longer in this library; pick another one or reload it."
        )
    return cases.loc[match[0]]


def parse_coverage(coverage: object) -> float:
    """A coverage as a fraction: 0.9, "0.9", 90 or "90%" all mean 90 %."""
    text = str(DEFAULT_COVERAGE if coverage in (None, "") else coverage).strip().rstrip("%")
    try:
        value = float(text)
    except ValueError as err:
        raise ValueError(f"Coverage must be a percentage such as 90, not {coverage!r}.") from err
    value = value / 100 if value > 1 else value
    if not 0.5 <= value <= 0.99:
        raise ValueError(f"Coverage must be from 50 % to 99 %, not {coverage!r}.")
    return value


def trust_inputs(state: AppState, library_path: str, idx, *, k: int, metric: str):
    """Duplicate groups (when audited), the vote's calibration and the similarity threshold of
    this index, computed once per index version and setting."""
    library = state.library(library_path)
    groups = cached_copy_groups(idx, library)
    version = (str(Path(library_path).resolve()), idx.key, library.fingerprint, len(idx), id(idx))
    audited = groups is not None
    calibration = state.memo(
        ("vote-calibration", *version, audited, k, metric),
        lambda: vote_calibration(idx, k=k, metric=metric, group_ids=groups),
    )
    threshold = state.memo(
        ("similarity-threshold", *version, audited),
        lambda: similarity_threshold(idx, group_ids=groups),
    )
    return groups, calibration, threshold


def run_search(
    state: AppState,
    *,
    library_path: str,
    backbone_key: str,
    mode: str,
    k: object = 10,
    metric: object = "cosine",
    coverage: object = DEFAULT_COVERAGE,
    photo: object = None,
    stated_label: str | None = None,
    case_relpath: str | None = None,
    prompt: object = None,
    variant: object = None,
    progress: Progress | None = None,
) -> SearchOutcome:
    """Search the library for the nearest cases to a photo, a library case or a text prompt,
    ranked plainly or with a retrieval ``variant`` (photos and library cases only)."""
    if mode not in MODES:
        raise ValueError(f"Query mode must be one of {', '.join(MODES)}, not {mode!r}.")
    k, metric, coverage = parse_k(k), parse_metric(metric), parse_coverage(coverage)
    variant_name = parse_search_variant(variant)
    if variant_name is not None and metric != "cosine":
        raise ValueError(
            "Retrieval variants compare photos by cosine similarity: pick cosine similarity, "
            "or the plain search."
        )
    # Cheap input checks first: a bad upload should not wait for an index build.
    if mode == "text" and not text_box_state(backbone_key)[0]:
        raise ValueError(text_box_state(backbone_key)[1])  # the reason, not "prompt is empty"
    image = parse_photo(photo) if mode == "photo" else None
    text = parse_prompt(prompt) if mode == "text" else None
    if mode == "case" and not case_relpath:
        raise ValueError("No library case is picked: click one in the examples strip.")
    if mode == "text" and metric == "euclidean":
        raise ValueError(
            "Euclidean distance compares raw image vectors, which text vectors do not share a "
            "scale with: use cosine for text prompts."
        )
    library = state.library(library_path)
    idx = state.index(library_path, backbone_key, progress=progress)
    backbone = state.backbone(backbone_key)
    groups, calibration, threshold = trust_inputs(state, library_path, idx, k=k, metric=metric)
    notes: list[str] = []
    if variant_name is not None and mode == "text":
        notes.append("Retrieval variants rank photos: this text search is the plain one.")
        variant_name = None
    prepared = used_variant(state, library_path, backbone_key, variant_name, groups, notes)
    exclude: tuple[str, ...] = ()
    query_sha1, flipped, query_row = None, None, None
    started = time.perf_counter()
    if mode == "photo":
        query_label = stated_label if stated_label in library.labels else None
        vector = backbone.encode_images([image], normalize=False)[0]
        if variant_name == "tta-flip":
            flipped = mirrored_query(backbone, image)
        if isinstance(photo, str | Path) and Path(photo).is_file():
            query_sha1 = file_sha1(photo)
        elif isinstance(photo, Image.Image):
            query_sha1 = photo.info.get(QUERY_SHA1)
    elif mode == "case":
        row = _case_row(idx.cases, case_relpath)
        query_label, exclude = str(row["label"]), (str(row["case_id"]),)
        query_sha1 = str(row["sha1"])
        query_row = int(idx.row_positions([int(row["key"])])[0])
        vector = idx.raw[query_row]
    else:
        query_label = label_from_text(text, library.labels)
        vector = backbone.encode_texts([text])[0]
    embed_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    report = trusted_search(
        idx,
        vector,
        k=k,
        metric=metric,
        coverage=coverage,
        query_image=image,
        query_sha1=query_sha1,
        exclude_case_ids=exclude,
        group_ids=groups,
        calibration=calibration,
        # Text and image vectors sit at other similarities: the photo threshold does not apply.
        threshold=threshold if mode != "text" else float("nan"),
        variant=prepared,
        mirrored_vector=flipped,
        query_row=query_row,
    )
    search_ms = (time.perf_counter() - started) * 1000
    if len(report.hits) < k:
        notes.append(f"The library holds only {len(report.hits)} other case(s), fewer than k={k}.")
    names = library.label_names
    gallery, records = [], []
    for hit in report.hits:
        verdict = verdict_for(query_label=query_label, hit_label=hit.label)
        shown = {
            "rank": hit.rank,
            "label": hit.label,
            "score": hit.score,
            "metric": metric,
            "case_id": hit.case_id,
            "verdict": verdict,
        }
        caption = result_caption(**shown, names=names)
        gallery.append((framed_thumbnail(hit.path, verdict=verdict), caption))
        records.append(
            {
                "rank": hit.rank,
                "label": hit.label,
                "label_shown": display_label(hit.label, names),
                "score": hit.score,
                "case_id": hit.case_id,
                "path": hit.path,
                "relpath": str(hit.metadata.get("relpath", "")),
                "verdict": verdict,
                "metric": metric,
                "variant": variant_name,
                "metadata": {key: _plain(v) for key, v in hit.metadata.items()},
            }
        )
    summary = format_summary(
        report=report,
        query_kind=mode,
        query_label=query_label,
        stated_label=stated_label if mode == "photo" else None,
        embed_ms=embed_ms,
        search_ms=search_ms,
        backbone_name=backbone.spec.name,
        variant_note=variant_note(library, backbone_key, variant_name),
        names=names,
    )
    return SearchOutcome(
        gallery,
        summary,
        records,
        query_label,
        notes,
        embed_ms,
        search_ms,
        report.as_json(paths=False),
    )


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return value


# --- result details ----------------------------------------------------------------------------
def result_details(hits: list[dict], index: int | None) -> tuple[Image.Image, str, str]:
    """The clicked result, large, with its metadata; returns (image, markdown, relpath)."""
    if not hits or index is None or not 0 <= int(index) < len(hits):
        raise ValueError("Run a search first, then click one of its results.")
    hit = hits[int(index)]
    mark = {"match": "✓ same diagnosis", "mismatch": "✗ different diagnosis"}.get(
        hit["verdict"], "the query's diagnosis is not given"
    )
    meaning = VARIANTS[hit["variant"]].score_meaning if hit.get("variant") in VARIANTS else ""
    measure = (
        f"distance {hit['score']:.3f} (smaller is closer)"
        if hit.get("metric") == "euclidean"
        else f"score {hit['score']:.3f}: {meaning}"
        if meaning
        else f"similarity {hit['score']:.3f} (1 = same direction)"
    )
    image, size = large_view(hit["path"])
    rows = [
        f"### #{hit['rank']} {hit.get('label_shown') or display_label(hit['label'])}",
        f"{mark} · {measure} · case {hit['case_id']}",
        "",
        size,
        "",
        "| field | value |",
        "|---|---|",
    ]
    for key, value in hit["metadata"].items():
        # The label's name is the heading already; hashes mean nothing to a reader.
        if "sha1" in key or key == LABEL_NAME or value in ("", None):
            continue
        field = "file" if key == "relpath" else key
        rows.append(f"| {field} | {str(value).replace('|', '/')} |")
    return image, "\n".join(rows), hit["relpath"]
