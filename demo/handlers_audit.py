"""Library tab, copy audit: the evidence for each group and possible copy, what the audit is
measured to do, and a person's "not a copy" decision."""

from __future__ import annotations

import json

from PIL import Image

from data_index.audit import audit_library, group_pair, mark_not_copy, render_pair_evidence
from data_index.locations import REPO_ROOT
from demo.state import AppState, Progress

MAX_SHOWN = 12
RESULTS = REPO_ROOT / "benchmarks" / "results" / "audit.json"
BLIND_SPOTS = (
    "It is blind to different photos of one patient or lesion (give a case id for those), to "
    "crops under about a third of the photo, strong blur, and marks that move from photo to "
    "photo; possible copies are shown for you to decide and never counted."
)


def measured() -> str:
    """The audit's own benchmark figures, read from the committed results."""
    try:
        result = json.loads(RESULTS.read_text(encoding="utf-8"))
        plain, over = result["synthetic"], result["overlays"]
    except (OSError, ValueError, KeyError):
        return "The audit's benchmark figures are not on this machine. " + BLIND_SPOTS
    return (
        f"Measured on known copies of real photos: pair precision {plain['precision']:.3f}, "
        f"recall {plain['recall_in_scope_copies']:.3f} (flips, turns, crops, zooms, re-encoding, "
        f"colour); on photos carrying an atlas's logo, ruler, banner or frame: precision "
        f"{over['precision']:.3f}, recall {over['recall_overlaid_copies']:.3f} on copies and "
        f"{over['recall_reshoots']:.3f} on zoomed re-shots. " + BLIND_SPOTS
    )


def _shown(report) -> list[tuple[str, int, object]]:
    """(kind, group or -1, pair) in the order shown: label conflicts, groups, possible copies."""
    conflicts = {c.group for c in report.conflicts}
    order = sorted(range(len(report.groups)), key=lambda g: (g not in conflicts, g))
    shown = [("conflict" if g in conflicts else "copy", g, group_pair(report, g)) for g in order]
    return (shown + [("possible", -1, p) for p in report.possible])[:MAX_SHOWN]


def audit_evidence(
    state: AppState, library_path: str | None, *, progress: Progress | None = None
) -> tuple[list[tuple[Image.Image, str]], str, list[tuple[str, str]]]:
    """Evidence pictures with captions, a summary, and the pairs one may mark "not a copy"
    (label, "row_a,row_b")."""
    if not library_path:
        raise ValueError("Pick a library first.")
    library = state.library(library_path)
    report = audit_library(library, progress=progress)
    relpaths = library.cases["relpath"].astype(str).tolist()
    labels = library.cases["label"].astype(str).tolist()
    pictures, choices = [], []
    for kind, g, pair in _shown(report):
        a, b = pair.a, pair.b
        members = report.groups[g] if g >= 0 else [a, b]
        flag = {"conflict": "LABEL CONFLICT · ", "copy": "", "possible": "POSSIBLE COPY · "}[kind]
        caption = flag + " ≈ ".join(f"{relpaths[r]} [{labels[r]}]" for r in members)
        picture = render_pair_evidence(
            report.paths[a],
            report.paths[b],
            pair.evidence,
            overlay_a=report.overlays.get(a, ()),
            overlay_b=report.overlays.get(b, ()),
            captions=(relpaths[a], relpaths[b]),
        )
        pictures.append((picture, caption))
        choices.append((f"{relpaths[a]} ≈ {relpaths[b]}", f"{a},{b}"))
    s = report.summary()
    text = (
        f"**{s['n_groups']} group(s) of copies** ({s['n_images_in_groups']} images; "
        f"{s['n_conflicts']} with conflicting labels) among {s['n_images']} images: "
        f"{s['n_distinct_photos']} distinct photos. Benchmarks exclude a query's copies. "
        f"**{s['n_possible_copies']} possible copies** for you to judge (not grouped, not "
        "conflicts). Each picture shows the two photos, the matched points (green) and the "
        "overlays the audit ignored (red)."
    )
    shown = len(report.groups) + len(report.possible)
    if shown > MAX_SHOWN:
        text += f" Showing {MAX_SHOWN} of {shown} (label conflicts first)."
    for conflict in report.conflicts:
        pairs = ", ".join(
            f"`{relpaths[r]}` [{lab}]"
            for r, lab in zip(conflict.members, conflict.labels, strict=True)
        )
        text += f"\n\n**Label conflict:** {pairs}"
    text += f"\n\n*{measured()}*"
    return pictures, text, choices


def not_a_copy(
    state: AppState, library_path: str | None, choice: str | None
) -> tuple[list[tuple[Image.Image, str]], str, list[tuple[str, str]]]:
    """Store that the chosen pair is two different photos, then show the audit again."""
    if not library_path:
        raise ValueError("Pick a library first.")
    if not choice:
        raise ValueError("Choose the pair that is not a copy first.")
    library = state.library(library_path)
    try:
        row_a, row_b = (int(v) for v in str(choice).split(","))
    except ValueError:
        raise ValueError("Choose one of the pairs listed.") from None
    mark_not_copy(library, row_a=row_a, row_b=row_b)
    pictures, text, choices = audit_evidence(state, library_path)
    return pictures, "Saved: that pair is not a copy.\n\n" + text, choices
