"""Turn search-benchmark records into the crossover, the 100k target check and text tables."""

from __future__ import annotations

import math

EXACT = "usearch-exact"
SKLEARN_ARGSORT = "sklearn-argsort"
NUMPY = "numpy-bruteforce"
HNSW = ("usearch-hnsw-f32", "usearch-hnsw-f16")
ORDER = (SKLEARN_ARGSORT, NUMPY, EXACT, *HNSW)
TARGET_MS = 1.0


def _singles(records: list[dict]) -> dict[tuple[str, int, int], dict]:
    return {(r["method"], r["dim"], r["n"]): r for r in records if r["kind"] == "single"}


def _crossing(sizes: list[int], ratio: list[float]) -> tuple[int | None, bool]:
    """Smallest size from which ratio stays below 1, log-interpolated; (size, is_upper_bound)."""
    first = next((i for i in range(len(sizes)) if all(r < 1 for r in ratio[i:])), None)
    if first is None:
        return None, False
    if first == 0:
        return sizes[0], True
    lo, hi = sizes[first - 1], sizes[first]
    a, b = math.log(ratio[first - 1]), math.log(ratio[first])
    frac = a / (a - b)  # where log(ratio) crosses zero on a log-size axis
    return round(math.exp(math.log(lo) + frac * (math.log(hi) - math.log(lo)))), False


def crossover(records: list[dict]) -> dict:
    """Library size above which tuned HNSW answers one query faster than exact search.

    Per (dim, dtype, exact baseline): the smallest measured size from which HNSW's median
    stays below the baseline's at every larger size, log-interpolated with the size before;
    when HNSW already wins at the smallest size that size is only an upper bound. The
    recommendation (against usearch exact, the index's own exact mode) is the largest.
    """
    singles = _singles(records)
    per: list[dict] = []
    for dim in sorted({r["dim"] for r in records}):
        for baseline in (EXACT, NUMPY):
            for method in HNSW:
                sizes = sorted(
                    n
                    for (m, d, n) in singles
                    if m == method and d == dim and (baseline, dim, n) in singles
                )
                if not sizes:
                    continue
                ratio = [
                    singles[(method, dim, n)]["median_ms"]
                    / singles[(baseline, dim, n)]["median_ms"]
                    for n in sizes
                ]
                threshold, upper = _crossing(sizes, ratio)
                per.append(
                    {
                        "dim": dim,
                        "method": method,
                        "baseline": baseline,
                        "sizes": sizes,
                        "hnsw_over_exact_median": [round(r, 3) for r in ratio],
                        "hnsw_recall_at_10": [
                            singles[(method, dim, n)]["recall_at_10"] for n in sizes
                        ],
                        "threshold_n": threshold,
                        "threshold_is_upper_bound": upper,
                    }
                )

    def recommended(baseline: str) -> int | None:
        found = [p["threshold_n"] for p in per if p["baseline"] == baseline]
        return None if not found or None in found else max(found)

    return {
        "per_dim_dtype": per,
        "recommended_threshold_n": recommended(EXACT),
        "threshold_vs_numpy_n": recommended(NUMPY),
        "rule": "switch from exact (Index.search(exact=True)) to HNSW once the library holds "
        "more than recommended_threshold_n vectors; HNSW trades recall 1.0 for the tuning "
        "target. threshold_vs_numpy_n applies if the exact path is numpy brute force instead",
    }


def target_check(records: list[dict], *, n: int) -> list[dict]:
    """The target at `n` cases: HNSW under 1 ms per query with recall@10 >= 0.99."""
    singles = _singles(records)
    out = []
    for method, dim, size in sorted(singles):
        if size != n or method not in HNSW:
            continue
        r, base = singles[(method, dim, size)], singles.get((SKLEARN_ARGSORT, dim, size))
        out.append(
            {
                "dim": dim,
                "method": method,
                "median_ms": r["median_ms"],
                "p95_ms": r["p95_ms"],
                "recall_at_10": r["recall_at_10"],
                "meets_target": r["median_ms"] < TARGET_MS and r["recall_at_10"] >= 0.99,
                "sklearn_argsort_median_ms": base["median_ms"] if base else None,
                "speedup_vs_sklearn_argsort": base["median_ms"] / r["median_ms"] if base else None,
            }
        )
    return out


