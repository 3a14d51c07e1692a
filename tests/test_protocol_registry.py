"""Every registered protocol, through the runner, on a generated library: it runs, or its skip
record gives the reason of the first requirement the backbone or library does not meet.

Three backbones cover every requirement offline: color-texture (no text tower, no classifier of
its own), a tiny open_clip model saved to disk (a text tower) and xception-ham10000 (its own
HAM10000 classifier; the library's labels are HAM10000 classes so that protocol can run).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from library_factory import pattern_image, save_image

from benchmarks.embedded import ARCHITECTURE_ONLY, Embedded
from benchmarks.latency import LatencySettings
from benchmarks.protocols import REGISTRY, parse_protocols, register_protocol
from benchmarks.reference_classifier import OWN_CLASSIFIER
from benchmarks.runner import run_benchmark
from data_index import CaseLibrary
from data_index.case_index import CaseIndex
from models import availability, get_spec, load_backbone

FAST = LatencySettings(batch_size=4, n_queries=5, repeats=2, warmup=1)
# Pattern of library_factory -> a HAM10000 class name (the classifier's labels).
LABELS = {"red-stripes": "mel", "blue-checks": "nv", "green-dots": "bkl", "brown-plain": "bcc"}
PER_CLASS = 6
TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TINY_CLIP_PREPROCESS = {"size": 32, "mean": [0.5] * 3, "std": [0.5] * 3}


def write_library(root):
    """4 classes x PER_CLASS one-image cases, a third of each class in the test split."""
    rows = []
    for pattern, label in LABELS.items():
        for i in range(PER_CLASS):
            rel = f"img/{label}-{i}.jpg"
            save_image(pattern_image(pattern, i), root / rel)
            split = "test" if i % 3 == 0 else "train"
            rows.append({"path": rel, "label": label, "case_id": f"{label}-{i}", "split": split})
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def save_tiny_clip(folder) -> str:
    """A randomly initialised open_clip CLIP in the local-dir layout: a text tower, offline."""
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CLIP).eval()
    folder.mkdir(parents=True)
    config = {"model_cfg": TINY_CLIP, "preprocess_cfg": TINY_CLIP_PREPROCESS}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    save_file(model.state_dict(), folder / "open_clip_model.safetensors")
    return f"local-dir:{folder}"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The library, the loaded backbones and each one's view of the library."""
    root = tmp_path_factory.mktemp("registry")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DERMSEARCH_CACHE", str(root / "cache"))
        library = CaseLibrary.load(write_library(root / "lib"))
        keys = ["color-texture", save_tiny_clip(root / "tiny-clip")]
        if availability(get_spec("xception-ham10000")).ready:
            keys.append("xception-ham10000")
        backbones = {key: load_backbone(key) for key in keys}
        views = {}
        for key, backbone in backbones.items():
            index = CaseIndex.build(library, backbone, save=False)
            views[key] = Embedded.from_index(
                index, backbone=backbone, group_ids=np.arange(len(index.cases))
            )
        yield library, backbones, views


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registered_protocol_runs_or_names_its_unmet_requirement(name, setup):
    library, backbones, views = setup
    protocol = REGISTRY[name]
    for key, view in views.items():
        expected = protocol.unmet(view)
        records = run_benchmark(library, [key], [name], load=backbones.__getitem__, latency=FAST)
        found = [r for r in records if r["protocol"] != "latency"]
        if expected is not None:
            assert [(r["metric"], r["reason"]) for r in found] == [("skipped", expected)]
            continue
        assert found, f"{name} returned no records on {key}"
        assert not [r["reason"] for r in found if r["metric"] == "skipped"]
        values = [r["value"] for r in found]
        assert all(v is not None and np.isfinite(v) for v in values), name
        return  # it ran; the backbones after this one need not run it again
    if OWN_CLASSIFIER in protocol.requirements and "xception-ham10000" not in views:
        pytest.skip(f"{name} needs xception-ham10000, whose weights are not on this machine")
    pytest.fail(f"{name}: no generated backbone met its requirements, so it never ran")


def test_architecture_only_backbones_skip_every_protocol_with_the_weights_reason(setup):
    library, _, _ = setup
    records = run_benchmark(
        library, ["efficientnet-lite0"], "all", random_weights=True, latency=FAST
    )
    skips = {r["protocol"]: r["reason"] for r in records if r["protocol"] != "latency"}
    assert list(skips) == list(REGISTRY)
    assert set(skips.values()) == {ARCHITECTURE_ONLY}


def test_registry_entries_are_complete_and_names_unique():
    names = [n for p in REGISTRY.values() for n in (p.name, *p.aliases)]
    assert len(names) == len(set(names))
    assert parse_protocols("all") == list(REGISTRY)
    for p in REGISTRY.values():
        assert p.description and "\n" not in p.description and "\n" not in p.label
        assert p.paper is None or p.paper.endswith(")"), p.paper  # "Pham et al. (2025)"
        assert all(r.needs for r in p.requirements)
        assert [parse_protocols(alias) for alias in p.aliases] == [[p.name]] * len(p.aliases)


def test_register_protocol_refuses_a_name_or_alias_already_taken():
    before = dict(REGISTRY)
    for name, aliases in (("leave-one-out", ()), ("new-one", ("loo",))):
        with pytest.raises(ValueError, match="registered already"):
            register_protocol(name, aliases=aliases, description="x", paper=None)(lambda v: [])
    assert dict(REGISTRY) == before
