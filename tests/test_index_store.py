"""Saving is atomic: a process killed mid-save leaves the previous index live and loadable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from library_factory import make_folder_library

from data_index import CaseIndex, CaseLibrary
from data_index.store import KEEP_VERSIONS, POINTER, resolve_version
from models import load_backbone

REPO = Path(__file__).resolve().parents[1]

# The child loads the index, removes one case and saves, dying by SIGKILL at the chosen moment:
# while the cases table is being written, or after the new version is complete but before the
# pointer switches to it.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import pandas as pd
    from data_index import CaseIndex

    where, index_dir = sys.argv[1], sys.argv[2]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if where == "writing-cases":
        real = pd.DataFrame.to_parquet
        def to_parquet(self, path, *args, **kwargs):
            real(self, path, *args, **kwargs)
            with open(path, "r+b") as f:  # leave a half-written file behind, then die
                f.truncate(os.path.getsize(path) // 2)
            die()
        pd.DataFrame.to_parquet = to_parquet
    else:
        real_replace = os.replace
        def replace(src, dst):
            if os.path.basename(dst) == "CURRENT":
                die()
            real_replace(src, dst)
        os.replace = replace

    idx = CaseIndex.load(index_dir)
    idx.remove([int(idx.cases["key"].iloc[0])])
    idx.save()
    print("saved without being killed")
    """
)


@pytest.fixture
def saved_index(tmp_path):
    lib = CaseLibrary.load(make_folder_library(tmp_path / "lib", per_class=2))
    idx = CaseIndex.build(
        lib, load_backbone("color-texture"), out_dir=tmp_path / "idx", cache_dir=tmp_path / "emb"
    )
    return tmp_path / "idx", idx


@pytest.mark.parametrize("where", ["writing-cases", "before-pointer-switch"])
def test_killed_save_leaves_the_previous_index_loadable(saved_index, where):
    index_dir, before = saved_index
    live = resolve_version(index_dir)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, where, str(index_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    leftovers = {p.name for p in index_dir.iterdir()} - {live.name, POINTER}
    # a staging folder, or a complete but unreferenced version (and its unswitched pointer)
    assert leftovers and all(n.startswith((".staging-", "v-", ".CURRENT.")) for n in leftovers)
    after = CaseIndex.load(index_dir)
    assert resolve_version(index_dir) == live
    assert len(after) == len(before) and after.cases.equals(before.cases)

    # the next successful save cleans up what the crash left (orphan versions right away)
    after.remove([int(after.cases["key"].iloc[-1])])
    after.save()
    names = {p.name for p in index_dir.iterdir()}
    if where == "before-pointer-switch":
        assert not any(n.startswith("v-") for n in leftovers & names)
    assert len(CaseIndex.load(index_dir)) == len(before) - 1


def test_old_versions_are_pruned(saved_index):
    index_dir, idx = saved_index
    for _ in range(3):
        idx.remove([int(idx.cases["key"].iloc[0])])
        idx.save()
    versions = sorted(p.name for p in index_dir.iterdir() if p.name.startswith("v-"))
    assert len(versions) == KEEP_VERSIONS
    assert resolve_version(index_dir).name in versions
    assert len(CaseIndex.load(index_dir)) == len(idx)
