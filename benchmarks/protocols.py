"""The protocol registry, and each protocol run on one embedded library as flat records.

Every protocol is one `Protocol` in `REGISTRY`, registered with `@register_protocol` beside its
run function (as timm's `register_model` does for models): its name and aliases, a one-line
description, the paper it follows, and its requirements. The CLI's choices, the Benchmark
tab's list and every skip reason come from here. The runner embeds a library once per
backbone and hands the aligned arrays (`benchmarks.embedded.Embedded`) to `protocol_records`,
which checks the protocol's requirements and either runs it or returns one skip record saying
which requirement the view does not meet. Records here lack the run-level keys (backbone,
library, timings, device), which the runner adds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.ablations import index_size_ablation
from benchmarks.classifier_protocols import (
    KNN_PAPER,
    PROBE_PAPER,
    knn_records,
    linear_probe_records,
)
from benchmarks.embedded import (
    REAL_WEIGHTS,
    TEXT_TOWER,
    TRAIN_TEST_SPLIT,
    Embedded,
    ProtocolSkipped,
    Requirement,
)
from benchmarks.image_sizes import image_size_runs
from benchmarks.records import (
    PrecisionDenominator,
    query_records,
    retrieval_records,
)
from benchmarks.reference_classifier import (
    LABELS_THE_CLASSIFIER_KNOWS,
    OWN_CLASSIFIER,
    reference_classifier_records,
)
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
from benchmarks.trust.signals import coverage_records, flag_rates, folds_of, ood_scores
from data_index.audit import queries_with_copy

# Pham et al. (2025) reports Top-1/2/5/10/20; Mahbod et al. (2024) and Denner et al. (2024) use 5
# and 10; the app shows 3.
KS: tuple[int, ...] = (1, 2, 3, 5, 10, 20)
PER_CLASS_KS: tuple[int, ...] = (1, 5, 10)
INDEX_SIZES: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500)
DEFAULT_EXCLUSION = "case+duplicates"
RunProtocol = Callable[[Embedded], list[dict]]


# --- what index-size needs ---------------------------------------------------------------------
def _index_size_plan(view: Embedded) -> tuple[int, list[int], int]:
    """(queries per class, index sizes in cases per class, cases in the smallest class)."""
    labels, cases = view.labels, view.case_ids
    smallest = min(len(np.unique(cases[labels == c])) for c in np.unique(labels))
    queries = max(1, min(10, smallest // 4))
    return queries, [s for s in INDEX_SIZES if s <= smallest - queries], smallest


def _too_few_cases_for_sizes(view: Embedded) -> str | None:
    _, sizes, smallest = _index_size_plan(view)
    if sizes:
        return None
    return f"the smallest class has {smallest} case(s): too few for an index-size series."


TWO_CASES_PER_CLASS = Requirement("at least two cases in every class", _too_few_cases_for_sizes)


# --- the registry -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol: its names, what it does, whose paper, what it needs, its run."""

    name: str
    aliases: tuple[str, ...]
    description: str  # one line
    paper: str | None  # as cited, e.g. "Pham et al. (2025)"; None for this project's own
    requirements: tuple[Requirement, ...]  # besides REAL_WEIGHTS, which every protocol needs
    run: RunProtocol
    # What `--conventions paper` changes, in a line; None: the protocol has only ours.
    paper_conventions: str | None = None

    @property
    def label(self) -> str:
        """The description with its paper: one line for the CLI help and the Benchmark tab."""
        return f"{self.description} ({self.paper})" if self.paper else self.description

    def unmet(self, view: Embedded) -> str | None:
        """Why this view cannot run the protocol (its first unmet requirement), or None."""
        for requirement in (REAL_WEIGHTS, *self.requirements):
            reason = requirement.unmet(view)
            if reason is not None:
                return reason
        return None


REGISTRY: dict[str, Protocol] = {}  # registration order: the CLI's, the tab's and "all"'s order


def register_protocol(
    name: str,
    *,
    description: str,
    paper: str | None,
    aliases: Sequence[str] = (),
    requires: Sequence[Requirement] = (),
    paper_conventions: str | None = None,
) -> Callable[[RunProtocol], RunProtocol]:
    """Decorator: register the decorated run function as protocol ``name``."""

    def register(run: RunProtocol) -> RunProtocol:
        taken = {*REGISTRY, *_aliases()}
        clashes = sorted({name, *aliases} & taken)
        if clashes:
            raise ValueError(f"Protocol name(s) {clashes} are registered already.")
        REGISTRY[name] = Protocol(
            name, tuple(aliases), description, paper, tuple(requires), run, paper_conventions
        )
        return run

    return register


def _aliases() -> dict[str, str]:
    return {alias: p.name for p in REGISTRY.values() for alias in p.aliases}


