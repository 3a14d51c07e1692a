"""Case libraries from Hugging Face datasets: ``hf://datasets/<org>/<name>[@revision][:split]``,
``hf://<absolute folder>[:split]``, or a local folder in the Hub's layout.

The Hub stores an image dataset as ``data/<split>-*.parquet`` whose image column is a struct
(bytes, path) and whose schema carries the ``huggingface`` features (ClassLabel names and so
on); imagefolder repositories are read the same way by the ``datasets`` library. Rows are
streamed (nothing is converted to Arrow first), each image is written once under its sha1 into
the cache, and a ``manifest.csv`` beside them makes the result an ordinary manifest library.
The dataset card's licence and citation are kept in ``card.json`` for the Library tab.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from data_index.locations import extracted_dir, slug
from data_index.store import BUNDLE_FILE

PREFIX = "hf://"
CARD_FILE = "card.json"
DONE_FILE = ".complete"
CASE_ID_COLUMNS = ("case_id", "lesion_id", "patient_id", "case")
LABEL_COLUMNS = ("label", "labels", "dx", "diagnosis", "class")
FORMS = (
    "hf://datasets/<org>/<name>[@revision][:split], hf://<absolute folder>[:split], "
    "or a folder holding data/<split>-*.parquet"
)
_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class HubSource:
    """A dataset on the Hub (``repo``) or a local folder in its layout (``folder``)."""

    repo: str | None
    folder: Path | None
    revision: str | None
    split: str

    @property
    def name(self) -> str:
        return self.repo.split("/")[-1] if self.repo else self.folder.name

    def __str__(self) -> str:
        where = f"datasets/{self.repo}" if self.repo else str(self.folder)
        rev = f"@{self.revision}" if self.revision else ""
        return f"{PREFIX}{where}{rev}:{self.split}"


@dataclass(frozen=True)
class HubColumns:
    """Which columns hold the image, the label and the case id; None: found by type or name."""

    image: str | None = None
    label: str | None = None
    case_id: str | None = None


def is_hub_source(text: str | Path) -> bool:
    return str(text).startswith(PREFIX)


def is_hub_folder(path: str | Path) -> bool:
    """A local folder in the Hub's parquet layout (and not already a manifest library)."""
    path = Path(path)
    return (
        path.is_dir()
        and not (path / "manifest.csv").is_file()
        and any((path / "data").glob("*.parquet"))
    )


def parse_hub_source(text: str | Path, *, split: str = "train") -> HubSource:
    """Parse one of ``FORMS``; a ValueError lists them when ``text`` is none of them."""
    raw = str(text)
    if not is_hub_source(raw):
        if is_hub_folder(raw):
            return HubSource(None, Path(raw).expanduser().resolve(), None, split)
        raise ValueError(f"{raw} is not a Hugging Face dataset; give {FORMS}.")
    rest = raw[len(PREFIX) :]
    if rest.startswith("/"):
        folder, _, part = rest.partition(":")
        folder_path = Path(folder)
        if not is_hub_folder(folder_path):
            raise ValueError(f"{folder} holds no data/*.parquet files; give {FORMS}.")
        return HubSource(None, folder_path.resolve(), None, part or split)
    if not rest.startswith("datasets/"):
        raise ValueError(f"{raw} does not name a dataset; give {FORMS}.")
    rest = rest[len("datasets/") :]
    rest, _, part = rest.partition(":")
    repo, _, revision = rest.partition("@")
    if not _REPO.match(repo):
        raise ValueError(f"{repo!r} is not an <org>/<name> dataset id; give {FORMS}.")
    return HubSource(repo, None, revision or None, part or split)


def _card(source: HubSource) -> tuple[str, str, str | None]:
    """(licence, citation, card text) from the dataset card's README.md, empty when absent."""
    from huggingface_hub import DatasetCard

    try:
        if source.folder is not None:
            readme = source.folder / "README.md"
            card = DatasetCard.load(readme) if readme.is_file() else None
        else:
            card = DatasetCard.load(source.repo, revision=source.revision)
    except Exception:  # no card, or the Hub is unreachable: the rows may still load
        card = None
    if card is None:
        return "", "", None
    licence = card.data.get("license") or ""
    licence = ", ".join(licence) if isinstance(licence, list) else str(licence)
    citation = str(card.data.get("citation") or "")
    if not citation:
        found = re.search(r"```(?:bibtex|bib)?\s*\n(@.*?)```", card.text, flags=re.S)
        citation = found.group(1).strip() if found else ""
    return licence, citation, card.content


def _open(source: HubSource):
    import datasets

    try:
        if source.folder is not None:
            return datasets.load_dataset(str(source.folder), split=source.split, streaming=True)
        return datasets.load_dataset(
            source.repo, revision=source.revision, split=source.split, streaming=True
        )
    except (ConnectionError, OSError) as err:
        raise ValueError(
            f"Could not load {source} from the Hugging Face Hub ({type(err).__name__}): check "
            "the dataset name and the internet connection, or give a local library."
        ) from err
    except ValueError as err:  # e.g. an unknown split; datasets' own sentence lists them
        raise ValueError(f"Could not load {source}: {err}") from err


