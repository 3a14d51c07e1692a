"""Retrieval variants: ways to search the same frozen embeddings better, registered once.

Every variant is one `Variant` in `VARIANTS`: a name, a one-line description, its parameters
with their defaults, what it needs (labels, several backbones, mirrored images), its cost per
query in words, and whether it learns from labels (then any evaluation must fit it on folds
that leave out the query's case). The math lives here as small numpy functions on unit
vectors, so the benchmark's honest evaluation (`benchmarks.variants`) and a search in the app
run the very same code.

- ``tta-flip``: each photo and its mirror image are embedded and averaged (query and library).
- ``aqe``: alpha query expansion (Radenović et al., 2018): the query is re-issued as the
  similarity-weighted mean of itself and its top ``k`` neighbours.
- ``dba``: database-side augmentation: every library vector is replaced by the weighted mean
  of itself and its top ``k`` neighbours, off-line; the query is searched as it comes.
- ``k-reciprocal``: k-reciprocal re-ranking (Zhong et al., 2017): the query's nearest cases
  are re-ordered by how much their k-reciprocal neighbourhoods overlap the query's (a Jaccard
  distance), blended with the original distance; computed among a shortlist of the query's
  nearest cases, so its cost per query does not grow with the library.
- ``fusion:<a>+<b>``: the L2-normalised embeddings of several backbones concatenated (equal
  weight), so a pair's similarity is the mean of the backbones' cosines.
- ``adapter-lda``: a linear projection learned from the library's labels (shrinkage LDA),
  then cosine in the projected space.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from models.base import l2_normalize

LABELS = "labels"
SEVERAL_BACKBONES = "two or more backbones"
MIRRORED_IMAGES = "a mirrored embedding of every library photo"


@dataclass(frozen=True)
class Variant:
    """One retrieval variant as users and the benchmark see it."""

    name: str
    description: str  # one line
    params: Mapping[str, float] = field(default_factory=dict)  # defaults
    needs: tuple[str, ...] = ()
    fitted: bool = False  # learns from labels: evaluate cross-fitted by case
    query_cost: str = ""  # extra work per query, in words
    title: str = ""  # what the app calls it, in plain words
    plain: str = ""  # one sentence a clinician understands
    plain_cost: str = ""  # its extra work per query, for the app's page
    score_meaning: str = ""  # what a hit's score is, where it is not a cosine similarity


VARIANTS: dict[str, Variant] = {}


def register_variant(variant: Variant) -> Variant:
    if variant.name in VARIANTS:
        raise ValueError(f"Retrieval variant {variant.name!r} is registered already.")
    VARIANTS[variant.name] = variant
    return variant


register_variant(
    Variant(
        "tta-flip",
        "average each photo's embedding with its mirror image's (query and library)",
        needs=(MIRRORED_IMAGES,),
        query_cost="a second forward pass of the backbone per query",
        title="Also search the mirror image",
        plain="Each photo is also read flipped left to right, and the two readings are averaged.",
        plain_cost="the model reads the photo a second time, mirrored",
    )
)
register_variant(
    Variant(
        "aqe",
        "re-issue the query as the weighted mean of itself and its nearest cases",
        params={"k": 3, "alpha": 3.0},
        query_cost="a second search",
        title="Widen the query with its nearest cases",
        plain="The search is run again with the query blended with its three nearest cases.",
        plain_cost="a second search",
    )
)
register_variant(
    Variant(
        "dba",
        "replace every library vector by the weighted mean of itself and its nearest cases",
        params={"k": 3, "alpha": 3.0},
        query_cost="none (the library is augmented once, off-line)",
        title="Blend each library photo with its neighbours",
        plain="Every library photo is blended with its three nearest cases before the search.",
        plain_cost="none: the library is blended once, when first used",
    )
)
register_variant(
    Variant(
        "k-reciprocal",
        "re-rank the nearest cases by the overlap of their k-reciprocal neighbourhoods",
        params={"k1": 20, "k2": 6, "lambda": 0.3, "shortlist": 100},
        query_cost="a search for the top 100 cases, then a 101 x 101 neighbour table",
        title="Re-rank by shared neighbours",
        plain=(
            "The nearest cases are re-ordered so that cases which also count the photo among "
            "their own nearest cases, and share its neighbours, come first."
        ),
        plain_cost="a wider first search and a comparison among its 100 nearest cases",
        score_meaning=(
            "one minus the re-ranking distance, which blends shared neighbours with the plain "
            "similarity (1 = closest)"
        ),
    )
)
register_variant(
    Variant(
        "fusion",
        "concatenate the normalised embeddings of several backbones (written fusion:a+b)",
        needs=(SEVERAL_BACKBONES,),
        query_cost="one forward pass per fused backbone",
        title="Combine several backbones",
        plain="The similarities of several backbones are averaged.",
        plain_cost="every fused model reads the photo",
    )
)
register_variant(
    Variant(
        "adapter-lda",
        "project embeddings with a shrinkage LDA fitted on the library's diagnoses",
        needs=(LABELS,),
        fitted=True,
        query_cost="one matrix product",
        title="Adapt to this library's labels (LDA)",
        plain=(
            "Learns a projection from the library's diagnoses, so that cases with the same "
            "diagnosis sit closer together."
        ),
        plain_cost="one small matrix product; the library is projected once, when first used",
    )
)


def parse_variants(names: str | list[str]) -> list[str]:
    """Variant names from a comma list; ``fusion:a+b`` keeps its backbones. Unknown names get
    an error listing the valid ones."""
    items = names.split(",") if isinstance(names, str) else list(names)
    out = []
    for raw in items:
        name = raw.strip().lower()
        if not name:
            continue
        base, _, members = name.partition(":")
        if base not in VARIANTS:
            valid = ", ".join(VARIANTS)
            raise ValueError(f"Unknown retrieval variant {name!r}. Valid variants: {valid}.")
        if base == "fusion" and len([m for m in members.split("+") if m]) < 2:
            raise ValueError("fusion needs two or more backbones, written fusion:a+b[+c].")
        if base != "fusion" and members:
            raise ValueError(f"{base} takes no ':' part; only fusion:a+b names backbones.")
        out.append(name)
    return out


def score_meaning(name: str | None) -> str:
    """What a hit's score is under the variant ``name`` (None: the plain search), in words."""
    variant = VARIANTS.get(str(name or "").partition(":")[0])
    if variant is not None and variant.score_meaning:
        return variant.score_meaning
    return "cosine similarity (1 = same direction, 0 = unrelated)"


