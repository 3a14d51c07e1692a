"""Benchmark tab: run retrieval protocols over chosen backbones, show and export the records.

The work is ``benchmarks.runner`` (duplicate audit, embedding through the shared cache, timing,
protocols); this module adds the app's loaded backbones, cancelling, tables and figures. Saved
runs from ``benchmarks/results/*.jsonl`` show at start-up; runs made in the app are written
under the cache root, never into the repository.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from benchmarks import plots, runner
from benchmarks.protocols import REGISTRY
from benchmarks.records import read_records
from data_index import cache_root
from data_index.locations import REPO_ROOT, slug
from demo.state import AppState, Cancelled, Progress
from models import get_spec

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
TABLE_METRICS = (
    ("hit_rate", 1),
    ("hit_rate", 5),
    ("hit_rate", 10),
    ("precision", 10),
    ("map", 10),
    ("mmv", 5),
)


def app_results_dir() -> Path:
    return cache_root() / "benchmarks"


def load_saved_records(*, folders: Sequence[Path] | None = None) -> pd.DataFrame:
    """Every record in ``*.jsonl`` under the committed results and the app's own runs."""
    frames = []
    for folder in folders if folders is not None else (RESULTS_DIR, app_results_dir()):
        for path in sorted(Path(folder).glob("*.jsonl")):
            frame = read_records(path, tolerant=True)  # runs may be writing these files
            if len(frame):
                frame["source_file"] = path.name
                frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


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
def results_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (library, backbone, protocol, similarity, exclusion): headline metrics and
    latency. Leave-one-out is recorded with and without the duplicate exclusion: never averaged."""
    needed = {"backbone", "metric", "k", "value"}
    if records.empty or not needed <= set(records.columns):
        return pd.DataFrame(columns=["backbone", "protocol", "metric", "value"])
    overall = records[records["class"].isna()] if "class" in records.columns else records
    if "protocol" in overall.columns:  # timing-only and skipped rows have no score to tabulate
        overall = overall[(overall["protocol"] != "latency") & (overall["metric"] != "skipped")]
    group = [
        c
        for c in ("library", "backbone", "protocol", "similarity", "exclusion")
        if c in overall.columns
    ]
    rows = []
    for keys, chunk in overall.groupby(group, dropna=False, sort=True):
        row = dict(zip(group, keys if isinstance(keys, tuple) else (keys,), strict=True))
        for metric, k in TABLE_METRICS:
            at_k = chunk["k"].isna() if k is None else chunk["k"] == k
            hit = chunk[(chunk["metric"] == metric) & at_k]
            if metric == "accuracy" and hit.empty:
                continue  # only the classification protocols record accuracy
            row[metric if k is None else f"{metric}@{k}"] = (
                round(float(hit["value"].mean()), 3) if len(hit) else None
            )
        for key, name in (
            ("embed_median_per_item_s", "embed ms / image"),
            ("search_median_per_item_s", "search ms / query"),
        ):
            if key in chunk.columns and chunk[key].notna().any():
                row[name] = round(float(chunk[key].mean()) * 1000, 2)
        rows.append(row)
    return pd.DataFrame(rows)


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
    records: pd.DataFrame, *, protocol: str | None = None
) -> tuple[go.Figure, go.Figure, go.Figure]:
    """Accuracy against latency (with the Pareto front), hit rate at k, and per-class bars."""
    if records.empty:
        empty = message_figure("No benchmark results yet: run one above.")
        return empty, empty, empty
    if protocol is None and "protocol" in records.columns:
        protocol = str(records["protocol"].mode().iat[0])
    chosen = records
    if "similarity" in records.columns and (records["similarity"] == "cosine").any():
        chosen = records[records["similarity"].isin(["cosine"]) | records["similarity"].isna()]
    if "exclusion" in chosen.columns:  # plot the default rule only: copies excluded
        chosen = chosen[chosen["exclusion"].isna() | (chosen["exclusion"] == "case+duplicates")]
    return (
        _figure(
            lambda: plots.accuracy_vs_latency(chosen, metric="hit_rate", k=1, protocol=protocol),
            "No accuracy/latency records",
        ),
        _figure(lambda: plots.hit_rate_curves(chosen, protocol=protocol), "No hit-rate records"),
        _figure(
            lambda: plots.per_class_bars(chosen, metric="hit_rate", k=1, protocol=protocol),
            "No per-class records",
        ),
    )


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
    """Write the shown records as CSV and JSONL for download; returns both paths."""
    if records.empty:
        raise ValueError("There are no results to download yet: run a benchmark first.")
    folder = app_results_dir() / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"dermsearch-benchmark-{time.strftime('%Y%m%d-%H%M%S')}"
    records.to_csv(f"{stem}.csv", index=False)
    records.to_json(f"{stem}.jsonl", orient="records", lines=True, default_handler=str)
    return f"{stem}.csv", f"{stem}.jsonl"
