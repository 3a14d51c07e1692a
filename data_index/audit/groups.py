"""Duplicate-group ids as arrays: joining rows into groups, and what the groups mean for search."""

from __future__ import annotations

from itertools import combinations

import networkx as nx
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


def split_weak_groups(
    n: int, edges: list, check, *, mapper=map, checked: set[tuple[int, int]] | None = None
) -> tuple[list[list[int]], list]:
    """Groups of rows joined by confirmed copy ``edges`` (i, j, evidence), where every member
    matches at least half of the other members it was checked against.

    A chain of single links can join photos that are not copies of each other (two distinct
    photos each matched to a third through a mark the mask missed). Pairs inside a group that
    no edge covers are checked with ``check(i, j)`` (evidence or None); a member matching
    fewer than half of the others leaves the group, the weakest first. Returns the groups
    (two or more members) and the extra edges that ``check`` confirmed. ``mapper(f, pairs)``
    runs the checks (``map``, or a thread pool's ordered map).

    Groups over MAX_CHECKED_GROUP members (many copies of one photo) get no extra checks;
    given ``checked`` (the pairs (i < j) already checked, confirmed or not), their members are
    judged only against the pairs checked, so a photo with 40 copies is not torn apart for
    the pairs nobody looked at. Without it, every other member counts. A link that alone
    joins two parts of such a group is checked across first (``_check_bridges``) and cut
    when the photos on either side do not match.
    """
    linked = {(min(i, j), max(i, j)) for i, j, _ in edges}
    joined = _components(range(n), linked)
    cut, extra = _check_bridges(
        [m for m in joined if len(m) > MAX_CHECKED_GROUP], linked, check, mapper
    )
    linked |= {(a, b) for a, b, _ in extra}
    if cut:
        linked -= cut
        joined = _components(range(n), linked)
    unchecked = [
        (a, b)
        for members in joined
        if 2 < len(members) <= MAX_CHECKED_GROUP
        for a, b in combinations(members, 2)
        if (a, b) not in linked
    ]
    for (a, b), evidence in zip(
        unchecked, mapper(lambda pair: check(*pair), unchecked), strict=True
    ):
        if evidence is not None and evidence.level == "copy":
            linked.add((a, b))
            extra.append((a, b, evidence))
    looked = None if checked is None else checked | linked
    groups: list[list[int]] = []
    for members in joined:
        big = len(members) > MAX_CHECKED_GROUP
        groups.extend(_split(members, linked, looked if big else None))
    return groups, extra


MAX_CHECKED_GROUP = 24  # larger groups (many copies of one photo) get no extra checks
# A link that alone joins two sets of at least this many images is checked across (below).
BRIDGE_SIDE = 3
BRIDGE_PROBES = 3  # images of each side, the link's own first, paired across the link


def _components(rows, pairs) -> list[list[int]]:
    """``rows`` joined by ``pairs`` (of rows among them), groups of two or more, members in
    the order of ``rows`` and groups in the order of their first member."""
    rows = list(rows)
    union = UnionFind(max(rows, default=-1) + 1)
    for i, j in pairs:
        union.union(i, j)
    components: dict[int, list[int]] = {}
    for row in rows:
        components.setdefault(union.find(row), []).append(row)
    return [m for m in components.values() if len(m) >= 2]


def _near(graph: nx.Graph, x: int, side: set[int]) -> list[int]:
    """``x`` and its first BRIDGE_PROBES - 1 neighbours within ``side``."""
    return [x, *sorted(y for y in graph[x] if y in side)[: BRIDGE_PROBES - 1]]


def _check_bridges(
    groups: list[list[int]], linked: set[tuple[int, int]], check, mapper
) -> tuple[set[tuple[int, int]], list]:
    """The links of ``groups`` to cut, and the copies confirmed on the way.

    In a group of many copies of one photo each member is linked to many others. One chance
    fit between copies of two different photos (10-12 inliers over a few per cent of the
    image, correlation just over the bar) is then the only link between two such sets: a
    bridge of the graph. Each bridge whose two sides have at least BRIDGE_SIDE members is
    checked across: the link's two ends and their first neighbours on their own side, paired
    with those of the other side. The link stays when at least half of these pairs are
    copies too, and is cut otherwise.
    """
    group_of = {row: g for g, members in enumerate(groups) for row in members}
    graphs = [nx.Graph() for _ in groups]
    for a, b in linked:
        if a in group_of:
            graphs[group_of[a]].add_edge(a, b)
    probes: list[tuple[tuple[int, int], list[tuple[int, int]]]] = []
    for members, graph in zip(groups, graphs, strict=True):
        for a, b in sorted(tuple(sorted(e)) for e in nx.bridges(graph)):
            graph.remove_edge(a, b)
            side_a = nx.node_connected_component(graph, a)
            graph.add_edge(a, b)
            if min(len(side_a), len(members) - len(side_a)) < BRIDGE_SIDE:
                continue

            side_b = set(members) - side_a
            across = [
                (min(u, w), max(u, w))
                for u in _near(graph, a, side_a)
                for w in _near(graph, b, side_b)
                if (min(u, w), max(u, w)) != (a, b)
            ]
            probes.append(((a, b), across))
    pairs = sorted({p for _, across in probes for p in across} - linked)
    found = {
        p: ev
        for p, ev in zip(pairs, mapper(lambda pair: check(*pair), pairs), strict=True)
        if ev is not None and ev.level == "copy"
    }
    cut, kept = set(), set()
    for bridge, across in probes:
        held = [p for p in across if p in linked or p in found]
        if 2 * len(held) < len(across):
            cut.add(bridge)
        else:
            kept.update(held)
    # Copies found across a link that is cut would join its two sides again: left out.
    extra = [(a, b, ev) for (a, b), ev in sorted(found.items()) if (a, b) in kept]
    return cut, extra


def _split(
    members: list[int], linked: set[tuple[int, int]], looked: set[tuple[int, int]] | None = None
) -> list[list[int]]:
    """``members`` less its weak ones; ``looked``: the pairs a member is judged against
    (None: all others)."""
    group = list(members)
    removed: list[int] = []
    while len(group) > 2:
        pairs = {m: [(min(m, o), max(m, o)) for o in group if o != m] for m in group}
        degree = {m: sum(p in linked for p in pairs[m]) for m in group}
        judged = {
            m: len(pairs[m]) if looked is None else sum(p in looked for p in pairs[m])
            for m in group
        }
        weakest = min(group, key=lambda m: (2 * degree[m] - judged[m], degree[m], -m))
        if 2 * degree[weakest] >= judged[weakest]:
            break
        group.remove(weakest)
        removed.append(weakest)
    out = [sorted(group)] if len(group) > 2 or tuple(sorted(group)) in linked else []
    if len(removed) > 1:  # what left the group may still be copies of each other
        out.extend(_regroup(removed, linked, looked))
    return out


def _regroup(
    rows: list[int], linked: set[tuple[int, int]], looked: set[tuple[int, int]] | None
) -> list[list[int]]:
    among = [(a, b) for a, b in combinations(rows, 2) if (min(a, b), max(a, b)) in linked]
    return [g for p in _components(rows, among) for g in _split(p, linked, looked)]


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
