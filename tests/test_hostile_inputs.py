"""Hostile and broken inputs, generated here (never committed), first against the library code
and then through the real endpoints of a running app, as an outside caller meets them.

Slow parts (inputs at the default limits, which take a while to generate) are marked ``slow``:
    .venv/bin/python -m pytest -m slow tests/test_hostile_inputs.py
"""

from __future__ import annotations

import io
import json
import os
import struct
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data_index import CaseLibrary
from data_index import archive as A
from data_index.library import OUTSIDE
from models import limits, open_image, to_rgb
from tests.library_factory import PATTERNS, pattern_image, save_image

BACKBONE = "color-texture"


# --- generated inputs ---------------------------------------------------------------------------
def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's
    shape: a few bytes on disk, gigabytes once decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def zip_of(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def write_library(root: Path, *, per_class: int = 4) -> Path:
    for label in PATTERNS:
        for i in range(per_class):
            save_image(
                pattern_image(label, seed=100 * len(label) + i, size=64), root / label / f"{i}.png"
            )
    return root


def library_zip(path: Path) -> Path:
    members = []
    for label in list(PATTERNS)[:2]:
        for i in range(3):
            buffer = io.BytesIO()
            pattern_image(label, seed=7 + i, size=48).save(buffer, format="PNG")
            members.append((f"clinic/{label}/{i}.png", buffer.getvalue()))
    return zip_of(path, members)


# --- images: bounds and modes -------------------------------------------------------------------
def test_pixel_bomb_is_refused_from_its_header(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(60_000, 60_000))  # 3.6 gigapixels in 100 bytes
    with pytest.raises(ValueError, match="megapixels"):
        open_image(bomb)
    check = CaseLibrary.load(_one_class_folder(tmp_path / "lib", bomb)).report.unreadable
    assert check and "megapixels" in check[0].reason


def test_pixel_limit_is_configurable(tmp_path, monkeypatch):
    path = save_image(pattern_image("red-stripes", 1, size=64), tmp_path / "a.png")
    assert open_image(path).size == (64, 64)
    monkeypatch.setattr(limits, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match="64 x 64 pixels"):
        open_image(path)


def test_devices_fifos_and_oversized_files_are_never_read(tmp_path, monkeypatch):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    with pytest.raises(ValueError, match="not a regular file"):
        open_image(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        open_image("/dev/zero")
    big = save_image(pattern_image("red-stripes", 1, size=64), tmp_path / "big.png")
    monkeypatch.setattr(limits, "MAX_IMAGE_BYTES", 100)
    with pytest.raises(ValueError, match="limit per image"):
        open_image(big)


def test_a_library_with_a_fifo_and_a_device_link_lists_them_as_unreadable(tmp_path):
    lib = write_library(tmp_path / "lib", per_class=2)
    os.mkfifo(lib / "red-stripes" / "pipe.png")
    (lib / "red-stripes" / "zero.png").symlink_to("/dev/zero")
    library = CaseLibrary.load(lib)
    reasons = {p.item: p.reason for p in library.report.unreadable}
    assert "not a regular file" in reasons["red-stripes/pipe.png"]
    assert "not a regular file" in reasons["red-stripes/zero.png"]
    assert len(library) == 2 * len(PATTERNS)


def mode_variants(original: Image.Image) -> dict[str, bytes]:
    """The same picture in the modes clinical exports and phones produce, as files' bytes."""
    out = {}
    grey = np.asarray(original.convert("L"), dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(grey * 257, mode="I;16").save(buffer, format="PNG")
    out["16-bit"] = buffer.getvalue()
    buffer = io.BytesIO()
    original.convert("CMYK").save(buffer, format="JPEG", quality=95)
    out["cmyk"] = buffer.getvalue()
    buffer = io.BytesIO()
    original.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(buffer, format="PNG")
    out["palette"] = buffer.getvalue()
    rgba = original.convert("RGBA")
    rgba.putalpha(255)
    buffer = io.BytesIO()
    rgba.save(buffer, format="PNG")
    out["rgba"] = buffer.getvalue()
    # Stored turned a quarter, with an EXIF tag saying how to turn it back upright.
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    original.transpose(Image.Transpose.ROTATE_90).save(
        buffer, format="JPEG", quality=95, exif=exif.tobytes()
    )
    out["exif-rotated"] = buffer.getvalue()
    return out


def test_to_rgb_handles_every_mode():
    original = pattern_image("blue-checks", 3, size=64)
    for mode, data in mode_variants(original).items():
        rgb = to_rgb(Image.open(io.BytesIO(data)))
        assert rgb.mode == "RGB" and rgb.size == (64, 64), mode
        assert np.asarray(rgb).mean() < 250, f"{mode} came out white"
    transparent = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert np.asarray(to_rgb(transparent)).min() == 255  # composited on white, not black


# --- manifests ----------------------------------------------------------------------------------
def _one_class_folder(root: Path, image: Path) -> Path:
    (root / "only").mkdir(parents=True)
    (root / "only" / image.name).write_bytes(image.read_bytes())
    save_image(pattern_image("red-stripes", 1), root / "other" / "a.png")
    return root


def test_manifest_rows_outside_the_roots_are_refused_without_touching_them(tmp_path):
    lib = write_library(tmp_path / "lib", per_class=2)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "exists.png").write_bytes(png_claiming(4, 4))
    # A link loop: resolving it raises, so a refusal proves the path was never resolved.
    (elsewhere / "loop.png").symlink_to(elsewhere / "loop.png")
    uploaded = tmp_path / "upload"
    uploaded.mkdir()
    rows = [
        (str(lib / "red-stripes" / "0.png"), "red"),
        (str(elsewhere / "exists.png"), "x"),
        (str(elsewhere / "missing.png"), "x"),
        (str(elsewhere / "loop.png"), "x"),
        ("../elsewhere/exists.png", "x"),
        ("/etc/passwd", "x"),
        ("/dev/zero", "x"),
    ]
    manifest = uploaded / "m.csv"
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(manifest, index=False)
    library = CaseLibrary.load(manifest, allowed_roots=[lib])
    assert len(library) == 1
    problems = library.report.problems
    assert [p.reason for p in problems] == [OUTSIDE] * 6
    # Existing and missing files get the same words: nothing says which exist.
    assert [p.item for p in problems] == [f"row {i}" for i in range(3, 9)]
    assert library.report.unreadable == []


def test_manifest_size_and_rows_are_bounded(tmp_path, monkeypatch):
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"path": [f"{i}.png" for i in range(101)], "label": "a"}).to_csv(
        manifest, index=False
    )
    monkeypatch.setattr(limits, "MAX_MANIFEST_ROWS", 100)
    with pytest.raises(ValueError, match="more than 100 rows"):
        CaseLibrary.load(manifest)
    monkeypatch.setattr(limits, "MAX_MANIFEST_BYTES", 100)
    with pytest.raises(ValueError, match="the limit is"):
        CaseLibrary.load(manifest)


