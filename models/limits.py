"""Bounds on what a visitor can make the app read, decode, extract or keep, in one place.

Every limit has a default sized for a public CPU Space and can be changed with an environment
variable named here (read once at import). The README's "Security and privacy" section lists
them; the modules that enforce them read these names at call time, so tests can lower them.
"""

from __future__ import annotations

import os


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip().replace("_", "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as err:
        raise ValueError(f"{name} must be a whole number, not {raw!r}.") from err
    if value <= 0:
        raise ValueError(f"{name} must be positive, not {value}.")
    return value


# Pixels per image, taken from the header before any pixel is decoded: 64 MP is 8000 x 8000,
# about 190 MB once decoded to RGB; dermoscopy and phone photos are well under 50 MP.
MAX_IMAGE_PIXELS = _env_int("DERMSEARCH_MAX_IMAGE_PIXELS", 64_000_000)
# Bytes read from any one image file (devices and FIFOs are refused before reading).
MAX_IMAGE_BYTES = _env_int("DERMSEARCH_MAX_IMAGE_BYTES", 64 * 1024**2)
# A manifest's file size and rows.
MAX_MANIFEST_BYTES = _env_int("DERMSEARCH_MAX_MANIFEST_BYTES", 32 * 1024**2)
MAX_MANIFEST_ROWS = _env_int("DERMSEARCH_MAX_MANIFEST_ROWS", 100_000)
# A zip's members, its total uncompressed size (the extraction disk quota per upload), each
# member's size, and the compression ratio allowed for any member whatever its size.
MAX_ZIP_FILES = _env_int("DERMSEARCH_MAX_ZIP_FILES", 50_000)
MAX_ZIP_BYTES = _env_int("DERMSEARCH_MAX_ZIP_BYTES", 4 * 1024**3)
MAX_ZIP_MEMBER_BYTES = _env_int("DERMSEARCH_MAX_ZIP_MEMBER_BYTES", 64 * 1024**2)
MAX_ZIP_RATIO = _env_int("DERMSEARCH_MAX_ZIP_RATIO", 200)
# An uploaded library file (zip or manifest) as it arrives.
MAX_UPLOAD_BYTES = _env_int("DERMSEARCH_MAX_UPLOAD_BYTES", 2 * 1024**3)
# Open sessions whose state (query photo, results, updated components) the server holds; past
# this the least recently used is dropped, so memory stays bounded however many visitors stay.
# A session that ends (its tab closes) is dropped at once. Each costs about 0.3 MB of Python
# objects after a search, mostly gradio's own copy of every component's config
# (benchmarks.perf.session_memory).
MAX_SESSIONS = _env_int("DERMSEARCH_MAX_SESSIONS", 200)
