"""Process-wide caches of loaded backbones, libraries and indexes, safe under concurrent handlers.

Gradio runs event handlers in a thread pool, so two browsers may ask for the same backbone or
index at once: each cache entry has its own lock, so the second caller waits for the first
load instead of doing it again, while unrelated loads go ahead in parallel.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from data_index import CaseIndex, CaseLibrary, IndexMismatch, default_index_dir
from data_index.bundle import bundle_index_dir, is_bundle
from data_index.variant_search import PreparedVariant, prepare_for_library
from demo.catalog import LibraryCatalog
from models import Backbone, availability, get_spec, load_backbone

# progress(fraction 0..1, message): the shape gr.Progress takes, and easy to print in tests.
Progress = Callable[[float, str], None]


class Cancelled(RuntimeError):
    """The user pressed Cancel; raised from a progress callback to stop long work."""


def time_left(seconds: float) -> str:
    """'about 40 s left', 'about 3 min left': an estimate, so rounded."""
    if seconds < 60:
        return f"about {max(5, 5 * round(seconds / 5)):.0f} s left"
    return f"about {round(seconds / 60):.0f} min left"


def build_progress(
    progress: Progress, *, backbone_name: str, clock: Callable[[], float] = time.monotonic
) -> Callable[[int, int], None]:
    """An index build's ``(done, total)`` as one line with the count and the time left.

    The rate is measured from the first report: images already in the embedding cache (a
    build resumed after a cancel) are counted as done but do not make the estimate optimistic.
    """
    first: list[tuple[float, int]] = []
    head = f"Building this library's index once for {backbone_name}"

    def step(done: int, total: int) -> None:
        now = clock()
        if not first:
            first.append((now, done))
        started, done_then = first[0]
        count = f"{done} / {total} images"
        if done >= total:
            tail = "saving the index"
        elif done > done_then and now > started:
            tail = time_left((total - done) * (now - started) / (done - done_then))
        else:
            tail = "estimating the time left"
        progress(done / max(total, 1), f"{head}: {count}, {tail}")

    return step


@dataclass(frozen=True)
class IndexStatus:
    """Whether an index of (library, backbone) exists and matches the library's current files."""

    state: str  # "ready" | "stale" | "missing" | "broken"
    count: int
    created: str
    detail: str


def index_dir(library: CaseLibrary, backbone_key: str) -> Path:
    """The one place the app keeps the index of a library under a backbone (the CLI's default);
    a bundle's own index when the library is a bundle that has one for this backbone."""
    if is_bundle(library.root):
        folder = bundle_index_dir(library.root, backbone_key)
        if folder is not None:
            return folder
    return default_index_dir(library.name, backbone_key)


