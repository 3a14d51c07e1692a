"""Cancelling an upload stops the work itself, not only the wait for it.

A Cancel click sets the session's flag from another thread while files are being checked;
here the flag is set by the file check itself once N files have been read (a real
``threading.Event``, set at a known point), so how much work follows the cancel is counted
exactly, never timed.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from library_factory import make_folder_library, zip_tree

import data_index.validation as validation
import demo.handlers_library as hl
from data_index.archive import extract_zip
from data_index.validation import ValidationCancelled, check_files
from demo.catalog import LibraryCatalog
from demo.state import AppState, Cancelled
from demo.stopping import StopFlags

WORKERS = 8  # check_files' thread pool, at most


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DERMSEARCH_SHARED", str(tmp_path / "no-shared"))
    monkeypatch.setenv("DERMSEARCH_LIBRARIES", "")
    return tmp_path / "cache"


def cancel_after(monkeypatch, n: int) -> tuple[threading.Event, list[Path]]:
    """A flag set once ``n`` files have been checked, and the list of every file checked."""
    flag, seen, lock = threading.Event(), [], threading.Lock()
    real = validation.check_file

    def counted(path, **kwargs):
        result = real(path, **kwargs)
        with lock:
            seen.append(path)
            if len(seen) == n:
                flag.set()
        return result

    monkeypatch.setattr(validation, "check_file", counted)
    return flag, seen


def test_check_files_stops_within_the_files_in_flight(tmp_path, monkeypatch):
    lib = make_folder_library(tmp_path / "lib", per_class=150)  # 600 files
    paths = sorted(lib.rglob("*.jpg"))
    flag, seen = cancel_after(monkeypatch, 40)
    with pytest.raises(ValidationCancelled):
        check_files(paths, cancel=flag)
    # Files already being read when the flag was set finish; no other file is opened.
    assert 40 <= len(seen) < 40 + WORKERS
    # Without a flag every file is checked.
    assert len(check_files(paths)) == len(paths)


def test_a_cancelled_extraction_leaves_no_staging(tmp_path):
    src = make_folder_library(tmp_path / "src", per_class=5)
    archive = zip_tree(src, tmp_path / "lib.zip")
    flag = threading.Event()
    flag.set()
    with pytest.raises(ValidationCancelled):
        extract_zip(archive, dest_root=tmp_path / "out", cancel=flag)
    assert list((tmp_path / "out").iterdir()) == []


def _catalog_state(cache: Path, tmp_path: Path) -> AppState:
    startup = make_folder_library(tmp_path / "clinic", per_class=2)
    catalog = LibraryCatalog(startup=[str(startup)], upload_ttl_s=600)
    return AppState(catalog=catalog)


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.mark.parametrize("at", ["while checking", "after the last check"])
def test_a_cancelled_upload_stops_and_leaves_nothing_but_what_was_there(
    cache, tmp_path, monkeypatch, at
):
    state = _catalog_state(cache, tmp_path)
    first_zip = zip_tree(make_folder_library(tmp_path / "first", per_class=2), tmp_path / "a.zip")
    kept_id, _ = hl.upload_library(state, str(first_zip), name="kept", owner="visitor")
    kept_files = _files_under(cache / "uploads")
    choices = state.catalog.choices(owned=[kept_id])

    big = zip_tree(make_folder_library(tmp_path / "big", per_class=150), tmp_path / "big.zip")
    if at == "while checking":
        flag, seen = cancel_after(monkeypatch, 30)
        progress = None
    else:  # the flag arrives as the last file's progress is reported
        flag, seen = threading.Event(), []

        def progress(fraction: float, _message: str) -> None:
            if fraction >= 1.0:
                flag.set()

    with pytest.raises(Cancelled, match="cancelled: nothing was added"):
        hl.upload_library(
            state, str(big), name="big", owner="visitor", cancel=flag, progress=progress
        )
    if at == "while checking":
        assert len(seen) < 30 + WORKERS  # of 600 files
    # Nothing half-written: no staging, no extraction, no new entry; the earlier upload stays.
    assert _files_under(cache / "uploads") == kept_files
    assert not [p for p in (cache / "uploads").rglob(".*") if p.name.startswith(".incoming")]
    assert state.catalog.choices(owned=[kept_id]) == choices
    assert len(state.library(kept_id)) == 8


def test_an_uploaded_library_reads_from_where_it_is_kept(cache, tmp_path):
    """Validated once in staging, then moved: its paths and fingerprint are those a fresh load
    of the kept files gives."""
    state = _catalog_state(cache, tmp_path)
    archive = zip_tree(make_folder_library(tmp_path / "src", per_class=3), tmp_path / "c.zip")
    ident, _ = hl.upload_library(state, str(archive), name="clinic two", owner="visitor")
    library = state.library(ident)
    assert all(Path(p).is_file() for p in library.cases["path"])
    assert ".incoming" not in " ".join(library.cases["path"])
    fresh = type(library).load(state.resolve(ident))
    assert library.fingerprint == fresh.fingerprint
    assert library.root == fresh.root and library.name == ident


def test_stop_flags_exist_only_while_work_runs():
    flags = StopFlags()
    assert flags.stop("a", "upload") is False  # nothing running: a no-op
    first = flags.start("a", "upload")
    assert flags.stop("a", "upload") is True and first.is_set()
    flags.finish("a", "upload")
    assert len(flags) == 0  # no flag outlives its run
    fresh = flags.start("a", "upload")
    assert not fresh.is_set()  # the next run starts clean
    flags.finish("a", "upload")
    assert len(flags) == 0
