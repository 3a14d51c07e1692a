"""Search tab: parse the query, embed it, search the index, and format framed results.

Plain functions (no gradio): they raise ValueError with a sentence a user can act on, and the
layout turns those into ``gr.Error`` messages.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from demo.render import (
    framed_thumbnail,
    large_view,
    result_caption,
    square_thumbnail,
    tile_lines,
    verdict_for,
)
from demo.state import AppState, Progress
from models import get_spec, list_specs, open_image
from models.weights import availability

MAX_PROMPT_CHARS = 300
MAX_K = 50
METRICS = ("cosine", "euclidean")
MODES = ("photo", "case", "text")
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
            rows.append(f"| {spec.family} | {name} | {reason}: {avail.detail} |")
    table = "| family | backbone | why not here |\n|---|---|---|\n" + "\n".join(rows)
    intro = (
        f"{len(rows)} registered backbone(s) cannot run on this machine; put their weights in "
        "the Hugging Face cache or `$DERMSEARCH_WEIGHTS/<key>` and restart to enable them.\n\n"
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
    cases = state.library(library_path).cases
    picked = cases.groupby("label", sort=True, group_keys=False).head(per_class)
    return [
        {"relpath": r.relpath, "path": r.path, "label": r.label, "case_id": r.case_id}
        for r in picked.itertuples(index=False)
    ]


def example_gallery(examples: list[dict]) -> list[tuple[Image.Image, str]]:
    return [(square_thumbnail(e["path"], size=160), e["label"]) for e in examples]


# --- the search itself -------------------------------------------------------------------------
def _case_row(cases: pd.DataFrame, relpath: str) -> pd.Series:
    match = cases.index[cases["relpath"] == relpath]
    if len(match) == 0:
        raise ValueError(
            f"The case {relpath} is no longer in this library; pick another one or reload it."
        )
    return cases.loc[match[0]]


def run_search(
    state: AppState,
    *,
    library_path: str,
    backbone_key: str,
    mode: str,
    k: object = 10,
    metric: object = "cosine",
    photo: object = None,
    stated_label: str | None = None,
    case_relpath: str | None = None,
    prompt: object = None,
    progress: Progress | None = None,
) -> SearchOutcome:
    """Search the library for the nearest cases to a photo, a library case or a text prompt."""
    if mode not in MODES:
        raise ValueError(f"Query mode must be one of {', '.join(MODES)}, not {mode!r}.")
    k, metric = parse_k(k), parse_metric(metric)
    # Cheap input checks first: a bad upload should not wait for an index build.
    image = parse_photo(photo) if mode == "photo" else None
    text = parse_prompt(prompt) if mode == "text" else None
    if mode == "case" and not case_relpath:
        raise ValueError("No library case is picked: click one in the examples strip.")
    if mode == "text" and not text_box_state(backbone_key)[0]:
        raise ValueError(text_box_state(backbone_key)[1])
    if mode == "text" and metric == "euclidean":
        raise ValueError(
            "Euclidean distance compares raw image vectors, which text vectors do not share a "
            "scale with: use cosine for text prompts."
        )
    library = state.library(library_path)
    idx = state.index(library_path, backbone_key, progress=progress)
    backbone = state.backbone(backbone_key)
    notes: list[str] = []
    exclude: tuple[str, ...] = ()
    started = time.perf_counter()
    if mode == "photo":
        query_label = stated_label if stated_label in library.labels else None
        vector = backbone.encode_images([image], normalize=metric == "cosine")[0]
        if stated_label and not query_label:
            notes.append(
                f"'{stated_label}' is not a class of {library.name} "
                f"({', '.join(library.labels)}), so the frames stay grey."
            )
        elif not query_label:
            notes.append(
                "Frames are grey: the photo's diagnosis is unknown. Choose it under "
                "'Diagnosis of this photo' to see green (same) and red (different) frames."
            )
    elif mode == "case":
        row = _case_row(idx.cases, case_relpath)
        query_label, exclude = str(row["label"]), (str(row["case_id"]),)
        position = idx.row_positions([int(row["key"])])[0]
        raw = idx.raw[position]
        vector = raw if metric == "euclidean" else raw / max(float(np.linalg.norm(raw)), 1e-12)
    else:
        query_label = label_from_text(text, library.labels)
        vector = backbone.encode_texts([text])[0]
        if not query_label:
            notes.append(
                "Frames are grey: the prompt does not name a library class, so no diagnosis is "
                f"known. Type one of: {', '.join(library.labels)} to score the results."
            )
    embed_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    hits = idx.search_vector(vector, k=k, exclude_case_ids=exclude, metric=metric)
    search_ms = (time.perf_counter() - started) * 1000
    if mode == "photo" and hits and metric == "cosine" and hits[0].score > 0.9999:
        notes.append(
            f"Result #1 ({hits[0].case_id}) is the same picture as the query (similarity 1.000): "
            "the photo is already in the library."
        )
    if len(hits) < k:
        notes.append(f"The library holds only {len(hits)} other case(s), fewer than k={k}.")
    gallery, records = [], []
    for hit in hits:
        verdict = verdict_for(query_label=query_label, hit_label=hit.label)
        shown = {
            "rank": hit.rank,
            "label": hit.label,
            "score": hit.score,
            "metric": metric,
            "case_id": hit.case_id,
            "verdict": verdict,
        }
        tile = framed_thumbnail(hit.path, verdict=verdict, lines=tile_lines(**shown))
        gallery.append((tile, result_caption(**shown)))
        records.append(
            {
                "rank": hit.rank,
                "label": hit.label,
                "score": hit.score,
                "case_id": hit.case_id,
                "path": hit.path,
                "relpath": str(hit.metadata.get("relpath", "")),
                "verdict": verdict,
                "metadata": {key: _plain(v) for key, v in hit.metadata.items()},
            }
        )
    summary = format_summary(
        hits=records,
        k=k,
        metric=metric,
        query_label=query_label,
        embed_ms=embed_ms,
        search_ms=search_ms,
        backbone_key=backbone.key,
        library_size=len(idx),
        query_kind=mode,
    )
    return SearchOutcome(gallery, summary, records, query_label, notes, embed_ms, search_ms)


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return value


def weighted_vote(*, labels: list[str], scores: list[float], metric: str) -> dict[str, float]:
    """Each neighbour votes for its diagnosis with its similarity (cosine, floored at 0) or
    1/(1+distance) for Euclidean; returns label -> share of the total weight, largest first."""
    weights: dict[str, float] = defaultdict(float)
    for label, score in zip(labels, scores, strict=True):
        weights[label] += max(score, 0.0) if metric == "cosine" else 1.0 / (1.0 + score)
    total = sum(weights.values()) or 1.0
    return dict(sorted(((lab, w / total) for lab, w in weights.items()), key=lambda x: -x[1]))


def format_summary(
    *,
    hits: list[dict],
    k: int,
    metric: str,
    query_label: str | None,
    embed_ms: float,
    search_ms: float,
    backbone_key: str,
    library_size: int,
    query_kind: str,
) -> str:
    """Markdown: the weighted vote, hit at k when the diagnosis is known, and the timings."""
    if not hits:
        return "No cases came back: the library has no other cases to compare with."
    labels = [h["label"] for h in hits]
    vote = weighted_vote(labels=labels, scores=[h["score"] for h in hits], metric=metric)
    top = next(iter(vote))
    lines = [
        f"**Vote: {labels.count(top)} of {len(hits)}: {top}** "
        f"(similarity-weighted share {vote[top]:.0%})"
    ]
    if query_label:
        same = labels.count(query_label)
        first = next((h["rank"] for h in hits if h["label"] == query_label), None)
        if first is not None:
            lines.append(
                f"✓ **Hit at {len(hits)}: yes** — the query is *{query_label}*; the first "
                f"same-diagnosis case is at rank {first}; {same} of {len(hits)} share it."
            )
        else:
            lines.append(
                f"✗ **Hit at {len(hits)}: no** — none of the {len(hits)} cases is *{query_label}*."
            )
    else:
        lines.append("Diagnosis of the query: unknown, so frames are grey and no hit is scored.")
    how = "cosine similarity" if metric == "cosine" else "Euclidean distance on raw vectors"
    embedding = (
        "query vector read from the index"
        if query_kind == "case"
        else f"embedding the {query_kind} {embed_ms:.0f} ms"
    )
    lines.append(
        f"{embedding} · search {search_ms:.1f} ms · {how} · {backbone_key} over "
        f"{library_size} cases."
    )
    return "\n\n".join(lines)


# --- result details ----------------------------------------------------------------------------
def result_details(hits: list[dict], index: int | None) -> tuple[Image.Image, str, str]:
    """The clicked result, large, with its metadata; returns (image, markdown, relpath)."""
    if not hits or index is None or not 0 <= int(index) < len(hits):
        raise ValueError("Run a search first, then click one of its results.")
    hit = hits[int(index)]
    mark = {"match": "✓ same diagnosis", "mismatch": "✗ different diagnosis"}.get(
        hit["verdict"], "diagnosis of the query unknown"
    )
    rows = [
        f"### #{hit['rank']} {hit['label']}",
        f"{mark} · score {hit['score']:.4f} · case `{hit['case_id']}`",
        "",
        "| field | value |",
        "|---|---|",
    ]
    for key, value in hit["metadata"].items():
        if "sha1" in key or value in ("", None):
            continue
        rows.append(f"| {key} | {str(value).replace('|', '/')} |")
    return large_view(hit["path"]), "\n".join(rows), hit["relpath"]