@pytest.mark.slow
def test_a_manifest_past_the_default_row_limit_is_refused_before_any_file(tmp_path):
    manifest = tmp_path / "m.csv"
    n = limits.MAX_MANIFEST_ROWS + 1
    pd.DataFrame({"path": [f"/dev/zero-{i}" for i in range(n)], "label": "a"}).to_csv(
        manifest, index=False
    )
    with pytest.raises(ValueError, match="rows, the limit"):
        CaseLibrary.load(manifest)


# --- zips ---------------------------------------------------------------------------------------
def _no_staging_left(root: Path) -> bool:
    return not root.exists() or not any(p.name.startswith(".staging-") for p in root.iterdir())


def test_many_small_zero_members_are_a_bomb_too(tmp_path):
    members = [(f"clinic/a/{i}.png", b"\0" * (1 << 20)) for i in range(20)]
    bomb = zip_of(tmp_path / "bomb.zip", members)
    with pytest.raises(A.UnsafeArchive, match="compression ratio"):
        A.extract_zip(bomb, dest_root=tmp_path / "out")
    assert _no_staging_left(tmp_path / "out")


def test_extraction_quota_cleans_its_staging_on_refusal(tmp_path, monkeypatch):
    archive = library_zip(tmp_path / "clinic.zip")
    monkeypatch.setattr(A, "MAX_TOTAL_BYTES", 200)
    with pytest.raises(A.UnsafeArchive):
        A.extract_zip(archive, dest_root=tmp_path / "out")
    assert _no_staging_left(tmp_path / "out")


