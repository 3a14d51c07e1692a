"""Markdown report and HTML figures from benchmark records (JSONL) alone.

Tables follow Pham et al.'s (2025) Tables 1-3 (Top-K, embedding and search seconds) with the metrics
of
Khoiwal & McMillan (2024), Mahbod et al. (2024) and Denner et al. (2024) added; the published Pham
et al. (2025) figures are printed apart, read from
benchmarks/data/pham2025_infectious13.csv, and never mixed into this project's tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from benchmarks.records import read_records
from benchmarks.report import plots
from benchmarks.report.evidence import conventions_table, paired_table, strata_table
from benchmarks.report.figure_files import write_html, write_static
from benchmarks.report.tables import (
    degenerate_notes,
    fmt,
    fmt_seconds,
    headline_table,
    latest_runs,
    library_warnings,
    markdown_table,
    other_protocol_tables,
    overall,
    per_class_table,
)
from data_index.locations import slug

REFERENCE_CSV = Path(__file__).resolve().parents[1] / "data" / "pham2025_infectious13.csv"
DEFAULT_EXCLUSION = "case+duplicates"

DEFINITIONS = """\
Definitions (exact formulas in `benchmarks/metrics.py` and `benchmarks/votes.py`):
- **Top-k** = hit rate HR@k: share of queries with at least one image of their own class among
  the k nearest (Pham et al.'s (2025) "Top-K accuracy", Mahbod et al.'s (2024) ACC@k); not a
  precision.
- **mAP@5**: mean over queries of AP@5 = (1/min(5, R_q)) sum_{i<=5} P_q@i rel_q(i), R_q = images
  of the query's class the query may retrieve. (Mahbod et al.'s (2024) variant, normalised by the
  hits in
  the top 5, is in the records as `map_hits_normalised`.)
- **mMV@5**: share of queries whose class wins the majority vote of the 5 nearest; a tie for
  first place counts as a miss (Mahbod et al.'s (2024) code counts it a hit: `mmv_ties_counted`).
- **P@5 micro / macro**: precision in the top 5, averaged over queries / over classes (Denner et al.
(2024)).
- **LP AUC**: macro one-vs-rest AUC of Khoiwal & McMillan (2024)'s linear probe (logistic
regression, C chosen by
  cross-validated AUC over {0.1, 1, 10, 100}) on a held-out 20 %, split so that a case and its
  copies stay on one side; L2-normalised embeddings.
