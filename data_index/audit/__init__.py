"""The copy audit: which images of a library are copies of one photo, and what to do about them.

- ``core``: the method; ``find_duplicate_groups`` within one library, ``find_cross_duplicates``
  between two sets of images.
- ``features``, ``match``: per-image signatures, candidate search and the geometric check.
- ``report``: what an audit returns (groups, label conflicts, the evidence for each pair).
- ``groups``: joining rows into groups.
- ``copy_policy``: a library rewritten as one image per photo, or each group as one case.
- ``render``: a thumbnail strip of one group, for the UI and for checking by eye.
"""

from data_index.audit.copy_policy import (
    POLICIES,
    CopyPolicy,
    audited_manifest,
    write_audited_manifest,
)
from data_index.audit.core import Progress, find_cross_duplicates, find_duplicate_groups
from data_index.audit.match import MatchSettings, PairEvidence
from data_index.audit.render import render_group_strip
from data_index.audit.report import (
    CrossDuplicate,
    CrossReport,
    DuplicatePair,
    DuplicateReport,
    LabelConflict,
)

__all__ = [
    "POLICIES",
    "CopyPolicy",
    "CrossDuplicate",
    "CrossReport",
    "DuplicatePair",
    "DuplicateReport",
    "LabelConflict",
    "MatchSettings",
    "PairEvidence",
    "Progress",
    "audited_manifest",
    "find_cross_duplicates",
    "find_duplicate_groups",
    "render_group_strip",
    "write_audited_manifest",
]
