"""Timed measurements for the search benchmark: brute-force methods and growing HNSW indexes.

Each function returns flat records (one per method, size, dim and single/batched mode) with
recall@10 against the exact reference and the latency or throughput summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.perf import search_methods as sm

RECALL_TARGET = 0.99
# Tuning aims this much above the target: with a first run tuned to exactly 0.99 on 100
# queries, the 1024-d f32 index at 100k then scored 0.9745 on the held-out evaluation queries.
TUNING_MARGIN = 0.005
Log = Callable[[dict], None]


def brute_force_queries(n: int, n_eval: int) -> int:
    """How many single queries the brute-force methods get: all of them, a handful at 1M."""
    return n_eval if n <= 10_000 else min(n_eval, 100) if n <= 100_000 else min(n_eval, 5)


def _record(**fields) -> dict:
    return {key: value for key, value in fields.items() if value is not None}


def _single(*, method, n, dim, call, queries, truth, warmup, **extra) -> dict:
    """One call per query, every method on one thread (BLAS too), as a request would run.

    A second BLAS thread bought nothing for one query on the busy 2-core machine and put
    multi-millisecond thread wake-ups into the tail, so single queries are pinned to one.
    """
    with threadpool_limits(limits=1):
        timing = sm.time_calls(call=call, inputs=list(queries), warmup=warmup)
    recall = sm.recall_at_k(found=np.stack(timing.results), truth=truth[: len(queries)])
    return _record(
        kind="single",
        method=method,
        n=n,
        dim=dim,
        threads=1,
        recall_at_10=recall,
        **timing.summary(),
        **extra,
    )


def _batched(*, method, n, dim, call, queries, truth, repeats, threads, **extra) -> dict:
    """Whole batch per call, `repeats` timed calls after one warm-up; queries per second."""
    timing = sm.time_calls(call=call, inputs=[queries] * repeats, warmup=1)
    recall = sm.recall_at_k(found=timing.results[0], truth=truth[: len(queries)])
    qps = len(queries) / timing.seconds
    return _record(
        kind="batched",
        method=method,
        n=n,
        dim=dim,
        threads=threads,
        batch=len(queries),
        repeats=repeats,
        recall_at_10=recall,
        qps_median=float(np.median(qps)),
        qps_min=float(qps.min()),
        qps_max=float(qps.max()),
        **extra,
    )


def brute_force_records(
    *,
    library: np.ndarray,
    dim: int,
    q_eval: np.ndarray,
    truth: np.ndarray,
    threads: int,
    repeats: int,
    matrix_exact: bool,
    log: Log,
) -> list[dict]:
    """sklearn cosine + argsort and numpy (and usearch exact where no index is built) at one
    size."""
    n = len(library)
    singles = {
        "queries": q_eval[: brute_force_queries(n, len(q_eval))],
        "n": n,
        "dim": dim,
        "truth": truth,
        "warmup": 1 if n > 100_000 else 3,
    }
    batches = {
        "queries": q_eval if n <= 100_000 else q_eval[:20],
        "n": n,
        "dim": dim,
        "truth": truth,
        "repeats": repeats,
        "threads": threads,
    }
    out = [
        _single(
            method="sklearn-argsort",
            **singles,
            call=lambda q: sm.single_sklearn_argsort(query=q, library=library),
        ),
        _single(
            method="numpy-bruteforce",
            **singles,
            call=lambda q: sm.single_numpy(query=q, library=library),
        ),
        _batched(
            method="numpy-bruteforce",
            **batches,
            call=lambda qs: sm.batched_numpy(queries=qs, library=library),
        ),
    ]
    if matrix_exact:
        impl = "usearch.index.search(exact=True) on the matrix: no index at this size"
        out.append(
            _single(
                method="usearch-exact",
                impl=impl,
                **singles,
                call=lambda q: sm.usearch_exact_matrix(queries=q, library=library, threads=1)[0],
            )
        )
        out.append(
            _batched(
                method="usearch-exact",
                impl=impl,
                **batches,
                call=lambda qs: sm.usearch_exact_matrix(
                    queries=qs, library=library, threads=threads
                ),
            )
        )
    for rec in out:
        log(rec)
    return out


def numpy_single_record(
    *, library: np.ndarray, dim: int, q_eval: np.ndarray, truth: np.ndarray, log: Log
) -> dict:
    """numpy single-query brute force alone, at the extra sizes of the crossover sweep."""
    n = len(library)
    rec = _single(
        method="numpy-bruteforce",
        n=n,
        dim=dim,
        truth=truth,
        warmup=3,
        queries=q_eval[: brute_force_queries(n, len(q_eval))],
        call=lambda q: sm.single_numpy(query=q, library=library),
    )
    log(rec)
    return rec


def _index_records(
    *, index, method, n, dim, q_eval, truth, threads, repeats, batched, exact, **params
) -> list[dict]:
    """Single-query and (at main sizes) batched records for one index at one size."""
    m = brute_force_queries(n, len(q_eval)) if exact else len(q_eval)
    out = [
        _single(
            method=method,
            n=n,
            dim=dim,
            truth=truth,
            queries=q_eval[:m],
            warmup=3 if exact else 10,
            **params,
            call=lambda q: sm.hnsw_search(index=index, queries=q, threads=1, exact=exact)[0],
        )
    ]
    if batched:
        out.append(
            _batched(
                method=method,
                n=n,
                dim=dim,
                threads=threads,
                truth=truth,
                queries=q_eval,
                repeats=repeats,
                **params,
                call=lambda qs: sm.hnsw_search(
                    index=index, queries=qs, threads=threads, exact=exact
                ),
            )
        )
    return out


def hnsw_records(
    *,
    library: np.ndarray,
    dim: int,
    dtype: str,
    checkpoints: Sequence[int],
    main_sizes: set[int],
    q_eval: np.ndarray,
    q_tune: np.ndarray,
    truths: dict[int, tuple[np.ndarray, np.ndarray]],
    threads: int,
    repeats: int,
    log: Log,
) -> list[dict]:
    """Grow one HNSW index through the prefix sizes; tune, time and score it at each.

    The f32 index also serves usearch exact search (`exact=True` scans its stored vectors),
    the index's own exact mode, which small libraries would use below the threshold.
    """
    index = sm.new_hnsw(dim=dim, dtype=dtype)
    out, added, build_s = [], 0, 0.0
    for n in checkpoints:
        keys = np.arange(added, n, dtype=np.uint64)
        start = time.perf_counter()
        # f32 can point at the caller's array (copy=False) and save a full copy of the library.
        index.add(keys, library[added:n], copy=dtype != "f32", threads=threads)
        build_s += time.perf_counter() - start
        added = n
        truth_eval, truth_tune = truths[n]
        tuning = sm.tune_expansion_search(
            index=index,
            queries=q_tune,
            truth=truth_tune,
            target=RECALL_TARGET + TUNING_MARGIN,
            threads=threads,
        )
        params = {
            "dtype": dtype,
            "connectivity": sm.CONNECTIVITY,
            "expansion_add": sm.EXPANSION_ADD,
            "expansion_search": tuning.chosen,
            "target_reached": tuning.reached,
            "tuning_curve": {str(k): v for k, v in tuning.curve.items()},
            "build_s_cumulative": round(build_s, 2),
            "build_threads": threads,
            "memory_bytes": int(index.memory_usage),
        }
        common = {
            "index": index,
            "n": n,
            "dim": dim,
            "q_eval": q_eval,
            "truth": truth_eval,
            "threads": threads,
            "repeats": repeats,
            "batched": n in main_sizes,
        }
        new = _index_records(method=f"usearch-hnsw-{dtype}", exact=False, **common, **params)
        if dtype == "f32":
            new += _index_records(
                method="usearch-exact",
                exact=True,
                **common,
                impl="Index.search(exact=True) on the f32 index",
            )
        for rec in new:
            log(rec)
        out += new
    del index
    return out
