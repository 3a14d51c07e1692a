"""Markdown tables built from flat benchmark records (pandas in, Markdown text out)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pandas as pd

from data_index.validation import degenerate_warnings

# (metric, k, column title) of the headline table, in Pham et al.'s (2025) order plus Mahbod et al.
# (2024) and Denner et al. (2024).
HEADLINE: tuple[tuple[str, int, str], ...] = (
    ("hit_rate", 1, "Top-1"),
    ("hit_rate", 2, "Top-2"),
    ("hit_rate", 5, "Top-5"),
    ("hit_rate", 10, "Top-10"),
    ("hit_rate", 20, "Top-20"),
    ("map", 5, "mAP@5"),
    ("mmv", 5, "mMV@5"),
    ("precision", 5, "P@5 micro"),
    ("precision_macro", 5, "P@5 macro"),
)
SHORT: tuple[tuple[str, int, str], ...] = (
    ("hit_rate", 1, "Top-1"),
    ("hit_rate", 5, "Top-5"),
    ("map", 5, "mAP@5"),
    ("mmv", 5, "mMV@5"),
    ("precision", 5, "P@5"),
)
RUN_KEYS = ("library", "library_fingerprint", "backbone", "weights_origin", "protocol")


def fmt(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{float(value):.{digits}f}"


def fmt_seconds(value: object) -> str:
    """Seconds as Pham et al. (2025) prints them: 4 decimals, 6 below a millisecond."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    value = float(value)
    return f"{value:.4f}" if value >= 1e-3 else f"{value:.6f}"


def with_interval(value: object, low: object, high: object) -> str:
    """ "0.725 [0.68, 0.77]", or the value alone where there is no interval."""
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return fmt(value)
    return f"{fmt(value)} [{fmt(low, 2)}, {fmt(high, 2)}]"


def cell(value: object) -> str:
    """A table cell: whole floats as ints (k, sizes), missing values empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    if not rows:
        return "_(no records)_"
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [str(c).replace("|", "/").replace("\n", " ") for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def latest_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Only the newest run of each (library, backbone, weights, protocol): reruns append."""
    keys = [k for k in RUN_KEYS if k in frame.columns]
    if "run_id" not in frame.columns or not keys:
        return frame
    filled = frame[keys].fillna("")
    newest = frame.assign(_key=filled.astype(str).agg("\x1f".join, axis=1))
    latest = newest.groupby("_key")["run_id"].transform("max")
    return frame[newest["run_id"] == latest].reset_index(drop=True)


def overall(frame: pd.DataFrame) -> pd.DataFrame:
    """Records that are not per-class and are not skips."""
    out = frame[frame["metric"] != "skipped"]
    return out[out["class"].isna()] if "class" in out.columns else out


def _value(chunk: pd.DataFrame, metric: str, k: int | None) -> float:
    hit = chunk[chunk["metric"] == metric]
    if k is not None:
        hit = hit[hit["k"] == k]
    return float(hit["value"].mean()) if len(hit) else float("nan")


def _loo(frame: pd.DataFrame, exclusion: str) -> pd.DataFrame:
    rows = overall(frame)
    rows = rows[(rows["protocol"] == "leave-one-out") & (rows["weights_origin"] == "pretrained")]
    if "exclusion" in rows.columns:
        rows = rows[rows["exclusion"] == exclusion]
    return rows[rows["similarity"] == "cosine"] if "similarity" in rows.columns else rows


def headline_table(frame: pd.DataFrame, *, exclusion: str) -> str:
    """One row per (library, backbone): Top-k, mAP@5, mMV@5, P@5, probe AUC and latencies."""
    loo = _loo(frame, exclusion)
    rows = []
    for (library, backbone), chunk in loo.groupby(["library", "backbone"], sort=True):
        first = chunk.iloc[0]
        probe = overall(frame)
        probe = probe[
            (probe["protocol"] == "linear-probe")
            & (probe["library"] == library)
            & (probe["backbone"] == backbone)
            & (probe["weights_origin"] == "pretrained")
        ]
        values = [_value(chunk, metric, k) for metric, k, _ in HEADLINE]
        top1 = chunk[(chunk["metric"] == "hit_rate") & (chunk["k"] == 1)]
        low, high = (top1.iloc[0].get(c) if len(top1) else None for c in ("ci_low", "ci_high"))
        rows.append(
            (
                library,
                -values[0],
                [
                    library,
                    backbone,
                    first["family"],
                    int(first["dim"]),
                    with_interval(values[0], low, high),
                    *(fmt(v) for v in values[1:]),
                    fmt(_value(probe[probe["method"] != "linear-svm"], "macro_auc", None)),
                    fmt_seconds(first["embed_s_per_image"]),
                    fmt_seconds(first["search_s_per_query"]),
                    fmt_seconds(first["total_s_per_image"]),
                ],
            )
        )
    rows.sort(key=lambda r: (r[0], r[1]))
    head = ["library", "backbone", "family", "dim", *(title for _, _, title in HEADLINE)]
    head[4] = "Top-1 [95 %]"
    return markdown_table([*head, "LP AUC", "s/image", "s/query", "total"], [r[2] for r in rows])


