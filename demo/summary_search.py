"""The Search tab's summary: the words a clinician reads above the results, made from the
same ``SearchReport`` that ``python -m data_index search --json`` prints."""

from __future__ import annotations

from data_index.trust import LOW_SIMILARITY_PERCENTILE
from data_index.trusted_search import LOW_SIMILARITY_SCOPE, SearchReport
from data_index.variants import score_meaning
from demo.render import display_label


def _in_library(report: SearchReport, *, query_kind: str) -> list[str]:
    found = report.query_in_library
    if found is None:
        return []
    if query_kind == "case":
        count = f" ({len(found.left_out)} cases)" if len(found.left_out) > 1 else ""
        return [
            f"The query is library case {found.case_id}; it and its copies{count} are left out "
            "of the results and the vote."
        ]
    return [found.sentence()]


def _suggestion(
    report: SearchReport, *, query_kind: str, names: dict[str, str] | None
) -> list[str]:
    labels = [h.label for h in report.hits]
    top = report.vote_label
    vote = (
        f"Most similar cases: **{labels.count(top)} of {len(labels)} are "
        f"{display_label(top, names)}** (closer cases count more: {report.vote[top]:.0%} of "
        "the vote)."
    )
    if report.low_similarity:
        reach = 100 - LOW_SIMILARITY_PERCENTILE
        return [
            "⚠ **No close match: nothing in this library looks like this photo.** Its nearest "
            f"case has similarity {report.nearest_similarity:.2f}, below the "
            f"{report.similarity_threshold:.2f} that {reach:g} % of the library's own photos "
            "reach with their nearest other case. The cases below are shown for reference, "
            "not as a suggestion.",
            f"<small>What this check can and cannot tell: {LOW_SIMILARITY_SCOPE}</small>",
            vote.replace("Most similar cases:", "For reference only:"),
        ]
    lines = []
    if query_kind != "text" and report.prediction_set:
        likely = ", ".join(display_label(label, names) for label in report.prediction_set)
        lines += [
            f"**Likely diagnoses ({report.coverage:.0%} coverage on this library): {likely}**",
            f"<small>Lists made this way held the true diagnosis for {report.coverage:.0%} or "
            "more of this library's own photos, each searched with its own case left out. "
            "Longer lists mean the cases disagree.</small>",
        ]
    return [*lines, vote]


def _diagnosis(
    report: SearchReport,
    *,
    query_label: str | None,
    stated_label: str | None,
    names: dict[str, str] | None,
) -> list[str]:
    n = len(report.hits)
    if query_label:
        ranks = [h.rank for h in report.hits if h.label == query_label]
        name = display_label(query_label, names)
        if ranks:
            return [
                f"✓ The query's diagnosis, *{name}*, is among the results: first at rank "
                f"{ranks[0]}; {len(ranks)} of {n} cases share it."
            ]
        return [f"✗ None of the {n} cases has the query's diagnosis, *{name}*."]
    if stated_label:
        return [
            f"The diagnosis you gave, '{stated_label}', is not one of this library's classes, "
            "so the results are not marked same or different."
        ]
    return ["The query's diagnosis is not given, so the results are not marked same or different."]


def format_summary(
    *,
    report: SearchReport,
    query_kind: str,
    query_label: str | None,
    stated_label: str | None,
    embed_ms: float,
    search_ms: float,
    backbone_name: str,
    variant_note: str | None = None,
    names: dict[str, str] | None = None,
) -> str:
    """Markdown: the query's own photo left out, "no close match" or the likely diagnoses, the
    vote, whether the query's diagnosis came back, and the timings; labels go by the library's
    display ``names`` where it gives them."""
    lines = _in_library(report, query_kind=query_kind)
    if variant_note:
        lines.append(variant_note)
    if not report.hits:
        return "\n\n".join(
            [*lines, "No cases came back: the library has no other cases to compare with."]
        )
    lines += _suggestion(report, query_kind=query_kind, names=names)
    lines += _diagnosis(report, query_label=query_label, stated_label=stated_label, names=names)
    how = (
        "Euclidean distance between raw vectors (0 = identical; smaller is closer)"
        if report.metric != "cosine"
        else score_meaning(getattr(report, "variant", None))
    )
    embedding = (
        "The query's vector was read from the index"
        if query_kind == "case"
        else f"Embedding the {query_kind} took {embed_ms:.0f} ms"
    )
    lines.append(
        f"<small>{embedding}, the search {search_ms:.1f} ms · {backbone_name} over "
        f"{report.n_cases} cases · scores are {how}.</small>"
    )
    return "\n\n".join(lines)
