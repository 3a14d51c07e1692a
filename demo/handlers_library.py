"""Library tab: what is in the library, which indexes exist, building them, adding libraries."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

import pandas as pd
from PIL import Image

import demo.handlers_audit as handlers_audit
from data_index import CaseLibrary
from data_index.archive import extract_zip, library_folder
from data_index.audit import POLICIES, audit_library, render_group_strip, write_audited_manifest
from data_index.bundle import is_bundle, read_bundle
from data_index.hub import materialise, read_card
from data_index.locations import slug
from demo.arguments import text_argument, without_server_paths
from demo.config import DEMO_CASES, DEMO_LIBRARY, library_display_name
from demo.render import display_label
from demo.state import AppState, Progress
from models import get_spec, limits, list_specs
from models.weights import availability

UPLOAD_SUFFIXES = (".zip", ".csv", ".parquet")
MAX_STRIPS = 12
# A table of a 100,000-file zip's problems would be megabytes at every selection.
MAX_PROBLEM_ROWS = 200
HOW_TO_ADD = (
    "**No case library yet.** Add one of these, then pick it in the *Library* box above:\n\n"
    "- upload a **.zip of class folders** (`ringworm/001.jpg`, `impetigo/002.jpg`, …) or of a "
    "folder holding `manifest.csv` (`path,label[,case_id,split,caption,…]`) and its images;\n"
    "- or, if you run the app yourself, start it with a library folder, or list several "
    "folders in its settings (the README's *Bring your own library* says how); the shared "
    "datasets beside the checkout are found automatically."
)


def library_summary(state: AppState, library_path: str | None, *, reload: bool = False) -> str:
    """A markdown overview: name, where it lives, layout, counts, and the validation verdict."""
    if not library_path:
        return HOW_TO_ADD
    library = state.library(library_path, reload=reload)
    entry = state.catalog.entry(str(library_path))
    report = library.report
    verdict = "no problems found" if report.ok else "problems found: see below"
    warnings = "".join(f"\n\n**Warning:** {w}" for w in report.warnings)
    return (
        f"### {entry.name if entry is not None else library.name}\n"
        f"{library.layout} layout · **{len(library)} usable images** of "
        f"{report.images_found} found · {len(library.labels)} classes · {verdict}.\n\n"
        f"Fingerprint `{library.fingerprint[:12]}` (changes when files, labels or case ids change)."
        + terms_of_use(library)
        + warnings
    )


def load_demo_library(
    state: AppState, *, owned: list[str] | None = None, progress: Progress | None = None
) -> tuple[str, list[tuple[str, str]]]:
    """Unpack the public demo library from the Hugging Face Hub (the one step that needs the
    internet) and offer it to everyone; returns its id and the choices that now include it."""

    def step(done: int, total: int) -> None:
        if progress is not None:
            progress(done / max(total, 1), f"downloading case {done} of {total}")

    folder = materialise(DEMO_LIBRARY, max_cases=DEMO_CASES, progress=step)
    entry = state.catalog.add_upload(folder, name=library_display_name(folder), owner=None)
    return entry.id, state.catalog.choices(owned=owned or [])


def terms_of_use(library: CaseLibrary) -> str:
    """Licence and citation from a Hugging Face dataset card, or a bundle's licence files."""
    card = read_card(library.root)
    if card is not None:
        sample = card.get("sample") or {}
        drawn = f" (a sample of {sample['max_cases']} cases)" if sample else ""
        text = (
            f"\n\n**From the Hugging Face dataset** {card['source']}{drawn}. "
            f"Licence: **{card.get('licence') or 'not stated on its card'}**."
        )
        if card.get("citation"):
            text += f" Cite it as:\n\n```\n{card['citation']}\n```"
        return text
    if is_bundle(library.root):
        files = read_bundle(library.root).get("licence_files") or []
        where = ", ".join(f"`{f}`" for f in files) or "no licence file (ask its author)"
        return f"\n\n**A prebuilt bundle**: its terms of use are in {where}."
    return ""


def class_counts(state: AppState, library_path: str | None) -> pd.DataFrame:
    if not library_path:
        return pd.DataFrame(columns=["class", "name", "images", "cases"])
    library = state.library(library_path)
    table = library.cases.groupby("label").agg(
        images=("path", "size"), cases=("case_id", "nunique")
    )
    table = table.reset_index().rename(columns={"label": "class"})
    names = library.label_names
    table.insert(1, "name", [display_label(label, names) for label in table["class"]])
    return table