def fusion_members(name: str) -> list[str]:
    """The backbone keys of ``fusion:a+b[+c]``."""
    return [m for m in name.partition(":")[2].split("+") if m]


# --- the math, on unit vectors
def weighted_mean(
    anchor: np.ndarray, neighbours: np.ndarray, sims: np.ndarray, *, alpha: float
) -> np.ndarray:
    """Unit vectors of anchor + sum_i max(s_i, 0)^alpha * neighbour_i, row by row.

    ``anchor`` (n, d); ``neighbours`` (n, k, d); ``sims`` (n, k). Negative similarities get no
    weight, so a poor neighbour cannot push the query away."""
    weights = np.clip(sims, 0.0, None) ** alpha
    mixed = anchor + np.einsum("nk,nkd->nd", weights, neighbours)
    return l2_normalize(mixed.astype(np.float32))


def fuse(unit_vectors: list[np.ndarray]) -> np.ndarray:
    """Concatenated unit vectors of several backbones, scaled back to unit length: the fused
    cosine is the mean of the backbones' cosines."""
    if len(unit_vectors) < 2:
        raise ValueError("fusion needs two or more backbones.")
    return (np.concatenate(unit_vectors, axis=1) / np.sqrt(len(unit_vectors))).astype(np.float32)


def flip_average(unit: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """The unit mean of a photo's embedding and its mirror image's."""
    return l2_normalize((unit + mirrored).astype(np.float32))


@dataclass(frozen=True)
class LdaAdapter:
    """A linear projection fitted on labelled unit vectors; `project` gives unit vectors."""

    mean: np.ndarray  # (d,)
    matrix: np.ndarray  # (d, m)

    def project(self, unit: np.ndarray) -> np.ndarray:
        return l2_normalize(((unit - self.mean) @ self.matrix).astype(np.float32))


# Components kept: the discriminant directions and, past the (classes - 1) of them, directions
# whitened against the within-class spread. With two classes, one direction alone makes every
# cosine +1 or -1; on infectious-8 (efficientnet-lite0, cross-fitted) 16 components gave Top-1
# 0.819 against 0.814 for classes - 1, and on mpox-msld 0.684 against 0.348.
LDA_COMPONENTS = 16


def fit_lda(
    unit: np.ndarray, labels: np.ndarray, *, components: int = LDA_COMPONENTS
) -> LdaAdapter:
    """Shrinkage LDA (Ledoit-Wolf, so it works with fewer photos than dimensions)."""
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError("adapter-lda needs at least two diagnoses in the library.")
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto")
    lda.fit(unit.astype(np.float64), labels)
    n_components = min(unit.shape[1], max(len(classes) - 1, components))
    matrix = lda.scalings_[:, :n_components].astype(np.float32)
    return LdaAdapter(mean=unit.mean(axis=0).astype(np.float32), matrix=matrix)


def _reciprocal(rank: np.ndarray, k: int) -> np.ndarray:
    """Boolean (m, m): j is among i's ``k`` nearest (itself included as the 0th) and i among
    j's."""
    top = np.zeros(rank.shape, bool)
    np.put_along_axis(top, rank[:, : k + 1], True, axis=1)
    return top & top.T


def k_reciprocal_distances(
    query: np.ndarray,
    candidates: np.ndarray,
    *,
    k1: int = 20,
    k2: int = 6,
    lam: float = 0.3,
) -> np.ndarray:
    """Re-ranking distances from ``query`` (d,) to each of ``candidates`` (m, d), unit vectors;
    smaller is nearer. Zhong et al. (2017), "Re-ranking person re-identification with
    k-reciprocal encoding", computed on the set {query} + candidates only:

    1. squared Euclidean distances, each row scaled by its largest;
    2. every point's k-reciprocal set R(i, k1) (mutual top-k1), expanded by each member's
       R(c, k1/2) that shares more than two thirds of its points with R(i, k1);
    3. a vector per point, exp(-distance) over its expanded set, normalised to sum 1, then
       averaged over the point's ``k2`` nearest (local query expansion);
    4. the Jaccard distance of the query's vector to each candidate's, blended as
       ``(1 - lam) * jaccard + lam * distance``.

    Whatever is not among ``candidates`` plays no part, so leaving a case out of the
    candidates leaves it out of every neighbourhood."""
    points = np.vstack([np.asarray(query, np.float64)[None], np.asarray(candidates, np.float64)])
    m = len(points)
    dist = np.clip(2.0 - 2.0 * (points @ points.T), 0.0, None)
    np.fill_diagonal(dist, 0.0)
    dist /= np.maximum(dist.max(axis=1, keepdims=True), np.finfo(np.float64).tiny)
    rank = np.argsort(dist, axis=1, kind="stable")
    near = _reciprocal(rank, k1)
    half = _reciprocal(rank, int(np.around(k1 / 2.0)))
    # shared[i, c]: points of R(c, k1/2) inside R(i, k1); counts are small integers, exact
    # in float32 (a float product is a BLAS call, an integer one is not)
    shared = near.astype(np.float32) @ half.T.astype(np.float32)
    joins = near & (shared > (2.0 / 3.0) * half.sum(axis=1)[None, :])
    expanded = near | ((joins.astype(np.float32) @ half.astype(np.float32)) > 0)
    np.fill_diagonal(expanded, True)  # only many exact copies could push a point out of its own
    weights = np.where(expanded, np.exp(-dist), 0.0)
    weights /= weights.sum(axis=1, keepdims=True)
    if k2 > 1:
        weights = weights[rank[:, : min(k2, m)]].mean(axis=1)
    # rows sum to 1, so sum(max) = 2 - sum(min)
    overlap = np.minimum(weights[0][None, :], weights[1:]).sum(axis=1)
    jaccard = 1.0 - overlap / (2.0 - overlap)
    return (1.0 - lam) * jaccard + lam * dist[0, 1:]


def k_reciprocal_order(
    query: np.ndarray, candidates: np.ndarray, *, params: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """(positions into ``candidates`` nearest first, their re-ranking distances), with the
    registered parameters; ties keep the candidates' own order."""
    final = k_reciprocal_distances(
        query, candidates, k1=int(params["k1"]), k2=int(params["k2"]), lam=float(params["lambda"])
    )
    order = np.argsort(final, kind="stable")
    return order, final[order]
