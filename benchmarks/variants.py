"""Honest evaluation of retrieval variants against their plain backbone, leave-one-case-out.

Every query searches the whole library minus its own case and every copy of its photos, as in
the plain leave-one-out protocol. What keeps each variant honest:

- ``adapter-lda`` is fitted on five folds grouped by case and copy group: a query is projected
  by the adapter fitted without its fold, and then searches the whole projected library.
- ``dba`` augments each library vector with its nearest cases, but for each query the vectors
  whose augmentation used the query's own case or copies are augmented again without them, so
  the query never finds itself through a neighbour.
- ``aqe`` expands the query with neighbours found under the same exclusions.
- ``k-reciprocal`` re-ranks a shortlist of each query's nearest cases drawn under the same
  exclusions, so no photo of the query's case or its copies enters any neighbourhood.
- ``fusion`` is compared with the better of its plain member backbones.

Each variant's gain over its base is a paired bootstrap over case groups (the same query
resampled for both), seeded, 1,000 resamples by default.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.model_selection import GroupKFold
from threadpoolctl import threadpool_limits
from usearch.index import MetricKind
from usearch.index import search as exact

from benchmarks.embedded import Embedded
from benchmarks.intervals import case_weights, mean_samples
from data_index.audit import case_or_copy_groups
from data_index.embed_transformed import embed_transformed, mirrored
from data_index.variants import (
    LDA_COMPONENTS,
    VARIANTS,
    fit_lda,
    flip_average,
    fuse,
    fusion_members,
    k_reciprocal_order,
    parse_variants,
    weighted_mean,
)
from models.base import l2_normalize

KS: tuple[int, ...] = (1, 5)
N_BOOT = 1000
FOLDS = 5


# --- ranking under exclusions
def top_rows(scores: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    """(n, k) best columns per row of ``scores``, never an excluded one; ties keep column
    order, as the plain protocol's search does."""
    key = -scores.astype(np.float64)
    key[exclude] = np.inf
    return np.argsort(key, axis=1, kind="stable")[:, :k]


def hits_at(labels: np.ndarray, rows: np.ndarray, query_rows: np.ndarray, k: int) -> np.ndarray:
    """1.0 where one of a query's top ``k`` shares its label."""
    return (labels[rows[:, :k]] == labels[query_rows][:, None]).any(axis=1).astype(float)


def same_group(groups: np.ndarray) -> np.ndarray:
    return groups[:, None] == groups[None, :]


