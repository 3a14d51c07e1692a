"""The benchmark runner end to end on a generated library: records, exclusions, CLI, report."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from library_factory import make_folder_library, save_image
from PIL import Image

from benchmarks.__main__ import main
from benchmarks.latency import LatencySettings
from benchmarks.protocols import REGISTRY, parse_protocols
from benchmarks.records import read_records
from benchmarks.report.markdown import markdown_report
from benchmarks.report.tables import latest_runs
from benchmarks.runner import BenchmarkCancelled, run_benchmark
from data_index import CaseLibrary
from data_index.audit import audit_cache_file, audit_library, case_or_copy_groups, queries_with_copy

REPO = Path(__file__).resolve().parents[1]
FAST = LatencySettings(batch_size=4, n_queries=5, repeats=2, warmup=1)
RUN_KEYS = (
    "run_id",
    "date",
    "backbone",
    "family",
    "weights_origin",
    "dim",
    "library",
    "library_fingerprint",
    "protocol",
    "metric",
    "k",
    "value",
    "embed_s_per_image",
    "embed_batch_size",
    "search_s_per_query",
    "total_s_per_image",
    "device",
    "device_name",
    "versions",
)


def make_library_with_copy(root: Path) -> Path:
    """Coloured patterns (4 classes x 5) plus one photo and its mirror image filed as two
    cases of one class: the duplicate audit must put the pair in one group."""
    make_folder_library(root, per_class=5)
    rng = np.random.default_rng(3)
    photo = Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).resize(
        (160, 128), Image.Resampling.BICUBIC
    )
    save_image(photo, root / "red-stripes" / "photo.jpg")
    save_image(photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT), root / "red-stripes" / "copy.jpg")
    return root


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    make_library_with_copy(root / "lib")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DERMSEARCH_CACHE", str(root / "cache"))
        yield root


@pytest.fixture(scope="module")
def colour_run(workspace):
    """color-texture through leave-one-out and the linear probe, records appended to JSONL."""
    out = workspace / "results.jsonl"
    seen: list[tuple[float, str]] = []
    records = run_benchmark(
        workspace / "lib",
        ["color-texture"],
        ["loo", "linear-probe", "text", "reference-classifier"],
        progress=lambda f, m: seen.append((f, m)),
        out=out,
        latency=FAST,
    )
    return records, out, seen


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("loo", ["leave-one-out"]),
        ("LOO, linear_probe", ["leave-one-out", "linear-probe"]),
        (["leave-one-out", "loo"], ["leave-one-out"]),
        ("zero-shot", ["text"]),
        ("all", None),
    ],
)
def test_parse_protocols(given, expected):
    assert parse_protocols(given) == (expected or list(REGISTRY))


@pytest.mark.parametrize("bad", ["loocv", "", " , "])
def test_parse_protocols_refuses_unknown_or_empty(bad):
    with pytest.raises(ValueError, match="protocol"):
        parse_protocols(bad)


def test_records_are_flat_and_written(colour_run):
    records, out, seen = colour_run
    on_disk = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(on_disk) == len(records)
    frame = pd.DataFrame(on_disk)
    for key in RUN_KEYS:
        assert key in frame.columns, key
    assert set(frame["backbone"]) == {"color-texture"}
    assert set(frame["weights_origin"]) == {"pretrained"}
    assert set(frame["library"]) == {"lib"}
    assert frame["library_fingerprint"].str.len().eq(16).all()
    assert (frame["embed_s_per_image"] > 0).all() and (frame["search_s_per_query"] > 0).all()
    hits = frame[(frame["metric"] == "hit_rate") & frame["class"].isna()]
    assert set(hits["k"]) == {1, 2, 3, 5, 10, 20}
    assert hits["value"].between(0, 1).all()
    # Distinct colours and patterns: the nearest other image is of the same class.
    top1 = hits[(hits["k"] == 1) & (hits["exclusion"] == "case+duplicates")]["value"]
    assert top1.iloc[0] > 0.9
    assert not frame[(frame["protocol"] == "linear-probe") & (frame["metric"] == "macro_auc")].empty
    assert seen[-1][0] == pytest.approx(1.0)
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)


def test_protocols_that_cannot_run_are_skip_records(colour_run):
    records, _, _ = colour_run
    skips = {r["protocol"]: r["reason"] for r in records if r["metric"] == "skipped"}
    assert sorted(skips) == ["reference-classifier", "text"]
    assert "no text tower" in skips["text"]
    assert "only xception-ham10000 has a classifier" in skips["reference-classifier"]


def test_duplicate_exclusion_counts_and_both_figures(colour_run, workspace):
    records, _, _ = colour_run
    loo = [r for r in records if r["protocol"] == "leave-one-out" and r["class"] is None]
    assert {r["exclusion"] for r in loo} == {"case+duplicates", "case-only"}
    assert {r["n_queries_with_copy"] for r in loo} == {2}
    assert {r["n_queries_copy_other_case"] for r in loo} == {2}

    def value(exclusion: str, metric: str = "hit_rate", k: int = 1) -> float:
        (v,) = [
            r["value"]
            for r in loo
            if r["exclusion"] == exclusion and r["metric"] == metric and r["k"] == k
        ]
        return v

    # The photo and its mirror find each other only when the duplicate rule is off.
    assert value("case-only") > value("case+duplicates")
    library = CaseLibrary.load(workspace / "lib")
    assert audit_cache_file(library).is_file()  # the runner's audit, read back below
    dups = audit_library(library)
    assert dups.n_groups == 1
    rows = library.cases["relpath"].tolist()
    ids = dict(zip(rows, dups.group_ids.tolist(), strict=True))
    assert ids["red-stripes/photo.jpg"] == ids["red-stripes/copy.jpg"]
    assert len(set(ids.values())) == len(rows) - 1


def test_queries_with_copy_and_split_groups_by_hand():
    groups = np.array([0, 0, 1, 2, 2, 3])
    cases = np.array(["a", "b", "c", "d", "d", "e"])
    # Rows 0-1: copies in two cases; rows 3-4: copies within one case (already excluded).
    assert queries_with_copy(group_ids=groups, case_ids=cases) == (4, 2)
    joined = case_or_copy_groups(group_ids=np.array([0, 1, 1, 2]), case_ids=np.array(list("aabc")))
    assert joined[0] == joined[1] == joined[2] != joined[3]


def test_architecture_only_backbone_records_timings_never_accuracy(workspace):
    out = workspace / "arch.jsonl"
    records = run_benchmark(
        workspace / "lib",
        ["efficientnet-lite0"],
        ["loo", "linear-probe"],
        out=out,
        random_weights=True,
        latency=FAST,
    )
    assert {r["weights_origin"] for r in records} == {"architecture-only"}
    assert {r["protocol"] for r in records if r["metric"] != "skipped"} == {"latency"}
    skips = [r for r in records if r["metric"] == "skipped"]
    assert {r["protocol"] for r in skips} == {"leave-one-out", "linear-probe"}
    assert all("architecture-only" in r["reason"] for r in skips)
    assert len(out.read_text().splitlines()) == len(records)
    # A report of timing-only records has no accuracy table rows but still reads.
    text = markdown_report(latest_runs(read_records(out)))
    assert (
        "Architecture-only (random weights, timings only, no accuracy): efficientnet-lite0" in text
    )
    assert "| lib | efficientnet-lite0 | architecture-only |" in text


def test_should_stop_cancels_and_keeps_finished_records(workspace):
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(BenchmarkCancelled) as caught:
        run_benchmark(workspace / "lib", ["color-texture"], ["loo"], should_stop=stop, latency=FAST)
    assert caught.value.records == []


def test_report_markdown(colour_run):
    _, out, _ = colour_run
    text = markdown_report(latest_runs(read_records(out)), source="results.jsonl")
    assert "## Leave-one-out retrieval" in text
    row = next(line for line in text.splitlines() if line.startswith("| lib | color-texture |"))
    assert row.count("|") == 18  # 17 columns: backbone ... total
    assert "**2 of 22 queries had a copy in the library**" in text
    assert "Top-1 case-only" in text
    assert "NOT this project's results" in text
    assert "could not be run here" in text
    assert "| lib | color-texture | text |" in text  # the skip and its reason


def test_latest_runs_keeps_the_newest_rerun(colour_run, workspace):
    records, _, _ = colour_run
    older = [{**r, "run_id": "0-old", "value": -1.0} for r in records]
    frame = latest_runs(pd.DataFrame(older + records))
    assert len(frame) == len(records) and (frame["value"] != -1.0).all()


def call(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--backbones", "no-such-model"], "Unknown backbone 'no-such-model'"),
        (["--backbones", "clip-vit-b32"], "has no weights on this machine"),
        (["--backbones", "color-texture", "--protocol", "loocv"], "Unknown protocol 'loocv'"),
        (["--backbones", "color-texture", "--library-missing"], "unrecognized arguments"),
    ],
)
def test_cli_errors_exit_2_with_one_sentence(workspace, capsys, args, needle):
    code, _, err = call(capsys, "run", "--library", str(workspace / "lib"), *args)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1


def results_state() -> dict[str, tuple[int, str]]:
    """(mtime, sha1) of every file under the committed benchmarks/results/."""
    folder = REPO / "benchmarks" / "results"
    return {
        str(path.relative_to(folder)): (
            path.stat().st_mtime_ns,
            hashlib.sha1(path.read_bytes()).hexdigest(),
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_cli_run_without_out_writes_a_new_file_in_the_cache_never_the_results(workspace, capsys):
    before = results_state()
    runs = workspace / "cache" / "benchmark-runs"
    old = set(runs.glob("*.jsonl"))
    args = ["run", "--library", str(workspace / "lib"), "--backbones", "color-texture"]
    args += ["--protocol", "loo", "--timing-batch", "4", "--timing-repeats", "2"]
    args += ["--csv", str(workspace / "this-run.csv")]
    printed = []
    for _ in range(2):  # a second run gets a file of its own, even within the same second
        code, out, err = call(capsys, *args)
        assert code == 0, err
        printed.append(out)
    assert results_state() == before
    new = set(runs.glob("*.jsonl")) - old
    assert len(new) == 2
    for out in printed:
        (path,) = [p for p in new if f"appended to {p}" in out]
        assert re.fullmatch(r"\d{8}T\d{6}Z-lib(-\d+)?\.jsonl", path.name)
        records = [json.loads(line) for line in path.read_text().splitlines()]
        runs_in_file = {(r["library"], r["run_id"]) for r in records}
        assert len(runs_in_file) == 1 and next(iter(runs_in_file))[0] == "lib"
    assert len(pd.read_csv(workspace / "this-run.csv")) == len(records)


def test_cli_bad_library_and_bad_results_exit_2(workspace, capsys):
    code, _, err = call(
        capsys, "run", "--library", str(workspace / "nowhere"), "--backbones", "color-texture"
    )
    assert code == 2 and "does not exist" in err
    code, _, err = call(capsys, "report", str(workspace / "nothing.jsonl"))
    assert code == 2 and "not a results file" in err


def test_cli_report_through_a_subprocess(workspace, colour_run):
    _, results, _ = colour_run
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "report",
            str(results),
            "--markdown",
            str(workspace / "r.md"),
            "--plots",
            str(workspace / "plots"),
            "--csv",
            str(workspace / "r.csv"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr
    assert (workspace / "r.md").read_text().startswith("# Backbone comparison")
    figures = sorted(p.name for p in (workspace / "plots").glob("*.html"))
    assert figures == [
        "lib-hit-rate-at-k.html",
        "lib-top1-per-class.html",
        "lib-top1-vs-latency.html",
    ]
    assert len(pd.read_csv(workspace / "r.csv")) == len(results.read_text().splitlines())


@pytest.mark.parametrize(
    ("counts", "wanted"),
    [
        ({"red-stripes": 4}, "single class (red-stripes)"),
        (
            {"red-stripes": 4, "blue-checks": 4, "green-dots": 1},
            "fewer than 2 cases (green-dots)",
        ),
    ],
)
def test_report_says_a_degenerate_library_has_no_score(tmp_path, monkeypatch, counts, wanted):
    """One class scores Top-1 1.000 by construction, and a one-case class cannot find itself:
    the report says so at the top and in the library's section, as validation does."""
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "lib"
    for label, n in counts.items():
        make_folder_library(root, per_class=n, labels=(label,))
    out = tmp_path / "results.jsonl"
    run_benchmark(root, ["color-texture"], ["loo"], out=out, latency=FAST)
    text = markdown_report(latest_runs(read_records(out)))
    notes, section = text.split("## lib", 1)
    assert "**Not a score on lib**: " in notes and wanted in notes
    assert "**Warning:**" in section and wanted in section


def test_report_of_a_healthy_library_has_no_degenerate_warning(colour_run):
    _, out, _ = colour_run
    text = markdown_report(latest_runs(read_records(out)))
    assert "Not a score on" not in text and "**Warning:**" not in text
