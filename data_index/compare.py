"""Backbones side by side on one query: each backbone's top-k, vote and hit, and how they overlap.

The Compare tab and ``python -m data_index compare`` both run ``compare_row`` once per backbone
and ``assemble`` over the rows, so what a class sees on screen is what the command prints. One
row is computed from one index alone: the tab shows each row as soon as it is ready, while
indexes still missing are built.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from PIL import Image

from data_index.case_index import CaseIndex
from data_index.library import CaseLibrary
from data_index.trust import DEFAULT_COVERAGE, ConformalVote, vote_shares
from data_index.variant_search import PreparedVariant, mirrored_query
from models import Backbone

QueryKind = Literal["photo", "case", "text"]
Verdict = Literal["match", "mismatch", "unknown"]
MIN_BACKBONES, MAX_BACKBONES = 2, 4


@dataclass(frozen=True)
class CompareQuery:
    """One query for every backbone: a photo, a library case (by relpath) or a text prompt.
    ``label`` is the query's diagnosis when known (stated for a photo, the case's own label)."""

    kind: QueryKind
    image: Image.Image | None = None
    relpath: str | None = None
    text: str | None = None
    label: str | None = None
    copies: tuple[str, ...] = ()  # case ids of copies of the query photo, left out too


@dataclass(frozen=True)
class ComparedHit:
    rank: int
    label: str
    score: float  # cosine similarity
    case_id: str
    relpath: str
    path: str
    verdict: Verdict
    shared: bool = False  # another compared backbone retrieved the same case


@dataclass(frozen=True)
class BackboneRow:
    """One backbone's answer to the query."""

    key: str
    name: str
    hits: tuple[ComparedHit, ...]
    vote: str | None  # the diagnosis with the largest similarity-weighted share
    vote_count: int  # how many of the hits carry it
    vote_share: float
    hit_at_k: bool | None  # None when the query's diagnosis is unknown
    first_match: int | None  # rank of the first same-diagnosis hit
    embed_ms: float
    search_ms: float
    variant: str | None = None  # the retrieval variant that ranked this row (None: plain)
    # The conformal prediction set of the vote, as the Search tab shows it; empty when the row
    # has no calibration (a variant's ranking, a text query).
    prediction_set: tuple[str, ...] = ()
    coverage: float | None = None

    @property
    def ms(self) -> float:
        return self.embed_ms + self.search_ms

    @property
    def case_ids(self) -> list[str]:
        return [h.case_id for h in self.hits]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "hits": [
                {"rank": h.rank, "label": h.label, "score": round(h.score, 6), "case_id": h.case_id}
                for h in self.hits
            ],
            "vote": self.vote,
            "vote_count": self.vote_count,
            **({} if self.hit_at_k is None else {"hit_at_k": self.hit_at_k}),
            "ms": round(self.ms, 2),
            "variant": self.variant,
            **(
                {}
                if self.coverage is None
                else {
                    "prediction_set": {
                        "labels": list(self.prediction_set),
                        "coverage": self.coverage,
                    }
                }
            ),
        }


@dataclass(frozen=True)
class PairOverlap:
    a: str
    b: str
    shared: tuple[str, ...]  # case ids both retrieved, in a's rank order
    k: int
    votes_agree: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "shared": len(self.shared),
            "of": self.k,
            "shared_case_ids": list(self.shared),
            "votes_agree": self.votes_agree,
        }


@dataclass(frozen=True)
class Comparison:
    query: CompareQuery
    k: int
    rows: tuple[BackboneRow, ...]
    pairs: tuple[PairOverlap, ...] = field(default_factory=tuple)

    @property
    def votes_agree(self) -> bool:
        return len({row.vote for row in self.rows}) <= 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": {
                "kind": self.query.kind,
                **({"case": self.query.relpath} if self.query.relpath else {}),
                **({"text": self.query.text} if self.query.text else {}),
                "label": self.query.label,
            },
            "k": self.k,
            "backbones": [row.to_dict() for row in self.rows],
            "pairs": [pair.to_dict() for pair in self.pairs],
            "votes_agree": self.votes_agree,
        }