# --- each variant's ranking
def rank_plain(unit: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    return top_rows(unit @ unit.T, exclude, k)


def rank_aqe(
    unit: np.ndarray, exclude: np.ndarray, k: int, *, expand: int, alpha: float
) -> np.ndarray:
    sims = unit @ unit.T
    first = top_rows(sims, exclude, expand)
    expanded = weighted_mean(
        unit, unit[first], np.take_along_axis(sims, first, axis=1), alpha=alpha
    )
    return top_rows(expanded @ unit.T, exclude, k)


def rank_dba(
    unit: np.ndarray, groups: np.ndarray, k: int, *, expand: int, alpha: float
) -> np.ndarray:
    """DBA with the query's case and copies taken out of every neighbour list it touches."""
    n = len(unit)
    sims = unit @ unit.T
    exclude = same_group(groups)
    largest = int(np.bincount(np.unique(groups, return_inverse=True)[1]).max())
    width = min(n, expand + largest)
    neighbours = top_rows(sims, exclude, width)  # each row's candidates, its own group left out

    def augment(rows: np.ndarray, banned_group: int | None) -> np.ndarray:
        cand = neighbours[rows]
        if banned_group is not None:
            ok = groups[cand] != banned_group
            # stable: keep the first `expand` allowed candidates in rank order
            cand = np.take_along_axis(cand, np.argsort(~ok, axis=1, kind="stable"), axis=1)
        cand = cand[:, :expand]
        near = np.take_along_axis(sims[rows], cand, axis=1)
        return weighted_mean(unit[rows], unit[cand], near, alpha=alpha)

    base = augment(np.arange(n), None)
    uses = groups[neighbours[:, :expand]]  # whose photos each row's augmentation used
    out = np.empty((n, k), dtype=np.int64)
    for q in range(n):
        scores = base @ unit[q]
        touched = np.flatnonzero((uses == groups[q]).any(axis=1))
        if touched.size:
            scores[touched] = augment(touched, int(groups[q])) @ unit[q]
        out[q] = top_rows(scores[None, :], exclude[q][None, :], k)[0]
    return out


def rank_k_reciprocal(
    unit: np.ndarray, exclude: np.ndarray, k: int, *, params: Mapping[str, float]
) -> np.ndarray:
    """Per query: its ``shortlist`` nearest allowed cases by cosine, re-ranked among
    themselves; past the shortlist the plain order would follow, never needed for k <= it."""
    wanted = max(k, int(params["shortlist"]))
    shortlists = top_rows(unit @ unit.T, exclude, wanted)
    out = np.empty((len(unit), k), dtype=np.int64)
    for q, cand in enumerate(shortlists):
        allowed = cand[~exclude[q, cand]]  # a query with few allowed cases has a short list
        order, _ = k_reciprocal_order(unit[q], unit[allowed], params=params)
        out[q] = allowed[order[:k]]
    return out


def rank_lda(
    unit: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int, *, folds: int = FOLDS
) -> np.ndarray:
    """Cross-fitted: each fold's queries use the adapter fitted on the other folds."""
    out = np.empty((len(unit), k), dtype=np.int64)
    exclude = same_group(groups)
    n_folds = min(folds, len(np.unique(groups)))
    for fit_rows, query_rows in GroupKFold(n_splits=n_folds).split(unit, labels, groups):
        projected = fit_lda(unit[fit_rows], labels[fit_rows]).project(unit)
        out[query_rows] = top_rows(projected[query_rows] @ projected.T, exclude[query_rows], k)
    return out


# --- the paired bootstrap
def paired_bootstrap(
    diff: np.ndarray, groups: np.ndarray, *, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float]:
    """95 % percentile interval of the mean per-query difference, resampling whole groups
    (the evaluation's own case bootstrap, `benchmarks.intervals`)."""
    weights, codes = case_weights(groups, n_resamples=n_boot, seed=seed)
    low, high = np.percentile(mean_samples(np.asarray(diff, float), weights, codes), [2.5, 97.5])
    return float(low), float(high)


# --- timing on a 10k library
def query_ms(
    name: str, *, dim: int, width: int, n: int = 10_000, repeats: int = 20, seed: int = 0
) -> float:
    """Median ms per query of a variant's query-side work plus its search at ``n`` cases of
    ``width`` dimensions (usearch's exact search, as the app searches below its HNSW
    threshold), one thread (BLAS too); ``dim`` is the backbone's own width (what an adapter projects
    from)."""
    base_name = name.partition(":")[0]
    rng = np.random.default_rng(seed)
    library = l2_normalize(rng.standard_normal((n, width)).astype(np.float32))
    matrix = rng.standard_normal((dim, width)).astype(np.float32)
    raw_query = rng.standard_normal(dim).astype(np.float32)
    params = VARIANTS[base_name].params

    def one_query() -> None:
        q = (
            l2_normalize((raw_query @ matrix)[None])[0]
            if base_name == "adapter-lda"
            else library[0]
        )
        if base_name == "k-reciprocal":  # one wider search, then the shortlist re-ranked
            found = exact(
                library, q, int(params["shortlist"]), MetricKind.Cos, exact=True, threads=1
            )
            k_reciprocal_order(q, library[found.keys.astype(np.int64)], params=params)
            return
        found = exact(library, q, 10, MetricKind.Cos, exact=True, threads=1)
        if base_name == "aqe":
            keys = found.keys[: int(params["k"])]
            sims = 1.0 - found.distances[: int(params["k"])]
            q = weighted_mean(q[None], library[keys][None], sims[None], alpha=params["alpha"])[0]
            exact(library, q, 10, MetricKind.Cos, exact=True, threads=1)

    # One BLAS thread as well: on a busy machine a second one put multi-millisecond thread
    # wake-ups into small matrix products (k-reciprocal's 101 x 101 tables).
    with threadpool_limits(limits=1):
        for _ in range(3):
            one_query()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            one_query()
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def plain_query_ms(dim: int, *, n: int = 10_000) -> float:
    return query_ms("dba", dim=dim, width=dim, n=n)  # dba adds nothing per query


# --- records
def _per_query(labels: np.ndarray, rows: np.ndarray) -> dict[int, np.ndarray]:
    query_rows = np.arange(len(labels))
    return {k: hits_at(labels, rows, query_rows, k) for k in KS}


def _compare(
    *,
    variant: str,
    base: str,
    labels: np.ndarray,
    groups: np.ndarray,
    plain: dict[int, np.ndarray],
    better: dict[int, np.ndarray],
    extra: Mapping[str, object],
    n_boot: int,
) -> list[dict]:
    out = []
    for k in KS:
        low, high = paired_bootstrap(better[k] - plain[k], groups, n_boot=n_boot)
        out.append(
            {
                "protocol": "variant",
                "variant": variant,
                "base": base,
                "metric": "hit_rate",
                "k": k,
                "value": float(better[k].mean()),
                "base_value": float(plain[k].mean()),
                "gain": float((better[k] - plain[k]).mean()),
                "gain_ci_low": low,
                "gain_ci_high": high,
                "n_queries": len(labels),
                "n_boot": n_boot,
                "exclusion": "case+duplicates",
                **extra,
            }
        )
    return out


def variant_records(
    views: Mapping[str, Embedded], names: Sequence[str] | str, *, n_boot: int = N_BOOT
) -> list[dict]:
    """Records of every variant on every backbone it applies to, for one library."""
    chosen = parse_variants(names)
    out: list[dict] = []
    k = max(KS)
    plain_cache: dict[str, dict[int, np.ndarray]] = {}

    def plain_of(key: str) -> dict[int, np.ndarray]:
        if key not in plain_cache:
            view = views[key]
            groups = case_or_copy_groups(group_ids=view.group_ids, case_ids=view.case_ids)
            plain_cache[key] = _per_query(view.labels, rank_plain(view.unit, same_group(groups), k))
        return plain_cache[key]

    for name in chosen:
        base_name = name.partition(":")[0]
        variant = VARIANTS[base_name]
        params = dict(variant.params)
        if base_name == "fusion":
            out += _fusion_records(views, name, plain_of, n_boot=n_boot)
            continue
        for key, view in views.items():
            groups = case_or_copy_groups(group_ids=view.group_ids, case_ids=view.case_ids)
            exclude = same_group(groups)
            started = time.perf_counter()
            if base_name == "tta-flip":
                flipped = embed_transformed(
                    view.backbone,
                    paths=view.paths,
                    sha1s=view.sha1s,
                    tag="mirrored",
                    transform=mirrored,
                    cache_dir=view.embeddings_cache,
                )
                both = flip_average(view.unit, flipped)
                rows = rank_plain(both, exclude, k)
            elif base_name == "aqe":
                rows = rank_aqe(
                    view.unit, exclude, k, expand=int(params["k"]), alpha=params["alpha"]
                )
            elif base_name == "dba":
                rows = rank_dba(
                    view.unit, groups, k, expand=int(params["k"]), alpha=params["alpha"]
                )
            elif base_name == "k-reciprocal":
                rows = rank_k_reciprocal(view.unit, exclude, k, params=params)
            elif base_name == "adapter-lda":
                rows = rank_lda(view.unit, view.labels, groups, k)
            else:  # a registered variant without an evaluation here would be a silent gap
                raise ValueError(f"No evaluation is written for variant {name!r}.")
            dim = int(view.unit.shape[1])
            classes = len(np.unique(view.labels))
            width = (
                min(dim, max(classes - 1, LDA_COMPONENTS)) if base_name == "adapter-lda" else dim
            )
            extra = {
                "params": params,
                "fitted": variant.fitted,
                "cross_fitted_folds": FOLDS if variant.fitted else None,
                "eval_s": round(time.perf_counter() - started, 3),
                "query_cost": variant.query_cost,
                "search_ms_10k": round(query_ms(name, dim=dim, width=width), 4),
                "plain_search_ms_10k": round(plain_query_ms(view.unit.shape[1]), 4),
                "dim": int(view.unit.shape[1]),
            }
            out += _compare(
                variant=name,
                base=key,
                labels=view.labels,
                groups=groups,
                plain=plain_of(key),
                better=_per_query(view.labels, rows),
                extra=extra,
                n_boot=n_boot,
            )
    return out


def _fusion_records(views, name, plain_of, *, n_boot: int) -> list[dict]:
    members = fusion_members(name)
    missing = [m for m in members if m not in views]
    if missing:
        return [
            {
                "protocol": "variant",
                "variant": name,
                "metric": "skipped",
                "value": None,
                "reason": f"fusion needs {', '.join(missing)} in this run's --backbones.",
            }
        ]
    first = views[members[0]]
    for m in members[1:]:
        if views[m].paths != first.paths:
            raise ValueError(f"{name}: the backbones' views are not aligned row by row.")
    groups = case_or_copy_groups(group_ids=first.group_ids, case_ids=first.case_ids)
    fused = fuse([views[m].unit for m in members])
    rows = rank_plain(fused, same_group(groups), max(KS))
    best = max(members, key=lambda m: plain_of(m)[1].mean())
    extra = {
        "params": {"members": members, "weights": "equal"},
        "fitted": False,
        "cross_fitted_folds": None,
        "query_cost": VARIANTS["fusion"].query_cost,
        "search_ms_10k": round(
            query_ms(name, dim=int(fused.shape[1]), width=int(fused.shape[1])), 4
        ),
        "plain_search_ms_10k": round(plain_query_ms(first.unit.shape[1]), 4),
        "dim": int(fused.shape[1]),
    }
    return _compare(
        variant=name,
        base=best,
        labels=first.labels,
        groups=groups,
        plain=plain_of(best),
        better=_per_query(first.labels, rows),
        extra=extra,
        n_boot=n_boot,
    )


def variants_markdown(records: Sequence[Mapping]) -> str:
    """The variants table: gain over the plain backbone with its 95 % interval, and cost."""
    rows = [r for r in records if r.get("protocol") == "variant" and r.get("metric") == "hit_rate"]
    if not rows:
        return ""
    lines = [
        "| library | variant | base backbone | Top-k | base | variant | gain [95 % CI] | "
        "search ms at 10k (plain) | extra work per query |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["library"], r["k"], r["variant"], r["base"])):
        sure = r["gain_ci_low"] > 0 or r["gain_ci_high"] < 0
        low, high = 100 * r["gain_ci_low"], 100 * r["gain_ci_high"]
        gain = f"{100 * r['gain']:+.1f} [{low:+.1f}, {high:+.1f}]"
        lines.append(
            f"| {r['library']} | {r['variant']} | {r['base']} | {r['k']} | "
            f"{r['base_value']:.3f} | {r['value']:.3f} | {'**' + gain + '**' if sure else gain} | "
            f"{r['search_ms_10k']:.2f} ({r['plain_search_ms_10k']:.2f}) | {r['query_cost']} |"
        )
    skipped = [
        r for r in records if r.get("protocol") == "variant" and r.get("metric") == "skipped"
    ]
    notes = [f"- {r['variant']} skipped: {r['reason']}" for r in skipped]
    return "\n".join(
        [
            "Gains are in points of hit rate, leave-one-case-out with copies excluded; bold where "
            "the paired bootstrap interval (case groups resampled) excludes 0. adapter-lda is "
            "cross-fitted on 5 folds grouped by case; fusion is compared with its better member.",
            "",
            *lines,
            *(["", *notes] if notes else []),
        ]
    )
