"""What the Search tab says about a library's index before and after a first build: the wait is
announced before it starts, and a cancelled build says what was kept."""

from __future__ import annotations

from demo.state import AppState
from models import get_spec


def build_notice(state: AppState, library_path: str | None, backbone_key: str | None) -> str:
    """What the first search with this backbone will do when the library has no index for it
    yet (empty when it has one): the wait is said before it starts, not discovered."""
    if not library_path or not backbone_key:
        return ""
    try:
        status = state.index_ready(library_path, backbone_key)
        name, count = get_spec(backbone_key).name, len(state.library(library_path))
    except ValueError:
        return ""  # the library or backbone itself is at fault; the search says why
    if status.state == "ready":
        return ""
    if status.state == "stale":
        return (
            f"The library changed since its index for {name} was built: the next search "
            "updates it once (only new images are embedded), then later searches reuse it."
        )
    return (
        f"The first search with {name} builds this library's index once ({count} images to "
        "embed: on a CPU that takes a minute or more). Later searches reuse it. Cancelling "
        "keeps the images embedded so far for the next try."
    )


STOPPING = "Stopping the index build after the current batch of images…"
CANCELLED_BUILD = (
    "**Index build cancelled.** Nothing was saved as an index. The images embedded so far are "
    "kept, so the next search picks up where this one stopped."
)