def parse_backbones(keys: Sequence[str]) -> list[str]:
    """Two to four distinct registry keys, or a sentence saying what is wrong."""
    from models import get_spec

    chosen: list[str] = []
    for key in keys:
        spec = get_spec(str(key).strip())  # an unknown key lists the valid ones
        if spec.key not in chosen:
            chosen.append(spec.key)
    if not MIN_BACKBONES <= len(chosen) <= MAX_BACKBONES:
        raise ValueError(
            f"Pick {MIN_BACKBONES} to {MAX_BACKBONES} different backbones to compare, "
            f"not {len(chosen)}."
        )
    return chosen


def resolve_case(library: CaseLibrary, ident: str) -> str:
    """The relpath of a library image named by its relpath or its case id (first image)."""
    cases = library.cases
    wanted = str(ident).strip()
    for column in ("relpath", "case_id"):
        found = cases.index[cases[column].astype(str) == wanted]
        if len(found):
            return str(cases.loc[found[0], "relpath"])
    example = str(cases["relpath"].iloc[0]) if len(cases) else "images/<class>/<file>.jpg"
    raise ValueError(
        f"No case {wanted!r} in {library.name}: give an image path as listed in the library, "
        f"e.g. {example}."
    )


def case_label(library: CaseLibrary, relpath: str) -> str:
    return str(library.cases.loc[library.cases["relpath"] == relpath, "label"].iloc[0])


def copy_case_ids(library: CaseLibrary, relpath: str, *, audit_if_missing: bool) -> tuple[str, ...]:
    """Case ids of the library's copies of one photo (the copy audit's groups). Without
    ``audit_if_missing`` an audit not yet in the cache is skipped: no copies are known then."""
    from data_index.audit import audit_cache_file, audit_library

    if not audit_if_missing and not audit_cache_file(library).is_file():
        return ()
    report = audit_library(library)
    row = int(np.flatnonzero(library.cases["relpath"].to_numpy() == relpath)[0])
    ids = library.cases["case_id"].astype(str).to_numpy()
    return tuple(dict.fromkeys(ids[r] for r in report.same_photo(row) if ids[r] != ids[row]))


def weighted_vote(labels: Sequence[str], scores: Sequence[float]) -> tuple[str | None, float]:
    """The diagnosis with the largest share of similarity (floored at 0), and that share."""
    weights: dict[str, float] = defaultdict(float)
    for label, score in zip(labels, scores, strict=True):
        weights[label] += max(float(score), 0.0)
    if not weights:
        return None, 0.0
    total = sum(weights.values())
    # Ties (or all-zero similarity) go to the label seen first, i.e. the better-ranked one.
    best = max(weights, key=lambda lab: (weights[lab], -labels.index(lab)))
    return best, (weights[best] / total if total > 0 else 1.0 / len(weights))


def _query_vector(index: CaseIndex, backbone: Backbone, query: CompareQuery):
    """(vector, case ids to leave out) for one backbone."""
    if query.kind == "photo":
        if query.image is None:
            raise ValueError("No photo was given to compare.")
        return backbone.encode_images([query.image], normalize=True)[0], ()
    if query.kind == "text":
        if not backbone.has_text:
            raise ValueError(
                f"{backbone.spec.name} embeds images only, so it cannot read a prompt."
            )
        return backbone.encode_texts([str(query.text or "")])[0], ()
    if query.kind == "case":
        found = index.cases.index[index.cases["relpath"] == query.relpath]
        if len(found) == 0:
            raise ValueError(
                f"The case {query.relpath} is not in the index of {backbone.spec.name}; "
                "rebuild it after the library changed."
            )
        row = index.cases.loc[found[0]]
        raw = index.raw[found[0]]
        # Its own case and copies of its photo are left out, as leave-one-out does.
        return raw / max(float(np.linalg.norm(raw)), 1e-12), (str(row["case_id"]), *query.copies)
    raise ValueError(f"A query is a photo, a case or a text, not {query.kind!r}.")


