"""`python -m data_index`: exit codes and messages, through a real subprocess and in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from library_factory import PATTERNS, make_folder_library, pattern_image, save_image

from data_index.__main__ import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A library, and a cache root that both the subprocesses and main() use."""
    root = tmp_path_factory.mktemp("cli")
    make_folder_library(root / "lib", per_class=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DERMSEARCH_CACHE", str(root / "cache"))
        yield root


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "data_index", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def call(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_build_search_update_via_subprocess(workspace, capsys):
    lib, out = workspace / "lib", workspace / "idx"
    build = ["build", "--library", str(lib), "--backbone", "color-texture", "--out", str(out)]
    built = run_cli(*build)
    assert built.returncode == 0, built.stderr
    assert "Built: 8 added, 0 removed" in built.stdout and "8 case(s)" in built.stdout

    query = lib / "green-dots" / "green-dots-1.jpg"
    found = run_cli("search", "--index", str(out), "--image", str(query), "-k", "3")
    assert found.returncode == 0, found.stderr
    lines = found.stdout.strip().splitlines()
    # The photo is a library case: it is said so, and left out of the hits.
    assert lines[0] == (
        "This photo is in the library as green-dots/green-dots-1.jpg; it and its copies are "
        "left out of the results and the vote."
    )
    hits = lines[1:4]
    assert hits[0].split()[:4] == ["1", "similarity", hits[0].split()[2], "green-dots"]
    assert not any(line.endswith(str(query)) for line in hits)
    assert lines[4].startswith(("Likely diagnoses (90% coverage on this library): ", "No close"))

    save_image(pattern_image("green-dots", 42), lib / "green-dots" / "added.jpg")
    code, stdout, _ = call(capsys, *build)  # in-process: same code, no second torch start-up
    assert code == 0 and "Updated: 1 added, 0 removed" in stdout


def test_search_json_gives_hits_vote_prediction_set_and_flags(workspace, capsys, tmp_path):
    lib, out = workspace / "lib", workspace / "idx-json"
    code, _, err = call(
        capsys, "build", "--library", str(lib), "--backbone", "color-texture", "--out", str(out)
    )
    assert code == 0, err
    # A flipped, re-encoded copy of a library photo: not the same file, found as a copy.
    query = save_image(
        pattern_image("blue-checks", 1).transpose(0).resize((60, 60)), tmp_path / "copy.jpg"
    )
    code, stdout, err = call(
        capsys, "search", "--index", str(out), "--image", str(query), "-k", "3", "--json"
    )
    assert code == 0, err
    report = json.loads(stdout)
    assert report["query_in_library"] == "blue-checks/blue-checks-1.jpg"
    assert [set(h) for h in report["hits"]] == [{"rank", "label", "score", "case_id", "path"}] * 3
    assert report["query_in_library"] not in {h["case_id"] for h in report["hits"]}
    assert report["vote"]["label"] in {h["label"] for h in report["hits"]}
    assert report["prediction_set"]["coverage"] == 0.9
    assert set(report["prediction_set"]["labels"]) <= set(PATTERNS)
    flag = report["low_similarity"]
    assert flag["flag"] is (flag["nearest_similarity"] < flag["threshold"])
    assert 0 < flag["threshold"] <= 1


def test_search_json_says_which_variant_ranked_the_hits(workspace, capsys):
    lib, out = workspace / "lib", workspace / "idx-variant"
    code, _, err = call(
        capsys, "build", "--library", str(lib), "--backbone", "color-texture", "--out", str(out)
    )
    assert code == 0, err
    query = str(lib / "green-dots" / "green-dots-0.jpg")
    search = ["search", "--index", str(out), "--image", query, "-k", "3", "--json"]
    code, stdout, err = call(capsys, *search, "--variant", "dba")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["variant"] == "dba" and len(report["hits"]) == 3
    fitted = list((workspace / "idx-variant--variants" / "dba").iterdir())
    assert [p.name for p in fitted] and (fitted[0] / "index.usearch").is_file()
    code, stdout, err = call(capsys, *search, "--variant", "k-reciprocal")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["variant"] == "k-reciprocal" and len(report["hits"]) == 3
    scores = [h["score"] for h in report["hits"]]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert not (workspace / "idx-variant--variants" / "k-reciprocal").exists()  # nothing stored
    code, stdout, _ = call(capsys, *search)
    assert code == 0 and json.loads(stdout)["variant"] is None
    code, _, err = call(capsys, *search, "--variant", "qe")
    assert code == 2 and "adapter-lda, tta-flip, aqe, dba, k-reciprocal" in err


def test_errors_exit_2_with_a_sentence_via_subprocess(workspace):
    proc = run_cli("build", "--library", str(workspace / "lib"), "--backbone", "no-such-model")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: Unknown backbone 'no-such-model'. Valid keys:")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_validate_exit_codes_and_report(workspace, capsys, tmp_path):
    code, out, _ = call(capsys, "validate", "--library", str(workspace / "lib"))
    assert code == 0 and "pixels decoded" in out and out.rstrip().endswith("OK")

    broken = make_folder_library(tmp_path / "broken", per_class=1)
    (broken / "red-stripes" / "fake.jpg").write_text("hello")
    code, out, _ = call(capsys, "validate", "--library", str(broken))
    assert code == 1 and "red-stripes/fake.jpg: not a recognised image" in out

    code, out, _ = call(capsys, "validate", "--library", str(broken), "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and report["usable"] == 4
    assert report["unreadable"] == [
        {"item": "red-stripes/fake.jpg", "reason": "not a recognised image"}
    ]


def test_info_add_remove_and_default_output_dir(workspace, capsys, tmp_path):
    lib = make_folder_library(tmp_path / "mini", per_class=1)
    code, out, _ = call(capsys, "build", "--library", str(lib), "--backbone", "color-texture")
    default = workspace / "cache" / "indexes" / "mini--color-texture"
    assert code == 0 and f"Index {default}:" in out

    code, out, _ = call(capsys, "info", "--index", str(default), "--json")
    info = json.loads(out)
    assert code == 0 and info["count"] == 4 and info["backbone_key"] == "color-texture"

    extra = save_image(pattern_image("red-stripes", 9), tmp_path / "extra.jpg")
    code, out, _ = call(
        capsys, "add", "--index", str(default), "--label", "red-stripes", str(extra)
    )
    assert code == 0 and "Added 1 image(s) as keys 4" in out
    code, out, _ = call(capsys, "remove", "--index", str(default), "--key", "4", "--key", "0")
    assert code == 0 and "Removed 2 case(s); 3 remain." in out
    code, out, _ = call(capsys, "info", "--index", str(default))
    assert code == 0 and "3 x f32" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["build", "--library", "{tmp}/nowhere", "--backbone", "color-texture"], "does not exist"),
        (["build", "--library", "{tmp}/empty", "--backbone", "color-texture"], "no usable images"),
        (["search", "--index", "{tmp}/nowhere", "--image", "x.jpg"], "No index at"),
        (["search", "--index", "{idx}", "--image", "{tmp}/missing.jpg"], "does not exist"),
        (["search", "--index", "{idx}", "--text", "scaly red patch"], "has no text tower"),
        (
            [
                "search",
                "--index",
                "{idx}",
                "--image",
                "{lib}/red-stripes/red-stripes-0.jpg",
                "-k",
                "0",
            ],
            "-k must be at least 1",
        ),
        (
            ["build", "--library", "{lib}", "--backbone", "efficientnet-lite0", "--out", "{idx}"],
            "pass --rebuild",
        ),
        (["info", "--index", "{lib}"], "not a case index"),
    ],
)
def test_bad_input_exits_2_with_a_sentence(workspace, capsys, tmp_path, args, message):
    idx = workspace / "idx-errors"
    if not idx.exists():
        assert (
            main(
                [
                    "build",
                    "--library",
                    str(workspace / "lib"),
                    "--backbone",
                    "color-texture",
                    "--out",
                    str(idx),
                ]
            )
            == 0
        )
    (tmp_path / "empty" / "red").mkdir(parents=True)
    (tmp_path / "empty" / "red" / "zero.jpg").write_bytes(b"")
    capsys.readouterr()
    filled = [a.format(tmp=tmp_path, idx=idx, lib=workspace / "lib") for a in args]
    code, _, err = call(capsys, *filled)
    assert code == 2 and err.startswith("error: ") and message in err, err


def test_validate_lists_copies_and_label_conflicts(tmp_path, capsys, monkeypatch):
    data = pytest.importorskip("skimage.data")
    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    from PIL import Image, ImageOps

    lib = tmp_path / "audited"
    photo = Image.fromarray(data.astronaut()).resize((256, 256))
    other = Image.fromarray(data.coffee()).resize((256, 192))
    for label, image in (("impetigo", photo), ("herpes", ImageOps.mirror(photo)), ("cafe", other)):
        save_image(image, lib / label / f"{label}.jpg")
    code, out, _ = call(capsys, "validate", "--library", str(lib))
    assert code == 1
    assert "1 groups hold 2 images: 2 distinct photos among 3" in out
    assert "LABEL CONFLICT group 0" in out and "impetigo" in out and "herpes" in out
    assert "Label conflicts: 1 photo(s)" in out
    code, out, _ = call(capsys, "validate", "--library", str(lib), "--no-audit")
    assert code == 0 and "duplicate audit" not in out
