"""A real index of a shared dataset (efficientnet-lite0): neighbours share labels beyond chance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from data_index import CaseIndex, CaseLibrary
from models import load_backbone


@pytest.mark.shared
@pytest.mark.slow
def test_nearest_other_case_shares_its_label_more_often_than_chance(shared_datasets, tmp_path):
    # mpox-msld: the smallest shared set (155 images), so this stays tolerable on 2 cores.
    library = CaseLibrary.load(shared_datasets / "mpox-msld")
    assert library.report.usable == 155
    backbone = load_backbone("efficientnet-lite0")
    index = CaseIndex.build(library, backbone, out_dir=tmp_path / "idx", cache_dir=tmp_path / "emb")
    index = CaseIndex.load(tmp_path / "idx", backbone_key="efficientnet-lite0")

    labels = index.cases["label"].to_numpy()
    agree = []
    for row, case_id in enumerate(index.cases["case_id"]):
        (hit,) = index.search_vector(index.raw[row], k=1, exclude_case_ids=[case_id])
        assert hit.case_id != case_id
        agree.append(hit.label == labels[row])

    # Chance: the label of another image drawn at random matches (sampling without replacement).
    n = len(labels)
    counts = np.unique(labels, return_counts=True)[1]
    chance = float((counts * (counts - 1)).sum() / (n * (n - 1)))
    spread = math.sqrt(chance * (1 - chance) / n)
    assert np.mean(agree) > chance + 3 * spread, (np.mean(agree), chance)
