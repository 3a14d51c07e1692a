"""`python -m benchmarks`: run the backbone comparison on any library, and report it.

    python -m benchmarks run --library PATH [--library PATH2] --backbones a,b,c \\
        --protocol loo[,linear-probe|all] [--out RESULTS.jsonl[.gz]] [--csv OUT.csv] \\
        [--random-weights]
    python -m benchmarks report RESULTS.jsonl[.gz] [--markdown OUT.md] [--plots DIR] [--csv OUT.csv]

Without --out each run writes new files under the cache folder, one per library
(<cache>/benchmark-runs/<UTC time>-<library>.jsonl), and prints where: a user's run never
touches the committed results. Only an explicit --out benchmarks/results/results.jsonl.gz
appends to those. An --out name ending in .gz is written gzipped (each run one more gzip member);
its per-query records go beside it either way (results.queries.jsonl.gz).

Exit codes: 0 done (skipped protocols are listed, not errors); 2 the command could not run
(unknown backbone or protocol, missing weights, bad library, unreadable results), one
sentence on stderr.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from benchmarks.embedded import ARCHITECTURE_ONLY, parse_conventions
from benchmarks.latency import LatencySettings
from benchmarks.protocols import REGISTRY, choices_text, parse_protocols
from benchmarks.records import export_csv, queries_path, read_records
from benchmarks.report.markdown import load, markdown_report, save_plots
from benchmarks.runner import BenchmarkCancelled, check_backbones, open_library, run_benchmark
from data_index.locations import cache_root, slug
from data_index.variants import VARIANTS, parse_variants

EXIT_ERROR = 2
RUNS_FOLDER = "benchmark-runs"  # under the cache root, beside embeddings and indexes


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own usage errors also exit 2
        self.exit(EXIT_ERROR, f"{self.prog}: {message}\n")


def _protocol_listing() -> str:
    """The registered protocols, one line each, with what each needs beyond real weights."""
    lines = ["protocols (--protocol); every one needs real weights, not architecture-only:"]
    for p in REGISTRY.values():
        lines.append(f"  {p.name} ({', '.join(p.aliases)})" if p.aliases else f"  {p.name}")
        lines.append(f"      {p.label}")
        lines += [f"      needs {r.needs}" for r in p.requirements]
        if p.paper_conventions:
            lines.append(f"      --conventions paper: {p.paper_conventions}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="embed libraries and score backbones",
        epilog=_protocol_listing(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--library", action="append", required=True, help="repeat for several")
    run.add_argument("--backbones", required=True, help="comma-separated registry keys")
    run.add_argument(
        "--protocol",
        default="loo",
        help=f"comma-separated protocols (see below): {choices_text()}",
    )
    run.add_argument(
        "--out",
        help="JSONL file the records append to, gzipped when it ends in .gz (default: a new "
        f"file per library under <cache>/{RUNS_FOLDER}/; give "
        "benchmarks/results/results.jsonl.gz to update the committed results)",
    )
    run.add_argument("--csv", help="also write every record of --out (or of this run) as CSV")
    run.add_argument(
        "--variants",
        type=parse_variants,
        default=[],
        help="comma-separated retrieval variants measured against their plain backbone, "
        f"leave-one-case-out: {', '.join(VARIANTS)} (fusion:a+b[+c] of --backbones)",
    )
    run.add_argument(
        "--random-weights",
        action="store_true",
        help="architecture-only backbones: timings only, accuracy never recorded",
    )
    run.add_argument(
        "--conventions",
        default="ours",
        help="ours (default: cosine, the query's case and copies left out, ties are misses), "
        "paper (each paper's public code: see the protocols below) or both",
    )
    run.add_argument(
        "--stratify",
        metavar="COLUMN",
        help="also report Top-1, Top-5 and mAP@5 per value of this manifest column "
        "(e.g. a skin type, sex, body site, source or split), with intervals",
    )
    run.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: best available)")
    run.add_argument("--timing-batch", type=int, default=16, help="images per timed batch")
    run.add_argument("--timing-repeats", type=int, default=5, help="timed calls (median taken)")
    run.add_argument("--workers", type=int, help="image decoder processes while embedding")
    report = commands.add_parser("report", help="Markdown tables and HTML plots from records")
    report.add_argument("results", help="a JSONL file written by `run` (.jsonl or .jsonl.gz)")
    report.add_argument("--markdown", help="write the report here (default: print it)")
    report.add_argument("--plots", help="folder for the HTML figures")
    report.add_argument("--csv", help="write the records (newest run of each) as CSV here")
    report.add_argument(
        "--variants-from",
        metavar="JSONL",
        help="variant records (e.g. benchmarks/results/variants.jsonl) drawn on the figures, "
        "each joined to its base backbone",
    )
    report.add_argument(
        "--note", action="append", default=[], help="a caveat line for the report (repeatable)"
    )
    return parser


def _progress(fraction: float, message: str) -> None:
    print(f"[{100 * fraction:5.1f}%] {message}", file=sys.stderr, flush=True)


def new_run_file(library_name: str, *, started: datetime) -> Path:
    """``<cache>/benchmark-runs/<UTC time>-<library>.jsonl``, a name no earlier run used."""
    folder = cache_root() / RUNS_FOLDER
    stem = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{slug(library_name)}"
    path, n = folder / f"{stem}.jsonl", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.jsonl"
    return path


def cmd_run(args: argparse.Namespace) -> int:
    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    protocols = parse_protocols(args.protocol)
    conventions = parse_conventions(args.conventions)
    check_backbones(backbones, random_weights=args.random_weights)  # fail before any work
    settings = LatencySettings(batch_size=args.timing_batch, repeats=args.timing_repeats)
    if args.random_weights:
        print(f"Note: {ARCHITECTURE_ONLY}", file=sys.stderr)
    started = datetime.now(UTC)
    written: list[Path] = []
    for path in args.library:
        library = open_library(path)
        out = Path(args.out) if args.out else new_run_file(library.name, started=started)
        records = run_benchmark(
            library,
            backbones,
            protocols,
            progress=_progress,
            out=out,
            random_weights=args.random_weights,
            device=args.device,
            latency=settings,
            num_workers=args.workers,
            conventions=conventions,
            stratify=args.stratify,
            variants=args.variants,
        )
        _print_summary(records)
        print(f"{len(records)} record(s) of {library.name} appended to {out}")
        if queries_path(out).is_file():
            print(f"Per-query records: {queries_path(out)}")
        written += [out] if out not in written else []
    if args.csv:
        frame = pd.concat([read_records(out) for out in written], ignore_index=True)
        shown = args.out or ", ".join(str(out) for out in written)
        print(f"CSV of all records in {shown}: {export_csv(frame, args.csv)}")
    return 0


def _print_summary(records: list[dict]) -> None:
    for r in records:
        if r["protocol"] == "latency" and r["metric"] == "total_s_per_image":
            print(
                f"{r['library']} / {r['backbone']} ({r['weights_origin']}): "
                f"{r['embed_s_per_image']:.4f} s/image, {r['search_s_per_query']:.6f} s/query"
            )
        elif (
            r["protocol"] == "leave-one-out"
            and r["metric"] == "hit_rate"
            and r["k"] == 1
            and r["class"] is None
        ):
            print(f"  Top-1 {r['value']:.3f} ({r['exclusion']})")
        elif r["metric"] == "skipped":
            print(f"  {r['protocol']} skipped: {r['reason']}")


def cmd_report(args: argparse.Namespace) -> int:
    frame = load(args.results)
    text = markdown_report(frame, source=Path(args.results).name, notes=args.note)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text, encoding="utf-8")
        print(f"Report written to {args.markdown}")
    else:
        print(text)
    if args.plots:
        if args.variants_from:  # variant points on the accuracy-vs-latency figures
            frame = pd.concat([frame, read_records(args.variants_from)], ignore_index=True)
        for path in save_plots(frame, args.plots):
            print(f"Figure: {path}")
    if args.csv:
        print(f"CSV: {export_csv(frame, args.csv)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # usage errors (code 2) and --help (0), as return codes
        return int(exit_.code or 0)
    try:
        return cmd_run(args) if args.command == "run" else cmd_report(args)
    except (ValueError, TypeError, RuntimeError, OSError) as err:
        if isinstance(err, BenchmarkCancelled):
            print(str(err), file=sys.stderr)
            return EXIT_ERROR
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
