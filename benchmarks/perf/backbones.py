"""Backbone latency: milliseconds per image to preprocess and to embed, at batch 1 and 32.

Image decoding is excluded (images are opened once, up front); preprocessing (resize, crop,
normalise: what DataLoader workers do) is timed apart from the model call. Backbones whose
weights are not here run architecture-only (random weights): same arithmetic, so the timing
holds, but their vectors mean nothing.

    .venv/bin/python -m benchmarks.perf.backbones
    .venv/bin/python -m benchmarks.perf.backbones --backbones dermlip-vit-b16 --batch-sizes 1 8
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.timing import Timing, machine_description, time_callable
from data_index.locations import REPO_ROOT
from models import availability, get_spec, load_backbone, open_image
from models.base import resolve_device

RESULTS = REPO_ROOT / "benchmarks" / "results" / "backbone_latency.json"
PUBLISHED = REPO_ROOT / "benchmarks" / "data" / "published_latency.csv"
SHARED = Path(os.environ.get("DERMSEARCH_SHARED", REPO_ROOT.parent / "shared")) / "datasets"
DEFAULT_BACKBONES = ("efficientnet-lite0", "color-texture", "xception-ham10000", "vit-b16")
N_IMAGES = 32
# Timed-call budget per (backbone, batch size): slow architectures stop early (after 3 calls).
MAX_SECONDS = 30.0


def benchmark_images(n: int = N_IMAGES) -> tuple[list[Image.Image], str]:
    """``n`` decoded RGB images: HAM10000 photos (600x450) when ../shared is here, else noise."""
    manifest = SHARED / "ham10000-subset" / "manifest.csv"
    if manifest.is_file():
        with manifest.open(newline="", encoding="utf-8") as handle:
            rows = sorted(csv.DictReader(handle), key=lambda row: row["path"])[:n]
        if len(rows) == n:
            root = manifest.parent
            images = [open_image(root / row["path"]) for row in rows]
            return images, f"{n} HAM10000 photos from ham10000-subset, {_sizes(images)}"
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (450, 600, 3), dtype=np.uint8)) for _ in range(n)
    ]
    return images, f"{n} synthetic noise images (../shared absent), {_sizes(images)}"


def _sizes(images: list[Image.Image]) -> str:
    sizes = sorted({f"{im.width}x{im.height}" for im in images})
    return "sizes " + ", ".join(sizes[:3]) + (" ..." if len(sizes) > 3 else "")


def load_for_timing(key: str, *, device: str) -> tuple[object | None, str]:
    """The backbone with its real weights when here, else architecture-only; or a skip reason."""
    spec = get_spec(key)
    random_weights = not availability(spec).ready
    try:
        return load_backbone(key, device=device, random_weights=random_weights), ""
    except Exception as err:  # a benchmark sweep reports a broken backbone and goes on
        first = (str(err).strip().splitlines() or [""])[0]
        return None, f"{type(err).__name__}: {first[:300]}"


def per_image_ms(timing: Timing) -> tuple[float, float]:
    return 1e3 * timing.median_s / timing.items, 1e3 * timing.p95_s / timing.items


def time_backbone(bb, images, *, batch_sizes: list[int], repeats: int) -> list[dict]:
    """One record per batch size: preprocess and model ms/image (median, p95) and their sum."""
    sync_device = None if bb.device.type == "cpu" else str(bb.device)
    prep = time_callable(
        lambda: [bb.preprocess(im) for im in images],
        repeats=max(3, repeats // 4),
        warmup=1,
        items=len(images),
        max_seconds=MAX_SECONDS,
    )
    prep_median, prep_p95 = per_image_ms(prep)
    tensors = torch.stack([bb.preprocess(im) for im in images])
    records = []
    for batch_size in batch_sizes:
        batch = tensors[:batch_size]
        if len(batch) < batch_size:
            raise ValueError(f"batch size {batch_size} needs at least that many images.")
        timing = time_callable(
            lambda batch=batch: bb.embed_batch(batch),
            repeats=repeats if batch_size < 8 else max(3, repeats // 4),
            warmup=3 if batch_size < 8 else 1,
            device=sync_device,
            items=batch_size,
            max_seconds=MAX_SECONDS,
        )
        model_median, model_p95 = per_image_ms(timing)
        records.append(
            {
                "backbone": bb.key,
                "name": bb.spec.name,
                "weights_origin": bb.weights_origin,
                "learned_weights": bb.spec.weights_from != "none",
                "params_m": bb.spec.params_m,
                "dim": bb.dim,
                "input_size": bb.spec.input_size,
                "device": bb.device.type,
                "torch_threads": torch.get_num_threads(),
                "batch_size": batch_size,
                "preprocess_ms_per_image_median": prep_median,
                "preprocess_ms_per_image_p95": prep_p95,
                "preprocess_repeats": prep.repeats,
                "model_ms_per_image_median": model_median,
                "model_ms_per_image_p95": model_p95,
                "model_repeats": timing.repeats,
                "model_warmup": timing.warmup,
                "total_ms_per_image_median": prep_median + model_median,
            }
        )
    return records


def published_reference(keys: list[str]) -> list[dict]:
    """The papers' own embedding times for these backbones (their hardware, not ours)."""
    if not PUBLISHED.is_file():
        return []
    with PUBLISHED.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["key"] in keys]
    for row in rows:
        row["embed_ms_per_image"] = 1e3 * float(row.pop("embed_s_per_image"))
    return rows