def choices_text() -> str:
    """Every name a user may give, aliases in brackets: for help texts and errors."""
    names = [
        f"{p.name} ({', '.join(p.aliases)})" if p.aliases else p.name for p in REGISTRY.values()
    ]
    return ", ".join(names) + " or all"


def parse_protocols(names: str | Sequence[str]) -> list[str]:
    """Canonical protocol names from a comma list or a list; "all" means every protocol."""
    items = names.split(",") if isinstance(names, str) else list(names)
    aliases = _aliases()
    out: list[str] = []
    for raw in items:
        name = str(raw).strip().lower().replace("_", "-")
        if not name:
            continue
        if name == "all":
            wanted = list(REGISTRY)
        elif name in REGISTRY or name in aliases:
            wanted = [aliases.get(name, name)]
        else:
            raise ValueError(f"Unknown protocol '{raw}'; choose from {choices_text()}.")
        out.extend(p for p in wanted if p not in out)
    if not out:
        raise ValueError("Name at least one protocol, e.g. --protocol loo.")
    return out


def skip_record(protocol: str, reason: str) -> dict:
    """A record saying a protocol did not run and why (value None, metric "skipped")."""
    return {"protocol": protocol, "metric": "skipped", "k": None, "value": None, "reason": reason}


def protocol_records(name: str, view: Embedded) -> list[dict]:
    """Records of one canonical protocol (see `parse_protocols`) on one embedded library, or
    one skip record: the first requirement the view does not meet, or what the run found.

    Each record says the conventions it ran under; a protocol without paper conventions runs
    with ours whatever the view asks. Per-query records (``kind`` "query") come with them."""
    protocol = REGISTRY[name]
    if protocol.paper_conventions is None and view.conventions != "ours":
        view = dataclasses.replace(view, conventions="ours")
    reason = protocol.unmet(view)
    if reason is None:
        try:
            found = protocol.run(view)
        except ProtocolSkipped as skipped:
            found = [skip_record(name, str(skipped))]
    else:
        found = [skip_record(name, reason)]
    return [{**record, "conventions": view.conventions} for record in found]


# --- the protocols ------------------------------------------------------------------------------
def _largest_k(view: Embedded, query_rows, index_rows, *, group_ids) -> int:
    mask = exclusion_mask(
        query_rows=query_rows, index_rows=index_rows, case_ids=view.case_ids, group_ids=group_ids
    )
    fewest = int(len(index_rows) - mask.sum(axis=1).max())
    if fewest < 1:
        raise ProtocolSkipped("no query has a single candidate left after excluding its case.")
    return min(max(KS), fewest)


def _scored(
    run: RetrievalRun,
    view: Embedded,
    *,
    per_class: bool,
    per_query: bool = False,
    precision_denominator: PrecisionDenominator = "k",
    groups: np.ndarray | None = None,
    **extra: object,
) -> list[dict]:
    """Summary records with intervals resampling the queries' cases (or ``groups``, one per
    query), and the per-query records if asked."""
    records = retrieval_records(
        run,
        ks=KS,
        per_class=per_class,
        case_ids=view.case_ids[run.query_rows] if groups is None else groups,
        precision_denominator=precision_denominator,
    )
    records = [r for r in records if r["class"] is None or r["k"] in PER_CLASS_KS]
    if per_query:
        queries = query_records(run, keys=view.query_keys, case_ids=view.case_ids)
        records += [{**q, "kind": "query"} for q in queries]
    return [{**r, **extra} for r in records]


def _copy_fields(view: Embedded) -> dict:
    with_copy, other_case = queries_with_copy(group_ids=view.group_ids, case_ids=view.case_ids)
    return {"n_queries_with_copy": with_copy, "n_queries_copy_other_case": other_case}


@register_protocol(
    "leave-one-out",
    aliases=("loo", "leave-one-case-out"),
    description="every image queries the rest of the library",
    paper="Pham et al. (2025)",
)
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
        default = exclusion == DEFAULT_EXCLUSION
        out += _scored(
            run, view, per_class=default, per_query=default, exclusion=exclusion, **copies
        )
    return out


@register_protocol(
    "train-test",
    description="train indexed, test queries",
    paper="Mahbod et al. (2024), Denner et al. (2024)",
    requires=(TRAIN_TEST_SPLIT,),
    paper_conventions="Euclidean distance on raw features and nothing left out (Mahbod et al.'s "
    "code); P@k divided by min(k, index images of the query's class) (Denner et al.'s code)",
)
def run_train_test(view: Embedded) -> list[dict]:
    query_rows = np.flatnonzero(view.splits == "test")
    index_rows = np.flatnonzero(view.splits == "train")
    if view.conventions == "paper":
        run = train_test(
            embeddings=view.raw,
            labels=view.labels,
            splits=view.splits,
            k=min(max(KS), len(index_rows)),
            metric="euclidean",
        )
        return _scored(
            run,
            view,
            per_class=True,
            per_query=True,
            precision_denominator="min(k, class count in index)",
            exclusion="none",
            features="raw",
        )
    k = _largest_k(view, query_rows, index_rows, group_ids=view.group_ids)
    run = train_test(
        embeddings=view.unit,
        labels=view.labels,
        splits=view.splits,
        k=k,
        case_ids=view.case_ids,
        group_ids=view.group_ids,
    )
    return _scored(run, view, per_class=True, per_query=True, exclusion=DEFAULT_EXCLUSION)