def build_rates(records: list[dict]) -> list[dict]:
    """HNSW insertion rate at the largest built size, and the 1M build time it implies.

    Per-vector insertion cost grows with the graph (about log n), so the 1M figure is a floor.
    """
    largest: dict[tuple[str, int], dict] = {}
    for r in records:
        if r["method"] in HNSW and r["kind"] == "single":
            key = (r["method"], r["dim"])
            if key not in largest or r["n"] > largest[key]["n"]:
                largest[key] = r
    out = []
    for (method, dim), r in sorted(largest.items()):
        rate = r["n"] / max(r["build_s_cumulative"], 1e-9)
        out.append(
            {
                "method": method,
                "dim": dim,
                "built_n": r["n"],
                "build_s": r["build_s_cumulative"],
                "vectors_per_s": round(rate),
                "at_least_s_for_1m": round(1_000_000 / rate),
            }
        )
    return out


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _single_table(doc: dict) -> list[str]:
    singles = _singles(doc["records"])
    lines = [
        "Single-query latency (one call per query, as the app searches); "
        "speed-up = sklearn-argsort median / method median",
        f"{'dim':>4} {'n':>9} {'method':<18} {'calls':>5} {'median ms':>10} {'p95 ms':>9} "
        f"{'recall@10':>9} {'ef':>5} {'speed-up':>9}",
    ]
    main = set(doc["setup"]["sizes"])
    for (method, dim, n), r in sorted(
        singles.items(), key=lambda kv: (kv[0][1], kv[0][2], ORDER.index(kv[0][0]))
    ):
        if n not in main:
            continue
        base = singles.get((SKLEARN_ARGSORT, dim, n))
        speed = f"{base['median_ms'] / r['median_ms']:,.0f}x" if base else "-"
        lines.append(
            f"{dim:>4} {n:>9,} {method:<18} {r['calls']:>5} {_ms(r['median_ms']):>10} "
            f"{_ms(r['p95_ms']):>9} {r['recall_at_10']:>9.4f} "
            f"{r.get('expansion_search', '-'):>5} {speed:>9}"
        )
    return lines


def _batched_table(doc: dict) -> list[str]:
    lines = [
        "Batched throughput (one call for the whole batch)",
        f"{'dim':>4} {'n':>9} {'method':<18} {'batch':>5} {'q/s median':>11} "
        f"{'min-max':>17} {'recall@10':>9}",
    ]
    batched = [r for r in doc["records"] if r["kind"] == "batched"]
    for r in sorted(batched, key=lambda r: (r["dim"], r["n"], ORDER.index(r["method"]))):
        lines.append(
            f"{r['dim']:>4} {r['n']:>9,} {r['method']:<18} {r['batch']:>5} "
            f"{r['qps_median']:>11,.0f} {r['qps_min']:>8,.0f}-{r['qps_max']:<8,.0f} "
            f"{r['recall_at_10']:>9.4f}"
        )
    return lines


