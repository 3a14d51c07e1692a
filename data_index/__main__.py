"""`python -m data_index`: validate a case library, build and update its index, search it,
export it as a bundle that opens elsewhere without embedding anything.

Exit codes: 0 done; 1 `validate` found problems; 2 the command could not run (bad path,
unknown backbone, missing weights, empty library, mismatched index ...), said on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from data_index.bundle import export_bundle, is_bundle, open_bundle_index
from data_index.case_index import EXACT_SEARCH_MAX_CASES, CaseIndex
from data_index.compare_cli import CliTools, add_compare_parser
from data_index.explain_cli import add_explain_command
from data_index.hub import HubColumns
from data_index.library import CaseLibrary
from data_index.locations import default_index_dir
from data_index.query_match import file_sha1
from data_index.store import DTYPES, POINTER, IndexMismatch, resolve_version
from data_index.trusted_search import SearchReport, cached_copy_groups, trusted_search
from data_index.validation import ValidationReport
from data_index.variant_search import (
    IN_SEARCH,
    mirrored_query,
    parse_search_variant,
    prepare_beside,
)
from models import open_image

EXIT_PROBLEMS = 1
EXIT_ERROR = 2


class CommandError(Exception):
    """A sentence for the user; main() prints it and exits with code 2."""


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on stderr (hidden when stderr is not a terminal) as a (done, total) callback."""
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=description, unit="img", disable=None, file=sys.stderr)
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()


def _load_backbone(key: str, *, device: str | None, runtime: str = "torch"):
    import torch

    from models import load_backbone

    # bf16 on a GPU roughly halves embedding time; on CPU autocast would only slow it down.
    precision = "bf16" if torch.cuda.is_available() and device != "cpu" else "fp32"
    if runtime != "torch":
        precision = "fp32"  # the exported graph runs float32 on the CPU
    return load_backbone(key, device=device, precision=precision, runtime=runtime)


def _library(path: str, *, decode: bool = False, args: argparse.Namespace | None = None):
    hub = {}
    if args is not None:
        columns = HubColumns(args.image_column, args.label_column, args.case_column)
        hub = {"max_cases": args.max_cases, "hub_columns": columns}
    with progress_bar("reading cases") as bar:
        return CaseLibrary.load(path, decode=decode, progress=bar, **hub)


def _summary(report: ValidationReport) -> str:
    parts = [f"{report.usable} usable image(s) in {len(report.class_counts)} class(es)"]
    if report.unreadable:
        parts.append(f"{len(report.unreadable)} unreadable")
    if report.problems:
        parts.append(f"{len(report.problems)} manifest row(s) left out")
    if report.duplicates:
        parts.append(f"{len(report.duplicates)} exact-duplicate group(s)")
    return "; ".join(parts) + " (details: python -m data_index validate --library ...)"


def cmd_validate(args: argparse.Namespace) -> int:
    library = _library(args.library, decode=not args.headers_only, args=args)
    report = library.report
    audit = None
    if not args.no_audit and len(library):
        from data_index.audit import audit_library

        cases = library.cases
        with progress_bar("duplicate audit") as bar:
            audit = audit_library(
                library, progress=lambda fraction, _message: bar(round(fraction * 1000), 1000)
            )
        report.sections.append(
            ("Copies of one photo (duplicate audit)", _audit_text(audit, cases, args.max_items))
        )
        evidence_dir = _write_evidence(library, audit, args.evidence)
    if args.json:
        data = report.to_dict()
        if audit is not None:
            data["duplicate_audit"] = {
                "summary": audit.summary(),
                "groups": audit.to_records(),
            }
        print(json.dumps(data, indent=2, default=str))
    else:
        print(report.format_text(max_items=args.max_items))
        if audit is not None and evidence_dir is not None:
            print(
                f"Evidence for each group and possible copy (matched points in green, masked "
                f"overlays in red): {evidence_dir}"
            )
    conflicts = bool(audit and audit.conflicts)
    if conflicts and not args.json:
        print(
            f"Label conflicts: {len(audit.conflicts)} photo(s) appear under more than one label; "
            "fix or remove them before trusting search results or benchmark figures."
        )
    return 0 if report.ok and not conflicts else EXIT_PROBLEMS


