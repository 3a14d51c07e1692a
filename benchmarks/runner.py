"""Backbones x libraries x protocols -> flat records, appended to a JSONL file as each finishes.

One record per (run, metric, k[, class]); each carries who ran (backbone, family, weights
origin), on what (library name and fingerprint), how (protocol, exclusion, similarity), the
value, the run's latencies, the device and package versions, and the date. Architecture-only
(random-weight) backbones get latency records only: their vectors mean nothing, so no
accuracy is ever recorded for them.
"""

from __future__ import annotations

import dataclasses
import platform
import subprocess
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from benchmarks.comparisons import paired_records, stratified_records
from benchmarks.embedded import Embedded, parse_conventions
from benchmarks.latency import (
    SUMMARY_KEYS,
    LatencySettings,
    latency_fields,
    time_embedding,
    time_search,
    time_usearch,
)
from benchmarks.protocols import REGISTRY, parse_protocols, protocol_records
from benchmarks.records import append_queries, append_records, queries_path
from benchmarks.timing import machine_description
from benchmarks.variants import variant_records
from data_index.audit import DuplicateReport, audit_library
from data_index.case_index import CaseIndex
from data_index.library import CaseLibrary
from models import Backbone, availability, get_spec, list_specs, load_backbone

Progress = Callable[[float, str], None]
_PACKAGES = ("numpy", "torch", "usearch", "scikit-learn", "pandas", "open_clip_torch", "timm")


class BenchmarkCancelled(RuntimeError):
    """should_stop() said stop; ``records`` holds what finished (already written to ``out``)."""

    def __init__(self, records: list[dict]) -> None:
        super().__init__(f"Benchmark stopped after {len(records)} record(s).")
        self.records = records


def software_versions() -> dict:
    """Python, key packages and the repository commit, for every record."""
    parts = [f"python {platform.python_version()}"]
    for name in _PACKAGES:
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"versions": "; ".join(parts), "git_commit": commit or "unknown"}


def _device_fields(backbone: Backbone) -> dict:
    described = machine_description(str(backbone.device))
    keep = ("device", "device_name", "cpu_model", "cpus_available", "torch_threads", "cuda")
    out = {key: described[key] for key in keep if key in described}
    if described["load_average"] is not None:
        out["load_average_1min"] = described["load_average"][0]  # the 2-core box is shared
    return out


def check_backbones(names: Sequence[str], *, random_weights: bool) -> list[str]:
    """Registry keys for the names, or a ValueError naming the first that cannot load here."""
    if isinstance(names, str) or not names:
        raise ValueError("Name at least one backbone, e.g. --backbones color-texture.")
    keys = []
    for name in names:
        spec = get_spec(name)  # UnknownBackbone (a ValueError) lists the valid keys
        if not random_weights and not availability(spec).ready:
            raise ValueError(
                f"Backbone '{spec.key}' has no weights on this machine "
                f"({availability(spec).detail}); pass --random-weights to time it "
                "architecture-only."
            )
        if spec.key not in keys:
            keys.append(spec.key)
    return keys


def open_library(library: str | Path | CaseLibrary) -> CaseLibrary:
    if isinstance(library, CaseLibrary):
        return library
    loaded = CaseLibrary.load(library)
    if len(loaded) == 0:
        raise ValueError(
            f"The library {library} has no usable images ({loaded.report.images_found} found)."
        )
    return loaded


def _aligned(dups: DuplicateReport | None, relpaths_all: list[str], relpaths: list[str]):
    if dups is None:  # no audit wanted: every image its own group
        return np.arange(len(relpaths), dtype=np.int64)
    by_path = dict(zip(relpaths_all, dups.group_ids.tolist(), strict=True))
    return np.array([by_path[p] for p in relpaths], dtype=np.int64)


