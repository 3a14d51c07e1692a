"""Safe extraction of a zipped case library into the cache (no path escapes, no links, limits)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import uuid
import zipfile
from pathlib import Path, PurePosixPath

import models.limits as limits
from data_index.locations import extracted_dir, slug
from data_index.validation import CancelFlag, stop_if_cancelled

# Defaults and their environment variables: models/limits.py. MAX_TOTAL_BYTES is also the
# disk quota of one extraction: real bytes written are counted against it.
MAX_FILES = limits.MAX_ZIP_FILES
MAX_TOTAL_BYTES = limits.MAX_ZIP_BYTES
MAX_FILE_BYTES = limits.MAX_ZIP_MEMBER_BYTES
# Photos barely compress (JPEG, PNG are compressed already) and even an uncompressed BMP stays
# far below this; Deflate reaches about 1000:1 only on repeated bytes, so any member past this
# ratio, small or large, is refused: many 1 MiB members of zeros are a bomb too.
MAX_RATIO = limits.MAX_ZIP_RATIO
# Members this small cannot hold a bomb, and their ratio is dominated by header bytes.
_RATIO_FLOOR = 64 * 1024
_CHUNK = 1 << 20
_DONE_MARKER = ".extracted"


class UnsafeArchive(ValueError):
    """A zip that would write outside its folder, holds links, or exceeds the size limits."""


def _member_parts(info: zipfile.ZipInfo) -> tuple[str, ...] | None:
    """The member's path components, ``None`` for entries to skip, or ``UnsafeArchive``."""
    name = info.filename.replace("\\", "/")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeArchive(f"The zip holds a symbolic link ({info.filename}); links are refused.")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"The zip holds an absolute path ({info.filename}); refusing it.")
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if ".." in parts:
        raise UnsafeArchive(f"The zip entry {info.filename} points outside the archive ('..').")
    if not parts or parts[0] == "__MACOSX" or parts[-1] == ".DS_Store":
        return None
    return parts


def _check_limits(infos: list[zipfile.ZipInfo]) -> None:
    files = [i for i in infos if not i.is_dir()]
    if len(files) > MAX_FILES:
        raise UnsafeArchive(f"The zip holds {len(files):,} files; the limit is {MAX_FILES:,}.")
    total = sum(i.file_size for i in files)
    if total > MAX_TOTAL_BYTES:
        raise UnsafeArchive(
            f"The zip would expand to {total / 1024**3:.1f} GiB; the limit is "
            f"{MAX_TOTAL_BYTES / 1024**3:.0f} GiB."
        )
    for i in files:
        if i.file_size > MAX_FILE_BYTES:
            raise UnsafeArchive(
                f"{i.filename} expands to {i.file_size / 1024**2:,.1f} MiB; the limit per file "
                f"is {MAX_FILE_BYTES / 1024**2:,.0f} MiB."
            )
        if i.file_size > _RATIO_FLOOR and i.file_size > MAX_RATIO * max(i.compress_size, 1):
            ratio = i.file_size // max(i.compress_size, 1)
            raise UnsafeArchive(
                f"{i.filename} has a compression ratio of {ratio:,}:1, over "
                f"the {MAX_RATIO}:1 allowed for any member; refusing a possible zip bomb."
            )


def _copy_limited(src, dst, *, limit: int, name: str) -> int:
    """Copy a member, counting real bytes: declared sizes in the header can lie."""
    written = 0
    while chunk := src.read(_CHUNK):
        written += len(chunk)
        if written > limit:
            raise UnsafeArchive(f"{name} expands beyond its declared size; refusing the zip.")
        dst.write(chunk)
    return written


def _zip_digest(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def extraction_folder(path: Path, *, dest_root: Path | None = None) -> Path:
    """Where ``extract_zip`` puts (or has put) the contents of ``path``."""
    dest_root = Path(dest_root) if dest_root is not None else extracted_dir()
    return dest_root / f"{slug(Path(path).stem)}-{_zip_digest(Path(path))[:12]}"


def extract_zip(
    path: Path, *, dest_root: Path | None = None, cancel: CancelFlag | None = None
) -> Path:
    """Extract ``path`` once into ``<cache>/libraries/<name>-<hash>/`` and return that folder.

    Extraction happens in a temporary sibling folder that is renamed into place at the end,
    so an interrupted or cancelled run (``cancel`` is looked at before each member) never
    leaves a half library that looks complete, nor any staging folder.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path.name} is not a readable zip file.")
    final = extraction_folder(path, dest_root=dest_root)
    dest_root = final.parent
    if (final / _DONE_MARKER).is_file():
        return final
    dest_root.mkdir(parents=True, exist_ok=True)
    staging = dest_root / f".staging-{uuid.uuid4().hex}"
    try:
        staging.mkdir()
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            _check_limits(infos)
            if not any(not i.is_dir() and _member_parts(i) is not None for i in infos):
                raise ValueError(f"{path.name} holds no files; zip a folder of class folders.")
            budget = MAX_TOTAL_BYTES
            for info in infos:
                stop_if_cancelled(cancel)
                parts = _member_parts(info)
                if parts is None:
                    continue
                target = staging.joinpath(*parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("wb") as dst:
                    budget -= _copy_limited(
                        src, dst, limit=min(info.file_size, budget), name=info.filename
                    )
        stop_if_cancelled(cancel)
        (staging / _DONE_MARKER).write_text(str(path.resolve()))
        try:
            os.replace(staging, final)
        except OSError:
            # Another process finished the same zip first; its copy is identical.
            if not (final / _DONE_MARKER).is_file():
                raise
    except zipfile.BadZipFile as err:
        raise ValueError(f"{path.name} is a damaged zip file ({err}).") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def library_folder(extracted: Path) -> Path:
    """The folder inside an extracted zip that holds the library: the top folder itself, or
    its single subfolder when the zip wraps everything in one directory."""
    entries = [p for p in extracted.iterdir() if p.name != _DONE_MARKER]
    if len(entries) == 1 and entries[0].is_dir():
        inner = entries[0]
        has_manifest = any((inner / n).is_file() for n in ("manifest.csv", "manifest.parquet"))
        if has_manifest or any(p.is_dir() for p in inner.iterdir()):
            return inner
    return extracted
