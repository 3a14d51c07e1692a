"""The overlay part of the audit benchmark: distinct photos that share atlas marks, overlaid
copies and zoomed re-shots, all drawn at run time from the shared photos."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np

from benchmarks.perf.audit_copies import TRANSFORMS, apply_step
from benchmarks.perf.audit_overlays import OVERLAYS, reshoot, stamp
from models.base import open_image


def build_overlay_set(
    pool: list[str], out_dir: Path, *, distinct: int, copies: int, reshoots: int, seed: int
) -> tuple[list[str], np.ndarray, list[str]]:
    """Paths, the true photo id per path and what each image is: "distinct <overlay>" (no
    copy in the set), "source <overlay>", "copy <overlay> <transform>" or "reshoot <overlay>".

    Every image of a photo carries the same overlay, stamped after the copy was made, as an
    atlas stamps what it publishes. Transforms cycle through every copy transform.
    """
    rng = np.random.default_rng(seed)
    total = distinct + copies + reshoots
    if total > len(pool):
        raise SystemExit(f"asked for {total} photos; the pool has {len(pool)}.")
    chosen = [pool[i] for i in rng.permutation(len(pool))[:total]]
    paths: list[str] = []
    truth: list[int] = []
    kinds: list[str] = []
    out_dir.mkdir(parents=True, exist_ok=True)

    def save(image, photo: int, kind: str) -> None:
        out = out_dir / f"{len(paths):04d}.jpg"
        image.convert("RGB").save(out, format="JPEG", quality=int(rng.integers(75, 96)))
        paths.append(str(out))
        truth.append(photo)
        kinds.append(kind)

    for photo, source in enumerate(chosen):
        image = open_image(source)
        overlay = OVERLAYS[photo % len(OVERLAYS)]
        if photo < distinct:
            save(stamp(image, overlay), photo, f"distinct {overlay}")
            continue
        save(stamp(image, overlay), photo, f"source {overlay}")
        if photo < distinct + copies:
            transform = TRANSFORMS[(photo - distinct) % len(TRANSFORMS)]
            copy = image
            for step in transform.split("+"):
                copy, _ = apply_step(copy, step, rng)
            save(stamp(copy, overlay), photo, f"copy {overlay} {transform}")
        else:
            shot, _ = reshoot(image, rng)
            save(stamp(shot, overlay), photo, f"reshoot {overlay}")
    return paths, np.asarray(truth), kinds


def _pairs(group_ids: np.ndarray) -> set[tuple[int, int]]:
    members: dict[int, list[int]] = {}
    for row, g in enumerate(np.asarray(group_ids).tolist()):
        members.setdefault(g, []).append(row)
    return {p for rows in members.values() for p in combinations(rows, 2)}


def score_overlay_set(
    group_ids: np.ndarray,
    truth: np.ndarray,
    kinds: list[str],
    *,
    possible_pairs: list[tuple[int, int]] = (),
) -> dict[str, object]:
    """Pair precision over every grouped pair, and recall of overlaid copies and re-shots
    (the second image of a photo grouped with its source)."""
    predicted, true = _pairs(group_ids), _pairs(truth)
    wrong = sorted(predicted - true)
    distinct_rows = {r for r, k in enumerate(kinds) if k.startswith("distinct")}
    source_of = {int(truth[r]): r for r, k in enumerate(kinds) if k.startswith("source")}
    found: dict[str, list[int]] = {"copy": [], "reshoot": []}
    per_overlay: dict[str, list[int]] = {}
    for row, kind in enumerate(kinds):
        what = kind.split()[0]
        if what in found:
            hit = int(group_ids[row] == group_ids[source_of[int(truth[row])]])
            found[what].append(hit)
            per_overlay.setdefault(f"{what} {kind.split()[1]}", []).append(hit)
    possible = {(min(a, b), max(a, b)) for a, b in possible_pairs}
    return {
        "n_images": len(kinds),
        "n_distinct_overlaid": len(distinct_rows),
        "n_predicted_pairs": len(predicted),
        "n_wrong_pairs": len(wrong),
        "precision": len(predicted & true) / len(predicted) if predicted else 1.0,
        "n_wrong_pairs_between_distinct_overlaid": sum(
            a in distinct_rows and b in distinct_rows for a, b in wrong
        ),
        "recall_overlaid_copies": float(np.mean(found["copy"])) if found["copy"] else None,
        "recall_reshoots": float(np.mean(found["reshoot"])) if found["reshoot"] else None,
        "per_overlay": {k: round(float(np.mean(v)), 4) for k, v in sorted(per_overlay.items())},
        "n_possible_pairs": len(possible),
        "n_possible_pairs_true": len(possible & true),
        "wrong_pairs": [[int(a), int(b), kinds[a], kinds[b]] for a, b in wrong],
    }