- **s/image**: median seconds per image to embed one batch of image files (decode, preprocess,
  forward) after warm-up, device synchronised; the batch size is in the latency table.
  **s/query**: median seconds per query of `CaseIndex.search_vector` (usearch; k = 10; the
  query's own case excluded, hits returned with their case rows), the call the app makes;
  "usearch only" times the same queries straight to the usearch index (no exclusion, no case
  table). **total** = s/image + s/query.
- Leave-one-out: every image queries the rest of its library; it may not retrieve itself, an
  image of its own case, or a copy of its photo (duplicate group found by `data_index.audit`).
"""


# Keys some runs never write (a timing-only run has no exclusion or class): present as empty.
OPTIONAL_COLUMNS = (
    "class",
    "similarity",
    "exclusion",
    "reason",
    "n_queries",
    "n_queries_with_copy",
    "n_queries_copy_other_case",
    "learned_weights",
    "usearch_s_per_query",
    "weights_missing_here",
    "device_name",
    "load_average_1min",
    "git_commit",
    "versions",
    "date",
    "conventions",
    "ci_low",
    "ci_high",
    "method",
    "library_warnings",
)
SUMMARY_SECTIONS = ("paired-comparison", "stratified")  # records built from per-query records


def with_optional_columns(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in OPTIONAL_COLUMNS if c not in frame.columns]
    return frame.assign(**dict.fromkeys(missing)) if missing else frame


def load(path: str | Path) -> pd.DataFrame:
    """The newest run of each configuration in a results file, every optional column present."""
    return with_optional_columns(latest_runs(read_records(path)))


def _notes(frame: pd.DataFrame) -> list[str]:
    lines = []
    devices = frame.dropna(subset=["device_name"]).drop_duplicates(
        ["device", "device_name", "torch_threads"]
    )
    for _, row in devices.iterrows():
        lines.append(
            f"- Device: {row['device']} ({row['device_name']}), {row.get('cpus_available', '?')} "
            f"CPU(s) available, torch threads {row.get('torch_threads', '?')}; 1-minute load "
            f"average during the runs {_load_range(frame)} (a shared machine: timings are "
            "noisier than on an idle one)."
        )
    if "weights_missing_here" in frame.columns and REFERENCE_CSV.is_file():
        missing = set()
        for text in frame["weights_missing_here"].dropna().unique():
            missing |= {k.strip() for k in str(text).split(",") if k.strip()}
        paper = pd.read_csv(REFERENCE_CSV)["key"].tolist()
        absent = [k for k in paper if k in missing]
        if absent:
            lines.append(
                f"- **The foundation models compared in the papers could not be run here**: "
                f"{len(absent)} of the {len(paper)} backbones of Pham et al. (2025) "
                f"({', '.join(absent)}) have "
                "no weights on this machine, which cannot download them (offline). The tables "
                "below compare only the backbones that have real weights here; the "
                "published figures of Pham et al. (2025) are shown apart, at the end."
            )
    arch = frame[frame["weights_origin"] == "architecture-only"]["backbone"].unique()
    if len(arch):
        lines.append(
            f"- Architecture-only (random weights, timings only, no accuracy): {', '.join(arch)}."
        )
    dates = frame["date"].dropna()
    if len(dates):
        commits = ", ".join(sorted(frame["git_commit"].dropna().astype(str).unique()))
        lines.append(f"- Runs from {dates.min()} to {dates.max()} (commit {commits}).")
    versions = frame["versions"].dropna().unique()
    if len(versions):
        lines.append(f"- Software: {versions[0]}.")
    return lines


def _load_range(frame: pd.DataFrame) -> str:
    if "load_average_1min" not in frame.columns or frame["load_average_1min"].isna().all():
        return "unknown"
    values = frame["load_average_1min"].dropna()
    return f"{values.min():.1f}-{values.max():.1f}"


def latency_table(frame: pd.DataFrame) -> str:
    rows = []
    chosen = frame[(frame["protocol"] == "latency") & (frame["metric"] == "total_s_per_image")]
    for _, r in chosen.sort_values(["library", "backbone"]).iterrows():
        rows.append(
            [
                r["library"],
                r["backbone"],
                r["weights_origin"] if r.get("learned_weights", True) else "none learned",
                int(r["n_items"]),
                int(r["embed_batch_size"]),
                f"{fmt_seconds(r['embed_s_per_image'])} (min "
                f"{fmt_seconds(r['embed_min_s'] / r['embed_items'])}, p95 "
                f"{fmt_seconds(r['embed_p95_s'] / r['embed_items'])})",
                fmt_seconds(r["search_s_per_query"]),
                fmt_seconds(r.get("usearch_s_per_query")),
                fmt_seconds(r["total_s_per_image"]),
                f"{int(r['embed_repeats'])}/{int(r['search_repeats'])}",
                f"{r['device']}: {r['device_name']}",
            ]
        )
    head = ["library", "backbone", "weights", "images", "batch", "s/image", "s/query"]
    head += ["usearch only", "total"]
    return markdown_table([*head, "repeats (embed/search)", "device"], rows)


def _duplicates_paragraph(lib: pd.DataFrame) -> tuple[str, bool]:
    """What the audit found, and whether the case-only figures differ (worth a table)."""
    loo = overall(lib)
    loo = loo[(loo["protocol"] == "leave-one-out") & (loo["exclusion"] == DEFAULT_EXCLUSION)]
    if loo.empty or "n_queries_with_copy" not in loo.columns:
        return "", False
    first = loo.iloc[0]
    n_copy = int(first["n_queries_with_copy"])
    other = int(first["n_queries_copy_other_case"])
    groups = int(first.get("n_duplicate_groups", 0) or 0)
    conflicts = int(first.get("n_duplicate_conflicts", 0) or 0)
    text = (
        f"Duplicate audit: {groups} group(s) of copies of one photo ({conflicts} with mixed "
        f"labels). **{n_copy} of {int(first['n_queries'])} queries had a copy in the library**"
    )
    if n_copy == 0:
        return text + ", so excluding copies changes nothing here.", False
    text += (
        f" ({other} of them filed as another case, so only the duplicate rule removes it). "
        "By default a query never counts an image of its own duplicate group nor of its case; "
    )
    if other == 0:
        return text + "no copy sat in another case, so the case-only figures are the same.", False
    return text + "the case-only columns below give the figures without the duplicate rule.", True


def _exclusion_table(lib: pd.DataFrame) -> str:
    loo = overall(lib)
    loo = loo[(loo["protocol"] == "leave-one-out") & (loo["similarity"] == "cosine")]
    rows = []
    for backbone, chunk in loo.groupby("backbone", sort=True):
        row = [backbone]
        for metric, k in (("hit_rate", 1), ("hit_rate", 5), ("map", 5), ("mmv", 5)):
            for exclusion in (DEFAULT_EXCLUSION, "case-only"):
                hit = chunk[
                    (chunk["metric"] == metric)
                    & (chunk["k"] == k)
                    & (chunk["exclusion"] == exclusion)
                ]
                row.append(fmt(hit["value"].mean()) if len(hit) else "")
        rows.append(row)
    head = ["backbone"]
    for label in ("Top-1", "Top-5", "mAP@5", "mMV@5"):
        head += [label, f"{label} case-only"]
    return markdown_table(head, rows)


def ours_only(frame: pd.DataFrame) -> pd.DataFrame:
    """Records under this project's conventions (older records, without the field, are), not
    the paired or stratified summaries: what every table but the evidence tables reads."""
    keep = frame["conventions"].isna() | (frame["conventions"] == "ours")
    return frame[keep & ~frame["protocol"].isin(SUMMARY_SECTIONS)]


def evidence_section(lib: pd.DataFrame) -> list[str]:
    """Conventions side by side, paired comparisons and strata of one library."""
    out = []
    table = conventions_table(lib)
    if table:
        out += [
            "### Our conventions and the papers' code",
            "",
            "The same embeddings scored both ways; `python -m benchmarks run --conventions both`. "
            "Ours: cosine on L2-normalised vectors, the query's case and copies left out, a vote "
            "tie is a miss, P@k divided by k, AUC from decision values. The papers' code: "
            "Mahbod et al. (2024) rank by Euclidean distance on raw features and leave nothing "
            "out, normalise AP by the hits in the top k and count a tied vote as a hit; Denner "
            "et al. (2024) divide P@k by min(k, index images of the query's class), give k-NN "
            "ties to the first class column, let each query vote over at most its own class "
            "count (a label leak) and choose k on a validation split; Khoiwal & McMillan (2024) "
            "(no public code) presumably use sklearn's one-vs-rest AUC on predict_proba. "
            "Brackets: 95 % intervals from 1,000 case resamples.",
            "",
            table,
            "",
        ]
    table = paired_table(lib)
    if table:
        out += [
            "### Paired comparisons of backbones (same queries)",
            "",
            "Difference a - b on the queries both answered, with a 95 % interval from 1,000 "
            "paired case resamples; p from McNemar's exact test for hit / miss outcomes, else "
            "from the bootstrap. **yes**: the interval excludes 0.",
            "",
            table,
            "",
        ]
    table = strata_table(lib)
    if table:
        out += [
            "### Stratified results",
            "",
            "Each group's queries scored apart (same neighbours as the whole library), with "
            "95 % case-resampled intervals and group sizes; the largest Top-1 gap is marked.",
            "",
            table,
            "",
        ]
    return out


def library_section(lib: pd.DataFrame, name: str) -> list[str]:
    everything, lib = lib, ours_only(lib)
    first = lib.iloc[0]
    out = [
        f"## {name}",
        "",
        f"{int(first['n_items'])} images, {int(first['n_classes'])} classes; library "
        f"fingerprint `{first['library_fingerprint']}`.",
        "",
    ]
    for warning in library_warnings(everything):
        out += [f"**Warning:** {warning}", ""]
    paragraph, differs = _duplicates_paragraph(lib)
    if paragraph:
        out += [paragraph, ""]
    if differs:
        out += [_exclusion_table(lib), ""]
    classes = per_class_table(lib, metric="hit_rate", k=1, exclusion=DEFAULT_EXCLUSION)
    if classes:
        out += ["Top-1 per class (leave-one-out, default exclusion):", "", classes, ""]
    for title, table in other_protocol_tables(lib):
        out += [f"### {title}", "", table, ""]
    return out + evidence_section(everything)


def skipped_table(frame: pd.DataFrame) -> str:
    skipped = frame[frame["metric"] == "skipped"]
    if skipped.empty:
        return ""
    rows = [
        [r["library"], r["backbone"], r["protocol"], r["reason"]]
        for _, r in skipped.sort_values(["library", "backbone", "protocol"]).iterrows()
    ]
    return markdown_table(["library", "backbone", "protocol", "why not"], rows)


def reference_table(path: Path = REFERENCE_CSV) -> str:
    """Pham et al.'s (2025) published Tables 1-3, as printed (not this project's results)."""
    ref = pd.read_csv(path)
    rows = [
        [
            f"{r['model']} {r['version_as_printed']}",
            r["family"],
            int(r["embed_dim"]),
            *(fmt(r[c]) for c in ("top1", "top2", "top5", "top10", "top20")),
            fmt_seconds(r["embed_s_per_image"]),
            fmt_seconds(r["search_s_per_query"]),
            fmt_seconds(r["total_s_per_image"]),
            r["source"].split(", ")[-1],
        ]
        for _, r in ref.iterrows()
    ]
    head = ["model (as printed)", "family", "dim", "Top-1", "Top-2", "Top-5", "Top-10", "Top-20"]
    return markdown_table([*head, "s/image", "s/query", "total", "table"], rows)


def markdown_report(frame: pd.DataFrame, *, source: str = "", notes: Sequence[str] = ()) -> str:
    """The whole report: notes, headline table, latency, per-library sections, reference.
    ``notes`` are caveats the records cannot know (e.g. what a backbone was trained on)."""
    frame = with_optional_columns(frame)
    lines = ["# Backbone comparison: retrieval accuracy and latency", ""]
    if source:
        lines += [f"Generated by `python -m benchmarks report {source}` from the records.", ""]
    lines += [*_notes(frame), *degenerate_notes(frame), *(f"- {note}" for note in notes)]
    lines += ["", DEFINITIONS]
    lines += [
        "## Leave-one-out retrieval (layout of Pham et al.'s (2025) Tables 1-3)",
        "",
        "Each query excludes its own case and its duplicate group; each library's section says "
        "how many queries had a copy and, where it matters, gives the case-only figures.",
        "",
        headline_table(ours_only(frame), exclusion=DEFAULT_EXCLUSION),
        "",
        "## Latency",
        "",
        latency_table(ours_only(frame)),
        "",
    ]
    for name in sorted(frame["library"].dropna().unique()):
        lines += library_section(frame[frame["library"] == name], name)
    skipped = skipped_table(frame)
    if skipped:
        lines += ["## Not run", "", skipped, ""]
    if REFERENCE_CSV.is_file():
        ref = pd.read_csv(REFERENCE_CSV)
        lines += [
            "## Published reference: Pham et al. (2025), Tables 1-3 (NOT this project's results)",
            "",
            f"As printed in {ref['source'].iloc[0].split(', ')[0]}: 13 infectious skin diseases x "
            "100 photos (1,300 images), leave-one-out, cosine; hardware not stated. Different "
            "images, classes and machine from the tables above, so not comparable row for row. "
            "Read from `benchmarks/data/pham2025_infectious13.csv` (see its README).",
            "",
            reference_table(),
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def published_points(path: Path = REFERENCE_CSV) -> pd.DataFrame:
    """Pham et al.'s (2025) Top-1 and time per image (embed + search), for the hollow series."""
    if not path.is_file():
        return pd.DataFrame(columns=["backbone", "value", "total_s_per_image"])
    ref = pd.read_csv(path)
    return pd.DataFrame(
        {
            "backbone": ref["model"],
            "value": ref["top1"],
            "total_s_per_image": ref["total_s_per_image"],
        }
    )