def run_benchmark(
    library: str | Path | CaseLibrary,
    backbones: Sequence[str],
    protocols: Sequence[str] | str = ("leave-one-out",),
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    out: str | Path | None = None,
    random_weights: bool = False,
    device: str | None = None,
    latency: LatencySettings | None = None,
    load: Callable[[str], Backbone] | None = None,
    embeddings_cache: Path | None = None,
    num_workers: int | None = None,
    variants: Sequence[str] = (),
    conventions: Sequence[str] | str = ("ours",),
    stratify: str | None = None,
) -> list[dict]:
    """Run every protocol for every backbone on one library; return (and append to ``out``)
    the records. ``variants`` (names of `data_index.variants`) are then measured against
    their plain backbones on the same embeddings (`benchmarks.variants`). ``load`` may hand
    over already loaded backbones (the app's cache); ``progress(fraction, message)`` reports,
    ``should_stop()`` cancels between steps.

    Per-query records go to the sidecar file beside ``out`` (`queries_path`); once every
    backbone is done, a paired comparison of each pair of backbones and, with ``stratify``
    (a manifest column), per-group results are added to the records."""
    names = parse_protocols(protocols)
    wanted = parse_conventions(conventions)
    keys = check_backbones(backbones, random_weights=random_weights)
    lib = open_library(library)
    if stratify is not None and stratify not in lib.cases.columns:
        shown = ", ".join(c for c in lib.cases.columns if c not in ("key", "path", "sha1"))
        raise ValueError(f"{lib.name} has no column '{stratify}' to stratify by; it has {shown}.")
    latency = latency or LatencySettings()
    stopping = should_stop or (lambda: False)
    records: list[dict] = []
    queries: list[dict] = []
    run_ids: dict[str, str] = {}

    def say(fraction: float, message: str) -> None:
        if stopping():
            raise BenchmarkCancelled(records)
        if progress is not None:
            progress(min(1.0, fraction), message)

    relpaths_all = lib.cases["relpath"].astype(str).tolist()
    dups = None
    if not random_weights:
        say(0.0, f"{lib.name}: looking for copies of one photo (duplicate audit)")
        dups = audit_library(
            lib, progress=lambda f, m: say(0.1 * f / len(keys), f"{lib.name}: audit, {m}")
        )
    missing_here = ", ".join(s.key for s in list_specs() if not availability(s).ready)
    stamp = datetime.now(UTC)
    common = {
        "date": stamp.isoformat(timespec="seconds"),
        "library": lib.name,
        "library_fingerprint": lib.fingerprint[:16],
        **software_versions(),
    }
    if lib.report.warnings:
        # One class, or classes under two cases: the report says its scores are no scores.
        common["library_warnings"] = " ".join(lib.report.warnings)
    if dups is not None:
        # Only confident copies are grouped, excluded and counted; possible copies are not.
        common |= {
            "n_duplicate_groups": dups.n_groups,
            "n_duplicate_conflicts": dups.n_conflicts,
            "duplicate_level": "copy",
            "n_possible_copies": len(dups.possible),
        }
    views: dict[str, Embedded] = {}
    for i, key in enumerate(keys):
        share = 0.9 / len(keys)
        base = 0.1 + i * share

        def step(fraction: float, message: str, key=key, base=base, share=share) -> None:
            say(base + share * fraction, f"{lib.name} / {key}: {message}")

        step(0.0, "loading the backbone")
        backbone = (
            load(key)
            if load is not None
            else load_backbone(key, device=device, random_weights=random_weights)
        )
        if random_weights and backbone.weights_origin != "architecture-only":
            raise ValueError(f"{key} was loaded with pretrained weights; random weights asked.")
        found, views[key] = _backbone_records(
            lib,
            backbone,
            names,
            latency,
            step,
            embeddings_cache,
            num_workers,
            dups,
            relpaths_all,
            wanted,
        )
        run = {
            "run_id": f"{stamp.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}",
            **common,
            "backbone": backbone.key,
            "family": backbone.spec.family,
            "weights_origin": backbone.weights_origin,
            # color-texture is "pretrained" in the sense of fixed, but has nothing learned
            "learned_weights": backbone.spec.weights_from != "none",
            "dim": backbone.dim,
            **_device_fields(backbone),
        }
        # What only latency records carry, to keep the committed files small.
        described = {"backbone_name": backbone.spec.name, "weights_missing_here": missing_here}
        batch = [
            {**run, **record, **(described if record["protocol"] == "latency" else {})}
            for record in found
            if record.get("kind") != "query"
        ]
        asked = [
            {"run_id": run["run_id"], "library": lib.name, "backbone": backbone.key, **record}
            for record in found
            if record.get("kind") == "query"
        ]
        if out is not None:
            append_records(batch, Path(out))
            if asked:
                append_queries(asked, queries_path(Path(out)))
        records += batch
        queries += asked
        run_ids[backbone.key] = run["run_id"]
        step(1.0, "done")
    extra = _comparison_records(lib, queries, run_ids, common, stamp, stratify)
    if out is not None and extra:
        append_records(extra, Path(out))
    records += extra
    if variants and not random_weights:
        say(1.0, f"{lib.name}: retrieval variants {', '.join(variants)}")
        found = [{**common, **r} for r in variant_records(views, variants)]
        if out is not None:
            append_records(found, Path(out))
        records += found
    return records


