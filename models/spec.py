"""What the project knows about a backbone before loading it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Family = Literal["general", "medical", "dermatology", "classical"]
Library = Literal["open_clip", "transformers", "timm", "builtin"]
WeightsFrom = Literal["package", "hub", "local", "none"]

FAMILIES: tuple[str, ...] = ("general", "medical", "dermatology", "classical")


@dataclass(frozen=True)
class BackboneSpec:
    """A registry entry: enough to list, filter and load one backbone.

    ``source`` is what the library's own loader takes (an open_clip model name, a hub id, a
    timm name). ``arch`` names an offline-buildable architecture for random-weight
    (architecture-only) use; ``None`` means the architecture itself needs a download.
    ``unsupported`` holds the reason this code cannot load the backbone at all.
    """

    key: str
    name: str
    family: Family
    library: Library
    source: str
    dim: int
    input_size: int
    has_text: bool
    licence: str
    gated: bool = False
    has_classifier: bool = False  # a classification head of its own, beside the vectors
    params_m: float | None = None
    reference: str = ""
    weights_from: WeightsFrom = "hub"
    pretrained_tag: str | None = None
    arch: str | None = None
    tokenizer: str | None = None
    papers: tuple[str, ...] = ()  # keys of ../shared/reference/papers.md that use it
    unsupported: str | None = None
    notes: str = ""
    aliases: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def hub_repo(self) -> str | None:
        """The Hugging Face repository the weights come from, when there is one."""
        if self.weights_from != "hub":
            return None
        if self.source.startswith("hf-hub:"):
            return self.source.removeprefix("hf-hub:")
        if self.library == "transformers":
            return self.source
        return None  # open_clip/timm built-in tags: resolved through the library's own table
