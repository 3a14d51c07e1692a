"""Atlas-like overlays on photos: a logo, a ruler, a text banner, a coloured frame.

Clinical atlases stamp every photo they publish with the same marks, so two different photos
of an atlas share them pixel for pixel. The audit benchmark and its tests draw these marks
themselves (nothing is committed), sized by the photo's width and anchored to an edge or a
corner, as an atlas that publishes its photos at one width does.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

OVERLAYS: tuple[str, ...] = ("logo", "ruler", "banner", "frame", "logo+ruler")


@cache
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _logo(width: int) -> Image.Image:
    """A dark badge with an emblem and a name: structured enough to carry many keypoints."""
    w, h = max(40, round(width * 0.3)), max(12, round(width * 0.085))
    logo = Image.new("RGBA", (w, h), (20, 40, 90, 235))
    draw = ImageDraw.Draw(logo)
    r = h // 2 - 3
    draw.ellipse((4, h // 2 - r, 4 + 2 * r, h // 2 + r), outline=(255, 255, 255, 255), width=2)
    draw.line((4 + r, h // 2 - r + 3, 4 + r, h // 2 + r - 3), fill=(255, 200, 0, 255), width=2)
    draw.line((7, h // 2, 1 + 2 * r, h // 2), fill=(255, 200, 0, 255), width=2)
    draw.text((2 * r + 10, h * 0.12), "DermAtlas", fill=(255, 255, 255, 255), font=_font(h // 2))
    return logo


def _ruler(width: int) -> Image.Image:
    """A white millimetre ruler with ticks and numbers, laid along the bottom edge."""
    h = max(10, round(width * 0.06))
    ruler = Image.new("RGBA", (width, h), (245, 245, 240, 255))
    draw = ImageDraw.Draw(ruler)
    step = max(3, width // 60)
    for k, x in enumerate(range(2, width, step)):
        long = k % 5 == 0
        draw.line((x, 0, x, h * (0.6 if long else 0.3)), fill=(0, 0, 0, 255), width=1)
        if k % 10 == 0:
            draw.text((x + 1, h * 0.5), str(k // 10), fill=(0, 0, 0, 255), font=_font(h // 2))
    return ruler


def _banner(width: int) -> Image.Image:
    h = max(10, round(width * 0.07))
    banner = Image.new("RGBA", (width, h), (0, 0, 0, 200))
    ImageDraw.Draw(banner).text(
        (6, h * 0.15),
        "Image courtesy of the atlas - for teaching only",
        fill=(255, 255, 255, 255),
        font=_font(int(h * 0.6)),
    )
    return banner


REFERENCE_WIDTH = 640  # marks are drawn once at this width and scaled, as an atlas scales its stamp


@cache
def _mark(kind: str, width: int) -> Image.Image:
    drawn = {"logo": _logo, "ruler": _ruler, "banner": _banner}[kind](REFERENCE_WIDTH)
    height = max(4, round(drawn.height * width / REFERENCE_WIDTH))
    return drawn.resize(
        (max(4, round(drawn.width * width / REFERENCE_WIDTH)), height), Image.LANCZOS
    )


def stamp(image: Image.Image, overlay: str) -> Image.Image:
    """``image`` with the named overlay(s) ("+"-joined) drawn on it, always at the same place."""
    out = image.convert("RGB")
    w, h = out.size
    for part in overlay.split("+"):
        if part == "logo":
            logo = _mark("logo", w)
            margin = max(2, w // 60)
            out.paste(logo, (margin, h - logo.height - margin), logo)
        elif part == "ruler":
            ruler = _mark("ruler", w)
            out.paste(ruler, (0, h - ruler.height), ruler)
        elif part == "banner":
            banner = _mark("banner", w)
            out.paste(banner, (0, 0), banner)
        elif part == "frame":
            t = max(3, round(w * 0.045))
            draw = ImageDraw.Draw(out)
            for k in range(t):
                draw.rectangle((k, k, w - 1 - k, h - 1 - k), outline=(0, 120, 130))
        elif part != "none":
            raise ValueError(f"unknown overlay {part!r}; choose from {', '.join(OVERLAYS)}.")
    return out


def reshoot(image: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """A zoomed re-shot of one scene: a 1.3-2x crop seen under a slight perspective, with a
    colour shift, at the original size."""
    w, h = image.size
    zoom = float(rng.uniform(1.3, 2.0))
    cw, ch = w / zoom, h / zoom
    x0, y0 = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
    jitter = 0.03 * min(cw, ch)
    quad = [
        (x0, y0),
        (x0, y0 + ch),
        (x0 + cw, y0 + ch),
        (x0 + cw, y0),
    ]
    quad = [(x + rng.uniform(-jitter, jitter), y + rng.uniform(-jitter, jitter)) for x, y in quad]
    flat = [max(0.0, min(v, lim - 1)) for p in quad for v, lim in zip(p, (w, h), strict=True)]
    shot = image.transform((w, h), Image.Transform.QUAD, flat, Image.Resampling.BICUBIC)
    b, c, s = (float(rng.uniform(0.85, 1.15)) for _ in range(3))
    shot = ImageEnhance.Brightness(shot).enhance(b)
    shot = ImageEnhance.Contrast(shot).enhance(c)
    shot = ImageEnhance.Color(shot).enhance(s)
    return shot, f"reshoot x{zoom:.2f} b={b:.2f} c={c:.2f} s={s:.2f}"
