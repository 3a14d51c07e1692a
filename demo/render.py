"""Thumbnails with correctness frames drawn into the pixels (no CSS to lose in a screenshot).

Colours are Okabe-Ito (bluish green / vermillion), readable with the common colour-vision
deficiencies; every frame also carries a shape cue (a tick or a cross badge) and the caption a
text cue, so colour is never the only signal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw, ImageFont, ImageOps

from models import open_image

Verdict = Literal["match", "mismatch", "unknown"]

MATCH_RGB = (0, 158, 115)
MISMATCH_RGB = (213, 94, 0)
UNKNOWN_RGB = (150, 150, 150)
FRAME_RGB: dict[str, tuple[int, int, int]] = {
    "match": MATCH_RGB,
    "mismatch": MISMATCH_RGB,
    "unknown": UNKNOWN_RGB,
}
CAPTION_MARK = {"match": "✓", "mismatch": "✗", "unknown": "·"}
# Words for the drawn-in caption: the bundled font has no tick or cross glyphs.
VERDICT_WORD = {"match": "same diagnosis", "mismatch": "DIFFERENT", "unknown": "not scored"}
THUMB_PX = 256
LARGE_PX = 720


def verdict_for(*, query_label: str | None, hit_label: str) -> Verdict:
    """Same diagnosis as the query, a different one, or unknown (no query diagnosis)."""
    if not query_label:
        return "unknown"
    return "match" if hit_label == query_label else "mismatch"


def square_thumbnail(source: Image.Image | str | Path, *, size: int = THUMB_PX) -> Image.Image:
    """An upright RGB square crop of ``size`` px; unreadable files become a labelled grey tile."""
    try:
        image = open_image(source)
    except ValueError:
        tile = Image.new("RGB", (size, size), (210, 210, 210))
        ImageDraw.Draw(tile).text((8, size // 2 - 6), "unreadable image", fill=(40, 40, 40))
        return tile
    return ImageOps.fit(image, (size, size), method=Image.Resampling.LANCZOS)


def _badge(draw: ImageDraw.ImageDraw, *, size: int, verdict: Verdict, colour) -> None:
    """A filled corner disc with a tick, a cross or a dot, drawn as lines (no font needed)."""
    r = max(12, size // 11)
    cx, cy = size - r - 6, r + 6
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour, outline=(255, 255, 255), width=2)
    w = max(3, r // 4)
    white = (255, 255, 255)
    if verdict == "match":
        draw.line(
            [(cx - r * 0.5, cy), (cx - r * 0.12, cy + r * 0.42), (cx + r * 0.55, cy - r * 0.4)],
            fill=white,
            width=w,
            joint="curve",
        )
    elif verdict == "mismatch":
        d = r * 0.45
        draw.line([(cx - d, cy - d), (cx + d, cy + d)], fill=white, width=w)
        draw.line([(cx - d, cy + d), (cx + d, cy - d)], fill=white, width=w)
    else:
        d = r * 0.2
        draw.ellipse((cx - d, cy - d, cx + d, cy + d), fill=white)


def _fit(draw: ImageDraw.ImageDraw, text: str, *, font, width: int) -> str:
    """``text`` cut with an ellipsis to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def framed_thumbnail(
    source: Image.Image | str | Path,
    *,
    verdict: Verdict,
    size: int = THUMB_PX,
    lines: list[str] | None = None,
) -> Image.Image:
    """A square thumbnail with a caption band under it (``lines``), all inside a thick frame in
    the verdict's colour, plus a corner badge. Mismatches also get a dashed inner line, a cue
    that survives greyscale printing. Captions are drawn in, so nothing covers the photo."""
    colour = FRAME_RGB[verdict]
    border = max(6, size // 22)
    font = ImageFont.load_default(size=max(11, size // 14))
    line_h = font.size + 5
    band = len(lines or []) * line_h + (border + 6 if lines else 0)
    card = Image.new("RGB", (size, size + band), (255, 255, 255))
    card.paste(square_thumbnail(source, size=size), (0, 0))
    draw = ImageDraw.Draw(card)
    for i, text in enumerate(lines or []):
        y = size + 4 + i * line_h
        shown = _fit(draw, text, font=font, width=size - 2 * border - 6)
        draw.text((border + 3, y), shown, fill=(20, 20, 20) if i == 0 else (70, 70, 70), font=font)
    height = card.height
    for i in range(border):
        draw.rectangle((i, i, size - 1 - i, height - 1 - i), outline=colour)
    if verdict == "mismatch":
        inset, dash = border + 2, max(6, size // 20)
        for start in range(inset, size - inset, 2 * dash):
            end = min(start + dash, size - inset)
            for y in (inset, size - 1 - inset):
                draw.line([(start, y), (end, y)], fill=colour, width=2)
        for start in range(inset, size - inset, 2 * dash):
            end = min(start + dash, size - inset)
            for x in (inset, size - 1 - inset):
                draw.line([(x, start), (x, end)], fill=colour, width=2)
    _badge(draw, size=size, verdict=verdict, colour=colour)
    return card


def large_view(source: Image.Image | str | Path, *, max_px: int = LARGE_PX) -> Image.Image:
    """The whole image, upright, scaled down to at most ``max_px`` on its long side."""
    image = open_image(source)
    image.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    return image


def short_case_id(case_id: str) -> str:
    """A case id short enough for a thumbnail: the file stem when the id is a relative path."""
    return Path(case_id).stem if "/" in case_id else case_id


def tile_lines(*, rank: int, label: str, score: float, metric: str, case_id: str, verdict: Verdict):
    """The caption band of a result: rank and diagnosis, score and verdict, case id."""
    measure = f"cos {score:.3f}" if metric == "cosine" else f"dist {score:.2f}"
    return [f"#{rank} {label}", f"{measure} · {VERDICT_WORD[verdict]}", short_case_id(case_id)]


def result_caption(
    *, rank: int, label: str, score: float, metric: str, case_id: str, verdict: Verdict
) -> str:
    """'#1 ✓ ringworm · cos 0.873 · case-id' (distance for Euclidean: lower is closer)."""
    measure = f"cos {score:.3f}" if metric == "cosine" else f"dist {score:.2f}"
    return f"#{rank} {CAPTION_MARK[verdict]} {label} · {measure} · {case_id}"
