"""Tiny generated case libraries for the data_index tests: coloured patterns, one per class.

Each class has its own colour and pattern, so real backbones (``color-texture``) put images of
one class near each other; seeds vary stripe width, offset and noise within a class.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

SIZE = 40
PATTERNS = {
    "red-stripes": ((200, 40, 40), "stripes"),
    "blue-checks": ((40, 60, 210), "checks"),
    "green-dots": ((40, 170, 60), "dots"),
    "brown-plain": ((120, 80, 40), "plain"),
}


def pattern_image(label: str, seed: int, *, size: int = SIZE) -> Image.Image:
    """A small RGB image whose colour and pattern depend on ``label`` and detail on ``seed``."""
    colour, kind = PATTERNS[label]
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    period = 4 + int(rng.integers(0, 4))
    shift = int(rng.integers(0, period))
    if kind == "stripes":
        mask = ((xx + shift) // period) % 2 == 0
    elif kind == "checks":
        mask = (((xx + shift) // period) + (yy // period)) % 2 == 0
    elif kind == "dots":
        mask = ((xx + shift) % period < 2) & ((yy + shift) % period < 2)
    else:
        mask = np.zeros((size, size), dtype=bool)
    base = np.full((size, size, 3), 235.0)
    base[mask] = colour
    base[~mask] = 0.6 * base[~mask] + 0.4 * np.array(colour)
    base += rng.normal(0, 6, base.shape)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")


def save_image(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG" if path.suffix.lower() == ".png" else "JPEG", quality=92)
    return path


def make_folder_library(
    root: Path, *, per_class: int = 3, labels: tuple[str, ...] | None = None, seed0: int = 0
) -> Path:
    """``root/<label>/<label>-<i>.jpg`` for each label."""
    for label in labels or tuple(PATTERNS):
        for i in range(per_class):
            save_image(pattern_image(label, seed0 + i), root / label / f"{label}-{i}.jpg")
    return root


def make_manifest_library(
    root: Path,
    *,
    per_class: int = 3,
    fmt: str = "csv",
    images_per_case: int = 1,
    extra: bool = True,
) -> Path:
    """Images under ``root/img/`` and a manifest (path relative to ``root``) with case ids,
    splits, captions and a metadata column; returns the manifest path."""
    rows = []
    for label in PATTERNS:
        for i in range(per_class):
            rel = f"img/{label}-{i}.png"
            save_image(pattern_image(label, 100 + i), root / rel)
            row = {"path": rel, "label": label, "case_id": f"{label}-case{i // images_per_case}"}
            if extra:
                row |= {"split": "train" if i % 2 else "test", "caption": f"{label} #{i}"}
                row |= {"site": "arm" if i % 2 else "leg"}
            rows.append(row)
    manifest = root / f"manifest.{fmt}"
    table = pd.DataFrame(rows)
    if fmt == "csv":
        table.to_csv(manifest, index=False)
    else:
        table.to_parquet(manifest, index=False)
    return manifest


def zip_tree(src: Path, dest: Path, *, prefix: str = "") -> Path:
    """Zip every file under ``src`` (names relative to it, under ``prefix``)."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, prefix + p.relative_to(src).as_posix())
    return dest


def jpeg_bytes(label: str, seed: int) -> bytes:
    buf = io.BytesIO()
    pattern_image(label, seed).save(buf, format="JPEG", quality=92)
    return buf.getvalue()
