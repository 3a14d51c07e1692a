"""Retrieval variants in a search: the library side fitted once per library and backbone, kept
on disk beside the index, and the query side applied with the same functions the benchmark's
honest evaluation uses (`data_index.variants`), so a search shows what was measured.

Layout, beside an index folder ``<name>``::

    <name>--variants/<variant>/<library fingerprint>/
        manifest.json   what it was fitted on (backbone, fingerprint, content hash, sha256s)
        vectors.npy     the library's vectors in the variant's space
        index.usearch   the same vectors, searchable
        adapter.npz     adapter-lda: its mean and matrix
        neighbours.npy  dba: the rows each library vector was blended with

A folder is reused while the library's fingerprint, its cases, labels and copy groups and the
backbone are unchanged; otherwise the variant is fitted again and the stale folder removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from usearch.index import Index

from data_index.audit.groups import case_or_copy_groups
from data_index.bundle import is_bundle
from data_index.case_index import EXACT_SEARCH_MAX_CASES, CaseIndex
from data_index.embed_transformed import embed_transformed, mirrored
from data_index.locations import default_index_dir
from data_index.search import CaseTable, Hit, cosine_top
from data_index.store import new_usearch_index, sha256_file
from data_index.trust import loo_neighbours
from data_index.variants import (
    VARIANTS,
    LdaAdapter,
    fit_lda,
    flip_average,
    k_reciprocal_order,
    weighted_mean,
)
from models import Backbone
from models.base import l2_normalize

# Variants a single-backbone search can run; fusion needs several backbones' indexes at once.
IN_SEARCH = ("adapter-lda", "tta-flip", "aqe", "dba", "k-reciprocal")
FORMAT = "dermsearch-variant"
_STORED = ("vectors.npy", "index.usearch", "adapter.npz", "neighbours.npy")


def variant_folder(index_dir: Path) -> Path:
    """Where the fitted variants of the index in ``index_dir`` are kept: beside it."""
    index_dir = Path(index_dir)
    return index_dir.parent / f"{index_dir.name}--variants"


def parse_search_variant(name: object) -> str | None:
    """A variant a search can use, or None for the plain search; an unknown name gets a
    sentence listing the valid ones."""
    text = str(name or "").strip().lower()
    if text in ("", "none", "plain"):
        return None
    if text not in IN_SEARCH:
        valid = ", ".join(IN_SEARCH)
        raise ValueError(
            f"A search can use one of these retrieval variants: {valid}; not {name!r}."
        )
    return text


def applies(name: str, *, n_labels: int) -> str | None:
    """Why ``name`` cannot run on a library with ``n_labels`` diagnoses (None when it can)."""
    if name == "adapter-lda" and n_labels < 2:
        return "it learns from diagnoses, and this library has only one."
    return None


@dataclass
class VariantIndex:
    """The library in a variant's space, searchable as an index (``data_index.search``)."""

    index: Index
    cases: pd.DataFrame
    raw: np.ndarray  # unit vectors in the variant's space, cases order
    base_table: CaseTable

    @property
    def dim(self) -> int:
        return int(self.raw.shape[1])

    @property
    def exact(self) -> bool:
        return len(self) <= EXACT_SEARCH_MAX_CASES

    @property
    def dtype(self) -> str:
        return "f32"  # a variant's vectors are few and small: kept exact

    @property
    def table(self) -> CaseTable:
        return self.base_table

    def __len__(self) -> int:
        return len(self.cases)

    def row_positions(self, keys: list[int] | np.ndarray) -> np.ndarray:
        row_of = self.table.row_of
        wanted = np.asarray(keys, dtype=np.int64).tolist()
        return np.fromiter((row_of.get(k, -1) for k in wanted), dtype=np.intp, count=len(wanted))


def _searchable(base: CaseIndex, vectors: np.ndarray, index: Index | None = None) -> VariantIndex:
    if index is None:
        index = new_usearch_index(int(vectors.shape[1]), "f32")
        index.add(base.table.keys.astype(np.uint64), np.ascontiguousarray(vectors, np.float32))
    return VariantIndex(index=index, cases=base.cases, raw=vectors, base_table=base.table)


