"""Pham et al.'s (2025) two latencies, measured as a user meets them: seconds per image, per query.

Embedding: image files of the library through ``Backbone.encode_images`` (decode, preprocess,
forward) in one batch of stated size. Search: embedded queries through the real
``CaseIndex.search_vector`` (usearch, own case excluded), the call the app makes. Both after
warm-up, device synchronised, median of repeats (benchmarks.timing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.timing import Timing, machine_description, time_callable
from data_index.case_index import CaseIndex
from models import Backbone

EMBED_INCLUDES = "decode+preprocess+forward"


@dataclass(frozen=True)
class LatencySettings:
    """How much to time: a batch of images, a set of queries, repeats, and a time budget."""

    batch_size: int = 16
    n_queries: int = 100
    search_k: int = 10
    repeats: int = 5
    warmup: int = 1
    max_seconds: float = 60.0  # per measurement; slow backbones stop after 3 timed calls

    def __post_init__(self) -> None:
        for name in ("batch_size", "n_queries", "search_k", "repeats"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive whole number, got {value!r}.")


def spread_rows(n: int, count: int) -> np.ndarray:
    """``count`` rows spread evenly over ``0..n-1`` (libraries are stored class by class, so
    the first rows would all be one class)."""
    if n < 1:
        raise ValueError("Nothing to time: the library has no usable images.")
    return np.unique(np.linspace(0, n - 1, num=min(count, n)).round().astype(np.int64))


def time_embedding(
    backbone: Backbone, *, paths: list[str], settings: LatencySettings, device: str | None
) -> Timing:
    """Seconds per call of embedding one batch of image files (``items`` = the batch size)."""
    sample = [paths[i] for i in spread_rows(len(paths), settings.batch_size)]
    return time_callable(
        lambda: backbone.encode_images(sample, batch_size=len(sample)),
        repeats=settings.repeats,
        warmup=settings.warmup,
        device=device,
        items=len(sample),
        max_seconds=settings.max_seconds,
    )


def search_depth(n_cases: int, settings: LatencySettings) -> int:
    """Neighbours asked per timed query: ``search_k``, fewer only in a tiny library."""
    return max(1, min(settings.search_k, n_cases - 1))


def time_search(index: CaseIndex, *, settings: LatencySettings) -> Timing:
    """Seconds per call of answering a set of queries (``items`` = the number of queries)."""
    rows = spread_rows(len(index), settings.n_queries)
    vectors = index.vectors()
    queries = [(vectors[r], str(index.cases["case_id"].iat[r])) for r in rows]
    k = search_depth(len(index), settings)

    def run() -> None:
        for vector, case_id in queries:
            index.search_vector(vector, k=k, exclude_case_ids=(case_id,))

    return time_callable(
        run,
        repeats=settings.repeats,
        warmup=settings.warmup,
        items=len(queries),
        max_seconds=settings.max_seconds,
    )


def time_usearch(index: CaseIndex, *, settings: LatencySettings) -> Timing:
    """The same queries straight to the usearch index (no exclusion, no case table): the part
    of ``time_search`` that is nearest-neighbour search proper."""
    rows = spread_rows(len(index), settings.n_queries)
    vectors = index.vectors()[rows]
    k = search_depth(len(index), settings)

    def run() -> None:
        for vector in vectors:
            index.index.search(vector, k, exact=index.exact)

    return time_callable(
        run,
        repeats=settings.repeats,
        warmup=settings.warmup,
        items=len(vectors),
        max_seconds=settings.max_seconds,
    )


# The timing keys every record carries; latency records carry the full spread as well.
SUMMARY_KEYS: tuple[str, ...] = (
    "embed_s_per_image",
    "embed_median_per_item_s",  # the key benchmarks.report.plots reads by default (same value)
    "embed_batch_size",
    "search_s_per_query",
    "usearch_s_per_query",
    "search_k",
    "total_s_per_image",
)


def _significant(value: object) -> object:
    # Four significant digits: run-to-run noise on a shared machine is far larger.
    return float(f"{value:.4g}") if isinstance(value, float) else value


def latency_fields(
    *, embed: Timing, search: Timing, usearch: Timing, settings: LatencySettings, n_cases: int
) -> dict:
    """Every timing key of a run: medians, spreads, repeats, batch size, and the totals."""
    per_image = embed.median_per_item_s
    per_query = search.median_per_item_s
    machine = machine_description()
    fields = {
        **embed.as_record(prefix="embed_"),
        **search.as_record(prefix="search_"),
        **usearch.as_record(prefix="usearch_"),
        "embed_s_per_image": per_image,
        "embed_batch_size": embed.items,
        "embed_includes": EMBED_INCLUDES,
        "search_s_per_query": per_query,
        "search_k": search_depth(n_cases, settings),
        "usearch_s_per_query": usearch.median_per_item_s,
        "total_s_per_image": per_image + per_query,
        # What else the machine was doing: timings under a load above its core count are slow.
        "load_average_1m": (machine["load_average"] or [None])[0],
        "cpu_count": machine["cpu_count"],
    }
    return {key: _significant(value) for key, value in fields.items()}
