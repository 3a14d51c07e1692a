"""What the duplicate audit returns: groups, label conflicts and the evidence for each pair."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from data_index.audit.match import PairEvidence


class DuplicatePair(NamedTuple):
    a: int
    b: int
    evidence: PairEvidence


class CrossDuplicate(NamedTuple):
    query_row: int
    index_row: int
    evidence: PairEvidence


@dataclass(frozen=True)
class LabelConflict:
    """A group of copies of one photo that carries more than one label."""

    group: int  # index into DuplicateReport.groups (and the members' group id)
    members: list[int]
    labels: list[str]  # the member labels, aligned with members


def group_ids_of(groups: list[list[int]], n: int) -> np.ndarray:
    """Group id per row: ``groups[g]`` gets ``g``, every other row an id of its own after them."""
    ids = np.full(n, -1, dtype=np.int64)
    for g, members in enumerate(groups):
        ids[members] = g
    singles = np.flatnonzero(ids < 0)
    ids[singles] = np.arange(len(groups), len(groups) + len(singles))
    return ids


def label_conflicts(groups: list[list[int]], labels: list[str] | None) -> list[LabelConflict]:
    """The groups whose members carry more than one label."""
    if labels is None:
        return []
    conflicts = []
    for g, members in enumerate(groups):
        member_labels = [labels[r] for r in members]
        if len(set(member_labels)) > 1:
            conflicts.append(LabelConflict(g, list(members), member_labels))
    return conflicts


@dataclass
class DuplicateReport:
    """Groups of copies in one library; rows refer to the order of the input paths."""

    paths: list[str]
    labels: list[str] | None
    group_ids: np.ndarray  # (n,) int; groups[g] has id g, every other image an id of its own
    groups: list[list[int]]
    conflicts: list[LabelConflict]
    pairs: list[DuplicatePair]
    unreadable: list[tuple[int, str]]  # (row, reason); these rows are singletons
    seconds: float = 0.0
    n_candidates: int = 0
    # Pairs whose aligned content agrees less than a copy's: for a person to decide; never
    # grouped, never a label conflict, never excluded from leave-one-out.
    possible: list[DuplicatePair] = field(default_factory=list)
    overlays: dict[int, list[int]] = field(default_factory=dict)  # row -> overlay cell positions

    @property
    def n_groups(self) -> int:
        return len(self.groups)

    @property
    def n_conflicts(self) -> int:
        return len(self.conflicts)

    def same_photo(self, row: int) -> list[int]:
        """All rows showing the same photo as ``row`` (itself included)."""
        return [int(i) for i in np.flatnonzero(self.group_ids == self.group_ids[row])]

    def summary(self) -> dict[str, object]:
        n_in = sum(len(g) for g in self.groups)
        return {
            "n_images": len(self.paths),
            "n_unreadable": len(self.unreadable),
            "n_groups": self.n_groups,
            "n_images_in_groups": n_in,
            "n_distinct_photos": len(self.paths) - n_in + len(self.groups),
            "n_conflicts": self.n_conflicts,
            "n_pairs_confirmed": len(self.pairs),
            "n_possible_copies": len(self.possible),
            "n_images_with_overlays": len(self.overlays),
            "n_candidates_checked": self.n_candidates,
            "seconds": round(self.seconds, 2),
        }

    def to_records(self) -> list[dict[str, object]]:
        """One flat record per image that belongs to a group (for tables and CSV)."""
        conflicted = {c.group for c in self.conflicts}
        records = []
        for g, members in enumerate(self.groups):
            for row in members:
                records.append(
                    {
                        "group": g,
                        "group_size": len(members),
                        "row": row,
                        "path": self.paths[row],
                        "label": self.labels[row] if self.labels is not None else None,
                        "label_conflict": g in conflicted,
                    }
                )
        return records

    def pair_records(self) -> list[dict[str, object]]:
        """One flat record per confirmed pair, with its evidence."""
        return [
            {"a": p.a, "b": p.b, "path_a": self.paths[p.a], "path_b": self.paths[p.b]}
            | p.evidence.as_dict()
            for p in self.pairs
        ]


@dataclass
class CrossReport:
    """Query images that copy index images; iterates as (query_row, index_row, evidence)."""

    matches: list[CrossDuplicate]
    conflicts: list[CrossDuplicate] = field(default_factory=list)  # matches whose labels differ
    unreadable_index: list[tuple[int, str]] = field(default_factory=list)
    unreadable_query: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0

    def __iter__(self) -> Iterator[CrossDuplicate]:
        return iter(self.matches)

    def __len__(self) -> int:
        return len(self.matches)

    def summary(self) -> dict[str, object]:
        return {
            "n_matches": len(self.matches),
            "n_query_images_matched": len({m.query_row for m in self.matches}),
            "n_conflicts": len(self.conflicts),
            "n_unreadable_index": len(self.unreadable_index),
            "n_unreadable_query": len(self.unreadable_query),
            "seconds": round(self.seconds, 2),
        }


def group_pair(report: DuplicateReport, group: int) -> DuplicatePair:
    """The pair that best shows why a group was formed: its most matched points."""
    members = set(report.groups[group])
    inside = [p for p in report.pairs if p.a in members and p.b in members]
    if not inside:
        raise ValueError(f"Group {group} has no confirmed pair in this report.")
    return max(inside, key=lambda p: (p.evidence.method == "identical-pixels", p.evidence.inliers))
