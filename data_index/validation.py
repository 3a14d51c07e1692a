"""Checking a case library's files: readable images, content hashes, a report a person can read."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

import models.limits as limits
from data_index.parallel import in_threads
from models.base import check_pixels, open_image, read_image_bytes

Progress = Callable[[int, int], None]


class CancelFlag(Protocol):
    """What validation checks to stop early: a ``threading.Event`` set by a Cancel button."""

    def is_set(self) -> bool: ...


class ValidationCancelled(RuntimeError):
    """The caller set the cancel flag: validation stopped between two files."""


def stop_if_cancelled(cancel: CancelFlag | None) -> None:
    if cancel is not None and cancel.is_set():
        raise ValidationCancelled("Validation was cancelled; nothing was added.")


IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".jfif"}
)


@dataclass(frozen=True)
class FileCheck:
    """One file's outcome: its content hash when readable, else the reason it is not."""

    sha1: str | None
    reason: str | None


@dataclass(frozen=True)
class Problem:
    """A file or manifest row left out of the library, and why."""

    item: str
    reason: str


@dataclass(frozen=True)
class DuplicateGroup:
    """Files with byte-identical content; ``labels`` differing is a labelling conflict."""

    sha1: str
    relpaths: tuple[str, ...]
    labels: tuple[str, ...]

    @property
    def conflicting(self) -> bool:
        return len(set(self.labels)) > 1


@dataclass
class ValidationReport:
    """What loading a library found. ``sections`` holds extra titled text blocks that other
    checks (such as the near-duplicate audit) append, so the CLI prints them in one place."""

    source: str
    layout: str
    images_found: int = 0
    usable: int = 0
    decoded: bool = False
    class_counts: dict[str, int] = field(default_factory=dict)
    unreadable: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    duplicates: list[DuplicateGroup] = field(default_factory=list)
    ignored_files: int = 0
    sections: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was left out and no duplicate carries two labels."""
        conflicts = any(g.conflicting for g in self.duplicates)
        return not (self.unreadable or self.problems or conflicts) and self.usable > 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out

    def format_text(self, *, max_items: int = 20) -> str:
        """A plain-text report for the terminal; long lists are cut at ``max_items``."""
        check = "pixels decoded" if self.decoded else "headers checked"
        lines = [
            f"Library: {self.source} ({self.layout})",
            f"Images found: {self.images_found}; usable: {self.usable} ({check})",
            f"Classes ({len(self.class_counts)}):",
        ]
        width = max((len(c) for c in self.class_counts), default=0)
        lines += [f"  {c:<{width}}  {n}" for c, n in self.class_counts.items()]
        if self.ignored_files:
            lines.append(f"Ignored {self.ignored_files} file(s) without an image extension.")
        lists = (("Unreadable files", self.unreadable), ("Rows left out", self.problems))
        for title, items in lists:
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines += [f"  {p.item}: {p.reason}" for p in items[:max_items]]
                if len(items) > max_items:
                    lines.append(f"  ... and {len(items) - max_items} more")
        if self.duplicates:
            n_conf = sum(g.conflicting for g in self.duplicates)
            lines.append(
                f"Exact duplicates: {len(self.duplicates)} group(s), "
                f"{n_conf} with conflicting labels (they share one case id):"
            )
            for g in self.duplicates[:max_items]:
                flag = "  CONFLICT" if g.conflicting else ""
                tagged = zip(g.relpaths, g.labels, strict=True)
                pairs = ", ".join(f"{p} [{lab}]" for p, lab in tagged)
                lines.append(f"  {pairs}{flag}")
            if len(self.duplicates) > max_items:
                lines.append(f"  ... and {len(self.duplicates) - max_items} more")
        lines += [f"Warning: {w}" for w in self.warnings]
        for title, body in self.sections:
            lines += [f"{title}:", *("  " + line for line in body.splitlines())]
        lines.append("OK" if self.ok else "Problems found (see above).")
        return "\n".join(lines)


def degenerate_warnings(cases_per_class: dict[str, int]) -> list[str]:
    """Sentences for libraries whose scores would mean nothing: one class (every neighbour
    agrees, so top-1 is 1.000 by construction) or classes with fewer than two cases (a
    leave-one-case-out query of that class has no same-class case left to find)."""
    out = []
    if len(cases_per_class) == 1:
        only = next(iter(cases_per_class))
        out.append(
            f"The library has a single class ({only}): every result has the query's diagnosis, "
            "so accuracy is 1.000 by construction and is not a score."
        )
    thin = sorted(label for label, n in cases_per_class.items() if n < 2)
    if thin:
        shown = ", ".join(thin[:8]) + (", ..." if len(thin) > 8 else "")
        out.append(
            f"{len(thin)} class(es) have fewer than 2 cases ({shown}): a leave-one-out query of "
            "such a class cannot find its own diagnosis, so it scores as a miss."
        )
    return out


def label_names(labels: Sequence[str], names: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Display names from a manifest's ``label_name`` column: the first name given for each
    label, and a warning for every label given more than one (rows disagree on what it is)."""
    given: dict[str, list[str]] = {}
    for label, name in zip(labels, names, strict=True):
        name = " ".join(str(name).split())
        if name and name not in given.setdefault(label, []):
            given[label].append(name)
    chosen = {label: found[0] for label, found in given.items() if found}
    warnings = [
        f"The label {label} has {len(found)} different names in the manifest's label_name "
        f"column ({'; '.join(found[:4])}{'; ...' if len(found) > 4 else ''}): the first, "
        f"{found[0]}, is shown. Give each label one name."
        for label, found in sorted(given.items())
        if len(found) > 1
    ]
    return chosen, warnings


