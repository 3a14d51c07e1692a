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
VERDICT_CAPTION = {"match": "same", "mismatch": "different", "unknown": ""}
# The legend above the results, from the same colours and marks as the frames.


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02X}{:02X}{:02X}".format(*rgb)


LEGEND = (
    "**Nearest cases**, framed by diagnosis: "
    f"<span style='color:{_hex(MATCH_RGB)}'>■</span> ✓ same as the query, "
    f"<span style='color:{_hex(MISMATCH_RGB)}'>■</span> ✗ different (dashed frame), "
    f"<span style='color:{_hex(UNKNOWN_RGB)}'>■</span> grey: the query's diagnosis is not given."
)
THUMB_PX = 256
# The enlarged view sends a photo's own pixels; only past a 12-megapixel phone photo's long
# side is it scaled down (the page could not show more, and the transfer would be huge).
LARGE_PX = 4096


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


def large_view(
    source: Image.Image | str | Path, *, max_px: int = LARGE_PX
) -> tuple[Image.Image, str]:
    """The whole image, upright, at its real resolution (scaled down only past ``max_px`` on
    its long side), and a line saying which size is shown."""
    image = open_image(source)
    width, height = image.size
    if max(width, height) <= max_px:
        return image, f"Shown at its full resolution, {width} × {height} px."
    image.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    return image, (
        f"Shown at {image.width} × {image.height} px of its {width} × {height} px (the full "
        "photo is larger than any screen)."
    )


def short_case_id(case_id: str) -> str:
    """A case id short enough for a thumbnail: the file stem when the id is a relative path."""
    return Path(case_id).stem if "/" in case_id else case_id


# Readable names for the dataset codes a library may use as labels (HAM10000's; infectious-8's
# prefixes name the kind of agent). A manifest's ``label_name`` column, when given, wins.
GLOSSARY = {
    "akiec": "Actinic keratosis / Bowen's disease",
    "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis",
    "df": "Dermatofibroma",
    "mel": "Melanoma",
    "nv": "Melanocytic naevus",
    "vasc": "Vascular lesion",
}
AGENT_PREFIX = {"BA": "bacterial", "FU": "fungal", "PA": "parasitic", "VI": "viral"}


def display_label(label: str | None, names: dict[str, str] | None = None) -> str:
    """'Melanoma (mel)', 'Impetigo (bacterial)'; other labels read as words."""
    if label is None:
        return ""
    name = (names or {}).get(label) or GLOSSARY.get(label)
    if name:
        return f"{name} ({label})"
    prefix, _, rest = label.partition("-")
    if prefix in AGENT_PREFIX and rest:
        words = rest.replace("-", " ").replace("_", " ")
        return f"{words[0].upper()}{words[1:]} ({AGENT_PREFIX[prefix]})"
    return label.replace("_", " ")


def result_caption(
    *,
    rank: int,
    label: str,
    score: float,
    metric: str,
    case_id: str,
    verdict: Verdict,
    names: dict[str, str] | None = None,
) -> str:
    """'#1 ✓ same · Impetigo (bacterial) · similarity 0.87 · case-id': text under the tile
    (selectable and zoomable on a phone), with the verdict in words as well as in colour."""
    measure = f"similarity {score:.2f}" if metric == "cosine" else f"distance {score:.2f}"
    mark = f"{CAPTION_MARK[verdict]} {VERDICT_CAPTION[verdict]} · " if verdict != "unknown" else ""
    return f"#{rank} {mark}{display_label(label, names)} · {measure} · {case_id}"