def _comparison_records(
    lib: CaseLibrary,
    queries: list[dict],
    run_ids: dict[str, str],
    common: dict,
    stamp: datetime,
    stratify: str | None,
) -> list[dict]:
    """Paired comparisons of every pair of backbones, and the strata if asked, as records."""
    pair_id = f"{stamp.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}"
    out = [{"run_id": pair_id, **common, **r} for r in paired_records(queries)]
    if stratify is not None:
        values = lib.cases[stratify].astype(object)
        strata = dict(
            zip(lib.cases["relpath"].astype(str), values.where(values.notna()), strict=True)
        )
        for record in stratified_records(queries, column=stratify, strata=strata):
            out.append({"run_id": run_ids[record["backbone"]], **common, **record})
    return out


def _backbone_records(
    lib: CaseLibrary,
    backbone: Backbone,
    names: list[str],
    latency: LatencySettings,
    step: Progress,
    embeddings_cache: Path | None,
    num_workers: int | None,
    dups: DuplicateReport | None,
    relpaths_all: list[str],
    conventions: Sequence[str] = ("ours",),
) -> tuple[list[dict], Embedded]:
    """Latency, then each protocol (each skipped, with its reason, where it cannot run), for
    one backbone on one library."""

    def embedded(done: int, total: int) -> None:
        step(0.6 * done / max(total, 1), f"embedding {done}/{total} images")

    index = CaseIndex.build(
        lib,
        backbone,
        save=False,
        cache_dir=embeddings_cache,
        num_workers=num_workers,
        progress=embedded,
    )
    cases = index.cases
    step(0.6, "timing embedding and search")
    sync = None if backbone.device.type == "cpu" else str(backbone.device)
    paths = cases["path"].astype(str).tolist()
    embed = time_embedding(backbone, paths=paths, settings=latency, device=sync)
    search = time_search(index, settings=latency)
    usearch = time_usearch(index, settings=latency)
    timings = latency_fields(
        embed=embed, search=search, usearch=usearch, settings=latency, n_cases=len(cases)
    )
    labels = cases["label"].astype(str).to_numpy()
    sizes = {"n_items": len(cases), "n_classes": len(np.unique(labels))}
    sizes |= {key: timings[key] for key in SUMMARY_KEYS}
    out = [
        {
            **sizes,
            **timings,
            "protocol": "latency",
            "metric": name,
            "k": None,
            "value": timings[name],
        }
        for name in ("embed_s_per_image", "search_s_per_query", "total_s_per_image")
    ]
    view = Embedded.from_index(
        index,
        backbone=backbone,
        group_ids=_aligned(dups, relpaths_all, cases["relpath"].astype(str).tolist()),
        embeddings_cache=embeddings_cache,
    )
    plan = [
        (name, convention)
        for convention in conventions
        for name in names
        # a protocol with only our conventions runs once, unless only paper ones were asked
        if convention == "ours" or REGISTRY[name].paper_conventions or "ours" not in conventions
    ]
    for j, (name, convention) in enumerate(plan):
        step(0.7 + 0.3 * j / len(plan), f"protocol {name} ({convention} conventions)")
        found = protocol_records(name, dataclasses.replace(view, conventions=convention))
        for record in found:
            if record.get("metric") == "skipped":
                step(0.7 + 0.3 * (j + 1) / len(plan), f"{name} skipped: {record['reason']}")
        out += [
            record if record.get("kind") == "query" else {**sizes, **record} for record in found
        ]
    return out, view
