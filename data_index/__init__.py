"""Case libraries, embedding extraction and usearch indexes: bring your own cases, search them.

Owns the case library (``library``: folders, manifests, zips via ``archive``; file checks in
``validation``), the duplicate audit, embedding extraction and its cache (``embed``,
``embed_cache``), the index of one library under one backbone (``case_index``, saved by
``store``, queried through ``search``) and where derived files live (``locations``). On top of a
search: its trust signals (``trust``, ``trusted_search``), retrieval variants (``variants``,
``variant_search``), similarity maps (``explain``), backbones side by side (``compare``), Hub
datasets (``hub``) and relocatable index bundles (``bundle``). Imports ``models`` and nothing
above it: no benchmarks, no UI.
"""

from data_index.archive import UnsafeArchive
from data_index.case_index import EXACT_SEARCH_MAX_CASES, CaseIndex
from data_index.changes import cases_from_files
from data_index.embed import embed_cases, embed_library
from data_index.embed_cache import EmbeddingCache
from data_index.library import CaseLibrary
from data_index.locations import cache_root, default_index_dir
from data_index.search import Hit
from data_index.store import IndexMismatch
from data_index.validation import ValidationReport

__all__ = [
    "EXACT_SEARCH_MAX_CASES",
    "CaseIndex",
    "CaseLibrary",
    "EmbeddingCache",
    "Hit",
    "IndexMismatch",
    "UnsafeArchive",
    "ValidationReport",
    "cache_root",
    "cases_from_files",
    "default_index_dir",
    "embed_cases",
    "embed_library",
]
