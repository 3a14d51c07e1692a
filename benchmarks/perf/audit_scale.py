"""How the duplicate audit's time grows with the library: one audit per size, stage by stage.

Run: .venv/bin/python -m benchmarks.perf.audit_scale --sizes 10000 30000
The library is every shared photo (1,165 once known copies are dropped) and transformed
copies of them, each photo in turn and every transform of the audit benchmark in turn, until
the size is reached: past a few thousand images most photos have several copies, as in an
augmented training set. Copies are written to a temp dir.
Writes benchmarks/results/audit_scale.json and .md after each size; larger sizes (100k by
default) are extrapolated stage by stage: from the two largest measured sizes by the growth
they show, or from one by the growth each stage should have.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.perf.audit import ALL_TRANSFORMS, photo_pool, score_groups, shared_root
from benchmarks.perf.audit_copies import make_copy
from benchmarks.timing import machine_description
from data_index.audit import find_duplicate_groups
from data_index.locations import REPO_ROOT
from data_index.parallel import thread_count
from models.base import open_image

# Messages find_duplicate_groups reports through ``progress``, in order, and the stage each
# one starts.
STAGES = {
    "reading images": "read and sign",
    "searching candidate pairs": "candidate search",
    "checking candidate pairs": "geometric check",
    "done": "end",
}


def _load() -> float | None:
    """The machine's 1-minute load average now (None where the platform has none)."""
    load = machine_description().get("load_average")
    return load[0] if load else None


def build_library(
    pool: list[str], out: Path, *, size: int, seed: int
) -> tuple[list[str], np.ndarray, list[str]]:
    """``size`` images: the shared photos (at most ``size``), then transformed copies of
    them in turn, every transform of the audit benchmark in turn, until the size is reached."""
    rng = np.random.default_rng(seed)
    photos = [pool[i] for i in rng.permutation(len(pool))[:size]]
    paths, truth, transforms = list(photos), list(range(len(photos))), ["original"] * len(photos)
    images = {}
    k = 0
    while len(paths) < size:
        source = k % len(photos)
        transform = ALL_TRANSFORMS[k % len(ALL_TRANSFORMS)]
        if source not in images:
            images[source] = open_image(photos[source])
        target = out / f"c{k:05d}-{transform.replace('+', '-')}.jpg"
        make_copy(images[source], transform, target, rng)
        paths.append(str(target))
        truth.append(source)
        transforms.append(transform)
        k += 1
    return paths, np.asarray(truth), transforms


def timed_audit(
    paths: list[str], threads: int | None = None
) -> tuple[object, dict[str, float], float, float]:
    """The audit, with the wall seconds of each stage (from its progress messages)."""
    marks: dict[str, float] = {}
    started, cpu_started = time.perf_counter(), time.process_time()

    def progress(_: float, message: str) -> None:
        marks.setdefault(message, time.perf_counter() - started)

    report = find_duplicate_groups(paths, progress=progress, threads=threads)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    points = sorted((marks[m], STAGES[m]) for m in STAGES if m in marks)
    stages = {name: round(points[i + 1][0] - at, 2) for i, (at, name) in enumerate(points[:-1])}
    return report, stages, wall, cpu


# How each stage grows: reading, signing and the check of ~10 candidates per image are linear;
# the usearch searches add and query n vectors in O(log n) each.
GROWTH = {"read and sign": "n", "candidate search": "n log n", "geometric check": "n"}


def _grown(seconds: float, n: int, target: int, growth: str) -> float:
    factor = target / n
    if growth == "n log n":
        factor *= np.log(target) / np.log(n)
    return seconds * factor


def extrapolate(run: dict, target: int, smaller: dict | None = None) -> dict[str, object]:
    """Each stage of the largest measured run carried to ``target`` images: by the power of n
    it grew with from ``smaller`` (the next largest run) when given, else by its growth in
    GROWTH. CPU seconds are split between stages as the wall seconds are."""
    stages = run["stage_seconds"]
    wall = sum(stages.values())
    out: dict[str, object] = {"images": target, "stages": {}}
    total_wall = total_cpu = 0.0
    for stage, seconds in stages.items():
        before = (smaller or {}).get("stage_seconds", {}).get(stage)
        if before and seconds > 0:
            power = np.log(seconds / before) / np.log(run["n_images"] / smaller["n_images"])
            grown, growth = seconds * (target / run["n_images"]) ** power, f"n^{power:.2f}"
        else:
            grown, growth = _grown(seconds, run["n_images"], target, GROWTH[stage]), GROWTH[stage]
        cpu = grown * run["cpu_seconds"] / wall if wall else 0.0
        out["stages"][stage] = {"growth": growth, "wall_seconds": round(grown, 0)}
        total_wall, total_cpu = total_wall + grown, total_cpu + cpu
    out["wall_seconds"], out["cpu_seconds"] = round(total_wall, 0), round(total_cpu, 0)
    return out