def render_table(records: list[dict], skipped: list[dict]) -> str:
    header = (
        "backbone",
        "weights",
        "threads",
        "batch",
        "preprocess ms/img",
        "model ms/img",
        "total",
    )
    rows = [
        (
            r["backbone"],
            r["weights_origin"] if r["learned_weights"] else "none (classical)",
            str(r["torch_threads"]),
            str(r["batch_size"]),
            _ms(r, "preprocess"),
            _ms(r, "model"),
            f"{r['total_ms_per_image_median']:.1f}",
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(0, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"skipped {s['backbone']}: {s['reason']}" for s in skipped]
    return "\n".join(lines)


def _ms(record: dict, part: str) -> str:
    median, p95 = record[f"{part}_ms_per_image_median"], record[f"{part}_ms_per_image_p95"]
    return f"{median:.1f} (p95 {p95:.1f})"


def render_published(rows: list[dict]) -> str:
    if not rows:
        return ""
    lines = ["Published reference figures (NOT measured here; other hardware, other code):"]
    lines += [
        f"  {row['key']}: {row['embed_ms_per_image']:.1f} ms/image embedding "
        f"({row['model_as_printed']}; {row['source']}; hardware {row['hardware']})"
        for row in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.perf.backbones", description=__doc__
    )
    parser.add_argument(
        "--backbones", nargs="+", default=[], help="registry keys timed in addition to the defaults"
    )
    parser.add_argument("--only", action="store_true", help="time only --backbones")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--repeats", type=int, default=20, help="timed calls at batch 1")
    parser.add_argument(
        "--images", type=int, default=N_IMAGES, help="images preprocessed per timed preprocess call"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best here)")
    parser.add_argument(
        "--threads",
        nargs="+",
        type=int,
        default=[torch.get_num_threads()],
        help="torch intra-op thread counts to time (each in turn)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    device = str(resolve_device(args.device))
    keys = list(dict.fromkeys([*([] if args.only else DEFAULT_BACKBONES), *args.backbones]))
    images, image_note = benchmark_images(max(args.images, *args.batch_sizes))
    machine = machine_description(device)
    # Shared machines: the load from other jobs is part of what these numbers mean.
    machine["load_average_1m_at_start"] = machine.pop("load_average")[0]
    print(f"Machine: {machine}\nImages: {image_note} (decoded before timing)\n")

    records, skipped = [], []
    for key in keys:
        bb, reason = load_for_timing(key, device=device)
        if bb is None:
            print(f"skip {key}: {reason}", file=sys.stderr)
            skipped.append({"backbone": key, "reason": reason})
            continue
        print(f"timing {key} ({bb.weights_origin}) ...", file=sys.stderr, flush=True)
        for threads in args.threads:
            torch.set_num_threads(threads)
            records += time_backbone(bb, images, batch_sizes=args.batch_sizes, repeats=args.repeats)
        del bb

    machine["load_average_1m_at_end"] = machine_description(device)["load_average"][0]
    published = published_reference(keys)
    print(render_table(records, skipped))
    print("\nmodel = bb.embed_batch on preprocessed tensors (inference, copy back, L2-normalise);"
          "\npreprocess = bb.preprocess per image, single process; total = the two added."
          "\narchitecture-only = random weights: timing only, never accuracy.")  # fmt: skip
    if published:
        print("\n" + render_published(published))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "backbone_latency",
        "machine": machine,
        "images": image_note,
        "records": records,
        "skipped": skipped,
        "published_reference": published,
    }
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    shown = args.out.relative_to(REPO_ROOT) if args.out.is_relative_to(REPO_ROOT) else args.out
    print(f"\nwrote {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