def check_file(path: Path, *, decode: bool = False) -> FileCheck:
    """Hash a file and check that it is an image: the header always, all pixels if ``decode``.

    Header checks catch missing, empty and non-image files cheaply; a truncated JPEG only
    shows up when decoded (the embedder catches those later and reports them too).
    """
    try:
        data = read_image_bytes(path)
    except FileNotFoundError:
        return FileCheck(None, "file not found")
    except ValueError as err:
        return FileCheck(None, _without_name(str(err), path))
    if not data:
        return FileCheck(None, "empty file (0 bytes)")
    sha1 = hashlib.sha1(data).hexdigest()
    try:
        if decode:
            open_image(Image.open(io.BytesIO(data)))
        else:
            with Image.open(io.BytesIO(data)) as im:
                check_pixels(im.size, name="the image")
    except ValueError as err:
        return FileCheck(sha1, str(err))
    except Image.DecompressionBombError:
        return FileCheck(sha1, f"far more than {limits.MAX_IMAGE_PIXELS / 1e6:,.0f} megapixels")
    except (OSError, SyntaxError) as err:
        kind = "not a recognised image" if "cannot identify" in str(err) else f"corrupt ({err})"
        return FileCheck(sha1, kind)
    return FileCheck(sha1, None)


def _without_name(reason: str, path: Path) -> str:
    """A reader's sentence about ``path`` as a reason in a table that already names the file."""
    return reason.replace(f"{path.name} ", "", 1) if reason.startswith(path.name) else reason


def check_files(
    paths: Sequence[Path],
    *,
    decode: bool = False,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> list[FileCheck]:
    """``check_file`` over many files with a small thread pool (reading is I/O-bound).

    ``cancel`` is looked at after every file: once set, files not yet started are never
    opened, the few being read finish, and ``ValidationCancelled`` is raised.
    """
    workers = max(1, min(8, 2 * (os.cpu_count() or 1)))
    results: list[FileCheck] = []

    def one(path: Path) -> FileCheck | None:
        # A file not yet started when the flag is set is never opened.
        return None if cancel is not None and cancel.is_set() else check_file(path, decode=decode)

    for i, result in enumerate(in_threads(one, paths, workers)):
        stop_if_cancelled(cancel)
        results.append(result)
        if progress is not None and ((i + 1) % 64 == 0 or i + 1 == len(paths)):
            progress(i + 1, len(paths))
    return results


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS
