"""Benchmark records: flat dicts built from protocol results, and their files on disk.

One record per (protocol, metric, k[, class]); overall rows have `class` None, per-class rows
name it. A runner adds its own keys (backbone, library, timings) to each record and appends
them to a JSONL file (one record per line); plots and reports read only these records, from
that file or from its CSV export.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import metrics as M
from benchmarks.probes import ClassificationResult
from benchmarks.retrieval import RetrievalRun
from benchmarks.votes import majority_vote_correct_per_query

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10)


def _record(run: RetrievalRun, metric: str, k: int | None, value: float, label=None) -> dict:
    return {
        "protocol": run.protocol,
        "similarity": run.metric,
        "metric": metric,
        "k": k,
        "value": float(value),
        "class": label,
        "n_queries": len(run.query_labels),
        **run.params,
    }


def retrieval_records(
    run: RetrievalRun, *, ks: Iterable[int] = DEFAULT_KS, per_class: bool = True
) -> list[dict]:
    """Every retrieval metric at every k the run is deep enough for, overall and per class.

    Metrics: hit_rate (+ _macro), precision (+ _macro), map (standard, min(k, R) normaliser),
    map_hits_normalised (Mahbod et al.'s (2024) normaliser), mmv (ties are misses), mmv_ties_counted
    (Mahbod et al.'s (2024)
    code), mrr; and r_precision (k None) when the run ranked at least max(R) neighbours.
    Per class: hit_rate, precision and map at each k.
    """
    kw = {"retrieved_labels": run.retrieved_labels, "query_labels": run.query_labels}
    labels = run.query_labels
    out: list[dict] = []
    for k in sorted({int(k) for k in ks}):
        if k > run.k:
            continue
        per_query = {
            "hit_rate": M.hit_at_k_per_query(**kw, k=k),
            "precision": M.precision_at_k_per_query(**kw, k=k),
            "map": M.average_precision_at_k_per_query(**kw, k=k, n_relevant=run.n_relevant),
        }
        values = {
            "hit_rate": float(per_query["hit_rate"].mean()),
            "hit_rate_macro": M.macro_mean(per_query=per_query["hit_rate"], query_labels=labels),
            "precision": float(per_query["precision"].mean()),
            "precision_macro": M.macro_mean(per_query=per_query["precision"], query_labels=labels),
            "map": M.mean_average_precision_at_k(**kw, k=k, n_relevant=run.n_relevant),
            "map_hits_normalised": M.mean_average_precision_at_k_hits_normalised(**kw, k=k),
            "mmv": float(majority_vote_correct_per_query(**kw, k=k).mean()),
            "mmv_ties_counted": float(
                majority_vote_correct_per_query(**kw, k=k, ties="count").mean()
            ),
            "mrr": M.mean_reciprocal_rank(**kw, k=k),
        }
        out.extend(_record(run, name, k, value) for name, value in values.items())
        if per_class:
            for name, scores in per_query.items():
                for label, value in M.per_class_mean(per_query=scores, query_labels=labels).items():
                    out.append(_record(run, name, k, value, label))
    if run.n_relevant.max(initial=0) <= run.k:
        out.append(
            _record(run, "r_precision", None, M.r_precision(**kw, n_relevant=run.n_relevant))
        )
    return out


def classification_records(result: ClassificationResult, *, protocol: str) -> list[dict]:
    """accuracy, macro_f1 and macro_auc overall, plus per-class auc and f1, as flat records."""
    base = {
        "protocol": protocol,
        "method": result.method,
        "k": result.params.get("k"),
        **{key: value for key, value in result.params.items() if key != "k"},
    }
    out = [
        {**base, "metric": name, "value": float(value), "class": None}
        for name, value in (
            ("accuracy", result.accuracy),
            ("macro_f1", result.macro_f1),
            ("macro_auc", result.macro_auc),
        )
    ]
    for name, table in (("auc", result.per_class_auc), ("f1", result.per_class_f1)):
        out.extend(
            {**base, "metric": name, "value": float(v), "class": label}
            for label, v in table.items()
        )
    return out


# --- on disk ----------------------------------------------------------------------------------
def _plain(value: object) -> object:
    """JSON-safe scalars: numpy types unwrapped, NaN and inf written as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _default(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else str(value)


def append_records(records: Iterable[dict], path: Path) -> Path:
    """Append records to a JSONL file (created with its folders when missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({k: _plain(v) for k, v in r.items()}, default=_default, allow_nan=False)
        for r in records
    ]
    with path.open("a", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))
    return path


def read_records(path: str | Path, *, tolerant: bool = False) -> pd.DataFrame:
    """All records of a JSONL file as a DataFrame; a half-written last line is skipped.

    By default a line that is not JSON elsewhere, or a file without records, is an error: the
    file was named by a user. ``tolerant`` is for scanning folders that a running benchmark may
    be writing: every line that is not JSON is skipped, and a file without records reads as an
    empty frame.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is not a results file: run `python -m benchmarks run` first.")
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if tolerant or number == len(lines):
                continue  # a run stopped mid-write
            raise ValueError(f"{path} line {number} is not JSON ({err.msg}).") from err
    if not rows and not tolerant:
        raise ValueError(f"{path} holds no records.")
    return pd.DataFrame(rows)


def export_csv(records: pd.DataFrame, path: str | Path) -> Path:
    """Write records as CSV (one column per key; empty where a record lacks it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records.to_csv(path, index=False)
    return path
