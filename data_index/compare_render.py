"""Pictures of a comparison: framed tiles, a 16:9 contact sheet and a self-contained HTML page.

The tab, the HTML export and the command line's ``--sheet`` draw tiles here, so a frame looks
the same on screen, on a slide and in a saved page. Frames are drawn into the pixels with a
shape cue as well as a colour (Okabe-Ito bluish green / vermillion), so they survive a
screenshot, a projector and greyscale printing.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from data_index.compare import BackboneRow, ComparedHit, Comparison
from data_index.variants import VARIANTS
from models.base import open_image

FRAME_RGB = {"match": (0, 158, 115), "mismatch": (213, 94, 0), "unknown": (150, 150, 150)}
SHARED_RGB = (0, 114, 178)
MARK = {"match": "✓", "mismatch": "✗", "unknown": "·"}
WORD = {"match": "same", "mismatch": "different", "unknown": "not scored"}
SLIDE = (1920, 1080)
LEGEND = (
    "Green frame with a tick: same diagnosis as the query. Red dashed frame with a cross: a "
    "different diagnosis. Number: similarity to the query. SHARED: another backbone found it too."
)
DISCLAIMER = (
    "Research and teaching tool, not a diagnostic device: similar pictures are no diagnosis."
)


def _font(px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=px)


def _square(source: Image.Image | str | Path, size: int) -> Image.Image:
    try:
        image = open_image(source)
    except ValueError:
        tile = Image.new("RGB", (size, size), (210, 210, 210))
        ImageDraw.Draw(tile).text((6, size // 2 - 6), "unreadable image", fill=(40, 40, 40))
        return tile
    return ImageOps.fit(image, (size, size), method=Image.Resampling.LANCZOS)


def _fit(draw: ImageDraw.ImageDraw, text: str, *, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _badge(draw: ImageDraw.ImageDraw, *, cx: float, cy: float, r: float, verdict: str) -> None:
    """A filled disc with a tick, a cross or a dot, drawn as lines (the font has no ✓)."""
    colour, white, w = FRAME_RGB[verdict], (255, 255, 255), max(2, int(r // 4))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour, outline=white, width=2)
    if verdict == "match":
        points = [(cx - r * 0.5, cy), (cx - r * 0.12, cy + r * 0.42), (cx + r * 0.55, cy - r * 0.4)]
        draw.line(points, fill=white, width=w, joint="curve")
    elif verdict == "mismatch":
        d = r * 0.45
        draw.line([(cx - d, cy - d), (cx + d, cy + d)], fill=white, width=w)
        draw.line([(cx - d, cy + d), (cx + d, cy - d)], fill=white, width=w)
    else:
        draw.ellipse((cx - r * 0.2, cy - r * 0.2, cx + r * 0.2, cy + r * 0.2), fill=white)


def hit_tile(hit: ComparedHit, *, size: int = 192, hide_label: bool = False) -> Image.Image:
    """The photo with a caption band, inside a frame in the verdict's colour, a corner badge,
    and a blue 'SHARED' tag when another backbone found the same case. ``hide_label`` draws a
    neutral tile with no diagnosis (the class guesses first)."""
    verdict = "unknown" if hide_label else hit.verdict
    colour = FRAME_RGB[verdict]
    border = max(5, size // 24)
    font = _font(max(11, size // 12))
    line_h = font.size + 4
    band = 2 * line_h + border + 4
    card = Image.new("RGB", (size, size + band), (255, 255, 255))
    card.paste(_square(hit.path, size), (0, 0))
    draw = ImageDraw.Draw(card)
    title = "diagnosis hidden" if hide_label else hit.label
    second = f"#{hit.rank} · {hit.score:.2f}" + ("" if hide_label else f" · {WORD[verdict]}")
    for i, text in enumerate((title, second)):
        shown = _fit(draw, text, font=font, width=size - 2 * border - 4)
        draw.text((border + 3, size + 3 + i * line_h), shown, fill=(20, 20, 20), font=font)
    for i in range(border):
        draw.rectangle((i, i, size - 1 - i, card.height - 1 - i), outline=colour)
    if verdict == "mismatch":  # a dashed inner line: a cue that survives greyscale
        inset, dash = border + 2, max(5, size // 20)
        for start in range(inset, size - inset, 2 * dash):
            end = min(start + dash, size - inset)
            for fixed in (inset, size - 1 - inset):
                draw.line([(start, fixed), (end, fixed)], fill=colour, width=2)
                draw.line([(fixed, start), (fixed, end)], fill=colour, width=2)
    r = max(10, size // 11)
    if not hide_label:
        _badge(draw, cx=size - r - border - 2, cy=r + border + 2, r=r, verdict=verdict)
    if hit.shared:
        tag = _font(max(10, size // 15))
        width = draw.textlength("SHARED", font=tag) + 10
        x0, y0 = border + 2, border + 2
        draw.rounded_rectangle(
            (x0, y0, x0 + width, y0 + tag.size + 8), radius=4, fill=SHARED_RGB, outline="white"
        )
        draw.text((x0 + 5, y0 + 3), "SHARED", fill=(255, 255, 255), font=tag)
    return card


def caption(hit: ComparedHit, *, hide_label: bool = False) -> str:
    """'#1 ✓ BA-impetigo · similarity 0.873 · shared': the text twin of a tile."""
    if hide_label:
        return f"#{hit.rank} · similarity {hit.score:.3f}" + (" · shared" if hit.shared else "")
    text = f"#{hit.rank} {MARK[hit.verdict]} {hit.label} · similarity {hit.score:.3f}"
    return text + (" · shared" if hit.shared else "")


def row_summary(row: BackboneRow, *, k: int, hide_label: bool = False) -> str:
    """'vote: BA-impetigo (6 of 10) · likely diagnoses (90% coverage): BA-impetigo · hit at 10:
    yes, first at #1 · 41 ms'."""
    parts = [f"ranked with: {VARIANTS[row.variant].title}"] if row.variant else []
    if not hide_label and row.vote:
        parts.append(f"vote: {row.vote} ({row.vote_count} of {len(row.hits)})")
    if not hide_label and row.prediction_set and row.coverage is not None:
        likely = ", ".join(row.prediction_set)
        parts.append(f"likely diagnoses ({row.coverage:.0%} coverage): {likely}")
    if not hide_label and row.hit_at_k is not None:
        found = f"yes, first at #{row.first_match}" if row.hit_at_k else "no"
        parts.append(f"hit at {k}: {found}")
    parts.append(f"{row.ms:.0f} ms")
    return " · ".join(parts)


