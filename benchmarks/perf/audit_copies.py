"""Known-transform copies of photos: the ground truth for the duplicate-audit benchmark.

Each transform name is a "+"-joined chain of steps (e.g. "hflip+zoom+jpeg"); every copy is
saved as JPEG (quality 90 unless the chain has a "jpeg" step, which draws 40-95).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

STEPS = ("hflip", "vflip", "rot90", "rot180", "rot270", "crop", "zoom", "resize", "jpeg", "colour")
# Harder than the audit promises to handle: reported apart, to show where it breaks.
STRESS_STEPS = ("tightcrop", "tilt", "shift", "grey", "blur", "hue")

# The benchmark's transform mix: each single step, and combinations seen in augmented sets.
TRANSFORMS: tuple[str, ...] = (
    *STEPS,
    "hflip+zoom",
    "rot90+crop",
    "vflip+resize+jpeg",
    "rot270+colour+jpeg",
    "hflip+rot90+zoom+colour",
    "crop+colour+jpeg",
)
STRESS_TRANSFORMS: tuple[str, ...] = STRESS_STEPS


@dataclass(frozen=True)
class CopyRecord:
    """One generated copy and what was done to it."""

    path: str
    source: str
    transform: str
    detail: str


def _crop_box(width: int, height: int, rng: np.random.Generator, *, keep_aspect: bool):
    area = rng.uniform(0.6, 0.9)
    aspect = 1.0 if keep_aspect else float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    fw = min(1.0, np.sqrt(area * aspect))
    fh = min(1.0, area / fw)
    w, h = max(8, round(width * fw)), max(8, round(height * fh))
    x = int(rng.integers(0, width - w + 1))
    y = int(rng.integers(0, height - h + 1))
    return (x, y, x + w, y + h), f"area={w * h / (width * height):.2f}"


def apply_step(image: Image.Image, step: str, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """Apply one named step; returns the new image and a short description of the draw."""
    t = Image.Transpose
    simple = {
        "hflip": t.FLIP_LEFT_RIGHT,
        "vflip": t.FLIP_TOP_BOTTOM,
        "rot90": t.ROTATE_90,
        "rot180": t.ROTATE_180,
        "rot270": t.ROTATE_270,
    }
    if step in simple:
        return image.transpose(simple[step]), step
    if step == "crop":  # free aspect, kept at crop size (torchvision-style random crop)
        box, detail = _crop_box(*image.size, rng, keep_aspect=False)
        return image.crop(box), f"crop {detail}"
    if step == "zoom":  # same aspect, resized back to the original size (Keras zoom)
        box, detail = _crop_box(*image.size, rng, keep_aspect=True)
        return image.crop(box).resize(image.size, Image.Resampling.BICUBIC), f"zoom {detail}"
    if step == "resize":
        factor = float(rng.choice([rng.uniform(0.5, 0.8), rng.uniform(1.25, 2.0)]))
        size = (max(16, round(image.width * factor)), max(16, round(image.height * factor)))
        return image.resize(size, Image.Resampling.BILINEAR), f"resize x{factor:.2f}"
    if step == "jpeg":
        return image, "jpeg"  # the quality is drawn when the copy is saved
    if step == "colour":
        b, c, s = (float(rng.uniform(0.8, 1.2)) for _ in range(3))
        image = ImageEnhance.Brightness(image).enhance(b)
        image = ImageEnhance.Contrast(image).enhance(c)
        image = ImageEnhance.Color(image).enhance(s)
        return image, f"colour b={b:.2f} c={c:.2f} s={s:.2f}"
    if step in STRESS_STEPS:
        return _stress_step(image, step, rng)
    raise ValueError(f"unknown copy step {step!r}; choose from {', '.join(STEPS + STRESS_STEPS)}.")


def _stress_step(
    image: Image.Image, step: str, rng: np.random.Generator
) -> tuple[Image.Image, str]:
    w, h = image.size
    if step == "tightcrop":  # 35-55% of the area: below what the audit promises
        area = rng.uniform(0.35, 0.55)
        cw, ch = max(8, round(w * np.sqrt(area))), max(8, round(h * np.sqrt(area)))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return image.crop((x, y, x + cw, y + ch)), f"tightcrop area={cw * ch / (w * h):.2f}"
    if step == "tilt":  # a small free rotation, cropped to stay inside the photo
        angle = float(rng.choice([-1, 1]) * rng.uniform(4, 15))
        turned = image.rotate(angle, resample=Image.Resampling.BICUBIC)
        m = round(min(w, h) * np.sin(np.radians(abs(angle))) * 0.6)
        return turned.crop((m, m, w - m, h - m)), f"tilt {angle:.1f}deg"
    if step == "shift":  # Keras width/height shift, edges smeared ("nearest" fill)
        dx = int(rng.choice([-1, 1]) * rng.uniform(0.1, 0.25) * w)
        dy = int(rng.choice([-1, 1]) * rng.uniform(0.0, 0.15) * h)
        arr = np.asarray(image)
        ys = np.clip(np.arange(h) - dy, 0, h - 1)
        xs = np.clip(np.arange(w) - dx, 0, w - 1)
        return Image.fromarray(arr[ys][:, xs]), f"shift dx={dx} dy={dy}"
    if step == "grey":
        return image.convert("L").convert("RGB"), "grey"
    if step == "blur":
        radius = float(rng.uniform(1.5, 3.0))
        return image.filter(ImageFilter.GaussianBlur(radius)), f"blur r={radius:.1f}"
    # hue: rotate the hue wheel by 15-40 degrees
    turn = int(rng.choice([-1, 1]) * rng.uniform(15, 40) / 360 * 255)
    hsv = np.asarray(image.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + turn) % 256
    return Image.fromarray(hsv, mode="HSV").convert("RGB"), f"hue {turn * 360 / 255:.0f}deg"


def make_copy(image: Image.Image, transform: str, out_path: Path, rng: np.random.Generator) -> str:
    """Write ``image`` after the chain ``transform`` as a JPEG; returns the details drawn."""
    details = []
    for step in transform.split("+"):
        image, detail = apply_step(image, step, rng)
        details.append(detail)
    quality = int(rng.integers(40, 96)) if "jpeg" in transform.split("+") else 90
    details.append(f"q={quality}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").save(out_path, format="JPEG", quality=quality)
    return " ".join(details)
