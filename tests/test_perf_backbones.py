"""The backbone latency benchmark runs end to end on a fast real backbone and writes its record."""

from __future__ import annotations

import json

from benchmarks.perf.backbones import main, published_reference


def test_latency_benchmark_writes_records_skips_and_published_figures(tmp_path, capsys):
    out = tmp_path / "latency.json"
    argv = ["--only", "--backbones", "efficientnet-lite0", "conch"]
    argv += ["--batch-sizes", "1", "2", "--repeats", "3", "--images", "2", "--out", str(out)]
    assert main(argv) == 0
    payload = json.loads(out.read_text())
    records = payload["records"]
    assert [(r["backbone"], r["batch_size"]) for r in records] == [
        ("efficientnet-lite0", 1),
        ("efficientnet-lite0", 2),
    ]
    for record in records:
        assert record["weights_origin"] == "pretrained" and record["dim"] == 1280
        assert (
            record["model_ms_per_image_median"] > 0 and record["preprocess_ms_per_image_median"] > 0
        )
        assert record["model_ms_per_image_p95"] >= record["model_ms_per_image_median"]
        assert record["torch_threads"] >= 1 and record["device"] == payload["machine"]["device"]
    assert payload["skipped"][0]["backbone"] == "conch"
    assert "conch" in payload["skipped"][0]["reason"]
    printed = capsys.readouterr().out
    assert "efficientnet-lite0" in printed and "skipped conch" in printed


def test_published_figures_come_from_the_cited_csv():
    (row,) = published_reference(["dermlip-vit-b16"])
    assert abs(row["embed_ms_per_image"] - 12.357) < 1e-9
    assert "Pham et al. (2025)" in row["source"] and row["hardware"] == "not stated"
