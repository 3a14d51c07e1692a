"""Search through the precomputed case lookups returns exactly what a scan of the cases table
gives: same keys, scores, fields and metadata, with every image of excluded cases left out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import data_index.case_index as CI
from data_index import CaseIndex
from data_index.store import new_usearch_index

DIM = 24


def synthetic_index(n: int, *, seed: int = 0) -> CaseIndex:
    """``n`` images in clusters, three images per case, metadata of mixed column types."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((8, DIM)).astype(np.float32)
    raw = centres[rng.integers(0, 8, n)] + 0.3 * rng.standard_normal((n, DIM)).astype(np.float32)
    keys = np.arange(100, 100 + n, dtype=np.int64)  # keys need not equal rows
    cases = pd.DataFrame(
        {
            "key": keys,
            "path": [f"img/{i}.jpg" for i in range(n)],
            "label": [f"class{i % 5}" for i in range(n)],
            "case_id": [f"case{i // 3}" for i in range(n)],
            "age": rng.integers(20, 80, n),
            "score 2": np.where(rng.random(n) < 0.2, np.nan, rng.random(n)),
            "site": rng.choice(["arm", "leg", None], n),
            "flag": rng.random(n) < 0.5,
        }
    )
    index = new_usearch_index(DIM, "f32")
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    index.add(keys.astype(np.uint64), unit)
    manifest = {"dim": DIM, "dtype": "f32", "next_key": int(keys.max() + 1)}
    return CaseIndex(index=index, cases=cases, raw=raw, manifest=manifest)


def scanned_hits(idx: CaseIndex, q: np.ndarray, *, k: int, exclude: set[str]) -> list[tuple]:
    """The reference: brute-force cosine and a per-query scan of the cases table."""
    unit = idx.raw / np.linalg.norm(idx.raw, axis=1, keepdims=True)
    sims = unit @ (q / np.linalg.norm(q))
    keep = ~idx.cases["case_id"].isin(exclude).to_numpy()
    rows = np.flatnonzero(keep)[np.argsort(-sims[keep], kind="stable")[:k]]
    records = idx.cases.iloc[rows].to_dict("records")
    return [
        (
            int(r["key"]),
            r["label"],
            r["path"],
            r["case_id"],
            {c: r[c] for c in r if c not in ("key", "path", "label", "case_id")},
            float(sims[row]),
        )
        for r, row in zip(records, rows, strict=True)
    ]


def as_tuples(hits) -> list[tuple]:
    return [(h.key, h.label, h.path, h.case_id, h.metadata, h.score) for h in hits]


def assert_same(got: list[tuple], want: list[tuple]) -> None:
    assert [g[:4] for g in got] == [w[:4] for w in want]
    for g, w in zip(got, want, strict=True):
        assert g[4].keys() == w[4].keys()
        for column, value in w[4].items():
            assert type(g[4][column]) is type(value)
            assert g[4][column] == value or (value != value and g[4][column] != g[4][column])
        assert g[5] == pytest.approx(w[5], abs=1e-5)


@pytest.mark.parametrize("hnsw", [False, True])
def test_hits_match_a_scan_of_the_cases_table(monkeypatch, hnsw):
    if hnsw:
        monkeypatch.setattr(CI, "EXACT_SEARCH_MAX_CASES", 0)
    idx = synthetic_index(600)
    assert idx.exact is not hnsw
    rng = np.random.default_rng(3)
    for row in rng.choice(len(idx), 25, replace=False):
        q = idx.raw[row]
        case = idx.cases["case_id"].iat[row]
        # the query's own case and two other cases standing in for its copies
        exclude = {case, f"case{(row // 3 + 1) % 200}", f"case{(row // 3 + 7) % 200}"}
        got = as_tuples(idx.search_vector(q, k=10, exclude_case_ids=exclude))
        assert not {g[3] for g in got} & exclude and len(got) == 10
        want = scanned_hits(idx, q, k=10, exclude=exclude)
        if hnsw:  # the graph is approximate: compare only where it found the true neighbours
            assert len({g[0] for g in got} & {w[0] for w in want}) >= 9
            want_by_key = {w[0]: w for w in want}
            both = [g for g in got if g[0] in want_by_key]
            assert_same(both, [want_by_key[g[0]] for g in both])
        else:
            assert_same(got, want)


def test_batch_search_equals_one_query_at_a_time():
    idx = synthetic_index(300)
    rows = np.arange(0, 300, 7)
    queries = idx.raw[rows]
    exclude = [[idx.cases["case_id"].iat[r]] for r in rows]
    batch = idx.search_vectors(queries, k=8, exclude_case_ids=exclude)
    assert len(batch) == len(rows)
    for q, ids, hits in zip(queries, exclude, batch, strict=True):
        single = idx.search_vector(q, k=8, exclude_case_ids=ids)
        assert_same(as_tuples(hits), as_tuples(single))
        assert ids[0] not in {h.case_id for h in hits}
    assert [h.key for h in idx.search_vectors(queries[:2], k=3)[0]] == [
        h.key for h in idx.search_vector(queries[0], k=3)
    ]


def test_batch_search_rejects_mismatched_exclusions():
    idx = synthetic_index(30)
    with pytest.raises(ValueError, match="one exclusion list per query"):
        idx.search_vectors(idx.raw[:3], k=2, exclude_case_ids=[["case0"]])
    with pytest.raises(ValueError, match=r"\(m, 24\)"):
        idx.search_vectors(idx.raw[0], k=2)


def test_lookups_follow_removed_cases():
    idx = synthetic_index(60)
    q = idx.raw[0]
    first = idx.search_vector(q, k=1)[0].key
    idx.remove([first])
    hits = idx.search_vector(q, k=5)
    assert first not in {h.key for h in hits}
    assert idx.row_positions([first, int(idx.cases["key"].iat[4])]).tolist() == [-1, 4]
    euclid = idx.search_vector(q, k=59, metric="euclidean", exclude_case_ids=["case1"])
    assert len(euclid) == 59 - 3 and "case1" not in {h.case_id for h in euclid}


def test_expansion_settings_come_from_the_manifest(tmp_path, monkeypatch):
    from library_factory import make_manifest_library

    from data_index import CaseLibrary
    from models import load_backbone

    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    library = CaseLibrary.load(make_manifest_library(tmp_path / "lib", images_per_case=1))
    idx = CaseIndex.build(library, load_backbone("color-texture"), save=False)
    idx.manifest["search"] = {**idx.manifest["search"], "expansion_search": 321}
    idx.manifest["search"]["expansion_add"] = 77
    loaded = CaseIndex.load(idx.save(tmp_path / "idx"))
    assert (loaded.index.expansion_search, loaded.index.expansion_add) == (321, 77)


def test_hits_are_ordinary_frozen_hits():
    import dataclasses

    from data_index.search import Hit

    hit = synthetic_index(30).search_vector(np.ones(DIM), k=1)[0]
    assert isinstance(hit, Hit) and dataclasses.replace(hit) == hit
    with pytest.raises(dataclasses.FrozenInstanceError):
        hit.score = 0.0