def per_class_table(frame: pd.DataFrame, *, metric: str, k: int, exclusion: str) -> str:
    """Classes down, backbones across: a per-class leave-one-out metric."""
    rows = frame[
        (frame["protocol"] == "leave-one-out")
        & (frame["metric"] == metric)
        & (frame["k"] == k)
        & (frame["weights_origin"] == "pretrained")
    ]
    if "exclusion" in rows.columns:
        rows = rows[rows["exclusion"] == exclusion]
    rows = rows[rows["class"].notna()]
    if rows.empty:
        return ""
    table = rows.pivot_table(index="class", columns="backbone", values="value", aggfunc="mean")
    body = [[label, *(fmt(v) for v in table.loc[label])] for label in table.index]
    return markdown_table(["class", *table.columns], body)


def _retrieval_table(chunk: pd.DataFrame, by: Sequence[str]) -> str:
    rows = []
    for keys, group in chunk.groupby(list(by), sort=True, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        rows.append([*map(cell, keys), *(fmt(_value(group, m, k)) for m, k, _ in SHORT)])
    return markdown_table([*by, *(title for _, _, title in SHORT)], rows)


def _natural(row: Sequence[str]) -> list:
    """Sort key reading digit runs as numbers: retrieval-vote-5 before retrieval-vote-10."""
    return [[int(p) if p.isdigit() else p for p in re.split(r"(\d+)", c)] for c in row]


def _classification_table(chunk: pd.DataFrame, by: Sequence[str]) -> str:
    rows = []
    for keys, group in chunk.groupby(list(by), sort=True, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        values = [fmt(_value(group, m, None)) for m in ("accuracy", "macro_f1", "macro_auc")]
        rows.append([*map(cell, keys), *values])
    rows.sort(key=lambda row: _natural(row[: len(by)]))
    return markdown_table([*by, "accuracy", "macro F1", "macro AUC"], rows)


def other_protocol_tables(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(title, table) for every protocol besides leave-one-out and latency in the records."""
    rows = overall(frame)
    rows = rows[rows["weights_origin"] == "pretrained"]
    out = []

    def of(protocol: str) -> pd.DataFrame:
        return rows[rows["protocol"] == protocol]

    if not of("reference-classifier").empty:
        chunk = of("reference-classifier")
        caveat = chunk["caveat"].dropna().iloc[0] if "caveat" in chunk.columns else ""
        out.append(
            (
                "Reference: xception-ham10000's own classifier vs retrieval vote "
                f"(same {int(chunk['n_queries'].iloc[0])} images; {caveat})",
                _classification_table(chunk, ["backbone", "method"]),
            )
        )
    if not of("linear-probe").empty:
        chunk = of("linear-probe")
        by = [c for c in ("backbone", "method", "C", "n_folds", "n_train", "n_test") if c in chunk]
        out.append(("Linear probe (Khoiwal & McMillan (2024))", _classification_table(chunk, by)))
    if not of("knn").empty:
        out.append(
            (
                "k-NN vote, 80/20 (Denner et al. (2024))",
                _classification_table(of("knn"), ["backbone", "k"]),
            )
        )
    if not of("train-test").empty:
        out.append(
            (
                "Train split indexed, test split queries",
                _retrieval_table(of("train-test"), ["backbone"]),
            )
        )
    if not of("cosine-vs-euclidean").empty:
        chunk = of("cosine-vs-euclidean")
        out.append(
            (
                "Cosine vs Euclidean (leave-one-out; equal_norms: same ranking by construction)",
                _retrieval_table(chunk, ["backbone", "similarity", "equal_norms"]),
            )
        )
    if not of("index-size").empty:
        chunk = of("index-size")
        out.append(
            (
                "Index size (fixed queries, growing index; Denner et al. (2024))",
                _retrieval_table(chunk, ["backbone", "index_cases_per_class", "index_items"]),
            )
        )
    if not of("image-size").empty:
        out.append(
            (
                "Image size (Mahbod et al. (2024))",
                _retrieval_table(of("image-size"), ["backbone", "image_size"]),
            )
        )
    for protocol, title in (("text-to-image", "Text to image"), ("zero-shot", "Zero-shot")):
        if not of(protocol).empty:
            out.append((title, _retrieval_table(of(protocol), ["backbone"])))
    return out


def library_warnings(lib: pd.DataFrame) -> list[str]:
    """Why a library's scores are no scores (one class, classes under two cases), as the run
    recorded it; records written before runs recorded it still show a single class."""
    recorded = lib["library_warnings"].dropna().astype(str)
    recorded = recorded[recorded.str.strip() != ""]
    if len(recorded):
        return [recorded.iloc[-1]]
    sized = lib.dropna(subset=["n_classes"])
    if len(sized) and int(sized["n_classes"].max()) == 1:
        named = lib["class"].dropna().astype(str)
        only = named.iloc[0] if len(named) else "its only diagnosis"
        return degenerate_warnings({only: int(sized["n_items"].max())})
    return []


def degenerate_notes(frame: pd.DataFrame) -> list[str]:
    out = []
    for name in sorted(frame["library"].dropna().unique()):
        for warning in library_warnings(frame[frame["library"] == name]):
            out.append(f"- **Not a score on {name}**: {warning}")
    return out
