"""Benchmark tab: run retrieval protocols over chosen backbones, show and export the records.

The work is ``benchmarks.runner`` (duplicate audit, embedding through the shared cache, timing,
protocols); this module adds the app's loaded backbones, cancelling, tables and figures. Saved
runs from ``benchmarks/results/`` (``*.jsonl`` and ``*.jsonl.gz``) show at start-up; runs made
in the app are written under the cache root, never into the repository.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from benchmarks import runner
from benchmarks.__main__ import RUNS_FOLDER
from benchmarks.protocols import REGISTRY
from benchmarks.records import read_records, read_variant_records, records_files
from benchmarks.report import plots
from benchmarks.report.tables import latest_runs
from data_index import cache_root
from data_index.locations import REPO_ROOT, slug
from demo.state import AppState, Cancelled, Progress
from models import get_spec

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"


def app_results_dir() -> Path:
    return cache_root() / "benchmarks"


def variant_record_folders() -> tuple[Path, ...]:
    """Where variant records are looked for: the committed results, the app's runs and the
    command line's default run folder (``python -m benchmarks run --variants``)."""
    return (RESULTS_DIR, app_results_dir(), cache_root() / RUNS_FOLDER)


def load_saved_records(*, folders: Sequence[Path] | None = None) -> pd.DataFrame:
    """The newest run's records of each configuration in the records files (``*.jsonl``,
    ``*.jsonl.gz``) of the committed results and the app's own runs."""
    frames = []
    for folder in folders if folders is not None else (RESULTS_DIR, app_results_dir()):
        for path in records_files(folder):
            frame = read_records(path, tolerant=True)  # runs may be writing these files
            if len(frame):
                frame["source_file"] = path.name
                frames.append(frame)
    if not frames:
        return pd.DataFrame()
    # a rerun supersedes the earlier run of the same library, backbone and protocol
    return latest_runs(pd.concat(frames, ignore_index=True))


def protocol_choices() -> list[tuple[str, str]]:
    """(label, name) of every registered protocol, in registry order, for the dropdown."""
    return [(f"{p.name}: {p.label}", p.name) for p in REGISTRY.values()]


def _check_request(library_path: str | None, backbones: Sequence[str], protocol: str) -> list[str]:
    if not library_path:
        raise ValueError("Pick a library to benchmark (Library tab, or the box above).")
    if not backbones:
        raise ValueError("Tick at least one backbone to benchmark.")
    if protocol not in REGISTRY:
        raise ValueError(f"Protocol must be one of {', '.join(REGISTRY)}, not {protocol!r}.")
    return [get_spec(b).key for b in backbones]


