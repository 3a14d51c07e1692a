"""Result tiles are written to gradio's cache once, atomically.

Gradio saves every image an event returns under a folder named by the hash of its bytes and
rewrites the file each time, in place. Two searches that return the same tile (the same case
for the same query, which is common) therefore rewrite a file while another client downloads
it, and that download ends with "peer closed connection" (about 1 request in 150 at 16
clients). Here the file is written under a temporary name and renamed into place, and an
existing copy is reused: gradio's own ``save_file_to_cache`` already works this way.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from gradio import processing_utils
from PIL import Image


def save_pil_once(
    img: Image.Image, cache_dir: str, name: str = "image", format: str = "webp"
) -> str:
    """``gradio.processing_utils.save_pil_to_cache`` with the same paths, written once."""
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    target = folder / f"{name}.{format}"
    if target.is_file():
        with contextlib.suppress(OSError):  # the cache sweep ages files: this one is in use
            os.utime(target)
        return str(target.resolve())
    fd, staging = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return str(target.resolve())


def install() -> None:
    """Make every gradio component that saves a PIL image use ``save_pil_once``."""
    processing_utils.save_pil_to_cache = save_pil_once