def render_table(doc: dict) -> str:
    """Fixed-width text: structure, single-query, batched, crossover, target, build rates."""
    lines = [doc["note"], "", "Neighbour structure (mean cosine to nearest / random point):"]
    for s in doc["neighbour_structure"]:
        lines.append(
            f"  dim {s['dim']:>4}  n {s['n']:>9,}  nearest {s['mean_cos_nearest']:.3f}"
            f"  random {s['mean_cos_random']:.3f}"
        )
    lines += ["", *_single_table(doc), "", *_batched_table(doc), ""]
    lines.append("Exact -> HNSW crossover (single query; median HNSW / median exact baseline):")
    for p in doc["crossover"]["per_dim_dtype"]:
        pairs = ", ".join(
            f"{n:,}: {x}" for n, x in zip(p["sizes"], p["hnsw_over_exact_median"], strict=True)
        )
        bound = "<=" if p["threshold_is_upper_bound"] else "~"
        lines.append(
            f"  dim {p['dim']:>4} {p['method']:<17} vs {p['baseline']:<16} "
            f"threshold {bound}{p['threshold_n']}"
        )
        lines.append(f"      ratio by size: {pairs}")
    cross = doc["crossover"]
    lines.append(
        f"  recommended threshold (vs usearch exact): {cross['recommended_threshold_n']} "
        f"vectors; vs numpy brute force: {cross['threshold_vs_numpy_n']}"
    )
    if doc["target_100k"]:
        lines += ["", "Target at 100k (median < 1 ms and recall@10 >= 0.99):"]
    for t in doc["target_100k"]:
        speed = t["speedup_vs_sklearn_argsort"]
        lines.append(
            f"  dim {t['dim']:>4} {t['method']:<17} median {t['median_ms']:.3f} ms, recall "
            f"{t['recall_at_10']:.4f}: {'met' if t['meets_target'] else 'NOT met'}; "
            f"{f'{speed:,.0f}x' if speed else '-'} faster than a sklearn cosine + argsort search"
        )
    lines += ["", "HNSW build (threads as stated; 1M time is a floor extrapolated linearly):"]
    for b in doc["hnsw_build"]:
        lines.append(
            f"  dim {b['dim']:>4} {b['method']:<17} {b['built_n']:>9,} vectors in "
            f"{b['build_s']:.0f} s ({b['vectors_per_s']:,}/s) -> 1M >= {b['at_least_s_for_1m']:,} s"
        )
    return "\n".join(lines)


def render_markdown(doc: dict, *, table: str) -> str:
    """The short Markdown summary written beside the JSON."""
    setup, hnsw = doc["setup"], doc["setup"]["hnsw"]
    return "\n".join(
        [
            "# Search benchmark: exact and HNSW search against brute force",
            "",
            f"> {doc['note']}",
            "",
            f"`python -m benchmarks.perf.search` took {setup.get('wall_s', '?')} s; every "
            "record is in `search_benchmark.json`.",
            "",
            f"- Vectors: {setup['vectors']} ({setup['centres']} real centres).",
            f"- Sizes {setup['sizes']}, dims {setup['dims']}, k = {setup['k']}; HNSW indexes "
            f"built up to {setup['hnsw_max_size']:,} vectors (build cost, see the last table); "
            f"{setup['eval_queries']} evaluation queries, {setup['tuning_queries']} separate "
            "tuning queries.",
            f"- HNSW: connectivity {hnsw['connectivity']}, expansion_add {hnsw['expansion_add']}"
            f", expansion_search (column ef) = the smallest of {hnsw['expansion_search_grid']} "
            f"reaching recall@10 >= {setup['tuning_target']:g} (target {setup['recall_target']} "
            "plus a margin for query-sampling noise) on the tuning queries, per size and dtype; "
            "the recall column is measured on the separate evaluation queries. dtype pinned "
            "(left to itself usearch picks bf16 on this CPU).",
            "- HNSW builds with more than one thread are not reproducible (insertion order "
            "varies), so the graph, the tuned ef and its latency can differ between runs on the "
            "same seeded vectors; an index should store the ef it was tuned with.",
            f"- Threads: every single-query call runs on 1 thread (usearch `threads=1`, BLAS "
            f"limited with threadpoolctl); builds and batched calls use {setup['threads']}.",
            "- usearch exact = `Index.search(exact=True)` on the f32 index; above the HNSW cap "
            "it is `usearch.index.search(exact=True)` on the matrix (no index there).",
            "- Brute-force single-query methods get every query up to 10k, 100 at 100k and 5 "
            "at 1M (column calls), after warm-up calls; p95 over 5 calls is close to the max. "
            "Batched brute force at 1M uses 20 queries.",
            f"- usearch {setup['usearch']}, numpy {setup['numpy']}, {setup['cpus']} CPUs.",
            "",
            "```",
            table,
            "```",
            "",
        ]
    )
