"""How the duplicate audit's time grows with the library: one audit per size, stage by stage.

Run: .venv/bin/python -m benchmarks.perf.audit_scale --sizes 2500 10000
The library is every shared photo (1,165 once known copies are dropped) and transformed
copies of them, each photo in turn and every transform of the audit benchmark in turn, until
the size is reached: past a few thousand images most photos have several copies, as in an
augmented training set. Copies are written to a temp dir.
Writes benchmarks/results/audit_scale.json and .md; 100k is extrapolated from the two
largest sizes measured, stage by stage.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.perf.audit import ALL_TRANSFORMS, photo_pool, score_groups, shared_root
from benchmarks.perf.audit_copies import make_copy
from benchmarks.timing import machine_description
from data_index.audit import find_duplicate_groups
from data_index.locations import REPO_ROOT
from models.base import open_image

# Messages find_duplicate_groups reports through ``progress``, in order, and the stage each
# one starts.
STAGES = {
    "reading images": "read and sign",
    "searching candidate pairs": "candidate search",
    "checking candidate pairs": "geometric check",
    "done": "end",
}


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


def timed_audit(paths: list[str]) -> tuple[object, dict[str, float], float, float]:
    """The audit, with the wall seconds of each stage (from its progress messages)."""
    marks: dict[str, float] = {}
    started, cpu_started = time.perf_counter(), time.process_time()

    def progress(_: float, message: str) -> None:
        marks.setdefault(message, time.perf_counter() - started)

    report = find_duplicate_groups(paths, progress=progress)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    points = sorted((marks[m], STAGES[m]) for m in STAGES if m in marks)
    stages = {name: round(points[i + 1][0] - at, 2) for i, (at, name) in enumerate(points[:-1])}
    return report, stages, wall, cpu


def extrapolate(small: dict, large: dict, target: int) -> dict[str, float]:
    """Per stage, the power law through the two sizes (n^b), carried to ``target`` images."""
    out = {}
    n1, n2 = small["n_images"], large["n_images"]
    for stage, t2 in large["stage_seconds"].items():
        t1 = small["stage_seconds"].get(stage)
        if not t1 or t1 <= 0 or t2 <= 0:
            continue
        exponent = float(np.log(t2 / t1) / np.log(n2 / n1))
        out[stage] = {
            "exponent": round(exponent, 2),
            "seconds": round(t2 * (target / n2) ** exponent, 1),
        }
    return out


def markdown(result: dict) -> str:
    lines = [
        "# Duplicate audit: time against library size",
        "",
        "The shared photos plus transformed copies of them in turn (every transform of the "
        "audit benchmark, stress ones included); candidates from usearch searches over the "
        "audit's signatures, then the "
        f"geometric check. {result['machine']['cpu_count']} shared CPUs "
        f"({result['machine']['cpu_model']}), 1-min load average "
        f"{result['machine']['load_average'][0]} at start: wall times move with others' load.",
        "",
        "| images | wall s | CPU s | read and sign | candidate search | geometric check "
        "| candidates | precision | recall (in-scope copies) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in result["runs"]:
        s = run["stage_seconds"]
        lines.append(
            f"| {run['n_images']:,} | {run['wall_seconds']:.0f} | {run['cpu_seconds']:.0f} "
            f"| {s.get('read and sign', 0):.0f} | {s.get('candidate search', 0):.0f} "
            f"| {s.get('geometric check', 0):.0f} | {run['n_candidates']:,} "
            f"| {run['precision']:.4f} | {run['recall_in_scope_copies']:.4f} |"
        )
    if result.get("extrapolated_100k"):
        total = sum(v["seconds"] for v in result["extrapolated_100k"].values())
        parts = ", ".join(
            f"{k} {v['seconds']:.0f} s (n^{v['exponent']})"
            for k, v in result["extrapolated_100k"].items()
        )
        lines += ["", f"Extrapolated to 100,000 images: about {total / 60:.0f} min ({parts})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2500, 10000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "audit_scale"
    )
    args = parser.parse_args()
    pool = photo_pool(shared_root())
    result: dict[str, object] = {"machine": machine_description(), "runs": []}
    for size in sorted(args.sizes):
        with tempfile.TemporaryDirectory(prefix="audit-scale-") as tmp:
            paths, truth, transforms = build_library(pool, Path(tmp), size=size, seed=args.seed)
            report, stages, wall, cpu = timed_audit(paths)
        scores = score_groups(report.group_ids, truth, transforms)
        run = {
            "n_images": len(paths),
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
    runs = result["runs"]
    if len(runs) >= 2:
        result["extrapolated_100k"] = extrapolate(runs[-2], runs[-1], 100_000)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
