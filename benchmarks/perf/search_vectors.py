"""Clustered synthetic embeddings for the search benchmark, grown from real image embeddings.

HNSW recall on isotropic Gaussian noise says nothing about real libraries (every point is
about equally far from every other), so library vectors here are real efficientnet-lite0
embeddings of the shared datasets used as cluster centres, plus anisotropic noise whose main
directions are the real within-class variation. Every random draw takes an explicit seed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BACKBONE_KEY = "efficientnet-lite0"
DATASET_NAMES = ("ham10000-subset", "infectious-8", "mpox-msld")
DEFAULT_CACHE = Path(os.environ.get("DERMSEARCH_BENCH_CACHE", "/tmp/dermsearch-bench-search"))
# Rows generated per block: bounds the float32 temporaries to a few hundred MB at dim 1024.
_BLOCK = 65_536


@dataclass(frozen=True)
class RealEmbeddings:
    """Unit-norm real image embeddings (n, 1280) and the class label of each row."""

    vectors: np.ndarray
    labels: np.ndarray


def shared_image_paths(*, shared_root: Path) -> tuple[list[Path], list[str]]:
    """Image paths and labels listed in the manifests of the shared datasets."""
    import csv

    paths: list[Path] = []
    labels: list[str] = []
    for name in DATASET_NAMES:
        manifest = shared_root / "datasets" / name / "manifest.csv"
        if not manifest.is_file():
            raise ValueError(
                f"{manifest} not found; the benchmark reads the real images from ../shared "
                "relative to the repository root (set --shared to point elsewhere)."
            )
        with manifest.open(newline="") as handle:
            for row in csv.DictReader(handle):
                paths.append(manifest.parent / row["path"])
                labels.append(f"{name}/{row['label']}")
    return paths, labels


def real_embeddings(*, shared_root: Path, cache_dir: Path = DEFAULT_CACHE) -> RealEmbeddings:
    """Embed the shared images with efficientnet-lite0, cached under `cache_dir` by file list."""
    paths, labels = shared_image_paths(shared_root=shared_root)
    digest = hashlib.sha1("\n".join(str(p) for p in paths).encode()).hexdigest()[:12]
    cache = cache_dir / f"{BACKBONE_KEY}-{digest}.npz"
    if cache.is_file():
        stored = np.load(cache)
        return RealEmbeddings(vectors=stored["vectors"], labels=stored["labels"])
    from models import load_backbone

    backbone = load_backbone(BACKBONE_KEY)
    if backbone.weights_origin != "pretrained":
        raise ValueError(f"{BACKBONE_KEY} has no pretrained weights here; centres would be noise.")
    vectors = backbone.encode_images(paths, normalize=True).astype(np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=vectors, labels=np.asarray(labels))
    return RealEmbeddings(vectors=vectors, labels=np.asarray(labels))


def _unit_rows(array: np.ndarray) -> np.ndarray:
    array /= np.linalg.norm(array, axis=1, keepdims=True)
    return array


@dataclass(frozen=True)
class ClusterModel:
    """Centres (n_centres, dim) and the anisotropic noise basis (rank, dim), both float32.

    A sample is `centre + scale * (z_low @ basis + floor * z_iso)`, L2-normalised: `basis`
    carries the real within-class spread (principal directions scaled by their standard
    deviations), `floor` an isotropic remainder so that points are not confined to a subspace.
    """

    centres: np.ndarray
    basis: np.ndarray
    scale: float
    floor: float

    @property
    def dim(self) -> int:
        return int(self.centres.shape[1])


def cluster_model(
    *,
    real: RealEmbeddings,
    dim: int,
    seed: int,
    rank: int = 64,
    scale: float = 1.0,
    floor: float = 0.5,
) -> ClusterModel:
    """Project real embeddings to `dim` with a seeded random orthonormal map; fit the noise."""
    if dim < 2 or dim > real.vectors.shape[1]:
        raise ValueError(f"dim must be in [2, {real.vectors.shape[1]}], got {dim}.")
    rng = np.random.default_rng(seed)
    # QR of a Gaussian matrix: orthonormal columns, so projected distances are not distorted
    # beyond what dropping dimensions does.
    q, _ = np.linalg.qr(rng.standard_normal((real.vectors.shape[1], dim)))
    projected = (real.vectors.astype(np.float64) @ q).astype(np.float64)
    deviations = projected.copy()
    for label in np.unique(real.labels):
        rows = real.labels == label
        deviations[rows] -= projected[rows].mean(axis=0)
    _, singular, vt = np.linalg.svd(deviations, full_matrices=False)
    rank = min(rank, vt.shape[0])
    std = singular[:rank] / np.sqrt(len(deviations) - 1)
    basis = std[:, None] * vt[:rank]
    # Isotropic floor per coordinate, relative to the RMS per-coordinate spread of the basis.
    per_coord = float(np.sqrt((std**2).sum() / dim))
    centres = _unit_rows(projected).astype(np.float32)
    return ClusterModel(
        centres=centres, basis=basis.astype(np.float32), scale=scale, floor=floor * per_coord
    )


def sample(*, model: ClusterModel, n: int, seed: int) -> np.ndarray:
    """`n` unit-norm float32 vectors drawn around uniformly chosen centres."""
    if n < 1:
        raise ValueError(f"n must be a positive number of vectors, got {n}.")
    rng = np.random.default_rng(seed)
    out = np.empty((n, model.dim), dtype=np.float32)
    rank = model.basis.shape[0]
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        m = stop - start
        which = rng.integers(0, len(model.centres), size=m)
        block = rng.standard_normal((m, model.dim), dtype=np.float32)
        block *= model.floor
        block += rng.standard_normal((m, rank), dtype=np.float32) @ model.basis
        block *= model.scale
        block += model.centres[which]
        out[start:stop] = _unit_rows(block)
    return out


def neighbour_structure(*, vectors: np.ndarray, seed: int, probes: int = 200) -> dict[str, float]:
    """Mean cosine of a probe point to its nearest other point, and to a random other point."""
    rng = np.random.default_rng(seed)
    n = len(vectors)
    probe_rows = rng.choice(n, size=min(probes, n), replace=False)
    nearest = np.full(len(probe_rows), -np.inf)
    for start in range(0, n, _BLOCK):
        sims = vectors[probe_rows] @ vectors[start : start + _BLOCK].T
        own = (probe_rows >= start) & (probe_rows < start + _BLOCK)
        sims[np.flatnonzero(own), probe_rows[own] - start] = -np.inf
        nearest = np.maximum(nearest, sims.max(axis=1))
    others = (probe_rows + rng.integers(1, n, size=len(probe_rows))) % n
    random_cos = np.einsum("ij,ij->i", vectors[probe_rows], vectors[others])
    return {
        "probes": len(probe_rows),
        "mean_cos_nearest": float(nearest.mean()),
        "mean_cos_random": float(random_cos.mean()),
    }
