"""Search benchmark: latency and recall@10 of exact and HNSW search.

Compares usearch exact, usearch HNSW (f32, f16), numpy brute force and Mahbod et al.'s (2024)
per-query sklearn cosine_similarity + argsort on clustered vectors grown from real image
embeddings, and measures the library size above which HNSW answers a single query faster than exact.

    .venv/bin/python -m benchmarks.perf.search            # full run (~25 min, 2 cores)
    .venv/bin/python -m benchmarks.perf.search --quick    # CI-sized, under a minute
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import usearch
from threadpoolctl import threadpool_limits

from benchmarks.perf import search_methods as sm
from benchmarks.perf.search_measure import (
    RECALL_TARGET,
    TUNING_MARGIN,
    Log,
    brute_force_records,
    hnsw_records,
    numpy_single_record,
)
from benchmarks.perf.search_report import (
    build_rates,
    crossover,
    render_markdown,
    render_table,
    target_check,
)
from benchmarks.perf.search_vectors import (
    DEFAULT_CACHE,
    RealEmbeddings,
    cluster_model,
    neighbour_structure,
    real_embeddings,
    sample,
)
from benchmarks.timing import machine_description
from data_index.locations import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"
SEED = 20_240_603
FULL_SIZES = (1_300, 10_000, 100_000, 1_000_000)
# Extra prefix sizes between the main ones, measured only for the exact-vs-HNSW crossover.
CROSSOVER_SIZES = (100, 250, 500, 1_000, 2_500, 5_000, 20_000, 40_000)
QUICK_SIZES = (1_300, 5_000)
# HNSW builds stop here by default: on 2 busy cores one 1M x 1024 f32 build alone would take
# over half an hour (the run records the measured build rate); --hnsw-max lifts the cap.
DEFAULT_HNSW_MAX = 100_000
MACHINE_NOTE = (
    "Timings taken on a shared, busy 2-core machine (other people's jobs were running): "
    "compare methods within one run, not absolute numbers across machines."
)


def run(
    *,
    sizes: Sequence[int],
    dims: Sequence[int],
    hnsw_max: int,
    n_eval: int,
    n_tune: int,
    threads: int,
    repeats: int,
    real: RealEmbeddings,
    crossover_sizes: Sequence[int],
    quick: bool,
    log: Log,
) -> dict:
    """Every measurement for every (dim, size) around the `real` centres; the results doc."""
    records, structure = [], []
    for dim in dims:
        model = cluster_model(real=real, dim=dim, seed=SEED)
        library = sample(model=model, n=max(sizes), seed=SEED + 1)
        q_eval = sample(model=model, n=n_eval, seed=SEED + 2)
        q_tune = sample(model=model, n=n_tune, seed=SEED + 3)
        extra = [c for c in crossover_sizes if c < min(hnsw_max, max(sizes))]
        checkpoints = sorted({*sizes, *extra})
        truths = {}
        for n in checkpoints:
            truths[n] = (
                sm.exact_top_k(queries=q_eval, library=library[:n]),
                sm.exact_top_k(queries=q_tune, library=library[:n]),
            )
        for n in sizes:
            stats = neighbour_structure(vectors=library[:n], seed=SEED + 4)
            structure.append({"n": n, "dim": dim, **stats})
            log({"kind": "structure", **structure[-1]})
        for n in checkpoints:
            if n in sizes:
                records += brute_force_records(
                    library=library[:n],
                    dim=dim,
                    q_eval=q_eval,
                    truth=truths[n][0],
                    threads=threads,
                    repeats=repeats,
                    matrix_exact=n > hnsw_max,
                    log=log,
                )
            else:
                records.append(
                    numpy_single_record(
                        library=library[:n], dim=dim, q_eval=q_eval, truth=truths[n][0], log=log
                    )
                )
        hnsw_points = [n for n in checkpoints if n <= hnsw_max]
        for dtype in ("f32", "f16"):
            records += hnsw_records(
                library=library,
                dim=dim,
                dtype=dtype,
                checkpoints=hnsw_points,
                main_sizes=set(sizes),
                q_eval=q_eval,
                q_tune=q_tune,
                truths=truths,
                threads=threads,
                repeats=repeats,
                log=log,
            )
            gc.collect()
        del library, truths
        gc.collect()
    machine = machine_description()
    return {
        "benchmark": "search",
        "note": MACHINE_NOTE,
        "setup": {
            "k": sm.K,
            "metric": "cosine on L2-normalised float32 vectors",
            "recall_target": RECALL_TARGET,
            "tuning_target": RECALL_TARGET + TUNING_MARGIN,
            "seed": SEED,
            "sizes": list(sizes),
            "dims": list(dims),
            "quick": quick,
            "hnsw_max_size": hnsw_max,
            "eval_queries": n_eval,
            "tuning_queries": n_tune,
            "batched_repeats": repeats,
            "threads": threads,
            "single_query_threads": 1,
            "usearch": usearch.__version__,
            "numpy": np.__version__,
            "cpu": machine["cpu_model"],
            "cpus": machine["cpu_count"],
            "hnsw": {
                "connectivity": sm.CONNECTIVITY,
                "expansion_add": sm.EXPANSION_ADD,
                "expansion_search_grid": list(sm.EXPANSION_SEARCH_GRID),
            },
            "vectors": "real efficientnet-lite0 embeddings of ../shared/datasets projected to "
            "dim by a seeded orthonormal map, as centres; samples = centre + "
            "anisotropic noise (real within-class principal directions + isotropic "
            "floor), L2-normalised; queries drawn the same way, not in the library",
            "centres": len(real.vectors),
        },
        "neighbour_structure": structure,
        "records": records,
        "crossover": crossover(records),
        "target_100k": target_check(records, n=100_000),
        "hnsw_build": build_rates(records),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--dims", type=int, nargs="+", default=None)
    parser.add_argument("--quick", action="store_true", help="CI-sized run (< 1 minute)")
    parser.add_argument(
        "--hnsw-max",
        type=int,
        default=None,
        help="largest library size that gets HNSW indexes (build cost)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument(
        "--out", type=Path, default=None, help=f"default {RESULTS}; /tmp for --quick"
    )
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1 (0 would let usearch take every core).")
    sizes = tuple(args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES))
    dims = tuple(args.dims or ((512,) if args.quick else (512, 1024)))
    hnsw_max = args.hnsw_max or min(max(sizes), DEFAULT_HNSW_MAX)
    started = time.perf_counter()

    def log(rec: dict) -> None:
        shown = {
            k: round(v, 4) if isinstance(v, float) else v
            for k, v in rec.items()
            if k != "tuning_curve"
        }
        print(json.dumps(shown), flush=True)

    with threadpool_limits(limits=args.threads):
        doc = run(
            sizes=sizes,
            dims=dims,
            hnsw_max=hnsw_max,
            n_eval=20 if args.quick else 200,
            n_tune=20 if args.quick else 200,
            threads=args.threads,
            repeats=3,
            real=real_embeddings(shared_root=args.shared.resolve(), cache_dir=args.cache),
            log=log,
            crossover_sizes=() if args.quick else CROSSOVER_SIZES,
            quick=args.quick,
        )
    doc["setup"]["wall_s"] = round(time.perf_counter() - started, 1)
    table = render_table(doc)
    print(table)
    # A quick run is a smoke test: keep it out of the committed results unless asked.
    out = args.out or (args.cache / "results" if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    (out / "search_benchmark.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "search_benchmark.md").write_text(render_markdown(doc, table=table))
    print(f"wrote {out}/search_benchmark.json and .md after {doc['setup']['wall_s']} s")


if __name__ == "__main__":
    main()
