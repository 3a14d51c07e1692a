"""Report tables for what makes a figure citable: each paper's conventions beside ours, paired
backbone comparisons, and per-group (stratified) results, from the records alone."""

from __future__ import annotations

import pandas as pd

from benchmarks.report.tables import markdown_table, overall, with_interval

# (protocol, measure shown, ours metric, paper metric, k): the paper's code reports Mahbod et
# al.'s (2024) mAP and mMV variants, so ours and theirs are named differently in the records.
CONVENTION_ROWS: tuple[tuple[str, str, str, str, int | None], ...] = (
    ("train-test", "ACC@1", "hit_rate", "hit_rate", 1),
    ("train-test", "ACC@3", "hit_rate", "hit_rate", 3),
    ("train-test", "ACC@5", "hit_rate", "hit_rate", 5),
    ("train-test", "mAP@5", "map", "map_hits_normalised", 5),
    ("train-test", "mMV@5", "mmv", "mmv_ties_counted", 5),
    ("train-test", "P@5", "precision", "precision", 5),
    ("train-test", "P@10", "precision", "precision", 10),
    ("train-test", "P@20", "precision", "precision", 20),
)
PAIRED_SHOWN = {("hit_rate", 1), ("hit_rate", 5), ("map", 5), ("accuracy", None)}


def _difference(ours: float, paper: float) -> str:
    if pd.isna(ours) or pd.isna(paper):
        return ""
    return f"{paper - ours:+.3f}"


def _one(chunk: pd.DataFrame, **equal: object) -> pd.Series | None:
    for key, value in equal.items():
        chunk = chunk[chunk[key].isna()] if value is None else chunk[chunk[key] == value]
    return None if chunk.empty else chunk.iloc[0]


def conventions_table(lib: pd.DataFrame) -> str:
    """Ours and the paper's code side by side, with the difference (paper - ours), for every
    protocol of one library that ran under both."""
    rows_all = overall(lib)
    rows_all = rows_all[rows_all["conventions"].isin(["ours", "paper"])]
    body = []
    for backbone, chunk in rows_all.groupby("backbone", sort=True):
        ours = chunk[chunk["conventions"] == "ours"]
        paper = chunk[chunk["conventions"] == "paper"]
        if paper.empty:
            continue
        for protocol, measure, ours_metric, paper_metric, k in CONVENTION_ROWS:
            a = _one(ours[ours["protocol"] == protocol], metric=ours_metric, k=k)
            b = _one(paper[paper["protocol"] == protocol], metric=paper_metric, k=k)
            if a is None or b is None:
                continue
            body.append(_row(backbone, protocol, measure, a, b))
        for method in sorted(paper.loc[paper["protocol"] == "knn", "method"].dropna().unique()):
            b = _one(paper[paper["protocol"] == "knn"], metric="accuracy", method=method)
            a = _one(ours[ours["protocol"] == "knn"], metric="accuracy", method=method)
            label = "accuracy, k chosen on validation" if method == "knn-selected" else "accuracy"
            if method == "knn-selected":
                label += f" (k = {int(b['k'])})"
            body.append(_row(backbone, f"k-NN {method.removeprefix('knn-')}", label, a, b))
        for method in sorted(paper.loc[paper["protocol"] == "linear-probe", "method"].unique()):
            for metric, measure in (("macro_auc", "macro AUC"), ("accuracy", "accuracy")):
                a = _one(ours[ours["protocol"] == "linear-probe"], metric=metric, method=method)
                b = _one(paper[paper["protocol"] == "linear-probe"], metric=metric, method=method)
                if b is not None:
                    body.append(_row(backbone, f"linear probe, {method}", measure, a, b))
    if not body:
        return ""
    head = ["backbone", "protocol", "measure", "ours", "paper's code", "paper - ours"]
    return markdown_table(head, body)


def _row(backbone: str, protocol: str, measure: str, a, b) -> list[str]:
    ours = with_interval(a["value"], a.get("ci_low"), a.get("ci_high")) if a is not None else ""
    paper = with_interval(b["value"], b.get("ci_low"), b.get("ci_high"))
    diff = _difference(a["value"], b["value"]) if a is not None else ""
    return [backbone, protocol, measure, ours, paper, diff]


def _variant(row: pd.Series) -> str:
    parts = [str(row["compared_protocol"])]
    for key in ("method", "exclusion"):
        value = row.get(key)
        if value is not None and not pd.isna(value) and value != "case+duplicates":
            parts.append(str(value))
    return ", ".join(parts)


def paired_table(lib: pd.DataFrame) -> str:
    """Every pair of backbones (ours conventions): a - b, its 95 % case-resampled interval and
    p-value; a difference whose interval excludes 0 is marked."""
    pairs = lib[(lib["protocol"] == "paired-comparison") & (lib["conventions"] == "ours")]
    body = []
    for _, r in pairs.iterrows():
        k = None if pd.isna(r["k"]) else int(r["k"])
        if (r["metric"], k) not in PAIRED_SHOWN:
            continue
        mark = "**yes**" if r["interval_excludes_zero"] else "no"
        metric = r["metric"] if k is None else f"{r['metric']}@{k}"
        body.append(
            [
                _variant(r),
                metric,
                f"{r['backbone_a']} - {r['backbone_b']}",
                f"{r['value']:+.3f}",
                f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]",
                f"{r['p_value']:.2g} ({r['test']})",
                int(r["n_queries"]),
                mark,
            ]
        )
    if not body:
        return ""
    body.sort()
    head = ["protocol", "metric", "a - b", "difference", "95 % interval", "p", "queries"]
    return markdown_table([*head, "interval excludes 0"], body)


def strata_table(lib: pd.DataFrame) -> str:
    """Top-1, Top-5 and mAP@5 per group of the stratified column (ours conventions), group
    sizes, and each backbone's largest gap between groups."""
    rows = lib[(lib["protocol"] == "stratified") & (lib["conventions"] == "ours")]
    if rows.empty or rows["stratum"].nunique() < 3:  # one group plus its "largest_gap" row
        return ""
    body = []
    shown = (("hit_rate", 1), ("hit_rate", 5), ("map", 5))
    for (protocol, backbone), chunk in rows.groupby(["compared_protocol", "backbone"], sort=True):
        groups = sorted(s for s in chunk["stratum"].unique() if s != "largest_gap")
        for stratum in groups:
            part = chunk[chunk["stratum"] == stratum]
            cells = []
            for metric, k in shown:
                r = _one(part, metric=metric, k=k)
                cells.append(
                    "" if r is None else with_interval(r["value"], r["ci_low"], r["ci_high"])
                )
            n = int(part["n_queries"].iloc[0])
            cases = part["n_cases"].iloc[0]
            size = f"{n} ({int(cases)} cases)" if not pd.isna(cases) else str(n)
            body.append([protocol, backbone, stratum, size, *cells])
        gap = _one(chunk, stratum="largest_gap", metric="hit_rate", k=1)
        if gap is not None:
            body.append(
                [
                    protocol,
                    backbone,
                    f"**largest Top-1 gap: {gap['best_stratum']} - {gap['worst_stratum']}**",
                    "",
                    f"**{gap['value']:+.3f}**",
                    "",
                    "",
                ]
            )
    column = rows["stratify"].iloc[0]
    head = ["protocol", "backbone", column, "queries", "Top-1 [95 %]", "Top-5 [95 %]", "mAP@5"]
    return markdown_table(head, body)
