"""Copy policies: a library rewritten as one image per photo, or each group of copies as a case."""

from __future__ import annotations

import pandas as pd
import pytest
from library_factory import save_image
from PIL import Image, ImageOps

from data_index import CaseLibrary
from data_index.audit import audited_manifest, find_duplicate_groups, write_audited_manifest


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    data = pytest.importorskip("skimage.data")
    root = tmp_path_factory.mktemp("copies")
    astro = Image.fromarray(data.astronaut()).resize((256, 256))
    coffee = Image.fromarray(data.coffee()).resize((256, 192))
    cat = Image.fromarray(data.chelsea()).resize((256, 192))
    save_image(astro, root / "impetigo" / "astro.jpg")
    save_image(ImageOps.mirror(astro), root / "herpes" / "astro-mirrored.jpg")  # conflict
    save_image(coffee, root / "cafe" / "coffee.jpg")
    save_image(coffee.rotate(90, expand=True), root / "cafe" / "coffee-turned.jpg")
    save_image(cat, root / "cat" / "chelsea.jpg")
    library = CaseLibrary.load(root)
    cases = library.cases
    report = find_duplicate_groups(cases["path"].tolist(), cases["label"].astype(str).tolist())
    assert len(report.groups) == 2 and len(report.conflicts) == 1
    return library, report


def test_one_per_group_keeps_one_copy_and_drops_conflicting_groups(audited):
    library, report = audited
    table = audited_manifest(library, report, policy="one-per-group")
    names = sorted(p.rsplit("/", 1)[-1] for p in table["path"])
    assert len(names) == 2 and "chelsea.jpg" in names
    assert sum(n.startswith("coffee") for n in names) == 1
    assert not any(n.startswith("astro") for n in names)


def test_group_as_case_keeps_every_image_with_one_case_per_group(audited, tmp_path):
    library, report = audited
    out = write_audited_manifest(library, report, policy="group-as-case", out=tmp_path / "m.csv")
    reloaded = CaseLibrary.load(out)
    assert len(reloaded) == len(library) == 5
    cases = reloaded.cases.assign(name=lambda t: t["path"].map(lambda p: p.rsplit("/", 1)[-1]))
    by_name = dict(zip(cases["name"], cases["case_id"], strict=True))
    assert by_name["coffee.jpg"] == by_name["coffee-turned.jpg"]
    assert by_name["astro.jpg"] == by_name["astro-mirrored.jpg"] != by_name["coffee.jpg"]
    assert by_name["chelsea.jpg"] not in (by_name["coffee.jpg"], by_name["astro.jpg"])
    assert set(pd.read_csv(out)["duplicate_group"].dropna()) == {"copy-group-0", "copy-group-1"}


def test_unknown_policy_is_refused(audited):
    library, report = audited
    with pytest.raises(ValueError, match="one-per-group"):
        audited_manifest(library, report, policy="keep-some")
