"""Search-path overhead: CaseIndex.search_vector (with case exclusion) against bare usearch.

One run measures, at each library size, the median time per query of the bare usearch call
and of the product's ``CaseIndex.search_vector`` with the query's own case and two other
cases (its copies) excluded, interleaved repeat by repeat on one thread, and their ratio; then
a leave-one-case-out sweep, query by query and through ``CaseIndex.search_vectors`` (one
usearch batch call). Vectors are clustered around real efficientnet-lite0 embeddings of the
shared datasets (see ``search_vectors``), three images per case.

    .venv/bin/python -m benchmarks.perf.search_overhead            # 1k, 10k, 100k
    .venv/bin/python -m benchmarks.perf.search_overhead --quick    # 1k, 5k, fewer queries
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from benchmarks.perf.search_vectors import DEFAULT_CACHE, cluster_model, real_embeddings, sample
from benchmarks.timing import machine_description
from data_index.case_index import EXACT_SEARCH_MAX_CASES, CaseIndex
from data_index.locations import REPO_ROOT
from data_index.store import new_usearch_index

RESULTS = REPO_ROOT / "benchmarks" / "results" / "search_overhead.json"
SEED = 20_261_201
SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 5_000)
IMAGES_PER_CASE = 3
K = 10
TARGET_RATIO = 1.5


def synthetic_index(vectors: np.ndarray, *, seed: int, threads: int) -> CaseIndex:
    """A CaseIndex over ``vectors`` with a cases table like a real library's."""
    n, dim = vectors.shape
    rng = np.random.default_rng(seed)
    keys = np.arange(n, dtype=np.int64)
    cases = pd.DataFrame(
        {
            "key": keys,
            "path": [f"images/{i:07d}.jpg" for i in range(n)],
            "label": [f"class{i}" for i in rng.integers(0, 20, n)],
            "case_id": [f"case{i // IMAGES_PER_CASE}" for i in range(n)],
            "site": rng.choice(["arm", "back", "face", "leg"], n),
            "age": rng.integers(1, 90, n),
        }
    )
    index = new_usearch_index(dim, "f32")
    index.add(keys.astype(np.uint64), vectors, threads=threads)
    manifest = {"dim": dim, "dtype": "f32", "next_key": n}
    return CaseIndex(index=index, cases=cases, raw=vectors, manifest=manifest)


def _exclusions(idx: CaseIndex, rows: np.ndarray) -> list[tuple[str, ...]]:
    """The query's own case and two further cases, standing in for its near-duplicates."""
    n_cases = (len(idx) + IMAGES_PER_CASE - 1) // IMAGES_PER_CASE
    case = rows // IMAGES_PER_CASE
    return [
        (f"case{c}", f"case{(c + 1) % n_cases}", f"case{(c + 2) % n_cases}") for c in case.tolist()
    ]


