"""Shared fixtures: the real datasets beside the checkout, when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Nothing in the suite may reach the network; fail fast instead of retrying the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("DERMSEARCH_SHARED", REPO.parent / "shared")) / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The folder of real datasets (../shared/datasets); skips when this is a fresh clone."""
    if not (SHARED_DATASETS / "infectious-8" / "manifest.csv").is_file():
        pytest.skip(
            f"real datasets not found at {SHARED_DATASETS} (a fresh clone has no ../shared)"
        )
    return SHARED_DATASETS
