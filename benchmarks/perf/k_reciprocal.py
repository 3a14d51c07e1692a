"""k-reciprocal re-ranking per query: on the whole library against a shortlist, by library size.

For each library size (synthetic unit vectors, seeded) it times, on one thread (BLAS too), the
plain exact search for 10 cases, the registered ``k-reciprocal`` variant (an exact search for
its shortlist, then the re-ranking among the shortlist), and, up to ``--full-max`` cases, the
same re-ranking with the whole library as the shortlist (Zhong et al.'s (2017) setting, whose
cost grows with the square of the library for the distances and the cube for the neighbour
overlaps). Medians and 90th percentiles in ms per query.

    .venv/bin/python -m benchmarks.perf.k_reciprocal                 # 1k, 3k, 10k
    .venv/bin/python -m benchmarks.perf.k_reciprocal --sizes 1000 --queries 5
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from usearch.index import MetricKind
from usearch.index import search as exact

from benchmarks.timing import machine_description
from data_index.locations import REPO_ROOT
from data_index.variants import VARIANTS, k_reciprocal_order
from models.base import l2_normalize

RESULTS = REPO_ROOT / "benchmarks" / "results" / "k_reciprocal.json"
SEED = 20_261_201
SIZES = (1_000, 3_000, 10_000)
TITLE = "# k-reciprocal re-ranking: ms per query by library size"


def _timed(call: Callable[[int], object], queries: range) -> dict:
    call(queries[0])  # warm-up
    seconds = []
    for q in queries:
        started = time.perf_counter()
        call(q)
        seconds.append(time.perf_counter() - started)
    ms = 1000 * np.asarray(seconds)
    return {
        "median_ms": round(float(np.median(ms)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "queries": len(seconds),
    }


def measure(*, n: int, dim: int, queries: int, full_max: int, seed: int = SEED) -> list[dict]:
    """Records for one library size: plain, shortlisted and (up to ``full_max``) full."""
    library = l2_normalize(np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32))
    params = dict(VARIANTS["k-reciprocal"].params)
    shortlist = int(params["shortlist"])
    asked = range(min(queries, n))

    def plain(q: int) -> object:
        return exact(library, library[q], 10, MetricKind.Cos, exact=True, threads=1)

    def shortlisted(q: int) -> object:
        found = exact(library, library[q], shortlist + 1, MetricKind.Cos, exact=True, threads=1)
        keys = found.keys.astype(np.int64)
        keys = keys[keys != q]  # the query's own row left out, as its case is
        return k_reciprocal_order(library[q], library[keys], params=params)

    def full(q: int) -> object:
        rest = np.delete(np.arange(n), q)
        return k_reciprocal_order(library[q], library[rest], params=params)

    out = []
    with threadpool_limits(limits=1):
        out.append({"method": "plain exact search", "n": n, **_timed(plain, asked)})
        out.append(
            {"method": f"k-reciprocal, shortlist {shortlist}", "n": n, **_timed(shortlisted, asked)}
        )
        if n <= full_max:
            few = range(min(max(2, queries // 10), n))
            out.append({"method": "k-reciprocal, whole library", "n": n, **_timed(full, few)})
    return [{**r, "dim": dim, "params": params} for r in out]


def markdown(records: list[dict], *, machine: dict) -> str:
    lines = [
        "| cases | method | median ms / query | p90 ms | queries timed |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in records:
        lines.append(
            f"| {r['n']:,} | {r['method']} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | "
            f"{r['queries']} |"
        )
    load = ", ".join(f"{x:.2f}" for x in machine.get("load_average") or [])
    where = f"{machine.get('cpu_model')}, {machine.get('cpu_count')} cores, load average {load}"
    return "\n".join([f"One thread (BLAS too); {where}.", "", *lines])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.perf.k_reciprocal", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="library sizes")
    parser.add_argument("--dim", type=int, default=1280, help="vector width (default 1280)")
    parser.add_argument("--queries", type=int, default=50, help="timed queries per size")
    parser.add_argument(
        "--full-max",
        type=int,
        default=3_000,
        help="largest library re-ranked whole (its memory grows with the square)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help=f"write JSON and a Markdown table (e.g. {RESULTS})"
    )
    args = parser.parse_args(argv)
    records = []
    for n in (int(s) for s in args.sizes.split(",") if s.strip()):
        found = measure(n=n, dim=args.dim, queries=args.queries, full_max=args.full_max)
        for r in found:
            print(
                f"{r['n']:>7,}  {r['method']:<32} {r['median_ms']:9.2f} ms  (p90 {r['p90_ms']:.2f})"
            )
        records += found
    machine = machine_description()
    print(markdown(records, machine=machine))
    if args.out:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        payload = {"date": stamp, "machine": machine, "records": records}
        args.out.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        table = args.out.with_suffix(".md")
        table.write_text(f"{TITLE}\n\n{markdown(records, machine=machine)}\n", encoding="utf-8")
        print(f"Written to {args.out} and {table}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
