"""The non-timing helpers of benchmarks/perf/app_latency.py: query choice, summaries, results."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.perf.app_latency import (
    Level,
    Outcome,
    pick_queries,
    render_table,
    summarise,
    write_run,
)


def manifest() -> pd.DataFrame:
    rows = [
        {"path": f"images/{label}/{split}-{i}.jpg", "label": label, "split": split}
        for label in ("b-class", "a-class")
        for split in ("train", "test")
        for i in range(3)
    ]
    return pd.DataFrame(rows)


def test_pick_queries_takes_test_photos_interleaved_by_class(tmp_path: Path):
    picked = pick_queries(manifest(), root=tmp_path, per_class=2)
    assert [label for _, label in picked] == ["a-class", "b-class", "a-class", "b-class"]
    assert all("/test-" in path and Path(path).is_absolute() for path, _ in picked)
    assert picked[0][0] == str((tmp_path / "images/a-class/test-0.jpg").resolve())


def test_pick_queries_uses_every_split_when_there_is_no_test_split(tmp_path: Path):
    frame = manifest()
    frame["split"] = "train"
    picked = pick_queries(frame, root=tmp_path, per_class=1)
    assert len(picked) == 2


def test_pick_queries_rejects_a_manifest_without_labels(tmp_path: Path):
    with pytest.raises(ValueError, match="'path' and 'label'"):
        pick_queries(pd.DataFrame({"path": ["x.jpg"]}), root=tmp_path)


def test_summarise_leaves_failed_requests_out_of_the_percentiles():
    level = Level(clients=2, wall_s=2.0)
    level.outcomes = [Outcome(s / 1000, embed_ms=50.0) for s in (100, 200, 300, 400)]
    level.outcomes.append(Outcome(9.0, error="TimeoutError: "))
    row = summarise(level)
    assert row["requests"] == 5 and row["errors"] == 1
    assert row["median_ms"] == 250.0
    assert row["p95_ms"] == 385.0  # linear interpolation between 300 and 400
    assert row["max_ms"] == 400.0
    assert row["throughput_rps"] == 2.0
    assert row["server_embed_median_ms"] == 50.0
    assert row["first_errors"] == ["TimeoutError: "]
    assert "| 2 | 5 | 1 | 250.0 | 385.0 | 400.0 | 2.0 | 50.0 |" in render_table([row])


def test_summarise_of_only_failures_has_no_latency():
    level = Level(clients=1, outcomes=[Outcome(1.0, error="boom")], wall_s=1.0)
    row = summarise(level)
    assert row["median_ms"] is None and row["p95_ms"] is None
    assert "| 1 | 1 | 1 | - | - |" in render_table([row])


def test_write_run_replaces_the_same_configuration_only(tmp_path: Path):
    out = tmp_path / "app_latency.json"
    base = {"backbone": "b", "library": "l", "k": 10, "app_started_by_script": True}
    write_run(out, base | {"app_torch_threads": None, "n": 1})
    write_run(out, base | {"app_torch_threads": 1, "n": 2})
    write_run(out, base | {"app_torch_threads": None, "n": 3})
    runs = json.loads(out.read_text())["runs"]
    assert sorted(r["n"] for r in runs) == [2, 3]
