"""Duplicate-group ids as arrays: joining rows into groups, and what the groups mean for search."""

from __future__ import annotations

import numpy as np


class UnionFind:
    """Disjoint sets over rows 0..n-1; each set's root is its smallest row."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]  # path halving keeps trees flat
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def queries_with_copy(*, group_ids: np.ndarray, case_ids: np.ndarray) -> tuple[int, int]:
    """(rows with another image of their duplicate group, those whose copy is another case).

    The second count is what the duplicate exclusion changes: a copy within the query's own
    case is excluded by the case rule already.
    """
    groups = np.asarray(group_ids)
    cases = np.asarray(case_ids).astype(str)
    with_copy = other_case = 0
    for gid in np.unique(groups):
        members = np.flatnonzero(groups == gid)
        if len(members) < 2:
            continue
        with_copy += len(members)
        member_cases = cases[members]
        other_case += int(sum((member_cases != c).any() for c in member_cases))
    return with_copy, other_case


def case_or_copy_groups(*, group_ids: np.ndarray, case_ids: np.ndarray) -> np.ndarray:
    """One id per row joining rows that share a case or a duplicate group (transitively).

    Used to keep a case and all copies of its photos on one side of a train/test split.
    """
    groups = np.asarray(group_ids)
    cases = np.unique(np.asarray(case_ids).astype(str), return_inverse=True)[1].reshape(-1)
    union = UnionFind(len(groups))
    for ids in (groups, cases):
        first: dict[int, int] = {}
        for row, value in enumerate(ids.tolist()):
            union.union(first.setdefault(value, row), row)
    return np.array([union.find(i) for i in range(len(groups))], dtype=np.int64)