@register_protocol(
    "cosine-vs-euclidean",
    aliases=("cosine-euclidean",),
    description="leave-one-out by cosine and by raw Euclidean",
    paper="Pham et al. (2025)",
)
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
        out += _scored(run, view, per_class=False, exclusion=DEFAULT_EXCLUSION)
    return out


@register_protocol(
    "text",
    aliases=("text-to-image", "zero-shot"),
    description="prompts query the images, images pick a prompt",
    paper="Pham et al. (2025), Yan et al. (2025)",
    requires=(TEXT_TOWER,),
)
def run_text(view: Embedded) -> list[dict]:
    backbone = view.backbone
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
    prompts = np.arange(len(to_images.query_rows))  # each prompt is its own case
    return _scored(to_images, view, per_class=False, groups=prompts, **extra) + _scored(
        zero_shot, view, per_class=True, **extra
    )


@register_protocol(
    "linear-probe",
    aliases=("probe", "linear"),
    description="logistic regression and linear SVM, 80/20, 5-fold grid over C",
    paper="Khoiwal & McMillan (2024)",
    paper_conventions=PROBE_PAPER,
)
def run_linear_probe(view: Embedded) -> list[dict]:
    return linear_probe_records(view)


@register_protocol(
    "knn",
    aliases=("knn-vote",),
    description="majority vote of the k nearest training images, 80/20",
    paper="Denner et al. (2024)",
    paper_conventions=KNN_PAPER,
)
def run_knn(view: Embedded) -> list[dict]:
    return knn_records(view)


@register_protocol(
    "index-size",
    description="fixed queries against indexes of growing size",
    paper="Denner et al. (2024)",
    requires=(TWO_CASES_PER_CLASS,),
)
def run_index_size(view: Embedded) -> list[dict]:
    queries, sizes, _ = _index_size_plan(view)
    runs = index_size_ablation(
        embeddings=view.unit,
        labels=view.labels,
        cases_per_class=sizes,
        k=max(KS),
        queries_per_class=queries,
        case_ids=view.case_ids,
        group_ids=view.group_ids,
    )
    out = []
    for run in runs:
        out += _scored(run, view, per_class=False, exclusion=DEFAULT_EXCLUSION)
    return out


@register_protocol(
    "image-size",
    description="leave-one-out on images shrunk to 28-224 px",
    paper="Mahbod et al. (2024)",
)
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
        out += _scored(run, view, per_class=False, exclusion=DEFAULT_EXCLUSION)
    return out


@register_protocol(
    "reference-classifier",
    aliases=("own-classifier",),
    description="the backbone's own classifier against votes of its retrieved neighbours",
    paper=None,
    requires=(OWN_CLASSIFIER, LABELS_THE_CLASSIFIER_KNOWS),
)
def run_reference_classifier(view: Embedded) -> list[dict]:
    return reference_classifier_records(view)


@register_protocol(
    "search-trust",
    aliases=("trust", "prediction-sets"),
    description="the search's prediction sets (coverage, mean size) and how often its 'no close "
    "match' warning fires on the library's own photos, cross-fitted",
    paper=None,
)
def run_search_trust(view: Embedded) -> list[dict]:
    """Records of `benchmarks.trust.signals`; detection of other libraries' photos needs two
    libraries at once and is measured by `python -m benchmarks.trust`."""
    base = {"protocol": "search-trust", "class": None, "exclusion": DEFAULT_EXCLUSION}
    out = []
    for r in coverage_records(
        unit=view.unit, labels=view.labels, case_ids=view.case_ids, group_ids=view.group_ids
    ):
        extra = {"nominal_coverage": r["nominal_coverage"], "n_queries": r["n_queries"]}
        for metric in ("coverage", "mean_set_size"):
            out.append({**base, **extra, "metric": metric, "k": r["k"], "value": r[metric]})
    folds = folds_of(case_ids=view.case_ids, group_ids=view.group_ids)
    no_outside = np.zeros((0, view.unit.shape[1]), dtype=np.float32)
    scores = ood_scores(
        library=view.unit,
        labels=view.labels,
        case_ids=view.case_ids,
        group_ids=view.group_ids,
        queries=no_outside,
    )
    for score, (own, outside) in scores.items():
        rates = flag_rates(own, outside, folds=folds)
        out.append(
            {
                **base,
                "metric": "no_close_match_false_alarm_rate",
                "k": 10,
                "value": rates["false_alarm_rate"],
                "score": score,
                "n_queries": len(own),
            }
        )
    return out
