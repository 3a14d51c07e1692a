"""Plotly figures that read only flat benchmark records (list of dicts or a DataFrame).

Record keys used: protocol, similarity, metric, k, value, class (None overall), plus what the
runner adds: backbone, family, and a latency such as embed_median_per_item_s. The one figure
that needs vectors (the t-SNE map) takes records too: `tsne_records` turns embeddings into them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from data_index.variants import VARIANTS

RecordsLike = pd.DataFrame | Iterable[dict]


def as_frame(records: RecordsLike, *, required: Sequence[str] = ()) -> pd.DataFrame:
    """Records as a DataFrame, or a ValueError naming the keys a figure needs but lacks."""
    frame = records.copy() if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    missing = [key for key in required if key not in frame.columns]
    if missing:
        raise ValueError(
            f"records lack {missing}; the runner must add them (columns present: "
            f"{sorted(map(str, frame.columns))})."
        )
    return frame


def _select(frame: pd.DataFrame, *, per_class: bool = False, **equal: object) -> pd.DataFrame:
    """Rows matching every given key (None values are ignored), overall or per-class rows."""
    mask = pd.Series(True, index=frame.index)
    for key, value in equal.items():
        if value is not None and key in frame.columns:
            mask &= frame[key] == value
    if "class" in frame.columns:
        mask &= frame["class"].notna() if per_class else frame["class"].isna()
    chosen = frame[mask]
    if chosen.empty:
        wanted = {k: v for k, v in equal.items() if v is not None}
        kind = "per-class" if per_class else "overall"
        raise ValueError(
            f"no {kind} records match {wanted}; check the metric, k and protocol names"
            + (" and score runs with per_class=True." if per_class else ".")
        )
    return chosen


def pareto_front(*, latency: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices of points no other point beats on both (lower latency, higher score), by latency."""
    latency = np.asarray(latency, dtype=float)
    score = np.asarray(score, dtype=float)
    order = np.lexsort((-score, latency))  # fastest first; among equals, best score first
    front, best = [], -np.inf
    for i in order:
        if score[i] > best:
            front.append(int(i))
            best = score[i]
    return np.array(front, dtype=np.int64)


# Metric keys in words, for axis titles and legends.
METRIC_WORDS = {
    "hit_rate": "hit rate",
    "precision": "precision",
    "map": "mAP",
    "mmv": "majority-vote accuracy",
    "mrr": "mean reciprocal rank",
}
PUBLISHED = "published, other data and hardware"
LATENCY_TITLES = {
    "total_s_per_image": "ms per image (embed + search)",
    "embed_s_per_image": "ms per image (embed)",
    "search_s_per_query": "ms per query (search)",
}


def metric_title(metric: str, k: int | None) -> str:
    """ "Top-1 hit rate", "mAP at 5": a metric key and its k in words."""
    words = METRIC_WORDS.get(metric, metric.replace("_", " "))
    if k is None:
        return words[0].upper() + words[1:]
    return f"Top-{k} {words}" if metric == "hit_rate" else f"{words} at {k}"


def _error_bars(group: pd.DataFrame) -> dict | None:
    """Plotly error bars from the records' 95 % interval, where they carry one."""
    if not {"ci_low", "ci_high"} <= set(group.columns) or group["ci_low"].isna().all():
        return None
    return {
        "type": "data",
        "symmetric": False,
        "array": (group["ci_high"] - group["value"]).clip(lower=0).tolist(),
        "arrayminus": (group["value"] - group["ci_low"]).clip(lower=0).tolist(),
        "thickness": 1.2,
        "width": 4,
    }


def label_positions(log_ms: pd.Series, score: pd.Series) -> list[str]:
    """Where each point's label goes so that none is clipped or drawn over another: right of
    its point, under it for the rightmost ones (variant points sit to their left and right), and
    above / below for two points close together."""
    x, y = np.asarray(log_ms, dtype=float), np.asarray(score, dtype=float)
    spots = ["bottom center" if xi > x.max() - 0.35 else "middle right" for xi in x]
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            if abs(x[i] - x[j]) < 0.6 and abs(y[i] - y[j]) < 0.08:
                upper, lower = (i, j) if y[i] >= y[j] else (j, i)
                spots[upper], spots[lower] = "top center", "bottom center"
    return spots


