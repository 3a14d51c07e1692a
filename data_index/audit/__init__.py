"""The copy audit: which images of a library are copies of one photo, and what to do about them.

This package owns the audit and its one cache. Every front end (``python -m data_index
validate``, the app's Library tab, the benchmark runner) calls ``audit_library``, which audits
a library version once and keeps the report under the cache root, keyed by the library's
fingerprint and the audit's settings.

- ``core``: the method; ``find_duplicate_groups`` within one library, ``find_cross_duplicates``
  between two sets of images.
- ``features``: per-image signatures; ``match``: the geometric check of a pair.
- ``candidates``, ``votes``: the candidate pairs, from usearch searches over the signatures
  (window, corner, zoom and colour neighbours; keypoint votes), never all pairs.
- ``report``: what an audit returns (groups, label conflicts, the evidence for each pair).
- ``cache``: ``audit_library``, the cached audit of a library.
- ``groups``: duplicate-group id arrays joined with cases (for splits and query counts).
- ``copy_policy``: a library rewritten as one image per photo, or each group as one case.
- ``overlays``: the library's recurring overlays (logos, rulers, banners, frames), masked.
- ``decisions``: "not a copy" decisions kept beside the library, applied to every audit.
- ``render``: a thumbnail strip of one group, and the evidence for one pair, for eyes.
"""

from data_index.audit.cache import AUDIT_VERSION, audit_cache_file, audit_library
from data_index.audit.copy_policy import (
    POLICIES,
    CopyPolicy,
    audited_manifest,
    write_audited_manifest,
)
from data_index.audit.core import Progress, find_cross_duplicates, find_duplicate_groups
from data_index.audit.decisions import decisions_file, mark_not_copy, not_copies
from data_index.audit.groups import case_or_copy_groups, queries_with_copy
from data_index.audit.match import MatchSettings, PairEvidence
from data_index.audit.render import render_group_strip, render_pair_evidence
from data_index.audit.report import (
    CrossDuplicate,
    CrossReport,
    DuplicatePair,
    DuplicateReport,
    LabelConflict,
    group_pair,
)

__all__ = [
    "AUDIT_VERSION",
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
    "audit_cache_file",
    "audit_library",
    "audited_manifest",
    "case_or_copy_groups",
    "decisions_file",
    "find_cross_duplicates",
    "find_duplicate_groups",
    "group_pair",
    "mark_not_copy",
    "not_copies",
    "queries_with_copy",
    "render_group_strip",
    "render_pair_evidence",
    "write_audited_manifest",
]
