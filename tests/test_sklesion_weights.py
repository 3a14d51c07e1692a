"""xception-ham10000 without the sklesion package: the weights folder and the fetched wheel.

Real pip, real files: the package is hidden by making its lookup return nothing, the fetch
goes through ``pip download`` with a hash pin.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from models import WeightsUnavailable, get_spec
from models import sklesion_weights as sw
from models.weights import availability

INSTALLED = sw.installed_model_file()
needs_installed = pytest.mark.skipif(
    INSTALLED is None, reason="sklesion is not installed: no model file to copy from"
)


@pytest.fixture
def no_package(monkeypatch, tmp_path):
    """An empty weights folder and no installed sklesion (what a Space starts with)."""
    monkeypatch.setenv("DERMSEARCH_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setattr(sw, "installed_model_file", lambda: None)
    return tmp_path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@needs_installed
def test_weights_folder_is_used_when_the_package_is_absent(no_package):
    folder = no_package / "weights" / "xception-ham10000"
    folder.mkdir(parents=True)
    for name in sw.FILES:
        (folder / name).symlink_to(INSTALLED.with_name(name))
    assert sw.sklesion_model_file(fetch=False) == folder / "model.keras"
    avail = availability(get_spec("xception-ham10000"))
    assert avail.ready and str(folder) in avail.detail


def test_nothing_here_and_no_fetch_names_both_ways(no_package):
    with pytest.raises(WeightsUnavailable, match=r"pip install --no-deps sklesion==0\.2\.2") as err:
        sw.sklesion_model_file(fetch=False)
    assert "xception-ham10000" in str(err.value) and "model_props.pkl" in str(err.value)


def test_no_index_means_not_ready(no_package, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    avail = availability(get_spec("xception-ham10000"))
    assert avail.status == "download" and "sklesion==0.2.2" in avail.detail


def test_a_wheel_with_another_hash_is_refused_and_nothing_is_kept(no_package, monkeypatch):
    links, index = no_package / "links", no_package / "empty-index"
    links.mkdir()
    index.mkdir()
    with zipfile.ZipFile(links / sw.WHEEL, "w") as wheel:
        wheel.writestr("sklesion/model.keras", b"not the model")
        wheel.writestr("sklesion/model_props.pkl", b"not the props")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_INDEX_URL", index.as_uri())
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", index.as_uri())
    with pytest.raises(WeightsUnavailable, match="DO NOT MATCH THE HASHES"):
        sw.sklesion_model_file()
    weights = no_package / "weights"
    assert sw.cached_model_file() is None
    assert not weights.exists() or not any(weights.rglob("model.keras"))


@pytest.mark.slow
def test_first_use_fetches_the_pinned_wheel_from_pypi(no_package):
    try:
        path = sw.sklesion_model_file()
    except WeightsUnavailable as err:
        if "could not fetch" in str(err):
            pytest.skip(f"PyPI is not reachable from here: {err}")
        raise
    assert path == no_package / "weights" / "xception-ham10000" / "model.keras"
    assert sw.cached_model_file() == path
    assert not list(path.parent.parent.glob(".sklesion-*"))  # the work folder is gone
    if INSTALLED is not None:
        for name in sw.FILES:
            assert _sha(path.with_name(name)) == _sha(INSTALLED.with_name(name))