def accuracy_vs_latency(
    records: RecordsLike,
    *,
    metric: str = "hit_rate",
    k: int | None = 1,
    protocol: str | None = "leave-one-out",
    latency_key: str = "embed_median_per_item_s",
    published: pd.DataFrame | None = None,
    variants: RecordsLike | None = None,
) -> go.Figure:
    """Score against latency (ms, log axis) per backbone, colour = family, 95 % error bars and
    the Pareto front; ``published`` (columns backbone, value, latency in seconds under
    ``latency_key``) is drawn apart as hollow points, never mixed with ours. ``variants``
    (retrieval variant records of the same library) add one point per variant and base
    backbone, joined to that backbone's point by a dotted line."""
    frame = as_frame(records, required=("backbone", "family", "metric", "value", latency_key))
    chosen = _select(frame, metric=metric, k=k, protocol=protocol)
    columns = ["value", latency_key] + [c for c in ("ci_low", "ci_high") if c in chosen.columns]
    chosen = chosen.groupby(["backbone", "family"], as_index=False)[columns].mean()
    chosen["ms"] = chosen[latency_key] * 1000
    chosen["label_at"] = label_positions(np.log10(chosen["ms"]), chosen["value"])
    fig = go.Figure()
    for family, group in chosen.groupby("family", sort=True):
        fig.add_trace(
            go.Scatter(
                x=group["ms"],
                y=group["value"],
                error_y=_error_bars(group),
                mode="markers+text",
                marker={"size": 11},
                text=group["backbone"],
                textposition=group["label_at"].tolist(),
                cliponaxis=False,
                name=str(family),
            )
        )
    front = chosen.iloc[pareto_front(latency=chosen["ms"], score=chosen["value"])]
    fig.add_trace(
        go.Scatter(
            x=front["ms"],
            y=front["value"],
            mode="lines+markers",
            marker={"size": 5, "color": "grey"},
            line={"dash": "dash", "color": "grey"},
            name="Pareto front (ours)",
        )
    )
    shown = [chosen["ms"]]
    if variants is not None and metric == "hit_rate":
        points = variant_points(variants, chosen, k=k)
        _draw_variants(fig, points)
        if len(points):
            shown.append(points["ms"])
    if published is not None and not published.empty:
        ms = published[latency_key] * 1000
        shown.append(ms)
        fig.add_trace(
            go.Scatter(
                x=ms,
                y=published["value"],
                mode="markers",
                marker={"symbol": "circle-open", "size": 10, "color": "black"},
                text=published["backbone"],
                hovertemplate="%{text}: %{y:.3f} at %{x:.1f} ms<extra>" + PUBLISHED + "</extra>",
                name=PUBLISHED,
            )
        )
    everything = pd.concat(shown)
    low, high = np.log10(everything.min()), np.log10(everything.max())
    label = metric_title(metric, k)
    fig.update_layout(
        title=f"{label} against time per image",
        # room on the right for the point labels, which are never clipped
        xaxis={
            "type": "log",
            "title": LATENCY_TITLES.get(latency_key, f"{latency_key} (ms)"),
            "range": [low - 0.3, high + 0.6],
        },
        yaxis={"title": label, "range": [0, 1.05]},
        legend={"title": "family or variant"},
        margin={"l": 70, "r": 40, "t": 60, "b": 60},
    )
    return fig


VARIANT_SYMBOLS = ("diamond", "star", "triangle-up", "square", "cross", "x", "hexagon")
VARIANT_LINK = "dotted line: a variant and its plain backbone"