def _write_evidence(library: CaseLibrary, audit, folder: str | None) -> Path | None:
    from data_index.audit.render import write_evidence
    from data_index.locations import cache_root

    if not audit.groups and not audit.possible:
        return None
    out = (
        Path(folder)
        if folder
        else (cache_root() / "audit" / "evidence" / f"{library.name}-{library.fingerprint[:12]}")
    )
    cases = library.cases
    write_evidence(
        audit,
        relpaths=cases["relpath"].astype(str).tolist(),
        labels=cases["label"].astype(str).tolist(),
        out=out,
    )
    return out


def cmd_not_copy(args: argparse.Namespace) -> int:
    from data_index.audit import mark_not_copy

    library = _library(args.library)
    relpaths = library.cases["relpath"].astype(str).tolist()
    rows = []
    for name in (args.a, args.b):
        if name not in relpaths:
            raise ValueError(f"{name} is not an image of this library (give its path inside it).")
        rows.append(relpaths.index(name))
    path = mark_not_copy(library, row_a=rows[0], row_b=rows[1])
    print(f"Saved: {args.a} and {args.b} are not copies of one photo ({path}).")
    return 0


def _audit_text(audit, cases, max_items: int) -> str:
    """Groups of augmented copies and label conflicts, one line per group."""
    summary = audit.summary()
    lines = [
        f"{summary['n_groups']} groups hold {summary['n_images_in_groups']} images: "
        f"{summary['n_distinct_photos']} distinct photos among {summary['n_images']} "
        f"({summary['n_conflicts']} groups carry conflicting labels; {summary['seconds']} s). "
        f"{summary['n_possible_copies']} possible copies are for a person to decide: they are "
        "not grouped and not label conflicts."
    ]
    if audit.groups:
        lines.append(
            "Leave-one-out benchmarks exclude a query's copies by default; in the app's Library "
            "tab you can keep one image per group or treat each group as one case."
        )
    conflicted = {c.group for c in audit.conflicts}
    relpaths = cases["relpath"].astype(str).tolist()
    labels = cases["label"].astype(str).tolist()
    for g, members in enumerate(audit.groups[:max_items]):
        mark = "LABEL CONFLICT " if g in conflicted else ""
        items = ", ".join(f"{relpaths[r]} [{labels[r]}]" for r in members)
        lines.append(f"  {mark}group {g}: {items}")
    if len(audit.groups) > max_items:
        lines.append(f"  ... and {len(audit.groups) - max_items} more groups (--max-items)")
    return "\n".join(lines)


def cmd_build(args: argparse.Namespace) -> int:
    library = _library(args.library, args=args)
    if len(library) == 0:
        raise CommandError(
            f"The library {args.library} has no usable images: {_summary(library.report)}"
        )
    from models import get_spec

    key = get_spec(args.backbone).key
    out = Path(args.out) if args.out else default_index_dir(library.name, key)
    existing = None
    if not args.rebuild and (out / POINTER).is_file():
        try:  # checked before loading the model, which can take a while
            existing = CaseIndex.load(out, backbone_key=key)
        except IndexMismatch as err:
            raise CommandError(f"{err} To replace the index in {out}, pass --rebuild.") from err
    backbone = _load_backbone(key, device=args.device, runtime=args.runtime)
    if existing is not None:
        existing.check_backbone(weights_origin=backbone.weights_origin)
    start = time.perf_counter()
    with progress_bar(f"embedding ({backbone.key})") as bar:
        if existing is not None:
            added, removed = existing.sync(
                library, backbone, num_workers=args.workers, progress=bar
            )
            index = existing
        else:
            index = CaseIndex.build(
                library,
                backbone,
                save=False,
                dtype=args.dtype,
                num_workers=args.workers,
                progress=bar,
            )
            added, removed = len(index), 0
    if len(index) == 0:
        raise CommandError(f"No image of {args.library} could be decoded; nothing to index.")
    elapsed = time.perf_counter() - start
    if existing is None or added or removed:
        index.save(out)
    mode = "exact search" if index.exact else "HNSW search"
    print(_summary(library.report))
    print(
        f"Index {out}: {len(index)} case(s), {index.dim}-d {backbone.key} "
        f"({backbone.weights_origin}), {index.dtype}, {mode} "
        f"(exact up to {EXACT_SEARCH_MAX_CASES:,} cases)."
    )
    verb = "Updated" if existing is not None else "Built"
    print(f"{verb}: {added} added, {removed} removed in {elapsed:.1f} s.")
    return 0


