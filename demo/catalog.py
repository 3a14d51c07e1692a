"""The libraries the app offers, named by id, and the private libraries of each session.

The browser and the API only ever see an id and a display name; the server path stays here.
Libraries found at start-up (the start-up library, ``DERMSEARCH_LIBRARIES``, the shared
datasets) are offered to everyone. A library uploaded in the browser belongs to the session
that uploaded it: its id carries a random token that only that session is told, it is kept in
a folder of its own, and it is deleted when the session ends or its time is up. With
``shared_uploads`` (a private deployment) uploads are kept for everyone, as before.
"""

from __future__ import annotations

import secrets
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from data_index import cache_root
from data_index.locations import slug
from demo.arguments import text_argument
from demo.config import library_choices, library_display_name, uploads_dir

DEFAULT_UPLOAD_TTL_S = 3600.0


@dataclass(frozen=True)
class LibraryEntry:
    """One offered library. ``owner`` is the session hash of a private upload, else None."""

    id: str
    name: str
    origin: str
    path: str
    owner: str | None = None
    created: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.name} ({self.origin})"


def sessions_dir() -> Path:
    """Private uploads, one folder per upload; nothing here outlives the server process."""
    return uploads_dir() / "sessions"


class LibraryCatalog:
    """Ids to paths for every library the app offers, safe under concurrent handlers.

    ``strict`` False (scripts and tests that hold their own paths) also accepts a path to any
    library on disk; the app is always strict: only ids and display names resolve.
    """

    def __init__(
        self,
        *,
        startup: Sequence[str] = (),
        shared_uploads: bool = False,
        upload_ttl_s: float = DEFAULT_UPLOAD_TTL_S,
        strict: bool = True,
    ) -> None:
        self.shared_uploads = shared_uploads
        self.upload_ttl_s = upload_ttl_s
        self.strict = strict
        self._lock = threading.Lock()
        self._entries: dict[str, LibraryEntry] = {}
        self.on_forget: list[Callable[[str], None]] = []
        found = library_choices(extra=list(startup), include_uploads=shared_uploads)
        for label, path in found:
            origin = label.rsplit("(", 1)[-1].rstrip(")")
            self._add(library_display_name(path), origin, path)

    @classmethod
    def permissive(cls) -> LibraryCatalog:
        """A catalog for library code and tests: empty, and paths resolve as themselves."""
        catalog = cls.__new__(cls)
        catalog.shared_uploads, catalog.upload_ttl_s, catalog.strict = True, 0.0, False
        catalog._lock, catalog._entries, catalog.on_forget = threading.Lock(), {}, []
        return catalog

    def _add(self, name: str, origin: str, path: str, *, owner: str | None = None) -> LibraryEntry:
        base = slug(name)
        if owner is not None:
            ident = f"{base}-{secrets.token_urlsafe(12)}"
        else:
            ident, n = base, 2
            while ident in self._entries:
                ident, n = f"{base}-{n}", n + 1
        entry = LibraryEntry(ident, name, origin, str(Path(path).resolve()), owner, time.time())
        self._entries[ident] = entry
        return entry

    # --- what a session may see ----------------------------------------------------------------
    def choices(self, *, owned: Sequence[str] = ()) -> list[tuple[str, str]]:
        """(label, id) of every public library, then of the session's own uploads."""
        with self._lock:
            public = [(e.label, e.id) for e in self._entries.values() if e.owner is None]
            mine = [
                (self._entries[i].label, i)
                for i in owned
                if i in self._entries and self._entries[i].owner is not None
            ]
        return public + mine

    def public_ids(self) -> list[str]:
        with self._lock:
            return [e.id for e in self._entries.values() if e.owner is None]

    def public_roots(self) -> list[Path]:
        """Folders of the libraries offered to everyone (where an uploaded manifest may point)."""
        with self._lock:
            paths = [Path(e.path) for e in self._entries.values() if e.owner is None]
        return [p.parent if p.is_file() else p for p in paths]

    def resolve(self, ref: object) -> str:
        """The server path of a library named by id or display name, or a sentence."""
        if ref is not None and not isinstance(ref, str):
            text_argument(ref, name="library")  # raises: says what was sent instead of text
        if not isinstance(ref, str) or not ref.strip():
            raise ValueError(
                "No case library is selected: pick one on the Library tab, upload a zip of class "
                "folders there, or start the app with --library PATH."
            )
        text = ref.strip()
        with self._lock:
            if text in self._entries:
                return self._entries[text].path
            wanted = text.lower()
            public = [e for e in self._entries.values() if e.owner is None]
            named = [e for e in public if e.name.lower() == wanted or e.label.lower() == wanted]
            if len(named) == 1:
                return named[0].path
            known = [f"{e.id} ({e.name})" for e in public]
        if not self.strict:
            path = Path(text).expanduser()
            if path.exists():
                return str(path.resolve())
            raise ValueError(f"The library {path.name} does not exist.")
        offered = ", ".join(known) if known else "none yet: upload one on the Library tab"
        raise ValueError(
            "Unknown library: name one by its id or display name (server paths are not "
            f"accepted). Offered here: {offered}."
        )

    def id_of(self, path: str | Path) -> str | None:
        """The id of the public library at ``path``, if offered."""
        resolved = str(Path(path).resolve())
        with self._lock:
            return next(
                (e.id for e in self._entries.values() if e.path == resolved and e.owner is None),
                None,
            )

    def entry(self, ref: str) -> LibraryEntry | None:
        with self._lock:
            return self._entries.get(ref)

    # --- uploads -------------------------------------------------------------------------------
    def new_upload_folder(self) -> Path:
        """A fresh folder for one upload: private ones under ``sessions/``."""
        base = uploads_dir() if self.shared_uploads else sessions_dir()
        folder = base / secrets.token_hex(8) if not self.shared_uploads else base
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def add_upload(self, path: str | Path, *, name: str, owner: str | None) -> LibraryEntry:
        """Offer a validated upload: to everyone with ``shared_uploads``, else to ``owner``."""
        with self._lock:
            resolved = str(Path(path).resolve())
            for e in self._entries.values():
                if e.path == resolved and e.owner == (None if self.shared_uploads else owner):
                    return e
            if self.shared_uploads or owner is None:
                return self._add(name, "uploaded", resolved)
            return self._add(name, "uploaded, only you", resolved, owner=owner)

    def private_name(self, entry_id: str) -> str:
        """The library name a private upload is stored and indexed under: its id, so two
        sessions uploading the same file never share an index or an extraction."""
        return entry_id

    def forget(self, ids: Sequence[str]) -> int:
        """Delete private uploads by id: their files, extraction and indexes. Returns how many."""
        with self._lock:
            gone = [self._entries.pop(i) for i in ids if i in self._entries]
            gone = [e for e in gone if e.owner is not None]
        for entry in gone:
            for listener in self.on_forget:
                listener(entry.path)
            _delete_private_files(entry)
        return len(gone)

    def forget_session(self, owner: str | None) -> int:
        """Everything a session uploaded (its tab closed, or its time is up)."""
        if not owner:
            return 0
        with self._lock:
            ids = [e.id for e in self._entries.values() if e.owner == owner]
        return self.forget(ids)

    def sweep_expired(self, *, now: float | None = None) -> int:
        """Private uploads older than ``upload_ttl_s``."""
        now = time.time() if now is None else now
        with self._lock:
            ids = [
                e.id
                for e in self._entries.values()
                if e.owner is not None and now - e.created > self.upload_ttl_s
            ]
        return self.forget(ids)

    def start_sweeper(self, *, every_s: float = 60.0) -> threading.Thread:
        """A daemon thread that deletes expired private uploads every ``every_s`` seconds."""

        def loop() -> None:
            while True:
                time.sleep(every_s)
                self.sweep_expired()

        thread = threading.Thread(target=loop, name="upload-sweeper", daemon=True)
        thread.start()
        return thread


def _delete_private_files(entry: LibraryEntry) -> None:
    folder = sessions_dir()
    path = Path(entry.path)
    if path.is_relative_to(folder):
        # The upload's own folder: sessions/<token>/...
        top = folder / path.relative_to(folder).parts[0]
        shutil.rmtree(top, ignore_errors=True)
    for index in (cache_root() / "indexes").glob(f"{slug(entry.id)}--*"):
        shutil.rmtree(index, ignore_errors=True)


def clear_private_uploads() -> None:
    """At start-up: no session survives a restart, so neither do its uploads."""
    shutil.rmtree(sessions_dir(), ignore_errors=True)
