"""Index bundles: one folder that opens as a library whose indexes are already built.

A bundle holds small thumbnails of the library's images with a ``manifest.csv`` (so it loads as
an ordinary manifest library), one index per backbone under ``indexes/`` (usearch file, cases
table, raw vectors, manifest), the library's licence files and ``bundle.json``. Its cases point
at the thumbnails by relative path, so the folder can be moved or uploaded (to a Hub dataset or
a Space) and still opens without embedding anything. Queries still need the backbone.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image, ImageOps

from data_index.case_index import CaseIndex
from data_index.library import CORE_COLUMNS, library_fingerprint
from data_index.locations import slug
from data_index.store import BUNDLE_FILE, POINTER, IndexMismatch
from data_index.validation import Progress

BUNDLE_FORMAT = "dermsearch-bundle"
BUNDLE_FORMAT_VERSION = 1
THUMBNAIL_PX = 384
IMAGES_DIR = "images"
INDEXES_DIR = "indexes"
# Files of a library folder that carry its terms of use; copied into the bundle as they are.
LICENCE_PATTERNS = ("LICEN[CS]E*", "README*", "CITATION*", "COPYING*")
# The index folder -> bundle root, stored in each index manifest (see CaseIndex.load).
ROOT_FROM_INDEX = "../.."


def is_bundle(path: str | Path) -> bool:
    return (Path(path) / BUNDLE_FILE).is_file()


def read_bundle(path: str | Path) -> dict[str, Any]:
    """``bundle.json`` after checking its format; IndexMismatch says what is wrong."""
    file = Path(path) / BUNDLE_FILE
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise IndexMismatch(f"The bundle description {file} is unreadable ({err}).") from err
    if info.get("format") != BUNDLE_FORMAT or info.get("format_version") != BUNDLE_FORMAT_VERSION:
        raise IndexMismatch(
            f"{Path(path).name} is a bundle of format {info.get('format')!r} "
            f"v{info.get('format_version')}; this code opens {BUNDLE_FORMAT} "
            f"v{BUNDLE_FORMAT_VERSION}. Export it again with this version."
        )
    return info


def bundle_index_dir(
    path: str | Path,
    backbone_key: str,
    *,
    dim: int | None = None,
    weights_origin: str | None = None,
) -> Path | None:
    """The bundle's index folder for a backbone (None when it has none), after checking the
    bundle's record of it against the backbone that will embed the queries."""
    info = read_bundle(path)
    entry = info["indexes"].get(backbone_key)
    if entry is None:
        return None
    problems = []
    if dim is not None and int(entry["dim"]) != dim:
        problems.append(f"its vectors have {entry['dim']} dimensions, the backbone {dim}")
    if weights_origin is not None and entry["weights_origin"] != weights_origin:
        problems.append(
            f"it holds {entry['weights_origin']} vectors, the backbone here is {weights_origin}"
        )
    if problems:
        raise IndexMismatch(
            f"The bundle's '{backbone_key}' index cannot be searched here: "
            + "; ".join(problems)
            + ". Export the bundle again with the same weights."
        )
    return Path(path) / INDEXES_DIR / entry["folder"]


def open_bundle_index(
    path: str | Path, *, backbone_key: str | None = None, weights_origin: str | None = None
) -> CaseIndex:
    """A bundle's index, for ``backbone_key`` or its only one; nothing is embedded."""
    info = read_bundle(path)
    keys = sorted(info["indexes"])
    if backbone_key is None:
        if len(keys) != 1:
            raise ValueError(
                f"The bundle holds indexes for {', '.join(keys)}: say which with --backbone."
            )
        backbone_key = keys[0]
    folder = bundle_index_dir(path, backbone_key, weights_origin=weights_origin)
    if folder is None:
        raise IndexMismatch(
            f"The bundle has no index for '{backbone_key}'; it holds {', '.join(keys)}."
        )
    return CaseIndex.load(folder, backbone_key=backbone_key, weights_origin=weights_origin)


