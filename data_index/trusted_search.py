"""One search as the CLI and the app both run it: nearest cases with the query's own photo left
out, the vote, its conformal prediction set, and whether anything in the library is close.

``python -m data_index search --json`` prints ``SearchReport.as_json()``; the app formats the
same report, so the two can never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from data_index.audit import audit_cache_file, audit_library
from data_index.case_index import CaseIndex
from data_index.library import CaseLibrary
from data_index.query_match import (
    NEAR_COPY_CHECKS,
    QueryInLibrary,
    file_sha1,
    find_query_in_library,
)
from data_index.search import Hit, SearchMetric
from data_index.trust import (
    DEFAULT_COVERAGE,
    LOW_SIMILARITY_PERCENTILE,
    ConformalVote,
    calibrate_vote,
    loo_top1_similarity,
    similarity_quantiles,
    threshold_at,
    vote_shares,
)
from data_index.variant_search import PreparedVariant
from models import Backbone, open_image

# What the "no close match" rule can and cannot tell, said wherever it is shown.
LOW_SIMILARITY_SCOPE = (
    "It catches photos unlike anything here (other body sites, objects, screenshots); it "
    "cannot tell a dermoscopy image from a clinical photo of similar colours, so a photo of "
    "another kind can still pass."
)


@dataclass(frozen=True)
class SearchReport:
    hits: list[Hit]
    metric: str
    k: int
    vote: dict[str, float]  # label -> share of the similarity-weighted vote, largest first
    prediction_set: list[str]
    coverage: float
    query_in_library: QueryInLibrary | None
    nearest_similarity: float | None  # cosine of the nearest case left in
    similarity_threshold: float | None
    n_cases: int
    variant: str | None = None  # the retrieval variant that ranked the hits (None: plain)

    @property
    def low_similarity(self) -> bool:
        """True when nothing in the library is as close as most of its own photos are to
        each other (below the threshold's percentile of leave-one-case-out similarities)."""
        if self.nearest_similarity is None or self.similarity_threshold is None:
            return False
        return self.nearest_similarity < self.similarity_threshold

    @property
    def vote_label(self) -> str | None:
        return next(iter(self.vote), None)

    def as_json(self) -> dict:
        top = self.vote_label
        return {
            "hits": [
                {
                    "rank": h.rank,
                    "label": h.label,
                    "score": h.score,
                    "case_id": h.case_id,
                    # Inside the library: the app sends this summary to browsers and API
                    # callers, who never see a server path, and the CLI prints the same one.
                    "path": str(h.metadata.get("relpath") or h.path),
                }
                for h in self.hits
            ],
            "metric": self.metric,
            "variant": self.variant,
            "k": self.k,
            "vote": {
                "label": top,
                "count": sum(h.label == top for h in self.hits),
                "of": len(self.hits),
                "shares": self.vote,
            },
            "prediction_set": {"labels": self.prediction_set, "coverage": self.coverage},
            "query_in_library": self.query_in_library.case_id if self.query_in_library else None,
            "left_out": list(self.query_in_library.left_out) if self.query_in_library else [],
            "low_similarity": {
                "flag": self.low_similarity,
                "nearest_similarity": self.nearest_similarity,
                "threshold": self.similarity_threshold,
                "percentile": LOW_SIMILARITY_PERCENTILE,
            },
        }


def cached_copy_groups(idx: CaseIndex, library: CaseLibrary) -> np.ndarray | None:
    """Duplicate-group ids aligned with ``idx.cases`` from the library's audit when it has been
    run (Library tab, ``validate`` or the benchmark); None rather than audit during a search."""
    if not audit_cache_file(library).exists():
        return None
    report = audit_library(library)
    by_path = dict(
        zip(library.cases["relpath"].astype(str), report.group_ids.tolist(), strict=True)
    )
    relpaths = idx.cases["relpath"].astype(str).tolist()
    # Cases added to the index after the audit are photos of their own.
    return np.array([by_path.get(p, -1 - i) for i, p in enumerate(relpaths)], dtype=np.int64)


def similarity_threshold(idx: CaseIndex, *, group_ids: np.ndarray | None = None) -> float | None:
    """The "no close match" threshold of this index: from the leave-one-case-out distribution
    its build stored, else computed from its vectors now."""
    stored = idx.manifest.get("calibration", {})
    if stored.get("n") == len(idx) and stored.get("loo_top1_quantiles"):
        return threshold_at(stored["loo_top1_quantiles"], LOW_SIMILARITY_PERCENTILE)
    top1 = loo_top1_similarity(
        idx.vectors(), case_ids=idx.cases["case_id"].astype(str).to_numpy(), group_ids=group_ids
    )
    return threshold_at(similarity_quantiles(top1), LOW_SIMILARITY_PERCENTILE)


def vote_calibration(
    idx: CaseIndex, *, k: int, metric: str, group_ids: np.ndarray | None = None
) -> ConformalVote:
    """Prediction-set calibration of this index by leave-one-case-out k-NN votes."""
    vectors = idx.vectors() if metric == "cosine" else idx.raw
    return calibrate_vote(
        vectors,
        labels=idx.cases["label"].astype(str).to_numpy(),
        case_ids=idx.cases["case_id"].astype(str).to_numpy(),
        group_ids=group_ids,
        k=k,
        metric=metric,
    )


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def trusted_search(
    idx: CaseIndex,
    vector: np.ndarray,
    *,
    k: int = 10,
    metric: SearchMetric = "cosine",
    coverage: float = DEFAULT_COVERAGE,
    query_image: Image.Image | None = None,
    query_sha1: str | None = None,
    exclude_case_ids: Iterable[str] = (),
    group_ids: np.ndarray | None = None,
    calibration: ConformalVote | None = None,
    threshold: float | None = None,
    variant: PreparedVariant | None = None,
    mirrored_vector: np.ndarray | None = None,
    query_row: int | None = None,
) -> SearchReport:
    """Search with ``vector`` (raw for Euclidean, any scale for cosine). A query photo
    (``query_image``/``query_sha1``) found in the library leaves out its case and copies.
    ``calibration`` and ``threshold`` may come from a cache; else they are computed here.

    With a ``variant`` the hits are ranked in its space (tta-flip needs ``mirrored_vector``,
    the query photo's mirror image, or ``query_row``, the library row it is). The prediction
    set is calibrated on the plain search, so it is left empty then; the "no close match"
    check stays the plain one, which asks whether anything in the library is close at all."""
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"Coverage must be between 0 and 1 (e.g. 0.9), not {coverage!r}.")
    if variant is not None and metric != "cosine":
        raise ValueError(
            "Retrieval variants compare photos by cosine similarity: switch the similarity to "
            "cosine, or switch the variant off."
        )
    exclude = {str(c) for c in exclude_case_ids}
    unit = _unit(np.asarray(vector, dtype=np.float32))
    found = None
    if query_image is not None or query_sha1:
        near = idx.search_vector(unit, k=NEAR_COPY_CHECKS, exclude_case_ids=exclude)
        found = find_query_in_library(
            cases=idx.cases,
            query_image=query_image,
            query_sha1=query_sha1,
            neighbours=near,
            group_ids=group_ids,
        )
        if found is not None:
            exclude |= set(found.left_out)
    if variant is None:
        hits = idx.search_vector(vector, k=k, exclude_case_ids=exclude, metric=metric)
    else:
        hits = variant.search(
            unit, k=k, exclude_case_ids=exclude, mirrored=mirrored_vector, row=query_row
        )
    plain_hits = metric == "cosine" and variant is None
    nearest = hits if plain_hits else idx.search_vector(unit, k=1, exclude_case_ids=exclude)
    calibration = calibration or vote_calibration(idx, k=k, metric=metric, group_ids=group_ids)
    classes = list(calibration.classes)
    codes = np.array([[classes.index(h.label) for h in hits]]) if hits else np.full((1, 1), -1)
    scores = np.array([[h.score for h in hits]]) if hits else np.full((1, 1), np.nan)
    shares = vote_shares(codes, scores, n_classes=len(classes), metric=metric)[0]
    vote = {classes[i]: float(shares[i]) for i in np.argsort(-shares, kind="stable") if shares[i]}
    if threshold is None:
        threshold = similarity_threshold(idx, group_ids=group_ids)
    return SearchReport(
        hits=hits,
        metric=metric,
        k=k,
        vote=vote,
        prediction_set=(
            calibration.labels(shares, coverage=coverage) if hits and variant is None else []
        ),
        coverage=coverage,
        query_in_library=found,
        nearest_similarity=float(nearest[0].score) if nearest else None,
        similarity_threshold=None if threshold is None or math.isnan(threshold) else threshold,
        n_cases=len(idx),
        variant=variant.name if variant is not None else None,
    )


def search_photo(
    idx: CaseIndex,
    backbone: Backbone,
    photo: str | Path | Image.Image,
    *,
    k: int = 10,
    metric: SearchMetric = "cosine",
    coverage: float = DEFAULT_COVERAGE,
    group_ids: np.ndarray | None = None,
) -> SearchReport:
    """Embed a photo (a file path keeps its bytes, so an identical file is found by hash)."""
    idx.check_backbone(backbone_key=backbone.key, weights_origin=backbone.weights_origin)
    image = open_image(photo) if not isinstance(photo, Image.Image) else photo
    sha1 = file_sha1(photo) if isinstance(photo, str | Path) else None
    vector = backbone.encode_images([image], normalize=False)[0]
    return trusted_search(
        idx,
        vector,
        k=k,
        metric=metric,
        coverage=coverage,
        query_image=image,
        query_sha1=sha1,
        group_ids=group_ids,
    )