def validation_problems(state: AppState, library_path: str | None) -> pd.DataFrame:
    """Every file or row left out, and exact-duplicate groups with conflicting labels."""
    rows: list[dict[str, str]] = []
    if library_path:
        report = state.library(library_path).report
        rows += [{"item": p.item, "problem": p.reason} for p in report.unreadable]
        rows += [{"item": p.item, "problem": p.reason} for p in report.problems]
        for group in report.duplicates:
            kind = "identical files with different labels" if group.conflicting else "identical"
            rows.append({"item": " = ".join(group.relpaths), "problem": f"{kind} files"})
        if report.ignored_files:
            rows.append({"item": "(other files)", "problem": f"{report.ignored_files} ignored"})
    if len(rows) > MAX_PROBLEM_ROWS:
        more = len(rows) - MAX_PROBLEM_ROWS
        rows = rows[:MAX_PROBLEM_ROWS]
        rows.append({"item": f"... {more:,} more", "problem": "run `data_index validate` for all"})
    for row in rows:  # a manifest may name files by absolute path: show only their names
        if row["item"].startswith("/"):
            row["item"] = Path(row["item"]).name
    return pd.DataFrame(rows, columns=["item", "problem"])


def exact_duplicate_strips(
    state: AppState, library_path: str | None
) -> list[tuple[Image.Image, str]]:
    if not library_path:
        return []
    library = state.library(library_path)
    strips = []
    for group in library.report.duplicates[:MAX_STRIPS]:
        paths = [str(library.root / r) for r in group.relpaths]
        flag = "CONFLICT " if group.conflicting else ""
        strips.append(
            (
                render_group_strip(paths, captions=_captions(group.labels, group.relpaths)),
                f"{flag}identical bytes: {', '.join(group.relpaths)}",
            )
        )
    return strips


def _captions(labels, relpaths) -> list[str]:
    """'label · file stem' under each thumbnail of a strip."""
    return [f"{lab} · {Path(r).stem}" for lab, r in zip(labels, relpaths, strict=True)]


def save_audited_library(
    state: AppState,
    library_path: str | None,
    policy: str,
    *,
    owner: str | None = None,
    progress: Progress | None = None,
) -> tuple[str, str]:
    """Write the library under a copy policy as a new manifest library (images stay where they
    are; the original library and its indexes are untouched), offered like an upload of
    ``owner``. Returns (library id, message)."""
    if not library_path:
        raise ValueError("Pick a library first.")
    if policy not in POLICIES:
        raise ValueError(f"Choose what to do with copies: {', '.join(POLICIES)}.")
    library = state.library(library_path)
    report = audit_library(library, progress=progress)
    if not report.groups:
        raise ValueError("The audit found no copies in this library: there is nothing to change.")
    out = state.catalog.new_upload_folder() / (
        f"{slug(library.name)}-{policy}-{library.fingerprint[:8]}.csv"
    )
    write_audited_manifest(library, report, policy=policy, out=out)
    entry = state.catalog.add_upload(out, name=out.stem, owner=owner)
    audited = state.library(entry.id)
    what = (
        "one image per photo (groups with conflicting labels left out)"
        if policy == "one-per-group"
        else "every image, each group of copies as one case"
    )
    return entry.id, (
        f"Saved **{entry.name}**: {len(audited)} images, {what}. It is now "
        "selected; build an index for it below. The original library is unchanged."
    )


def near_duplicate_audit(
    state: AppState, library_path: str | None, *, progress: Progress | None = None
) -> tuple[list[tuple[Image.Image, str]], str]:
    """Copies of one photo found by ``data_index.audit``, each shown as its evidence; the
    same cached audit that ``validate`` and the benchmark read (see ``handlers_audit``)."""
    pictures, text, _ = handlers_audit.audit_evidence(state, library_path, progress=progress)
    return pictures, text


def index_status_table(state: AppState, library_path: str | None) -> pd.DataFrame:
    """One row per backbone that runs here: is this library indexed with it, and is the index
    current (the others are listed, with the reason, on the Models tab)."""
    columns = ["backbone", "family", "index", "cases", "built", "detail"]
    if not library_path:
        return pd.DataFrame(columns=columns)
    rows = []
    for spec in list_specs():
        if not availability(spec).ready:
            continue
        status = state.index_status(library_path, spec.key)
        rows.append(
            {
                "backbone": spec.key,
                "family": spec.family,
                "index": status.state,
                "cases": status.count,
                "built": status.created,
                "detail": without_server_paths(status.detail),
            }
        )
    rows.sort(key=lambda r: (r["family"], r["backbone"]))
    return pd.DataFrame(rows, columns=columns)


def build_index(
    state: AppState,
    library_path: str | None,
    backbone_key: str,
    *,
    progress: Progress | None = None,
) -> str:
    """Build the index, or update it so it holds exactly the library's current cases."""
    if not library_path:
        raise ValueError("Pick or upload a library before building an index.")
    spec = get_spec(text_argument(backbone_key, name="backbone"))
    before = state.index_status(library_path, spec.key)
    idx = state.index(library_path, spec.key, progress=progress)
    verb = {"missing": "Built", "broken": "Rebuilt", "stale": "Updated"}.get(before.state)
    if verb is None:
        return f"The {spec.key} index is already up to date ({len(idx)} cases)."
    return f"{verb} the {spec.key} index: {len(idx)} cases, saved on the server."


