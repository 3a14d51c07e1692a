"""Embedding extraction: images decoded in DataLoader workers, batched forward, cached vectors."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from data_index.embed_cache import EmbeddingCache
from data_index.library import CaseLibrary
from data_index.validation import Progress
from models import Backbone, open_image
from models.base import l2_normalize


class _ImageFiles(Dataset):
    """Decodes and preprocesses one image per item; a failure is returned, not raised, so one
    bad file does not stop a build of thousands."""

    def __init__(self, paths: Sequence[str], preprocess: Callable) -> None:
        self.paths = list(paths)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            return i, self.preprocess(open_image(self.paths[i])), None
        except ValueError as err:
            return i, None, str(err)
        except Exception as err:  # a decoder bug on a weird file is still that file's problem
            return i, None, f"cannot be decoded ({type(err).__name__}: {err})"


def _collate(items: list) -> tuple[list[int], torch.Tensor | None, list[tuple[int, str]]]:
    good = [(i, t) for i, t, _ in items if t is not None]
    failed = [(i, reason) for i, t, reason in items if t is None]
    batch = torch.stack([t for _, t in good]) if good else None
    return [i for i, _ in good], batch, failed


def _one_thread_per_worker(_: int) -> None:
    # Workers only decode; letting each also spawn a full torch thread pool oversubscribes cores.
    torch.set_num_threads(1)


def default_workers(n_images: int, batch_size: int) -> int:
    """Decoder processes: none for a batch or two (start-up costs more), else cores - 1, max 4."""
    if n_images <= 2 * batch_size:
        return 0
    return max(1, min(4, (os.cpu_count() or 1) - 1))


def embed_paths(
    paths: Sequence[str | Path],
    backbone: Backbone,
    *,
    num_workers: int | None = None,
    progress: Progress | None = None,
    on_batch: Callable[[list[int], np.ndarray], None] | None = None,
) -> tuple[np.ndarray, dict[int, str]]:
    """Raw (un-normalised) vectors for ``paths`` and ``{row: reason}`` for files that failed.

    Failed rows are left as zeros; callers drop them using the returned reasons. ``on_batch``
    sees each batch's rows and vectors as they come, so a caller can keep them even when a
    later batch stops the run (a cancel raised from ``progress``).
    """
    paths = [str(p) for p in paths]
    raw = np.zeros((len(paths), 0), dtype=np.float32)
    failures: dict[int, str] = {}
    if not paths:
        return raw, failures
    batch_size = backbone.batch_size
    workers = default_workers(len(paths), batch_size) if num_workers is None else num_workers
    loader = DataLoader(
        _ImageFiles(paths, backbone.preprocess),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=backbone.device.type == "cuda",
        worker_init_fn=_one_thread_per_worker if workers else None,
        prefetch_factor=2 if workers else None,
    )
    done = 0
    for rows, batch, failed in loader:
        failures.update(failed)
        if batch is not None:
            out = backbone.embed_batch(batch, normalize=False)
            if raw.shape[1] == 0:
                raw = np.zeros((len(paths), out.shape[1]), dtype=np.float32)
            raw[rows] = out
            if on_batch is not None:
                on_batch(rows, out)
        done += len(rows) + len(failed)
        if progress is not None:
            progress(done, len(paths))
    return raw, failures


def embed_cases(
    cases: pd.DataFrame,
    backbone: Backbone,
    *,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    num_workers: int | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """``(unit, raw, failures)`` for rows of a cases table (columns ``path``, ``sha1``).

    Arrays hold one row per case that decoded, in table order; ``failures`` maps the
    positions of the others to a reason. Only content hashes not cached are embedded.
    Architecture-only (random-weight) backbones are never cached: two loads differ.
    """
    total = len(cases)
    cache = None
    if use_cache and backbone.weights_origin == "pretrained":
        cache = EmbeddingCache(
            backbone_key=backbone.key, weights_origin=backbone.weights_origin, root=cache_dir
        )
    hashes = cases["sha1"].tolist()
    cached = cache.lookup(hashes, dim=backbone.spec.dim or None) if cache else {}
    # Several rows may share bytes (exact duplicates): embed each distinct content once.
    todo: dict[str, int] = {}
    for i, h in enumerate(hashes):
        if h not in cached:
            todo.setdefault(h, i)
    first_rows = list(todo.values())
    offset = total - sum(h not in cached for h in hashes)
    if progress is not None:
        progress(offset, total)

    def step(done: int, _: int) -> None:
        if progress is not None:
            progress(min(total, offset + done), total)

    fresh: dict[str, np.ndarray] = {}

    def keep(rows: list[int], out: np.ndarray) -> None:
        for j, vector in zip(rows, out, strict=True):
            fresh[hashes[first_rows[j]]] = vector

    try:
        _, failed = embed_paths(
            [cases["path"].iat[i] for i in first_rows],
            backbone,
            num_workers=num_workers,
            progress=step,
            on_batch=keep,
        )
    finally:
        # Also when stopped part way (a cancel): what was embedded is cached, so a retry
        # resumes from there instead of starting over.
        if cache is not None and fresh:
            cache.store(list(fresh), np.stack(list(fresh.values())))
    if progress is not None:
        progress(total, total)
    bad_hash = {hashes[first_rows[j]]: reason for j, reason in failed.items()}
    failures = {i: bad_hash[h] for i, h in enumerate(hashes) if h in bad_hash}
    lookup = {**cached, **fresh}
    good = [lookup[h] for h in hashes if h not in bad_hash]
    if not good:
        empty = np.zeros((0, backbone.spec.dim), np.float32)
        return empty, empty.copy(), failures
    raw = np.stack(good).astype(np.float32, copy=False)
    return l2_normalize(raw), raw, failures


def embed_library(
    library: CaseLibrary,
    backbone: Backbone,
    *,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    num_workers: int | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(unit, raw)`` float32 arrays aligned with ``library.cases`` rows (see ``embed_cases``).

    Images that fail to decode are dropped from ``library`` (and listed in its report) so the
    arrays stay aligned with ``library.cases``.
    """
    unit, raw, failures = embed_cases(
        library.cases,
        backbone,
        cache_dir=cache_dir,
        use_cache=use_cache,
        num_workers=num_workers,
        progress=progress,
    )
    if failures:
        keys = library.cases["key"].to_numpy()
        library.drop([int(keys[i]) for i in failures], reasons=list(failures.values()))
    return unit, raw
