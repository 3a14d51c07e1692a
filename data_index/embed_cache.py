"""On-disk cache of raw image embeddings keyed by (backbone, weights origin, image content hash)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from data_index.locations import embeddings_dir, slug

# Each run that embeds something appends one shard; past this many they are merged into one.
MAX_SHARDS = 16


class EmbeddingCache:
    """Raw (un-normalised) float32 vectors by image sha1, for one backbone and weights origin.

    Storage is append-only shards (``.npz``) written atomically (temp file, then ``os.replace``),
    so concurrent builds and crashes never leave a half-written shard in place.
    """

    def __init__(self, *, backbone_key: str, weights_origin: str, root: Path | None = None) -> None:
        self.backbone_key = backbone_key
        self.weights_origin = weights_origin
        base = Path(root) if root is not None else embeddings_dir()
        self.dir = base / f"{slug(backbone_key)}--{weights_origin}"

    def _shards(self) -> list[Path]:
        return sorted(self.dir.glob("shard-*.npz")) if self.dir.is_dir() else []

    def _read(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["backbone"]) != self.backbone_key:
                    return None  # two keys slugged alike: never mix their vectors
                return data["sha1"], data["raw"]
        except (OSError, KeyError, ValueError):
            return None  # vanished (merged by another process) or unreadable: treat as misses

    def lookup(self, sha1s: Sequence[str], *, dim: int | None = None) -> dict[str, np.ndarray]:
        """The cached raw vectors among ``sha1s`` (rows of the wrong ``dim`` are ignored)."""
        wanted = set(sha1s)
        found: dict[str, np.ndarray] = {}
        for shard in self._shards():
            got = self._read(shard)
            if got is None:
                continue
            hashes, raw = got
            if dim is not None and raw.shape[1] != dim:
                continue
            for i, h in enumerate(hashes.tolist()):
                if h in wanted:
                    found[h] = raw[i]
        return found

    def store(self, sha1s: Sequence[str], raw: np.ndarray) -> None:
        """Add vectors for ``sha1s`` (one row each) as a new shard; merge shards when many."""
        if len(sha1s) == 0:
            return
        if raw.shape[0] != len(sha1s):
            raise ValueError(f"{len(sha1s)} hashes but {raw.shape[0]} vectors to cache.")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write(np.asarray(sha1s, dtype="<U40"), raw.astype(np.float32, copy=False))
        shards = self._shards()
        if len(shards) > MAX_SHARDS:
            self._merge(shards)

    def _write(self, hashes: np.ndarray, raw: np.ndarray) -> Path:
        final = self.dir / f"shard-{uuid.uuid4().hex}.npz"
        tmp = self.dir / f".tmp-{uuid.uuid4().hex}.npz"
        with tmp.open("wb") as f:
            np.savez(f, sha1=hashes, raw=raw, backbone=np.asarray(self.backbone_key))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        return final

    def _merge(self, shards: list[Path]) -> None:
        hashes, rows = [], []
        for shard in shards:
            got = self._read(shard)
            if got is not None:
                hashes.append(got[0])
                rows.append(got[1])
        if not rows or len({r.shape[1] for r in rows}) != 1:
            return
        all_hashes = np.concatenate(hashes)
        _, first = np.unique(all_hashes, return_index=True)
        self._write(all_hashes[first], np.concatenate(rows)[first])
        for shard in shards:
            shard.unlink(missing_ok=True)

    def __len__(self) -> int:
        return sum(len(got[0]) for s in self._shards() if (got := self._read(s)) is not None)
