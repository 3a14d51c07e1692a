"""A million cases: one HNSW build per dtype at 1M vectors, saved and reopened by the index store.

    python -m benchmarks.perf.million                      # 1M vectors, dim 512, i8 then f16
    python -m benchmarks.perf.million --n 20000 --dim 64   # a small rehearsal

Library vectors are the search benchmark's clustered samples grown from real efficientnet-lite0
embeddings of the shared datasets (benchmarks.perf.search_vectors). Each dtype is built once with
usearch's multi-threaded add; expansion_search is tuned on separate queries to a recall target;
the index is then written by ``data_index.store.write_version`` with the tuned settings in its
manifest and reopened as a ``CaseIndex``, so the figures are those of the index a user gets.
Reported per dtype: build time and rate, RSS growth and usearch's own memory figure, index file
size, and on evaluation queries that tuned nothing, recall@10 against exact search with the
median and p99 single-query time (one thread, as the app searches) twice: the bare graph walk,
and ``CaseIndex.search_vector``, the app's call (hits built; an i8 index re-ranked by its stored
vectors).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from benchmarks.perf.search_methods import (
    Tuning,
    exact_top_k,
    hnsw_search,
    recall_at_k,
    time_calls,
    tune_expansion,
)
from benchmarks.perf.search_vectors import DEFAULT_CACHE, cluster_model, real_embeddings, sample
from benchmarks.timing import machine_description
from data_index.case_index import CaseIndex
from data_index.locations import REPO_ROOT
from data_index.store import (
    CONNECTIVITY,
    FORMAT,
    FORMAT_VERSION,
    INDEX_FILE,
    METRIC,
    new_usearch_index,
    resolve_version,
    write_version,
)

RESULTS = REPO_ROOT / "benchmarks" / "results"
K = 10
ADD_BLOCK = 50_000


def rss_mb() -> float:
    """This process's resident set size now, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build(vectors: np.ndarray, *, dtype: str, expansion_add: int, threads: int, log) -> tuple:
    """An HNSW index of ``vectors`` (keys = row numbers), its build seconds and RSS growth."""
    index = new_usearch_index(vectors.shape[1], dtype)
    index.expansion_add = expansion_add
    before = rss_mb()
    started = time.perf_counter()
    for start in range(0, len(vectors), ADD_BLOCK):
        stop = min(start + ADD_BLOCK, len(vectors))
        index.add(np.arange(start, stop, dtype=np.uint64), vectors[start:stop], threads=threads)
        done = time.perf_counter() - started
        log(f"  {dtype}: {stop:,} vectors in {done:.0f} s ({stop / done:,.0f}/s)")
    return index, time.perf_counter() - started, rss_mb() - before


def tune_search(idx: CaseIndex, *, queries: np.ndarray, truth: np.ndarray, target: float) -> Tuning:
    """expansion_search tuned on ``search_vector``, the app's call (with an i8 re-rank)."""
    return tune_expansion(
        index=idx.index,
        find=lambda: np.array([[h.key for h in idx.search_vector(q, k=K)] for q in queries]),
        truth=truth,
        target=target,
    )


def _figures(prefix: str, timing, truth: np.ndarray) -> dict:
    found = np.vstack([np.asarray(r, dtype=np.int64).reshape(1, -1) for r in timing.results])
    return {
        f"{prefix}_median_ms": round(float(np.median(timing.seconds) * 1e3), 3),
        f"{prefix}_p99_ms": round(float(np.percentile(timing.seconds, 99) * 1e3), 3),
        f"{prefix}_recall_at_10": round(recall_at_k(found=found, truth=truth, k=K), 4),
    }


def measure_dtype(
    *, library, tune, evaluate, truth_tune, truth_eval, dtype, args, folder: Path, log
) -> dict:
    index, build_s, rss_growth = build(
        library, dtype=dtype, expansion_add=args.expansion_add, threads=args.threads, log=log
    )
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "metric": METRIC,
        "dim": int(library.shape[1]),
        "dtype": dtype,
        "count": len(library),
        "search": {"connectivity": CONNECTIVITY, "expansion_add": args.expansion_add},
    }
    names = [f"v{i}" for i in range(len(library))]
    cases = pd.DataFrame(
        {
            "key": np.arange(len(library), dtype=np.uint64),
            "path": names,
            "relpath": names,
            "label": "synthetic",
            "case_id": names,
        }
    )
    # Tuned through the app's own call, so an i8 index is tuned with its re-rank.
    in_memory = CaseIndex(index=index, cases=cases, raw=library, manifest=manifest)
    tuning = tune_search(in_memory, queries=tune, truth=truth_tune, target=args.tune_target)
    manifest["search"]["expansion_search"] = tuning.chosen
    memory_usage_mb = index.memory_usage / 2**20
    started = time.perf_counter()
    write_version(folder, index=index, cases=cases, raw=library, manifest=manifest)
    save_s = time.perf_counter() - started
    del index, cases, in_memory
    started = time.perf_counter()
    loaded = CaseIndex.load(folder)
    load_s = time.perf_counter() - started
    if loaded.index.expansion_search != tuning.chosen:
        raise AssertionError("the reopened index lost the tuned expansion_search")
    graph = time_calls(
        call=lambda q: hnsw_search(index=loaded.index, queries=q, threads=1),
        inputs=list(evaluate),
        warmup=5,
    )
    app = time_calls(
        call=lambda q: [h.key for h in loaded.search_vector(q, k=K)],
        inputs=list(evaluate),
        warmup=5,
    )
    file_mb = (resolve_version(folder) / INDEX_FILE).stat().st_size / 2**20
    record = {
        "dtype": dtype,
        "n": len(library),
        "dim": int(library.shape[1]),
        "threads_build": args.threads,
        "build_s": round(build_s, 1),
        "build_per_s": round(len(library) / build_s),
        "rss_growth_mb": round(rss_growth),
        "usearch_memory_mb": round(memory_usage_mb),
        "index_file_mb": round(file_mb),
        "save_s": round(save_s, 1),
        "load_s": round(load_s, 1),
        "manifest_search": loaded.manifest["search"],
        "tuning_curve": {str(k): v for k, v in tuning.curve.items()},
        "tuning_reached": tuning.reached,
        "queries": len(evaluate),
        **_figures("graph", graph, truth_eval),
        **_figures("search", app, truth_eval),
    }
    shutil.rmtree(folder, ignore_errors=True)
    return record


