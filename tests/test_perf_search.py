"""Search benchmark: recall, exact reference, methods, crossover, and a tiny end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.perf import search_methods as sm
from benchmarks.perf.search import run
from benchmarks.perf.search_report import crossover, render_markdown, render_table
from benchmarks.perf.search_vectors import (
    RealEmbeddings,
    cluster_model,
    neighbour_structure,
    sample,
    shared_image_paths,
)


def test_recall_hand_computed():
    found = np.array([[1, 2, 3], [4, 5, 6]])
    truth = np.array([[3, 2, 9], [7, 8, 9]])
    # Query 0 shares {2, 3} (order ignored), query 1 shares nothing: (2/3 + 0) / 2.
    assert sm.recall_at_k(found=found, truth=truth, k=3) == pytest.approx(1 / 3)
    assert sm.recall_at_k(found=truth[:, ::-1], truth=truth, k=3) == 1.0
    # Only the first k columns count.
    assert sm.recall_at_k(found=np.array([[9, 1, 3]]), truth=np.array([[3, 9, 1]]), k=1) == 0.0


def test_recall_rejects_bad_shapes():
    with pytest.raises(ValueError, match="equal length"):
        sm.recall_at_k(found=np.zeros((2, 10)), truth=np.zeros((3, 10)))
    with pytest.raises(ValueError, match="at least k=10"):
        sm.recall_at_k(found=np.zeros((2, 5)), truth=np.zeros((2, 10)))


@pytest.fixture(scope="module")
def centres() -> RealEmbeddings:
    """Stand-in centres with class structure (the real ones need ~7 min of embedding)."""
    rng = np.random.default_rng(0)
    means = rng.standard_normal((4, 96))
    labels = np.repeat(np.arange(4), 30)
    vectors = means[labels] + 0.6 * rng.standard_normal((len(labels), 96))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return RealEmbeddings(vectors=vectors.astype(np.float32), labels=labels.astype(str))


@pytest.fixture(scope="module")
def library(centres) -> np.ndarray:
    return sample(model=cluster_model(real=centres, dim=32, seed=1), n=1500, seed=2)


def test_samples_are_unit_seeded_and_clustered(centres, library):
    model = cluster_model(real=centres, dim=32, seed=1)
    assert library.dtype == np.float32 and library.shape == (1500, 32)
    np.testing.assert_allclose(np.linalg.norm(library, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(sample(model=model, n=1500, seed=2), library)
    assert not np.array_equal(sample(model=model, n=1500, seed=3), library)
    stats = neighbour_structure(vectors=library, seed=0, probes=50)
    assert stats["mean_cos_nearest"] > stats["mean_cos_random"] + 0.2


def test_exact_reference_matches_float64_argsort(library):
    queries = library[:7] + 0.01
    expected = np.argsort(-(queries.astype(np.float64) @ library.astype(np.float64).T), axis=1)
    np.testing.assert_array_equal(
        sm.exact_top_k(queries=queries, library=library), expected[:, : sm.K]
    )


def test_brute_force_methods_agree_with_reference(library):
    queries = sample(
        model=cluster_model(real=RealEmbeddings(library[:50], np.zeros(50)), dim=32, seed=4),
        n=12,
        seed=5,
    )
    truth = sm.exact_top_k(queries=queries, library=library)
    singles = {
        "numpy": [sm.single_numpy(query=q, library=library) for q in queries],
        "sklearn_argsort": [sm.single_sklearn_argsort(query=q, library=library) for q in queries],
        "usearch": [
            sm.usearch_exact_matrix(queries=q, library=library, threads=1)[0] for q in queries
        ],
    }
    for name, found in singles.items():
        assert sm.recall_at_k(found=np.stack(found), truth=truth) == 1.0, name
    batched = sm.batched_numpy(queries=queries, library=library)
    np.testing.assert_array_equal(batched, truth)


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_hnsw_pins_dtype_and_tuning_reaches_target(library, dtype):
    index = sm.new_hnsw(dim=32, dtype=dtype)
    assert str(index.dtype).lower().endswith(dtype)
    index.add(np.arange(len(library), dtype=np.uint64), library, threads=1)
    queries = library[:40] + 0.05
    truth = sm.exact_top_k(queries=queries, library=library)
    tuning = sm.tune_expansion_search(
        index=index, queries=queries, truth=truth, target=0.95, threads=1
    )
    assert tuning.reached and tuning.curve[tuning.chosen] >= 0.95
    assert index.expansion_search == tuning.chosen
    with pytest.raises(ValueError, match="'f32' or 'f16'"):
        sm.new_hnsw(dim=32, dtype="bf16")


def _single(method: str, n: int, median: float) -> dict:
    return {
        "kind": "single",
        "method": method,
        "dim": 8,
        "n": n,
        "median_ms": median,
        "recall_at_10": 1.0,
    }


def test_crossover_interpolates_on_log_size():
    records = [
        _single("usearch-exact", 1_000, 1.0),
        _single("usearch-hnsw-f32", 1_000, 2.0),
        _single("usearch-exact", 10_000, 1.0),
        _single("usearch-hnsw-f32", 10_000, 0.5),
    ]
    # log-ratio goes from +ln 2 to -ln 2: zero halfway on a log axis, sqrt(1e3 * 1e4).
    result = crossover(records)
    assert result["recommended_threshold_n"] == 3162
    assert result["per_dim_dtype"][0]["threshold_is_upper_bound"] is False
    # HNSW faster everywhere: the smallest size is only an upper bound.
    records[1] = _single("usearch-hnsw-f32", 1_000, 0.9)
    assert crossover(records)["per_dim_dtype"][0]["threshold_is_upper_bound"] is True
    # Never faster: no threshold.
    records[3] = _single("usearch-hnsw-f32", 10_000, 1.5)
    records[1] = _single("usearch-hnsw-f32", 1_000, 1.5)
    assert crossover(records)["recommended_threshold_n"] is None


def test_tiny_run_end_to_end(centres):
    logged: list[dict] = []
    doc = run(
        sizes=(300, 900),
        dims=(32,),
        hnsw_max=900,
        n_eval=8,
        n_tune=8,
        threads=1,
        repeats=2,
        real=centres,
        crossover_sizes=(150, 600),
        quick=True,
        log=logged.append,
    )
    methods = {(r["method"], r["kind"], r["n"]) for r in doc["records"]}
    for method in (
        "sklearn-argsort",
        "numpy-bruteforce",
        "usearch-exact",
        "usearch-hnsw-f32",
        "usearch-hnsw-f16",
    ):
        assert (method, "single", 900) in methods
    assert ("usearch-exact", "single", 150) in methods  # crossover-only size
    assert ("sklearn-argsort", "single", 150) not in methods
    exact = [r for r in doc["records"] if r["method"] in ("usearch-exact", "numpy-bruteforce")]
    assert all(r["recall_at_10"] == 1.0 for r in exact)
    assert {p["baseline"] for p in doc["crossover"]["per_dim_dtype"]} == {
        "usearch-exact",
        "numpy-bruteforce",
    }
    assert len(logged) >= len(doc["records"])
    table = render_table(doc)
    assert "sklearn-argsort" in table and "shared, busy 2-core" in table
    assert table in render_markdown(doc, table=table)


@pytest.mark.shared
def test_shared_manifests_list_existing_images(shared_datasets):
    paths, labels = shared_image_paths(shared_root=shared_datasets.parent)
    assert len(paths) == len(labels) > 1000
    assert all(p.is_file() for p in paths[:: max(1, len(paths) // 50)])


def test_million_path_stores_tuned_expansion_and_reranks_i8(centres, tmp_path):
    # Past the exact-search size, so the app's call walks the graph: the i8 re-rank must make
    # up what the 8-bit graph order loses, and the reopened index keeps the tuned setting.
    from types import SimpleNamespace

    from benchmarks.perf import million

    model = cluster_model(real=centres, dim=32, seed=1)
    library = sample(model=model, n=12_000, seed=2)
    tune, evaluate = sample(model=model, n=30, seed=3), sample(model=model, n=30, seed=4)
    truth = {
        name: sm.exact_top_k(queries=q, library=library)
        for name, q in (("tune", tune), ("eval", evaluate))
    }
    args = SimpleNamespace(expansion_add=32, threads=1, tune_target=0.99)
    record = million.measure_dtype(
        library=library,
        tune=tune,
        evaluate=evaluate,
        truth_tune=truth["tune"],
        truth_eval=truth["eval"],
        dtype="i8",
        args=args,
        folder=tmp_path / "i8",
        log=lambda _: None,
    )
    assert record["manifest_search"]["expansion_search"] in sm.EXPANSION_SEARCH_GRID
    assert record["search_recall_at_10"] >= 0.99 > record["graph_recall_at_10"]
    assert record["n"] == 12_000 and record["index_file_mb"] >= 0
    assert not (tmp_path / "i8").exists()  # the 1M-sized files are not left behind
