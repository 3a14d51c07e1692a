"""Embedding runtimes: eager PyTorch against ONNX Runtime and OpenVINO (and dynamic int8).

For each backbone, one run measures on the same threads: throughput at batch 1 and 16 (the
runtimes interleaved repeat by repeat), the cosine between each runtime's and eager PyTorch's
embedding of every library image, and the mean overlap of the top-10 neighbours over the
library's leave-one-case-out queries (through ``CaseIndex.search_vectors``).

    .venv/bin/python -m benchmarks.perf.runtimes                       # both offline backbones
    .venv/bin/python -m benchmarks.perf.runtimes --backbones efficientnet-lite0 --images 60
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.timing import machine_description
from data_index.case_index import CaseIndex
from data_index.locations import REPO_ROOT
from data_index.store import new_usearch_index
from models import Backbone, load_backbone, open_image
from models.runtime_onnx import ExportedBackbone

RESULTS = REPO_ROOT / "benchmarks" / "results" / "runtimes.json"
BACKBONES = ("efficientnet-lite0", "xception-ham10000")
BATCHES = (1, 16)
K = 10
SPEEDUP_TARGET = 1.5
COSINE_TARGET = 0.9999
OVERLAP_TARGET = 0.99
INT8_OVERLAP_FLOOR = 0.95


def library_images(shared: Path, *, name: str, n: int, seed: int) -> tuple[list, list[str]]:
    """``n`` decoded photos of a shared dataset, drawn evenly by a seeded shuffle, and their
    case ids (images of one case are left out together)."""
    manifest = shared / "datasets" / name / "manifest.csv"
    if not manifest.is_file():
        raise ValueError(f"{manifest} not found: the runtime benchmark reads the shared photos.")
    with manifest.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    order = np.random.default_rng(seed).permutation(len(rows))[: min(n, len(rows))]
    picked = [rows[i] for i in sorted(order.tolist())]
    images = [open_image(manifest.parent / row["path"]) for row in picked]
    cases = [row.get("case_id") or row["path"] for row in picked]
    return images, cases


def throughput(models: dict[str, Backbone], images: list, *, batch: int, repeats: int) -> dict:
    """Images per second of ``embed_batch`` (preprocessing excluded: it is shared), median over
    repeats interleaved across runtimes so that load on the machine hits all alike."""
    tensors = torch.stack([models["torch"].preprocess(im) for im in images[:batch]])
    for model in models.values():
        model.embed_batch(tensors)  # warm-up: first calls pay for allocation and compilation
    seconds: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            start = time.perf_counter()
            model.embed_batch(tensors)
            seconds[name].append(time.perf_counter() - start)
    return {name: batch / float(np.median(s)) for name, s in seconds.items()}


def _index(vectors: np.ndarray, cases: list[str]) -> CaseIndex:
    n, dim = vectors.shape
    keys = np.arange(n, dtype=np.int64)
    table = pd.DataFrame(
        {"key": keys, "path": [str(i) for i in range(n)], "label": "", "case_id": cases}
    )
    index = new_usearch_index(dim, "f32")
    index.add(keys.astype(np.uint64), vectors)
    return CaseIndex(index=index, cases=table, raw=vectors, manifest={"dim": dim, "dtype": "f32"})


def neighbour_overlap(reference: np.ndarray, other: np.ndarray, cases: list[str]) -> float:
    """Mean |top-10 ∩ top-10| / 10 over leave-one-case-out queries, each side searching its
    own embeddings (the library and its queries both come from one runtime)."""
    k = min(K, len(cases) - max(cases.count(c) for c in set(cases)))
    found = []
    for vectors in (reference, other):
        idx = _index(vectors, cases)
        hits = idx.search_vectors(vectors, k=k, exclude_case_ids=[[c] for c in cases])
        found.append([{h.key for h in row} for row in hits])
    return float(np.mean([len(a & b) / k for a, b in zip(*found, strict=True)]))


def measure(key: str, *, images: list, cases: list[str], repeats: int) -> dict:
    eager = load_backbone(key, device="cpu")
    models: dict[str, Backbone] = {"torch": eager}
    export_s = {}
    for runtime in ("onnx", "openvino"):
        start = time.perf_counter()
        models[runtime] = ExportedBackbone(eager, runtime=runtime)
        export_s[runtime] = time.perf_counter() - start
    models["onnx-int8"] = ExportedBackbone(eager, runtime="onnx", int8=True)
    record: dict = {"backbone": key, "weights": eager.weights_origin, "images": len(images)}
    record["load_s"] = export_s
    for batch in BATCHES:
        ips = throughput(models, images, batch=batch, repeats=repeats)
        record[f"images_per_s_batch{batch}"] = ips
        record[f"speedup_batch{batch}"] = {n: ips[n] / ips["torch"] for n in ips}
    vectors = {name: m.encode_images(images, batch_size=16) for name, m in models.items()}
    record["cosine_min"], record["cosine_median"], record["top10_overlap"] = {}, {}, {}
    for name in models:
        cos = np.sum(vectors[name] * vectors["torch"], axis=1)
        record["cosine_min"][name] = float(cos.min())
        record["cosine_median"][name] = float(np.median(cos))
        record["top10_overlap"][name] = neighbour_overlap(vectors["torch"], vectors[name], cases)
    overlap = record["top10_overlap"]["onnx-int8"]
    record["int8_offered"] = bool(overlap >= INT8_OVERLAP_FLOOR)
    return record


def render(records: list[dict]) -> str:
    lines = [
        "| backbone | runtime | img/s b1 | speedup b1 | img/s b16 | speedup b16 | min cos | "
        "top-10 overlap |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        for name in r["images_per_s_batch1"]:
            lines.append(
                f"| {r['backbone']} | {name} | {r['images_per_s_batch1'][name]:.1f} | "
                f"{r['speedup_batch1'][name]:.2f} | {r['images_per_s_batch16'][name]:.1f} | "
                f"{r['speedup_batch16'][name]:.2f} | {r['cosine_min'][name]:.6f} | "
                f"{r['top10_overlap'][name]:.3f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.perf.runtimes", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    parser.add_argument("--library", default="ham10000-subset", help="shared dataset name")
    parser.add_argument("--images", type=int, default=200, help="library photos used")
    parser.add_argument("--threads", type=int, default=1, help="threads for every runtime")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared")
    parser.add_argument("--out", type=Path, default=None, help=f"write JSON (e.g. {RESULTS})")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        images, cases = library_images(args.shared, name=args.library, n=args.images, seed=0)
    except ValueError as err:
        parser.error(str(err))
    records = []
    for key in args.backbones:
        records.append(measure(key, images=images, cases=cases, repeats=args.repeats))
        print(json.dumps(records[-1]), flush=True)
    table = render(records)
    print(table)
    doc = {
        "machine": machine_description(),
        "threads": args.threads,
        "library": f"{args.library}, {len(images)} photos",
        "targets": {
            "speedup": SPEEDUP_TARGET,
            "cosine_min": COSINE_TARGET,
            "top10_overlap": OVERLAP_TARGET,
            "int8_overlap_floor": INT8_OVERLAP_FLOOR,
        },
        "records": records,
        "table": table,
    }
    if args.out is not None:
        args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