def save_plots(frame: pd.DataFrame, folder: str | Path, *, static: bool = True) -> list[Path]:
    """Per library: Top-1 against time per image (also PNG and SVG), hit rate at k, and Top-1
    per class, as HTML that reads offline (one plotly.js per folder). Static images are
    skipped with a printed reason when kaleido cannot draw them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    variants = frame[frame["protocol"] == "variant"] if "protocol" in frame.columns else frame[:0]
    frame = ours_only(with_optional_columns(frame))
    chosen = frame[
        (frame["weights_origin"] == "pretrained") & (frame["protocol"] == "leave-one-out")
    ]
    chosen = chosen[(chosen["exclusion"] == DEFAULT_EXCLUSION) & (chosen["similarity"] == "cosine")]
    written = []
    for name, lib in chosen.groupby("library", sort=True):
        figures = {
            "top1-vs-latency": plots.accuracy_vs_latency(
                lib,
                metric="hit_rate",
                k=1,
                latency_key="total_s_per_image",
                published=published_points(),
                variants=variants[variants["library"] == name] if len(variants) else None,
            ),
            "hit-rate-at-k": plots.hit_rate_curves(lib),
            "top1-per-class": plots.per_class_bars(lib, metric="hit_rate", k=1),
        }
        for kind, figure in figures.items():
            figure.update_layout(title=f"{name}: {figure.layout.title.text}")
            path = folder / f"{slug(str(name))}-{kind}"
            written.append(write_html(figure, path.with_suffix(".html")))
            if static and kind == "top1-vs-latency":
                try:
                    written += write_static(figure, path)
                except RuntimeError as err:
                    print(f"No PNG/SVG of {path.name}: {err}")
                    static = False
    return written
