"""Retrieval variants: the registry, the math, and the honesty of their evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from library_factory import make_folder_library

from benchmarks.latency import LatencySettings
from benchmarks.runner import run_benchmark
from benchmarks.variants import (
    paired_bootstrap,
    rank_aqe,
    rank_dba,
    rank_k_reciprocal,
    rank_lda,
    rank_plain,
    same_group,
    top_rows,
)
from data_index.variants import (
    VARIANTS,
    fit_lda,
    fuse,
    k_reciprocal_distances,
    parse_variants,
    weighted_mean,
)
from models.base import l2_normalize

FAST = LatencySettings(batch_size=4, n_queries=5, repeats=2, warmup=1)


def unit_vectors(n: int, d: int, seed: int = 0) -> np.ndarray:
    return l2_normalize(np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("aqe", ["aqe"]),
        ("AQE, dba", ["aqe", "dba"]),
        ("fusion:a+b", ["fusion:a+b"]),
        ("fusion:a+b+c,adapter-lda", ["fusion:a+b+c", "adapter-lda"]),
        ("tta-flip,", ["tta-flip"]),
        ("K-Reciprocal", ["k-reciprocal"]),
    ],
)
def test_parse_variants(given, expected):
    assert parse_variants(given) == expected


@pytest.mark.parametrize(
    ("bad", "says"),
    [("qe", "Valid variants: tta-flip"), ("fusion:a", "two or more"), ("aqe:x", "no ':'")],
)
def test_parse_variants_refuses_with_a_sentence(bad, says):
    with pytest.raises(ValueError, match=says):
        parse_variants(bad)


def test_every_variant_says_what_it_costs_and_whether_it_learns():
    for variant in VARIANTS.values():
        assert variant.description and variant.query_cost
    assert [v.name for v in VARIANTS.values() if v.fitted] == ["adapter-lda"]


def test_weighted_mean_by_hand():
    anchor = np.array([[1.0, 0.0]], np.float32)
    neighbours = np.array([[[0.0, 1.0], [0.0, -1.0]]], np.float32)
    sims = np.array([[0.5, -0.5]])  # the negative one gets no weight
    out = weighted_mean(anchor, neighbours, sims, alpha=1.0)
    np.testing.assert_allclose(out, [[1 / np.sqrt(1.25), 0.5 / np.sqrt(1.25)]], rtol=1e-6)


def test_fused_cosine_is_the_mean_of_the_backbones_cosines():
    a, b = unit_vectors(6, 5, 1), unit_vectors(6, 7, 2)
    fused = fuse([a, b])
    np.testing.assert_allclose(fused @ fused.T, (a @ a.T + b @ b.T) / 2, atol=1e-6)


def test_top_rows_never_returns_an_excluded_column_and_keeps_ties_in_order():
    scores = np.array([[0.5, 0.9, 0.5, 0.1]])
    exclude = np.array([[False, True, False, False]])
    assert top_rows(scores, exclude, 3).tolist() == [[0, 2, 3]]


def dba_by_brute_force(unit, groups, k, *, expand, alpha):
    """Per query: drop its group from the library, augment what is left, then search."""
    out = []
    for q in range(len(unit)):
        keep = np.flatnonzero(groups != groups[q])
        lib, lib_groups = unit[keep], groups[keep]
        sims = lib @ lib.T
        near = top_rows(sims, same_group(lib_groups), expand)
        augmented = weighted_mean(
            lib, lib[near], np.take_along_axis(sims, near, axis=1), alpha=alpha
        )
        order = top_rows((augmented @ unit[q])[None, :], np.zeros((1, len(keep)), bool), k)[0]
        out.append(keep[order])
    return np.array(out)


def test_dba_never_lets_a_query_find_itself_through_a_neighbour():
    rng = np.random.default_rng(5)
    unit = unit_vectors(40, 8, 3)
    groups = rng.integers(0, 25, size=40)  # some groups hold several rows (a case, copies)
    fast = rank_dba(unit, groups, 5, expand=3, alpha=3.0)
    slow = dba_by_brute_force(unit, groups, 5, expand=3, alpha=3.0)
    np.testing.assert_array_equal(fast, slow)


def test_aqe_expands_with_allowed_neighbours_only():
    unit = unit_vectors(30, 6, 4)
    groups = np.arange(30) // 2  # pairs: a photo and its copy
    exclude = same_group(groups)
    rows = rank_aqe(unit, exclude, 4, expand=2, alpha=3.0)
    assert not exclude[np.arange(30)[:, None], rows].any()
    # With alpha 0 every allowed neighbour weighs like the query: the expanded query is the
    # plain mean of the query and its two nearest allowed cases.
    first = rank_plain(unit, exclude, 2)
    mean = l2_normalize(unit + unit[first].sum(axis=1))
    expected = top_rows(mean @ unit.T, exclude, 4)
    np.testing.assert_array_equal(rank_aqe(unit, exclude, 4, expand=2, alpha=0.0), expected)


def on_circle(*degrees: float) -> np.ndarray:
    angles = np.deg2rad(np.array(degrees))
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def test_k_reciprocal_reorders_a_hand_checked_case():
    """q at 0 degrees; a at -10 sits in a tight cluster (a1 at -13, a2 at -15); b at 12 is
    alone. With k1 = 2 (each point's two nearest, plus itself): q's nearest are a and b; a's are
    a1 and a2, so a and q are not mutual neighbours; b's are q and a, so b and q are. Hence
    R*(q) = {q, b}, R*(b) = {b, q}, R*(a) = {a, a1, a2}: a shares nothing with q (Jaccard 1)
    and b does, so b, farther by cosine, comes first."""
    points = on_circle(0, -10, -13, -15, 12)  # q, a, a1, a2, b
    final = k_reciprocal_distances(points[0], points[1:], k1=2, k2=1, lam=0.3)
    assert np.argsort(final).tolist() == [3, 0, 1, 2]  # b, a, a1, a2 (cosine: a, b, a1, a2)

    def scaled(angle, farthest):  # squared distance over the row's largest
        return (1 - np.cos(np.deg2rad(angle))) / (1 - np.cos(np.deg2rad(farthest)))

    # a: Jaccard 1, so 0.7 + 0.3 * its distance, q's row scaled by a2 at 15 degrees
    assert final[0] == pytest.approx(0.7 + 0.3 * scaled(10, 15))
    # b: q's vector is exp(-d) over {q, b}; b's over {b, q}, b's row scaled by a2 at 27 degrees
    vq = np.array([1.0, np.exp(-scaled(12, 15))])
    vb = np.array([np.exp(-scaled(12, 27)), 1.0])  # (weight of q, weight of b)
    vq, vb = vq / vq.sum(), vb / vb.sum()
    jaccard = 1 - np.minimum(vq, vb).sum() / np.maximum(vq, vb).sum()
    assert final[3] == pytest.approx(0.7 * jaccard + 0.3 * scaled(12, 15))


def k_reciprocal_by_loops(query, candidates, *, k1, k2, lam):
    """The method written out point by point, as the paper's equations read."""
    points = np.vstack([query[None], candidates]).astype(np.float64)
    m = len(points)
    dist = np.clip(2 - 2 * points @ points.T, 0, None)
    np.fill_diagonal(dist, 0)
    dist = dist / dist.max(axis=1, keepdims=True)
    rank = np.argsort(dist, axis=1, kind="stable")

    def nearest(i, k):
        return set(rank[i, : k + 1].tolist())

    def reciprocal(i, k):
        return {j for j in nearest(i, k) if i in nearest(j, k)}

    vectors = np.zeros((m, m))
    half = int(np.around(k1 / 2))
    for i in range(m):
        r = reciprocal(i, k1)
        grown = set(r)
        for c in r:
            rc = reciprocal(c, half)
            if len(rc & r) > 2 / 3 * len(rc):
                grown |= rc
        grown.add(i)
        idx = sorted(grown)
        w = np.exp(-dist[i, idx])
        vectors[i, idx] = w / w.sum()
    if k2 > 1:
        vectors = np.array([vectors[rank[i, :k2]].mean(axis=0) for i in range(m)])
    out = []
    for j in range(1, m):
        both = np.stack([vectors[0], vectors[j]])
        jaccard = 1 - both.min(axis=0).sum() / both.max(axis=0).sum()
        out.append((1 - lam) * jaccard + lam * dist[0, j])
    return np.array(out)


@pytest.mark.parametrize(("k1", "k2", "lam"), [(20, 6, 0.3), (4, 3, 0.5), (7, 1, 0.0)])
def test_k_reciprocal_matches_the_method_written_out_point_by_point(k1, k2, lam):
    rng = np.random.default_rng(k1)
    centres = unit_vectors(4, 6, k1)
    cloud = l2_normalize(centres[rng.integers(0, 4, 60)] + 0.3 * rng.standard_normal((60, 6)))
    fast = k_reciprocal_distances(cloud[0], cloud[1:], k1=k1, k2=k2, lam=lam)
    slow = k_reciprocal_by_loops(cloud[0], cloud[1:], k1=k1, k2=k2, lam=lam)
    np.testing.assert_allclose(fast, slow, atol=1e-9)
    plain = np.argsort(-(cloud[1:] @ cloud[0]), kind="stable")
    if lam < 1:  # it is a re-ranking: the order moves
        assert np.argsort(fast, kind="stable").tolist() != plain.tolist()


def k_reciprocal_by_deletion(unit, groups, k, *, params):
    """Per query: its group deleted from the library, then re-ranked over what is left."""
    out = []
    for q in range(len(unit)):
        keep = np.flatnonzero(groups != groups[q])
        lib = unit[keep]
        cand = np.argsort(-(lib @ unit[q]), kind="stable")[: int(params["shortlist"])]
        final = k_reciprocal_distances(
            unit[q], lib[cand], k1=params["k1"], k2=params["k2"], lam=params["lambda"]
        )
        out.append(keep[cand[np.argsort(final, kind="stable")[:k]]])
    return np.array(out)


def test_k_reciprocal_never_lets_the_querys_case_or_copies_in():
    rng = np.random.default_rng(7)
    centres = unit_vectors(5, 8, 7)
    groups = np.repeat(np.arange(40), 3)  # a case and its copies: three near-equal photos
    unit = l2_normalize(
        np.repeat(centres[rng.integers(0, 5, 40)] + 0.4 * rng.standard_normal((40, 8)), 3, 0)
        + 0.01 * rng.standard_normal((120, 8))
    )
    params = {"k1": 8, "k2": 3, "lambda": 0.3, "shortlist": 30}
    exclude = same_group(groups)
    rows = rank_k_reciprocal(unit, exclude, 5, params=params)
    assert not exclude[np.arange(120)[:, None], rows].any()
    np.testing.assert_array_equal(rows, k_reciprocal_by_deletion(unit, groups, 5, params=params))
    # Leaving out only the query's own row lets its copies in, and they rank first.
    own_row_only = rank_k_reciprocal(unit, np.eye(120, dtype=bool), 5, params=params)
    assert (groups[own_row_only[:, 0]] == groups).all()


def test_lda_is_cross_fitted_so_noise_labels_gain_nothing():
    """Labels unrelated to the vectors: an adapter fitted on its own queries would learn them
    (top-1 far above chance); cross-fitted by group it stays near chance."""
    rng = np.random.default_rng(0)
    unit = unit_vectors(120, 400, 0)
    labels = rng.choice(np.array(["a", "b", "c", "d"]), size=120)
    groups = np.arange(120)
    rows = rank_lda(unit, labels, groups, 1)
    top1 = float((labels[rows[:, 0]] == labels).mean())
    assert top1 < 0.4  # chance is about 0.25
    leaked = fit_lda(unit, labels).project(unit)
    leaked_top1 = float(
        (labels[top_rows(leaked @ leaked.T, same_group(groups), 1)[:, 0]] == labels).mean()
    )
    assert leaked_top1 > 0.7  # what fitting on the queries themselves would report


def test_paired_bootstrap_resamples_whole_groups():
    groups = np.repeat(np.arange(50), 2)
    assert paired_bootstrap(np.zeros(100), groups) == (0.0, 0.0)
    shift = np.full(100, 0.1)
    low, high = paired_bootstrap(shift, groups)
    assert low == pytest.approx(0.1) and high == pytest.approx(0.1)
    diff = np.where(np.arange(100) < 50, 1.0, 0.0)  # half the groups gain, half do not
    low, high = paired_bootstrap(diff, groups, seed=1)
    assert low < 0.5 < high and high - low < 0.4


def test_benchmark_run_writes_variant_records_with_gains_and_intervals(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    make_folder_library(tmp_path / "lib", per_class=6)
    out = tmp_path / "results.jsonl"
    records = run_benchmark(
        tmp_path / "lib",
        ["color-texture", "efficientnet-lite0"],
        ["loo"],
        latency=FAST,
        out=out,
        variants=parse_variants(
            "aqe,dba,adapter-lda,tta-flip,k-reciprocal,fusion:color-texture+efficientnet-lite0"
        ),
    )
    found = [r for r in records if r["protocol"] == "variant"]
    named = {(r["variant"], r["base"], r["k"]) for r in found}
    for variant in ("aqe", "dba", "adapter-lda", "tta-flip", "k-reciprocal"):
        for base in ("color-texture", "efficientnet-lite0"):
            assert (variant, base, 1) in named
    assert any(r["variant"].startswith("fusion:") for r in found)
    for r in found:
        assert r["gain_ci_low"] <= r["gain_ci_high"] and r["n_boot"] == 1000
        assert r["value"] == pytest.approx(r["base_value"] + r["gain"])
        assert r["library"] == "lib" and r["search_ms_10k"] > 0
    assert out.read_text().count('"protocol": "variant"') == len(found)
