"""Pointing game: how often a similarity map's peak falls inside a crop pasted into another photo.

A crop of one library photo is pasted at a random place (and size) into a different photo; the
whole source photo is the query. A map that explains matches should peak on the paste. Plain,
rotated (90, 180 or 270 degrees) and flipped pastes are scored separately, per backbone, and
a few map pairs are timed. Run:

    python -m benchmarks.perf.pointing_game --library ../shared/datasets/infectious-8 \\
        --backbones efficientnet-lite0,xception-ham10000 --count 50 \\
        --out benchmarks/results/pointing_game.json
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.timing import machine_description
from data_index.explain import MATCH_SCALES, similarity_map, similarity_maps
from models import Backbone, load_backbone, open_image

TRANSFORMS = ("plain", "rotated", "flipped")
COMPOSITE_SIDE = 320
CROP_FRACTION = (0.5, 0.8)  # of the source photo's shorter side
PASTE_FRACTION = (0.3, 0.45)  # of the composite's side


@dataclass(frozen=True)
class Composite:
    """A background photo with a crop of ``query`` pasted into ``box`` (x0, y0, x1, y1)."""

    image: Image.Image
    query: Image.Image
    box: tuple[int, int, int, int]
    transform: str


def make_composite(
    source: Image.Image, background: Image.Image, *, rng: np.random.Generator, transform: str
) -> Composite:
    """Paste a random crop of ``source`` (transformed) into a square crop of ``background``."""
    if transform not in TRANSFORMS:
        raise ValueError(f"Unknown transform {transform!r}; choose one of {TRANSFORMS}.")
    side = min(background.size)
    left, top = (background.width - side) // 2, (background.height - side) // 2
    canvas = background.crop((left, top, left + side, top + side))
    canvas = canvas.resize((COMPOSITE_SIDE, COMPOSITE_SIDE), Image.Resampling.BICUBIC)
    crop_side = round(min(source.size) * rng.uniform(*CROP_FRACTION))
    cx = int(rng.integers(0, source.width - crop_side + 1))
    cy = int(rng.integers(0, source.height - crop_side + 1))
    patch = source.crop((cx, cy, cx + crop_side, cy + crop_side))
    if transform == "rotated":
        patch = patch.rotate(int(rng.choice([90, 180, 270])))
    elif transform == "flipped":
        method = [Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM]
        patch = patch.transpose(method[int(rng.integers(0, 2))])
    paste = round(COMPOSITE_SIDE * rng.uniform(*PASTE_FRACTION))
    patch = patch.resize((paste, paste), Image.Resampling.BICUBIC)
    x = int(rng.integers(0, COMPOSITE_SIDE - paste + 1))
    y = int(rng.integers(0, COMPOSITE_SIDE - paste + 1))
    canvas.paste(patch, (x, y))
    return Composite(
        image=canvas, query=source, box=(x, y, x + paste, y + paste), transform=transform
    )


def library_photos(library: Path) -> list[Path]:
    """Image paths of a manifest library (``manifest.csv`` with a ``path`` column)."""
    manifest = library / "manifest.csv"
    if not manifest.is_file():
        raise ValueError(f"{library} has no manifest.csv.")
    with open(manifest, newline="") as f:
        return [library / row["path"] for row in csv.DictReader(f)]


def composites(photos: list[Path], *, count: int, transform: str, seed: int) -> list[Composite]:
    """``count`` seeded composites, each from two different photos of ``photos``."""
    if len(photos) < 2:
        raise ValueError("The pointing game needs at least two photos.")
    rng = np.random.default_rng([seed, TRANSFORMS.index(transform)])
    out = []
    for _ in range(count):
        i, j = rng.choice(len(photos), size=2, replace=False)
        source, background = open_image(photos[int(i)]), open_image(photos[int(j)])
        out.append(make_composite(source, background, rng=rng, transform=transform))
    return out


def points_inside(heat: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Whether the map's maximum lies in ``box``."""
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    x0, y0, x1, y1 = box
    return bool(x0 <= x < x1 and y0 <= y < y1)


def play(
    backbone: Backbone, items: list[Composite], *, scales: tuple[float, ...] = MATCH_SCALES
) -> int:
    """How many of ``items`` have the peak of the map over the composite inside the paste."""
    hits = 0
    for item in items:
        heat = similarity_map(backbone, image=item.image, other=item.query, scales=scales).heat
        hits += points_inside(heat, item.box)
    return hits


def time_pairs(backbone: Backbone, items: list[Composite], *, repeats: int) -> list[float]:
    """Seconds per map pair (both directions, as the app draws them), after one warm-up."""
    similarity_maps(backbone, query=items[0].query, match=items[0].image)
    seconds = []
    for item in items[:repeats]:
        start = time.perf_counter()
        similarity_maps(backbone, query=item.query, match=item.image)
        seconds.append(time.perf_counter() - start)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.perf.pointing_game", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--library", type=Path, required=True, help="a manifest library folder")
    parser.add_argument("--backbones", default="efficientnet-lite0,xception-ham10000")
    parser.add_argument("--count", type=int, default=50, help="composites per transform")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--single-scale", action="store_true", help="also score matching at one scale only"
    )
    parser.add_argument("--out", type=Path, help="JSON file for the records (else printed)")
    parser.add_argument("--timed-pairs", type=int, default=10, help="map pairs timed per backbone")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 by default: on a busy shared CPU more threads wait on each other",
    )
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    photos = library_photos(args.library)
    records = []
    for key in args.backbones.split(","):
        backbone = load_backbone(key.strip(), device="cpu")
        plain = composites(photos, count=args.count, transform="plain", seed=args.seed)
        seconds = time_pairs(backbone, plain, repeats=args.timed_pairs)
        load = (machine_description()["load_average"] or [float("nan")])[0]
        print(
            f"{backbone.key:20s} one map pair: {statistics.median(seconds) * 1000:.0f} ms median, "
            f"IQR {_iqr(seconds) * 1000:.0f} ms over {len(seconds)} ({args.threads} thread(s), "
            f"load {load:.1f})",
            flush=True,
        )
        variants = {"multi-scale": MATCH_SCALES}
        if args.single_scale:
            variants["single scale"] = (1.0,)
        for variant, scales in variants.items():
            for transform in TRANSFORMS:
                items = composites(photos, count=args.count, transform=transform, seed=args.seed)
                hits = play(backbone, items, scales=scales)
                record = {
                    "backbone": backbone.key,
                    "weights": backbone.weights_origin,
                    "library": args.library.name,
                    "transform": transform,
                    "matching": variant,
                    "scales": list(scales),
                    "composites": len(items),
                    "hits": hits,
                    "hit_rate": hits / len(items),
                    "pair_seconds_median": statistics.median(seconds),
                    "pair_seconds_iqr": _iqr(seconds),
                    "timed_pairs": len(seconds),
                    "threads": args.threads,
                    # The machine's 1-minute load when timed: a shared CPU's figures depend on it.
                    "load_average_1min": round(load, 1),
                    "seed": args.seed,
                }
                records.append(record)
                print(
                    f"{backbone.key:20s} {variant:12s} {transform:8s} "
                    f"{hits:3d}/{len(items)} = {hits / len(items):5.1%}",
                    flush=True,
                )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(records, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


def _iqr(values: list[float]) -> float:
    q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (0.0, 0.0, 0.0)
    return q3 - q1


if __name__ == "__main__":
    sys.exit(main())
