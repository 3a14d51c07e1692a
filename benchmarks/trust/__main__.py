"""`python -m benchmarks.trust`: prediction-set coverage and "no close match" rates for
every shared library under every offline backbone, with other libraries' photos as outside
queries, written as JSON records and a markdown table.

Embeddings come from the shared cache (built once by the index or the benchmark runner).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.trust.signals import coverage_records, flag_rates, folds_of, ood_scores
from data_index import CaseIndex, CaseLibrary
from data_index.audit import audit_library
from data_index.trust import LOW_SIMILARITY_PERCENTILE
from models import load_backbone

LIBRARIES = ("ham10000-subset", "infectious-8", "mpox-msld")
BACKBONES = ("efficientnet-lite0", "color-texture", "xception-ham10000")
RESULTS = Path(__file__).resolve().parents[1] / "results"


def _views(datasets: Path, backbone_key: str) -> dict[str, dict]:
    backbone = load_backbone(backbone_key)
    views = {}
    for name in LIBRARIES:
        library = CaseLibrary.load(datasets / name)
        index = CaseIndex.build(library, backbone, save=False)
        groups = audit_library(library).group_ids
        by_path = dict(zip(library.cases["relpath"], groups.tolist(), strict=True))
        views[name] = {
            "unit": index.vectors(),
            "labels": index.cases["label"].astype(str).to_numpy(),
            "case_ids": index.cases["case_id"].astype(str).to_numpy(),
            "group_ids": np.array([by_path[p] for p in index.cases["relpath"]], dtype=np.int64),
        }
    return views


def copy_similarities(view: dict) -> list[float]:
    """Cosine similarity of every pair of images the audit found to be one photo."""
    out = []
    for gid in np.unique(view["group_ids"]):
        rows = np.flatnonzero(view["group_ids"] == gid)
        for i, a in enumerate(rows):
            for b in rows[i + 1 :]:
                out.append(float(view["unit"][a] @ view["unit"][b]))
    return out


def trust_records(datasets: Path) -> list[dict]:
    records = []
    for key in BACKBONES:
        views = _views(datasets, key)
        for name, view in views.items():
            base = {"backbone": key, "library": name}
            for rec in coverage_records(
                unit=view["unit"],
                labels=view["labels"],
                case_ids=view["case_ids"],
                group_ids=view["group_ids"],
            ):
                records.append({**base, "measure": "prediction set", **rec})
            sims = copy_similarities(view)
            if sims:
                records.append(
                    {
                        **base,
                        "measure": "copy similarity",
                        "n_pairs": len(sims),
                        "min": min(sims),
                        "median": float(np.median(sims)),
                    }
                )
            folds = folds_of(case_ids=view["case_ids"], group_ids=view["group_ids"])
            for other in LIBRARIES:
                if other == name:
                    continue
                scores = ood_scores(
                    library=view["unit"],
                    labels=view["labels"],
                    case_ids=view["case_ids"],
                    group_ids=view["group_ids"],
                    queries=views[other]["unit"],
                )
                for score, (own, outside) in scores.items():
                    records.append(
                        {
                            **base,
                            "measure": "no close match",
                            "queries_from": other,
                            "score": score,
                            "percentile": LOW_SIMILARITY_PERCENTILE,
                            **flag_rates(own, outside, folds=folds),
                        }
                    )
    return records


def markdown(records: list[dict]) -> str:
    lines = [
        '# Search trust: prediction sets and "no close match"',
        "",
        "Written by `python -m benchmarks.trust`. k = 10 neighbours, cosine, each query's "
        "own case and every copy of its photo (duplicate audit) left out; 5 folds of cases "
        "(copies kept together), each judged by what the other folds calibrate.",
        "",
        "## Prediction sets (split conformal over the similarity-weighted vote, crepes)",
        "",
        "| backbone | library | nominal | coverage | mean set size | classes |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        if r["measure"] == "prediction set":
            lines.append(
                f"| {r['backbone']} | {r['library']} | {r['nominal_coverage']:.0%} | "
                f"{r['coverage']:.3f} | {r['mean_set_size']:.2f} | {r['n_classes']} |"
            )
    lines += [
        "",
        f"## No close match (flag below the {LOW_SIMILARITY_PERCENTILE:g}th percentile of the "
        "library's own leave-one-out scores)",
        "",
        "False alarms: the library's own photos flagged. Detection: photos of another library "
        "flagged.",
        "",
        "| backbone | library | outside photos from | score | false alarms | detected |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        if r["measure"] == "no close match":
            lines.append(
                f"| {r['backbone']} | {r['library']} | {r['queries_from']} | {r['score']} | "
                f"{r['false_alarm_rate']:.1%} | {r['detection_rate']:.1%} |"
            )
    lines += ["", "## Known copies (duplicate audit): cosine similarity of copy pairs", ""]
    lines += ["| backbone | library | pairs | min | median |", "|---|---|---|---|---|"]
    for r in records:
        if r["measure"] == "copy similarity":
            lines.append(
                f"| {r['backbone']} | {r['library']} | {r['n_pairs']} | {r['min']:.3f} | "
                f"{r['median']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trust", description=__doc__)
    default = Path(__file__).resolve().parents[3] / "shared" / "datasets"
    parser.add_argument("--datasets", type=Path, default=default)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the two files")
    args = parser.parse_args(argv)
    records = trust_records(args.datasets)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "search_trust.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
    (args.out / "search_trust.md").write_text(markdown(records), encoding="utf-8")
    print(markdown(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