def _print_report(report: SearchReport, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_json(), indent=2, default=str))
        return
    if report.query_in_library is not None:
        print(report.query_in_library.sentence())
    score_name = "similarity" if report.metric == "cosine" else "distance"
    for h in report.hits:
        print(f"{h.rank:>3}  {score_name} {h.score:.4f}  {h.label:<24} {h.case_id:<32} {h.path}")
    if report.low_similarity:
        print(
            f"No close match: the nearest case ({report.nearest_similarity:.3f}) is less similar "
            f"than the threshold {report.similarity_threshold:.3f}, so the vote is no suggestion."
        )
    elif report.hits and report.variant is not None:
        print(
            f"Ranked with the retrieval variant {report.variant}; likely diagnoses are "
            "calibrated for the plain search only, so none are listed."
        )
    elif report.hits:
        print(
            f"Likely diagnoses ({report.coverage:.0%} coverage on this library): "
            f"{', '.join(report.prediction_set) or 'none'}"
        )


def _copy_groups(index: CaseIndex):
    """The library's cached duplicate groups, when its folder is still there and was audited."""
    root = index.manifest.get("library", {}).get("root")
    if not root or not Path(root).is_dir():
        return None
    try:
        return cached_copy_groups(index, CaseLibrary.load(root))
    except (ValueError, OSError):
        return None


def _open_index(path: str, *, backbone: str | None = None) -> CaseIndex:
    """An index folder, or a bundle's index (for ``backbone``, or its only one)."""
    if is_bundle(path):
        return open_bundle_index(path, backbone_key=backbone)
    index = CaseIndex.load(path)
    if backbone is not None:
        index.check_backbone(backbone_key=backbone)
    return index