def time_overhead(idx: CaseIndex, *, n_queries: int, repeats: int, seed: int) -> dict:
    """Median seconds per query, bare usearch and product path, interleaved per repeat."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(idx), size=min(n_queries, len(idx)), replace=False)
    raw = idx.raw[rows]
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    excluded = _exclusions(idx, rows)
    exact = idx.exact
    bare_s, product_s = [], []
    for q in unit[:20]:  # warm-up: first calls pay for page faults and lazy setup
        idx.index.search(q, K, exact=exact)
    for q, ids in zip(raw[:20], excluded[:20], strict=True):
        idx.search_vector(q, k=K, exclude_case_ids=ids)
    for _ in range(repeats):
        start = time.perf_counter()
        for q in unit:
            idx.index.search(q, K, exact=exact)
        bare_s.append((time.perf_counter() - start) / len(rows))
        start = time.perf_counter()
        for q, ids in zip(raw, excluded, strict=True):
            idx.search_vector(q, k=K, exclude_case_ids=ids)
        product_s.append((time.perf_counter() - start) / len(rows))
    bare, product = float(np.median(bare_s)), float(np.median(product_s))
    return {
        "queries": len(rows),
        "repeats": repeats,
        "bare_usearch_ms": bare * 1e3,
        "search_vector_ms": product * 1e3,
        "ratio": product / bare,
        "overhead_ms": (product - bare) * 1e3,
        "bare_spread_ms": [min(bare_s) * 1e3, max(bare_s) * 1e3],
        "search_vector_spread_ms": [min(product_s) * 1e3, max(product_s) * 1e3],
    }


def time_leave_one_out(idx: CaseIndex, *, n_queries: int, threads: int, seed: int) -> dict:
    """Leave-one-case-out: one ``search_vector`` per query against one batch call."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(idx), size=min(n_queries, len(idx)), replace=False))
    raw = idx.raw[rows]
    own = [(idx.cases["case_id"].iat[r],) for r in rows.tolist()]
    start = time.perf_counter()
    single = [
        idx.search_vector(q, k=K, exclude_case_ids=ids) for q, ids in zip(raw, own, strict=True)
    ]
    loop_s = time.perf_counter() - start
    start = time.perf_counter()
    batch = idx.search_vectors(raw, k=K, exclude_case_ids=own)
    batch_s = time.perf_counter() - start
    same = np.mean(
        [[h.key for h in a] == [h.key for h in b] for a, b in zip(single, batch, strict=True)]
    )
    return {
        "loo_queries": len(rows),
        "loo_loop_ms_per_query": loop_s / len(rows) * 1e3,
        "loo_batch_ms_per_query": batch_s / len(rows) * 1e3,
        "loo_batch_threads": threads,
        "loo_same_hits_fraction": float(same),
    }


def render(records: list[dict]) -> str:
    lines = [
        f"| cases | search | bare usearch ms | search_vector ms | ratio (target <= "
        f"{TARGET_RATIO}) | leave-one-out loop ms/q | batch ms/q |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        lines.append(
            f"| {r['n']:,} | {r['search']} | {r['bare_usearch_ms']:.3f} | "
            f"{r['search_vector_ms']:.3f} | {r['ratio']:.2f} | "
            f"{r['loo_loop_ms_per_query']:.3f} | {r['loo_batch_ms_per_query']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.perf.search_overhead", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, a few queries")
    parser.add_argument("--dim", type=int, default=1280, help="vector width (default 1280)")
    parser.add_argument("--queries", type=int, default=500, help="timed queries per size")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="threads for add and batches")
    parser.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, default=None, help=f"write JSON (e.g. {RESULTS})")
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else SIZES
    queries = 100 if args.quick else args.queries
    repeats = 3 if args.quick else args.repeats
    try:
        real = real_embeddings(shared_root=args.shared, cache_dir=args.cache)
    except ValueError as err:
        parser.error(str(err))
    model = cluster_model(real=real, dim=args.dim, seed=SEED)
    records = []
    for n in sizes:
        started = time.perf_counter()
        vectors = sample(model=model, n=n, seed=SEED + n)
        idx = synthetic_index(vectors, seed=SEED, threads=args.threads)
        build_s = time.perf_counter() - started
        with threadpool_limits(limits=1):
            timing = time_overhead(idx, n_queries=queries, repeats=repeats, seed=SEED)
        loo = time_leave_one_out(idx, n_queries=min(n, 2_000), threads=args.threads, seed=SEED)
        search = "exact" if idx.exact else "hnsw"
        record = {"n": n, "dim": args.dim, "k": K, "search": search, "build_s": build_s}
        records.append({**record, **timing, **loo})
        print(json.dumps(records[-1]), flush=True)
        del idx, vectors
    table = render(records)
    print(table)
    doc = {
        "machine": machine_description(),
        "note": (
            "search_vector excludes the query's case and two more cases; bare usearch is the "
            f"same k={K} query with no exclusion. Exact scan up to {EXACT_SEARCH_MAX_CASES:,} "
            "cases, HNSW above. Single queries on one thread, interleaved per repeat."
        ),
        "records": records,
        "table": table,
    }
    if args.out is not None:
        args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
