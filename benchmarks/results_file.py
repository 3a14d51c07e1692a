"""Benchmark records on disk: appended JSONL (one record per line), read back, exported as CSV."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd


def _plain(value: object) -> object:
    """JSON-safe scalars: numpy types unwrapped, NaN and inf written as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _default(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else str(value)


def append_records(records: Iterable[dict], path: Path) -> Path:
    """Append records to a JSONL file (created with its folders when missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({k: _plain(v) for k, v in r.items()}, default=_default, allow_nan=False)
        for r in records
    ]
    with path.open("a", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))
    return path


def read_records(path: str | Path, *, tolerant: bool = False) -> pd.DataFrame:
    """All records of a JSONL file as a DataFrame; a half-written last line is skipped.

    By default a line that is not JSON elsewhere, or a file without records, is an error: the
    file was named by a user. ``tolerant`` is for scanning folders that a running benchmark may
    be writing: every line that is not JSON is skipped, and a file without records reads as an
    empty frame.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is not a results file: run `python -m benchmarks run` first.")
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if tolerant or number == len(lines):
                continue  # a run stopped mid-write
            raise ValueError(f"{path} line {number} is not JSON ({err.msg}).") from err
    if not rows and not tolerant:
        raise ValueError(f"{path} holds no records.")
    return pd.DataFrame(rows)


def export_csv(records: pd.DataFrame, path: str | Path) -> Path:
    """Write records as CSV (one column per key; empty where a record lacks it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records.to_csv(path, index=False)
    return path