@dataclass
class PreparedVariant:
    """One variant ready to search one index: its library side, loaded or fitted now."""

    name: str
    base: CaseIndex
    library: VariantIndex | None  # None where the library side is the plain one (aqe, k-reciprocal)
    blocked: np.ndarray  # one id per row: rows sharing it are one case or copies of one photo
    adapter: LdaAdapter | None = None
    neighbours: np.ndarray | None = None  # dba: rows each library vector was blended with
    folder: Path | None = None
    fitted_now: bool = False
    announced: bool = False  # whether a user was told it was fitted now

    @property
    def params(self) -> dict:
        return dict(VARIANTS[self.name].params)

    def query_vector(
        self, unit: np.ndarray, *, mirrored: np.ndarray | None = None, row: int | None = None
    ) -> np.ndarray:
        """The query in the variant's space, from its plain unit vector (and, for tta-flip,
        its mirror image's, or the library row it is)."""
        unit = l2_normalize(np.asarray(unit, np.float32).reshape(1, -1))[0]
        if self.name == "adapter-lda":
            return self.adapter.project(unit[None])[0]
        if self.name == "tta-flip":
            if row is not None:
                return self.library.raw[row]
            if mirrored is None:
                raise ValueError("This variant needs the query photo itself, not only a vector.")
            mirrored = l2_normalize(np.asarray(mirrored, np.float32).reshape(1, -1))[0]
            return flip_average(unit[None], mirrored[None])[0]
        return unit

    def search(
        self,
        unit: np.ndarray,
        *,
        k: int,
        exclude_case_ids: Iterable[str] = (),
        mirrored: np.ndarray | None = None,
        row: int | None = None,
    ) -> list[Hit]:
        """The ``k`` nearest cases under this variant, the given cases left out of the results
        and of everything the variant blends in (as in the leave-one-case-out evaluation)."""
        table = self.base.table
        banned = table.excluded_keys(exclude_case_ids)
        q = self.query_vector(unit, mirrored=mirrored, row=row)
        if self.name == "aqe":
            return table.hits(self._aqe(q, k=k, banned=banned))
        if self.name == "dba":
            return table.hits(self._dba(q, k=k, banned=banned))
        if self.name == "k-reciprocal":
            return table.hits(self._k_reciprocal(q, k=k, banned=banned))
        return table.hits(cosine_top(self.library, q, k=k, excluded=banned))

    def _aqe(self, q: np.ndarray, *, k: int, banned: set[int]) -> list[tuple[int, float]]:
        expand, alpha = int(self.params["k"]), float(self.params["alpha"])
        first = cosine_top(self.base, q, k=expand, excluded=banned)
        if not first:
            return []
        rows = self.base.row_positions([key for key, _ in first])
        sims = np.array([[s for _, s in first]], np.float32)
        unit = self.base.vectors()
        expanded = weighted_mean(q[None], unit[rows][None], sims, alpha=alpha)[0]
        return cosine_top(self.base, expanded, k=k, excluded=banned)

    def _k_reciprocal(self, q: np.ndarray, *, k: int, banned: set[int]) -> list[tuple[int, float]]:
        """The shortlist of nearest allowed cases, re-ranked among themselves; the score is one
        minus the re-ranking distance. Left-out cases are never in the shortlist, so they are
        in no neighbourhood either."""
        first = cosine_top(self.base, q, k=max(k, int(self.params["shortlist"])), excluded=banned)
        if not first:
            return []
        keys = np.array([key for key, _ in first], np.int64)
        rows = self.base.row_positions(keys)
        order, dist = k_reciprocal_order(q, l2_normalize(self.base.raw[rows]), params=self.params)
        return list(zip(keys[order[:k]].tolist(), (1.0 - dist[:k]).tolist(), strict=True))

    def _dba(self, q: np.ndarray, *, k: int, banned: set[int]) -> list[tuple[int, float]]:
        """Rows whose blend used a left-out case are blended again without it, then scored."""
        if not banned:
            return cosine_top(self.library, q, k=k, excluded=banned)
        keys = self.base.table.keys
        banned_rows = self.base.row_positions(sorted(banned))
        is_banned = np.zeros(len(keys), bool)
        is_banned[banned_rows] = True
        touched = np.flatnonzero(is_banned[self.neighbours].any(axis=1) & ~is_banned)
        pairs = cosine_top(self.library, q, k=k, excluded=banned | set(keys[touched].tolist()))
        if touched.size:
            again = _dba_blend(
                self.base.vectors(),
                self.blocked,
                touched,
                expand=int(self.params["k"]),
                alpha=float(self.params["alpha"]),
                banned=is_banned,
            )
            pairs += list(zip(keys[touched].tolist(), (again @ q).tolist(), strict=True))
            pairs.sort(key=lambda p: -p[1])
        return pairs[:k]


