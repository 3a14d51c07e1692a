"""Where two backbones disagree across one library: leave-one-out top-1, query by query.

Each backbone's top-1 comes from ``benchmarks.retrieval.leave_one_out`` over its index, with
the same exclusions as the benchmark runner (the query's own case and copies of its photo, from
the copy audit), so the counts here add up to the benchmark's top-1 figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmarks.retrieval import leave_one_out
from data_index.case_index import CaseIndex
from data_index.library import CaseLibrary


@dataclass(frozen=True)
class QueryTop1:
    """One leave-one-out query under one backbone, in compact form."""

    relpath: str
    path: str  # the query's image file
    label: str
    top1_relpath: str
    top1_label: str
    top1_score: float

    @property
    def correct(self) -> bool:
        return self.label == self.top1_label


@dataclass(frozen=True)
class Disagreements:
    """Queries on which exactly one of two backbones has the right top-1."""

    a: str
    b: str
    n_queries: int
    only_a: tuple[tuple[QueryTop1, QueryTop1], ...]  # (a's row, b's row): a right, b wrong
    only_b: tuple[tuple[QueryTop1, QueryTop1], ...]  # b right, a wrong
    both_right: int
    both_wrong: int

    def to_dict(self) -> dict:
        def rows(pairs):
            return [
                {
                    "case": ra.relpath,
                    "label": ra.label,
                    "a_top1": ra.top1_label,
                    "b_top1": rb.top1_label,
                }
                for ra, rb in pairs
            ]

        return {
            "a": self.a,
            "b": self.b,
            "n_queries": self.n_queries,
            "a_right_b_wrong": rows(self.only_a),
            "b_right_a_wrong": rows(self.only_b),
            "both_right": self.both_right,
            "both_wrong": self.both_wrong,
        }


def copy_groups(library: CaseLibrary, index: CaseIndex, report) -> np.ndarray:
    """The audit's duplicate-group id of each row of ``index.cases`` (joined by relpath)."""
    by_path = dict(
        zip(library.cases["relpath"].astype(str), report.group_ids.tolist(), strict=True)
    )
    fresh = max(by_path.values(), default=-1) + 1
    out = []
    for relpath in index.cases["relpath"].astype(str):
        if relpath not in by_path:  # not in the audited library: a group of its own
            by_path[relpath], fresh = fresh, fresh + 1
        out.append(by_path[relpath])
    return np.asarray(out, dtype=np.int64)


def per_query_top1(index: CaseIndex, *, group_ids: np.ndarray) -> dict[str, QueryTop1]:
    """relpath -> that query's leave-one-out top-1 (queries with no candidate left are absent)."""
    cases = index.cases
    run = leave_one_out(
        embeddings=index.vectors(),
        labels=cases["label"].astype(str).to_numpy(),
        k=1,
        case_ids=cases["case_id"].astype(str).to_numpy(),
        group_ids=group_ids,
    )
    relpaths = cases["relpath"].astype(str).to_numpy()
    paths = cases["path"].astype(str).to_numpy()
    out = {}
    for q, row, label, score in zip(
        run.query_rows,
        run.neighbour_rows[:, 0],
        run.retrieved_labels[:, 0],
        run.scores[:, 0],
        strict=True,
    ):
        if row < 0 or not np.isfinite(score):
            continue
        out[str(relpaths[q])] = QueryTop1(
            relpath=str(relpaths[q]),
            path=str(paths[q]),
            label=str(cases["label"].iloc[q]),
            top1_relpath=str(relpaths[row]),
            top1_label=str(label),
            top1_score=float(score),
        )
    return out


def _interleaved(pairs: list[tuple[QueryTop1, QueryTop1]], *, loser: int) -> tuple:
    """Classes take turns (a list does not open with one class's hundred cases); within a
    class, the losing backbone's most similar wrong case comes first: its most convincing
    mistakes, the ones worth showing a class."""
    by_label: dict[str, list] = {}
    for pair in sorted(pairs, key=lambda p: (-p[loser].top1_score, p[0].relpath)):
        by_label.setdefault(pair[0].label, []).append(pair)
    queues = [by_label[label] for label in sorted(by_label)]
    out = []
    while any(queues):
        out += [queue.pop(0) for queue in queues if queue]
    return tuple(out)


def find_disagreements(
    a: str, top_a: dict[str, QueryTop1], b: str, top_b: dict[str, QueryTop1]
) -> Disagreements:
    """Split the queries both backbones answered into right/wrong quadrants."""
    only_a, only_b, both_right, both_wrong = [], [], 0, 0
    shared = [r for r in top_a if r in top_b]
    for relpath in shared:
        ra, rb = top_a[relpath], top_b[relpath]
        if ra.correct and not rb.correct:
            only_a.append((ra, rb))
        elif rb.correct and not ra.correct:
            only_b.append((ra, rb))
        elif ra.correct:
            both_right += 1
        else:
            both_wrong += 1
    return Disagreements(
        a,
        b,
        len(shared),
        _interleaved(only_a, loser=1),
        _interleaved(only_b, loser=0),
        both_right,
        both_wrong,
    )
