"""Figures build from flat records and carry the expected traces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.records import retrieval_records
from benchmarks.report.figure_files import write_html, write_static
from benchmarks.report.plots import (
    PUBLISHED,
    accuracy_vs_latency,
    embedding_map,
    hit_rate_curves,
    pareto_front,
    per_class_bars,
    tsne_records,
)
from benchmarks.retrieval import leave_one_out

# (backbone, family, hit@1, seconds per image): "slow-worse" is dominated by "fast-good".
BACKBONES = [
    ("fast-good", "general", 0.6, 0.01),
    ("slow-best", "dermatology", 0.8, 0.2),
    ("slow-worse", "medical", 0.5, 0.3),
    ("fastest", "classical", 0.3, 0.001),
]


def benchmark_records():
    """Real records: leave-one-out runs on synthetic clusters, tagged as a runner would."""
    rng = np.random.default_rng(0)
    labels = np.repeat(["acne", "mpox", "scabies"], 8)
    out = []
    for i, (name, family, _, latency) in enumerate(BACKBONES):
        x = (
            rng.normal(size=(3, 6))[np.repeat(np.arange(3), 8)]
            + rng.normal(size=(24, 6)) * (i + 1) * 0.4
        )
        run = leave_one_out(embeddings=x, labels=labels, k=10)
        for record in retrieval_records(run, ks=(1, 3, 5, 10)):
            out.append(
                {**record, "backbone": name, "family": family, "embed_median_per_item_s": latency}
            )
    return out


def test_pareto_front_keeps_only_undominated_points():
    latency = np.array([b[3] for b in BACKBONES])
    score = np.array([b[2] for b in BACKBONES])
    front = pareto_front(latency=latency, score=score)
    assert [BACKBONES[i][0] for i in front] == ["fastest", "fast-good", "slow-best"]


def test_accuracy_vs_latency_has_one_trace_per_family_and_a_front():
    records = benchmark_records()
    fig = accuracy_vs_latency(records)
    names = [trace.name for trace in fig.data]
    assert names == ["classical", "dermatology", "general", "medical", "Pareto front (ours)"]
    assert fig.layout.xaxis.type == "log"
    frame = pd.DataFrame(records)
    chosen = frame[(frame.metric == "hit_rate") & (frame.k == 1) & frame["class"].isna()]
    front = fig.data[-1]
    best = chosen.sort_values("value").iloc[-1]
    assert best["value"] in list(front.y)  # the most accurate backbone is always on the front
    assert list(front.x) == sorted(front.x)


def test_curves_and_per_class_bars():
    records = benchmark_records()
    curves = hit_rate_curves(records)
    assert sorted(t.name for t in curves.data) == sorted(b[0] for b in BACKBONES)
    assert list(curves.data[0].x) == [1, 3, 5, 10]
    assert all(np.all(np.diff(t.y) >= 0) for t in curves.data)  # hit rate never falls with k

    bars = per_class_bars(pd.DataFrame(records), metric="precision", k=5)
    assert len(bars.data) == 4 and list(bars.data[0].x) == ["acne", "mpox", "scabies"]


def test_missing_keys_and_unknown_metric_are_explained():
    records = [{k: v for k, v in r.items() if k != "family"} for r in benchmark_records()]
    with pytest.raises(ValueError, match="lack \\['family'\\]"):
        accuracy_vs_latency(records)
    with pytest.raises(ValueError, match="no overall records match"):
        hit_rate_curves(benchmark_records(), metric="ndcg")


@pytest.mark.slow
def test_tsne_map_colours_by_label():
    rng = np.random.default_rng(1)
    labels = np.repeat(["acne", "mpox"], 10)
    x = np.where(labels[:, None] == "acne", 3.0, -3.0) + rng.normal(size=(20, 5))
    points = tsne_records(embeddings=x, labels=labels, seed=0, max_iter=250, backbone="synthetic")
    assert len(points) == 20 and points[0]["backbone"] == "synthetic"
    fig = embedding_map(points)
    assert [t.name for t in fig.data] == ["acne", "mpox"]
    assert sum(len(t.x) for t in fig.data) == 20


def test_latency_figure_in_words_with_error_bars_and_published_points_apart():
    records = [
        {**r, "ci_low": r["value"] - 0.05, "ci_high": min(1.0, r["value"] + 0.05)}
        for r in benchmark_records()
    ]
    published = pd.DataFrame(
        {"backbone": ["paper-model"], "value": [0.4], "embed_median_per_item_s": [0.05]}
    )
    fig = accuracy_vs_latency(records, published=published)
    assert fig.layout.yaxis.title.text == "Top-1 hit rate"
    assert "ms" in fig.layout.xaxis.title.text
    ours = [t for t in fig.data if t.name not in ("Pareto front (ours)", PUBLISHED)]
    assert all(t.error_y.array is not None and t.cliponaxis is False for t in ours)
    paper = next(t for t in fig.data if t.name == PUBLISHED)
    assert paper.marker.symbol == "circle-open" and list(paper.y) == [0.4]
    assert list(paper.x) == [50.0]  # seconds drawn as milliseconds
    front = next(t for t in fig.data if t.name == "Pareto front (ours)")
    assert 0.4 not in list(front.y)  # the published point never joins our front


def test_pareto_front_of_two_undominated_backbones_draws_both():
    records = [r for r in benchmark_records() if r["backbone"] in ("fastest", "slow-best")]
    front = next(t for t in accuracy_vs_latency(records).data if t.name == "Pareto front (ours)")
    assert len(front.x) == 2 and "lines" in front.mode


def test_html_reads_offline_and_static_images_are_drawn(tmp_path):
    fig = hit_rate_curves(benchmark_records())
    html = write_html(fig, tmp_path / "curves.html")
    text = html.read_text(encoding="utf-8")
    assert "cdn.plot.ly" not in text and 'src="plotly.min.js"' in text
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000
    if not Path("/usr/bin/chromium").is_file():
        pytest.skip("Debian's chromium is not installed: kaleido has no browser to draw with")
    png, svg = write_static(fig, tmp_path / "curves")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in svg.read_text(encoding="utf-8")[:500]


def variant_record(variant: str, base: str, value: float, **extra) -> dict:
    return {
        "protocol": "variant",
        "metric": "hit_rate",
        "k": 1,
        "variant": variant,
        "base": base,
        "value": value,
        "gain": 0.05,
        "gain_ci_low": 0.01,
        "gain_ci_high": 0.09,
        "search_ms_10k": 1.0,
        "plain_search_ms_10k": 4.0,
        **extra,
    }


def test_variant_points_are_linked_to_their_base_backbone_with_a_legend_in_words():
    records = benchmark_records()
    variants = [
        variant_record("adapter-lda", "slow-best", 0.95),
        variant_record("tta-flip", "fast-good", 0.7),
        variant_record("fusion:fast-good+slow-best", "slow-best", 0.9),
        variant_record("aqe", "not-drawn", 0.9),  # its base is not on the figure: left out
    ]
    fig = accuracy_vs_latency(records, variants=variants)
    names = [t.name for t in fig.data if t.name]
    assert "variant: Adapt to this library's labels (LDA)" in names
    assert "variant: Also search the mirror image" in names
    assert "variant: Combine several backbones" in names
    assert not any("Widen the query" in n for n in names)
    assert "dotted line: a variant and its plain backbone" in names
    links = [t for t in fig.data if t.mode == "lines" and t.showlegend is False]
    assert len(links) == 3
    base = {t.text[i]: (t.x[i], t.y[i]) for t in fig.data[:4] for i in range(len(t.x))}
    lda = next(t for t in links if t.y[1] == 0.95)
    assert (lda.x[0], lda.y[0]) == base["slow-best"]
    assert lda.x[1] == pytest.approx(base["slow-best"][0] - 3.0)  # searches 3 ms faster
    flip = next(t for t in links if t.y[1] == 0.7)
    assert flip.x[1] == pytest.approx(2 * base["fast-good"][0])  # a second pass per photo
    fused = next(t for t in links if t.y[1] == 0.9)
    assert fused.x[1] == pytest.approx(base["slow-best"][0] + base["fast-good"][0])


def test_point_labels_stay_inside_and_apart():
    from benchmarks.report.plots import label_positions

    # Two backbones close together at ~20 ms, one far right: the pair's labels go above and
    # below their points, the rightmost label under its point (inside the figure).
    spots = label_positions(pd.Series([1.2, 1.35, 3.0]), pd.Series([0.43, 0.41, 0.84]))
    assert spots == ["top center", "bottom center", "bottom center"]
    assert label_positions(pd.Series([1.0, 2.0]), pd.Series([0.2, 0.9])) == [
        "middle right",
        "bottom center",
    ]
