"""The duplicate audit run on the shared datasets, one by one and across pairs of them."""

from __future__ import annotations

import csv
from itertools import combinations
from pathlib import Path

from data_index.audit import find_cross_duplicates, find_duplicate_groups, render_group_strip
from data_index.locations import REPO_ROOT
from models import Backbone

# Groups in the shared sets that were looked at by eye and are copies of one photo; the
# synthetic benchmark keeps one image of each so they do not count as false positives.
KNOWN_COPIES_CSV = Path("benchmarks") / "data" / "audit_known_copies.csv"


def load_known_copies(path: Path) -> list[set[str]]:
    """Groups of dataset-relative paths (``dataset/images/label/file.jpg``) checked by eye."""
    if not path.is_file():
        return []
    groups: dict[str, set[str]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            groups.setdefault(row["group"], set()).add(row["path"])
    return list(groups.values())


def _manifest(root: Path, name: str) -> tuple[list[str], list[str], list[str]]:
    with open(root / name / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    paths = [str(root / name / r["path"]) for r in rows]
    return paths, [r["label"] for r in rows], [r.get("split") or "" for r in rows]


def _rel(path: str, root: Path) -> str:
    return str(Path(path).relative_to(root))


def _strip(paths: list[str], labels: list[str], out: Path) -> str:
    captions = [f"{label} | {Path(p).name}" for p, label in zip(paths, labels, strict=True)]
    out.parent.mkdir(parents=True, exist_ok=True)
    render_group_strip(paths, captions=captions).save(out)
    return str(out)


def audit_shared_datasets(
    root: Path, names: tuple[str, ...], *, strips_dir: Path, backbone: Backbone | None = None
) -> dict[str, dict[str, object]]:
    """Groups and label conflicts inside each dataset and between each pair of datasets.

    With ``backbone``, its embedding neighbours are extra candidates (as in the app)."""
    known = load_known_copies(REPO_ROOT / KNOWN_COPIES_CSV)
    result: dict[str, dict[str, object]] = {}
    manifests = {name: _manifest(root, name) for name in names}
    vectors = {
        name: backbone.encode_images(manifests[name][0]) if backbone is not None else None
        for name in names
    }
    for name in names:
        paths, labels, splits = manifests[name]
        report = find_duplicate_groups(paths, labels, vectors=vectors[name])
        groups = []
        for g, members in enumerate(report.groups):
            member_paths = [paths[r] for r in members]
            rel = {_rel(p, root) for p in member_paths}
            groups.append(
                {
                    "paths": [_rel(p, root) for p in member_paths],
                    "labels": [labels[r] for r in members],
                    "splits": sorted({splits[r] for r in members if splits[r]}),
                    "checked_by_eye": any(rel <= k for k in known),
                    "strip": _strip(
                        member_paths,
                        [labels[r] for r in members],
                        strips_dir / f"{name}-group{g}.png",
                    ),
                }
            )
        # A group with members on both sides of a train/test split leaks that split.
        across = sum(len(g["splits"]) > 1 for g in groups)
        result[name] = {
            "summary": report.summary() | {"n_groups_across_splits": across},
            "groups": groups,
            "pairs": [
                {"a": _rel(p["path_a"], root), "b": _rel(p["path_b"], root)}
                | {k: v for k, v in p.items() if k not in ("a", "b", "path_a", "path_b")}
                for p in report.pair_records()
            ],
            "unreadable": report.unreadable,
        }
    for index_name, query_name in combinations(names, 2):
        index_paths, index_labels, _ = manifests[index_name]
        query_paths, query_labels, _ = manifests[query_name]
        cross = find_cross_duplicates(
            index_paths,
            query_paths,
            index_labels=index_labels,
            query_labels=query_labels,
            index_vectors=vectors[index_name],
            query_vectors=vectors[query_name],
        )
        matches = []
        for k, (q, i, evidence) in enumerate(cross):
            pair = [index_paths[i], query_paths[q]]
            pair_labels = [index_labels[i], query_labels[q]]
            rel = {_rel(p, root) for p in pair}
            matches.append(
                {
                    "index": _rel(index_paths[i], root),
                    "query": _rel(query_paths[q], root),
                    "index_label": index_labels[i],
                    "query_label": query_labels[q],
                    "checked_by_eye": any(rel <= g for g in known),
                    "strip": _strip(
                        pair, pair_labels, strips_dir / f"{index_name}-vs-{query_name}-{k}.png"
                    ),
                }
                | evidence.as_dict()
            )
        result[f"{index_name} vs {query_name}"] = {"summary": cross.summary(), "matches": matches}
    return result