def variant_points(variants: RecordsLike, bases: pd.DataFrame, *, k: int | None) -> pd.DataFrame:
    """One row per variant record at ``k`` whose base backbone is drawn: where it goes (ms as
    the base's time plus the variant's extra work, its Top-k) and where its base is.

    Extra work: a second forward pass for tta-flip (the base's own time again), every other
    member's time for fusion, else the change in search time measured at 10,000 cases beside
    the plain search."""
    frame = as_frame(variants)
    if frame.empty or "variant" not in frame.columns:
        return pd.DataFrame(columns=["variant", "base", "ms", "value", "base_ms", "base_value"])
    frame = frame[(frame["protocol"] == "variant") & (frame["metric"] == "hit_rate")]
    frame = frame[frame["k"] == k] if k is not None else frame
    base_ms = dict(zip(bases["backbone"], bases["ms"], strict=True))
    base_value = dict(zip(bases["backbone"], bases["value"], strict=True))
    rows = []
    for r in frame.to_dict("records"):
        if r["base"] not in base_ms:
            continue
        kind, _, members = str(r["variant"]).partition(":")
        if kind == "tta-flip":
            extra = base_ms[r["base"]]
        elif kind == "fusion":
            others = [m for m in members.split("+") if m and m != r["base"]]
            if any(m not in base_ms for m in others):
                continue
            extra = sum(base_ms[m] for m in others)
        else:
            extra = float(r.get("search_ms_10k", 0) or 0) - float(
                r.get("plain_search_ms_10k", 0) or 0
            )
        rows.append(
            {
                "variant": r["variant"],
                "kind": kind,
                "base": r["base"],
                "ms": max(base_ms[r["base"]] + extra, 0.01),
                "value": r["value"],
                "gain": r["gain"],
                "gain_ci_low": r["gain_ci_low"],
                "gain_ci_high": r["gain_ci_high"],
                "base_ms": base_ms[r["base"]],
                "base_value": base_value[r["base"]],
            }
        )
    return pd.DataFrame(rows, columns=None if rows else ["variant", "ms", "value"])


def _draw_variants(fig: go.Figure, points: pd.DataFrame) -> None:
    if points.empty:
        return
    for r in points.to_dict("records"):
        fig.add_trace(
            go.Scatter(
                x=[r["base_ms"], r["ms"]],
                y=[r["base_value"], r["value"]],
                mode="lines",
                line={"dash": "dot", "color": "rgba(90,90,90,0.6)", "width": 1.2},
                hoverinfo="skip",
                showlegend=False,
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[None],
            y=[None],
            mode="lines",
            line={"dash": "dot", "color": "rgba(90,90,90,0.6)"},
            name=VARIANT_LINK,
        )
    )
    for i, (kind, group) in enumerate(points.groupby("kind", sort=True)):
        title = VARIANTS[kind].title if kind in VARIANTS else kind
        hover = [
            f"{v} on {b}: {100 * g:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}]"
            for v, b, g, lo, hi in zip(
                group["variant"], group["base"], group["gain"], group["gain_ci_low"],
                group["gain_ci_high"], strict=True,
            )
        ]  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=group["ms"],
                y=group["value"],
                mode="markers",
                marker={
                    "symbol": VARIANT_SYMBOLS[i % len(VARIANT_SYMBOLS)],
                    "size": 10,
                    "color": "white",
                    "line": {"width": 1.5, "color": "black"},
                },
                text=hover,
                hovertemplate="%{text}<br>%{y:.3f} at %{x:.1f} ms<extra></extra>",
                name=f"variant: {title}",
            )
        )


def hit_rate_curves(
    records: RecordsLike,
    *,
    metric: str = "hit_rate",
    protocol: str | None = "leave-one-out",
    series_key: str = "backbone",
) -> go.Figure:
    """Metric against k, one line per backbone (or other `series_key`), 95 % error bars."""
    frame = as_frame(records, required=(series_key, "metric", "k", "value"))
    chosen = _select(frame, metric=metric, protocol=protocol).dropna(subset=["k"])
    columns = ["value"] + [c for c in ("ci_low", "ci_high") if c in chosen.columns]
    fig = go.Figure()
    for name, group in chosen.groupby(series_key, sort=True):
        curve = group.groupby("k", as_index=False)[columns].mean().sort_values("k")
        fig.add_trace(
            go.Scatter(
                x=curve["k"],
                y=curve["value"],
                error_y=_error_bars(curve),
                mode="lines+markers",
                name=str(name),
            )
        )
    words = METRIC_WORDS.get(metric, metric)
    fig.update_layout(
        title=f"Top-k {words} against k",
        xaxis={"title": "k (neighbours returned)", "type": "log"},
        yaxis={"title": f"Top-k {words}", "range": [0, 1.05]},
        margin={"l": 70, "r": 40, "t": 60, "b": 60},
    )
    return fig


def per_class_bars(
    records: RecordsLike,
    *,
    metric: str = "hit_rate",
    k: int | None = 1,
    protocol: str | None = "leave-one-out",
    series_key: str = "backbone",
) -> go.Figure:
    """Grouped bars of a per-class metric: classes on x, one bar series per backbone."""
    frame = as_frame(records, required=(series_key, "metric", "value", "class"))
    chosen = _select(frame, per_class=True, metric=metric, k=k, protocol=protocol)
    classes = sorted(chosen["class"].unique().tolist(), key=str)
    fig = go.Figure()
    for name, group in chosen.groupby(series_key, sort=True):
        values = group.groupby("class")["value"].mean()
        fig.add_trace(
            go.Bar(x=[str(c) for c in classes], y=[values.get(c) for c in classes], name=str(name))
        )
    label = metric_title(metric, k)
    fig.update_layout(
        barmode="group",
        title=f"{label} per class",
        yaxis={"title": label, "range": [0, 1.05]},
        xaxis={"title": "class", "automargin": True, "tickangle": -30},
        margin={"l": 70, "r": 40, "t": 60, "b": 60},
    )
    return fig


def tsne_records(
    *,
    embeddings: np.ndarray,
    labels: np.ndarray,
    seed: int = 0,
    perplexity: float = 30.0,
    max_iter: int = 1000,
    **extra: object,
) -> list[dict]:
    """2-D t-SNE coordinates (scikit-learn, seeded, cosine) as records: x, y, label, row.

    Perplexity is capped below the number of points, which t-SNE requires; `extra` keys (e.g.
    backbone) are copied into every record.
    """
    from sklearn.manifold import TSNE  # slow import; only this figure needs it

    vectors = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels)
    if vectors.ndim != 2 or len(vectors) != len(labels) or len(vectors) < 3:
        raise ValueError(
            f"need at least 3 embeddings (n, dim) with one label each; got {vectors.shape} and "
            f"{labels.shape}."
        )
    tsne = TSNE(
        n_components=2,
        perplexity=min(perplexity, (len(vectors) - 1) / 3),
        metric="cosine",
        init="pca",
        random_state=seed,
        max_iter=max_iter,
    )
    points = tsne.fit_transform(vectors)
    return [
        {"x": float(x), "y": float(y), "label": label, "row": row, **extra}
        for row, ((x, y), label) in enumerate(zip(points, labels.tolist(), strict=True))
    ]


def embedding_map(records: RecordsLike, *, title: str = "t-SNE of the library") -> go.Figure:
    """Scatter of 2-D map records (x, y, label), one trace (colour) per label."""
    frame = as_frame(records, required=("x", "y", "label"))
    fig = go.Figure()
    for label, group in frame.groupby("label", sort=True):
        fig.add_trace(
            go.Scatter(
                x=group["x"], y=group["y"], mode="markers", name=str(label), marker={"size": 6}
            )
        )
    fig.update_layout(
        title=title,
        xaxis={"showticklabels": False, "title": "t-SNE 1"},
        yaxis={"showticklabels": False, "title": "t-SNE 2"},
    )
    return fig