# --- uploads -----------------------------------------------------------------------------------
def _file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _check_upload(upload: str | None) -> Path:
    if not upload:
        raise ValueError("Choose a .zip of class folders (or a manifest .csv) to upload first.")
    source = Path(upload)
    if source.suffix.lower() not in UPLOAD_SUFFIXES:
        raise ValueError(
            f"{source.name} is not a library: upload a .zip of class folders, or a .csv/.parquet "
            "manifest with path,label columns."
        )
    if not source.is_file() or source.stat().st_size == 0:
        raise ValueError(f"{source.name} is empty or did not arrive; upload it again.")
    if source.stat().st_size > limits.MAX_UPLOAD_BYTES:
        raise ValueError(
            f"{source.name} is over the {limits.MAX_UPLOAD_BYTES / 1024**3:.1f} GiB upload limit."
        )
    return source


def _load_staged(
    state: AppState, staged: Path, *, folder: Path, name: str, progress: Progress | None
) -> tuple[CaseLibrary, Path]:
    """Validate a staged upload. A zip is extracted inside ``folder``; a manifest may only point
    into the libraries offered to everyone. Returns the library and the path that names it."""
    step = None if progress is None else (lambda done, total: progress(done / max(total, 1), ""))
    if staged.suffix.lower() == ".zip":
        inner = library_folder(extract_zip(staged, dest_root=folder))
        library = CaseLibrary.load(inner, name=name, progress=step, allowed_roots=[inner])
        return library, inner
    roots = state.catalog.public_roots()
    library = CaseLibrary.load(staged, name=name, progress=step, allowed_roots=roots)
    return library, staged


def upload_library(
    state: AppState,
    upload: str | None,
    *,
    name: str | None = None,
    owner: str | None = None,
    progress: Progress | None = None,
) -> tuple[str, str]:
    """Validate an uploaded zip or manifest and, only if it holds usable images, offer it as a
    new library: to the uploading session ``owner`` alone unless the catalog shares uploads.
    Returns (library id, message). Existing libraries and indexes are never touched, so a bad
    upload loses nothing, and a refused one leaves no file behind."""
    source = _check_upload(upload)
    catalog = state.catalog
    display = (name or "").strip()[:60] or source.stem
    suffix = source.suffix.lower()
    folder = catalog.new_upload_folder()
    kept = folder / f"{slug(display)}-{_file_digest(source)[:8]}{suffix}"
    if catalog.shared_uploads and kept.exists():
        entry = catalog.add_upload(kept, name=display, owner=None)
        return entry.id, f"This exact file was uploaded before as **{entry.name}**; selected it."
    staging = folder / f".incoming-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    refused = True
    try:
        staged = staging / kept.name
        shutil.copyfile(source, staged)
        try:
            library, where = _load_staged(
                state, staged, folder=staging, name=display, progress=progress
            )
        except ValueError as err:  # name the file as the visitor sent it, not as it is kept
            raise ValueError(str(err).replace(staged.name, source.name)) from err
        if len(library) == 0:
            report = library.report
            reasons = "; ".join(f"{p.item}: {p.reason}" for p in report.unreadable[:3])
            reasons = reasons or "; ".join(f"{p.item}: {p.reason}" for p in report.problems[:3])
            raise ValueError(
                f"{source.name} holds no usable images ({library.report.images_found} found"
                + (f"; {reasons}" if reasons else "")
                + "). Nothing was added."
                + (
                    " Paths in an uploaded manifest must point into a library offered here."
                    if suffix != ".zip"
                    else ""
                )
            )
        if catalog.shared_uploads:
            os.replace(staged, kept)
            final = kept
        else:
            final = folder / where.relative_to(staging)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(where, final)
        refused = False
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if refused and not catalog.shared_uploads:
            shutil.rmtree(folder, ignore_errors=True)
    entry = catalog.add_upload(final, name=display, owner=owner)
    if catalog.shared_uploads:
        state.library(entry.id)  # a shared zip is extracted once more at its kept path
    else:
        # Loaded again at its kept path, under its id: private uploads have their own indexes.
        state.adopt(entry.id, CaseLibrary.load(final, name=entry.id))
    report = library.report
    left_out = len(report.unreadable) + len(report.problems)
    note = f" {left_out} file(s)/row(s) were left out: see the problems table." if left_out else ""
    who = "" if catalog.shared_uploads else " Only this browser session sees it; it is deleted "
    if who:
        who += f"when the session ends or after {catalog.upload_ttl_s / 60:.0f} minutes."
    warn = "".join(f" **Warning:** {w}" for w in report.warnings)
    return entry.id, (
        f"Added **{entry.name}**: {len(library)} images in "
        f"{len(library.labels)} classes ({', '.join(library.labels[:8])}"
        f"{', …' if len(library.labels) > 8 else ''}).{note}{warn}{who} Build an index below "
        "to search it."
    )
