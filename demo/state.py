"""Process-wide caches of loaded backbones, libraries and indexes, safe under concurrent handlers.

Gradio runs event handlers in a thread pool, so two browsers may ask for the same backbone or
index at once: each cache entry has its own lock, so the second caller waits for the first
load instead of doing it again, while unrelated loads go ahead in parallel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from data_index import CaseIndex, CaseLibrary, IndexMismatch, default_index_dir
from data_index.bundle import bundle_index_dir, is_bundle
from demo.catalog import LibraryCatalog
from models import Backbone, availability, get_spec, load_backbone

# progress(fraction 0..1, message): the shape gr.Progress takes, and easy to print in tests.
Progress = Callable[[float, str], None]


class Cancelled(RuntimeError):
    """The user pressed Cancel; raised from a progress callback to stop long work."""


class CancelFlags:
    """Cancel flags of the work each browser session has running. Gradio's own cancel only
    stops the wait; the work looks at its flag between steps and stops itself.

    A session's flag exists only while it has work running, so the table stays as small as
    the work in flight however many visitors come and go; a Cancel with nothing running is a
    no-op, and the next run starts with a fresh flag.
    """

    def __init__(self) -> None:
        self._running: dict[str, tuple[threading.Event, int]] = {}
        self._guard = threading.Lock()

    @contextmanager
    def running(self, session: str) -> Iterator[threading.Event]:
        with self._guard:
            flag, count = self._running.get(session, (threading.Event(), 0))
            self._running[session] = (flag, count + 1)
        try:
            yield flag
        finally:
            with self._guard:
                flag, count = self._running[session]
                if count > 1:
                    self._running[session] = (flag, count - 1)
                else:
                    del self._running[session]

    def cancel(self, session: str) -> bool:
        """Set the flag of the session's running work; False when it has none."""
        with self._guard:
            entry = self._running.get(session)
        if entry is not None:
            entry[0].set()
        return entry is not None

    def __len__(self) -> int:
        return len(self._running)


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
        with self._lock("index", *cache_key):
            cached = self._indexes.get(cache_key)
            if cached is not None and cached.fingerprint == library.fingerprint:
                return cached
            backbone = self.backbone(spec.key)
            idx = self._load_or_build(library, backbone, progress=progress, update=update)
            self._indexes[cache_key] = idx
            return idx

    def _load_or_build(
        self, library: CaseLibrary, backbone: Backbone, *, progress: Progress | None, update: bool
    ) -> CaseIndex:
        folder = index_dir(library, backbone.key)

        def step(done: int, total: int) -> None:
            if progress is not None:
                progress(done / max(total, 1), f"embedding {done}/{total} images")

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
