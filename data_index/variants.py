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
