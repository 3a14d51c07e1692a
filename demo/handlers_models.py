"""Models tab: the backbone registry as a table, with what each needs to run on this machine."""

from __future__ import annotations

import pandas as pd

from demo.arguments import without_server_paths
from models import list_specs
from models.weights import availability, hub_repo

# Availability first after the key: it is what a visitor looks for; the long texts go last.
COLUMNS = [
    "key",
    "family",
    "here",
    "dim",
    "input px",
    "text tower",
    "gated",
    "licence",
    "weights from",
    "detail",
    "name",
]


def _weights_from(spec) -> str:
    if spec.weights_from == "package":
        return f"pip package {spec.options.get('package', spec.source)}"
    if spec.weights_from == "none":
        return "none (hand-made features)"
    if spec.weights_from == "local":
        return "a local folder"
    repo = hub_repo(spec)
    return f"HF Hub {repo}" if repo else f"{spec.library} {spec.source}"


def registry_table() -> pd.DataFrame:
    """Every registered backbone: what it is, where its weights come from, and whether it runs
    here (ready / download / gated / unsupported) with the reason."""
    rows = []
    for spec in list_specs():
        avail = availability(spec)
        rows.append(
            {
                "key": spec.key,
                "name": spec.name,
                "family": spec.family,
                "dim": spec.dim,
                "input px": spec.input_size,
                "text tower": "yes" if spec.has_text else "no",
                "licence": spec.licence,
                "gated": "yes" if spec.gated else "no",
                "weights from": _weights_from(spec),
                "here": avail.status,
                "detail": without_server_paths(avail.detail),
            }
        )
    table = pd.DataFrame(rows, columns=COLUMNS)
    order = {"ready": 0, "download": 1, "gated": 2, "unsupported": 3}
    return table.sort_values(
        by=["here", "family", "key"], key=lambda col: col.map(order) if col.name == "here" else col
    ).reset_index(drop=True)