class AppState:
    """Lazily loaded, shared objects. ``num_workers`` 0 embeds in the handler's thread: forking
    decoder processes from a threaded web server risks deadlocks for little gain on small CPUs.

    Libraries are named by ``catalog`` ids (the app's catalog accepts nothing else); without a
    catalog, as in scripts and tests, a path names a library too.
    """

    def __init__(
        self,
        *,
        num_workers: int = 0,
        device: str | None = None,
        catalog: LibraryCatalog | None = None,
        runtime: str = "torch",
    ) -> None:
        self.num_workers = num_workers
        self.device = device
        self.runtime = runtime
        self.catalog = catalog or LibraryCatalog.permissive()
        self.catalog.on_forget.append(self.forget_library)
        self._guard = threading.Lock()
        self._locks: dict[tuple, threading.Lock] = {}
        self._backbones: dict[str, Backbone] = {}
        self._libraries: dict[str, CaseLibrary] = {}
        self._indexes: dict[tuple[str, str], CaseIndex] = {}
        self._memo: dict[tuple, object] = {}

    def _lock(self, *key: object) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    # --- backbones -------------------------------------------------------------------------
    def backbone(self, key: str) -> Backbone:
        """Load a backbone once (raises UnknownBackbone / WeightsUnavailable with a sentence)."""
        spec = get_spec(key)
        with self._lock("backbone", spec.key):
            if spec.key not in self._backbones:
                self._backbones[spec.key] = load_backbone(
                    spec.key, device=self.device, runtime=self.runtime
                )
            return self._backbones[spec.key]

    def loaded_backbones(self) -> list[str]:
        return sorted(self._backbones)

    @staticmethod
    def runnable(key: str) -> bool:
        return availability(get_spec(key)).ready

    # --- libraries -------------------------------------------------------------------------
    def resolve(self, ref: str | None) -> str:
        """The server path of a library id (or display name; a path without a strict catalog)."""
        return self.catalog.resolve(ref)

    def library(self, path: str, *, reload: bool = False) -> CaseLibrary:
        """Load (and validate) a library once; ``reload`` re-reads its files from disk."""
        resolved = self.resolve(path)
        with self._lock("library", resolved):
            if reload or resolved not in self._libraries:
                entry = self.catalog.entry(str(path).strip())
                name = entry.id if entry is not None and entry.owner is not None else None
                library = CaseLibrary.load(resolved, name=name)
                if len(library) == 0:
                    raise ValueError(
                        f"The library {library.name} has no usable images "
                        f"({library.report.images_found} found): see its validation report on "
                        "the Library tab."
                    )
                self._libraries[resolved] = library
                with self._guard:  # a reloaded library may differ: its indexes are re-checked
                    for k in [k for k in self._indexes if k[0] == resolved]:
                        del self._indexes[k]
            return self._libraries[resolved]

    # --- indexes ---------------------------------------------------------------------------
    def index_status(self, library_path: str, backbone_key: str) -> IndexStatus:
        """Cheap check of the saved index (manifest only, nothing embedded)."""
        library = self.library(library_path)
        folder = index_dir(library, backbone_key)
        if not folder.exists():
            return IndexStatus("missing", 0, "", "not built yet")
        try:
            idx = CaseIndex.load(folder, backbone_key=backbone_key)
        except (IndexMismatch, ValueError, OSError) as err:
            return IndexStatus("broken", 0, "", str(err))
        created = str(idx.manifest.get("created", ""))
        if idx.manifest.get("library", {}).get("fingerprint") != library.fingerprint:
            return IndexStatus("stale", len(idx), created, "the library changed since the build")
        return IndexStatus("ready", len(idx), created, f"{len(idx)} cases")

    def index_ready(self, library_path: str, backbone_key: str) -> IndexStatus:
        """The index's status, answered from memory when this process already holds it."""
        library = self.library(library_path)
        cached = self._indexes.get((self.resolve(library_path), get_spec(backbone_key).key))
        if cached is not None and cached.fingerprint == library.fingerprint:
            return IndexStatus("ready", len(cached), "", f"{len(cached)} cases")
        return self.index_status(library_path, backbone_key)

    def index(
        self,
        library_path: str,
        backbone_key: str,
        *,
        progress: Progress | None = None,
        update: bool = True,
    ) -> CaseIndex:
        """The index of a library under a backbone, loaded from disk, updated when the library
        changed (only new images are embedded) or built when missing, and cached.

        With ``update`` False a missing or stale index raises ValueError instead.
        """
        library = self.library(library_path)
        resolved = self.resolve(library_path)
        spec = get_spec(backbone_key)
        cache_key = (resolved, spec.key)
        lock = self._lock("index", *cache_key)
        # One build per index: a second search for it waits for the first and reuses its result.
        if not lock.acquire(blocking=False):
            if progress is not None:
                progress(
                    0.0,
                    f"Another search is building this library's index for {spec.name}; it is "
                    "built only once, so this search waits for it",
                )
            lock.acquire()
        try:
            cached = self._indexes.get(cache_key)
            if cached is not None and cached.fingerprint == library.fingerprint:
                return cached
            backbone = self.backbone(spec.key)
            idx = self._load_or_build(library, backbone, progress=progress, update=update)
            self._indexes[cache_key] = idx
            return idx
        finally:
            lock.release()

    def _load_or_build(
        self, library: CaseLibrary, backbone: Backbone, *, progress: Progress | None, update: bool
    ) -> CaseIndex:
        folder = index_dir(library, backbone.key)
        step = None
        if progress is not None:
            step = build_progress(progress, backbone_name=backbone.spec.name)

        idx = None
        if is_bundle(library.root) and folder.is_relative_to(library.root):
            # A bundle's index is read as it is, never rebuilt over: a mismatch is refused.
            try:
                bundle_index_dir(
                    library.root,
                    backbone.key,
                    dim=backbone.dim,
                    weights_origin=backbone.weights_origin,
                )
                bundled = CaseIndex.load(
                    folder, backbone_key=backbone.key, weights_origin=backbone.weights_origin
                )
            except IndexMismatch as err:
                raise ValueError(str(err)) from err
            if bundled.fingerprint != library.fingerprint:
                raise ValueError(
                    f"The files of the bundle {library.name} changed since it was exported: "
                    "export it again."
                )
            return bundled
        if folder.exists():
            try:
                idx = CaseIndex.load(
                    folder, backbone_key=backbone.key, weights_origin=backbone.weights_origin
                )
            except (IndexMismatch, ValueError, OSError):
                idx = None  # unreadable or from other weights: rebuilt below from cached vectors
        if idx is not None and idx.fingerprint == library.fingerprint:
            return idx
        if not update:
            state = "out of date" if idx is not None else "not built"
            raise ValueError(
                f"The index of {library.name} under {backbone.key} is {state}: build it on the "
                "Library tab."
            )
        if idx is None:
            return CaseIndex.build(
                library, backbone, out_dir=folder, num_workers=self.num_workers, progress=step
            )
        idx.sync(library, backbone, num_workers=self.num_workers, progress=step)
        idx.save(folder)
        return idx

    def variant(
        self, library_path: str, backbone_key: str, name: str, *, groups=None
    ) -> PreparedVariant:
        """A retrieval variant ready to search the index of a library under a backbone: its
        fitted files beside the index are loaded, or fitted and saved when the library changed
        (``data_index.variant_search``); kept in memory per index version."""
        library = self.library(library_path)
        idx = self.index(library_path, backbone_key)
        key = ("variant", self.resolve(library_path), idx.key, name, library.fingerprint,
               len(idx), id(idx), groups is not None)  # fmt: skip
        return self.memo(
            key,
            lambda: prepare_for_library(
                idx,
                library_name=library.name,
                name=name,
                backbone=self.backbone(idx.key),
                group_ids=groups,
            ),
        )

    def forget_indexes(self, library_path: str) -> None:
        """Drop cached indexes of a library (after its files changed on disk)."""
        resolved = self.resolve(library_path)
        with self._guard:
            for k in [k for k in self._indexes if k[0] == resolved]:
                del self._indexes[k]

    # --- other derived results -------------------------------------------------------------
    def adopt(self, ref: str, library: CaseLibrary) -> None:
        """Cache a library just loaded elsewhere (a validated upload) under its catalog id."""
        resolved = self.resolve(ref)
        with self._lock("library", resolved):
            self._libraries[resolved] = library

    def forget_library(self, library_path: str) -> None:
        """Drop a deleted library and its indexes from memory."""
        with self._guard:
            self._libraries.pop(library_path, None)
            for k in [k for k in self._indexes if k[0] == library_path]:
                del self._indexes[k]

    def memo(self, key: tuple, compute: Callable[[], object]) -> object:
        """Compute a derived result once per key (e.g. the t-SNE map of an index)."""
        with self._lock("memo", *key):
            if key not in self._memo:
                self._memo[key] = compute()
            return self._memo[key]