def render(doc: dict) -> str:
    setup = doc["setup"]
    lines = [
        "# A million cases: HNSW build and search through the index store",
        "",
        f"`python -m benchmarks.perf.million` ({setup['wall_s']} s). {setup['vectors']}",
        "",
        f"- {setup['n']:,} vectors of dim {setup['dim']}, connectivity {CONNECTIVITY}, "
        f"expansion_add {setup['expansion_add']}, build on {setup['threads']} threads; "
        "expansion_search tuned through search_vector to recall@10 >= "
        f"{setup['tune_target']} on {setup['queries']} tuning queries and stored in the "
        f"manifest; recall and times on {setup['queries']} "
        "other queries, one thread each.",
        f"- Machine: {setup['machine']}; load average {setup['load_before']} before, "
        f"{setup['load_after']} after. usearch {setup['usearch']}.",
        "",
        "| dtype | build s | vectors/s | RSS growth MB | usearch MB | file MB | "
        "expansion_search | graph: median ms | p99 ms | recall@10 | search_vector: median ms "
        "| p99 ms | recall@10 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["records"]:
        lines.append(
            f"| {r['dtype']} | {r['build_s']:,} | {r['build_per_s']:,} | {r['rss_growth_mb']:,} "
            f"| {r['usearch_memory_mb']:,} | {r['index_file_mb']:,} "
            f"| {r['manifest_search']['expansion_search']} | {r['graph_median_ms']} "
            f"| {r['graph_p99_ms']} | {r['graph_recall_at_10']} | {r['search_median_ms']} "
            f"| {r['search_p99_ms']} | {r['search_recall_at_10']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--dtypes", nargs="+", default=["i8", "f16"])
    parser.add_argument("--expansion-add", type=int, default=64)
    parser.add_argument("--tune-target", type=float, default=0.97)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--work", type=Path, default=None, help="where the index is written")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"results folder (default {RESULTS})"
    )
    args = parser.parse_args(argv)
    if args.n < 2 * K or args.threads < 1:
        parser.error("--n must be at least 20 and --threads at least 1.")

    def log(text: str) -> None:
        print(text, flush=True)

    started = time.perf_counter()
    machine = machine_description()
    load_before = [round(x, 1) for x in machine["load_average"] or []]
    real = real_embeddings(shared_root=args.shared.resolve(), cache_dir=args.cache)
    model = cluster_model(real=real, dim=args.dim, seed=0)
    library = sample(model=model, n=args.n, seed=1)
    tune = sample(model=model, n=args.queries, seed=2)
    evaluate = sample(model=model, n=args.queries, seed=3)
    with threadpool_limits(limits=args.threads):
        truth_tune = exact_top_k(queries=tune, library=library, k=K)
        truth_eval = exact_top_k(queries=evaluate, library=library, k=K)
    log(f"{args.n:,} vectors of dim {args.dim} and exact neighbours ready")
    work = Path(tempfile.mkdtemp(prefix="million-", dir=args.work))
    records = []
    try:
        for dtype in args.dtypes:
            record = measure_dtype(
                library=library,
                tune=tune,
                evaluate=evaluate,
                truth_tune=truth_tune,
                truth_eval=truth_eval,
                dtype=dtype,
                args=args,
                folder=work / dtype,
                log=log,
            )
            log(json.dumps({k: v for k, v in record.items() if k != "tuning_curve"}))
            records.append(record)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    import usearch

    doc = {
        "setup": {
            "n": args.n,
            "dim": args.dim,
            "expansion_add": args.expansion_add,
            "tune_target": args.tune_target,
            "queries": args.queries,
            "threads": args.threads,
            "vectors": "Clustered samples around real efficientnet-lite0 embeddings of the "
            "shared datasets, projected to the stated dim (benchmarks.perf.search_vectors).",
            "machine": f"{machine['cpu_count']} CPUs",
            "load_before": load_before,
            "load_after": [round(x, 1) for x in machine_description()["load_average"] or []],
            "usearch": usearch.__version__,
            "wall_s": round(time.perf_counter() - started, 1),
        },
        "records": records,
    }
    out = args.out or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    (out / "million.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "million.md").write_text(render(doc))
    print(render(doc))


if __name__ == "__main__":
    main()