def markdown(result: dict) -> str:
    lines = [
        "# Duplicate audit: time against library size",
        "",
        "The shared photos plus transformed copies of them in turn (every transform of the "
        "audit benchmark, stress ones included); candidates from usearch searches over the "
        "audit's signatures, then the "
        f"geometric check. {result['machine']['cpu_count']} shared CPUs "
        f"({result['machine']['cpu_model']}), "
        + (
            result.get("load_note")
            or f"1-min load average {result['machine']['load_average'][0]} at start"
        )
        + ": wall times move with others' load.",
        "",
        "| images | threads | load | wall s | CPU s | read and sign | candidate search "
        "| geometric check | peak RSS MB | candidates | precision | recall (in-scope copies) |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in result["runs"]:
        s = run["stage_seconds"]
        lines.append(
            f"| {run['n_images']:,} | {run.get('threads', 1)} "
            f"| {'-'.join(str(x) for x in run.get('load_average_1m', [])) or 'n/a'} "
            f"| {run['wall_seconds']:.0f} "
            f"| {run['cpu_seconds']:.0f} "
            f"| {s.get('read and sign', 0):.0f} | {s.get('candidate search', 0):.0f} "
            f"| {s.get('geometric check', 0):.0f} | {run.get('peak_rss_mb', 0):,.0f} "
            f"| {run['n_candidates']:,} "
            f"| {run['precision']:.4f} | {run['recall_in_scope_copies']:.4f} |"
        )
    for guess in result.get("extrapolated", []):
        lines.append(
            f"| {guess['images']:,} (extrapolated) | | | {guess['wall_seconds']:.0f} "
            f"| {guess['cpu_seconds']:.0f} | "
            + " | ".join(
                f"{guess['stages'][k]['wall_seconds']:.0f} ({guess['stages'][k]['growth']})"
                for k in GROWTH
            )
            + " | | | | |"
        )
    lines += [
        "",
        "Extrapolated rows carry each stage of the largest measured run by the power of n it "
        "grew with between the two largest runs (in brackets), or, with one run, by how it "
        "should grow (reading, signing and the check linear, the usearch searches n log n); "
        "CPU seconds are split between stages as wall seconds are. Read and sign includes "
        "the overlay learning and masking; candidate search includes the keypoint votes. "
        "Peak RSS is the process's high-water mark, so it includes the smaller runs before. "
        "Load is the machine's 1-minute load average at the audit's start and end (the audit's "
        "own two threads count about 2).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extrapolate", type=int, nargs="*", default=[100_000])
    parser.add_argument(
        "--threads", type=int, default=None, help="threads for the audit (default: every core)"
    )
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "audit_scale"
    )
    args = parser.parse_args()
    pool = photo_pool(shared_root())
    result: dict[str, object] = {"machine": machine_description(), "runs": []}
    for size in sorted(args.sizes):
        with tempfile.TemporaryDirectory(prefix="audit-scale-") as tmp:
            paths, truth, transforms = build_library(pool, Path(tmp), size=size, seed=args.seed)
            load_before = _load()
            report, stages, wall, cpu = timed_audit(paths, threads=args.threads)
            load = [load_before, _load()]
        scores = score_groups(report.group_ids, truth, transforms)
        run = {
            "n_images": len(paths),
            "threads": thread_count(args.threads),
            "load_average_1m": load,  # at the audit's start and end: others' work slows it
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
            "n_copies": sum(t != "original" for t in transforms),
            "wall_seconds": round(wall, 1),
            "cpu_seconds": round(cpu, 1),
            "stage_seconds": stages,
            "n_candidates": report.n_candidates,
            "precision": scores["precision"],
            "recall": scores["recall"],
            "recall_in_scope_copies": scores["recall_in_scope_copies"],
        }
        result["runs"].append(run)
        print(json.dumps(run), flush=True)
        # Written after every size: a long run cut short keeps what it measured.
        write(result, args.out, targets=args.extrapolate)
    print(markdown(result))


def write(result: dict, out: Path, *, targets: list[int]) -> None:
    runs = sorted(result["runs"], key=lambda r: r["n_images"])
    largest, smaller = runs[-1], (runs[-2] if len(runs) > 1 else None)
    result["extrapolated"] = [
        extrapolate(largest, t, smaller) for t in targets if t > largest["n_images"]
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result))


if __name__ == "__main__":
    main()
