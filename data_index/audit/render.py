"""Side-by-side thumbnail strip of one duplicate group, for the UI and for checking by eye."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

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