def _pick(features: dict[str, Any], columns: HubColumns) -> tuple[str, str, str | None]:
    import datasets

    names = list(features)

    def given(col: str | None, what: str) -> str | None:
        if col is not None and col not in features:
            raise ValueError(f"The dataset has no {what} column {col!r}; it has {names}.")
        return col

    image = given(columns.image, "image") or next(
        (n for n, f in features.items() if isinstance(f, datasets.Image)), None
    )
    label = given(columns.label, "label") or next(
        (n for n, f in features.items() if isinstance(f, datasets.ClassLabel)),
        next((n for n in LABEL_COLUMNS if n in features), None),
    )
    if image is None or label is None:
        raise ValueError(
            f"Cannot tell which columns hold the image and the label (columns: {names}); "
            "name them with --image-column and --label-column."
        )
    case_id = given(columns.case_id, "case id") or next(
        (n for n in CASE_ID_COLUMNS if n in features and n != label), None
    )
    return image, label, case_id


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def cache_folder(source: HubSource, *, columns: HubColumns, max_cases: int | None, seed: int):
    key = json.dumps([str(source), columns.__dict__, max_cases, seed], sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    return extracted_dir() / "hub" / f"{slug(source.name)}-{digest}"


def materialise(
    source: str | Path | HubSource,
    *,
    columns: HubColumns | None = None,
    max_cases: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> Path:
    """Unpack a Hub dataset (or a seeded sample of ``max_cases`` rows) into a cached manifest
    library; returns its folder. Done once per source, columns and sample."""
    source = source if isinstance(source, HubSource) else parse_hub_source(source)
    if source.repo is not None:
        bundle = _remote_bundle(source)
        if bundle is not None:
            return bundle
    columns = columns or HubColumns()
    if max_cases is not None and max_cases < 1:
        raise ValueError("--max-cases must be at least 1.")
    out = cache_folder(source, columns=columns, max_cases=max_cases, seed=seed)
    if (out / DONE_FILE).is_file():
        return out
    import datasets

    stream = _open(source)
    features = stream.features or {}
    image_col, label_col, case_col = _pick(dict(features), columns)
    label_feature = features[label_col]
    stream = stream.cast_column(image_col, datasets.Image(decode=False))
    if max_cases is not None:
        # A shuffle buffer several times the sample keeps it seeded and spread without
        # reading the whole dataset first.
        stream = stream.shuffle(seed=seed, buffer_size=max(1_000, 10 * max_cases)).take(max_cases)
    split_info = (stream.info.splits or {}).get(source.split)
    total = max_cases or (split_info.num_examples if split_info else 0)
    work = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}")
    (work / "images").mkdir(parents=True)
    rows = []
    try:
        for n, row in enumerate(stream):
            rows.append(_write_row(row, work, image_col, label_col, case_col, label_feature))
            if progress is not None:
                progress(n + 1, max(total, n + 1))
        licence, citation, card_text = _card(source)
        if card_text is not None:
            (work / "README.md").write_text(card_text, encoding="utf-8")
        pd.DataFrame(rows).to_csv(work / "manifest.csv", index=False)
        card = {
            "name": source.name,
            "source": str(source),
            "licence": licence,
            "citation": citation,
            "count": len(rows),
            "sample": {"max_cases": max_cases, "seed": seed} if max_cases else None,
            "columns": {"image": image_col, "label": label_col, "case_id": case_col},
        }
        (work / CARD_FILE).write_text(json.dumps(card, indent=2), encoding="utf-8")
        (work / DONE_FILE).write_text("")
        if out.exists():
            shutil.rmtree(out)  # an earlier unpacking that never finished
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out


def _remote_bundle(source: HubSource) -> Path | None:
    """A Hub dataset repository holding an index bundle is downloaded as it is (real files,
    not cache links, so its relative paths hold); None when the repository is no bundle."""
    from huggingface_hub import hf_hub_download, snapshot_download

    try:
        hf_hub_download(source.repo, BUNDLE_FILE, repo_type="dataset", revision=source.revision)
    except Exception:  # no bundle.json, or the Hub is unreachable: load_dataset then says so
        return None
    folder = extracted_dir() / "hub" / f"{slug(source.name)}-bundle"
    snapshot_download(source.repo, repo_type="dataset", revision=source.revision, local_dir=folder)
    return folder


def _write_row(
    row: dict[str, Any],
    folder: Path,
    image_col: str,
    label_col: str,
    case_col: str | None,
    label_feature: Any,
) -> dict[str, Any]:
    import datasets

    cell = row[image_col] or {}
    data = cell.get("bytes")
    if data is None and cell.get("path"):
        data = Path(cell["path"]).read_bytes()
    if not data:
        raise ValueError(f"A row of the dataset has no image bytes in {image_col!r}.")
    sha1 = hashlib.sha1(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as im:
            ext = (im.format or "png").lower().replace("jpeg", "jpg")
    except OSError:
        ext = "bin"  # kept, so validation reports it as unreadable like any other bad file
    relpath = f"images/{sha1[:2]}/{sha1}.{ext}"
    target = folder / relpath
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    label = row[label_col]
    if isinstance(label_feature, datasets.ClassLabel) and isinstance(label, int) and label >= 0:
        label = label_feature.int2str(label)
    out = {"path": relpath, "label": "" if label is None else str(label)}
    if case_col is not None:
        out["case_id"] = "" if row[case_col] is None else str(row[case_col])
    skip = {image_col, label_col, case_col}
    out |= {k: v for k, v in row.items() if k not in skip and _scalar(v)}
    return out


def read_card(folder: str | Path) -> dict[str, Any] | None:
    """The licence, citation and source kept beside an unpacked Hub library, if it is one."""
    file = Path(folder) / CARD_FILE
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
