"""A usearch index of one case library under one backbone, with its cases table and manifest."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from usearch.index import Index

from data_index.changes import cases_from_files, diff_cases
from data_index.embed import embed_cases, embed_library
from data_index.library import CORE_COLUMNS, CaseLibrary
from data_index.locations import default_index_dir
from data_index.search import Hit, SearchMetric, search_vector
from data_index.store import (
    CONNECTIVITY,
    EXPANSION_ADD,
    EXPANSION_SEARCH,
    FORMAT,
    FORMAT_VERSION,
    METRIC,
    IndexMismatch,
    load_version,
    new_usearch_index,
    package_versions,
    resolve_version,
    write_version,
)
from data_index.validation import Progress
from models import Backbone
from models.base import l2_normalize

# Up to this many cases a query scans every vector; above it the HNSW graph answers.
# benchmarks/results/search_benchmark.md: HNSW is faster than usearch's exact scan from a few
# hundred vectors, but exact results are worth keeping while they are cheap: at 10k vectors the
# exact scan took 4.5-6.2 ms per query (single thread, busy 2-core CPU), against 35+ ms to embed
# the query photo; beyond that it grows linearly (23-47 ms at 100k) while HNSW stays < 1 ms.
EXACT_SEARCH_MAX_CASES = 10_000


def _describe(library: CaseLibrary | None) -> dict[str, str]:
    if library is None:
        return {"name": "", "root": "", "layout": "", "fingerprint": ""}
    return {
        "name": library.name,
        "root": str(library.root),
        "layout": library.layout,
        "fingerprint": library.fingerprint,
    }


class CaseIndex:
    """Integer keys in usearch; the key -> case table, raw vectors and manifest beside it.

    Build with ``CaseIndex.build`` (embeds via the cache and saves), reopen with
    ``CaseIndex.load``; ``add_images``/``remove``/``sync`` change it, ``save`` persists it.
    """

    def __init__(
        self,
        *,
        index: Index,
        cases: pd.DataFrame,
        raw: np.ndarray,
        manifest: dict[str, Any],
        path: Path | None = None,
    ) -> None:
        self.index = index
        self.cases = cases.reset_index(drop=True)
        self.raw = raw
        self.manifest = manifest
        self.path = path
        self._reindex()

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def empty(
        cls, *, backbone: Backbone, library: CaseLibrary | None = None, dtype: str = "f32"
    ) -> CaseIndex:
        """An index with no cases yet, for ``backbone`` (and described as ``library``)."""
        dim = backbone.dim
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "backbone_key": backbone.key,
            "backbone_name": backbone.spec.name,
            "weights_origin": backbone.weights_origin,
            "dim": dim,
            "metric": METRIC,
            "dtype": dtype,
            "normalized": True,
            "next_key": 0,
            "search": {
                "exact_max_cases": EXACT_SEARCH_MAX_CASES,
                "connectivity": CONNECTIVITY,
                "expansion_add": EXPANSION_ADD,
                "expansion_search": EXPANSION_SEARCH,
            },
            "library": _describe(library),
        }
        columns = list(library.cases.columns) if library else list(CORE_COLUMNS)
        return cls(
            index=new_usearch_index(dim, dtype),
            cases=pd.DataFrame(columns=columns),
            raw=np.zeros((0, dim), np.float32),
            manifest=manifest,
        )

    @classmethod
    def build(
        cls,
        library: CaseLibrary,
        backbone: Backbone,
        *,
        out_dir: str | Path | None = None,
        save: bool = True,
        dtype: str = "f32",
        cache_dir: Path | None = None,
        use_cache: bool = True,
        num_workers: int | None = None,
        progress: Progress | None = None,
    ) -> CaseIndex:
        """Embed ``library`` (cached vectors are reused) and index it; saved to ``out_dir``
        (default ``<cache>/indexes/<library>--<backbone>``) unless ``save`` is False."""
        unit, raw = embed_library(
            library,
            backbone,
            cache_dir=cache_dir,
            use_cache=use_cache,
            num_workers=num_workers,
            progress=progress,
        )
        if len(library) == 0:
            raise ValueError(f"The library {library.root} has no usable images to index.")
        idx = cls.empty(backbone=backbone, library=library, dtype=dtype)
        idx._append(library.cases, unit, raw, keys=library.cases["key"].to_numpy(np.int64))
        if save:
            idx.save(out_dir if out_dir is not None else default_index_dir(library.name, idx.key))
        return idx

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        backbone_key: str | None = None,
        weights_origin: str | None = None,
    ) -> CaseIndex:
        """Open a saved index, checking its files agree with each other and, when given, with
        the backbone the caller will embed queries with. Raises ``IndexMismatch`` otherwise."""
        manifest, index, cases, raw = load_version(path)
        root = manifest.get("library", {}).get("root", "")
        if root and not Path(root).is_absolute():
            # A relocatable index (a bundle's) names its images relative to its own folder.
            base = (resolve_version(path).parent / root).resolve()
            cases["path"] = [str(base / rel) for rel in cases["relpath"]]
        idx = cls(index=index, cases=cases, raw=raw, manifest=manifest, path=Path(path))
        idx.check_backbone(backbone_key=backbone_key, weights_origin=weights_origin)
        return idx

    def check_backbone(
        self, *, backbone_key: str | None = None, weights_origin: str | None = None
    ) -> None:
        """Raise ``IndexMismatch`` when queries would be embedded by a different model."""
        if backbone_key is not None and backbone_key != self.key:
            raise IndexMismatch(
                f"This index was built with backbone '{self.key}', not '{backbone_key}': its "
                f"vectors are not comparable. Search it with '{self.key}' or build a new index."
            )
        if weights_origin is not None and weights_origin != self.weights_origin:
            raise IndexMismatch(
                f"This index holds {self.weights_origin} vectors of '{self.key}' but the loaded "
                f"model is {weights_origin}; rebuild the index with the same weights."
            )

    # --- persistence -----------------------------------------------------------------------
    def save(self, out_dir: str | Path | None = None) -> Path:
        """Atomically write a new version to ``out_dir`` (default: where it was loaded from)."""
        target = Path(out_dir) if out_dir is not None else self.path
        if target is None:
            raise ValueError("Give out_dir: this index was never saved or loaded.")
        manifest = {
            **self.manifest,
            "count": len(self),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "versions": package_versions(),
        }
        write_version(target, index=self.index, cases=self.cases, raw=self.raw, manifest=manifest)
        self.manifest, self.path = manifest, target
        return target

    # --- description -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.cases)

    @property
    def key(self) -> str:
        return self.manifest["backbone_key"]

    @property
    def weights_origin(self) -> str:
        return self.manifest["weights_origin"]

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def dtype(self) -> str:
        return self.manifest["dtype"]

    @property
    def exact(self) -> bool:
        """Whether searches scan every vector (small libraries) rather than walk the graph."""
        return len(self) <= EXACT_SEARCH_MAX_CASES

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the library this index was last built or synced from (equal to
        ``CaseLibrary.fingerprint`` when up to date; cases added one by one do not change it)."""
        return self.manifest["library"].get("fingerprint", "")

    def vectors(self) -> np.ndarray:
        """Unit vectors in ``cases`` order (recomputed from the raw ones: exact float32)."""
        return l2_normalize(self.raw) if len(self.raw) else self.raw.copy()

    # --- changes ---------------------------------------------------------------------------
    def _reindex(self) -> None:
        self._row_of = pd.Index(self.cases["key"].to_numpy(np.int64))

    def _append(
        self, cases: pd.DataFrame, unit: np.ndarray, raw: np.ndarray, *, keys: np.ndarray
    ) -> np.ndarray:
        if not (len(cases) == len(unit) == len(raw) == len(keys)):
            raise ValueError("Cases, vectors and keys must have one row each.")
        if len(cases) == 0:
            return keys
        if unit.shape[1] != self.dim:
            raise IndexMismatch(f"Vectors have {unit.shape[1]} dims; this index has {self.dim}.")
        cases = cases.copy()
        cases["key"] = keys
        self.index.add(keys.astype(np.uint64), np.ascontiguousarray(unit, dtype=np.float32))
        frames = [f for f in (self.cases, cases) if len(f)]
        self.cases = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        self.cases = self.cases.reset_index(drop=True)
        self.raw = np.concatenate([self.raw, raw.astype(np.float32)])
        self.manifest["next_key"] = int(max(self.manifest["next_key"], keys.max() + 1))
        self._reindex()
        return keys

    def add_cases(
        self,
        cases: pd.DataFrame,
        backbone: Backbone,
        *,
        cache_dir: Path | None = None,
        num_workers: int | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Embed and add rows of a cases table (see ``cases_from_files``); returns new keys.
        All-or-nothing: an image that fails to decode raises before anything is added."""
        self.check_backbone(backbone_key=backbone.key, weights_origin=backbone.weights_origin)
        cases = cases.reset_index(drop=True)
        unit, raw, failures = embed_cases(
            cases, backbone, cache_dir=cache_dir, num_workers=num_workers, progress=progress
        )
        if failures:
            listed = "; ".join(f"{cases['path'].iat[i]}: {r}" for i, r in failures.items())
            raise ValueError(f"Nothing added; unreadable image(s): {listed}")
        return self._append(cases, unit, raw, keys=self._new_keys(len(cases)))

    def add_images(
        self,
        backbone: Backbone,
        paths: list[str | Path],
        *,
        labels: list[str],
        case_ids: list[str] | None = None,
        metadata: list[dict[str, Any]] | None = None,
        cache_dir: Path | None = None,
    ) -> np.ndarray:
        """Add image files (referenced where they are, not copied); returns their new keys."""
        root = self.manifest["library"].get("root") or None
        cases = cases_from_files(
            paths,
            labels=labels,
            root=Path(root) if root else None,
            case_ids=case_ids,
            metadata=metadata,
        )
        return self.add_cases(cases, backbone, cache_dir=cache_dir)

    def _new_keys(self, n: int) -> np.ndarray:
        start = int(self.manifest["next_key"])
        return np.arange(start, start + n, dtype=np.int64)

    def remove(self, keys: list[int] | np.ndarray) -> int:
        """Remove cases by key; returns how many were present. Keys are never reused."""
        keys = np.unique(np.asarray(keys, dtype=np.int64))
        present = keys[self._row_of.get_indexer(keys) >= 0]
        if len(present) == 0:
            return 0
        self.index.remove(present.astype(np.uint64))
        keep = ~self.cases["key"].isin(present).to_numpy()
        self.cases = self.cases[keep].reset_index(drop=True)
        self.raw = self.raw[keep]
        self._reindex()
        return len(present)

    def sync(
        self,
        library: CaseLibrary,
        backbone: Backbone,
        *,
        cache_dir: Path | None = None,
        num_workers: int | None = None,
        progress: Progress | None = None,
    ) -> tuple[int, int]:
        """Make the index hold exactly ``library``'s cases, embedding only new images; cases
        whose file, content, label or metadata changed are replaced. Returns (added, removed).
        Images that fail to decode are dropped from ``library`` and listed in its report."""
        self.check_backbone(backbone_key=backbone.key, weights_origin=backbone.weights_origin)
        stale, fresh = diff_cases(self.cases, library.cases)
        unit, raw, failures = embed_cases(
            fresh, backbone, cache_dir=cache_dir, num_workers=num_workers, progress=progress
        )
        if failures:
            bad = fresh.iloc[list(failures)]
            keys = library.cases.set_index("path").loc[bad["path"], "key"].astype(int).tolist()
            library.drop(keys, reasons=list(failures.values()))
            fresh = fresh.drop(index=list(failures)).reset_index(drop=True)
        removed = self.remove(stale)
        self._append(fresh, unit, raw, keys=self._new_keys(len(fresh)))
        self.manifest["library"] = _describe(library)
        return len(fresh), removed

    # --- search ----------------------------------------------------------------------------
    def row_positions(self, keys: list[int] | np.ndarray) -> np.ndarray:
        """Row numbers in ``cases`` (and ``raw``) of the given keys; -1 for absent keys."""
        return self._row_of.get_indexer(np.asarray(keys, dtype=np.int64))

    def search_vector(
        self,
        query: np.ndarray,
        *,
        k: int = 10,
        exclude_case_ids: Iterable[str] = (),
        metric: SearchMetric = "cosine",
    ) -> list[Hit]:
        """Nearest cases to an embedding. Cosine takes any vector of the index's backbone;
        ``"euclidean"`` compares raw (un-normalised) embeddings, so pass a raw query."""
        return search_vector(self, query, k=k, exclude_case_ids=exclude_case_ids, metric=metric)

    def search_image(
        self,
        backbone: Backbone,
        image: Image.Image | str | Path,
        *,
        k: int = 10,
        exclude_case_ids: Iterable[str] = (),
        metric: SearchMetric = "cosine",
    ) -> list[Hit]:
        """Embed a photo (PIL or path) with ``backbone`` and return its nearest cases."""
        self.check_backbone(backbone_key=backbone.key, weights_origin=backbone.weights_origin)
        raw = backbone.encode_images([image], normalize=False)[0]
        return search_vector(self, raw, k=k, exclude_case_ids=exclude_case_ids, metric=metric)

    def search_text(
        self,
        backbone: Backbone,
        text: str,
        *,
        k: int = 10,
        exclude_case_ids: Iterable[str] = (),
    ) -> list[Hit]:
        """Cases nearest to a text prompt (dual encoders only; raises ``NoTextTower``)."""
        self.check_backbone(backbone_key=backbone.key, weights_origin=backbone.weights_origin)
        if not str(text).strip():
            raise ValueError("Give some text to search for.")
        q = backbone.encode_texts([str(text)])[0]
        return search_vector(self, q, k=k, exclude_case_ids=exclude_case_ids)
