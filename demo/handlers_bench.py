"""Benchmark tab: run retrieval protocols over chosen backbones, show and export the records.

Embeddings come from the app's indexes (built once, then reused), so a benchmark after a few
searches costs only the protocol itself. Saved runs from ``benchmarks/results/*.jsonl`` show at
start-up; runs made in the app are written under the cache root, never into the repository.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from benchmarks import plots
from benchmarks.protocols import cosine_vs_euclidean, leave_one_out, train_test
from benchmarks.records import retrieval_records
from benchmarks.timing import time_callable
from data_index.locations import REPO_ROOT, cache_root
from demo.state import AppState, Cancelled, Progress
from models import get_spec

PROTOCOLS = {
    "leave-one-out": "Leave one case out: every image queries the rest (seed 000)",
    "train-test": "Train split indexed, test split queries (seeds 002, 004)",
    "cosine-vs-euclidean": "Leave-one-out ranked by cosine and by raw Euclidean (seed 000 §D)",
}
KS = (1, 3, 5, 10, 20, 50)
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
TABLE_METRICS = (
    ("hit_rate", 1),
    ("hit_rate", 5),
    ("hit_rate", 10),
    ("precision", 10),
    ("map", 10),
    ("mmv", 5),
)
TIMING_IMAGES = 8


def app_results_dir() -> Path:
    return cache_root() / "benchmarks"


def load_saved_records(*, folders: Sequence[Path] | None = None) -> pd.DataFrame:
    """Every record in ``*.jsonl`` under the committed results and the app's own runs."""
    frames = []
    for folder in folders if folders is not None else (RESULTS_DIR, app_results_dir()):
        for path in sorted(Path(folder).glob("*.jsonl")):
            rows = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a half-written line from a run that was stopped
            if rows:
                frame = pd.DataFrame(rows)
                frame["source_file"] = path.name
                frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _check_request(library_path: str | None, backbones: Sequence[str], protocol: str) -> list[str]:
    if not library_path:
        raise ValueError("Pick a library to benchmark (Library tab, or the box above).")
    if not backbones:
        raise ValueError("Tick at least one backbone to benchmark.")
    if protocol not in PROTOCOLS:
        raise ValueError(f"Protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}.")
    return [get_spec(b).key for b in backbones]


def _runs(protocol: str, *, unit, raw, labels, splits, case_ids) -> list:
    # Every query must keep k candidates after its own case is excluded.
    biggest_case = int(pd.Series(case_ids).value_counts().max())
    k = min(max(KS), len(labels) - biggest_case)
    if k < 1:
        raise ValueError("The library needs at least two cases to benchmark retrieval.")
    common = {"labels": labels, "k": k, "case_ids": case_ids}
    if protocol == "leave-one-out":
        return [leave_one_out(embeddings=unit, **common)]
    if protocol == "train-test":
        present = set(splits.tolist())
        if not {"train", "test"} <= present:
            raise ValueError(
                f"This library has no train/test split (splits present: {sorted(present)}); "
                "use leave-one-out, or add a split column to its manifest."
            )
        n_train = int((splits == "train").sum())
        common["k"] = max(1, min(common["k"], n_train - biggest_case))
        return [train_test(embeddings=unit, splits=splits, **common)]
    return list(cosine_vs_euclidean(raw_embeddings=raw, **common).values())


def run_benchmark(
    state: AppState,
    *,
    library_path: str | None,
    backbones: Sequence[str],
    protocol: str,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[pd.DataFrame, Path]:
    """Score each backbone on the library and save the records as JSONL (returned with them)."""
    keys = _check_request(library_path, backbones, protocol)
    library = state.library(library_path)
    records: list[dict] = []
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for i, key in enumerate(keys):

        def step(fraction: float, message: str, i=i, key=key) -> None:
            if should_stop():
                raise Cancelled("Benchmark cancelled.")
            if progress is not None:
                progress((i + 0.8 * fraction) / len(keys), f"{key}: {message}")

        step(0.0, "loading")
        idx = state.index(library_path, key, progress=step)
        backbone = state.backbone(key)
        step(1.0, "timing the backbone")
        sample = idx.cases["path"].head(TIMING_IMAGES).tolist()
        timing = time_callable(
            lambda sample=sample, backbone=backbone: backbone.encode_images(sample),
            repeats=3,
            warmup=1,
            items=len(sample),
            max_seconds=20,
        )
        cases = idx.cases
        runs = _runs(
            protocol,
            unit=idx.vectors(),
            raw=idx.raw,
            labels=cases["label"].astype(str).to_numpy(),
            splits=cases["split"].astype(str).to_numpy(),
            case_ids=cases["case_id"].astype(str).to_numpy(),
        )
        extra = {
            "backbone": key,
            "family": backbone.spec.family,
            "weights_origin": backbone.weights_origin,
            "library": library.name,
            "library_fingerprint": library.fingerprint[:12],
            "n_items": len(cases),
            "run": stamp,
            **timing.as_record(prefix="embed_"),
        }
        for run in runs:
            records += [{**r, **extra} for r in retrieval_records(run, ks=KS)]
        if progress is not None:
            progress((i + 1) / len(keys), f"{key}: done")
    frame = pd.DataFrame(records)
    out = app_results_dir() / f"{stamp}-{library.name}-{protocol}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, default=_json_default) + "\n")
    return frame, out


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# --- views -------------------------------------------------------------------------------------
def results_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (library, backbone, protocol, similarity): headline metrics and latency."""
    needed = {"backbone", "metric", "k", "value"}
    if records.empty or not needed <= set(records.columns):
        return pd.DataFrame(columns=["backbone", "protocol", "metric", "value"])
    overall = records[records["class"].isna()] if "class" in records.columns else records
    group = [c for c in ("library", "backbone", "protocol", "similarity") if c in overall.columns]
    rows = []
    for keys, chunk in overall.groupby(group, dropna=False, sort=True):
        row = dict(zip(group, keys if isinstance(keys, tuple) else (keys,), strict=True))
        for metric, k in TABLE_METRICS:
            hit = chunk[(chunk["metric"] == metric) & (chunk["k"] == k)]
            row[f"{metric}@{k}"] = round(float(hit["value"].mean()), 3) if len(hit) else None
        if "embed_median_per_item_s" in chunk.columns:
            row["ms / image"] = round(float(chunk["embed_median_per_item_s"].mean()) * 1000, 1)
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