def run_benchmark(
    state: AppState,
    *,
    library_path: str | None,
    backbones: Sequence[str],
    protocol: str,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[pd.DataFrame, Path]:
    """Score each backbone on the library with ``benchmarks.runner`` (backbones come from the
    app's cache) and append the records to a JSONL file under the cache root."""
    keys = _check_request(library_path, backbones, protocol)
    library = state.library(library_path)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = app_results_dir() / f"{stamp}-{slug(library.name)}-{protocol}.jsonl"
    try:
        records = runner.run_benchmark(
            library,
            keys,
            [protocol],
            progress=progress,
            should_stop=should_stop,
            out=out,
            load=state.backbone,
            num_workers=state.num_workers,
        )
    except runner.BenchmarkCancelled as stopped:
        kept = (
            f" The {len(stopped.records)} record(s) finished are in {out.name}."
            if (stopped.records)
            else ""
        )
        raise Cancelled(f"Benchmark cancelled.{kept}") from stopped
    return pd.DataFrame(records), out


def skipped_reasons(records: pd.DataFrame) -> list[str]:
    """'backbone / protocol: why' for every protocol the runner could not run."""
    if records.empty or "metric" not in records.columns:
        return []
    skipped = records[records["metric"] == "skipped"]
    return [
        f"{r.get('backbone', '?')} / {r.get('protocol', '?')}: {r.get('reason', 'no reason given')}"
        for r in skipped.to_dict("records")
    ]


# --- views -------------------------------------------------------------------------------------
# (metric, k, column) of the summary table; Top-1 also gets its 95 % interval.
TABLE_METRICS = (
    ("hit_rate", 1, "Top-1"),
    ("hit_rate", 5, "Top-5"),
    ("map", 10, "mAP@10"),
    ("mmv", 5, "mMV@5"),
    ("accuracy", None, "accuracy"),  # any k: a k-NN's k is in its protocol column
)
TABLE_LEGEND = (
    "**Top-k**: share of queries with an image of their own class among the k nearest (hit "
    "rate). **Top-1 95 %**: interval from 1,000 resamples of cases. **mAP@10**: mean average "
    "precision in the top 10. "
    "**mMV@5**: share of queries whose class wins the vote of the 5 nearest. **accuracy**: "
    "share of held-out images a classifier (linear probe, k-NN) names right. **ms / image**: "
    "embedding time per image; **ms / query**: search time per query. **conventions**: ours, "
    "or the paper's public code (`--conventions paper`)."
)
SUMMARY_PROTOCOLS = ("latency", "paired-comparison", "stratified")


def library_names(records: pd.DataFrame) -> list[str]:
    """The libraries the records cover, sorted: the Benchmark tab shows one at a time."""
    if records.empty or "library" not in records.columns:
        return []
    return sorted(records["library"].dropna().astype(str).unique())


def pick_library(records: pd.DataFrame, wanted: str | None) -> str | None:
    """``wanted`` when the records have it, else the first library they cover."""
    names = library_names(records)
    return wanted if wanted in names else (names[0] if names else None)


def library_records(records: pd.DataFrame, library: str | None) -> pd.DataFrame:
    """Only one library's records (all of them when the records name no library)."""
    if records.empty or library is None or "library" not in records.columns:
        return records
    return records[records["library"] == library].reset_index(drop=True)


def _variant(chunk: pd.DataFrame) -> str:
    first = chunk.iloc[0]
    parts = [str(first["protocol"])]
    for key, default in (("similarity", "cosine"), ("exclusion", "case+duplicates")):
        value = first.get(key)
        if isinstance(value, str) and value not in (default, "none"):
            parts.append(value.replace("case-only", "case only"))
    method = first.get("method")
    if isinstance(method, str) and method == "knn-selected":
        parts.append("k chosen on validation")
    elif isinstance(method, str) and method.startswith("knn-"):
        parts.append(f"k = {method.removeprefix('knn-')}")
    elif isinstance(method, str):
        parts.append(method)
    return ", ".join(parts)


def results_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (backbone, protocol variant, conventions) of one library's records: the
    headline metrics, Top-1's 95 % interval and latency. Variants are never averaged: the
    leave-one-out with and without the duplicate rule are two rows, ours and the paper's two."""
    needed = {"backbone", "metric", "k", "value"}
    if records.empty or not needed <= set(records.columns):
        return pd.DataFrame(columns=["backbone", "protocol", "conventions", "Top-1"])
    overall = records[records["class"].isna()] if "class" in records.columns else records
    if "protocol" in overall.columns:  # timing-only, skipped and summary rows are not scores
        overall = overall[~overall["protocol"].isin(SUMMARY_PROTOCOLS)]
        overall = overall[overall["metric"] != "skipped"]
    group = [
        c
        for c in ("backbone", "protocol", "conventions", "similarity", "exclusion", "method")
        if c in overall.columns
    ]
    rows = []
    for _, chunk in overall.groupby(group, dropna=False, sort=True):
        first = chunk.iloc[0]
        conventions = first.get("conventions")
        row = {
            "backbone": first["backbone"],
            "protocol": _variant(chunk),
            "conventions": conventions if isinstance(conventions, str) else "ours",
        }
        for metric, k, column in TABLE_METRICS:
            at_k = chunk["k"].notna() | chunk["k"].isna() if k is None else chunk["k"] == k
            hit = chunk[(chunk["metric"] == metric) & at_k]
            row[column] = round(float(hit["value"].iloc[0]), 3) if len(hit) else None
            if column == "Top-1":
                low = hit["ci_low"].iloc[0] if len(hit) and "ci_low" in hit else None
                high = hit["ci_high"].iloc[0] if len(hit) and "ci_high" in hit else None
                known = low is not None and high is not None and not pd.isna(low)
                row["Top-1 95 %"] = f"{low:.2f}-{high:.2f}" if known else ""
        for key, name in (
            ("embed_s_per_image", "ms / image"),
            ("search_s_per_query", "ms / query"),
        ):
            if key in chunk.columns and chunk[key].notna().any():
                row[name] = round(float(chunk[key].dropna().iloc[0]) * 1000, 2)
        rows.append(row)
    table = pd.DataFrame(rows)
    empty = [c for c in table.columns if table[c].isna().all()]
    table = table.drop(columns=empty)
    order = table["protocol"].str.replace(r"\d+", lambda m: m.group().zfill(4), regex=True)
    return (
        table.assign(_order=order)
        .sort_values(["backbone", "_order", "conventions"])
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def message_figure(text: str) -> go.Figure:
    """An empty figure that says why there is nothing to plot."""
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(xaxis={"visible": False}, yaxis={"visible": False}, height=320)
    return fig


def _figure(build: Callable[[], go.Figure], fallback: str) -> go.Figure:
    try:
        return build()
    except (ValueError, KeyError) as err:
        return message_figure(f"{fallback}: {err}"[:300])


def result_figures(
    records: pd.DataFrame, *, protocol: str | None = None, library: str | None = None
) -> tuple[go.Figure, go.Figure, go.Figure]:
    """Accuracy against latency (Pareto front, 95 % error bars), hit rate at k, and per-class
    bars, for one library under our conventions; its name heads every title."""
    if records.empty:
        empty = message_figure("No benchmark results yet: run one above.")
        return empty, empty, empty
    chosen = library_records(
        records, library if library is not None else pick_library(records, None)
    )
    name = library or (library_names(chosen) or [""])[0]
    if "conventions" in chosen.columns:
        chosen = chosen[chosen["conventions"].isna() | (chosen["conventions"] == "ours")]
    if "protocol" in chosen.columns:
        chosen = chosen[~chosen["protocol"].isin(("paired-comparison", "stratified"))]
    if protocol is None and "protocol" in chosen.columns and len(chosen):
        scored = chosen[chosen["protocol"] != "latency"]["protocol"]
        protocol = (
            "leave-one-out"
            if (scored == "leave-one-out").any()
            else (str(scored.mode().iat[0]) if len(scored) else None)
        )
    if "similarity" in chosen.columns and (chosen["similarity"] == "cosine").any():
        chosen = chosen[chosen["similarity"].isin(["cosine"]) | chosen["similarity"].isna()]
    if "exclusion" in chosen.columns:  # plot the default rule only: copies excluded
        chosen = chosen[chosen["exclusion"].isna() | (chosen["exclusion"] == "case+duplicates")]
    latency = "total_s_per_image" if "total_s_per_image" in chosen.columns else None
    figures = (
        _figure(
            lambda: plots.accuracy_vs_latency(
                chosen,
                metric="hit_rate",
                k=1,
                protocol=protocol,
                latency_key=latency or "embed_median_per_item_s",
                variants=_library_variants(name),
            ),
            "No accuracy/latency records",
        ),
        _figure(lambda: plots.hit_rate_curves(chosen, protocol=protocol), "No hit-rate records"),
        _figure(
            lambda: plots.per_class_bars(chosen, metric="hit_rate", k=1, protocol=protocol),
            "No per-class records",
        ),
    )
    for figure in figures:
        title = figure.layout.title.text
        if title and name:
            figure.update_layout(title=f"{name}, {protocol}: {title}")
    return figures


def _library_variants(name: str) -> pd.DataFrame | None:
    found = read_variant_records(variant_record_folders())
    if found.empty or not name:
        return None
    return found[found["library"] == name]


def embedding_map(state: AppState, *, library_path: str | None, backbone: str | None) -> go.Figure:
    """t-SNE of the library's vectors under one backbone, coloured by diagnosis (memoised)."""
    if not library_path or not backbone:
        raise ValueError("Pick a library and a backbone to map.")
    key = get_spec(backbone).key
    idx = state.index(library_path, key)

    def compute() -> list[dict]:
        return plots.tsne_records(
            embeddings=idx.vectors(), labels=idx.cases["label"].astype(str).to_numpy()
        )

    points = state.memo(("tsne", key, idx.fingerprint), compute)
    return plots.embedding_map(points, title=f"t-SNE of {Path(library_path).name} under {key}")


def export_records(records: pd.DataFrame) -> tuple[str, str]:
    """Write what is shown for download: the summary table (CSV) first, then every raw record
    behind it (JSONL); returns both paths."""
    if records.empty:
        raise ValueError("There are no results to download yet: run a benchmark first.")
    folder = app_results_dir() / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    names = library_names(records)
    label = slug(names[0]) if len(names) == 1 else "benchmark"
    stem = folder / f"dermsearch-{label}-{time.strftime('%Y%m%d-%H%M%S')}"
    results_table(records).to_csv(f"{stem}-summary.csv", index=False)
    records.to_json(f"{stem}-records.jsonl", orient="records", lines=True, default_handler=str)
    return f"{stem}-summary.csv", f"{stem}-records.jsonl"
