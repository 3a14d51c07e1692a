"""One library under one backbone as every protocol sees it, and what a protocol may need of it.

`Embedded` holds the arrays the runner aligns row by row (vectors, labels, cases, splits,
duplicate groups) with the backbone that made them. A `Requirement` is one thing a protocol
needs of such a view (a train and test split, a text tower, a classifier of the backbone's
own); when a view falls short, its check says why in one sentence, and that sentence is the
skip record's reason. A protocol that finds out only while running that it cannot run (no
candidate left after the exclusions, a class too small to split) raises `ProtocolSkipped`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from data_index.case_index import CaseIndex
from models import Backbone

# "ours": cosine on L2-normalised vectors, the query's case and copies left out, vote ties are
# misses. "paper": what the public code of the paper a protocol follows does.
Conventions = Literal["ours", "paper"]
CONVENTIONS: tuple[str, ...] = ("ours", "paper")


def parse_conventions(text: str | Sequence[str]) -> list[str]:
    """["ours"], ["paper"] or both, from "ours", "paper", "ours,paper" or "both"."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for raw in items:
        name = str(raw).strip().lower()
        wanted = list(CONVENTIONS) if name == "both" else [name]
        for item in wanted:
            if item not in CONVENTIONS:
                raise ValueError(f"Unknown conventions '{raw}'; choose ours, paper or both.")
            out += [item] if item not in out else []
    if not out:
        raise ValueError("Name the conventions: ours, paper or both.")
    return out


@dataclass(frozen=True)
class Embedded:
    """One library under one backbone: arrays aligned row by row."""

    unit: np.ndarray  # L2-normalised vectors
    raw: np.ndarray  # the backbone's raw output (Euclidean protocol)
    labels: np.ndarray  # str
    case_ids: np.ndarray  # str
    splits: np.ndarray  # str ("" when the library has none)
    group_ids: np.ndarray  # duplicate-group id per row (data_index.audit)
    paths: list[str]
    sha1s: list[str]
    backbone: Backbone
    embeddings_cache: Path | None = None
    keys: tuple[str, ...] = ()  # the library's relative path per row: per-query record keys
    conventions: Conventions = "ours"

    @property
    def query_keys(self) -> Sequence[str]:
        return self.keys or self.paths

    @classmethod
    def from_index(
        cls,
        index: CaseIndex,
        *,
        backbone: Backbone,
        group_ids: np.ndarray,
        embeddings_cache: Path | None = None,
    ) -> Embedded:
        """The view of a built index; ``group_ids`` aligned with ``index.cases``."""
        cases = index.cases
        return cls(
            unit=index.vectors(),
            raw=index.raw,
            labels=cases["label"].astype(str).to_numpy(),
            case_ids=cases["case_id"].astype(str).to_numpy(),
            splits=cases["split"].fillna("").astype(str).to_numpy(),
            group_ids=group_ids,
            paths=cases["path"].astype(str).tolist(),
            sha1s=cases["sha1"].astype(str).tolist(),
            backbone=backbone,
            embeddings_cache=embeddings_cache,
            keys=tuple(cases["relpath"].astype(str).tolist()),
        )


class ProtocolSkipped(Exception):
    """This protocol cannot run here; the message says why in one sentence."""


@dataclass(frozen=True)
class Requirement:
    """Something a protocol needs of a view; ``unmet(view)`` is None when the view has it,
    else the sentence saying why not."""

    needs: str  # a few words for listings: "a train and a test split"
    unmet: Callable[[Embedded], str | None]


ARCHITECTURE_ONLY = (
    "accuracy is not recorded for architecture-only backbones: with random weights their "
    "vectors mean nothing, so only their timings are kept."
)


def _random_weights(view: Embedded) -> str | None:
    return ARCHITECTURE_ONLY if view.backbone.weights_origin != "pretrained" else None


def _no_train_test_split(view: Embedded) -> str | None:
    present = set(view.splits.tolist())
    if {"train", "test"} <= present:
        return None
    shown = sorted(s for s in present if s) or ["none"]
    return f"the library has no train and test splits (splits present: {', '.join(shown)})."


def _no_text_tower(view: Embedded) -> str | None:
    if view.backbone.has_text:
        return None
    return f"{view.backbone.key} has no text tower, so text queries cannot run."


# Every protocol needs real weights: checked first, and not listed with each protocol.
REAL_WEIGHTS = Requirement("real weights (not architecture-only)", _random_weights)
# Shared by several protocols; one protocol's own requirements sit beside its run function.
TRAIN_TEST_SPLIT = Requirement("a train and a test split", _no_train_test_split)
TEXT_TOWER = Requirement("a backbone with a text tower", _no_text_tower)
