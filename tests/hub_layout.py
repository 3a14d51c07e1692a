"""Write a local folder exactly as the Hugging Face Hub stores an image dataset.

``data/<split>-0000i-of-0000n.parquet`` with the image as a struct (bytes, path), an integer
label and the ``huggingface`` schema metadata naming the ClassLabel, plus a dataset card. Made
with pyarrow alone, as the Hub's own parquet files are read, never through ``datasets``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from library_factory import PATTERNS, pattern_image

CARD = """---
license: cc-by-4.0
pretty_name: Generated patterns
---
# Generated patterns

## Citation

```bibtex
@misc{patterns2026, title={Generated patterns}}
```
"""


def write_hub_folder(root: Path, *, per_class: int = 3, shards: int = 2) -> Path:
    names = list(PATTERNS)
    images, labels, lesions, ages = [], [], [], []
    for c, label in enumerate(names):
        for i in range(per_class):
            buf = io.BytesIO()
            pattern_image(label, i).save(buf, format="PNG")
            images.append({"bytes": buf.getvalue(), "path": f"{label}-{i}.png"})
            labels.append(c)
            lesions.append(f"{label}-lesion-{i // 2}")
            ages.append(30.0 + i)
    features = {
        "image": {"_type": "Image"},
        "label": {"names": names, "_type": "ClassLabel"},
        "lesion_id": {"dtype": "string", "_type": "Value"},
        "age": {"dtype": "float64", "_type": "Value"},
    }
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table(
        {
            "image": pa.array(images, type=image_type),
            "label": pa.array(labels, pa.int64()),
            "lesion_id": pa.array(lesions, pa.string()),
            "age": pa.array(ages, pa.float64()),
        }
    ).replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    (root / "data").mkdir(parents=True)
    step = -(-len(table) // shards)
    for s in range(shards):
        part = table.slice(s * step, step)
        pq.write_table(part, root / "data" / f"train-{s:05d}-of-{shards:05d}.parquet")
    (root / "README.md").write_text(CARD)
    return root