def _thumbnail(source: Path, size: int) -> bytes:
    with Image.open(source) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        im.thumbnail((size, size), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        im.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _same_cases(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    cols = ["key", "relpath", "sha1", "label", "case_id"]
    left = a[cols].sort_values("key").reset_index(drop=True).astype(str)
    right = b[cols].sort_values("key").reset_index(drop=True).astype(str)
    return left.equals(right)


def export_bundle(
    index_paths: list[str | Path],
    out: str | Path,
    *,
    licence_from: str | Path | None = None,
    thumbnail_px: int = THUMBNAIL_PX,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write a bundle of one library's indexes (one per backbone) to the new folder ``out``."""
    out = Path(out).expanduser()
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty: give a new folder for the bundle.")
    if not index_paths:
        raise ValueError("Give at least one index to export.")
    indexes = [CaseIndex.load(p) for p in index_paths]
    first = indexes[0]
    keys = [idx.key for idx in indexes]
    if len(set(keys)) != len(keys):
        raise ValueError(f"Two of the indexes use the same backbone ({', '.join(keys)}).")
    for idx in indexes[1:]:
        if not _same_cases(first.cases, idx.cases):
            raise ValueError(
                f"The '{idx.key}' index holds other cases than the '{first.key}' one: a bundle "
                "is one library; rebuild both from the same library first."
            )
    cases = first.cases.sort_values("key").reset_index(drop=True)
    (out / IMAGES_DIR).mkdir(parents=True)
    relpath, sha1 = {}, {}
    for n, (key, path) in enumerate(zip(cases["key"], cases["path"], strict=True)):
        if not Path(path).is_file():
            raise ValueError(
                f"The image {Path(path).name} of the index is not on this machine: export the "
                "bundle where the library's images are."
            )
        data = _thumbnail(Path(path), thumbnail_px)
        relpath[int(key)] = f"{IMAGES_DIR}/{int(key)}.jpg"
        sha1[int(key)] = hashlib.sha1(data).hexdigest()
        (out / relpath[int(key)]).write_bytes(data)
        if progress is not None:
            progress(n + 1, len(cases))

    def rebased(table: pd.DataFrame) -> pd.DataFrame:
        # The library's own sha1 column described the originals; the thumbnails have others.
        table = table.rename(columns={"manifest_sha1": "original_sha1"})
        table["relpath"] = table["key"].map(lambda k: relpath[int(k)])
        table["sha1"] = table["key"].map(lambda k: sha1[int(k)])
        table["path"] = table["relpath"]  # made absolute again where the bundle is opened
        return table

    bundled = rebased(cases)
    fingerprint = library_fingerprint(bundled)
    meta = [c for c in bundled.columns if c not in CORE_COLUMNS]
    manifest = bundled[["relpath", "label", "case_id", "split", "caption", *meta]]
    manifest.rename(columns={"relpath": "path"}).to_csv(out / "manifest.csv", index=False)

    name = first.manifest.get("library", {}).get("name") or out.name
    entries = {}
    for idx in indexes:
        folder = slug(idx.key)
        described = {"name": name, "root": ROOT_FROM_INDEX, "layout": "bundle"}
        copy = CaseIndex(
            index=idx.index,
            cases=rebased(idx.cases),
            raw=idx.raw,
            manifest={**idx.manifest, "library": {**described, "fingerprint": fingerprint}},
        )
        copy.save(out / INDEXES_DIR / folder)
        _copy_extras(Path(index_paths[indexes.index(idx)]), out / INDEXES_DIR / folder)
        entries[idx.key] = {
            "folder": folder,
            "backbone_name": idx.manifest.get("backbone_name", ""),
            "weights_origin": idx.weights_origin,
            "dim": idx.dim,
            "count": len(idx),
        }
    root = Path(licence_from) if licence_from else Path(first.manifest["library"].get("root", ""))
    licence_files = _copy_licence(root, out) if str(root) and root.is_dir() else []
    info = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "name": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "count": len(cases),
        "library_fingerprint": fingerprint,
        "thumbnail_px": thumbnail_px,
        "indexes": entries,
        "licence_files": licence_files,
    }
    (out / BUNDLE_FILE).write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")
    return info


def _copy_extras(index_dir: Path, target: Path) -> None:
    """Files kept beside an index's versions (e.g. a search calibration) travel with it."""
    if not index_dir.is_dir():
        return
    for child in index_dir.iterdir():
        if child.is_file() and child.name != POINTER and not child.name.startswith("."):
            shutil.copy2(child, target / child.name)


def _copy_licence(root: Path, out: Path) -> list[str]:
    copied = []
    for pattern in LICENCE_PATTERNS:
        for file in sorted(root.glob(pattern)):
            if file.is_file() and not (out / file.name).exists():
                shutil.copy2(file, out / file.name)
                copied.append(file.name)
    return copied
