"""`python -m data_index compare`: the Compare tab's rows on the command line.

Indexes missing from the cache are built (and stale ones updated) first, as ``build`` would.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from data_index.case_index import CaseIndex
from data_index.compare import (
    CompareQuery,
    Comparison,
    case_label,
    compare,
    copy_case_ids,
    parse_backbones,
    resolve_case,
)
from data_index.compare_render import overlap_lines, row_summary, save_sheet
from data_index.library import CaseLibrary
from data_index.locations import default_index_dir
from data_index.store import POINTER, IndexMismatch
from data_index.trusted_search import cached_copy_groups, vote_calibration
from data_index.variant_search import IN_SEARCH, parse_search_variant, prepare_for_library


def open_index(library: CaseLibrary, backbone, *, progress=None) -> CaseIndex:
    """The saved index of ``library`` under ``backbone``, updated or built when needed."""
    folder = default_index_dir(library.name, backbone.key)
    if (folder / POINTER).is_file():
        try:
            index = CaseIndex.load(
                folder, backbone_key=backbone.key, weights_origin=backbone.weights_origin
            )
        except IndexMismatch:
            index = None  # other weights or a broken file: built afresh from cached vectors
        if index is not None:
            if index.fingerprint != library.fingerprint:
                index.sync(library, backbone, progress=progress)
                index.save(folder)
            return index
    return CaseIndex.build(library, backbone, out_dir=folder, progress=progress)


def _print_text(comparison: Comparison) -> None:
    for row in comparison.rows:
        print(f"{row.name} ({row.key}): {row_summary(row, k=comparison.k)}")
        for hit in row.hits:
            mark = {"match": "✓", "mismatch": "✗", "unknown": "·"}[hit.verdict]
            shared = "  shared" if hit.shared else ""
            print(f"  {hit.rank:>3} {mark} {hit.score:.4f}  {hit.label:<28} {hit.case_id}{shared}")
    for line in overlap_lines(comparison):
        print(line)


def cmd_compare(args: argparse.Namespace, *, tools: CliTools) -> int:
    _library, _load_backbone, progress_bar = tools.library, tools.backbone, tools.progress_bar
    keys = parse_backbones(args.backbones.split(","))
    if args.k < 1:
        raise ValueError("-k must be at least 1.")
    if args.sheet and not args.sheet.lower().endswith(".png"):
        raise ValueError(f"--sheet names a PNG file (out.png), not {args.sheet}.")
    variant = parse_search_variant(args.variant)
    library = _library(args.library)
    if len(library) == 0:
        raise ValueError(f"The library {args.library} has no usable images.")
    query_image = None
    if args.image is not None:
        if not Path(args.image).is_file():
            raise ValueError(f"The query image {args.image} does not exist.")
        from models import open_image

        query_image = open_image(args.image)
        label = args.label if args.label in library.labels else None
        if args.label and label is None:
            raise ValueError(
                f"--label {args.label!r} is not a class of {library.name}: "
                f"{', '.join(library.labels)}."
            )
        query = CompareQuery(kind="photo", image=query_image, label=label)
    else:
        relpath = resolve_case(library, args.case)
        query_image = str(library.cases.loc[library.cases["relpath"] == relpath, "path"].iloc[0])
        copies = copy_case_ids(library, relpath, audit_if_missing=True)
        query = CompareQuery(
            kind="case", relpath=relpath, label=case_label(library, relpath), copies=copies
        )
    indexed, prepared = [], []
    for key in keys:
        backbone = _load_backbone(key, device=args.device)
        if query.kind == "photo":  # the first call pays for lazy set-up: keep it out of the ms
            backbone.encode_images([query_image])
        with progress_bar(f"index ({key})") as bar:
            index = open_index(library, backbone, progress=bar)
        indexed.append((index, backbone))
        # Prepared as the Compare tab prepares it: the same fits beside the cache's index.
        prepared.append(
            None
            if variant is None
            else prepare_for_library(
                index,
                library_name=library.name,
                name=variant,
                backbone=backbone,
                group_ids=cached_copy_groups(index, library),
            )
        )
    # Prediction sets calibrated as the Search tab does: each index, leave-one-case-out at this
    # k. They belong to the plain ranking, so a variant's rows have none.
    calibrations = [
        None
        if variant is not None
        else vote_calibration(
            index, k=args.k, metric="cosine", group_ids=cached_copy_groups(index, library)
        )
        for index, _ in indexed
    ]
    comparison = compare(indexed, query, k=args.k, variants=prepared, calibrations=calibrations)
    if args.sheet:
        saved = save_sheet(comparison, args.sheet, query_image=query_image)
        # On stderr with --json, so that stdout stays one JSON document.
        print(f"Contact sheet: {saved}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps({"library": library.name, **comparison.to_dict()}, indent=2))
    else:
        _print_text(comparison)
    return 0


@dataclass(frozen=True)
class CliTools:
    """The command line's own helpers (library loading with a bar, backbone loading), handed
    over by ``data_index.__main__`` so that this module does not import it back."""

    library: Callable[[str], CaseLibrary]
    backbone: Callable[..., object]
    progress_bar: Callable


def add_compare_parser(sub, *, tools: CliTools) -> None:
    p = sub.add_parser("compare", help="top-k of 2-4 backbones on one query, side by side")
    p.add_argument("--library", required=True)
    p.add_argument("--backbones", required=True, help="2-4 registry keys, comma-separated")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--image", help="a query photo")
    query.add_argument("--case", help="a library image (its path as listed) or case id")
    p.add_argument("--label", help="the query photo's diagnosis, to frame the results")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.add_argument("--sheet", help="also save a 16:9 PNG contact sheet here")
    p.add_argument(
        "--variant",
        help=f"rank every row with a retrieval variant: {', '.join(IN_SEARCH)} (fitted once per "
        "library and kept beside its index, as the Compare tab does)",
    )
    p.add_argument("--device", default=None)
    p.set_defaults(func=functools.partial(cmd_compare, tools=tools))
