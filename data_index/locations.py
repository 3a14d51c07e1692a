"""Where derived files live: one cache root for extracted zips, embeddings and indexes."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_ENV = "DERMSEARCH_CACHE"


def cache_root() -> Path:
    """``$DERMSEARCH_CACHE`` when set, else ``cache/`` in the repository (gitignored)."""
    override = os.environ.get(CACHE_ENV, "").strip()
    return Path(override).expanduser().resolve() if override else REPO_ROOT / "cache"


def slug(text: str) -> str:
    """A file-name-safe, still readable and collision-free name for a key such as
    ``open_clip:ViT-B-32/openai`` (the short hash keeps two similar keys apart)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60] or "x"
    if readable == text:
        return text
    return f"{readable}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def default_index_dir(library_name: str, backbone_key: str) -> Path:
    """``<cache>/indexes/<library>--<backbone>``: one index per (library, backbone)."""
    return cache_root() / "indexes" / f"{slug(library_name)}--{slug(backbone_key)}"


def embeddings_dir() -> Path:
    return cache_root() / "embeddings"


def extracted_dir() -> Path:
    return cache_root() / "libraries"