def cmd_search(args: argparse.Namespace) -> int:
    index = _open_index(args.index, backbone=args.backbone)
    if index.weights_origin != "pretrained":
        raise CommandError(
            "This index holds architecture-only (random-weight) vectors, made for timing: "
            "no model can embed a query comparably. Build it with real weights."
        )
    if args.k < 1:
        raise CommandError("-k must be at least 1.")
    if not 0 < args.coverage < 1:
        raise CommandError("--coverage must be between 0 and 1, e.g. 0.9.")
    try:
        variant_name = parse_search_variant(args.variant)
    except ValueError as err:
        raise CommandError(str(err)) from err
    if variant_name is not None and args.text is not None:
        raise CommandError("Retrieval variants rank photos: drop --variant for a text search.")
    if variant_name is not None and args.metric != "cosine":
        raise CommandError("Retrieval variants compare by cosine: drop --metric.")
    backbone = _load_backbone(index.key, device=args.device, runtime=args.runtime)
    exclude = args.exclude_case or ()
    groups = _copy_groups(index)
    if args.image is not None:
        if not Path(args.image).is_file():
            raise CommandError(f"The query image {args.image} does not exist.")
        image = open_image(args.image)
        variant, flipped = None, None
        if variant_name is not None:
            try:
                variant = prepare_beside(
                    args.index, index, name=variant_name, backbone=backbone, group_ids=groups
                )
            except ValueError as err:
                raise CommandError(str(err)) from err
            flipped = mirrored_query(backbone, image) if variant_name == "tta-flip" else None
        report = trusted_search(
            index,
            backbone.encode_images([image], normalize=False)[0],
            k=args.k,
            metric=args.metric,
            coverage=args.coverage,
            query_image=image,
            query_sha1=file_sha1(args.image),
            exclude_case_ids=exclude,
            group_ids=groups,
            variant=variant,
            mirrored_vector=flipped,
        )
    else:
        if args.metric != "cosine":
            raise CommandError("Text search compares with cosine only; drop --metric.")
        if not args.text.strip():
            raise CommandError("Give some text to search for.")
        index.check_backbone(backbone_key=backbone.key, weights_origin=backbone.weights_origin)
        report = trusted_search(
            index,
            backbone.encode_texts([args.text])[0],
            k=args.k,
            coverage=args.coverage,
            exclude_case_ids=exclude,
            group_ids=groups,
        )
    _print_report(report, as_json=args.json)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with progress_bar("thumbnails") as bar:
        info = export_bundle(args.index, args.out, licence_from=args.library, progress=bar)
    licence = ", ".join(info["licence_files"]) or "none found (add the library's terms by hand)"
    print(
        f"Bundle {args.out}: {info['count']} cases, indexes for "
        f"{', '.join(sorted(info['indexes']))}; licence files: {licence}."
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    index = _open_index(args.index, backbone=args.backbone)
    manifest = {**index.manifest, "version_dir": str(resolve_version(index.path))}
    if args.json:
        print(json.dumps(manifest, indent=2, default=str))
        return 0
    lib = manifest["library"]
    counts = index.cases["label"].value_counts().sort_index()
    lines = [
        f"Index:     {args.index} ({Path(manifest['version_dir']).name})",
        f"Backbone:  {index.key} ({index.weights_origin}), {index.dim}-d",
        f"Vectors:   {len(index)} x {index.dtype}, metric {manifest['metric']}, "
        f"{'exact' if index.exact else 'HNSW'} search",
        f"Library:   {lib.get('name')} at {lib.get('root')} ({lib.get('layout')})",
        f"Fingerprint: {lib.get('fingerprint')}",
        f"Created:   {manifest.get('created')}",
        "Versions:  " + ", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items()),
        f"Classes ({len(counts)}): " + ", ".join(f"{k} {v}" for k, v in counts.items()),
    ]
    print("\n".join(lines))
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    index = CaseIndex.load(args.index)
    backbone = _load_backbone(index.key, device=args.device, runtime=args.runtime)
    index.check_backbone(weights_origin=backbone.weights_origin)
    case_ids = [args.case_id] * len(args.images) if args.case_id else None
    keys = index.add_images(
        backbone, args.images, labels=[args.label] * len(args.images), case_ids=case_ids
    )
    index.save()
    print(f"Added {len(keys)} image(s) as keys {', '.join(map(str, keys))}; {len(index)} cases.")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    index = CaseIndex.load(args.index)
    removed = index.remove(args.key)
    if removed:
        index.save()
    print(f"Removed {removed} case(s); {len(index)} remain.")
    return 0


LIBRARY_HELP = (
    "class folders, a manifest, a zip, a bundle, hf://datasets/<org>/<name>[@rev][:split] "
    "or a folder in the Hub's parquet layout"
)


def _hub_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-cases", type=int, default=None, help="Hub datasets: a seeded sample")
    p.add_argument("--image-column", default=None, help="Hub datasets: the image column")
    p.add_argument("--label-column", default=None, help="Hub datasets: the label column")
    p.add_argument("--case-column", default=None, help="Hub datasets: the case/lesion id column")


def _runtime_option(parser: argparse.ArgumentParser) -> None:
    from models.runtime_onnx import RUNTIME_HELP, RUNTIMES

    parser.add_argument("--runtime", choices=RUNTIMES, default="torch", help=RUNTIME_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_index",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a library and print what was found")
    p.add_argument("--library", required=True, help=LIBRARY_HELP)
    _hub_flags(p)
    p.add_argument("--headers-only", action="store_true", help="skip decoding every pixel")
    p.add_argument("--max-items", type=int, default=20, help="longest list printed")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-audit", action="store_true", help="skip the duplicate/copy audit")
    p.add_argument(
        "--evidence",
        default=None,
        help="folder for the evidence pictures (default: <cache>/audit/evidence/<library>-...)",
    )
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("not-copy", help="record that the audit wrongly called two photos copies")
    p.add_argument("--library", required=True)
    p.add_argument("a", help="one image's path inside the library (as validate prints it)")
    p.add_argument("b", help="the other image's path inside the library")
    p.set_defaults(func=cmd_not_copy)

    p = sub.add_parser("build", help="embed a library and index it (updates an existing index)")
    p.add_argument("--library", required=True, help=LIBRARY_HELP)
    _hub_flags(p)
    p.add_argument("--backbone", required=True, help="registry key (python -m models list)")
    p.add_argument("--out", help="index folder (default: <cache>/indexes/<library>--<backbone>)")
    p.add_argument("--dtype", choices=list(DTYPES), default="f32")
    p.add_argument("--rebuild", action="store_true", help="start afresh instead of updating")
    p.add_argument("--workers", type=int, default=None, help="image decoding processes")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: best available)")
    _runtime_option(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("search", help="nearest cases to an image or a text")
    p.add_argument("--index", required=True, help="an index folder or a bundle")
    p.add_argument("--backbone", default=None, help="which of a bundle's indexes (if several)")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--image")
    query.add_argument("--text")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--exclude-case", action="append", help="case id to leave out (repeatable)")
    p.add_argument("--metric", choices=["cosine", "euclidean"], default="cosine")
    p.add_argument(
        "--coverage", type=float, default=0.9, help="of the prediction set (default 0.9)"
    )
    p.add_argument("--device", default=None)
    _runtime_option(p)
    p.add_argument("--json", action="store_true", help="hits, vote, prediction set, flags")
    p.add_argument(
        "--variant",
        default=None,
        help=f"rank with a retrieval variant: {', '.join(IN_SEARCH)} (fitted once per library "
        "and kept beside the index; photos only)",
    )
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("info", help="describe an index")
    p.add_argument("--index", required=True, help="an index folder or a bundle")
    p.add_argument("--backbone", default=None, help="which of a bundle's indexes (if several)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("export", help="write a bundle: thumbnails, indexes, licence, no images")
    p.add_argument(
        "--index", required=True, action="append", help="index folder (repeat: one per backbone)"
    )
    p.add_argument("--out", required=True, help="new folder for the bundle")
    p.add_argument("--library", default=None, help="where the licence files are (default: root)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("add", help="add image files (referenced in place) to an index")
    p.add_argument("--index", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--case-id", default=None, help="one case id shared by these images")
    p.add_argument("--device", default=None)
    _runtime_option(p)
    p.add_argument("images", nargs="+")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("remove", help="remove cases from an index by key")
    p.add_argument("--index", required=True)
    p.add_argument("--key", type=int, action="append", required=True)
    p.set_defaults(func=cmd_remove)

    add_explain_command(sub, load_backbone=_load_backbone)
    add_compare_parser(sub, tools=CliTools(_library, _load_backbone, progress_bar))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from models import WeightsUnavailable

    try:
        return args.func(args)
    except (CommandError, ValueError, WeightsUnavailable, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted; the previous index, if any, is untouched.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
