"""What a person looks at to judge the audit: a strip of one group's thumbnails, and a pair
side by side with its matched points and masked overlays."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from data_index.audit.match import PairEvidence
from data_index.audit.overlays import N_POSITIONS, content_mask, overlay_cells
from models.base import open_image

_CAPTION_PX = 30


def render_group_strip(
    paths: Sequence[str | Path],
    *,
    captions: Sequence[str] | None = None,
    height: int = 192,
    gap: int = 6,
) -> Image.Image:
    """Thumbnails of ``paths`` in a row, each at ``height`` px with a caption under it.

    Captions default to file names; unreadable files get a grey tile saying so.
    """
    if isinstance(paths, str | Path) or not paths:
        raise ValueError("render_group_strip needs a non-empty list of image paths.")
    if captions is not None and len(captions) != len(paths):
        raise ValueError("captions must have one entry per path.")
    if height < 16:
        raise ValueError("height must be at least 16 pixels.")
    tiles = []
    for path in paths:
        try:
            image = open_image(path)
            width = max(1, round(image.width * height / image.height))
            tiles.append(image.resize((width, height), Image.Resampling.LANCZOS))
        except ValueError:
            tile = Image.new("RGB", (height, height), (200, 200, 200))
            ImageDraw.Draw(tile).text((6, height // 2), "unreadable", fill=(0, 0, 0))
            tiles.append(tile)
    texts = list(captions) if captions is not None else [Path(p).name for p in paths]
    total = sum(t.width for t in tiles) + gap * (len(tiles) - 1)
    strip = Image.new("RGB", (total, height + _CAPTION_PX), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default()
    x = 0
    for tile, text in zip(tiles, texts, strict=True):
        strip.paste(tile, (x, 0))
        # Trim long captions to the tile width: a strip is read at a glance.
        shown = text
        while shown and draw.textlength(shown, font=font) > tile.width - 4:
            shown = shown[:-1]
        draw.text((x + 2, height + 4), shown if shown == text else shown[:-1] + "…", fill=0)
        x += tile.width + gap
    return strip


def _overlay_mask(image: Image.Image, cells: Sequence[int]) -> np.ndarray:
    """True where the audit masked an overlay of ``image`` (cells learned, solid strips)."""
    arr = np.asarray(image.convert("RGB"))
    _, _, strips = overlay_cells(arr)
    row = np.zeros(N_POSITIONS, dtype=bool)
    row[list(cells)] = True
    content = content_mask(row, strips, arr.shape[:2])
    return np.zeros(arr.shape[:2], dtype=bool) if content is None else ~content


def render_pair_evidence(
    path_a: str | Path,
    path_b: str | Path,
    evidence: PairEvidence,
    *,
    overlay_a: Sequence[int] = (),
    overlay_b: Sequence[int] = (),
    captions: tuple[str, str] | None = None,
    height: int = 320,
) -> Image.Image:
    """Two photos side by side, the matched points joined by lines and the masked overlays
    shaded red, with a line saying what the audit measured: what a person needs to judge."""
    tiles, masks = [], []
    for path, cells in ((path_a, overlay_a), (path_b, overlay_b)):
        try:
            image = open_image(path)
        except ValueError:
            image = Image.new("RGB", (height, height), (200, 200, 200))
        mask = _overlay_mask(image, cells)
        width = max(1, round(image.width * height / image.height))
        tile = image.resize((width, height), Image.Resampling.LANCZOS)
        small = Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height))
        shade = Image.new("RGB", tile.size, (220, 30, 30))
        tile = Image.composite(Image.blend(tile, shade, 0.55), tile, small)
        tiles.append(tile)
        masks.append(small)
    gap, text_px = 12, 40
    total = tiles[0].width + gap + tiles[1].width
    canvas = Image.new("RGB", (total, height + text_px), (255, 255, 255))
    canvas.paste(tiles[0], (0, 0))
    canvas.paste(tiles[1], (tiles[0].width + gap, 0))
    draw = ImageDraw.Draw(canvas)
    offset = tiles[0].width + gap
    for xa, ya, xb, yb in evidence.points:
        pa = (xa * tiles[0].width, ya * height)
        pb = (offset + xb * tiles[1].width, yb * height)
        draw.line((*pa, *pb), fill=(0, 200, 90), width=1)
        for x, y in (pa, pb):
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), outline=(0, 120, 40), fill=(120, 255, 160))
    font = ImageFont.load_default()
    level = "copy" if evidence.level == "copy" else "possible copy"
    if evidence.method == "identical-pixels":
        said = "identical pixels"
    else:
        said = (
            f"{level}: {evidence.inliers} matched points, aligned photos agree "
            f"{evidence.correlation:.2f} (copy from 0.90)"
            + (", mirrored" if evidence.mirrored else "")
        )
    draw.text((4, height + 4), said, fill=(0, 0, 0), font=font)
    names = captions or (Path(path_a).name, Path(path_b).name)
    draw.text(
        (4, height + 20),
        f"{names[0]}  |  {names[1]}   red: masked overlay",
        fill=(90, 90, 90),
        font=font,
    )
    return canvas


def write_evidence(
    report, *, relpaths: Sequence[str], labels: Sequence[str], out: Path
) -> list[Path]:
    """One PNG per group (its best pair) and per possible copy, in ``out``; returns them."""
    from data_index.audit.report import group_pair  # report imports match, not render

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):  # a former audit's pictures must not be read as this one's
        old.unlink()
    written = []
    shown = [(f"group-{g:03d}", group_pair(report, g)) for g in range(len(report.groups))]
    shown += [(f"possible-{k:03d}", pair) for k, pair in enumerate(report.possible)]
    for name, pair in shown:
        picture = render_pair_evidence(
            report.paths[pair.a],
            report.paths[pair.b],
            pair.evidence,
            overlay_a=report.overlays.get(pair.a, ()),
            overlay_b=report.overlays.get(pair.b, ()),
            captions=(
                f"{relpaths[pair.a]} [{labels[pair.a]}]",
                f"{relpaths[pair.b]} [{labels[pair.b]}]",
            ),
        )
        path = out / f"{name}.png"
        picture.save(path)
        written.append(path)
    return written