def test_empty_zip_says_so_without_a_server_path(tmp_path):
    empty = zip_of(tmp_path / "empty.zip", [])
    with pytest.raises(ValueError) as info:
        A.extract_zip(empty, dest_root=tmp_path / "out")
    assert "holds no files" in str(info.value) and "/" not in str(info.value)
    assert _no_staging_left(tmp_path / "out")


@pytest.mark.slow
def test_a_zip_past_the_member_limit_is_refused_before_extraction(tmp_path):
    members = [(f"c/a/{i}.png", b"x") for i in range(limits.MAX_ZIP_FILES + 1)]
    archive = zip_of(tmp_path / "many.zip", members)
    with pytest.raises(A.UnsafeArchive, match="the limit is"):
        A.extract_zip(archive, dest_root=tmp_path / "out")
    assert _no_staging_left(tmp_path / "out")


# --- degenerate libraries -----------------------------------------------------------------------
def test_single_class_and_thin_classes_warn(tmp_path):
    one = tmp_path / "one"
    for i in range(3):
        save_image(pattern_image("red-stripes", i), one / "red" / f"{i}.png")
    report = CaseLibrary.load(one).report
    assert any("single class" in w for w in report.warnings)
    assert "Warning: The library has a single class" in report.format_text()
    thin = write_library(tmp_path / "thin", per_class=2)
    for p in list((thin / "green-dots").iterdir())[1:]:
        p.unlink()
    warnings = CaseLibrary.load(thin).report.warnings
    assert any("fewer than 2 cases (green-dots)" in w for w in warnings)
    assert CaseLibrary.load(write_library(tmp_path / "fine", per_class=2)).report.warnings == []


