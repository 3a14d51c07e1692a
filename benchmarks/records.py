"""Benchmark records: flat dicts built from protocol results, and their files on disk.

One record per (protocol, metric, k[, class]); overall rows have `class` None, per-class rows
name it. A runner adds its own keys (backbone, library, timings) to each record and appends
them to a JSONL file (one record per line), gzipped when its name ends in ``.gz``; plots and
reports read only these records, from that file or from its CSV export.
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from benchmarks import metrics as M
from benchmarks.intervals import N_RESAMPLES, Bootstrap
from benchmarks.probes import ClassificationResult
from benchmarks.retrieval import RetrievalRun
from benchmarks.votes import majority_vote_correct_per_query

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10)


PrecisionDenominator = Literal["k", "min(k, class count in index)"]
QUERY_TOP = 10  # labels kept per query in the per-query records
AP_K = 5  # the per-query records keep AP@5, the headline mAP


def _record(
    run: RetrievalRun,
    metric: str,
    k: int | None,
    value: float,
    label=None,
    interval: tuple[float, float] | None = None,
) -> dict:
    out = {
        "protocol": run.protocol,
        "similarity": run.metric,
        "metric": metric,
        "k": k,
        "value": float(value),
        "class": label,
        "n_queries": len(run.query_labels),
        **run.params,
    }
    if interval is not None:
        out |= {"ci_low": interval[0], "ci_high": interval[1]}
    return out


def retrieval_records(
    run: RetrievalRun,
    *,
    ks: Iterable[int] = DEFAULT_KS,
    per_class: bool = True,
    case_ids: np.ndarray | None = None,
    precision_denominator: PrecisionDenominator = "k",
    n_resamples: int = N_RESAMPLES,
) -> list[dict]:
    """Every retrieval metric at every k the run is deep enough for, overall and per class.

    Metrics: hit_rate (+ _macro), precision (+ _macro), map (standard, min(k, R) normaliser),
    map_hits_normalised (Mahbod et al.'s (2024) normaliser), mmv (ties are misses),
    mmv_ties_counted (Mahbod et al.'s (2024) code), mrr; and r_precision (k None) when the run
    ranked at least max(R) neighbours. Per class: hit_rate, precision and map at each k.
    ``precision_denominator`` "min(k, class count in index)" is Denner et al.'s (2024) code;
    it reads ``run.n_relevant`` as the class count, which it is when nothing is excluded.
    With ``case_ids`` (one per query) every overall record gets a 95 % interval from
    ``n_resamples`` case resamples (ci_low, ci_high).
    """
    kw = {"retrieved_labels": run.retrieved_labels, "query_labels": run.query_labels}
    labels = run.query_labels
    boot = None if case_ids is None else Bootstrap.over(case_ids, n_resamples=n_resamples)
    out: list[dict] = []
    for k in sorted({int(k) for k in ks}):
        if k > run.k:
            continue
        if precision_denominator == "k":
            precision = M.precision_at_k_per_query(**kw, k=k)
        else:
            precision = M.precision_at_k_class_capped_per_query(
                **kw, k=k, n_in_index=run.n_relevant
            )
        per_query = {
            "hit_rate": M.hit_at_k_per_query(**kw, k=k),
            "precision": precision,
            "map": M.average_precision_at_k_per_query(**kw, k=k, n_relevant=run.n_relevant),
        }
        micro = {
            **per_query,
            "map_hits_normalised": M.average_precision_at_k_hits_normalised_per_query(**kw, k=k),
            "mmv": majority_vote_correct_per_query(**kw, k=k),
            "mmv_ties_counted": majority_vote_correct_per_query(**kw, k=k, ties="count"),
            "mrr": M.reciprocal_rank_per_query(**kw, k=k),
        }
        for name, values in micro.items():
            interval = None if boot is None else boot.mean(values)
            out.append(_record(run, name, k, M.nanmean(values), interval=interval))
            if name in ("hit_rate", "precision"):
                macro = M.macro_mean(per_query=values, query_labels=labels)
                interval = None if boot is None else boot.macro(values, labels)
                out.append(_record(run, f"{name}_macro", k, macro, interval=interval))
        if per_class:
            for name, scores in per_query.items():
                for label, value in M.per_class_mean(per_query=scores, query_labels=labels).items():
                    out.append(_record(run, name, k, value, label))
    if run.n_relevant.max(initial=0) <= run.k:
        values = M.r_precision_per_query(**kw, n_relevant=run.n_relevant)
        interval = None if boot is None else boot.mean(values)
        out.append(_record(run, "r_precision", None, M.nanmean(values), interval=interval))
    if boot is not None:
        for record in out:
            if record["class"] is None:
                record["n_resamples"] = boot.n_resamples
        if precision_denominator != "k":
            for record in out:
                if record["metric"].startswith("precision"):
                    record["precision_denominator"] = precision_denominator
    return out


def query_records(
    run: RetrievalRun, *, keys: Sequence[str], case_ids: np.ndarray, top: int = QUERY_TOP
) -> list[dict]:
    """One compact record per query: its key, case, label, the rank of its first same-label
    neighbour (None when none is among the ranked ones) and the labels of its top neighbours.
    ``keys`` and ``case_ids`` are aligned with all rows of the caller's arrays."""
    rel = run.retrieved_labels == run.query_labels[:, None]
    first = np.where(rel.any(axis=1), np.argmax(rel, axis=1) + 1, 0)
    width = min(top, run.k)
    ap = np.full(len(first), np.nan)
    if run.k >= AP_K:
        ap = M.average_precision_at_k_per_query(
            retrieved_labels=run.retrieved_labels,
            query_labels=run.query_labels,
            k=AP_K,
            n_relevant=run.n_relevant,
        )
    return [
        {
            "protocol": run.protocol,
            "similarity": run.metric,
            "query": str(keys[row]),
            "case_id": str(case_ids[row]),
            "label": str(label),
            "first_hit_rank": int(rank) or None,
            "average_precision_at_5": None if np.isnan(precision) else round(float(precision), 4),
            "top_labels": [str(x) for x in found[:width]],
        }
        for row, label, rank, precision, found in zip(
            run.query_rows.tolist(),
            run.query_labels.tolist(),
            first.tolist(),
            ap.tolist(),
            run.retrieved_labels.tolist(),
            strict=True,
        )
    ]


def classification_records(
    result: ClassificationResult,
    *,
    protocol: str,
    case_ids: np.ndarray | None = None,
    n_resamples: int = N_RESAMPLES,
) -> list[dict]:
    """accuracy, macro_f1 and macro_auc overall, plus per-class auc and f1, as flat records.

    With ``case_ids`` (aligned with all rows; the test rows are taken) accuracy and macro F1
    get a 95 % case-resampled interval; AUC gets none.
    """
    base = {
        "protocol": protocol,
        "method": result.method,
        "k": result.params.get("k"),
        **{key: value for key, value in result.params.items() if key != "k"},
    }
    intervals: dict[str, tuple[float, float]] = {}
    if case_ids is not None:
        true = np.asarray(result.true)
        boot = Bootstrap.over(np.asarray(case_ids)[result.test_rows], n_resamples=n_resamples)
        intervals["accuracy"] = boot.mean((true == result.predicted).astype(float))
        intervals["macro_f1"] = boot.macro_f1(true, result.predicted, np.unique(true))
        base["n_resamples"] = boot.n_resamples
    out = []
    for name, value in (
        ("accuracy", result.accuracy),
        ("macro_f1", result.macro_f1),
        ("macro_auc", result.macro_auc),
    ):
        record = {**base, "metric": name, "value": float(value), "class": None}
        if name in intervals:
            record |= {"ci_low": intervals[name][0], "ci_high": intervals[name][1]}
        out.append(record)
    for name, table in (("auc", result.per_class_auc), ("f1", result.per_class_f1)):
        out.extend(
            {**base, "metric": name, "value": float(v), "class": label}
            for label, v in table.items()
        )
    return out


def prediction_records(
    result: ClassificationResult, *, protocol: str, keys: Sequence[str], case_ids: np.ndarray
) -> list[dict]:
    """One compact record per test query of a classifier: key, case, label, predicted label."""
    return [
        {
            "protocol": protocol,
            "method": result.method,
            "k": result.params.get("k"),
            "query": str(keys[row]),
            "case_id": str(case_ids[row]),
            "label": str(true),
            "predicted": str(predicted),
        }
        for row, true, predicted in zip(
            result.test_rows.tolist(),
            np.asarray(result.true).tolist(),
            np.asarray(result.predicted).tolist(),
            strict=True,
        )
    ]


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


GZIP = ".gz"  # a records or per-query file with this suffix is gzip; any other is plain
QUERIES_SUFFIX = ".queries.jsonl.gz"


def _json_lines(rows: Iterable[dict]) -> bytes:
    lines = [
        json.dumps({k: _plain(v) for k, v in r.items()}, default=_default, allow_nan=False)
        for r in rows
    ]
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _append(data: bytes, path: Path, *, gzipped: bool) -> Path:
    """Append ``data`` with one write to a file opened for appending, so that two runs adding
    to one file never interleave their lines. Gzipped, ``data`` is compressed first into one
    whole gzip member: a file of several members reads back as one stream (RFC 1952)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if gzipped:
        data = gzip.compress(data, mtime=0)  # no time stamp: equal records, equal bytes
    with path.open("ab") as handle:
        handle.write(data)
    return path


def append_records(records: Iterable[dict], path: Path) -> Path:
    """Append records to a JSONL file (created with its folders when missing); gzip when the
    name ends in ``.gz`` (e.g. ``results.jsonl.gz``), each append one more gzip member."""
    path = Path(path)
    return _append(_json_lines(records), path, gzipped=path.name.endswith(GZIP))


def queries_path(records_path: Path) -> Path:
    """The per-query sidecar of a records file: results.jsonl (or results.jsonl.gz) ->
    results.queries.jsonl.gz."""
    records_path = Path(records_path)
    stem = Path(records_path.name.removesuffix(GZIP)).stem
    return records_path.with_name(f"{stem}{QUERIES_SUFFIX}")


def records_files(folder: str | Path) -> list[Path]:
    """The records files in ``folder``, by name: ``*.jsonl`` and ``*.jsonl.gz``, without the
    per-query sidecars (``*.queries.jsonl.gz``)."""
    folder = Path(folder)
    found = [*folder.glob("*.jsonl"), *folder.glob("*.jsonl.gz")]
    return sorted(p for p in found if p.is_file() and not p.name.endswith(QUERIES_SUFFIX))


def append_queries(queries: Iterable[dict], path: Path) -> Path:
    """Append per-query records to a gzip JSONL file (each append is one more gzip member,
    which gzip readers read as one stream)."""
    return _append(_json_lines(queries), Path(path), gzipped=True)


def read_queries(path: str | Path) -> pd.DataFrame:
    """Every per-query record of a sidecar file (see `queries_path`), as a DataFrame."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is not a per-query file: run `python -m benchmarks run` first.")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
    except (OSError, EOFError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a readable per-query file ({err}).") from err
    return pd.DataFrame(rows)


def _record_lines(path: Path, *, tolerant: bool) -> tuple[list[str], bool]:
    """The lines of a plain or gzip (``.gz``) records file, and whether the file ended cleanly.

    A gzip file cut short (a run stopped inside its last write) keeps the lines decompressed
    before the cut; its partial last line is dropped like a plain file's half-written one."""
    if not path.name.endswith(GZIP):
        return path.read_text(encoding="utf-8").splitlines(), True
    lines: list[str] = []
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                lines.append(line)
    except EOFError:
        return [line.rstrip("\n") for line in lines if line.endswith("\n")], False
    except (OSError, zlib.error, UnicodeDecodeError) as err:  # BadGzipFile is an OSError
        if tolerant:
            return [], True
        raise ValueError(f"{path} is not a readable gzip results file ({err}).") from err
    return [line.rstrip("\n") for line in lines], True


def read_records(path: str | Path, *, tolerant: bool = False) -> pd.DataFrame:
    """All records of a JSONL file (``.jsonl``, or gzipped ``.jsonl.gz``) as a DataFrame; a
    half-written last line is skipped.

    By default a line that is not JSON elsewhere, or a file without records, is an error: the
    file was named by a user. ``tolerant`` is for scanning folders that a running benchmark may
    be writing: every line that is not JSON is skipped, and a file without records reads as an
    empty frame.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is not a results file: run `python -m benchmarks run` first.")
    rows = []
    lines, complete = _record_lines(path, tolerant=tolerant)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if tolerant or (complete and number == len(lines)):
                continue  # a run stopped mid-write
            raise ValueError(f"{path} line {number} is not JSON ({err.msg}).") from err
    if not rows and not tolerant:
        raise ValueError(f"{path} holds no records.")
    return pd.DataFrame(rows)


_VARIANT_FILES: dict[tuple, pd.DataFrame] = {}


def read_variant_records(folders: Sequence[str | Path]) -> pd.DataFrame:
    """Every retrieval variant record (hit rates with their paired gains) in the records files
    of ``folders`` (`records_files`); a file is read again only when it changed."""
    frames = []
    for folder in folders:
        for path in records_files(folder):
            stat = path.stat()
            key = (str(path), stat.st_mtime_ns, stat.st_size)
            if key not in _VARIANT_FILES:
                frame = read_records(path, tolerant=True)
                if len(frame) and {"protocol", "metric"} <= set(frame.columns):
                    wanted = (frame["protocol"] == "variant") & (frame["metric"] == "hit_rate")
                    frame = frame[wanted]
                else:
                    frame = pd.DataFrame()
                _VARIANT_FILES[key] = frame
            if len(_VARIANT_FILES[key]):
                frames.append(_VARIANT_FILES[key])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def export_csv(records: pd.DataFrame, path: str | Path) -> Path:
    """Write records as CSV (one column per key; empty where a record lacks it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records.to_csv(path, index=False)
    return path