def _dba_blend(
    unit: np.ndarray,
    blocked: np.ndarray,
    rows: np.ndarray,
    *,
    expand: int,
    alpha: float,
    banned: np.ndarray,
) -> np.ndarray:
    """DBA vectors of ``rows`` with their own case and the ``banned`` rows out of reach."""
    sims = unit[rows] @ unit.T
    key = -sims.astype(np.float64)
    key[blocked[rows][:, None] == blocked[None, :]] = np.inf
    key[:, banned] = np.inf
    cand = np.argsort(key, axis=1, kind="stable")[:, :expand]
    near = np.take_along_axis(sims, cand, axis=1)
    return weighted_mean(unit[rows], unit[cand], near, alpha=alpha)


def prepare_beside(
    where: str | Path,
    base: CaseIndex,
    *,
    name: str,
    backbone: Backbone,
    group_ids: np.ndarray | None = None,
) -> PreparedVariant:
    """``prepare_variant`` for the index opened from ``where``, kept beside it; a bundle's
    fits go beside the cache's index of that library instead, so a shared bundle folder is
    never written to."""
    home = Path(where)
    if is_bundle(where):
        library_name = base.manifest.get("library", {}).get("name") or home.name
        home = default_index_dir(library_name, base.key)
    return prepare_variant(
        base,
        name,
        folder=variant_folder(home),
        group_ids=group_ids,
        mirrored_library=mirrored_library(backbone, base),
    )


def prepare_for_library(
    base: CaseIndex,
    *,
    library_name: str,
    name: str,
    backbone: Backbone,
    group_ids: np.ndarray | None = None,
) -> PreparedVariant:
    """``prepare_variant`` for the cache's index of a library (the app's tabs and the Compare
    command line), its fits kept beside that index."""
    return prepare_variant(
        base,
        name,
        folder=variant_folder(default_index_dir(library_name, base.key)),
        group_ids=group_ids,
        mirrored_library=mirrored_library(backbone, base),
    )


def mirrored_library(
    backbone: Backbone, base: CaseIndex, *, cache_dir: Path | None = None
) -> Callable[[], np.ndarray]:
    """Embeds the mirror image of every library photo (cached as ``<backbone>@mirrored``, as
    the evaluation caches them), in ``base.cases`` order; for tta-flip's fit."""
    return lambda: embed_transformed(
        backbone,
        paths=base.cases["path"].astype(str).tolist(),
        sha1s=base.cases["sha1"].astype(str).tolist(),
        tag="mirrored",
        transform=mirrored,
        cache_dir=cache_dir,
    )


def mirrored_query(backbone: Backbone, image) -> np.ndarray:
    """The query photo's mirror image, embedded (tta-flip's second forward pass)."""
    return backbone.encode_images([mirrored(image)], normalize=True)[0]


def _blocks(case_ids: np.ndarray, group_ids: np.ndarray | None) -> np.ndarray:
    """One id per row joining a case and the copies of its photos (when audited)."""
    if group_ids is None:
        return np.unique(case_ids, return_inverse=True)[1].reshape(-1).astype(np.int64)
    return case_or_copy_groups(group_ids=np.asarray(group_ids), case_ids=case_ids)


def _content(base: CaseIndex, blocked: np.ndarray) -> str:
    """What a fitted variant depends on: keys, diagnoses, copy groups and vectors."""
    h = hashlib.sha1()
    h.update(base.table.keys.tobytes())
    h.update("\0".join(base.table.label).encode())
    h.update(np.unique(blocked, return_inverse=True)[1].astype(np.int64).tobytes())
    h.update(np.ascontiguousarray(base.raw, np.float32).tobytes())
    return h.hexdigest()


def _fit(
    name: str,
    base: CaseIndex,
    blocked: np.ndarray,
    mirrored_library: Callable[[], np.ndarray] | None,
) -> dict[str, np.ndarray]:
    """The arrays a variant keeps for this library."""
    unit = base.vectors()
    params = VARIANTS[name].params
    if name == "adapter-lda":
        try:
            adapter = fit_lda(unit, np.asarray(base.table.label))
        except np.linalg.LinAlgError as err:
            raise ValueError(
                f"{VARIANTS[name].title} could not be fitted on this library: it has too few "
                "photos per diagnosis to tell them apart. Add photos or switch the variant off."
            ) from err
        return {"mean": adapter.mean, "matrix": adapter.matrix, "vectors": adapter.project(unit)}
    if name == "tta-flip":
        if mirrored_library is None:
            raise ValueError("This variant needs the library's photos to embed their mirror image.")
        return {"vectors": flip_average(unit, mirrored_library())}
    if name == "dba":
        expand = int(params["k"])
        rows, _ = loo_neighbours(unit, k=expand, case_ids=blocked)
        near = np.einsum("nd,nkd->nk", unit, unit[rows])
        blended = weighted_mean(unit, unit[rows], near, alpha=float(params["alpha"]))
        return {"vectors": blended, "neighbours": rows}
    return {}