# --- through a running app ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """app.py in its own process, with its own cache, a generated library and short lifetimes
    for private uploads; a private upload left by an earlier run waits in the cache."""
    from benchmarks.perf.app_process import app_process

    base = tmp_path_factory.mktemp("hostile")
    lib = write_library(base / "libraries" / "clinic")
    (lib / ".secret.txt").write_text("not for visitors")
    (base / "libraries" / "beside.txt").write_text("the library's parent folder")
    cache = base / "cache"
    leftover = cache / "uploads" / "sessions" / "earlier" / "photos.csv"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("path,label\n")
    env = {
        "DERMSEARCH_CACHE": str(cache),
        "DERMSEARCH_SHARED": str(base / "no-shared"),
        "DERMSEARCH_LIBRARIES": "",
        "DERMSEARCH_MAX_MANIFEST_ROWS": "1000",
    }
    with app_process(
        library=lib,
        backbone=BACKBONE,
        log=base / "app.log",
        extra_args=["--upload-ttl-minutes", "0.2"],
        env=env,
    ) as (url, _proc):
        yield {"url": url, "base": base, "lib": lib, "cache": cache, "leftover": leftover}


def client(app):
    from gradio_client import Client

    return Client(app["url"], verbose=False, analytics_enabled=False, download_files=False)


def app_error(call) -> str:
    """The message a caller gets for a refused request (it must have one)."""
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        call()
    message = str(info.value)
    assert message.strip() and "Traceback" not in message
    return message


def no_server_path(text: str, app) -> None:
    # Gradio's own cache folder appears in the file outputs it sends (that is its protocol);
    # libraries, the app's cache and the checkout never may.
    for secret in (str(app["base"]), str(app["cache"]), "/root", "/work"):
        assert secret not in text


def fetch(app, path: str) -> int:
    try:
        with urllib.request.urlopen(f"{app['url']}gradio_api/file={path}", timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as err:
        return err.code


def test_restart_deletes_private_uploads_of_earlier_runs(app):
    assert not app["leftover"].exists()


def test_config_names_libraries_by_id_and_holds_no_server_path(app):
    with urllib.request.urlopen(f"{app['url']}config", timeout=30) as reply:
        config = reply.read().decode()
    no_server_path(config, app)
    dropdown = next(
        c
        for c in json.loads(config)["components"]
        if c.get("props", {}).get("elem_id") == "library-path"
    )
    assert dropdown["props"]["value"] == "clinic"


@pytest.mark.parametrize(
    "where",
    [
        "lib/red-stripes/0.png",
        "lib/.secret.txt",
        "base/libraries/beside.txt",
        "cache/indexes",
        "cache/uploads",
        "base/app.log",
    ],
)
def test_library_files_and_cache_internals_are_not_served(app, where):
    first, rest = where.split("/", 1)
    target = Path(app[first]) / rest
    assert fetch(app, str(target)) in (403, 404)


def test_index_and_embeddings_are_not_served_after_a_build(app):
    c = client(app)
    c.predict("clinic", BACKBONE, api_name="/build_index")
    for folder in ("indexes", "embeddings"):
        files = [p for p in (app["cache"] / folder).rglob("*") if p.is_file()]
        assert files, folder
        assert all(fetch(app, str(p)) == 403 for p in files[:5])


def test_libraries_are_named_by_id_or_name_never_by_path(app):
    c = client(app)
    message = app_error(lambda: c.predict(str(app["lib"]), api_name="/select_library"))
    assert "Unknown library" in message and "clinic" in message
    no_server_path(message, app)
    summary = c.predict("clinic", api_name="/select_library")
    no_server_path(json.dumps(summary, default=str), app)
    message = app_error(lambda: c.predict(["clinic"], api_name="/select_library"))
    assert "library must be text" in message


@pytest.mark.parametrize("backbone", [5, None, "", "no-such-backbone"])
def test_build_index_arguments_are_checked(app, backbone):
    c = client(app)
    message = app_error(lambda: c.predict("clinic", backbone, api_name="/build_index"))
    assert "backbone" in message.lower() or "choices: ['color-texture'" in message
    no_server_path(message, app)


def _search(c, path: Path, *, k: object = 3, label: object = None):
    from gradio_client import handle_file

    return c.predict(
        handle_file(str(path)), "clinic", BACKBONE, k, "cosine", label, api_name="/search_photo"
    )


def _top_caption(outputs) -> str:
    gallery = next(o for o in outputs if isinstance(o, list))
    assert gallery, "no results"
    return str(gallery[0].get("caption")).rsplit(" · ", 1)[-1]  # the case, not its score


def test_every_image_mode_is_decoded_by_our_to_rgb_through_the_endpoint(app, tmp_path):
    c = client(app)
    # A new photo of the class, not a library file: a library photo would be recognised as
    # itself and left out, and whether a lossy mode (palette) still counts as its copy is the
    # copy check's business, not the decoder's.
    original_path = save_image(pattern_image("blue-checks", 777, size=64), tmp_path / "new.png")
    # The diagnosis of the nearest case: lossy modes (JPEG, palette) may reorder near-equal
    # cases of one class, while a mis-decoded photo (a white 16-bit image) leaves the class.
    expected = _top_caption(_search(c, original_path)).split("/")[0]
    for mode, data in mode_variants(Image.open(original_path).convert("RGB")).items():
        query = tmp_path / f"{mode}.{'jpg' if mode in ('cmyk', 'exif-rotated') else 'png'}"
        query.write_bytes(data)
        assert _top_caption(_search(c, query)).split("/")[0] == expected, mode


def test_search_answer_names_cases_without_server_paths(app, tmp_path):
    """The JSON summary and every other output name hits by case id; a server path there would
    also send a client to fetch a library file, which is refused."""
    query = save_image(pattern_image("green-dots", 778, size=64), tmp_path / "q.png")
    outputs = _search(client(app), query)
    report = outputs[-1]
    assert report["hits"] and all("path" not in hit for hit in report["hits"])
    assert all(hit["case_id"] for hit in report["hits"])
    no_server_path(json.dumps([o for o in outputs if not isinstance(o, list)], default=str), app)


@pytest.mark.parametrize("k", ["ten", None, [3], 0, 51])
def test_search_photo_k_of_the_wrong_type_gets_a_sentence(app, k):
    c = client(app)
    # The photo is kept and the search refused with the reason (in the summary or an error).
    message = _search_outcome(c, app["lib"] / "red-stripes" / "0.png", k=k)
    assert "k must be" in message
    no_server_path(message, app)


def test_pixel_bomb_query_is_refused_through_the_endpoint(app, tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(60_000, 60_000))
    c = client(app)
    outputs_or_message = _search_outcome(c, bomb)
    assert "megapixels" in outputs_or_message or "too large" in outputs_or_message
    no_server_path(outputs_or_message, app)


def _search_outcome(c, path: Path, *, k: object = 3) -> str:
    """The refusal a caller sees: an error, or the 'not searched' summary of a kept photo."""
    from gradio_client.exceptions import AppError

    try:
        return json.dumps(_search(c, path, k=k), default=str)
    except AppError as err:
        return str(err)


def _upload(c, path: Path, name: str = ""):
    from gradio_client import handle_file

    return c.predict(handle_file(str(path)), name, api_name="/upload_library")


def _cache_has_no_leftovers(app) -> None:
    for p in app["cache"].rglob("*"):
        assert not p.name.startswith((".staging-", ".incoming-")), p


def test_hostile_uploads_are_refused_with_a_sentence_and_leave_nothing(app, tmp_path):
    c = client(app)
    elsewhere = app["base"] / "elsewhere.png"
    save_image(pattern_image("red-stripes", 9), elsewhere)
    outside = tmp_path / "outside.csv"
    outside.write_text(f"path,label\n{elsewhere},x\n/etc/passwd,x\n/dev/zero,x\n../../x.png,x\n")
    huge = tmp_path / "huge.csv"
    pd.DataFrame({"path": [f"{i}.png" for i in range(1001)], "label": "a"}).to_csv(
        huge, index=False
    )
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("this is text")
    cases = {
        "empty": (zip_of(tmp_path / "empty.zip", []), "holds no files"),
        "bomb": (
            zip_of(tmp_path / "bomb.zip", [(f"c/a/{i}.png", b"\0" * (1 << 20)) for i in range(8)]),
            "compression ratio",
        ),
        "links-out": (outside, "outside the libraries"),
        "rows": (huge, "more than 1,000 rows"),
        "not-a-zip": (not_zip, "not a readable zip"),
    }
    before = sorted(p.name for p in (app["cache"] / "uploads").rglob("*") if p.is_file())
    for name, (path, words) in cases.items():
        message = app_error(lambda p=path: _upload(c, p))
        assert words in message, (name, message)
        assert "Errno" not in message and "staging" not in message, name
        no_server_path(message, app)
    _cache_has_no_leftovers(app)
    assert sorted(p.name for p in (app["cache"] / "uploads").rglob("*") if p.is_file()) == before


def test_an_upload_is_private_to_its_session_and_deleted_when_its_time_is_up(app, tmp_path):
    owner, other = client(app), client(app)
    chosen, message, *_ = _upload(owner, library_zip(tmp_path / "private.zip"), "My clinic")
    ident = chosen["value"] if isinstance(chosen, dict) else chosen
    assert "Only this browser session sees it" in message
    assert ident.startswith("My-clinic-") and len(ident) > len("My-clinic-") + 10
    with urllib.request.urlopen(f"{app['url']}config", timeout=30) as reply:
        assert ident not in reply.read().decode()
    refused = app_error(lambda: other.predict("My clinic", api_name="/select_library"))
    assert "Unknown library" in refused and ident not in refused
    stored = [p for p in (app["cache"] / "uploads" / "sessions").rglob("*.png")]
    assert stored and all(fetch(app, str(p)) == 403 for p in stored)
    owner.predict(ident, api_name="/select_library")  # the owner may use it
    # The lifetime is 12 s here; the sweeper runs every 6 s.
    deadline = time.monotonic() + 120
    while any(p.exists() for p in stored) and time.monotonic() < deadline:
        time.sleep(2)
    assert not any(p.exists() for p in stored)
    gone = app_error(lambda: owner.predict(ident, api_name="/select_library"))
    assert "Unknown library" in gone


# --- the app's own checks, without a server -----------------------------------------------------
def test_catalog_keeps_uploads_to_their_session(tmp_path, monkeypatch):
    from demo.catalog import LibraryCatalog

    monkeypatch.setenv("DERMSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DERMSEARCH_SHARED", str(tmp_path / "no-shared"))
    monkeypatch.setenv("DERMSEARCH_LIBRARIES", "")
    lib = write_library(tmp_path / "clinic", per_class=1)
    catalog = LibraryCatalog(startup=[str(lib)], upload_ttl_s=60)
    assert catalog.choices() == [("clinic (configured)", "clinic")]
    folder = catalog.new_upload_folder()
    upload = write_library(folder / "mine", per_class=1)
    entry = catalog.add_upload(upload, name="mine", owner="session-a")
    assert catalog.choices(owned=[entry.id])[-1] == ("mine (uploaded, only you)", entry.id)
    assert entry.id not in {i for _, i in catalog.choices()}
    assert catalog.resolve(entry.id) == str(upload.resolve())
    with pytest.raises(ValueError, match="Unknown library") as info:
        catalog.resolve("mine")  # a private upload has no public name
    assert entry.id not in str(info.value)
    with pytest.raises(ValueError, match="server paths are not accepted"):
        catalog.resolve(str(lib))
    with pytest.raises(TypeError, match="library must be text"):
        catalog.resolve(["clinic"])
    assert catalog.resolve("Clinic") == str(lib.resolve())
    assert catalog.sweep_expired(now=entry.created + 30) == 0
    assert catalog.forget_session("session-b") == 0 and upload.exists()
    assert catalog.forget_session("session-a") == 1 and not folder.exists()
    other = catalog.add_upload(write_library(catalog.new_upload_folder() / "x", per_class=1),
                               name="x", owner="session-c")  # fmt: skip
    assert catalog.sweep_expired(now=other.created + 61) == 1
    with pytest.raises(ValueError, match="Unknown library"):
        catalog.resolve(other.id)


@pytest.mark.parametrize(
    ("value", "ok"),
    [(3, True), (3.0, True), (2.5, False), ("3", False), (None, False), (True, False),
     ([3], False), (0, False), (51, False), (float("nan"), False)],
)  # fmt: skip
def test_whole_number_table(value, ok):
    from demo.arguments import whole_number

    if ok:
        assert whole_number(value, name="k", low=1, high=50) == 3
    else:
        with pytest.raises((TypeError, ValueError), match=r"^k must be"):
            whole_number(value, name="k", low=1, high=50)


def test_messages_lose_server_paths():
    from demo.arguments import without_server_paths as scrub

    assert scrub("[Errno 2] No such file: '/srv/cache/.staging-1/.extracted'") == (
        "[Errno 2] No such file: '.extracted'"
    )
    assert scrub("The library /data/clinic/manifest.csv is empty.") == (
        "The library manifest.csv is empty."
    )
    assert scrub("ratio 3/4 and http://host/a/b stay") == "ratio 3/4 and http://host/a/b stay"


def test_result_tiles_are_written_once(tmp_path):
    from demo.tile_cache import save_pil_once

    tile = pattern_image("green-dots", 2, size=32)
    first = Path(save_pil_once(tile, str(tmp_path), format="jpeg"))
    inode = first.stat().st_ino
    second = Path(save_pil_once(tile, str(tmp_path), format="jpeg"))
    assert first == second and second.stat().st_ino == inode  # reused, not rewritten
    assert [p.name for p in first.parent.iterdir()] == ["image.jpeg"]  # no staging left
