"""Which retrieval variants a search may offer, and what was measured of each on this library.

The evidence is the benchmark's variant records (``python -m benchmarks run --variants``): the
committed ones, the app's own runs and the command line's default run folder. A variant is
"recommended" only where its gain in how often the nearest case has the right diagnosis
(Top-1), measured on this very library and backbone, has a 95 % interval above 0 and no
other measured Top-k got significantly worse. Everything else says what is known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.records import read_variant_records
from data_index import CaseLibrary
from data_index.variant_search import IN_SEARCH, PreparedVariant, applies
from data_index.variants import VARIANTS
from demo.handlers_bench import variant_record_folders
from demo.state import AppState
from models import get_spec

PLAIN = ""  # the radio value of the plain search


def variant_records(*, folders: Sequence[Path] | None = None) -> pd.DataFrame:
    """Every measured variant record under the results folders."""
    return read_variant_records(folders if folders is not None else variant_record_folders())


@dataclass(frozen=True)
class VariantAdvice:
    """One variant as the Search tab offers it."""

    name: str
    title: str
    plain: str
    recommended: bool
    status: str  # what was measured on this library, in words
    cost: str  # extra work per query, in words and measured ms

    @property
    def choice_label(self) -> str:
        return f"{self.title} · recommended" if self.recommended else self.title

    def markdown(self) -> str:
        return f"**{self.title}.** {self.plain} {self.status} {self.cost}"


def _points(row: pd.Series) -> str:
    low, high = 100 * row["gain_ci_low"], 100 * row["gain_ci_high"]
    return f"{100 * row['gain']:+.1f} [{low:+.1f}, {high:+.1f}]"


def _interval(row: pd.Series) -> str:
    low, high = 100 * row["gain_ci_low"], 100 * row["gain_ci_high"]
    return f"{100 * row['gain']:+.1f} points (95 % interval {low:+.1f} to {high:+.1f})"


def _measured(rows: pd.DataFrame, library: CaseLibrary) -> tuple[pd.DataFrame, str]:
    """The newest run's rows, preferring one on exactly these files; and how they match."""
    exact = rows[rows["library_fingerprint"].astype(str) == library.fingerprint[:16]]
    chosen = exact if len(exact) else rows
    newest = chosen[chosen["date"].astype(str) == chosen["date"].astype(str).max()]
    how = "" if len(exact) else ", on an earlier version of its files"
    return newest.drop_duplicates("k", keep="last").set_index("k"), how


def _status(rows: pd.DataFrame, library: CaseLibrary) -> tuple[bool, str]:
    """(recommended, what was measured in words)."""
    if rows.empty:
        return False, "Not measured on this library."
    measured, how = _measured(rows, library)
    if 1 not in measured.index:
        return False, "Not measured on this library."
    top1 = measured.loc[1]
    worse = [k for k in measured.index if measured.loc[k, "gain_ci_high"] < 0]
    if top1["gain_ci_low"] > 0 and not worse:
        return True, (
            f"**Recommended:** measured on this library{how}, the nearest case had the right "
            f"diagnosis more often by {_interval(top1)}."
        )
    if top1["gain_ci_low"] > 0:
        lost = ", ".join(f"{_points(measured.loc[k])} for the top {k}" for k in worse)
        return False, (
            f"Measured on this library{how}: the nearest case was right more often "
            f"({_points(top1)} points), but the results did worse further down ({lost}), "
            "so it is not recommended."
        )
    if top1["gain_ci_high"] < 0:
        return False, (
            f"Measured on this library{how}: worse than the plain search ({_points(top1)} "
            "points for the nearest case)."
        )
    return False, (
        f"Measured: no significant gain ({_points(top1)} points for the nearest case{how})."
    )


def _cost(name: str, rows: pd.DataFrame) -> str:
    words = VARIANTS[name].plain_cost
    timed = rows.dropna(subset=["search_ms_10k", "plain_search_ms_10k"]) if len(rows) else rows
    if timed.empty:
        return f"Extra work per search: {words}."
    last = timed.sort_values("date").iloc[-1]
    with_it, plain = last["search_ms_10k"], last["plain_search_ms_10k"]
    return (
        f"Cost: {with_it:.1f} ms per search at 10,000 cases against {plain:.1f} ms plain "
        f"({with_it - plain:+.1f} ms, one run on a busy machine); extra work: {words}."
    )


