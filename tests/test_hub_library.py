"""Hugging Face datasets as case libraries, exercised on local folders in the Hub's layout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hub_layout import write_hub_folder
from library_factory import PATTERNS

from data_index import CaseLibrary
from data_index.hub import HubColumns, materialise, parse_hub_source, read_card

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def hub_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    return write_hub_folder(tmp_path / "patterns")


@pytest.mark.parametrize(
    ("text", "repo", "revision", "split"),
    [
        ("hf://datasets/org/name", "org/name", None, "train"),
        ("hf://datasets/org/name@v1.0:test", "org/name", "v1.0", "test"),
        ("hf://datasets/my-org/ham_10000.v2:validation", "my-org/ham_10000.v2", None, "validation"),
    ],
)
def test_parse_hub_names(text, repo, revision, split):
    source = parse_hub_source(text)
    assert (source.repo, source.revision, source.split, source.folder) == (
        repo,
        revision,
        split,
        None,
    )


@pytest.mark.parametrize(
    "text", ["hf://models/org/name", "hf://datasets/noslash", "hf:///no/such/folder", "plain"]
)
def test_parse_hub_rejects_with_the_accepted_forms(text):
    with pytest.raises(ValueError, match=r"hf://datasets/<org>/<name>\[@revision\]\[:split\]"):
        parse_hub_source(text)


def test_a_hub_layout_folder_loads_as_a_library(hub_folder):
    library = CaseLibrary.load(hub_folder)
    assert library.name == "patterns" and len(library) == 12
    assert library.labels == sorted(PATTERNS)  # ClassLabel names, not integers
    assert set(library.cases["case_id"]) == {f"{k}-lesion-{i}" for k in PATTERNS for i in (0, 1)}
    assert "age" in library.metadata_columns
    assert all(Path(p).is_file() for p in library.cases["path"])
    card = read_card(library.root)
    assert card["licence"] == "cc-by-4.0" and card["citation"].startswith("@misc{patterns2026")
    again = CaseLibrary.load(f"hf://{hub_folder}")
    assert again.root == library.root and again.fingerprint == library.fingerprint


def test_a_seeded_sample_is_the_same_each_time(hub_folder, tmp_path, monkeypatch):
    first = CaseLibrary.load(hub_folder, max_cases=5)
    assert len(first) == 5
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "other-cache"))
    second = CaseLibrary.load(hub_folder, max_cases=5)
    assert second.root != first.root and second.fingerprint == first.fingerprint
    other_seed = materialise(hub_folder, max_cases=5, seed=1)
    assert other_seed != second.root


def test_columns_named_by_hand_and_unknown_ones_refused(hub_folder):
    library = CaseLibrary.load(hub_folder, hub_columns=HubColumns(case_id="age"))
    assert set(library.cases["case_id"]) == {"30.0", "31.0", "32.0"}
    with pytest.raises(ValueError, match="no label column 'dx'"):
        CaseLibrary.load(hub_folder, hub_columns=HubColumns(label="dx"))


def test_an_unreachable_hub_is_one_clear_sentence(hub_folder):
    # conftest sets HF_HUB_OFFLINE: the Hub is never contacted from the suite.
    with pytest.raises(ValueError, match="Could not load hf://datasets/someone/derm-demo"):
        materialise("hf://datasets/someone/derm-demo:test", max_cases=10)


def test_cli_validates_a_hub_folder_with_a_sample(hub_folder):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "data_index",
            "validate",
            "--library",
            str(hub_folder),
            "--max-cases",
            "8",
            "--no-audit",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert run.returncode in (0, 1), run.stderr
    assert "usable: 8 " in run.stdout and run.returncode == 0