def _write(folder: Path, arrays: dict[str, np.ndarray], manifest: dict) -> None:
    staging = folder.parent / f".staging-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        if "vectors" in arrays:
            np.save(staging / "vectors.npy", arrays["vectors"].astype(np.float32))
            index = new_usearch_index(int(arrays["vectors"].shape[1]), "f32")
            index.add(manifest["keys"], np.ascontiguousarray(arrays["vectors"], np.float32))
            index.save(str(staging / "index.usearch"))
        if "matrix" in arrays:
            np.savez(staging / "adapter.npz", mean=arrays["mean"], matrix=arrays["matrix"])
        if "neighbours" in arrays:
            np.save(staging / "neighbours.npy", arrays["neighbours"].astype(np.int64))
        files = {n: sha256_file(staging / n) for n in _STORED if (staging / n).is_file()}
        stored = {**manifest, "keys": len(manifest["keys"]), "files": files}
        (staging / "manifest.json").write_text(json.dumps(stored, indent=2, sort_keys=True))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)  # stale or damaged: replaced whole
        os.rename(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _read(folder: Path, *, expect: dict) -> dict[str, np.ndarray] | None:
    """The stored arrays when ``folder`` holds this very fit, intact; else None."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if any(manifest.get(key) != value for key, value in expect.items()):
        return None
    out: dict[str, np.ndarray] = {}
    for name, digest in manifest.get("files", {}).items():
        if not (folder / name).is_file() or sha256_file(folder / name) != digest:
            return None
    if (folder / "vectors.npy").is_file():
        out["vectors"] = np.load(folder / "vectors.npy", allow_pickle=False)
    if (folder / "adapter.npz").is_file():
        with np.load(folder / "adapter.npz", allow_pickle=False) as saved:
            out["mean"], out["matrix"] = saved["mean"], saved["matrix"]
    if (folder / "neighbours.npy").is_file():
        out["neighbours"] = np.load(folder / "neighbours.npy", allow_pickle=False)
    return out


def prepare_variant(
    base: CaseIndex,
    name: str,
    *,
    folder: Path | None,
    group_ids: np.ndarray | None = None,
    mirrored_library: Callable[[], np.ndarray] | None = None,
) -> PreparedVariant:
    """``name`` ready to search ``base``: loaded from ``folder`` (see ``variant_folder``) when
    it was fitted on this very library and backbone, else fitted and saved there.
    ``mirrored_library`` embeds the library's mirror images (tta-flip), called only to fit."""
    name = parse_search_variant(name)
    if name is None:
        raise ValueError("Name a retrieval variant to prepare.")
    why_not = applies(name, n_labels=len(set(base.table.label)))
    if why_not:
        raise ValueError(f"{VARIANTS[name].title} cannot run here: {why_not}")
    blocked = _blocks(base.cases["case_id"].astype(str).to_numpy(), group_ids)
    if name in ("aqe", "k-reciprocal"):  # nothing fitted: the query side works on the plain index
        return PreparedVariant(name, base, None, blocked)
    fingerprint = base.fingerprint[:16] or "unnamed"
    expect = {
        "format": FORMAT,
        "variant": name,
        "params": dict(VARIANTS[name].params),
        "backbone_key": base.key,
        "weights_origin": base.weights_origin,
        "library_fingerprint": base.fingerprint,
        "content": _content(base, blocked),
    }
    place = Path(folder) / name / fingerprint if folder is not None else None
    arrays = _read(place, expect=expect) if place is not None else None
    fitted_now = arrays is None
    if arrays is None:
        arrays = _fit(name, base, blocked, mirrored_library)
        if place is not None:
            created = datetime.now(UTC).isoformat(timespec="seconds")
            keys = base.table.keys.astype(np.uint64)
            _write(place, arrays, {**expect, "keys": keys, "created": created, "n": len(base)})
            for other in place.parent.iterdir():  # fits of earlier versions of the library
                if other.is_dir() and other.name != place.name and not other.name.startswith("."):
                    shutil.rmtree(other, ignore_errors=True)
    index = None
    if place is not None and (place / "index.usearch").is_file():  # searched from its file
        index = new_usearch_index(int(arrays["vectors"].shape[1]), "f32")
        index.load(str(place / "index.usearch"))
    library = _searchable(base, arrays["vectors"], index)
    adapter = (
        LdaAdapter(mean=arrays["mean"], matrix=arrays["matrix"]) if "matrix" in arrays else None
    )
    return PreparedVariant(
        name,
        base,
        library,
        blocked,
        adapter=adapter,
        neighbours=arrays.get("neighbours"),
        folder=place,
        fitted_now=fitted_now,
    )