def overlap_lines(comparison: Comparison, *, names: dict[str, str] | None = None) -> list[str]:
    """One sentence per pair of backbones, then whether all votes agree."""
    names = names or {row.key: row.name for row in comparison.rows}
    lines = []
    for pair in comparison.pairs:
        agree = "votes agree" if pair.votes_agree else "votes differ"
        lines.append(
            f"{names[pair.a]} and {names[pair.b]} share {len(pair.shared)} of their "
            f"{pair.k} cases; {agree}."
        )
    if len(comparison.rows) > 2:
        votes = "All votes agree." if comparison.votes_agree else "The votes do not all agree."
        lines.append(votes)
    return lines


def query_title(comparison: Comparison) -> str:
    query = comparison.query
    what = {"photo": "an uploaded photo", "case": "a library case", "text": "a text prompt"}
    subject = f"“{query.text}”" if query.kind == "text" else what[query.kind]
    known = f"diagnosis {query.label}" if query.label else "diagnosis not stated"
    return f"Query: {subject}, {known}"


# --- the 16:9 contact sheet --------------------------------------------------------------------
def contact_sheet(
    comparison: Comparison, *, query_image: Image.Image | str | Path | None = None
) -> Image.Image:
    """One slide (1920x1080): the query on the left, one row of framed tiles per backbone, the
    overlap sentences and a legend under them, the whole block centred on the slide."""
    width, height = SLIDE
    sheet = Image.new("RGB", SLIDE, (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    margin, left_w, head_h, name_h, gap, line_h = 28, 300, 100, 40, 10, 34
    draw.text((margin, 20), query_title(comparison), fill=(20, 20, 20), font=_font(40))
    draw.text((margin, 68), DISCLAIMER, fill=(120, 60, 20), font=_font(20))
    rows = comparison.rows
    notes = [*overlap_lines(comparison), LEGEND]
    foot_h = 16 + line_h * len(notes)
    k = max((len(r.hits) for r in rows), default=comparison.k) or 1
    avail_h = (height - head_h - foot_h - 16) / max(len(rows), 1) - name_h - 8
    avail_w = (width - left_w - margin) / k - gap
    # A tile is its square photo plus a caption band of about 0.3 of its side.
    size = int(max(48, min(avail_w, avail_h / 1.32)))
    tiles = [[hit_tile(hit, size=size) for hit in row.hits] for row in rows]
    row_h = [name_h + max((t.height for t in ts), default=0) + 8 for ts in tiles]
    block = max(sum(row_h), left_w if query_image is not None else 0) + foot_h
    y = head_h + max(8, (height - head_h - block) // 2)
    if query_image is not None:
        draw.text((margin, y), "Query", fill=(20, 20, 20), font=_font(26))
        sheet.paste(_square(query_image, left_w - 2 * margin), (margin, y + name_h))
    top = y
    for row, row_tiles, h in zip(rows, tiles, row_h, strict=True):
        draw.text((left_w, y), row.name, fill=(20, 20, 20), font=_font(28))
        name_w = draw.textlength(row.name, font=_font(28))
        x = left_w + name_w + 24
        summary = _fit(draw, row_summary(row, k=len(row.hits)), font=_font(22), width=width - x - 8)
        draw.text((x, y + 6), summary, fill=(70, 70, 70), font=_font(22))
        for i, tile in enumerate(row_tiles):
            sheet.paste(tile, (left_w + i * (size + gap), y + name_h))
        y += h
    y = max(y, top + name_h + left_w - 2 * margin if query_image is not None else y) + 16
    for i, line in enumerate(notes):
        colour = (20, 20, 20) if line != LEGEND else (90, 90, 90)
        draw.text(
            (margin, y + i * line_h), line, fill=colour, font=_font(26 if line != LEGEND else 22)
        )
    return sheet


# --- HTML --------------------------------------------------------------------------------------
def query_html(comparison: Comparison, *, query_image=None, px: int = 150) -> str:
    """The query's picture (when it has one) beside the sentence saying what it is."""
    picture = ""
    if query_image is not None and comparison.query.kind != "text":
        uri = data_uri(_square(query_image, px))
        picture = f'<img src="{uri}" alt="query" style="width:{px}px;border-radius:6px">'
    title = html.escape(query_title(comparison))
    return (
        '<div class="cmp-query" style="display:flex;gap:14px;align-items:center;margin:6px 0">'
        f"{picture}<div><b>{title}</b> · top {comparison.k} per backbone</div></div>"
    )


def data_uri(image: Image.Image, *, quality: int = 85) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


ROW_CSS = """
.cmp-row { margin: 0 0 18px 0; }
.cmp-head { font-size: 1.05em; margin: 4px 0 6px 0; }
.cmp-head .cmp-sum { color: #555; font-size: 0.92em; }
.cmp-tiles { display: grid; gap: 6px; grid-template-columns: repeat(var(--k), minmax(0, 1fr)); }
.cmp-tiles figure { margin: 0; max-width: 200px; }
.cmp-tiles img { width: 100%; height: auto; display: block; }
.cmp-overlap { font-size: 1.02em; margin: 6px 0; }
/* The caption is drawn into each tile; the text copy stays for screen readers and search. */
.cmp-tiles figcaption { position: absolute; width: 1px; height: 1px; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; }
@media (max-width: 760px) { .cmp-tiles { grid-template-columns: repeat(4, minmax(0, 1fr)); } }
@media (max-width: 480px) { .cmp-tiles { grid-template-columns: repeat(3, minmax(0, 1fr)); } }
"""


def row_html(row: BackboneRow, *, k: int, tile_px: int = 192, hide_label: bool = False) -> str:
    """One backbone's row: a heading with vote, hit and time, then its tiles with captions."""
    figures = []
    for hit in row.hits:
        tile = data_uri(hit_tile(hit, size=tile_px, hide_label=hide_label))
        text = html.escape(caption(hit, hide_label=hide_label))
        verdict = "unknown" if hide_label else hit.verdict
        figures.append(
            f'<figure class="cmp-hit" data-verdict="{verdict}" data-shared="{int(hit.shared)}" '
            f'data-rank="{hit.rank}">'
            f'<img src="{tile}" alt="{text}"><figcaption>{text}</figcaption></figure>'
        )
    summary = html.escape(row_summary(row, k=k, hide_label=hide_label))
    return (
        f'<div class="cmp-row" data-backbone="{html.escape(row.key)}">'
        f'<div class="cmp-head"><b>{html.escape(row.name)}</b> '
        f'<span class="cmp-sum">{summary}</span></div>'
        f'<div class="cmp-tiles" style="--k: {max(len(row.hits), 1)}">'
        f"{''.join(figures)}</div></div>"
    )


def comparison_html(
    comparison: Comparison,
    *,
    query_image: Image.Image | str | Path | None = None,
    library_name: str = "",
) -> str:
    """A self-contained page (every image a data URI) to open in any browser, offline."""
    title = html.escape(query_title(comparison))
    query = ""
    if query_image is not None:
        query = f'<img class="cmp-query" src="{data_uri(_square(query_image, 320))}" alt="query">'
    rows = "".join(row_html(row, k=comparison.k) for row in comparison.rows)
    overlaps = "".join(
        f'<p class="cmp-overlap">{html.escape(line)}</p>' for line in overlap_lines(comparison)
    )
    where = f" on {html.escape(library_name)}" if library_name else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Backbone comparison{where}</title><style>"
        "body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }"
        ".cmp-query { width: 240px; border: 1px solid #ccc; }"
        ".cmp-note { border-left: 4px solid #d55e00; padding: 4px 12px; background: #fff6ef; }"
        f"{ROW_CSS}</style></head><body>"
        f"<h1>Backbone comparison{where}</h1><p><b>{title}</b></p>{query}"
        f"<p class='cmp-note'>{html.escape(DISCLAIMER)}</p>{rows}{overlaps}"
        f"<p class='cmp-note'>{html.escape(LEGEND)}</p>"
        "</body></html>"
    )


def save_sheet(comparison: Comparison, out: str | Path, *, query_image=None) -> Path:
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise ValueError(f"The contact sheet is a PNG: name it with .png, not {path.name}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(comparison, query_image=query_image).save(path)
    return path