def compare_row(
    index: CaseIndex,
    backbone: Backbone,
    query: CompareQuery,
    *,
    k: int,
    variant: PreparedVariant | None = None,
    calibration: ConformalVote | None = None,
    coverage: float = DEFAULT_COVERAGE,
) -> BackboneRow:
    """One backbone's row: its top-k by cosine (or ranked by a retrieval ``variant`` prepared
    for this index), framed against the query's diagnosis. With a ``calibration`` of this
    index at this k (``trusted_search.vote_calibration``), a plain photo or case query also
    gets the vote's prediction set at ``coverage``."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive whole number, not {k!r}.")
    if variant is not None and query.kind == "text":
        raise ValueError("Retrieval variants rank photos: compare a text prompt plainly.")
    started = time.perf_counter()
    vector, exclude = _query_vector(index, backbone, query)
    flipped, row = None, None
    if variant is not None and variant.name == "tta-flip" and query.kind == "photo":
        flipped = mirrored_query(backbone, query.image)
    if query.kind == "case":
        row = int(np.flatnonzero(index.cases["relpath"].to_numpy() == query.relpath)[0])
    embed_ms = 0.0 if query.kind == "case" else (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    if variant is None:
        found = index.search_vector(vector, k=k, exclude_case_ids=exclude)
    else:
        found = variant.search(vector, k=k, exclude_case_ids=exclude, mirrored=flipped, row=row)
    search_ms = (time.perf_counter() - started) * 1000
    hits = []
    for hit in found:
        verdict: Verdict = (
            "unknown" if not query.label else ("match" if hit.label == query.label else "mismatch")
        )
        hits.append(
            ComparedHit(
                rank=hit.rank,
                label=hit.label,
                score=hit.score,
                case_id=hit.case_id,
                relpath=str(hit.metadata.get("relpath", hit.path)),
                path=hit.path,
                verdict=verdict,
            )
        )
    labels = [h.label for h in hits]
    vote, share = weighted_vote(labels, [h.score for h in hits])
    first = next((h.rank for h in hits if h.verdict == "match"), None)
    likely: tuple[str, ...] = ()
    calibrated = calibration is not None and variant is None and query.kind != "text" and hits
    if calibrated:
        classes = list(calibration.classes)
        codes = np.array([[classes.index(label) for label in labels]])
        scores = np.array([[h.score for h in hits]])
        shares = vote_shares(codes, scores, n_classes=len(classes), metric="cosine")[0]
        likely = tuple(calibration.labels(shares, coverage=coverage))
    return BackboneRow(
        key=backbone.key,
        name=backbone.spec.name,
        hits=tuple(hits),
        vote=vote,
        vote_count=labels.count(vote) if vote else 0,
        vote_share=share,
        hit_at_k=None if not query.label else first is not None,
        first_match=first,
        embed_ms=embed_ms,
        search_ms=search_ms,
        variant=variant.name if variant is not None else None,
        prediction_set=likely,
        coverage=coverage if calibrated else None,
    )


def pair_overlaps(rows: Sequence[BackboneRow], *, k: int) -> tuple[PairOverlap, ...]:
    pairs = []
    for a, b in itertools.combinations(rows, 2):
        theirs = set(b.case_ids)
        shared = tuple(dict.fromkeys(c for c in a.case_ids if c in theirs))
        pairs.append(PairOverlap(a.key, b.key, shared, k, a.vote == b.vote))
    return tuple(pairs)


def assemble(query: CompareQuery, rows: Sequence[BackboneRow], *, k: int) -> Comparison:
    """The comparison of finished rows: each hit marked when another row holds its case."""
    marked = []
    for row in rows:
        others = {c for other in rows if other is not row for c in other.case_ids}
        hits = tuple(replace(h, shared=h.case_id in others) for h in row.hits)
        marked.append(replace(row, hits=hits))
    return Comparison(query=query, k=k, rows=tuple(marked), pairs=pair_overlaps(marked, k=k))


def compare(
    indexed: Sequence[tuple[CaseIndex, Backbone]],
    query: CompareQuery,
    *,
    k: int,
    variants: Sequence[PreparedVariant | None] | None = None,
    calibrations: Sequence[ConformalVote | None] | None = None,
) -> Comparison:
    """Every backbone's row (each ranked by its prepared retrieval variant, when given), then
    the overlaps: what the command line prints. ``calibrations``, one per index, give the plain
    rows their prediction sets."""
    variants = list(variants) if variants is not None else [None] * len(indexed)
    calibrations = list(calibrations) if calibrations is not None else [None] * len(indexed)
    if len(variants) != len(indexed) or len(calibrations) != len(indexed):
        raise ValueError("Give one prepared variant and one calibration (or None) per backbone.")
    rows = [
        compare_row(index, backbone, query, k=k, variant=variant, calibration=calibration)
        for (index, backbone), variant, calibration in zip(
            indexed, variants, calibrations, strict=True
        )
    ]
    return assemble(query, rows, k=k)
