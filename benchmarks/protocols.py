"""Protocol names, and each protocol run on one embedded library as flat records.

The runner embeds a library once per backbone and hands the aligned arrays (`Embedded`) to
`protocol_records`; every function here returns records without the run-level keys
(backbone, library, timings, device), which the runner adds. A protocol that cannot run on
this library or backbone raises `ProtocolSkipped` with the reason, which becomes a record too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.ablations import index_size_ablation
from benchmarks.duplicates import case_or_copy_groups, queries_with_copy
from benchmarks.image_sizes import image_size_runs
from benchmarks.probes import knn_classification, linear_probe
from benchmarks.records import classification_records, retrieval_records
from benchmarks.retrieval import (
    RetrievalRun,
    cosine_vs_euclidean,
    exclusion_mask,
    leave_one_out,
    train_test,
)
from benchmarks.text_protocols import (
    PROMPT_TEMPLATES,
    class_prompts,
    ensemble_prompt_embeddings,
    text_to_image,
    zero_shot_classification,
)
from models import Backbone

# Pham et al. (2025) reports Top-1/2/5/10/20; Mahbod et al. (2024) and Denner et al. (2024) use 5
# and 10; the app shows 3.
KS: tuple[int, ...] = (1, 2, 3, 5, 10, 20)
PER_CLASS_KS: tuple[int, ...] = (1, 5, 10)
KNN_KS: tuple[int, ...] = (1, 5, 10)
DEFAULT_EXCLUSION = "case+duplicates"

PROTOCOLS: dict[str, str] = {
    "leave-one-out": "every image queries the rest of the library (Pham et al. (2025))",
    "train-test": "train indexed, test queries (Mahbod et al. 2024, Denner et al. 2024)",
    "cosine-vs-euclidean": "leave-one-out by cosine and by raw Euclidean (Pham et al. 2025)",
    "text": "prompts query the images, images pick a prompt (Pham et al. 2025, Yan et al. 2025)",
    "linear-probe": "logistic regression, 80/20, 5-fold grid over C (Khoiwal & McMillan 2024)",
    "knn": "majority vote of the k nearest training images, 80/20 (Denner et al. (2024))",
    "index-size": "fixed queries against indexes of growing size (Denner et al. (2024))",
    "image-size": "leave-one-out on images shrunk to 28-224 px (Mahbod et al. (2024))",
    "reference-classifier": "xception-ham10000's own classifier against retrieval votes",
}
ALIASES: dict[str, str] = {
    "loo": "leave-one-out",
    "leave-one-case-out": "leave-one-out",
    "cosine-euclidean": "cosine-vs-euclidean",
    "text-to-image": "text",
    "zero-shot": "text",
    "probe": "linear-probe",
    "linear": "linear-probe",
    "knn-vote": "knn",
    "own-classifier": "reference-classifier",
}


class ProtocolSkipped(Exception):
    """This protocol cannot run here; the message says why in one sentence."""


def parse_protocols(names: str | Sequence[str]) -> list[str]:
    """Canonical protocol names from a comma list or a list; "all" means every protocol."""
    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for raw in items:
        name = str(raw).strip().lower().replace("_", "-")
        if not name:
            continue
        if name == "all":
            wanted = list(PROTOCOLS)
        elif name in PROTOCOLS or name in ALIASES:
            wanted = [ALIASES.get(name, name)]
        else:
            raise ValueError(
                f"Unknown protocol '{raw}'; choose from loo, {', '.join(list(PROTOCOLS)[1:])} "
                "or all."
            )
        out.extend(p for p in wanted if p not in out)
    if not out:
        raise ValueError("Name at least one protocol, e.g. --protocol loo.")
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


def _largest_k(view: Embedded, query_rows, index_rows, *, group_ids) -> int:
    mask = exclusion_mask(
        query_rows=query_rows, index_rows=index_rows, case_ids=view.case_ids, group_ids=group_ids
    )
    fewest = int(len(index_rows) - mask.sum(axis=1).max())
    if fewest < 1:
        raise ProtocolSkipped("no query has a single candidate left after excluding its case.")
    return min(max(KS), fewest)


def _scored(run: RetrievalRun, *, per_class: bool, **extra: object) -> list[dict]:
    records = retrieval_records(run, ks=KS, per_class=per_class)
    records = [r for r in records if r["class"] is None or r["k"] in PER_CLASS_KS]
    return [{**r, **extra} for r in records]


def _copy_fields(view: Embedded) -> dict:
    with_copy, other_case = queries_with_copy(group_ids=view.group_ids, case_ids=view.case_ids)
    return {"n_queries_with_copy": with_copy, "n_queries_copy_other_case": other_case}


def run_leave_one_out(view: Embedded) -> list[dict]:
    """Both exclusions: the default (case and duplicate group) and case-only, for comparison."""
    rows = np.arange(len(view.labels))
    copies = _copy_fields(view)
    out = []
    for exclusion, groups in ((DEFAULT_EXCLUSION, view.group_ids), ("case-only", None)):
        k = _largest_k(view, rows, rows, group_ids=groups)
        run = leave_one_out(
            embeddings=view.unit,
            labels=view.labels,
            k=k,
            case_ids=view.case_ids,
            group_ids=groups,
        )
        out += _scored(run, per_class=exclusion == DEFAULT_EXCLUSION, exclusion=exclusion, **copies)
    return out


def run_train_test(view: Embedded) -> list[dict]:
    present = set(view.splits.tolist())
    if not {"train", "test"} <= present:
        shown = sorted(s for s in present if s) or ["none"]
        raise ProtocolSkipped(
            f"the library has no train and test splits (splits present: {', '.join(shown)})."
        )
    query_rows = np.flatnonzero(view.splits == "test")
    index_rows = np.flatnonzero(view.splits == "train")
    k = _largest_k(view, query_rows, index_rows, group_ids=view.group_ids)
    run = train_test(
        embeddings=view.unit,
        labels=view.labels,
        splits=view.splits,
        k=k,
        case_ids=view.case_ids,
        group_ids=view.group_ids,
    )
    return _scored(run, per_class=True, exclusion=DEFAULT_EXCLUSION)


def run_cosine_vs_euclidean(view: Embedded) -> list[dict]:
    rows = np.arange(len(view.labels))
    k = _largest_k(view, rows, rows, group_ids=view.group_ids)
    runs = cosine_vs_euclidean(
        raw_embeddings=view.raw,
        labels=view.labels,
        k=k,
        case_ids=view.case_ids,
        group_ids=view.group_ids,
    )
    out = []
    for run in runs.values():
        run = dataclasses.replace(run, protocol="cosine-vs-euclidean")
        out += _scored(run, per_class=False, exclusion=DEFAULT_EXCLUSION)
    return out


def run_text(view: Embedded) -> list[dict]:
    backbone = view.backbone
    if not backbone.has_text:
        raise ProtocolSkipped(f"{backbone.key} has no text tower, so text queries cannot run.")
    names = sorted(set(view.labels.tolist()))
    stack = np.stack(
        [
            backbone.encode_texts(class_prompts(class_names=names, template=t))
            for t in PROMPT_TEMPLATES
        ]
    )
    text = ensemble_prompt_embeddings(stack)
    common = {"text_embeddings": text, "class_names": names, "image_embeddings": view.unit}
    to_images = text_to_image(**common, image_labels=view.labels, k=min(max(KS), len(view.unit)))
    zero_shot = zero_shot_classification(**common, image_labels=view.labels)
    extra = {"prompts": " | ".join(PROMPT_TEMPLATES)}
    return _scored(to_images, per_class=False, **extra) + _scored(
        zero_shot, per_class=True, **extra
    )


def _split_groups(view: Embedded) -> np.ndarray:
    return case_or_copy_groups(group_ids=view.group_ids, case_ids=view.case_ids)


def run_linear_probe(view: Embedded) -> list[dict]:
    """Khoiwal & McMillan (2024)'s 5-fold grid; fewer folds (down to 2, recorded as n_folds) for
    small classes."""
    groups = _split_groups(view)
    for n_folds in (5, 4, 3, 2):
        try:
            result = linear_probe(
                embeddings=view.unit, labels=view.labels, groups=groups, n_folds=n_folds
            )
            break
        except ValueError as err:
            if n_folds == 2 or "cross-validation" not in str(err):
                raise ProtocolSkipped(str(err)) from err
    records = classification_records(result, protocol="linear-probe")
    extra = {"features": "l2-normalised", "split_groups": DEFAULT_EXCLUSION}
    return [{**r, **extra, "n_queries": result.params["n_test"]} for r in records]


def run_knn(view: Embedded) -> list[dict]:
    out = []
    for k in KNN_KS:
        try:
            result = knn_classification(
                embeddings=view.unit, labels=view.labels, k=k, groups=_split_groups(view)
            )
        except ValueError as err:
            raise ProtocolSkipped(str(err)) from err
        records = classification_records(result, protocol="knn")
        out += [{**r, "n_queries": result.params["n_test"]} for r in records]
    return out


def run_index_size(view: Embedded) -> list[dict]:
    labels, cases = view.labels, view.case_ids
    per_class = [len(np.unique(cases[labels == c])) for c in np.unique(labels)]
    queries = max(1, min(10, min(per_class) // 4))
    room = min(per_class) - queries
    sizes = [s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500) if s <= room]
    if not sizes:
        raise ProtocolSkipped(
            f"the smallest class has {min(per_class)} case(s): too few for an index-size series."
        )
    runs = index_size_ablation(
        embeddings=view.unit,
        labels=labels,
        cases_per_class=sizes,
        k=max(KS),
        queries_per_class=queries,
        case_ids=cases,
        group_ids=view.group_ids,
    )
    out = []
    for run in runs:
        out += _scored(run, per_class=False, exclusion=DEFAULT_EXCLUSION)
    return out


def run_image_size(view: Embedded) -> list[dict]:
    rows = np.arange(len(view.labels))
    k = _largest_k(view, rows, rows, group_ids=view.group_ids)
    runs = image_size_runs(
        backbone=view.backbone,
        paths=view.paths,
        sha1s=view.sha1s,
        cache_dir=view.embeddings_cache,
        evaluate=lambda embeddings: leave_one_out(
            embeddings=embeddings,
            labels=view.labels,
            k=k,
            case_ids=view.case_ids,
            group_ids=view.group_ids,
        ),
    )
    out = []
    for run in runs:
        run = dataclasses.replace(run, protocol="image-size")
        out += _scored(run, per_class=False, exclusion=DEFAULT_EXCLUSION)
    return out


def run_reference_classifier(view: Embedded) -> list[dict]:
    from benchmarks.reference_classifier import reference_classifier_records

    return reference_classifier_records(view)


RUNNERS: dict[str, Callable[[Embedded], list[dict]]] = {
    "leave-one-out": run_leave_one_out,
    "train-test": run_train_test,
    "cosine-vs-euclidean": run_cosine_vs_euclidean,
    "text": run_text,
    "linear-probe": run_linear_probe,
    "knn": run_knn,
    "index-size": run_index_size,
    "image-size": run_image_size,
    "reference-classifier": run_reference_classifier,
}


def protocol_records(name: str, view: Embedded) -> list[dict]:
    """Records of one canonical protocol (see `parse_protocols`) on one embedded library."""
    return RUNNERS[name](view)
