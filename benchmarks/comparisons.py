"""What per-query records give beyond the summaries: paired backbone comparisons and strata.

Both read only per-query records (see `benchmarks.records.query_records` and
`prediction_records`), so they can be recomputed from the sidecar file of any run. A query's
outcome is a hit at k (its first same-label neighbour ranks k or better) for retrieval, or a
correct prediction for a classifier.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from benchmarks.intervals import N_RESAMPLES, Bootstrap, paired_difference

PAIRED_KS: tuple[int, ...] = (1, 5)
STRATIFIED_PROTOCOLS: tuple[str, ...] = ("leave-one-out", "train-test")
# What tells one set of queries from another: one paired comparison per such variant.
VARIANT_KEYS: tuple[str, ...] = (
    "library",
    "protocol",
    "conventions",
    "exclusion",
    "similarity",
    "method",
    "k",
)
MISSING = "none"


def _frame(queries: Iterable[Mapping] | pd.DataFrame) -> pd.DataFrame:
    frame = queries if isinstance(queries, pd.DataFrame) else pd.DataFrame(list(queries))
    for key in VARIANT_KEYS:
        if key not in frame.columns:
            frame = frame.assign(**{key: None})
    return frame


def outcomes(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """0/1 outcome per query under each metric the records allow: {"hit_rate@1": ..., ...}."""
    if "predicted" in frame.columns and frame["predicted"].notna().all():
        return {"accuracy": (frame["predicted"] == frame["label"]).to_numpy(float)}
    rank = pd.to_numeric(frame["first_hit_rank"], errors="coerce").to_numpy(float)
    out = {f"hit_rate@{k}": np.where(np.isnan(rank), 0.0, rank <= k) for k in PAIRED_KS}
    if "average_precision_at_5" in frame.columns:
        out["map@5"] = pd.to_numeric(frame["average_precision_at_5"], errors="coerce").to_numpy(
            float
        )
    return out


def _split_metric(name: str) -> tuple[str, int | None]:
    metric, _, k = name.partition("@")
    return metric, (int(k) if k else None)


def _variant_fields(values: Sequence) -> dict:
    fields = dict(zip(VARIANT_KEYS, values, strict=True))
    fields["compared_protocol"] = fields.pop("protocol")
    fields["compared_k"] = fields.pop("k")
    return {key: (None if value == MISSING else value) for key, value in fields.items()}


def paired_records(
    queries: Iterable[Mapping] | pd.DataFrame, *, n_resamples: int = N_RESAMPLES
) -> list[dict]:
    """One record per (variant, metric, pair of backbones) on the queries both answered:
    difference a - b, its case-resampled 95 % interval, and a p-value (McNemar's exact test
    for 0/1 outcomes)."""
    frame = _frame(queries)
    if frame.empty:
        return []
    out = []
    variants = frame[list(VARIANT_KEYS)].astype(object).fillna(MISSING).astype(str)
    for values, chunk in frame.groupby([variants[c] for c in VARIANT_KEYS], sort=True):
        by_backbone = {b: part.set_index("query") for b, part in chunk.groupby("backbone")}
        for a, b in combinations(sorted(by_backbone), 2):
            common = by_backbone[a].index.intersection(by_backbone[b].index)
            if len(common) == 0:
                continue
            left, right = by_backbone[a].loc[common], by_backbone[b].loc[common]
            left_out, right_out = outcomes(left.reset_index()), outcomes(right.reset_index())
            for name in left_out:
                if name not in right_out:
                    continue
                found = paired_difference(
                    left_out[name],
                    right_out[name],
                    groups=left["case_id"].to_numpy(),
                    n_resamples=n_resamples,
                )
                metric, k = _split_metric(name)
                out.append(
                    {
                        "protocol": "paired-comparison",
                        **_variant_fields(values),
                        "metric": metric,
                        "k": k,
                        "backbone_a": a,
                        "backbone_b": b,
                        "value": found.difference,
                        "ci_low": found.ci_low,
                        "ci_high": found.ci_high,
                        "p_value": found.p_value,
                        "test": found.test,
                        "interval_excludes_zero": found.excludes_zero,
                        "n_queries": found.n_queries,
                        "n_a_only": found.n_a_only,
                        "n_b_only": found.n_b_only,
                        "n_resamples": n_resamples,
                        "class": None,
                    }
                )
    return out


def stratified_records(
    queries: Iterable[Mapping] | pd.DataFrame,
    *,
    column: str,
    strata: Mapping[str, object],
    n_resamples: int = N_RESAMPLES,
) -> list[dict]:
    """Per-group Top-1, Top-5 and mAP@5 (where recorded) of each backbone and variant, with
    case-resampled intervals and group sizes; ``strata`` maps a query key to its group.

    Each (variant, backbone, metric) also gets one "largest_gap" record: the best group minus
    the worst, naming both."""
    frame = _frame(queries)
    if "first_hit_rank" not in frame.columns:
        return []
    frame = frame[frame["protocol"].isin(STRATIFIED_PROTOCOLS)]
    if frame.empty:
        return []
    groups = frame["query"].map(lambda key: strata.get(key)).astype(object)
    named = groups.notna() & (groups.astype(str).str.strip() != "")
    frame = frame.assign(stratum=groups.where(named, "(empty)").astype(str))
    out = []
    variants = frame[[*VARIANT_KEYS, "backbone"]].astype(object).fillna(MISSING).astype(str)
    for values, chunk in frame.groupby([variants[c] for c in variants.columns], sort=True):
        base = {
            "protocol": "stratified",
            **_variant_fields(values[:-1]),
            "backbone": values[-1],
            "stratify": column,
            "class": None,
        }
        per_metric: dict[str, list[dict]] = {}
        for stratum, part in chunk.groupby("stratum", sort=True):
            boot = Bootstrap.over(part["case_id"].to_numpy(), n_resamples=n_resamples)
            for name, values_ in outcomes(part).items():
                metric, k = _split_metric(name)
                low, high = boot.mean(values_)
                record = {
                    **base,
                    "metric": metric,
                    "k": k,
                    "stratum": stratum,
                    "value": float(np.nanmean(values_)) if np.any(~np.isnan(values_)) else None,
                    "ci_low": low,
                    "ci_high": high,
                    "n_queries": len(part),
                    "n_cases": int(part["case_id"].nunique()),
                    "n_resamples": n_resamples,
                }
                per_metric.setdefault(name, []).append(record)
                out.append(record)
        for name, records in per_metric.items():
            scored = [r for r in records if r["value"] is not None]
            if len(scored) < 2:
                continue
            best = max(scored, key=lambda r: r["value"])
            worst = min(scored, key=lambda r: r["value"])
            metric, k = _split_metric(name)
            out.append(
                {
                    **base,
                    "metric": metric,
                    "k": k,
                    "stratum": "largest_gap",
                    "value": best["value"] - worst["value"],
                    "best_stratum": best["stratum"],
                    "worst_stratum": worst["stratum"],
                    "n_queries": sum(r["n_queries"] for r in records),
                }
            )
    return out