def variant_advice(
    library: CaseLibrary, backbone_key: str, *, records: pd.DataFrame | None = None
) -> list[VariantAdvice]:
    """The variants a search on ``library`` with ``backbone_key`` can use, recommended first."""
    records = variant_records() if records is None else records
    out = []
    for name in IN_SEARCH:
        if applies(name, n_labels=len(library.labels)):
            continue
        variant = VARIANTS[name]
        rows = pd.DataFrame()
        if len(records):
            mine = records[(records["variant"] == name) & (records["base"] == backbone_key)]
            same = (mine["library_fingerprint"].astype(str) == library.fingerprint[:16]) | (
                mine["library"].astype(str) == library.name
            )
            rows = mine[same]
        recommended, status = _status(rows, library)
        out.append(
            VariantAdvice(
                name, variant.title, variant.plain, recommended, status, _cost(name, rows)
            )
        )
    return sorted(out, key=lambda a: not a.recommended)


def variant_choices(advice: Sequence[VariantAdvice]) -> list[tuple[str, str]]:
    return [("Plain search (default)", PLAIN), *((a.choice_label, a.name) for a in advice)]


def variant_summary(advice: Sequence[VariantAdvice]) -> str:
    """The line under the picker while the plain search is on."""
    if not advice:
        return "No retrieval variant can run on this library."
    best = [a.title for a in advice if a.recommended]
    known = (
        f"Recommended here: {', '.join(best)}."
        if best
        else "None is recommended here: none was measured to help on this library."
    )
    return (
        "A retrieval variant re-ranks the same model's similarities, for example by learning "
        f"from this library's diagnoses. Off by default. {known}"
    )


def variant_markdown(advice: Sequence[VariantAdvice]) -> str:
    """What each offered variant does and what is known of it here, as the page shows it."""
    if not advice:
        return "No retrieval variant can run on this library."
    intro = (
        "A retrieval variant changes how the same model's similarities are ranked. Each is off "
        "until you pick it; one is marked recommended only where it was measured to help on "
        "this library."
    )
    return "\n\n".join([intro, *(f"- {a.markdown()}" for a in advice)])


def variant_note(library: CaseLibrary, backbone_key: str, name: str | None) -> str | None:
    """The summary's line on the variant a search used (None for the plain search)."""
    if name is None:
        return None
    found = {a.name: a for a in variant_advice(library, backbone_key)}.get(name)
    status = found.status if found is not None else ""
    return (
        f"**Ranked with a retrieval variant: {VARIANTS[name].title}.** {VARIANTS[name].plain} "
        f"{status} Similarities below are measured after the variant's change. The list of "
        "likely diagnoses is calibrated for the plain search, so it is not shown while a "
        "variant is on."
    )


def used_variant(
    state: AppState,
    library_path: str,
    backbone_key: str,
    name: str | None,
    groups: np.ndarray | None,
    notes: list[str],
) -> PreparedVariant | None:
    """The prepared variant for a search (None for the plain search); says when it was just
    fitted and saved."""
    if name is None:
        return None
    prepared = state.variant(library_path, backbone_key, name, groups=groups)
    if prepared.fitted_now and prepared.folder is not None and not prepared.announced:
        prepared.announced = True
        notes.append(
            f"“{VARIANTS[name].title}” was prepared for this library and saved beside its index; "
            "later searches reuse it until the library changes."
        )
    return prepared


def compare_variant_choices() -> list[tuple[str, str]]:
    """The Compare tab's picker: every single-backbone variant, by its plain title."""
    return [("Plain search (default)", PLAIN), *((VARIANTS[n].title, n) for n in IN_SEARCH)]


def compare_variant_markdown(
    library: CaseLibrary | None, backbones: Sequence[str], name: str | None
) -> str:
    """The chosen variant in one sentence, then what was measured of it per ticked backbone."""
    if not name or library is None:
        return ""
    variant = VARIANTS[name]
    lines = [f"**{variant.title}.** {variant.plain}"]
    for key in backbones:
        found = {a.name: a for a in variant_advice(library, key)}.get(name)
        why = found.status if found is not None else "It cannot run on this library."
        lines.append(f"- {get_spec(key).name}: {why}")
    return "\n".join(lines)
