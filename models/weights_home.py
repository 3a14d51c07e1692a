"""The local weights folder, read by every module that finds or stores weights."""

from __future__ import annotations

import os
from pathlib import Path


def weights_dir() -> Path:
    """The local weights folder: ``$DERMSEARCH_WEIGHTS`` or ``~/.cache/dermsearch/weights``.

    A sub-folder named after a backbone key overrides the hub: open_clip folders hold
    ``open_clip_config.json`` + weights, transformers ones a ``save_pretrained`` output,
    timm ones ``config.json`` + ``model.safetensors``.
    """
    env = os.environ.get("DERMSEARCH_WEIGHTS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dermsearch" / "weights"
